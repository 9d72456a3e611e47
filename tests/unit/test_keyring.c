/* test_keyring.c - keyring JSON, signature verification with keyrings and
 * blacklists, keyring validation and the chain of trust. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "key.h"
#include "keyring.h"
#include "sigfile.h"
#include "testkey.h"
#include "testutil.h"

#define NOW 1700000000LL
#define DEVICE "qemu-x86_64"

enum { AM, IM, IS, DS, BL, OTHER, NKEYS };

struct fixture {
    char dir[64];
    si_key *k[NKEYS]; /* private keys */
    si_sigfile sf;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (tu_tmpdir(f->dir, "keyring") != 0)
        return -1;
    for (int i = 0; i < NKEYS; i++)
        if (si_key_generate(SI_KEY_ECDSA_P256, 0, &f->k[i], NULL) != SI_OK)
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < NKEYS; i++)
        si_key_free(f->k[i]);
    int rc = tu_rmtree(f->dir);
    free(f);
    return rc;
}

static si_keyring *ring(si_keyring_type type, const si_key *key, int64_t expiry, const char *model)
{
    si_keyring *kr = si_keyring_new(type);
    assert_non_null(kr);
    if (key)
        assert_int_equal(si_keyring_add_key(kr, public_of(key), NULL), SI_OK);
    kr->has_expiry = expiry != 0;
    kr->expiry = expiry;
    if (model)
        snprintf(kr->model, sizeof(kr->model), "%s", model);
    return kr;
}

static void path_of(const struct fixture *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

/* Write kr to dir/name and sign it with signer into dir/name.sig. */
static void write_ring(const struct fixture *f, const char *name, si_keyring *kr,
                       const si_key *signer)
{
    char path[256];
    path_of(f, name, path, sizeof(path));
    char *json = NULL;
    assert_int_equal(si_keyring_format(kr, &json, NULL), SI_OK);
    assert_int_equal(si_write_file_atomic(path, json, strlen(json), 0644), 0);
    free(json);
    si_err err = {0};
    if (signer)
        assert_int_equal(si_sign_file(path, signer, false, &err), SI_OK);
    si_keyring_free(kr);
}

static void write_text(const struct fixture *f, const char *name, const char *text)
{
    char path[256];
    path_of(f, name, path, sizeof(path));
    assert_int_equal(si_write_file_atomic(path, text, strlen(text), 0644), 0);
}

/* ---------------------------------------------------------------- JSON */

static void format_parse_roundtrip(void **state)
{
    struct fixture *f = *state;
    si_keyring *kr = ring(SI_KR_DEVICE_SIGNING, f->k[DS], NOW + 100, DEVICE);
    assert_int_equal(si_keyring_add_key(kr, public_of(f->k[OTHER]), NULL), SI_OK);
    si_err err = {0};
    si_key *dup = public_of(f->k[OTHER]);
    assert_int_equal(si_keyring_add_key(kr, dup, &err), SI_ERR_EXISTS);
    si_key_free(dup);
    char *json = NULL;
    assert_int_equal(si_keyring_format(kr, &json, &err), SI_OK);
    /* canonical: sorted keys, 4-space indent, trailing newline */
    assert_non_null(strstr(json, "{\n    \"expiry\": 1700000100,\n    \"format\": 1,\n    \"keys\": ["));
    assert_true(strstr(json, "\"model\"") < strstr(json, "\"type\""));
    assert_int_equal(json[strlen(json) - 1], '\n');
    si_keyring *back = NULL;
    assert_int_equal(si_keyring_parse(json, strlen(json), &back, &err), SI_OK);
    assert_int_equal(back->type, SI_KR_DEVICE_SIGNING);
    assert_true(back->has_expiry);
    assert_int_equal(back->expiry, NOW + 100);
    assert_string_equal(back->model, DEVICE);
    assert_int_equal(back->nkeys, 2);
    assert_true(si_keyring_has_key_id(back, si_key_id(f->k[DS])));
    assert_true(si_keyring_has_key_id(back, si_key_id(f->k[OTHER])));
    assert_false(si_keyring_has_key_id(back, si_key_id(f->k[IM])));
    free(json);
    si_keyring_free(back);
    si_keyring_free(kr);

    /* no expiry, no model, no keys */
    kr = si_keyring_new(SI_KR_BLACKLIST);
    assert_int_equal(si_keyring_format(kr, &json, &err), SI_OK);
    si_keyring_free(kr);
    assert_int_equal(si_keyring_parse(json, strlen(json), &kr, &err), SI_OK);
    assert_int_equal(kr->type, SI_KR_BLACKLIST);
    assert_false(kr->has_expiry);
    assert_string_equal(kr->model, "");
    assert_int_equal(kr->nkeys, 0);
    free(json);
    si_keyring_free(kr);

    si_keyring_type t;
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++) {
        assert_int_equal(si_keyring_type_parse(si_keyring_type_name((si_keyring_type)i), &t), SI_OK);
        assert_int_equal(t, i);
    }
    assert_int_equal(si_keyring_type_parse("image-sign", &t), SI_ERR_PARSE);
}

