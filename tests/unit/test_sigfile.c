/* test_sigfile.c - signature file parsing, formatting, signing files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fsutil.h"
#include "key.h"
#include "sigfile.h"

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define STANZA_A "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature AAECAw==\n"

struct fixture {
    char dir[64];
    si_key *k1, *k2;
    si_sigfile sf; /* scratch: too big for comfortable stack use */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/si-sigfile-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    if (si_key_generate(SI_KEY_ECDSA_P256, 0, &f->k1, NULL) != SI_OK ||
        si_key_generate(SI_KEY_ECDSA_P256, 0, &f->k2, NULL) != SI_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    si_key_free(f->k1);
    si_key_free(f->k2);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static si_result parse(struct fixture *f, const char *text, si_err *err)
{
    return si_sigfile_parse(text, strlen(text), &f->sf, err);
}

static void parse_good(void **state)
{
    struct fixture *f = *state;
    si_err err = {0};
    assert_int_equal(parse(f, STANZA_A, &err), SI_OK);
    assert_int_equal(f->sf.count, 1);
    assert_string_equal(f->sf.stanzas[0].key_id, ID_A);
    assert_string_equal(f->sf.stanzas[0].algorithm, SI_ALG_ECDSA_P256);
    assert_int_equal(f->sf.stanzas[0].sig_len, 4);
    assert_memory_equal(f->sf.stanzas[0].sig, "\x00\x01\x02\x03", 4);

    /* two stanzas, blank lines around, upper-case hex, no final newline */
    const char *two = "\n" STANZA_A "\n\nsysimage-signature 1\nkey-id "
                      "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"
                      "algorithm rsa-pss-sha256\nsignature /w==";
    assert_int_equal(parse(f, two, &err), SI_OK);
    assert_int_equal(f->sf.count, 2);
    assert_string_equal(f->sf.stanzas[1].key_id,
                        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_string_equal(f->sf.stanzas[1].algorithm, SI_ALG_RSA_PSS);
    assert_int_equal(f->sf.stanzas[1].sig_len, 1);
    assert_int_equal(f->sf.stanzas[1].sig[0], 0xff);

    /* an algorithm this version does not know parses (it never verifies) */
    assert_int_equal(parse(f, "sysimage-signature 1\nkey-id " ID_A
                              "\nalgorithm ed25519\nsignature AA==\n" STANZA_A,
                           &err),
                     SI_OK);
    assert_int_equal(f->sf.count, 2);
    assert_string_equal(f->sf.stanzas[0].algorithm, "ed25519");
    assert_int_equal(parse(f, two, &err), SI_OK);

    /* format then parse gives the same stanzas */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(si_sigfile_format(&f->sf, &text, &len, &err), SI_OK);
    assert_int_equal(strlen(text), len);
    si_sigfile *again = calloc(1, sizeof(*again));
    assert_non_null(again);
    assert_int_equal(si_sigfile_parse(text, len, again, &err), SI_OK);
    assert_int_equal(again->count, 2);
    assert_memory_equal(again->stanzas, f->sf.stanzas, 2 * sizeof(si_sig_stanza));
    free(again);
    free(text);
}

/* Each bad input fails with the expected code and names the line. */
static void expect_bad(struct fixture *f, const char *text, si_result code, const char *needle)
{
    si_err err = {0};
    si_result r = parse(f, text, &err);
    if (r != code || (needle && !strstr(err.msg, needle)))
        fail_msg("input %.60s...: got %d '%s', want %d '%s'", text, r, err.msg, code,
                 needle ? needle : "");
    assert_int_equal(f->sf.count, 0);
}

static void parse_bad(void **state)
{
    struct fixture *f = *state;
    expect_bad(f, "", SI_ERR_PARSE, "no signature stanza");
    expect_bad(f, "\n\n", SI_ERR_PARSE, "no signature stanza");
    expect_bad(f, "sysimage-signature 2\n", SI_ERR_PARSE, "line 1");
    expect_bad(f, "garbage\x01\xff", SI_ERR_PARSE, "line 1");
    expect_bad(f, "sysimage-signature 1\nkey-id abc\n", SI_ERR_PARSE, "line 2: key-id");
    expect_bad(f,
               "sysimage-signature 1\nkey-id "
               "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n",
               SI_ERR_PARSE, "line 2: key-id is not hex");
    expect_bad(f, "sysimage-signature 1\nalgorithm ecdsa-p256-sha256\n", SI_ERR_PARSE, "line 2");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm Ed25519!\nsignature AA==\n",
               SI_ERR_PARSE, "line 3: algorithm name");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm \nsignature AA==\n",
               SI_ERR_PARSE, "line 3");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A
                  "\nalgorithm a-very-long-algorithm-name-indeed-yes\nsignature AA==\n",
               SI_ERR_PARSE, "line 3: algorithm name longer");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature AA*=\n",
               SI_ERR_PARSE, "line 4: signature is not base64");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature AAA\n",
               SI_ERR_PARSE, "line 4: signature is not valid base64");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature =AAA\n",
               SI_ERR_PARSE, "line 4");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature \n",
               SI_ERR_PARSE, "line 4");
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\nalgorithm ecdsa-p256-sha256\nsignature A A=\n",
               SI_ERR_PARSE, "line 4");
    /* truncated stanzas */
    expect_bad(f, "sysimage-signature 1\nkey-id " ID_A "\n", SI_ERR_PARSE, "truncated");
    expect_bad(f, STANZA_A "sysimage-signature 1\n", SI_ERR_PARSE, "line 6: truncated");
    /* blank line inside a stanza, CRLF, trailing junk */
    expect_bad(f, "sysimage-signature 1\n\nkey-id " ID_A "\n", SI_ERR_PARSE, "line 2");
    expect_bad(f, "sysimage-signature 1\r\n", SI_ERR_PARSE, "line 1");
    expect_bad(f, STANZA_A "junk\n", SI_ERR_PARSE, "line 5");
    /* NUL byte */
    si_err err = {0};
    char nul[] = STANZA_A;
    nul[5] = '\0';
    assert_int_equal(si_sigfile_parse(nul, sizeof(nul) - 1, &f->sf, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void too_many_and_too_large(void **state)
{
    struct fixture *f = *state;
    si_err err = {0};
    size_t one = strlen(STANZA_A);
    char *buf = malloc(one * (SI_SIGFILE_MAX_STANZAS + 1) + 1);
    assert_non_null(buf);
    buf[0] = '\0';
    for (int i = 0; i < SI_SIGFILE_MAX_STANZAS; i++)
        strcat(buf, STANZA_A);
    assert_int_equal(parse(f, buf, &err), SI_OK);
    assert_int_equal(f->sf.count, SI_SIGFILE_MAX_STANZAS);
    strcat(buf, STANZA_A);
    assert_int_equal(parse(f, buf, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "stanzas"));
    free(buf);

    /* signature longer than SI_KEY_MAX_SIG_LEN bytes */
    size_t b64 = 4 * ((SI_KEY_MAX_SIG_LEN + 3) / 3) + 8;
    char *longsig = malloc(200 + b64);
    assert_non_null(longsig);
    int n = sprintf(longsig, "sysimage-signature 1\nkey-id " ID_A
                             "\nalgorithm rsa-pss-sha256\nsignature ");
    memset(longsig + n, 'Q', b64);
    strcpy(longsig + n + b64, "\n");
    assert_int_equal(parse(f, longsig, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "longer"));
    free(longsig);

    /* whole file over the limit */
    size_t big = SI_SIGFILE_MAX_BYTES + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '\n', big);
    assert_int_equal(si_sigfile_parse(huge, big, &f->sf, &err), SI_ERR_TOO_LARGE);
    char path[128];
    snprintf(path, sizeof(path), "%s/huge.sig", f->dir);
    assert_int_equal(si_write_file_atomic(path, huge, big, 0644), 0);
    free(huge);
    assert_int_equal(si_sigfile_read(path, &f->sf, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "huge.sig"));
    snprintf(path, sizeof(path), "%s/absent.sig", f->dir);
    assert_int_equal(si_sigfile_read(path, &f->sf, &err), SI_ERR_MISSING_FILE);
}

static int verifies(const si_sigfile *sf, const si_key *k, const uint8_t d[SI_SHA256_LEN])
{
    for (size_t i = 0; i < sf->count; i++)
        if (strcmp(sf->stanzas[i].key_id, si_key_id(k)) == 0 &&
            si_key_verify_digest(k, sf->stanzas[i].algorithm, d, sf->stanzas[i].sig,
                                 sf->stanzas[i].sig_len) == SI_OK)
            return 1;
    return 0;
}

static void sign_files_and_append(void **state)
{
    struct fixture *f = *state;
    si_err err = {0};
    char path[128], sigpath[160];
    snprintf(path, sizeof(path), "%s/data", f->dir);
    snprintf(sigpath, sizeof(sigpath), "%s.sig", path);
    assert_int_equal(si_write_file_atomic(path, "data\n", 5, 0644), 0);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf("data\n", 5, d);

    /* append without an existing .sig creates it */
    assert_int_equal(si_sign_file(path, f->k1, true, &err), SI_OK);
    assert_int_equal(si_sigfile_read(sigpath, &f->sf, &err), SI_OK);
    assert_int_equal(f->sf.count, 1);
    assert_true(verifies(&f->sf, f->k1, d));
    uint8_t first_sig[SI_KEY_MAX_SIG_LEN];
    memcpy(first_sig, f->sf.stanzas[0].sig, f->sf.stanzas[0].sig_len);

    /* a second key appends; the same key again replaces its stanza */
    assert_int_equal(si_sign_file(path, f->k2, true, &err), SI_OK);
    assert_int_equal(si_sign_file(path, f->k1, true, &err), SI_OK);
    assert_int_equal(si_sigfile_read(sigpath, &f->sf, &err), SI_OK);
    assert_int_equal(f->sf.count, 2);
    assert_string_equal(f->sf.stanzas[0].key_id, si_key_id(f->k2));
    assert_string_equal(f->sf.stanzas[1].key_id, si_key_id(f->k1));
    assert_true(verifies(&f->sf, f->k1, d));
    assert_true(verifies(&f->sf, f->k2, d));

    /* without --append the file is replaced */
    assert_int_equal(si_sign_file(path, f->k2, false, &err), SI_OK);
    assert_int_equal(si_sigfile_read(sigpath, &f->sf, &err), SI_OK);
    assert_int_equal(f->sf.count, 1);
    assert_false(verifies(&f->sf, f->k1, d));

    /* the data changes: the old signature no longer verifies */
    assert_int_equal(si_write_file_atomic(path, "date\n", 5, 0644), 0);
    si_sha256_buf("date\n", 5, d);
    assert_false(verifies(&f->sf, f->k2, d));

    /* appending to a corrupt .sig is refused and leaves it alone */
    assert_int_equal(si_write_file_atomic(sigpath, "junk\n", 5, 0644), 0);
    assert_int_equal(si_sign_file(path, f->k1, true, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "data.sig"));

    /* appending to a full file is refused */
    char *full = malloc(strlen(STANZA_A) * SI_SIGFILE_MAX_STANZAS + 1);
    assert_non_null(full);
    full[0] = '\0';
    for (int i = 0; i < SI_SIGFILE_MAX_STANZAS; i++)
        strcat(full, STANZA_A);
    assert_int_equal(si_write_file_atomic(sigpath, full, strlen(full), 0644), 0);
    free(full);
    assert_int_equal(si_sign_file(path, f->k1, true, &err), SI_ERR_TOO_LARGE);

    /* a public key cannot sign; a missing file is reported */
    char *pem = NULL;
    si_key *pub = NULL;
    assert_int_equal(si_key_public_pem(f->k1, &pem, NULL), SI_OK);
    assert_int_equal(si_key_load_public_pem(pem, strlen(pem), &pub, NULL), SI_OK);
    free(pem);
    assert_int_equal(si_sign_file(path, pub, false, &err), SI_ERR_BAD_KEY);
    si_key_free(pub);
    snprintf(path, sizeof(path), "%s/nothing", f->dir);
    assert_int_equal(si_sign_file(path, f->k1, false, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "nothing"));
}

static void format_rejects_empty(void **state)
{
    struct fixture *f = *state;
    char *text = NULL;
    si_err err = {0};
    f->sf.count = 0;
    assert_int_not_equal(si_sigfile_format(&f->sf, &text, NULL, &err), SI_OK);
    uint8_t d[SI_SHA256_LEN] = {0};
    assert_int_equal(si_sigfile_add(&f->sf, f->k1, d, &err), SI_OK);
    f->sf.stanzas[0].sig_len = 0;
    assert_int_not_equal(si_sigfile_format(&f->sf, &text, NULL, &err), SI_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(too_many_and_too_large),
        cmocka_unit_test(sign_files_and_append),
        cmocka_unit_test(format_rejects_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
