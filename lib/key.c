/* key.c - ECDSA P-256 and RSA-PSS keys on mbedTLS (docs/design.md §3).
 *
 * No global state: every operation that needs randomness seeds its own
 * CTR_DRBG from getrandom(2) and frees it before returning. */
#include "key.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include "fsutil.h"

#define SI_KEY_PEM_MAX (64 * 1024)
#define SI_KEY_MAX_RSA_BITS (SI_KEY_MAX_SIG_LEN * 8)
#define SI_KEY_DER_MAX 4096
#define SI_KEY_PEM_OUT_MAX 16384

struct si_key {
    mbedtls_pk_context pk;
    si_key_type type;
    bool priv;
    char id[SI_KEY_ID_LEN + 1];
};

/* ---------------------------------------------------------------- RNG */

typedef struct si_rng {
    mbedtls_ctr_drbg_context drbg;
} si_rng;

static int getrandom_entropy(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    while (len > 0) {
        ssize_t r = getrandom(buf, len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static si_result rng_init(si_rng *rng, si_err *err)
{
    static const unsigned char pers[] = "sysimage-key";
    mbedtls_ctr_drbg_init(&rng->drbg);
    int rc = mbedtls_ctr_drbg_seed(&rng->drbg, getrandom_entropy, NULL, pers, sizeof(pers) - 1);
    if (rc != 0) {
        mbedtls_ctr_drbg_free(&rng->drbg);
        return si_err_set(err, SI_ERR_INTERNAL, "random generator: seeding from getrandom failed (-0x%04x)",
                          (unsigned)-rc);
    }
    return SI_OK;
}

static void rng_free(si_rng *rng)
{
    mbedtls_ctr_drbg_free(&rng->drbg);
}

/* ---------------------------------------------------------------- helpers */

static si_key *key_alloc(void)
{
    si_key *k = calloc(1, sizeof(*k));
    if (k)
        mbedtls_pk_init(&k->pk);
    return k;
}

void si_key_free(si_key *k)
{
    if (!k)
        return;
    mbedtls_pk_free(&k->pk);
    mbedtls_platform_zeroize(k, sizeof(*k));
    free(k);
}

/* Check the algorithm and size of a freshly parsed key, compute its id. */
static si_result key_finish(si_key *k, const char *what, si_err *err)
{
    mbedtls_pk_type_t t = mbedtls_pk_get_type(&k->pk);
    if (t == MBEDTLS_PK_ECKEY || t == MBEDTLS_PK_ECDSA) {
        const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
        if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1)
            return si_err_set(err, SI_ERR_BAD_KEY, "%s: elliptic curve key is not P-256", what);
        k->type = SI_KEY_ECDSA_P256;
    } else if (t == MBEDTLS_PK_RSA) {
        size_t bits = mbedtls_pk_get_bitlen(&k->pk);
        if (bits < SI_KEY_MIN_RSA_BITS || bits > SI_KEY_MAX_RSA_BITS)
            return si_err_set(err, SI_ERR_BAD_KEY, "%s: RSA key of %zu bits (need %d to %d)", what,
                              bits, SI_KEY_MIN_RSA_BITS, SI_KEY_MAX_RSA_BITS);
        mbedtls_rsa_set_padding(mbedtls_pk_rsa(k->pk), MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
        k->type = SI_KEY_RSA;
    } else {
        return si_err_set(err, SI_ERR_BAD_KEY, "%s: unsupported key algorithm %s", what,
                          mbedtls_pk_get_name(&k->pk));
    }
    unsigned char der[SI_KEY_DER_MAX];
    int n = mbedtls_pk_write_pubkey_der(&k->pk, der, sizeof(der));
    if (n <= 0)
        return si_err_set(err, SI_ERR_BAD_KEY, "%s: cannot encode public key (-0x%04x)", what,
                          (unsigned)-n);
    uint8_t digest[SI_SHA256_LEN];
    /* mbedtls writes DER at the end of the buffer. */
    si_sha256_buf(der + sizeof(der) - (size_t)n, (size_t)n, digest);
    si_hex_encode(digest, sizeof(digest), k->id);
    return SI_OK;
}

/* mbedtls wants PEM NUL-terminated with the NUL counted in the length. */
static unsigned char *nul_terminated(const char *buf, size_t len)
{
    unsigned char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    return copy;
}

/* ---------------------------------------------------------------- loading */

static si_result load_public(const char *pem, size_t len, const char *what, si_key **out,
                             si_err *err)
{
    if (len > SI_KEY_PEM_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: public key larger than %d bytes", what,
                          SI_KEY_PEM_MAX);
    if (len < 11 || memmem(pem, len, "-----BEGIN ", 11) == NULL)
        return si_err_set(err, SI_ERR_BAD_KEY, "%s: not a PEM public key", what);
    unsigned char *copy = nul_terminated(pem, len);
    si_key *k = key_alloc();
    if (!copy || !k) {
        free(copy);
        si_key_free(k);
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", what);
    }
    int rc = mbedtls_pk_parse_public_key(&k->pk, copy, len + 1);
    free(copy);
    if (rc != 0) {
        si_key_free(k);
        return si_err_set(err, SI_ERR_BAD_KEY, "%s: invalid public key (-0x%04x)", what,
                          (unsigned)-rc);
    }
    si_result r = key_finish(k, what, err);
    if (r != SI_OK) {
        si_key_free(k);
        return r;
    }
    *out = k;
    return SI_OK;
}

si_result si_key_load_public_pem(const char *pem, size_t len, si_key **out, si_err *err)
{
    return load_public(pem, len, "public key", out, err);
}

/* A private key from PEM or DER text (si_read_file NUL-terminates buf:
 * PEM needs the NUL counted); `what` names it in errors. */
static si_result load_private(const char *buf, size_t len, const char *what, si_key **out,
                              si_err *err)
{
    si_key *k = key_alloc();
    if (!k)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", what);
    size_t plen = memmem(buf, len, "-----BEGIN ", 11) ? len + 1 : len;
    int rc = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)buf, plen, NULL, 0);
    if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        si_key_free(k);
        return si_err_set(err, SI_ERR_BAD_KEY,
                          "%s: encrypted private keys are not supported (decrypt it first)", what);
    }
    if (rc != 0) {
        si_key_free(k);
        return si_err_set(err, SI_ERR_BAD_KEY, "%s: not a usable private key (-0x%04x)", what,
                          (unsigned)-rc);
    }
    k->priv = true;
    si_result r = key_finish(k, what, err);
    if (r != SI_OK) {
        si_key_free(k);
        return r;
    }
    *out = k;
    return SI_OK;
}

