/* version.c - the build record {"build": N, "channel": "..."}: parsing,
 * formatting, reading it from an installed tree, writing the small version
 * tarball every published image carries, and finding it in an update
 * tarball (streamed, bounded). */
#include "version.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "fsutil.h"

#define VERSION_BUILD_MAX 9007199254740992.0 /* 2^53: exact in a JSON number */

static bool only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
    return true;
}

si_result si_version_parse(const char *json, size_t len, si_version *out, si_err *err)
{
    if (!json && len)
        return si_err_set(err, SI_ERR_USAGE, "version.json: no buffer");
    if (len > SI_VERSION_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "version.json: %zu bytes, limit %d", len,
                          SI_VERSION_MAX_BYTES);
    if (len == 0)
        return si_err_set(err, SI_ERR_PARSE, "version.json: empty");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= json && at <= json + len) ? (size_t)(at - json) : 0;
        return si_err_set(err, SI_ERR_PARSE, "version.json: invalid JSON near byte %zu", off);
    }
    si_result r = SI_OK;
    if (end && !only_space(end, json + len)) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: trailing data at byte %zu",
                       (size_t)(end - json));
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: expected an object");
        goto out;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "build");
    if (!b) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: build: missing");
        goto out;
    }
    if (!cJSON_IsNumber(b)) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: build: expected an integer");
        goto out;
    }
    double d = b->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < 0 || d > VERSION_BUILD_MAX) {
        r = si_err_set(err, SI_ERR_PARSE,
                       "version.json: build: expected an integer in [0, 2^53]");
        goto out;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "channel");
    if (!c) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: channel: missing");
        goto out;
    }
    if (!cJSON_IsString(c) || !c->valuestring) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: channel: expected a string");
        goto out;
    }
    size_t clen = strlen(c->valuestring);
    if (clen >= sizeof(out->channel)) {
        r = si_err_set(err, SI_ERR_PARSE, "version.json: channel: longer than %zu bytes",
                       sizeof(out->channel) - 1);
        goto out;
    }
    out->build = (int64_t)d;
    memcpy(out->channel, c->valuestring, clen + 1);
out:
    cJSON_Delete(root);
    return r;
}

/* Open <root>/etc/sysimage/version.json without following symlinks anywhere
 * below root: an installed system must not point the reader elsewhere. */
si_result si_version_read_tree(const char *root, si_version *out, si_err *err)
{
    static const char *const comps[] = {"etc", "sysimage", "version.json"};
    char shown[PATH_MAX];
    snprintf(shown, sizeof(shown), "%s/etc/sysimage/version.json", root);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_NOT_FOUND : SI_ERR_IO, "%s: %s", root,
                          strerror(errno));
    for (size_t i = 0; i < sizeof(comps) / sizeof(comps[0]); i++) {
        bool last = i + 1 == sizeof(comps) / sizeof(comps[0]);
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY);
        int nfd = openat(fd, comps[i], flags);
        int e = errno;
        close(fd);
        if (nfd < 0) {
            if (e == ENOENT)
                return si_err_set(err, SI_ERR_NOT_FOUND, "%s: not found", shown);
            if (e == ELOOP || e == ENOTDIR)
                return si_err_set(err, SI_ERR_UNSAFE_PATH,
                                  "%s: component '%s' is a symlink or not a directory", shown,
                                  comps[i]);
            return si_err_set(err, SI_ERR_IO, "%s: %s", shown, strerror(e));
        }
        fd = nfd;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: not a regular file", shown);
    }
    char buf[SI_VERSION_MAX_BYTES + 1];
    size_t n = 0;
    for (;;) {
        ssize_t rd = read(fd, buf + n, sizeof(buf) - n);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd < 0) {
            int e = errno;
            close(fd);
            return si_err_set(err, SI_ERR_IO, "%s: %s", shown, strerror(e));
        }
        if (rd == 0)
            break;
        n += (size_t)rd;
        if (n == sizeof(buf))
            break;
    }
    close(fd);
    if (n > SI_VERSION_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %d bytes", shown,
                          SI_VERSION_MAX_BYTES);
    si_result r = si_version_parse(buf, n, out, err);
    if (r != SI_OK)
        si_err_prefix(err, "%s", shown);
    return r;
}

si_result si_version_format(const si_version *v, char **json_out, si_err *err)
{
    if (v->build < 0 || (double)v->build > VERSION_BUILD_MAX)
        return si_err_set(err, SI_ERR_USAGE, "version: build %lld out of range",
                          (long long)v->build);
    if (!memchr(v->channel, '\0', sizeof(v->channel)))
        return si_err_set(err, SI_ERR_USAGE, "version: channel not terminated");
    cJSON *s = cJSON_CreateString(v->channel);
    char *quoted = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    if (!quoted)
        return si_err_set(err, SI_ERR_NOMEM, "version: out of memory");
    /* Canonical form: sorted keys, 4-space indent, trailing newline. */
    char *txt = NULL;
    int n = asprintf(&txt, "{\n    \"build\": %lld,\n    \"channel\": %s\n}\n",
                     (long long)v->build, quoted);
    free(quoted);
    if (n < 0)
        return si_err_set(err, SI_ERR_NOMEM, "version: out of memory");
    *json_out = txt;
    return SI_OK;
}

