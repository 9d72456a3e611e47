/* tarformat.c - tar formats and compression filters sysimage accepts. */
#include "tarformat.h"

#include <stdio.h>

/* A reader with the compressions sysimage reads and one format. */
static struct archive *reader_new(int (*format)(struct archive *))
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    if (format(a) != ARCHIVE_OK || archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_filter_xz(a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

struct archive *si_tar_reader_new(void)
{
    return reader_new(archive_read_support_format_tar);
}

struct archive *si_raw_reader_new(void)
{
    return reader_new(archive_read_support_format_raw);
}

si_result si_tar_writer_set_compression(struct archive *w, si_compression comp, int level,
                                        const char *out, si_err *err)
{
    const char *fname = NULL;
    int r;
    switch (comp) {
    case SI_COMP_ZSTD:
        if (level < 0 || level > 19)
            return si_err_set(err, SI_ERR_USAGE, "%s: zstd level %d out of range 1..19", out,
                              level);
        r = archive_write_add_filter_zstd(w);
        fname = "zstd";
        break;
    case SI_COMP_XZ:
        if (level < 0 || level > 9)
            return si_err_set(err, SI_ERR_USAGE, "%s: xz level %d out of range 0..9", out, level);
        r = archive_write_add_filter_xz(w);
        fname = "xz";
        break;
    case SI_COMP_NONE:
        r = archive_write_add_filter_none(w);
        break;
    default:
        return si_err_set(err, SI_ERR_USAGE, "%s: unknown compression %d", out, (int)comp);
    }
    if (r != ARCHIVE_OK)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: compression filter: %s", out,
                          archive_error_string(w));
    if (fname && level > 0) {
        char lv[16];
        snprintf(lv, sizeof(lv), "%d", level);
        if (archive_write_set_filter_option(w, fname, "compression-level", lv) != ARCHIVE_OK)
            return si_err_set(err, SI_ERR_USAGE, "%s: %s level %d: %s", out, fname, level,
                              archive_error_string(w));
    }
    return SI_OK;
}
