/* seal.h - the last step of `sysimage build`: the members written to an
 * uncompressed body tarball are copied, once compressed, behind a first
 * member `manifest` listing them (lib/manifest.h, docs/formats.md). */
#ifndef SI_SEAL_H
#define SI_SEAL_H

#include "result.h"
#include "tarformat.h"

/* body: an uncompressed pax tarball; out: the update file to write (not
 * synced: the caller syncs and renames it). */
si_result si_seal_tarball(const char *body, const char *out, si_compression comp, int level,
                          si_err *err);

/* Read the data of the current member of a reader (the logical content:
 * holes as zeros) and call fn for each piece; size: the member's size. */
typedef si_result (*si_seal_data_fn)(const void *buf, size_t len, void *ctx, si_err *err);
si_result si_tar_member_data(struct archive *a, int64_t size, const char *what,
                             si_seal_data_fn fn, void *ctx, si_err *err);

#endif