static si_result set_filter(struct archive *a, const si_build_opts *opts, const char *out,
                            si_err *err)
{
    si_compression c = opts ? opts->compression : SI_COMP_ZSTD;
    int rc;
    switch (c) {
    case SI_COMP_ZSTD:
        rc = archive_write_add_filter_zstd(a);
        break;
    case SI_COMP_XZ:
        rc = archive_write_add_filter_xz(a);
        break;
    case SI_COMP_NONE:
        rc = archive_write_add_filter_none(a);
        break;
    default:
        return si_err_set(err, SI_ERR_USAGE, "%s: unknown compression %d", out, (int)c);
    }
    if (rc != ARCHIVE_OK)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: compression filter: %s", out,
                          archive_error_string(a));
    if (opts && opts->level > 0 && c != SI_COMP_NONE) {
        char lvl[16];
        snprintf(lvl, sizeof(lvl), "%d", opts->level);
        if (archive_write_set_filter_option(a, NULL, "compression-level", lvl) != ARCHIVE_OK)
            return si_err_set(err, SI_ERR_USAGE, "%s: compression level %d: %s", out,
                              opts->level, archive_error_string(a));
    }
    return SI_OK;
}

/* Deterministic output: mtime 0, numeric owner root, mode 0644, so the same
 * build and channel always give the same bytes (and pool name). Written to a
 * temp file beside out, then renamed. */
si_result si_version_build_tarball(const si_version *v, const char *out,
                                   const si_build_opts *opts, si_err *err)
{
    char *json = NULL;
    si_result r = si_version_format(v, &json, err);
    if (r != SI_OK)
        return r;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", out) >= (int)sizeof(tmp)) {
        free(json);
        return si_err_set(err, SI_ERR_USAGE, "%s: path too long", out);
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(json);
        return si_err_set(err, SI_ERR_IO, "%s: %s", out, strerror(e));
    }
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    if (!a || !e) {
        r = si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", out);
        goto fail;
    }
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK) {
        r = si_err_set(err, SI_ERR_INTERNAL, "%s: %s", out, archive_error_string(a));
        goto fail;
    }
    r = set_filter(a, opts, out, err);
    if (r != SI_OK)
        goto fail;
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        r = si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(a));
        goto fail;
    }
    size_t len = strlen(json);
    archive_entry_set_pathname(e, SI_VERSION_MEMBER);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_size(e, (la_int64_t)len);
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        archive_write_data(a, json, len) != (la_ssize_t)len || archive_write_close(a) != ARCHIVE_OK) {
        r = si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(a));
        goto fail;
    }
    archive_entry_free(e);
    archive_write_free(a);
    free(json);
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
        int en = errno;
        close(fd);
        unlink(tmp);
        return si_err_set(err, SI_ERR_IO, "%s: %s", out, strerror(en));
    }
    close(fd);
    if (rename(tmp, out) < 0) {
        int en = errno;
        unlink(tmp);
        return si_err_set(err, SI_ERR_IO, "%s: rename: %s", out, strerror(en));
    }
    si_fsync_parent_dir(out);
    return SI_OK;
fail:
    if (e)
        archive_entry_free(e);
    if (a)
        archive_write_free(a);
    close(fd);
    unlink(tmp);
    free(json);
    return r;
}

/* Member names as stored, tolerating a leading "./". */
static const char *member_name(struct archive_entry *e)
{
    const char *p = archive_entry_pathname(e);
    if (!p)
        return "";
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    return p;
}

/* Streams the whole tarball: when the member occurs more than once, the last
 * one is what extraction leaves on disk, so the last one counts. */
si_result si_version_from_tarball(const char *path, si_version *out, bool *found, si_err *err)
{
    *found = false;
    struct archive *a = archive_read_new();
    if (!a)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", path);
    si_result r = SI_OK;
    /* Explicit formats and filters: the recovery links statically. */
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_filter_xz(a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK) {
        r = si_err_set(err, SI_ERR_UNSUPPORTED, "%s: libarchive: %s", path,
                       archive_error_string(a));
        goto out;
    }
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
        r = si_err_set(err, archive_errno(a) == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_PARSE, "%s: %s",
                       path, archive_error_string(a));
        goto out;
    }
    char buf[SI_VERSION_MAX_BYTES + 1];
    si_version v;
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            r = si_err_set(err, SI_ERR_PARSE, "%s: %s", path, archive_error_string(a));
            goto out;
        }
        if (strcmp(member_name(e), SI_VERSION_MEMBER) != 0)
            continue;
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
            archive_entry_symlink(e)) {
            r = si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s is not a regular file", path,
                           SI_VERSION_MEMBER);
            goto out;
        }
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > SI_VERSION_MAX_BYTES) {
            r = si_err_set(err, SI_ERR_TOO_LARGE, "%s: %s: %lld bytes, limit %d", path,
                           SI_VERSION_MEMBER, (long long)archive_entry_size(e),
                           SI_VERSION_MAX_BYTES);
            goto out;
        }
        size_t n = 0;
        for (;;) {
            la_ssize_t got = archive_read_data(a, buf + n, sizeof(buf) - n);
            if (got < 0) {
                r = si_err_set(err, SI_ERR_PARSE, "%s: %s: %s", path, SI_VERSION_MEMBER,
                               archive_error_string(a));
                goto out;
            }
            if (got == 0)
                break;
            n += (size_t)got;
            if (n == sizeof(buf)) {
                r = si_err_set(err, SI_ERR_TOO_LARGE, "%s: %s: larger than %d bytes", path,
                               SI_VERSION_MEMBER, SI_VERSION_MAX_BYTES);
                goto out;
            }
        }
        r = si_version_parse(buf, n, &v, err);
        if (r != SI_OK) {
            si_err_prefix(err, "%s: %s", path, SI_VERSION_MEMBER);
            goto out;
        }
        *out = v;
        *found = true;
    }
out:
    archive_read_free(a);
    if (r != SI_OK)
        *found = false;
    return r;
}