static void expect_parse_error(const char *json, si_result code, const char *needle)
{
    si_keyring *kr = NULL;
    si_err err = {0};
    si_result r = si_keyring_parse(json, strlen(json), &kr, &err);
    if (r != code || !strstr(err.msg, needle))
        fail_msg("%.80s: got %d '%s', want %d '%s'", json, r, err.msg, code, needle);
    assert_null(kr);
}

static void parse_errors_name_fields(void **state)
{
    struct fixture *f = *state;
    char *pem = NULL;
    assert_int_equal(si_key_public_pem(f->k[IS], &pem, NULL), SI_OK);
    /* JSON string of the PEM */
    char q[512];
    size_t j = 0;
    q[j++] = '"';
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') {
            q[j++] = '\\';
            q[j++] = 'n';
        } else {
            q[j++] = *p;
        }
    }
    q[j++] = '"';
    q[j] = '\0';
    free(pem);
    char buf[2048];

    expect_parse_error("not json", SI_ERR_PARSE, "keyring");
    expect_parse_error("[1]", SI_ERR_PARSE, "object");
    expect_parse_error("{\"type\": \"blacklist\", \"keys\": []}", SI_ERR_PARSE, "format");
    expect_parse_error("{\"format\": \"1\", \"type\": \"blacklist\", \"keys\": []}", SI_ERR_PARSE,
                       "format: expected");
    expect_parse_error("{\"format\": 2, \"type\": \"blacklist\", \"keys\": []}", SI_ERR_UNSUPPORTED,
                       "format");
    expect_parse_error("{\"format\": 1, \"keys\": []}", SI_ERR_PARSE, "type");
    expect_parse_error("{\"format\": 1, \"type\": 3, \"keys\": []}", SI_ERR_PARSE, "type: expected");
    expect_parse_error("{\"format\": 1, \"type\": \"root\", \"keys\": []}", SI_ERR_PARSE,
                       "type: unknown keyring type 'root'");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"expiry\": \"soon\", \"keys\": []}",
                       SI_ERR_PARSE, "expiry");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"expiry\": -5, \"keys\": []}",
                       SI_ERR_PARSE, "expiry");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"expiry\": 1.5, \"keys\": []}",
                       SI_ERR_PARSE, "expiry");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"model\": 7, \"keys\": []}",
                       SI_ERR_PARSE, "model");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"model\": \"\", \"keys\": []}",
                       SI_ERR_PARSE, "model");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\"}", SI_ERR_PARSE, "keys");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"keys\": {}}", SI_ERR_PARSE,
                       "keys: expected");
    snprintf(buf, sizeof(buf), "{\"format\": 1, \"type\": \"blacklist\", \"keys\": [%s, 5]}", q);
    expect_parse_error(buf, SI_ERR_PARSE, "keys[1]: expected string");
    expect_parse_error("{\"format\": 1, \"type\": \"blacklist\", \"keys\": [\"-----BEGIN PUBLIC "
                       "KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"]}",
                       SI_ERR_BAD_KEY, "keys[0]");
    snprintf(buf, sizeof(buf), "{\"format\": 1, \"type\": \"blacklist\", \"keys\": [%s, %s]}", q, q);
    expect_parse_error(buf, SI_ERR_PARSE, "keys[1]: duplicate");
    snprintf(buf, sizeof(buf), "{\"format\": 1, \"type\": \"blacklist\", \"keys\": []} x");
    expect_parse_error(buf, SI_ERR_PARSE, "trailing");

    /* too many keys */
    size_t cap = (SI_KEYRING_MAX_KEYS + 1) * (strlen(q) + 2) + 100;
    char *many = malloc(cap);
    assert_non_null(many);
    size_t n = (size_t)sprintf(many, "{\"format\": 1, \"type\": \"blacklist\", \"keys\": [");
    for (int i = 0; i <= SI_KEYRING_MAX_KEYS; i++)
        n += (size_t)sprintf(many + n, "%s%s", i ? "," : "", q);
    strcpy(many + n, "]}");
    expect_parse_error(many, SI_ERR_TOO_LARGE, "keys");
    free(many);

    /* oversized document */
    size_t big = SI_KEYRING_MAX_BYTES + 10;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    expect_parse_error(huge, SI_ERR_TOO_LARGE, "keyring");
    write_text(f, "huge.keyring", huge);
    free(huge);
    char path[256];
    path_of(f, "huge.keyring", path, sizeof(path));
    si_keyring *kr = NULL;
    si_err err = {0};
    assert_int_equal(si_keyring_load(path, &kr, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "huge.keyring"));
    path_of(f, "absent.keyring", path, sizeof(path));
    assert_int_equal(si_keyring_load(path, &kr, &err), SI_ERR_MISSING_FILE);
    /* a field error from a file names the file and the field */
    write_text(f, "bad.keyring", "{\"format\": 1, \"type\": \"blacklist\", \"keys\": 1}");
    path_of(f, "bad.keyring", path, sizeof(path));
    assert_int_equal(si_keyring_load(path, &kr, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "bad.keyring"));
    assert_non_null(strstr(err.msg, "keys"));
}

