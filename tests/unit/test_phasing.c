/* test_phasing.c - CPython random.Random(str) compatibility and the device
 * percentage of phased updates. Expected values come from CPython 3. */
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
#include "phasing.h"

static void design_vectors(void **state)
{
    (void)state;
    const struct {
        const char *channel;
        int64_t target;
        const char *machine_id;
        int want;
    } v[] = {
        {"ubuntu", 11, "0123456789abcdef", 51},
        {"ubuntu", 11, "fedcba9876543210", 25},
        {"devel", 11, "0123456789abcdef", 96},
        {"ubuntu", 12, "0123456789abcdef", 1},
        {"devel", 304, "m3", 51},
        {"devel", 304, "m4", 11},
        {"stable", 304, "m1", 37},
        {"devel", 304, "m1", 91},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int p = -1;
        si_err err = {0};
        assert_int_equal(si_phased_percentage(v[i].channel, v[i].target, v[i].machine_id, &p,
                                              &err),
                         SI_OK);
        if (p != v[i].want)
            print_error("vector %zu: got %d want %d\n", i, p, v[i].want);
        assert_int_equal(p, v[i].want);
    }
}

/* random.Random(s): randint(0, 100), then getrandbits(32) twice. */
static void generator_matches_cpython(void **state)
{
    (void)state;
    char long_b[3001];
    memset(long_b, 'b', 3000);
    long_b[3000] = '\0';
    char long_a[101];
    memset(long_a, 'a', 100);
    long_a[100] = '\0';
    const struct {
        const char *seed;
        int randint;
        uint32_t next1, next2;
    } v[] = {
        {"", 58, 2557274880u, 888572032u},
        {"x", 80, 1353581224u, 2563747779u},
        {"\xc3\xa9.5.\xc3\xbc", 99, 3010366742u, 3456561698u}, /* "é.5.ü" in UTF-8 */
        {"devel.1800.0123456789abcdef", 38, 643671412u, 2308540398u},
        {long_a, 69, 202398959u, 3753474176u},
        {"ubuntu.11.0123456789abcdef", 51, 2915334102u, 3682337946u},
        {long_b, 91, 2513912928u, 0}, /* key longer than the 624-word state */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        si_mt19937 mt;
        assert_int_equal(si_mt_seed_string(&mt, v[i].seed, strlen(v[i].seed), NULL), SI_OK);
        assert_int_equal(si_mt_randint_0_100(&mt), v[i].randint);
        assert_int_equal(si_mt_genrand_uint32(&mt), v[i].next1);
        if (v[i].next2)
            assert_int_equal(si_mt_genrand_uint32(&mt), v[i].next2);
    }
}

static void bounds_and_spread(void **state)
{
    (void)state;
    /* every value stays in 0..100 and the spread covers the range */
    int seen_low = 0, seen_high = 0;
    for (int t = 0; t < 2000; t++) {
        int p = -1;
        assert_int_equal(si_phased_percentage("stable", t, "0123456789abcdef", &p, NULL), SI_OK);
        assert_true(p >= 0 && p <= 100);
        seen_low |= p < 10;
        seen_high |= p > 90;
    }
    assert_true(seen_low && seen_high);

    si_err err = {0};
    int p;
    assert_int_equal(si_phased_percentage(NULL, 1, "m", &p, &err), SI_ERR_USAGE);
    assert_int_equal(si_phased_percentage("c", 1, NULL, &p, &err), SI_ERR_USAGE);
    char *huge = malloc(SI_PHASING_SEED_MAX + 2);
    memset(huge, 'c', SI_PHASING_SEED_MAX + 1);
    huge[SI_PHASING_SEED_MAX + 1] = '\0';
    assert_int_equal(si_phased_percentage(huge, 1, "m", &p, &err), SI_ERR_TOO_LARGE);
    si_mt19937 mt;
    assert_int_equal(si_mt_seed_string(&mt, huge, SI_PHASING_SEED_MAX + 1, &err),
                     SI_ERR_TOO_LARGE);
    free(huge);
}

static void machine_id_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-phasing-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/machine-id", dir);
    char id[SI_MACHINE_ID_MAX + 1];
    si_err err = {0};
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, path));

    const char *good = "  0123456789abcdef0123456789abcdef\n";
    assert_int_equal(si_write_file_atomic(path, good, strlen(good), 0644), 0);
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_OK);
    assert_string_equal(id, "0123456789abcdef0123456789abcdef");

    assert_int_equal(si_write_file_atomic(path, " \n\t", 3, 0644), 0);
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "empty machine-id"));

    assert_int_equal(si_write_file_atomic(path, "ab\x01" "cd\n", 6, 0644), 0);
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "control byte"));

    char big[SI_MACHINE_ID_MAX + 2];
    memset(big, 'f', sizeof(big));
    assert_int_equal(si_write_file_atomic(path, big, sizeof(big), 0644), 0);
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "longer than"));
    char small[8];
    assert_int_equal(si_write_file_atomic(path, "0123456789", 10, 0644), 0);
    assert_int_equal(si_machine_id_read(path, small, sizeof(small), &err), SI_ERR_PARSE);

    char *huge = malloc(5000);
    memset(huge, 'f', 5000);
    assert_int_equal(si_write_file_atomic(path, huge, 5000, 0644), 0);
    free(huge);
    assert_int_equal(si_machine_id_read(path, id, sizeof(id), &err), SI_ERR_TOO_LARGE);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(design_vectors),
        cmocka_unit_test(generator_matches_cpython),
        cmocka_unit_test(bounds_and_spread),
        cmocka_unit_test(machine_id_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
