/* sysmount.h - kernel mounts of ext4 partitions for the recovery. A
 * partition given as a regular file (host tests: --partition LABEL=FILE) is
 * attached to a free loop device first, with autoclear so that unmounting
 * releases it. */
#ifndef SI_RECOVERY_SYSMOUNT_H
#define SI_RECOVERY_SYSMOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "result.h"

/* mkdir -p dir, then mount dev (block device or regular file) there as
 * ext4, read-only when ro. ro_dev also makes the loop device of a regular
 * file read-only, so that not even a journal replay writes it (dry runs). */
si_result sysmount_ext4(const char *dev, const char *dir, bool ro, bool ro_dev, si_err *err);
/* sync, then unmount dir. */
si_result sysmount_umount(const char *dir, si_err *err);
/* mkdir -p; 0 or -errno. */
int sysmount_mkdir_p(const char *dir, mode_t mode);

#endif
