/* test_key.c - key loading, ids, ECDSA P-256 and RSA-PSS sign/verify. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include "fsutil.h"
#include "key.h"
#include "testkey.h"
#include "testutil.h"

struct fixture {
    char dir[64];
    si_key *ec;  /* private */
    si_key *ec2; /* another private key */
    si_key *rsa; /* private, 2048 bits: generated once, slow under ASan */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (tu_tmpdir(f->dir, "key") != 0)
        return -1;
    si_err err = {0};
    if (si_key_generate(SI_KEY_ECDSA_P256, 0, &f->ec, &err) != SI_OK ||
        si_key_generate(SI_KEY_ECDSA_P256, 0, &f->ec2, &err) != SI_OK ||
        si_key_generate(SI_KEY_RSA, 2048, &f->rsa, &err) != SI_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    si_key_free(f->ec);
    si_key_free(f->ec2);
    si_key_free(f->rsa);
    int rc = tu_rmtree(f->dir);
    free(f);
    return rc;
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(si_write_file_atomic(path, text, strlen(text), 0600), 0);
}

static void ids_and_pem_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *id = si_key_id(f->ec);
    assert_int_equal(strlen(id), SI_KEY_ID_LEN);
    for (const char *p = id; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    assert_string_not_equal(id, si_key_id(f->ec2));
    assert_true(si_key_is_private(f->ec));
    assert_int_equal(si_key_get_type(f->ec), SI_KEY_ECDSA_P256);
    assert_string_equal(si_key_algorithm(f->ec), SI_ALG_ECDSA_P256);
    assert_int_equal(si_key_get_type(f->rsa), SI_KEY_RSA);
    assert_string_equal(si_key_algorithm(f->rsa), SI_ALG_RSA_PSS);

    si_key *pub = public_of(f->ec);
    assert_string_equal(si_key_id(pub), id);
    assert_false(si_key_is_private(pub));
    char *pem = NULL;
    si_err err = {0};
    assert_int_equal(si_key_private_pem(pub, &pem, &err), SI_ERR_BAD_KEY);
    si_key_free(pub);

    /* private key through a file, NUL-free PEM not needed by the caller */
    char path[128];
    snprintf(path, sizeof(path), "%s/ec.key", f->dir);
    assert_int_equal(si_key_private_pem(f->ec, &pem, NULL), SI_OK);
    assert_non_null(strstr(pem, "PRIVATE KEY"));
    write_text(path, pem);
    free(pem);
    si_key *loaded = NULL;
    assert_int_equal(si_key_load_private_file(path, &loaded, &err), SI_OK);
    assert_true(si_key_is_private(loaded));
    assert_string_equal(si_key_id(loaded), id);
    si_key_free(loaded);

    /* public key file; the id of the RSA key survives a round trip too */
    pub = public_of(f->rsa);
    assert_string_equal(si_key_id(pub), si_key_id(f->rsa));
    si_key_free(pub);
    assert_int_equal(si_key_public_pem(f->rsa, &pem, NULL), SI_OK);
    snprintf(path, sizeof(path), "%s/rsa.pub", f->dir);
    write_text(path, pem);
    /* pem need not be NUL-terminated: pass a copy without the NUL */
    size_t n = strlen(pem);
    char *raw = malloc(n);
    assert_non_null(raw);
    memcpy(raw, pem, n);
    free(pem);
    assert_int_equal(si_key_load_public_pem(raw, n, &pub, NULL), SI_OK);
    free(raw);
    assert_string_equal(si_key_id(pub), si_key_id(f->rsa));
    si_key_free(pub);
    assert_int_equal(si_key_load_public_file(path, &pub, NULL), SI_OK);
    si_key_free(pub);
}

