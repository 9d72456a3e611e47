/* patch.h - per-file binary patches of delta update tarballs (docs/formats.md,
 * "Patch members").
 *
 * A patch is a 96-byte header followed by exactly one zstd frame that
 * rebuilds the new content with the old content as its prefix (zstd
 * "patch-from": ZSTD_CCtx_refPrefix / ZSTD_DCtx_refPrefix):
 *
 *   0   8  magic "SIPATCH1"
 *   8   4  algorithm, u32 little-endian: 1 = zstd patch-from
 *   12  4  reserved, 0
 *   16  8  old size, u64 LE        24  8  new size, u64 LE
 *   32 32  sha256 of the old content
 *   64 32  sha256 of the new content
 *   96     the zstd frame (content size = new size, window <= 2^27), nothing after
 *
 * Both sizes are at most SI_PATCH_MAX_BYTES, so the frame's window
 * (old + new) fits in 2^27 bytes, zstd's default decoder limit. The decoder
 * writes straight into the caller's output buffer (ZSTD_d_stableOutBuffer:
 * no window buffer of its own) and reads the old content from the caller's
 * buffer: with both mapped from files, a patch needs about 200 KiB of heap
 * whatever the file sizes. */
#ifndef SI_PATCH_H
#define SI_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_PATCH_MAGIC "SIPATCH1"
#define SI_PATCH_HEADER_SIZE 96
#define SI_PATCH_ALGO_ZSTD 1
/* Largest old or new file a patch is built for; larger files are shipped whole. */
#define SI_PATCH_MAX_BYTES ((uint64_t)64 << 20)
#define SI_PATCH_WINDOW_LOG_MAX 27
/* zstd level of patches built by `sysimage build delta`. */
#define SI_PATCH_LEVEL 19

typedef struct si_patch_header {
    uint32_t algorithm;
    uint64_t old_size, new_size;
    uint8_t old_sha256[32], new_sha256[32];
} si_patch_header;

/* Parse and check a header (magic, algorithm, reserved, size bounds). */
si_result si_patch_header_parse(const void *buf, size_t len, si_patch_header *h, si_err *err);
void si_patch_header_write(const si_patch_header *h, uint8_t out[SI_PATCH_HEADER_SIZE]);

/* Build a patch (header + frame, malloc'd into *out) that turns old into
 * new. SI_ERR_TOO_LARGE when a side is over SI_PATCH_MAX_BYTES. */
si_result si_patch_make(const void *old, size_t oldlen, const void *new_, size_t newlen, int level,
                        uint8_t **out, size_t *outlen, si_err *err);

/* Size of buf compressed alone with zstd at level (what shipping the file
 * whole costs, about); SIZE_MAX when out of memory. */
size_t si_patch_whole_estimate(const void *buf, size_t len, int level);

/* Streaming decoder. Feed the member's bytes in order; once the header is
 * complete, si_patch_dec_state() is SI_PATCH_NEED_TARGET: give the old
 * content and an output buffer of new_size bytes (both must stay valid and
 * unchanged until the end), then keep feeding. */
typedef enum si_patch_state {
    SI_PATCH_HEADER,        /* collecting the header */
    SI_PATCH_NEED_TARGET,   /* header parsed, call si_patch_dec_set_target() */
    SI_PATCH_FRAME,         /* decoding */
    SI_PATCH_DONE,          /* frame complete */
} si_patch_state;

typedef struct si_patch_dec si_patch_dec;

si_patch_dec *si_patch_dec_new(void);
void si_patch_dec_free(si_patch_dec *d);
/* name: for messages (e.g. the member name). Resets the decoder. */
void si_patch_dec_reset(si_patch_dec *d, const char *name);
si_patch_state si_patch_dec_state(const si_patch_dec *d);
const si_patch_header *si_patch_dec_header(const si_patch_dec *d);
/* old: old_size bytes (may be NULL when 0); out: new_size bytes. */
si_result si_patch_dec_set_target(si_patch_dec *d, const void *old, void *out, si_err *err);
/* Consume up to len bytes; *used gets how many (stops after the header). */
si_result si_patch_dec_feed(si_patch_dec *d, const void *in, size_t len, size_t *used,
                            si_err *err);
/* The frame is complete, exactly new_size bytes came out and their sha256
 * is the header's new digest. */
si_result si_patch_dec_finish(si_patch_dec *d, si_err *err);

/* One line of a delta's `patched` member, without its '\n':
 * "<old sha256 hex> <new sha256 hex> system/<path>". *path points into line. */
si_result si_patch_list_line_parse(const char *line, uint8_t old_sha[32], uint8_t new_sha[32],
                                   const char **path, si_err *err);

#endif
