/* layout.c - the update-file layout (layout.h). */
#include "layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tarformat.h"

const char *const si_layout_never_raw[] = {"system", "userdata", "cache", "misc"};
const size_t si_layout_never_raw_count =
    sizeof(si_layout_never_raw) / sizeof(si_layout_never_raw[0]);
const char *const si_layout_board_raw[] = {"bios", "esp", "boot", "recovery"};
const size_t si_layout_board_raw_count =
    sizeof(si_layout_board_raw) / sizeof(si_layout_board_raw[0]);

const char *si_layout_raw_label_why(const char *label)
{
    size_t n = label ? strnlen(label, SI_LAYOUT_LABEL_MAX + 1) : 0;
    if (n == 0)
        return "empty partition name";
    if (n > SI_LAYOUT_LABEL_MAX)
        return "partition name longer than 59 bytes";
    if (label[0] == '.')
        return "partition name starts with '.'";
    for (size_t i = 0; i < n; i++) {
        char c = label[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return "bad partition name (allowed: A-Z a-z 0-9 . _ -)";
    }
    for (size_t i = 0; i < si_layout_never_raw_count; i++)
        if (strcmp(label, si_layout_never_raw[i]) == 0)
            return "this partition is never written raw by an update";
    return NULL;
}

si_result si_layout_check_member_name(const char *name, si_member_kind *kind, char *label,
                                      size_t label_size, si_err *err)
{
    if (!name)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "member without a name");
    if (strcmp(name, SI_LAYOUT_REMOVED) == 0) {
        *kind = SI_MEMBER_REMOVED;
        return SI_OK;
    }
    if (strcmp(name, SI_LAYOUT_PATCHED) == 0) {
        *kind = SI_MEMBER_PATCHED;
        return SI_OK;
    }
    if (strncmp(name, SI_LAYOUT_PATCH_PREFIX, strlen(SI_LAYOUT_PATCH_PREFIX)) == 0) {
        *kind = SI_MEMBER_PATCH;
        return SI_OK;
    }
    if (strcmp(name, SI_LAYOUT_SYSTEM) == 0 ||
        strncmp(name, SI_LAYOUT_SYSTEM_PREFIX, strlen(SI_LAYOUT_SYSTEM_PREFIX)) == 0) {
        *kind = SI_MEMBER_SYSTEM;
        return SI_OK;
    }
    size_t pl = strlen(SI_LAYOUT_PART_PREFIX), sl = strlen(SI_LAYOUT_PART_SUFFIX);
    if (strncmp(name, SI_LAYOUT_PART_PREFIX, pl) != 0)
        return si_err_set(err, SI_ERR_UNSAFE_PATH,
                          "member '%.200s' is outside system/, patch/, removed, patched and "
                          "partitions/", name);
    const char *n = name + pl;
    size_t len = strlen(n);
    if (len <= sl || strcmp(n + len - sl, SI_LAYOUT_PART_SUFFIX) != 0 ||
        len - sl > SI_LAYOUT_LABEL_MAX)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "member '%.200s': not partitions/<name>.img",
                          name);
    char l[SI_LAYOUT_LABEL_MAX + 1];
    memcpy(l, n, len - sl);
    l[len - sl] = '\0';
    const char *why = si_layout_raw_label_why(l);
    if (why)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "member '%.200s': %s", name, why);
    if (label && label_size)
        snprintf(label, label_size, "%s", l);
    *kind = SI_MEMBER_PARTITION;
    return SI_OK;
}

static si_result add_part(si_layout_scan *out, const char *label, int64_t size, const char *what,
                          si_err *err)
{
    uint64_t sz = size > 0 ? (uint64_t)size : 0;
    for (size_t i = 0; i < out->nparts; i++)
        if (strcmp(out->parts[i], label) == 0) {
            if (sz > out->part_size[i])
                out->part_size[i] = sz;
            return SI_OK;
        }
    if (out->nparts >= SI_LAYOUT_SCAN_MAX_PARTS)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: more than %d raw partitions", what,
                          SI_LAYOUT_SCAN_MAX_PARTS);
    out->part_size[out->nparts] = sz;
    snprintf(out->parts[out->nparts++], sizeof(out->parts[0]), "%s", label);
    return SI_OK;
}