/* ---------------------------------------------------------------- verify */

static void sign_digest(struct fixture *f, const uint8_t *d, const si_key *a, const si_key *b)
{
    f->sf.count = 0;
    assert_int_equal(si_sigfile_add(&f->sf, a, d, NULL), SI_OK);
    if (b)
        assert_int_equal(si_sigfile_add(&f->sf, b, d, NULL), SI_OK);
}

static void verify_with_keyrings(void **state)
{
    struct fixture *f = *state;
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf("index", 5, d);
    si_keyring *is = ring(SI_KR_IMAGE_SIGNING, f->k[IS], 0, NULL);
    si_keyring *ds = ring(SI_KR_DEVICE_SIGNING, f->k[DS], 0, NULL);
    si_keyring *bl = ring(SI_KR_BLACKLIST, f->k[OTHER], 0, NULL);
    const si_keyring *both[] = {is, ds};
    si_signer who;
    si_err err = {0};

    /* unknown first stanza, good second one */
    sign_digest(f, d, f->k[IM], f->k[DS]);
    assert_int_equal(si_verify_digest(&f->sf, d, both, 2, bl, &who, &err), SI_OK);
    assert_string_equal(who.key_id, si_key_id(f->k[DS]));
    assert_int_equal(who.keyring_type, SI_KR_DEVICE_SIGNING);
    /* not trusted by image-signing alone */
    assert_int_equal(si_verify_digest(&f->sf, d, both, 1, bl, &who, &err), SI_ERR_BAD_SIGNATURE);
    /* tampered digest */
    uint8_t d2[SI_SHA256_LEN];
    memcpy(d2, d, sizeof(d2));
    d2[0] ^= 0x80;
    assert_int_equal(si_verify_digest(&f->sf, d2, both, 2, bl, &who, &err), SI_ERR_BAD_SIGNATURE);
    /* a stanza claiming a trusted key id with another key's signature */
    sign_digest(f, d, f->k[OTHER], NULL);
    memcpy(f->sf.stanzas[0].key_id, si_key_id(f->k[IS]), SI_KEY_ID_LEN + 1);
    assert_int_equal(si_verify_digest(&f->sf, d, both, 2, NULL, &who, &err), SI_ERR_BAD_SIGNATURE);
    /* wrong algorithm name for the key, unknown algorithm */
    sign_digest(f, d, f->k[IS], NULL);
    strcpy(f->sf.stanzas[0].algorithm, SI_ALG_RSA_PSS);
    assert_int_equal(si_verify_digest(&f->sf, d, both, 2, NULL, &who, &err), SI_ERR_BAD_SIGNATURE);
    strcpy(f->sf.stanzas[0].algorithm, "ecdsa-p256-sha512");
    assert_int_equal(si_verify_digest(&f->sf, d, both, 2, NULL, &who, &err), SI_ERR_BAD_SIGNATURE);
    /* ... but another stanza by a known algorithm still counts */
    assert_int_equal(si_sigfile_add(&f->sf, f->k[IS], d, NULL), SI_OK);
    assert_int_equal(si_verify_digest(&f->sf, d, both, 2, NULL, &who, &err), SI_OK);

    /* blacklisted signer: only it -> BLACKLISTED; plus a good one -> OK */
    si_keyring *is2 = ring(SI_KR_IMAGE_SIGNING, f->k[IS], 0, NULL);
    assert_int_equal(si_keyring_add_key(is2, public_of(f->k[OTHER]), NULL), SI_OK);
    const si_keyring *one[] = {is2};
    sign_digest(f, d, f->k[OTHER], NULL);
    assert_int_equal(si_verify_digest(&f->sf, d, one, 1, NULL, &who, &err), SI_OK);
    assert_int_equal(si_verify_digest(&f->sf, d, one, 1, bl, &who, &err), SI_ERR_BLACKLISTED);
    assert_non_null(strstr(err.msg, si_key_id(f->k[OTHER])));
    sign_digest(f, d, f->k[OTHER], f->k[IS]);
    assert_int_equal(si_verify_digest(&f->sf, d, one, 1, bl, &who, &err), SI_OK);
    assert_string_equal(who.key_id, si_key_id(f->k[IS]));

    /* files: signature beside the file, missing signature */
    char path[256], sig[300];
    path_of(f, "payload", path, sizeof(path));
    snprintf(sig, sizeof(sig), "%s.sig", path);
    write_text(f, "payload", "payload bytes");
    assert_int_equal(si_sign_file(path, f->k[IS], false, &err), SI_OK);
    assert_int_equal(si_verify_file(path, sig, both, 2, bl, &who, &err), SI_OK);
    assert_int_equal(who.keyring_type, SI_KR_IMAGE_SIGNING);
    write_text(f, "payload", "payload bytez");
    assert_int_equal(si_verify_file(path, sig, both, 2, bl, &who, &err), SI_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(err.msg, "payload"));
    path_of(f, "unsigned", path, sizeof(path));
    snprintf(sig, sizeof(sig), "%s.sig", path);
    write_text(f, "unsigned", "x");
    assert_int_equal(si_verify_file(path, sig, both, 2, bl, &who, &err), SI_ERR_MISSING_FILE);

    si_keyring_free(is);
    si_keyring_free(is2);
    si_keyring_free(ds);
    si_keyring_free(bl);
}

