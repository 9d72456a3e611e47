/* patch.c - build, parse and decode per-file binary patches (see patch.h). */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer */
#include "patch.h"

#include "sha256.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct si_patch_dec {
    ZSTD_DCtx *dctx;
    const char *name;
    si_patch_state state;
    uint8_t hdr[SI_PATCH_HEADER_SIZE];
    size_t hdrlen;
    si_patch_header h;
    uint8_t *out;
    size_t outpos;
    si_sha256 sha;
    bool sha_live;
};

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

si_result si_patch_header_parse(const void *buf, size_t len, si_patch_header *h, si_err *err)
{
    const uint8_t *p = buf;
    if (len < SI_PATCH_HEADER_SIZE)
        return si_err_set(err, SI_ERR_PARSE, "patch header truncated (%zu of %d bytes)", len,
                          SI_PATCH_HEADER_SIZE);
    if (memcmp(p, SI_PATCH_MAGIC, 8) != 0)
        return si_err_set(err, SI_ERR_PARSE, "not a patch (bad magic)");
    h->algorithm = get32(p + 8);
    if (h->algorithm != SI_PATCH_ALGO_ZSTD)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "patch algorithm %u unknown", h->algorithm);
    if (get32(p + 12) != 0)
        return si_err_set(err, SI_ERR_PARSE, "patch header: reserved field is not 0");
    h->old_size = get64(p + 16);
    h->new_size = get64(p + 24);
    if (h->old_size > SI_PATCH_MAX_BYTES || h->new_size > SI_PATCH_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE,
                          "patch sizes %llu -> %llu: over the %llu-byte limit",
                          (unsigned long long)h->old_size, (unsigned long long)h->new_size,
                          (unsigned long long)SI_PATCH_MAX_BYTES);
    memcpy(h->old_sha256, p + 32, 32);
    memcpy(h->new_sha256, p + 64, 32);
    return SI_OK;
}

void si_patch_header_write(const si_patch_header *h, uint8_t out[SI_PATCH_HEADER_SIZE])
{
    memcpy(out, SI_PATCH_MAGIC, 8);
    put32(out + 8, h->algorithm);
    put32(out + 12, 0);
    put64(out + 16, h->old_size);
    put64(out + 24, h->new_size);
    memcpy(out + 32, h->old_sha256, 32);
    memcpy(out + 64, h->new_sha256, 32);
}

/* Smallest window log covering old + new (the frame may refer back across
 * the whole prefix from the last output byte). */
static int window_log(uint64_t span)
{
    int wl = ZSTD_WINDOWLOG_MIN;
    while (wl < SI_PATCH_WINDOW_LOG_MAX && ((uint64_t)1 << wl) < span)
        wl++;
    return wl;
}

si_result si_patch_make(const void *old, size_t oldlen, const void *new_, size_t newlen, int level,
                        uint8_t **out, size_t *outlen, si_err *err)
{
    *out = NULL;
    *outlen = 0;
    if (oldlen > SI_PATCH_MAX_BYTES || newlen > SI_PATCH_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "patch: %zu -> %zu bytes: over the limit",
                          oldlen, newlen);
    size_t bound = ZSTD_compressBound(newlen);
    uint8_t *buf = malloc(SI_PATCH_HEADER_SIZE + bound);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!buf || !c) {
        free(buf);
        ZSTD_freeCCtx(c);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (patch)");
    }
    int wl = window_log((uint64_t)oldlen + newlen);
    size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level > 0 ? level : SI_PATCH_LEVEL);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wl);
    if (!ZSTD_isError(r) && wl >= 24)
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r) && oldlen)
        r = ZSTD_CCtx_refPrefix(c, old, oldlen);
    if (!ZSTD_isError(r))
        r = ZSTD_compress2(c, buf + SI_PATCH_HEADER_SIZE, bound, new_, newlen);
    ZSTD_freeCCtx(c);
    if (ZSTD_isError(r)) {
        free(buf);
        return si_err_set(err, SI_ERR_INTERNAL, "patch: zstd: %s", ZSTD_getErrorName(r));
    }
    si_patch_header h = {.algorithm = SI_PATCH_ALGO_ZSTD, .old_size = oldlen, .new_size = newlen};
    si_sha256_buf(old, oldlen, h.old_sha256);
    si_sha256_buf(new_, newlen, h.new_sha256);
    si_patch_header_write(&h, buf);
    *out = buf;
    *outlen = SI_PATCH_HEADER_SIZE + r;
    return SI_OK;
}

size_t si_patch_whole_estimate(const void *buf, size_t len, int level)
{
    size_t bound = ZSTD_compressBound(len);
    void *dst = malloc(bound ? bound : 1);
    if (!dst)
        return SIZE_MAX;
    size_t r = ZSTD_compress(dst, bound, buf, len, level);
    free(dst);
    return ZSTD_isError(r) ? SIZE_MAX : r;
}

si_patch_dec *si_patch_dec_new(void)
{
    si_patch_dec *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->dctx = ZSTD_createDCtx();
    if (!d->dctx) {
        free(d);
        return NULL;
    }
    d->name = "patch";
    return d;
}

static void drop_sha(si_patch_dec *d)
{
    if (d->sha_live) {
        uint8_t dummy[32];
        si_sha256_final(&d->sha, dummy);
        d->sha_live = false;
    }
}

void si_patch_dec_free(si_patch_dec *d)
{
    if (!d)
        return;
    drop_sha(d);
    ZSTD_freeDCtx(d->dctx);
    free(d);
}