static si_result read_version(struct archive *a, struct archive_entry *ae, const char *what,
                              si_layout_scan *out, si_err *err)
{
    if (archive_entry_filetype(ae) != AE_IFREG)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s is not a regular file", what,
                          archive_entry_pathname(ae));
    if (archive_entry_size(ae) > SI_LAYOUT_VERSION_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: %s: larger than %d bytes", what,
                          archive_entry_pathname(ae), SI_LAYOUT_VERSION_MAX);
    size_t n = 0;
    for (;;) {
        la_ssize_t r = archive_read_data(a, out->version + n, SI_LAYOUT_VERSION_MAX - n);
        if (r < 0)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s", what, archive_error_string(a));
        if (r == 0)
            break;
        n += (size_t)r;
        if (n >= SI_LAYOUT_VERSION_MAX)
            break;
    }
    out->version[n] = '\0';
    out->version_len = n;
    out->has_version = true;
    return SI_OK;
}

#define SCAN_CHUNK (128 * 1024)

struct scan_src {
    int fd;
    uint64_t done;
    si_layout_progress_fn progress;
    void *ctx;
    unsigned char buf[SCAN_CHUNK];
};

static la_ssize_t scan_read(struct archive *a, void *cd, const void **buf)
{
    struct scan_src *s = cd;
    for (;;) {
        ssize_t r = read(s->fd, s->buf, sizeof(s->buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            archive_set_error(a, errno, "read: %s", strerror(errno));
            return -1;
        }
        *buf = s->buf;
        s->done += (uint64_t)r;
        if (s->progress && r > 0)
            s->progress(s->done, s->ctx);
        return r;
    }
}

si_result si_layout_scan_tarball(int fd, const char *what, const char *version_member,
                                 si_layout_scan *out, si_err *err)
{
    return si_layout_scan_tarball_progress(fd, what, version_member, out, NULL, NULL, err);
}

si_result si_layout_scan_tarball_progress(int fd, const char *what, const char *version_member,
                                          si_layout_scan *out, si_layout_progress_fn progress,
                                          void *ctx, si_err *err)
{
    memset(out, 0, sizeof(*out));
    struct scan_src *src = calloc(1, sizeof(*src));
    struct archive *a = src ? si_tar_reader_new() : NULL;
    if (!a) {
        free(src);
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory (archive reader)", what);
    }
    src->fd = fd;
    src->progress = progress;
    src->ctx = ctx;
    si_result rc = SI_OK;
    if (archive_read_open(a, src, NULL, scan_read, NULL) != ARCHIVE_OK)
        rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", what, archive_error_string(a));
    for (bool first = true; rc == SI_OK; first = false) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", what, archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(ae);
        if (first && name && strcmp(name, SI_LAYOUT_MANIFEST) == 0)
            continue; /* checked by lib/apply (lib/manifest.h) */
        si_member_kind kind;
        char label[SI_LAYOUT_LABEL_MAX + 1];
        rc = si_layout_check_member_name(name, &kind, label, sizeof(label), err);
        if (rc != SI_OK) {
            si_err_prefix(err, "%s", what);
            break;
        }
        if (kind == SI_MEMBER_PARTITION)
            rc = add_part(out, label, archive_entry_size(ae), what, err);
        else if (version_member && strcmp(name, version_member) == 0)
            rc = read_version(a, ae, what, out, err);
    }
    archive_read_free(a);
    free(src);
    return rc;
}

/* ------------------------------------------------------------ paths */

/* A relative path: non-empty, no empty, "." or ".." components, no control
 * bytes (a newline would make `removed` ambiguous: docs/formats.md). */
bool si_layout_rel_path_ok(const char *p)
{
    if (!*p || *p == '/' || strlen(p) >= PATH_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    const char *c = p;
    for (;;) {
        const char *s = strchr(c, '/');
        size_t len = s ? (size_t)(s - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (!s)
            return true;
        c = s + 1;
    }
}

bool si_layout_system_rel(const char *name, char *rel, size_t relsz)
{
    size_t pl = strlen(SI_LAYOUT_SYSTEM_PREFIX);
    if (!name || strncmp(name, SI_LAYOUT_SYSTEM_PREFIX, pl) != 0) {
        if (!name || strcmp(name, SI_LAYOUT_SYSTEM) != 0)
            return false;
        rel[0] = '\0';
        return true;
    }
    const char *p = name + pl;
    size_t len = strlen(p);
    if (len && p[len - 1] == '/')
        len--;
    if (len >= relsz)
        return false;
    memcpy(rel, p, len);
    rel[len] = '\0';
    if (!len)
        return !p[0]; /* "system//" is not "system/" */
    return si_layout_rel_path_ok(rel);
}
