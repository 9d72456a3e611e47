/* ext4tar.h - fill an ext4 filesystem image from full update tarballs
 * (docs/formats.md: members system/<path>) in-process with libext2fs: no
 * root, no mount, no loop device. Used by `sysimage image` (factory disk
 * images) and meant for the recovery's flash mode.
 *
 * The tarballs are streamed once each, in order (a later member replaces an
 * earlier one of the same path, as the apply engine does). Handled: the
 * root's metadata ("system/"), directories, regular files (all-zero blocks
 * stay holes), symlinks, hardlinks, character and block devices, FIFOs,
 * sockets, numeric owners, modes (with setuid/setgid/sticky), mtimes (atime
 * and ctime = mtime, so the result is deterministic), extended attributes
 * (security.*, trusted.*, user.*). Parents missing from the archive are made
 * 0755 root:root with time `dir_time`. Refused before anything of that member
 * is written: paths outside system/ (SI_ERR_UNSAFE_PATH), "..", paths through
 * a non-directory, `removed` (a delta, SI_ERR_UNSUPPORTED), partitions/NAME.img
 * (SI_ERR_UNSUPPORTED: raw partition images are not written by this module).
 * A filesystem that runs out of room gives SI_ERR_NO_SPACE naming the member.
 * On error the image is left as it is (the caller discards it). */
#ifndef SI_EXT4TAR_H
#define SI_EXT4TAR_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

typedef struct si_ext4tar_stats {
    uint64_t members;      /* entries written */
    uint64_t bytes;        /* file data bytes */
    uint64_t free_bytes;   /* free blocks left, in bytes */
} si_ext4tar_stats;

/* fs_path: an ext4 filesystem (device or image file) made beforehand, e.g.
 * by si_mkfs_ext4. dir_time: timestamp of implicit parents and of the
 * filesystem's own writes (superblock times). stats may be NULL. */
si_result si_ext4_from_tarballs(const char *fs_path, const char *const *tarballs, size_t n,
                                int64_t dir_time, si_ext4tar_stats *stats, si_err *err);

/* Add regular files: names[i] (a path inside the filesystem; parents are
 * made) gets the content of the host file srcs[i], mode 0644, owner 0:0,
 * times mtime. An existing file of that name is replaced. */
si_result si_ext4_add_files(const char *fs_path, const char *const *names, const char *const *srcs,
                            size_t n, int64_t mtime, si_ext4tar_stats *stats, si_err *err);

/* Read the tarballs once without writing anything: the same member rules as
 * si_ext4_from_tarballs, the newest member mtime (a timestamp derived from
 * the build), the bytes of file data and the number of members. */
si_result si_ext4tar_scan(const char *const *tarballs, size_t n, int64_t *newest_mtime,
                          uint64_t *data_bytes, uint64_t *members, si_err *err);

#endif
