/* version_tar.c - the small version tarball of every published image
 * (version_tar.h). */
#include "version_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "tarformat.h"

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
    r = si_tar_writer_set_compression(a, opts ? opts->compression : SI_COMP_ZSTD,
                                      opts ? opts->level : 0, out, err);
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