static void validate_single(void **state)
{
    struct fixture *f = *state;
    si_keyring *im = ring(SI_KR_IMAGE_MASTER, f->k[IM], 0, NULL);
    si_keyring *bl = ring(SI_KR_BLACKLIST, NULL, 0, NULL);
    si_keyring *is = ring(SI_KR_IMAGE_SIGNING, f->k[IS], NOW + 10, DEVICE);
    char *json = NULL;
    assert_int_equal(si_keyring_format(is, &json, NULL), SI_OK);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf(json, strlen(json), d);
    free(json);
    sign_digest(f, d, f->k[IM], NULL);
    si_err err = {0};
    const si_keyring_type T = SI_KR_IMAGE_SIGNING;

    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, bl, DEVICE, NOW, &err), SI_OK);
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, NULL, NULL, NOW + 9, &err), SI_OK);
    /* expired: expiry must be strictly later than now */
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, bl, DEVICE, NOW + 10, &err),
                     SI_ERR_KEYRING_EXPIRED);
    assert_non_null(strstr(err.msg, "expired"));
    /* wrong type expected */
    assert_int_equal(si_keyring_validate(is, d, &f->sf, SI_KR_DEVICE_SIGNING, im, bl, DEVICE, NOW,
                                         &err),
                     SI_ERR_KEYRING_TYPE);
    /* model mismatch */
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, bl, "other-board", NOW, &err),
                     SI_ERR_KEYRING_MODEL);
    assert_non_null(strstr(err.msg, "other-board"));
    /* missing parent, parent of the wrong type */
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, NULL, bl, DEVICE, NOW, &err),
                     SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "image-master"));
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, bl, bl, DEVICE, NOW, &err),
                     SI_ERR_KEYRING_TYPE);
    /* tampered keyring bytes */
    uint8_t d2[SI_SHA256_LEN];
    memcpy(d2, d, sizeof(d2));
    d2[31] ^= 1;
    assert_int_equal(si_keyring_validate(is, d2, &f->sf, T, im, bl, DEVICE, NOW, &err),
                     SI_ERR_BAD_SIGNATURE);
    /* signed by the wrong key */
    sign_digest(f, d, f->k[OTHER], NULL);
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, bl, DEVICE, NOW, &err),
                     SI_ERR_BAD_SIGNATURE);
    /* blacklisted signer */
    sign_digest(f, d, f->k[IM], NULL);
    assert_int_equal(si_keyring_add_key(bl, public_of(f->k[IM]), NULL), SI_OK);
    assert_int_equal(si_keyring_validate(is, d, &f->sf, T, im, bl, DEVICE, NOW, &err),
                     SI_ERR_BLACKLISTED);
    /* archive-master keyrings are never validated against a parent */
    si_keyring *am = ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, NULL);
    assert_int_equal(si_keyring_validate(am, d, &f->sf, SI_KR_ARCHIVE_MASTER, im, NULL, NULL, NOW,
                                         &err),
                     SI_ERR_KEYRING_TYPE);
    si_keyring_free(am);
    si_keyring_free(im);
    si_keyring_free(bl);
    si_keyring_free(is);
}

