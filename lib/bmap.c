/* bmap.c - bmaptool's block map (format 2.0) of a sparse image. */
#include "bmap.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "sha256.h"
#include "sparse.h"

#define READ_BUF (1024 * 1024)
/* bmaptool's format: BmapFileChecksum is the sha256 of the whole bmap file
 * with that field's 64 hex digits set to '0' while it is computed. */
#define CSUM_FIELD "<BmapFileChecksum> "
#define CSUM_ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

struct text {
    char *p;
    size_t len, cap;
};

static int text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return 0;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(t->p, cap);
        if (!q)
            return -1;
        t->p = q;
        t->cap = cap;
    }
}

struct map_ctx {
    int fd;
    struct text ranges;
    uint64_t mapped;
    char *buf;
    const char *image;
    si_err *err;
};

static void hex(const uint8_t *d, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int map_range(uint64_t start, uint64_t len, void *p)
{
    struct map_ctx *c = p;
    si_sha256 h;
    si_sha256_init(&h);
    for (uint64_t off = start; off < start + len;) {
        size_t n = start + len - off > READ_BUF ? READ_BUF : (size_t)(start + len - off);
        ssize_t r = pread(c->fd, c->buf, n, (off_t)off);
        if (r <= 0) {
            si_err_set(c->err, SI_ERR_IO, "%s: read: %s", c->image, r < 0 ? strerror(errno) : "short");
            return -1;
        }
        si_sha256_update(&h, c->buf, (size_t)r);
        off += (uint64_t)r;
    }
    uint8_t d[SI_SHA256_LEN];
    si_sha256_final(&h, d);
    char x[65];
    hex(d, x);
    uint64_t first = start / SI_BMAP_BLOCK, last = (start + len - 1) / SI_BMAP_BLOCK;
    int rc = first == last
                 ? text_add(&c->ranges, "        <Range chksum=\"%s\"> %llu </Range>\n", x,
                            (unsigned long long)first)
                 : text_add(&c->ranges, "        <Range chksum=\"%s\"> %llu-%llu </Range>\n", x,
                            (unsigned long long)first, (unsigned long long)last);
    if (rc != 0) {
        si_err_set(c->err, SI_ERR_NOMEM, "bmap: out of memory");
        return -1;
    }
    c->mapped += last - first + 1;
    return 0;
}

si_result si_bmap_write(const char *image, const char *bmap_path, si_bmap_stats *stats, si_err *err)
{
    int fd = open(image, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", image, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: %s", image, strerror(errno));
    }
    struct map_ctx c = {.fd = fd, .image = image, .err = err};
    c.buf = malloc(READ_BUF);
    si_result rc = SI_OK;
    if (!c.buf) {
        rc = si_err_set(err, SI_ERR_NOMEM, "bmap: out of memory");
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    if ((rc = si_sparse_walk(fd, size, SI_BMAP_BLOCK, map_range, &c, err)) != SI_OK)
        goto out;
    uint64_t blocks = (size + SI_BMAP_BLOCK - 1) / SI_BMAP_BLOCK;
    struct text t = {0};
    int bad = text_add(&t,
                       "<?xml version=\"1.0\" ?>\n"
                       "<!-- Block map of a sysimage factory disk image (sysimage image).\n"
                       "     Write it with: bmaptool copy IMAGE DEVICE -->\n"
                       "<bmap version=\"2.0\">\n"
                       "    <ImageSize> %llu </ImageSize>\n"
                       "    <BlockSize> %d </BlockSize>\n"
                       "    <BlocksCount> %llu </BlocksCount>\n"
                       "    <MappedBlocksCount> %llu </MappedBlocksCount>\n"
                       "    <ChecksumType> sha256 </ChecksumType>\n"
                       "    " CSUM_FIELD CSUM_ZEROS " </BmapFileChecksum>\n"
                       "    <BlockMap>\n%s    </BlockMap>\n</bmap>\n",
                       (unsigned long long)size, SI_BMAP_BLOCK, (unsigned long long)blocks,
                       (unsigned long long)c.mapped, c.ranges.p ? c.ranges.p : "");
    if (bad) {
        free(t.p);
        rc = si_err_set(err, SI_ERR_NOMEM, "bmap: out of memory");
        goto out;
    }
    /* the file's checksum is taken with the field all zeros, then put in */
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf(t.p, t.len, d);
    char x[65];
    hex(d, x);
    memcpy(strstr(t.p, CSUM_FIELD) + strlen(CSUM_FIELD), x, 64);
    int r = si_write_file_atomic(bmap_path, t.p, t.len, 0644);
    free(t.p);
    if (r < 0) {
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", bmap_path, strerror(-r));
        goto out;
    }
    if (stats)
        *stats = (si_bmap_stats){.image_size = size, .mapped_blocks = c.mapped, .blocks = blocks};
out:
    free(c.ranges.p);
    free(c.buf);
    close(fd);
    return rc;
}
