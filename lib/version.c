/* version.c - the build record {"build": N, "channel": "..."}: parsing,
 * formatting, reading it from an installed tree, writing the small version
 * tarball every published image carries, and finding it in an update
 * tarball (streamed, bounded). */
#include "version.h"
#include "tarformat.h"

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
    struct archive *a = si_tar_reader_new();
    if (!a)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", path);
    si_result r = SI_OK;
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
