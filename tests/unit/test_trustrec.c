/* test_trustrec.c - the recovery's trust record: round trip, hostile input,
 * and the revocation rules (issue 10 finding 4): an older keyring, a dropped
 * blacklist, a blacklist other than the one image-signing names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trustrec.h"

static void round_trip(void **state)
{
    (void)state;
    si_trust_record rec, back;
    si_trust_record_init(&rec);
    rec.keyring_version[SI_KR_IMAGE_SIGNING] = 3;
    rec.keyring_version[SI_KR_BLACKLIST] = 0;
    rec.index_generated_at = 1700000000;
    char *json;
    si_err err;
    assert_int_equal(si_trust_record_format(&rec, &json, &err), SI_OK);
    assert_int_equal(si_trust_record_parse(json, strlen(json), &back, &err), SI_OK);
    free(json);
    assert_memory_equal(&rec, &back, sizeof(rec));
    const char *bad[] = {"[]", "{\"format\": 2}", "{\"format\": 1, \"keyrings\": {\"blacklist\": -1}}",
                         "{\"format\": 1, \"index_generated_at\": \"x\"}", "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(si_trust_record_parse(bad[i], strlen(bad[i]), &back, &err), SI_OK);
}

/* The stub's floors: the larger of state.json and the system's record,
 * field by field, whichever holds which. */
static void merge_takes_the_larger(void **state)
{
    (void)state;
    si_trust_record a, b;
    si_trust_record_init(&a);
    si_trust_record_init(&b);
    a.keyring_version[SI_KR_IMAGE_SIGNING] = 5;
    a.keyring_version[SI_KR_DEVICE_SIGNING] = 1;
    a.index_generated_at = 100;
    b.keyring_version[SI_KR_IMAGE_SIGNING] = 2;
    b.keyring_version[SI_KR_BLACKLIST] = 0;
    b.keyring_version[SI_KR_IMAGE_MASTER] = 7;
    b.index_generated_at = 200;
    si_trust_record m = a;
    si_trust_record_merge(&m, &b);
    assert_int_equal(m.keyring_version[SI_KR_IMAGE_SIGNING], 5);
    assert_int_equal(m.keyring_version[SI_KR_DEVICE_SIGNING], 1);
    assert_int_equal(m.keyring_version[SI_KR_BLACKLIST], 0); /* seen once: kept */
    assert_int_equal(m.keyring_version[SI_KR_IMAGE_MASTER], 7);
    assert_int_equal(m.index_generated_at, 200);
    /* symmetric, and an empty record changes nothing */
    si_trust_record m2 = b;
    si_trust_record_merge(&m2, &a);
    assert_memory_equal(&m, &m2, sizeof(m));
    si_trust_record empty;
    si_trust_record_init(&empty);
    si_trust_record_merge(&m2, &empty);
    assert_memory_equal(&m, &m2, sizeof(m));
}

static void revocation_rules(void **state)
{
    (void)state;
    si_trust t;
    memset(&t, 0, sizeof(t));
    si_keyring is = {.type = SI_KR_IMAGE_SIGNING, .version = 1};
    si_keyring bl = {.type = SI_KR_BLACKLIST, .version = 2};
    t.ring[SI_KR_IMAGE_SIGNING] = &is;
    t.ring[SI_KR_BLACKLIST] = &bl;
    si_trust_record rec;
    si_trust_record_init(&rec);
    si_err err;
    const char *sha = "aa";
    assert_int_equal(si_trust_record_check(&rec, &t, sha, &err), SI_OK);
    si_trust_record_raise(&rec, &t, 100);
    assert_int_equal(rec.keyring_version[SI_KR_BLACKLIST], 2);
    assert_int_equal(rec.index_generated_at, 100);
    /* an older blacklist */
    bl.version = 1;
    assert_int_equal(si_trust_record_check(&rec, &t, sha, &err), SI_ERR_BLACKLISTED);
    assert_non_null(strstr(err.msg, "blacklist.keyring: version 1 is older than version 2"));
    bl.version = 2;
    /* no blacklist once one was seen */
    t.ring[SI_KR_BLACKLIST] = NULL;
    assert_int_equal(si_trust_record_check(&rec, &t, NULL, &err), SI_ERR_BLACKLISTED);
    assert_non_null(strstr(err.msg, "no blacklist.keyring staged"));
    /* an older (rotated-out) image-signing keyring */
    t.ring[SI_KR_BLACKLIST] = &bl;
    rec.keyring_version[SI_KR_IMAGE_SIGNING] = 2;
    assert_int_equal(si_trust_record_check(&rec, &t, sha, &err), SI_ERR_BLACKLISTED);
    rec.keyring_version[SI_KR_IMAGE_SIGNING] = 1;
    /* image-signing names its blacklist */
    memset(is.blacklist_sha256, 'b', 64);
    assert_int_equal(si_trust_record_check(&rec, &t, sha, &err), SI_ERR_BLACKLISTED);
    assert_int_equal(si_trust_record_check(&rec, &t, NULL, &err), SI_ERR_BLACKLISTED);
    assert_int_equal(si_trust_record_check(&rec, &t, is.blacklist_sha256, &err), SI_OK);
    /* raising never lowers */
    si_trust_record_raise(&rec, &t, 50);
    assert_int_equal(rec.index_generated_at, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(revocation_rules),
        cmocka_unit_test(merge_takes_the_larger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