static void sign_verify(const si_key *priv, const si_key *other)
{
    uint8_t digest[SI_SHA256_LEN], sig[SI_KEY_MAX_SIG_LEN];
    size_t len = 0;
    si_sha256_buf("payload", 7, digest);
    si_err err = {0};
    assert_int_equal(si_key_sign_digest(priv, digest, sig, sizeof(sig), &len, &err), SI_OK);
    si_key *pub = public_of(priv);
    const char *alg = si_key_algorithm(priv);
    assert_int_equal(si_key_verify_digest(pub, alg, digest, sig, len), SI_OK);
    assert_int_equal(si_key_verify_digest(priv, alg, digest, sig, len), SI_OK);
    /* tampered digest */
    uint8_t d2[SI_SHA256_LEN];
    memcpy(d2, digest, sizeof(d2));
    d2[5] ^= 1;
    assert_int_equal(si_key_verify_digest(pub, alg, d2, sig, len), SI_ERR_BAD_SIGNATURE);
    /* tampered signature */
    uint8_t bad[SI_KEY_MAX_SIG_LEN];
    memcpy(bad, sig, len);
    bad[len - 3] ^= 0x40;
    assert_int_equal(si_key_verify_digest(pub, alg, digest, bad, len), SI_ERR_BAD_SIGNATURE);
    /* truncated, extended, empty, garbage */
    assert_int_equal(si_key_verify_digest(pub, alg, digest, sig, len - 1), SI_ERR_BAD_SIGNATURE);
    memcpy(bad, sig, len);
    bad[len] = 0;
    assert_int_equal(si_key_verify_digest(pub, alg, digest, bad, len + 1), SI_ERR_BAD_SIGNATURE);
    assert_int_equal(si_key_verify_digest(pub, alg, digest, sig, 0), SI_ERR_BAD_SIGNATURE);
    memset(bad, 0x30, len);
    assert_int_equal(si_key_verify_digest(pub, alg, digest, bad, len), SI_ERR_BAD_SIGNATURE);
    /* wrong key */
    assert_int_equal(si_key_verify_digest(other, si_key_algorithm(other), digest, sig, len),
                     SI_ERR_BAD_SIGNATURE);
    /* wrong algorithm name for this key */
    const char *wrong = strcmp(alg, SI_ALG_RSA_PSS) == 0 ? SI_ALG_ECDSA_P256 : SI_ALG_RSA_PSS;
    assert_int_equal(si_key_verify_digest(pub, wrong, digest, sig, len), SI_ERR_BAD_SIGNATURE);
    assert_int_equal(si_key_verify_digest(pub, "sha1", digest, sig, len), SI_ERR_BAD_SIGNATURE);
    /* a public key cannot sign */
    assert_int_equal(si_key_sign_digest(pub, digest, sig, sizeof(sig), &len, &err), SI_ERR_BAD_KEY);
    /* signature buffer too small */
    assert_int_not_equal(si_key_sign_digest(priv, digest, sig, 8, &len, &err), SI_OK);
    si_key_free(pub);
}

static void ecdsa_sign_verify(void **state)
{
    struct fixture *f = *state;
    sign_verify(f->ec, f->ec2);
}

static void rsa_sign_verify(void **state)
{
    struct fixture *f = *state;
    sign_verify(f->rsa, f->ec);
    uint8_t digest[SI_SHA256_LEN], sig[SI_KEY_MAX_SIG_LEN];
    size_t len = 0;
    si_sha256_buf("x", 1, digest);
    assert_int_equal(si_key_sign_digest(f->rsa, digest, sig, sizeof(sig), &len, NULL), SI_OK);
    assert_int_equal(len, 256);
    /* an ECDSA key never accepts the RSA signature */
    assert_int_equal(si_key_verify_digest(f->ec, SI_ALG_ECDSA_P256, digest, sig, len),
                     SI_ERR_BAD_SIGNATURE);
}

static int test_rng(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

/* Signatures made outside si_key: PSS with other salt lengths must verify,
 * PKCS#1 v1.5 must not. */
static void rsa_any_salt_and_no_pkcs1(void **state)
{
    struct fixture *f = *state;
    char *pem = NULL;
    assert_int_equal(si_key_private_pem(f->rsa, &pem, NULL), SI_OK);
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    assert_int_equal(mbedtls_pk_parse_key(&pk, (unsigned char *)pem, strlen(pem) + 1, NULL, 0), 0);
    free(pem);
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(pk);
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
    uint8_t digest[SI_SHA256_LEN], sig[256];
    si_sha256_buf("salty", 5, digest);
    si_key *pub = public_of(f->rsa);
    int salts[] = {0, 20, 32, 222};
    for (size_t i = 0; i < sizeof(salts) / sizeof(salts[0]); i++) {
        assert_int_equal(mbedtls_rsa_rsassa_pss_sign_ext(rsa, test_rng, NULL, MBEDTLS_MD_SHA256,
                                                         SI_SHA256_LEN, digest, salts[i], sig),
                         0);
        assert_int_equal(si_key_verify_digest(pub, SI_ALG_RSA_PSS, digest, sig, sizeof(sig)),
                         SI_OK);
    }
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_SHA256);
    assert_int_equal(mbedtls_rsa_pkcs1_sign(rsa, test_rng, NULL, MBEDTLS_RSA_PRIVATE,
                                            MBEDTLS_MD_SHA256, SI_SHA256_LEN, digest, sig),
                     0);
    assert_int_equal(si_key_verify_digest(pub, SI_ALG_RSA_PSS, digest, sig, sizeof(sig)),
                     SI_ERR_BAD_SIGNATURE);
    si_key_free(pub);
    mbedtls_pk_free(&pk);
}

