/* sha256.h - streaming SHA-256 of buffers, file descriptors and files. */
#ifndef SI_SHA256_H
#define SI_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>

#define SI_SHA256_LEN 32
#define SI_SHA256_HEX_LEN 64

typedef struct si_sha256 {
    struct sha256_ctx ctx;   /* nettle: SHA-NI when the CPU has it (3.6x mbedTLS here) */
} si_sha256;

void si_sha256_init(si_sha256 *h);
void si_sha256_update(si_sha256 *h, const void *buf, size_t len);
/* Writes the digest and releases the context. */
void si_sha256_final(si_sha256 *h, uint8_t out[SI_SHA256_LEN]);

void si_sha256_buf(const void *buf, size_t len, uint8_t out[SI_SHA256_LEN]);
/* Hash everything readable from fd (streamed in fixed-size chunks); *size_out
 * (may be NULL) gets the byte count. Returns 0 or -errno. */
int si_sha256_fd(int fd, uint8_t out[SI_SHA256_LEN], uint64_t *size_out);
int si_sha256_file(const char *path, uint8_t out[SI_SHA256_LEN], uint64_t *size_out);

/* Lowercase hex; out must hold 2*len+1 bytes. */
void si_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decode exactly 2*outlen hex digits (either case). 0 or -EINVAL. */
int si_hex_decode(const char *hex, uint8_t *out, size_t outlen);

#endif
