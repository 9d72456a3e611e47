/* fsutil.h - small file helpers: bounded reads and atomic writes. */
#ifndef SI_FSUTIL_H
#define SI_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "result.h"

/* Read a whole file of at most max_len bytes into a NUL-terminated malloc'd
 * buffer. Returns 0, -EFBIG when the file is larger than max_len, or -errno. */
int si_read_file(const char *path, size_t max_len, char **buf, size_t *len);

/* The same from an open descriptor (read to its end; fd stays open). */
int si_read_fd(int fd, size_t max_len, char **buf, size_t *len);

/* si_read_file with an si_err naming path: SI_ERR_TOO_LARGE ("larger than
 * MAX bytes"), SI_ERR_MISSING_FILE ("no such file"), SI_ERR_IO otherwise. */
si_result si_read_file_checked(const char *path, size_t max_len, char **buf, size_t *len,
                               si_err *err);

/* Write buf to path atomically: temp file in the same directory, fsync,
 * rename over path, fsync the directory. Returns 0 or -errno. */
int si_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* fsync the directory that contains path. Returns 0 or -errno. */
int si_fsync_parent_dir(const char *path);

/* Write all of buf to fd, retrying on EINTR/short writes. 0 or -errno. */
int si_write_all(int fd, const void *buf, size_t len);

/* mkdir -p: create path and its missing parents with mode (existing
 * directories are fine). 0 or -errno (-ENAMETOOLONG beyond 4095 bytes). */
int si_mkdir_p(const char *path, mode_t mode);

/* The size in bytes of the block device path names (*bytes): 1 when path is
 * a block device, 0 when it is something else (a regular file grows as it is
 * written: no capacity), -errno when it cannot be opened. */
int si_block_device_size(const char *path, unsigned long long *bytes);

/* mkdtemp under dir: creates dir/prefix.<6 random characters> and puts its
 * path in out (size cap). 0 or -errno (-ENAMETOOLONG when it does not fit). */
int si_make_temp_dir(const char *dir, const char *prefix, char *out, size_t cap);

/* Copy the basename of path into out (size outlen). 0 or -ENAMETOOLONG. */
int si_basename(const char *path, char *out, size_t outlen);

#endif
