/* sparse.c - data ranges of files with holes. */
#include "sparse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_BUF (1024 * 1024)

si_result si_sparse_walk(int fd, uint64_t size, uint64_t align, si_sparse_range_fn fn, void *ctx,
                         si_err *err)
{
    uint64_t pos = 0, run_start = 0, run_end = 0;
    int have = 0;
    while (pos < size) {
        off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO)
                break; /* only a hole is left */
            return si_err_set(err, SI_ERR_IO, "SEEK_DATA: %s", strerror(errno));
        }
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            return si_err_set(err, SI_ERR_IO, "SEEK_HOLE: %s", strerror(errno));
        uint64_t s = (uint64_t)d & ~(align - 1);
        uint64_t e = ((uint64_t)h + align - 1) & ~(align - 1);
        if (e > size)
            e = size;
        if (have && s <= run_end) {
            if (e > run_end)
                run_end = e;
        } else {
            if (have && fn(run_start, run_end - run_start, ctx))
                return SI_ERR_IO;
            run_start = s;
            run_end = e;
            have = 1;
        }
        pos = (uint64_t)h;
    }
    if (have && fn(run_start, run_end - run_start, ctx))
        return SI_ERR_IO;
    return SI_OK;
}

struct copy_ctx {
    int src, dst;
    uint64_t dst_off;
    char *buf;
    const char *name;
    si_err *err;
};

static int copy_range(uint64_t start, uint64_t len, void *p)
{
    struct copy_ctx *c = p;
    while (len) {
        size_t n = len > COPY_BUF ? COPY_BUF : (size_t)len;
        ssize_t r = pread(c->src, c->buf, n, (off_t)start);
        if (r <= 0) {
            si_err_set(c->err, SI_ERR_IO, "%s: read: %s", c->name, r < 0 ? strerror(errno) : "short");
            return -1;
        }
        for (ssize_t w = 0; w < r;) {
            ssize_t k = pwrite(c->dst, c->buf + w, (size_t)(r - w), (off_t)(c->dst_off + start + (uint64_t)w));
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                si_err_set(c->err, errno == ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: write: %s",
                           c->name, strerror(errno));
                return -1;
            }
            w += k;
        }
        start += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

si_result si_sparse_copy(const char *src, int dst_fd, uint64_t dst_off, uint64_t max, si_err *err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", src, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: %s", src, strerror(errno));
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return si_err_set(err, SI_ERR_NO_SPACE, "%s: %lld bytes do not fit in %llu", src,
                          (long long)st.st_size, (unsigned long long)max);
    }
    struct copy_ctx c = {.src = fd, .dst = dst_fd, .dst_off = dst_off, .name = src, .err = err};
    c.buf = malloc(COPY_BUF);
    if (!c.buf) {
        close(fd);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    si_result rc = si_sparse_walk(fd, (uint64_t)st.st_size, 512, copy_range, &c, err);
    if (rc != SI_OK && err && err->code == SI_OK)
        si_err_set(err, rc, "%s: copy failed", src);
    free(c.buf);
    close(fd);
    return rc == SI_OK ? SI_OK : err ? err->code : rc;
}