/* Write a public key PEM made directly with mbedtls (other curves, small RSA). */
static char *foreign_public_pem(int curve, unsigned rsa_bits)
{
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ctr_drbg_init(&drbg);
    assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, test_rng, NULL, NULL, 0), 0);
    if (rsa_bits) {
        assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
        assert_int_equal(mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg,
                                             rsa_bits, 65537),
                         0);
    } else {
        assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
        assert_int_equal(mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(pk), mbedtls_ctr_drbg_random,
                                             &drbg),
                         0);
    }
    char *buf = calloc(1, 4096);
    assert_non_null(buf);
    assert_int_equal(mbedtls_pk_write_pubkey_pem(&pk, (unsigned char *)buf, 4096), 0);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_pk_free(&pk);
    return buf;
}

static void bad_keys(void **state)
{
    struct fixture *f = *state;
    si_key *k = NULL;
    si_err err = {0};
    const char *garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert_int_equal(si_key_load_public_pem(garbage, strlen(garbage), &k, &err), SI_ERR_BAD_KEY);
    assert_int_equal(si_key_load_public_pem("hello", 5, &k, &err), SI_ERR_BAD_KEY);
    assert_int_equal(si_key_load_public_pem("", 0, &k, &err), SI_ERR_BAD_KEY);

    char *p384 = foreign_public_pem(MBEDTLS_ECP_DP_SECP384R1, 0);
    assert_int_equal(si_key_load_public_pem(p384, strlen(p384), &k, &err), SI_ERR_BAD_KEY);
    assert_non_null(strstr(err.msg, "P-256"));
    free(p384);
    char *rsa1024 = foreign_public_pem(0, 1024);
    assert_int_equal(si_key_load_public_pem(rsa1024, strlen(rsa1024), &k, &err), SI_ERR_BAD_KEY);
    assert_non_null(strstr(err.msg, "1024"));
    free(rsa1024);

    /* oversized */
    size_t big = 70 * 1024;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 'A', big);
    memcpy(huge, "-----BEGIN PUBLIC KEY-----\n", 27);
    assert_int_equal(si_key_load_public_pem(huge, big, &k, &err), SI_ERR_TOO_LARGE);
    char path[128];
    snprintf(path, sizeof(path), "%s/huge.pub", f->dir);
    assert_int_equal(si_write_file_atomic(path, huge, big, 0644), 0);
    free(huge);
    assert_int_equal(si_key_load_public_file(path, &k, &err), SI_ERR_TOO_LARGE);
    assert_int_equal(si_key_load_private_file(path, &k, &err), SI_ERR_TOO_LARGE);

    /* missing files name the path */
    snprintf(path, sizeof(path), "%s/none.key", f->dir);
    assert_int_equal(si_key_load_private_file(path, &k, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, "none.key"));
    assert_int_equal(si_key_load_public_file(path, &k, &err), SI_ERR_IO);

    /* a public key is not a private key */
    char *pem = NULL;
    assert_int_equal(si_key_public_pem(f->ec, &pem, NULL), SI_OK);
    snprintf(path, sizeof(path), "%s/ec.pub", f->dir);
    write_text(path, pem);
    free(pem);
    assert_int_equal(si_key_load_private_file(path, &k, &err), SI_ERR_BAD_KEY);
    assert_non_null(strstr(err.msg, "ec.pub"));

    /* RSA below 2048 bits cannot be generated */
    assert_int_equal(si_key_generate(SI_KEY_RSA, 1024, &k, &err), SI_ERR_USAGE);
    assert_int_equal(si_key_generate((si_key_type)7, 0, &k, &err), SI_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_and_pem_roundtrip),
        cmocka_unit_test(ecdsa_sign_verify),
        cmocka_unit_test(rsa_sign_verify),
        cmocka_unit_test(rsa_any_salt_and_no_pkcs1),
        cmocka_unit_test(bad_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
