/* mkfs.h - make ext4 filesystems in-process with libext2fs (no mke2fs binary).
 *
 * Features are those of mke2fs' ext4 type: has_journal, ext_attr,
 * resize_inode, dir_index, filetype, extent, 64bit, flex_bg, sparse_super,
 * large_file, huge_file, dir_nlink, extra_isize, metadata_csum. Inode tables
 * are initialised lazily (like mke2fs on current kernels), the journal is
 * zeroed, old signatures at both ends of the range are wiped. Memory use is
 * the allocation bitmaps plus small buffers (well under 1 MiB per GiB). */
#ifndef SI_MKFS_H
#define SI_MKFS_H

#include <stdint.h>

#include "result.h"

#define SI_FS_LABEL_MAX 16 /* bytes, ext4 s_volume_name */
#define SI_MKFS_MIN_BYTES (8 * 1024 * 1024) /* room for the smallest journal */

typedef struct si_mkfs_opts {
    const char *label;        /* volume label (<= 16 bytes); NULL or "" = none */
    uint64_t size;            /* bytes; 0 = the whole device or file */
    unsigned block_size;      /* 1024, 2048 or 4096; 0 = 4096 */
    unsigned inode_ratio;     /* bytes per inode; 0 = 16384 */
    unsigned reserved_percent;/* root-reserved blocks in percent, 0..50 (init: 5) */
    int discard;              /* 1 = BLKDISCARD the range first (devices; errors ignored) */
    /* Reproducible filesystems (factory images): both 0/NULL = random UUID
     * and hash seed, the current time. */
    const unsigned char *uuid;/* 16 bytes: the UUID; the directory hash seed is derived from it */
    int64_t timestamp;        /* seconds since the epoch for every time the filesystem records */
} si_mkfs_opts;

/* Fill opts with the defaults (no label, whole device, 4 KiB blocks, 5%).
 * Functions taking opts accept NULL for these defaults. */
void si_mkfs_opts_init(si_mkfs_opts *opts);

/* Make an ext4 filesystem on a block device or a regular file. A regular
 * file is extended (sparse) to opts->size when that is larger. Sizes under
 * SI_MKFS_MIN_BYTES give SI_ERR_NO_SPACE before anything is written. */
si_result si_mkfs_ext4(const char *path, const si_mkfs_opts *opts, si_err *err);

/* Read the label of an existing ext2/3/4 filesystem into label (size
 * SI_FS_LABEL_MAX + 1). SI_ERR_PARTITION when path does not hold an ext
 * filesystem, SI_ERR_IO when it cannot be read. */
si_result si_fs_read_label(const char *path, char label[SI_FS_LABEL_MAX + 1], si_err *err);

/* Re-make the filesystem on path keeping its label (factory reset of
 * userdata): the label of the current filesystem is read first; when there is
 * none (no or damaged filesystem), fallback_label is used. The other options
 * come from opts (NULL = defaults). */
si_result si_mkfs_ext4_keep_label(const char *path, const char *fallback_label,
                                  const si_mkfs_opts *opts, si_err *err);

#endif