/* ---------------------------------------------------------------- chain */

static void write_hierarchy(struct fixture *f)
{
    write_ring(f, "image-master.keyring", ring(SI_KR_IMAGE_MASTER, f->k[IM], 0, NULL), f->k[AM]);
    write_ring(f, "image-signing.keyring", ring(SI_KR_IMAGE_SIGNING, f->k[IS], NOW + 1000, NULL),
               f->k[IM]);
    write_ring(f, "blacklist.keyring", ring(SI_KR_BLACKLIST, NULL, 0, NULL), f->k[IM]);
    write_ring(f, "device-signing.keyring",
               ring(SI_KR_DEVICE_SIGNING, f->k[DS], NOW + 100, DEVICE), f->k[IS]);
}

static si_result load(struct fixture *f, si_trust *t, const char *const *names, size_t n,
                      si_err *err)
{
    char paths[8][256], sigs[8][300];
    const char *pp[8], *sp[8];
    for (size_t i = 0; i < n; i++) {
        path_of(f, names[i], paths[i], sizeof(paths[i]));
        size_t l = strlen(paths[i]);
        memcpy(sigs[i], paths[i], l);
        memcpy(sigs[i] + l, ".sig", 5);
        pp[i] = paths[i];
        sp[i] = sigs[i];
    }
    return si_trust_load_files(t, pp, sp, n, err);
}

static void trust_start(struct fixture *f, si_trust *t, const char *device, int64_t now)
{
    si_trust_init(t, device, now);
    assert_int_equal(si_trust_set_archive_master(t, ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, NULL),
                                                 NULL),
                     SI_OK);
}