/* A key file of at most SI_KEY_PEM_MAX bytes read by `load`; the text is
 * wiped before it is freed (it may be a private key). */
static si_result load_file(const char *path,
                           si_result (*load)(const char *buf, size_t len, const char *what,
                                             si_key **out, si_err *err),
                           si_key **out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = si_read_file(path, SI_KEY_PEM_MAX, &buf, &len);
    if (rc == -EFBIG)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %d bytes", path, SI_KEY_PEM_MAX);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    si_result r = load(buf, len, path, out, err);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    return r;
}

si_result si_key_load_public_file(const char *path, si_key **out, si_err *err)
{
    return load_file(path, load_public, out, err);
}

si_result si_key_load_private_file(const char *path, si_key **out, si_err *err)
{
    return load_file(path, load_private, out, err);
}

si_result si_key_generate(si_key_type type, unsigned rsa_bits, si_key **out, si_err *err)
{
    if (type == SI_KEY_RSA && (rsa_bits < SI_KEY_MIN_RSA_BITS || rsa_bits > SI_KEY_MAX_RSA_BITS))
        return si_err_set(err, SI_ERR_USAGE, "RSA key size %u bits: need %d to %d", rsa_bits,
                          SI_KEY_MIN_RSA_BITS, SI_KEY_MAX_RSA_BITS);
    if (type != SI_KEY_RSA && type != SI_KEY_ECDSA_P256)
        return si_err_set(err, SI_ERR_USAGE, "unknown key type %d", (int)type);
    si_key *k = key_alloc();
    if (!k)
        return si_err_set(err, SI_ERR_NOMEM, "key generation: out of memory");
    si_rng rng;
    si_result r = rng_init(&rng, err);
    if (r != SI_OK) {
        si_key_free(k);
        return r;
    }
    int rc;
    if (type == SI_KEY_RSA) {
        rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (rc == 0)
            rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), mbedtls_ctr_drbg_random, &rng.drbg,
                                     rsa_bits, 65537);
    } else {
        rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (rc == 0)
            rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk),
                                     mbedtls_ctr_drbg_random, &rng.drbg);
    }
    rng_free(&rng);
    if (rc != 0) {
        si_key_free(k);
        return si_err_set(err, SI_ERR_INTERNAL, "key generation failed (-0x%04x)", (unsigned)-rc);
    }
    k->priv = true;
    r = key_finish(k, "generated key", err);
    if (r != SI_OK) {
        si_key_free(k);
        return r;
    }
    *out = k;
    return SI_OK;
}

/* ---------------------------------------------------------------- export */

