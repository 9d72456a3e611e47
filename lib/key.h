/* key.h - public/private keys: ECDSA P-256 and RSA >= 2048 (PSS).
 *
 * Keys are PEM (SubjectPublicKeyInfo for public keys; SEC1/PKCS#8/PKCS#1 for
 * private keys). A key id is the lowercase hex SHA-256 of the DER
 * SubjectPublicKeyInfo. Signatures: ECDSA as DER (what `openssl dgst -sha256
 * -sign` writes); RSA as PSS/SHA-256 with a 32-byte salt, any salt length
 * accepted when verifying. */
#ifndef SI_KEY_H
#define SI_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "sha256.h"

#define SI_KEY_ID_LEN 64          /* hex chars, without NUL */
#define SI_KEY_MAX_SIG_LEN 1024   /* RSA up to 8192 bits */
#define SI_KEY_MIN_RSA_BITS 2048

#define SI_ALG_ECDSA_P256 "ecdsa-p256-sha256"
#define SI_ALG_RSA_PSS "rsa-pss-sha256"

typedef enum si_key_type { SI_KEY_ECDSA_P256 = 1, SI_KEY_RSA = 2 } si_key_type;

typedef struct si_key si_key; /* opaque */

/* pem need not be NUL-terminated. */
si_result si_key_load_public_pem(const char *pem, size_t len, si_key **out, si_err *err);
si_result si_key_load_public_file(const char *path, si_key **out, si_err *err);
si_result si_key_load_private_file(const char *path, si_key **out, si_err *err);
/* rsa_bits is ignored for ECDSA; RSA requires >= 2048. */
si_result si_key_generate(si_key_type type, unsigned rsa_bits, si_key **out, si_err *err);
/* malloc'd NUL-terminated PEM text. */
si_result si_key_public_pem(const si_key *k, char **pem_out, si_err *err);
si_result si_key_private_pem(const si_key *k, char **pem_out, si_err *err);

const char *si_key_id(const si_key *k);         /* 64 lowercase hex chars */
si_key_type si_key_get_type(const si_key *k);
const char *si_key_algorithm(const si_key *k);  /* SI_ALG_* */
bool si_key_is_private(const si_key *k);

si_result si_key_sign_digest(const si_key *priv, const uint8_t digest[SI_SHA256_LEN],
                             uint8_t *sig, size_t sig_cap, size_t *sig_len, si_err *err);
/* SI_OK when sig is a valid signature of digest by pub with algorithm;
 * SI_ERR_BAD_SIGNATURE otherwise (also when algorithm does not fit the key). */
si_result si_key_verify_digest(const si_key *pub, const char *algorithm,
                               const uint8_t digest[SI_SHA256_LEN],
                               const uint8_t *sig, size_t sig_len);
void si_key_free(si_key *k);

#endif
