/* fsutil.c - bounded reads and atomic writes. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int si_read_fd(int fd, size_t max_len, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > max_len) {
                free(b);
                return -EFBIG;
            }
            size_t ncap = cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(b);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max_len) {
            free(b);
            return -EFBIG;
        }
    }
    b[n] = '\0';
    *buf = b;
    if (len)
        *len = n;
    return 0;
}

int si_read_file(const char *path, size_t max_len, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = si_read_fd(fd, max_len, buf, len);
    close(fd);
    return r;
}

si_result si_read_file_checked(const char *path, size_t max_len, char **buf, size_t *len,
                               si_err *err)
{
    int rc = si_read_file(path, max_len, buf, len);
    if (rc == -EFBIG)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %zu bytes", path, max_len);
    if (rc == -ENOENT)
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: no such file", path);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    return SI_OK;
}

int si_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int si_fsync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    size_t l = strlen(path);
    if (l >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, l + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int si_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -errno;
    int r = si_write_all(fd, buf, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r != 0) {
        unlink(tmp);
        return r;
    }
    return si_fsync_parent_dir(path);
}

int si_basename(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t l = strlen(base);
    if (l + 1 > outlen)
        return -ENAMETOOLONG;
    memcpy(out, base, l + 1);
    return 0;
}

int si_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0)
        return -ENOENT;
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (!c)
            return 0;
    }
}

int si_block_device_size(const char *path, unsigned long long *bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        r = -errno;
    } else if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        r = end < 0 ? -errno : 1;
        if (end >= 0)
            *bytes = (unsigned long long)end;
    }
    close(fd);
    return r;
}

int si_make_temp_dir(const char *dir, const char *prefix, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.", dir, prefix);
    if (n < 0 || (size_t)n + 7 > cap) {
        if (cap)
            out[0] = '\0';
        return -ENAMETOOLONG;
    }
    memset(out + n, 'X', 6); /* the part mkdtemp replaces */
    out[n + 6] = '\0';
    if (!mkdtemp(out)) {
        int e = errno;
        out[0] = '\0';
        return -e;
    }
    return 0;
}