static si_result pem_out(const si_key *k, bool priv, char **pem_out, si_err *err)
{
    if (priv && !k->priv)
        return si_err_set(err, SI_ERR_BAD_KEY, "key %s: no private part", k->id);
    unsigned char *buf = malloc(SI_KEY_PEM_OUT_MAX);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, "key %s: out of memory", k->id);
    /* The write functions take a non-const context but do not modify it. */
    mbedtls_pk_context *pk = (mbedtls_pk_context *)&k->pk;
    int rc = priv ? mbedtls_pk_write_key_pem(pk, buf, SI_KEY_PEM_OUT_MAX)
                  : mbedtls_pk_write_pubkey_pem(pk, buf, SI_KEY_PEM_OUT_MAX);
    if (rc != 0) {
        mbedtls_platform_zeroize(buf, SI_KEY_PEM_OUT_MAX);
        free(buf);
        return si_err_set(err, SI_ERR_INTERNAL, "key %s: PEM encoding failed (-0x%04x)", k->id,
                          (unsigned)-rc);
    }
    size_t n = strlen((char *)buf);
    char *s = malloc(n + 1);
    if (s)
        memcpy(s, buf, n + 1);
    mbedtls_platform_zeroize(buf, SI_KEY_PEM_OUT_MAX);
    free(buf);
    if (!s)
        return si_err_set(err, SI_ERR_NOMEM, "key %s: out of memory", k->id);
    *pem_out = s;
    return SI_OK;
}

si_result si_key_public_pem(const si_key *k, char **pem, si_err *err)
{
    return pem_out(k, false, pem, err);
}

si_result si_key_private_pem(const si_key *k, char **pem, si_err *err)
{
    return pem_out(k, true, pem, err);
}

const char *si_key_id(const si_key *k)
{
    return k->id;
}

si_key_type si_key_get_type(const si_key *k)
{
    return k->type;
}

const char *si_key_algorithm(const si_key *k)
{
    return k->type == SI_KEY_RSA ? SI_ALG_RSA_PSS : SI_ALG_ECDSA_P256;
}

bool si_key_is_private(const si_key *k)
{
    return k->priv;
}

/* ---------------------------------------------------------------- sign/verify */

si_result si_key_sign_digest(const si_key *priv, const uint8_t digest[SI_SHA256_LEN], uint8_t *sig,
                             size_t sig_cap, size_t *sig_len, si_err *err)
{
    if (!priv->priv)
        return si_err_set(err, SI_ERR_BAD_KEY, "key %s: cannot sign with a public key", priv->id);
    si_rng rng;
    si_result r = rng_init(&rng, err);
    if (r != SI_OK)
        return r;
    int rc;
    size_t n = 0;
    if (priv->type == SI_KEY_RSA) {
        mbedtls_rsa_context *rsa = mbedtls_pk_rsa(priv->pk);
        n = mbedtls_rsa_get_len(rsa);
        if (n > sig_cap) {
            rng_free(&rng);
            return si_err_set(err, SI_ERR_INTERNAL, "key %s: signature of %zu bytes exceeds %zu",
                              priv->id, n, sig_cap);
        }
        rc = mbedtls_rsa_rsassa_pss_sign_ext(rsa, mbedtls_ctr_drbg_random, &rng.drbg,
                                             MBEDTLS_MD_SHA256, SI_SHA256_LEN, digest, 32, sig);
    } else {
        unsigned char tmp[MBEDTLS_ECDSA_MAX_LEN];
        rc = mbedtls_ecdsa_write_signature(mbedtls_pk_ec(priv->pk), MBEDTLS_MD_SHA256, digest,
                                           SI_SHA256_LEN, tmp, &n, mbedtls_ctr_drbg_random,
                                           &rng.drbg);
        if (rc == 0) {
            if (n > sig_cap) {
                rng_free(&rng);
                return si_err_set(err, SI_ERR_INTERNAL,
                                  "key %s: signature of %zu bytes exceeds %zu", priv->id, n,
                                  sig_cap);
            }
            memcpy(sig, tmp, n);
        }
    }
    rng_free(&rng);
    if (rc != 0)
        return si_err_set(err, SI_ERR_INTERNAL, "key %s: signing failed (-0x%04x)", priv->id,
                          (unsigned)-rc);
    *sig_len = n;
    return SI_OK;
}

si_result si_key_verify_digest(const si_key *pub, const char *algorithm,
                               const uint8_t digest[SI_SHA256_LEN], const uint8_t *sig,
                               size_t sig_len)
{
    if (!algorithm || strcmp(algorithm, si_key_algorithm(pub)) != 0 || sig_len == 0)
        return SI_ERR_BAD_SIGNATURE;
    int rc;
    if (pub->type == SI_KEY_RSA) {
        mbedtls_rsa_context *rsa = mbedtls_pk_rsa(pub->pk);
        if (sig_len != mbedtls_rsa_get_len(rsa))
            return SI_ERR_BAD_SIGNATURE;
        rc = mbedtls_rsa_rsassa_pss_verify_ext(rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC,
                                               MBEDTLS_MD_SHA256, SI_SHA256_LEN, digest,
                                               MBEDTLS_MD_SHA256, MBEDTLS_RSA_SALT_LEN_ANY, sig);
    } else {
        /* Rejects trailing bytes after the DER SEQUENCE as well. */
        rc = mbedtls_ecdsa_read_signature(mbedtls_pk_ec(pub->pk), digest, SI_SHA256_LEN, sig,
                                          sig_len);
    }
    return rc == 0 ? SI_OK : SI_ERR_BAD_SIGNATURE;
}
