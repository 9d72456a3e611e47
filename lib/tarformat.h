/* tarformat.h - the one place that says which tarballs sysimage reads and
 * writes: pax/ustar tar, compressed with zstd, xz, gzip (read only) or none.
 * Formats and filters are registered one by one, never with libarchive's
 * *_all() helpers: the recovery links statically and those pull in
 * libxml2 and ICU. */
#ifndef SI_TARFORMAT_H
#define SI_TARFORMAT_H

#include "result.h"

#include <archive.h>

/* The compression of tarballs sysimage writes. */
typedef enum si_compression { SI_COMP_ZSTD, SI_COMP_XZ, SI_COMP_NONE } si_compression;

/* A reader for tar with zstd, xz, gzip or no compression; NULL when out of
 * memory or a filter cannot be registered. */
struct archive *si_tar_reader_new(void);

/* The same filters, no format: the decompressed bytes as one entry (lib/unpack). */
struct archive *si_raw_reader_new(void);

/* Add the compression filter `comp` to a writer and set its level; levels
 * out of range (zstd 1..19, xz 0..9; 0 = library
 * default) are SI_ERR_USAGE naming `out`. */
si_result si_tar_writer_set_compression(struct archive *w, si_compression comp, int level,
                                        const char *out, si_err *err);

#endif