static void chain_any_order(void **state)
{
    struct fixture *f = *state;
    write_hierarchy(f);
    si_trust t;
    si_err err = {0};
    trust_start(f, &t, DEVICE, NOW);
    const char *order[] = {"device-signing.keyring", "blacklist.keyring", "image-signing.keyring",
                           "image-master.keyring"};
    assert_int_equal(load(f, &t, order, 4, &err), SI_OK);
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++)
        assert_non_null(t.ring[i]);

    /* purposes: device-signing may sign indexes and updates, not channels */
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf("channels", 8, d);
    si_signer who;
    sign_digest(f, d, f->k[DS], NULL);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_INDEX, d, &f->sf, &who, &err), SI_OK);
    assert_int_equal(who.keyring_type, SI_KR_DEVICE_SIGNING);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_UPDATE, d, &f->sf, &who, &err), SI_OK);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_CHANNELS, d, &f->sf, &who, &err),
                     SI_ERR_BAD_SIGNATURE);
    sign_digest(f, d, f->k[IS], NULL);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_CHANNELS, d, &f->sf, &who, &err), SI_OK);
    assert_int_equal(who.keyring_type, SI_KR_IMAGE_SIGNING);
    /* masters never sign payloads */
    sign_digest(f, d, f->k[IM], f->k[AM]);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_UPDATE, d, &f->sf, &who, &err),
                     SI_ERR_BAD_SIGNATURE);
    char path[256], sig[300];
    path_of(f, "index.json", path, sizeof(path));
    snprintf(sig, sizeof(sig), "%s.sig", path);
    write_text(f, "index.json", "{}\n");
    assert_int_equal(si_sign_file(path, f->k[DS], false, &err), SI_OK);
    assert_int_equal(si_trust_verify_file(&t, SI_PURPOSE_INDEX, path, sig, &who, &err), SI_OK);
    assert_int_equal(si_trust_verify_file(&t, SI_PURPOSE_CHANNELS, path, sig, &who, &err),
                     SI_ERR_BAD_SIGNATURE);
    /* a second image-signing keyring is refused */
    const char *again[] = {"image-signing.keyring"};
    assert_int_equal(load(f, &t, again, 1, &err), SI_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "image-signing.keyring"));
    si_trust_free(&t);

    /* loading in two steps works as well (parent already installed) */
    trust_start(f, &t, NULL, NOW);
    const char *first[] = {"image-master.keyring"};
    const char *second[] = {"image-signing.keyring", "device-signing.keyring"};
    assert_int_equal(load(f, &t, first, 1, &err), SI_OK);
    assert_int_equal(load(f, &t, second, 2, &err), SI_OK);
    assert_non_null(t.ring[SI_KR_DEVICE_SIGNING]);
    si_trust_free(&t);
}

static void expect_chain_error(struct fixture *f, const char *device, int64_t now,
                               const char *const *names, size_t n, si_result code,
                               const char *needle)
{
    si_trust t;
    si_err err = {0};
    trust_start(f, &t, device, now);
    si_result r = load(f, &t, names, n, &err);
    if (r != code || !strstr(err.msg, needle))
        fail_msg("got %d '%s', want %d '%s'", r, err.msg, code, needle);
    /* nothing of a failed batch is installed */
    for (int i = 1; i < SI_KR_TYPE_COUNT; i++)
        assert_null(t.ring[i]);
    si_trust_free(&t);
}

