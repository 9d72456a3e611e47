/* sigfile.h - detached signature files (docs/design.md §3).
 *
 *   sysimage-signature 1
 *   key-id <64 hex>
 *   algorithm ecdsa-p256-sha256 | rsa-pss-sha256
 *   signature <base64>
 *
 * One or more stanzas (each starting with the "sysimage-signature 1" line,
 * blank lines between stanzas allowed). The signed digest is SHA-256 of the
 * signed file's bytes. An algorithm name this version does not know
 * ([a-z0-9-]) parses but never verifies. */
#ifndef SI_SIGFILE_H
#define SI_SIGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "result.h"

#define SI_SIGFILE_MAX_BYTES (64 * 1024)
#define SI_SIGFILE_MAX_STANZAS 16

typedef struct si_sig_stanza {
    char key_id[SI_KEY_ID_LEN + 1];
    char algorithm[32];
    uint8_t sig[SI_KEY_MAX_SIG_LEN];
    size_t sig_len;
} si_sig_stanza;

typedef struct si_sigfile {
    size_t count;
    si_sig_stanza stanzas[SI_SIGFILE_MAX_STANZAS];
} si_sigfile;

/* Parse untrusted bytes; errors name the line. */
si_result si_sigfile_parse(const char *buf, size_t len, si_sigfile *out, si_err *err);
si_result si_sigfile_read(const char *path, si_sigfile *out, si_err *err);
/* malloc'd text of all stanzas. */
si_result si_sigfile_format(const si_sigfile *sf, char **out, size_t *len, si_err *err);
si_result si_sigfile_write(const char *path, const si_sigfile *sf, si_err *err); /* atomic */
/* Append a stanza signing digest with priv. */
si_result si_sigfile_add(si_sigfile *sf, const si_key *priv, const uint8_t digest[SI_SHA256_LEN],
                         si_err *err);
/* Sign FILE into FILE.sig (append: keep existing stanzas, replacing one by
 * the same key). */
si_result si_sign_file(const char *path, const si_key *priv, bool append, si_err *err);

#endif
