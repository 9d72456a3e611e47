/* sparse.h - files with holes: walk their data ranges (SEEK_DATA/SEEK_HOLE)
 * and copy only those, so disk images stay sparse and a copy costs what the
 * image holds, not its size. */
#ifndef SI_SPARSE_H
#define SI_SPARSE_H

#include <stdint.h>

#include "result.h"

/* Called for each data range [start, start + len) in file order; non-zero
 * stops the walk with SI_ERR_IO (the callback sets err itself first). */
typedef int (*si_sparse_range_fn)(uint64_t start, uint64_t len, void *ctx);

/* Data ranges of fd up to size, each extended to whole `align` blocks
 * (align a power of two, e.g. 4096; ranges never pass size). */
si_result si_sparse_walk(int fd, uint64_t size, uint64_t align, si_sparse_range_fn fn, void *ctx,
                         si_err *err);

/* Copy the data of src (its whole size, at most max bytes) into dst_fd at
 * dst_off; holes of src are not written. SI_ERR_NO_SPACE when src is larger
 * than max. */
si_result si_sparse_copy(const char *src, int dst_fd, uint64_t dst_off, uint64_t max, si_err *err);

#endif