static void chain_failures(void **state)
{
    struct fixture *f = *state;
    write_hierarchy(f);
    const char *all[] = {"image-master.keyring", "image-signing.keyring", "blacklist.keyring",
                         "device-signing.keyring"};
    /* expired device-signing via now; model mismatch via device */
    expect_chain_error(f, DEVICE, NOW + 100, all, 4, SI_ERR_KEYRING_EXPIRED,
                       "device-signing.keyring");
    expect_chain_error(f, "other-board", NOW, all, 4, SI_ERR_KEYRING_MODEL,
                       "device-signing.keyring");
    /* missing parent */
    const char *orphan[] = {"device-signing.keyring", "image-master.keyring"};
    expect_chain_error(f, DEVICE, NOW, orphan, 2, SI_ERR_MISSING_FILE, "device-signing.keyring");
    /* duplicate type in one batch */
    const char *dup[] = {"image-master.keyring", "image-master.keyring"};
    expect_chain_error(f, DEVICE, NOW, dup, 2, SI_ERR_EXISTS, "second image-master");
    /* archive-master cannot be loaded from files */
    write_ring(f, "archive-master.keyring", ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, NULL), NULL);
    const char *am[] = {"archive-master.keyring"};
    expect_chain_error(f, DEVICE, NOW, am, 1, SI_ERR_KEYRING_TYPE, "archive-master.keyring");
    /* a validly signed blacklist served as image-signing.keyring */
    write_ring(f, "image-signing.keyring", ring(SI_KR_BLACKLIST, f->k[IS], 0, NULL), f->k[IM]);
    expect_chain_error(f, DEVICE, NOW, all, 4, SI_ERR_KEYRING_TYPE, "image-signing.keyring");
    /* image-signing signed by archive-master instead of image-master */
    write_ring(f, "image-signing.keyring", ring(SI_KR_IMAGE_SIGNING, f->k[IS], 0, NULL), f->k[AM]);
    expect_chain_error(f, DEVICE, NOW, all, 4, SI_ERR_BAD_SIGNATURE, "image-signing.keyring");
    /* tampered after signing */
    write_hierarchy(f);
    char path[256];
    path_of(f, "image-signing.keyring", path, sizeof(path));
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(" ", fp);
    fclose(fp);
    expect_chain_error(f, DEVICE, NOW, all, 4, SI_ERR_BAD_SIGNATURE, "image-signing.keyring");
    /* missing signature file */
    write_hierarchy(f);
    char sig[300];
    snprintf(sig, sizeof(sig), "%s.sig", path);
    assert_int_equal(unlink(sig), 0);
    expect_chain_error(f, DEVICE, NOW, all, 4, SI_ERR_MISSING_FILE, "image-signing.keyring.sig");
    /* blacklist naming the image-master key: image-signing (signed by it)
     * fails even though the blacklist comes last on the command line */
    write_hierarchy(f);
    write_ring(f, "blacklist.keyring", ring(SI_KR_BLACKLIST, f->k[IM], 0, NULL), f->k[IM]);
    const char *bl_last[] = {"image-signing.keyring", "image-master.keyring", "blacklist.keyring"};
    expect_chain_error(f, DEVICE, NOW, bl_last, 3, SI_ERR_BLACKLISTED, "image-signing.keyring");

    /* blacklist naming the image-signing key: chain loads, payloads fail */
    write_hierarchy(f);
    write_ring(f, "blacklist.keyring", ring(SI_KR_BLACKLIST, f->k[IS], 0, NULL), f->k[IM]);
    si_trust t;
    si_err err = {0};
    trust_start(f, &t, DEVICE, NOW);
    const char *three[] = {"blacklist.keyring", "image-master.keyring", "image-signing.keyring"};
    assert_int_equal(load(f, &t, three, 3, &err), SI_OK);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf("u", 1, d);
    sign_digest(f, d, f->k[IS], NULL);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_UPDATE, d, &f->sf, NULL, &err),
                     SI_ERR_BLACKLISTED);
    /* device-signing is signed by the blacklisted image-signing key */
    const char *ds[] = {"device-signing.keyring"};
    assert_int_equal(load(f, &t, ds, 1, &err), SI_ERR_BLACKLISTED);
    si_trust_free(&t);
}

/* Append a stanza by signer to dir/name.sig. */
static void cosign(const struct fixture *f, const char *name, const si_key *signer)
{
    char path[256];
    path_of(f, name, path, sizeof(path));
    assert_int_equal(si_sign_file(path, signer, true, NULL), SI_OK);
}

/* DESIGN §3: a keyring is refused when any key that signed it is on the
 * blacklist, image-master and the blacklist itself included. */