void si_patch_dec_reset(si_patch_dec *d, const char *name)
{
    drop_sha(d);
    ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_and_parameters);
    d->name = name ? name : "patch";
    d->state = SI_PATCH_HEADER;
    d->hdrlen = 0;
    d->out = NULL;
    d->outpos = 0;
}

si_patch_state si_patch_dec_state(const si_patch_dec *d)
{
    return d->state;
}

const si_patch_header *si_patch_dec_header(const si_patch_dec *d)
{
    return &d->h;
}

si_result si_patch_dec_set_target(si_patch_dec *d, const void *old, void *out, si_err *err)
{
    if (d->state != SI_PATCH_NEED_TARGET)
        return si_err_set(err, SI_ERR_INTERNAL, "%s: patch target set out of order", d->name);
    size_t r = ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax, SI_PATCH_WINDOW_LOG_MAX);
    if (!ZSTD_isError(r))
        r = ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_stableOutBuffer, 1);
    if (!ZSTD_isError(r) && d->h.old_size)
        r = ZSTD_DCtx_refPrefix(d->dctx, old, (size_t)d->h.old_size);
    if (ZSTD_isError(r))
        return si_err_set(err, SI_ERR_INTERNAL, "%s: zstd: %s", d->name, ZSTD_getErrorName(r));
    d->out = out;
    d->outpos = 0;
    si_sha256_init(&d->sha);
    d->sha_live = true;
    d->state = SI_PATCH_FRAME;
    return SI_OK;
}

si_result si_patch_dec_feed(si_patch_dec *d, const void *in, size_t len, size_t *used,
                            si_err *err)
{
    const uint8_t *p = in;
    *used = 0;
    if (d->state == SI_PATCH_HEADER) {
        size_t n = SI_PATCH_HEADER_SIZE - d->hdrlen;
        if (n > len)
            n = len;
        memcpy(d->hdr + d->hdrlen, p, n);
        d->hdrlen += n;
        *used = n;
        if (d->hdrlen == SI_PATCH_HEADER_SIZE) {
            si_result rc = si_patch_header_parse(d->hdr, d->hdrlen, &d->h, err);
            if (rc != SI_OK)
                return si_err_prefix(err, "%s", d->name);
            d->state = SI_PATCH_NEED_TARGET;
        }
        return SI_OK;
    }
    if (d->state == SI_PATCH_NEED_TARGET)
        return si_err_set(err, SI_ERR_INTERNAL, "%s: patch data before its target", d->name);
    if (d->state == SI_PATCH_DONE) {
        if (len)
            return si_err_set(err, SI_ERR_PARSE, "%s: bytes after the patch's frame", d->name);
        return SI_OK;
    }
    ZSTD_inBuffer ib = {in, len, 0};
    ZSTD_outBuffer ob = {d->out, (size_t)d->h.new_size, d->outpos};
    while (ib.pos < ib.size) {
        size_t before = ob.pos, inbefore = ib.pos;
        size_t r = ZSTD_decompressStream(d->dctx, &ob, &ib);
        if (ZSTD_isError(r))
            return si_err_set(err, SI_ERR_PARSE, "%s: patch frame: %s", d->name,
                              ZSTD_getErrorName(r));
        if (ob.pos > before)
            si_sha256_update(&d->sha, d->out + before, ob.pos - before);
        if (r == 0) {
            d->state = SI_PATCH_DONE;
            break;
        }
        if (ob.pos == before && ib.pos == inbefore) {
            /* no progress: the output is full, the frame is longer than announced */
            return si_err_set(err, SI_ERR_PARSE, "%s: patch frame produces more than %llu bytes",
                              d->name, (unsigned long long)d->h.new_size);
        }
    }
    d->outpos = ob.pos;
    *used = ib.pos;
    if (d->state == SI_PATCH_DONE && ib.pos < ib.size)
        return si_err_set(err, SI_ERR_PARSE, "%s: bytes after the patch's frame", d->name);
    return SI_OK;
}

si_result si_patch_dec_finish(si_patch_dec *d, si_err *err)
{
    if (d->state != SI_PATCH_DONE)
        return si_err_set(err, SI_ERR_PARSE, "%s: patch truncated", d->name);
    if (d->outpos != d->h.new_size)
        return si_err_set(err, SI_ERR_PARSE, "%s: patch gives %zu bytes, its header says %llu",
                          d->name, d->outpos, (unsigned long long)d->h.new_size);
    uint8_t got[32];
    si_sha256_final(&d->sha, got);
    d->sha_live = false;
    if (memcmp(got, d->h.new_sha256, 32) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: the patched result does not have the sha256 the patch names",
                          d->name);
    return SI_OK;
}

si_result si_patch_list_line_parse(const char *line, uint8_t old_sha[32], uint8_t new_sha[32],
                                   const char **path, si_err *err)
{
    size_t len = strlen(line);
    if (len < 64 + 1 + 64 + 1 + 1 || line[64] != ' ' || line[129] != ' ')
        return si_err_set(err, SI_ERR_PARSE, "patched: line is not '<old sha256> <new sha256> "
                                             "system/<path>'");
    if (si_hex_decode(line, old_sha, 32) < 0 || si_hex_decode(line + 65, new_sha, 32) < 0)
        return si_err_set(err, SI_ERR_PARSE, "patched: bad sha256 in '%.140s'", line);
    *path = line + 130;
    return SI_OK;
}
