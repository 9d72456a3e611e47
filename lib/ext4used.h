/* ext4used.h - the blocks an ext2/3/4 filesystem uses, from its block
 * bitmaps (libext2fs): what a copy of the filesystem must carry so that the
 * copy is the same filesystem (superblocks, group descriptors, bitmaps, inode
 * tables, journal, directories, file data). Free blocks are left out: their
 * content is never read by the filesystem. The way `e2image -ra` copies. */
#ifndef SI_EXT4USED_H
#define SI_EXT4USED_H

#include <stdint.h>

#include "result.h"
#include "sparse.h"

typedef struct si_ext4_used_stats {
    uint64_t fs_bytes;   /* blocks_count * block size: the filesystem's extent on the device */
    uint64_t used_bytes; /* the sum of the ranges walked */
    uint32_t block_size;
} si_ext4_used_stats;

/* Call fn(start, len, ctx) for each run of used blocks of the filesystem on
 * path (a block device or an image file, opened read-only), in byte offsets
 * and device order; the blocks before the first data block (the boot block
 * of a 1 KiB-block filesystem) count as used. A device that holds no
 * ext2/3/4 filesystem gives SI_ERR_PARTITION before fn is called; a non-zero
 * return of fn stops the walk with SI_ERR_IO (fn sets err first). stats may
 * be NULL. */
si_result si_ext4_used_walk(const char *path, si_sparse_range_fn fn, void *ctx,
                            si_ext4_used_stats *stats, si_err *err);

#endif