static void chain_blacklist_applies_to_masters(void **state)
{
    struct fixture *f = *state;
    const char *three[] = {"image-master.keyring", "blacklist.keyring", "image-signing.keyring"};
    char want[160];

    /* the archive-master key that signed image-master is blacklisted */
    write_hierarchy(f);
    write_ring(f, "blacklist.keyring", ring(SI_KR_BLACKLIST, f->k[AM], 0, NULL), f->k[IM]);
    snprintf(want, sizeof(want), "image-master.keyring: image-master keyring: signed by "
             "blacklisted archive-master key %s", si_key_id(f->k[AM]));
    expect_chain_error(f, DEVICE, NOW, three, 3, SI_ERR_BLACKLISTED, want);

    /* image-master holds IM and OTHER; the blacklist (signed by OTHER) names
     * IM: image-signing signed by both is refused, naming IM's key */
    si_keyring *im = ring(SI_KR_IMAGE_MASTER, f->k[IM], 0, NULL);
    assert_int_equal(si_keyring_add_key(im, public_of(f->k[OTHER]), NULL), SI_OK);
    write_ring(f, "image-master.keyring", im, f->k[AM]);
    write_ring(f, "blacklist.keyring", ring(SI_KR_BLACKLIST, f->k[IM], 0, NULL), f->k[OTHER]);
    cosign(f, "image-signing.keyring", f->k[OTHER]);
    snprintf(want, sizeof(want), "image-signing.keyring: image-signing keyring: signed by "
             "blacklisted image-master key %s", si_key_id(f->k[IM]));
    expect_chain_error(f, DEVICE, NOW, three, 3, SI_ERR_BLACKLISTED, want);

    /* ... re-signed by OTHER alone, the chain loads */
    write_ring(f, "image-signing.keyring", ring(SI_KR_IMAGE_SIGNING, f->k[IS], NOW + 1000, NULL),
               f->k[OTHER]);
    si_trust t;
    si_err err = {0};
    trust_start(f, &t, DEVICE, NOW);
    assert_int_equal(load(f, &t, three, 3, &err), SI_OK);
    si_trust_free(&t);

    /* the blacklist itself signed (also) by a key it blacklists */
    cosign(f, "blacklist.keyring", f->k[IM]);
    snprintf(want, sizeof(want), "blacklist.keyring: blacklist keyring: signed by "
             "blacklisted image-master key %s", si_key_id(f->k[IM]));
    expect_chain_error(f, DEVICE, NOW, three, 3, SI_ERR_BLACKLISTED, want);
}

static void archive_master_rules(void **state)
{
    struct fixture *f = *state;
    si_trust t;
    si_err err = {0};
    si_trust_init(&t, DEVICE, NOW);
    /* nothing loaded: nothing verifies */
    uint8_t d[SI_SHA256_LEN] = {0};
    sign_digest(f, d, f->k[IS], NULL);
    assert_int_equal(si_trust_verify_digest(&t, SI_PURPOSE_CHANNELS, d, &f->sf, NULL, &err),
                     SI_ERR_BAD_SIGNATURE);
    assert_int_equal(si_trust_set_archive_master(&t, ring(SI_KR_IMAGE_MASTER, f->k[AM], 0, NULL),
                                                 &err),
                     SI_ERR_KEYRING_TYPE);
    assert_int_equal(si_trust_set_archive_master(&t, ring(SI_KR_ARCHIVE_MASTER, NULL, 0, NULL),
                                                 &err),
                     SI_ERR_BAD_KEY);
    assert_int_equal(
        si_trust_set_archive_master(&t, ring(SI_KR_ARCHIVE_MASTER, f->k[AM], NOW, NULL), &err),
        SI_ERR_KEYRING_EXPIRED);
    assert_int_equal(
        si_trust_set_archive_master(&t, ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, "x"), &err),
        SI_ERR_KEYRING_MODEL);
    assert_null(t.ring[SI_KR_ARCHIVE_MASTER]);
    assert_int_equal(
        si_trust_set_archive_master(&t, ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, NULL), &err),
        SI_OK);
    assert_int_equal(
        si_trust_set_archive_master(&t, ring(SI_KR_ARCHIVE_MASTER, f->k[AM], 0, NULL), &err),
        SI_ERR_EXISTS);
    si_trust_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_parse_roundtrip),
        cmocka_unit_test(parse_errors_name_fields),
        cmocka_unit_test(verify_with_keyrings),
        cmocka_unit_test(validate_single),
        cmocka_unit_test(chain_any_order),
        cmocka_unit_test(chain_failures),
        cmocka_unit_test(chain_blacklist_applies_to_masters),
        cmocka_unit_test(archive_master_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
