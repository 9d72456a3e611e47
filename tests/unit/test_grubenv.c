/* test_grubenv.c - GRUB environment block: strict parsing, exact formatting,
 * in-place device writes, and interoperability with grub-editenv. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "grubenv.h"
#include "testutil.h"

#define SIG "# GRUB Environment Block\n"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "grubenv");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

/* A 1024-byte block: text followed by '#' padding. */
static void make_block(char *b, const char *text)
{
    size_t n = strlen(text);
    assert_true(n <= SI_GRUBENV_SIZE);
    memcpy(b, text, n);
    memset(b + n, '#', SI_GRUBENV_SIZE - n);
}

static void set_get_unset_format(void **state)
{
    (void)state;
    si_grubenv env;
    si_err err;
    si_grubenv_init(&env);
    assert_null(si_grubenv_get(&env, "recovery_request"));
    assert_int_equal(si_grubenv_set(&env, "recovery_request", "1", &err), SI_OK);
    assert_int_equal(si_grubenv_set(&env, "recovery_tries", "0", &err), SI_OK);
    assert_int_equal(si_grubenv_set(&env, "recovery_request", "factory-reset", &err), SI_OK);
    assert_int_equal(env.count, 2);
    assert_string_equal(si_grubenv_get(&env, "recovery_request"), "factory-reset");
    char block[SI_GRUBENV_SIZE];
    assert_int_equal(si_grubenv_format(&env, block, &err), SI_OK);
    const char *want = SIG "recovery_request=factory-reset\nrecovery_tries=0\n";
    assert_memory_equal(block, want, strlen(want));
    for (size_t i = strlen(want); i < SI_GRUBENV_SIZE; i++)
        assert_int_equal(block[i], '#');
    si_grubenv_unset(&env, "recovery_request");
    si_grubenv_unset(&env, "absent");
    assert_int_equal(env.count, 1);
    assert_null(si_grubenv_get(&env, "recovery_request"));
    assert_string_equal(si_grubenv_get(&env, "recovery_tries"), "0");
}

static void escapes_round_trip(void **state)
{
    (void)state;
    si_grubenv env, back;
    si_err err;
    si_grubenv_init(&env);
    assert_int_equal(si_grubenv_set(&env, "v", "a\\b\nc#d=e", &err), SI_OK);
    char block[SI_GRUBENV_SIZE];
    assert_int_equal(si_grubenv_format(&env, block, &err), SI_OK);
    const char *want = SIG "v=a\\\\b\\\nc#d=e\n#";
    assert_memory_equal(block, want, strlen(want));
    assert_int_equal(si_grubenv_parse(block, sizeof(block), &back, &err), SI_OK);
    assert_string_equal(si_grubenv_get(&back, "v"), "a\\b\nc#d=e");
}

static void parse_accepts_comments_and_empty(void **state)
{
    (void)state;
    char b[SI_GRUBENV_SIZE];
    si_grubenv env;
    si_err err;
    make_block(b, SIG);
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_OK);
    assert_int_equal(env.count, 0);
    make_block(b, SIG "# WARNING: Do not edit\nrecovery_request=0\n# note\nx=\n");
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_OK);
    assert_int_equal(env.count, 2);
    assert_string_equal(si_grubenv_get(&env, "recovery_request"), "0");
    assert_string_equal(si_grubenv_get(&env, "x"), "");
}

static void expect_bad(const char *text, si_result code, const char *msg_part)
{
    char b[SI_GRUBENV_SIZE];
    si_grubenv env;
    si_err err;
    si_err_clear(&err);
    make_block(b, text);
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), code);
    if (!strstr(err.msg, msg_part))
        fail_msg("message '%s' lacks '%s'", err.msg, msg_part);
}

static void parse_rejects_bad_blocks(void **state)
{
    (void)state;
    char b[SI_GRUBENV_SIZE];
    si_grubenv env;
    si_err err;
    make_block(b, SIG);
    assert_int_equal(si_grubenv_parse(b, 1023, &env, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "1023"));
    memset(b, 0, sizeof(b)); /* a blank misc partition */
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "signature"));
    expect_bad("# GRUB Environment Blocx\n", SI_ERR_PARSE, "signature");
    expect_bad(SIG "novalue\n", SI_ERR_PARSE, "no '='");
    expect_bad(SIG "=x\n", SI_ERR_PARSE, "invalid name");
    expect_bad(SIG "9a=x\n", SI_ERR_PARSE, "invalid name '9a'");
    expect_bad(SIG "a b=x\n", SI_ERR_PARSE, "invalid name 'a b'");
    expect_bad(SIG "a=1\na=2\n", SI_ERR_PARSE, "duplicate name 'a'");
    expect_bad(SIG "a=1\nb=2\nstray", SI_ERR_PARSE, "line 4");
    /* no newline before the end of the block */
    char t[SI_GRUBENV_SIZE + 1];
    memcpy(t, SIG "a=", strlen(SIG) + 2);
    memset(t + strlen(SIG) + 2, 'v', SI_GRUBENV_SIZE - strlen(SIG) - 2);
    t[SI_GRUBENV_SIZE] = '\0';
    expect_bad(t, SI_ERR_TOO_LARGE, "value of 'a'");
    /* padding must be '#' only */
    make_block(b, SIG "a=1\n");
    b[1000] = 'x';
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "offset 1000"));
    make_block(b, SIG "a=1\n");
    b[strlen(SIG) + 2] = '\0'; /* NUL in a value */
    assert_int_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "NUL"));
    /* value ending with a backslash at the very end of the block */
    memcpy(b, SIG, strlen(SIG));
    memset(b + strlen(SIG), 'a', SI_GRUBENV_SIZE - strlen(SIG));
    b[strlen(SIG) + 1] = '=';
    b[SI_GRUBENV_SIZE - 1] = '\\';
    assert_int_not_equal(si_grubenv_parse(b, sizeof(b), &env, &err), SI_OK);
    /* too many variables */
    char many[SI_GRUBENV_SIZE];
    size_t n = (size_t)snprintf(many, sizeof(many), "%s", SIG);
    for (int i = 0; i <= SI_GRUBENV_MAX_VARS; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "v%d=%d\n", i, i);
    expect_bad(many, SI_ERR_TOO_LARGE, "more than 32 variables");
}

static void set_and_format_limits(void **state)
{
    (void)state;
    si_grubenv env;
    si_err err;
    si_grubenv_init(&env);
    assert_int_equal(si_grubenv_set(&env, "bad name", "x", &err), SI_ERR_USAGE);
    assert_int_equal(si_grubenv_set(&env, "", "x", &err), SI_ERR_USAGE);
    char big[SI_GRUBENV_VALUE_MAX + 1];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(si_grubenv_set(&env, "k", big, &err), SI_ERR_TOO_LARGE);
    big[SI_GRUBENV_VALUE_MAX - 1] = '\0'; /* 255 bytes: allowed */
    char key[8];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(si_grubenv_set(&env, key, big, &err), SI_OK);
    }
    char block[SI_GRUBENV_SIZE];
    assert_int_equal(si_grubenv_format(&env, block, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "k3"));
    si_grubenv_init(&env);
    for (int i = 0; i < SI_GRUBENV_MAX_VARS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(si_grubenv_set(&env, key, "1", &err), SI_OK);
    }
    assert_int_equal(si_grubenv_set(&env, "one_more", "1", &err), SI_ERR_TOO_LARGE);
    assert_int_equal(si_grubenv_set(&env, "k5", "2", &err), SI_OK); /* replacing still works */
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Issue 10 finding 8: a block full of other variables (32 of them, or too
 * many bytes) must never stop the recovery request from being cleared. */
static void must_succeed_writes_drop_unknown_variables(void **state)
{
    (void)state;
    static const char *const keep[] = {"recovery_request", "recovery_tries"};
    si_grubenv env;
    si_err err;
    si_grubenv_init(&env);
    assert_int_equal(si_grubenv_set(&env, "recovery_tries", "2", &err), SI_OK);
    char k[16];
    for (int i = 0; env.count < SI_GRUBENV_MAX_VARS; i++) {
        snprintf(k, sizeof(k), "junk%d", i);
        assert_int_equal(si_grubenv_set(&env, k, "x", &err), SI_OK);
    }
    /* plain set fails: the old behaviour that looped the device into recovery */
    assert_int_equal(si_grubenv_set(&env, "recovery_request", "0", &err), SI_ERR_TOO_LARGE);
    size_t dropped = 99;
    assert_int_equal(si_grubenv_set_keeping(&env, "recovery_request", "0", keep, 2, &dropped, &err),
                     SI_OK);
    assert_int_equal(dropped, 1);
    assert_string_equal(si_grubenv_get(&env, "recovery_request"), "0");
    assert_string_equal(si_grubenv_get(&env, "recovery_tries"), "2");
    assert_non_null(si_grubenv_get(&env, "junk0"));

    /* too many bytes: a few long values */
    si_grubenv_init(&env);
    char v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof(k), "long%d", i);
        assert_int_equal(si_grubenv_set(&env, k, v, &err), SI_OK);
    }
    char block[SI_GRUBENV_SIZE];
    assert_int_equal(si_grubenv_set(&env, "recovery_tries", v, &err), SI_OK);
    assert_int_equal(si_grubenv_format(&env, block, &err), SI_ERR_TOO_LARGE);
    assert_int_equal(si_grubenv_set_keeping(&env, "recovery_tries", "0", keep, 2, &dropped, &err),
                     SI_OK);
    assert_int_equal(si_grubenv_set_keeping(&env, "recovery_request", "0", keep, 2, &dropped, &err),
                     SI_OK);
    assert_int_equal(si_grubenv_format(&env, block, &err), SI_OK);
    assert_string_equal(si_grubenv_get(&env, "recovery_tries"), "0");
}

static void device_in_place_and_grub_editenv(void **state)
{
    (void)state;
    char misc[128];
    snprintf(misc, sizeof(misc), "%s/misc", dir);
    si_grubenv env;
    si_err err;
    si_grubenv_init(&env);
    /* missing file: never created */
    assert_int_equal(si_grubenv_write_dev(misc, &env, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, misc));
    assert_int_equal(access(misc, F_OK), -1);
    /* a 1 MiB "partition" full of 0xff: only the first 1024 bytes change */
    assert_int_equal(sh("head -c 1048576 /dev/zero | tr '\\0' '\\377' > %s", misc), 0);
    assert_int_equal(si_grubenv_read_dev(misc, &env, &err), SI_ERR_PARSE);
    assert_int_equal(si_grubenv_set(&env, "recovery_request", "1", &err), SI_OK);
    assert_int_equal(si_grubenv_set(&env, "recovery_tries", "2", &err), SI_OK);
    assert_int_equal(si_grubenv_write_dev(misc, &env, &err), SI_OK);
    struct stat st;
    assert_int_equal(stat(misc, &st), 0);
    assert_int_equal(st.st_size, 1048576);
    assert_int_equal(sh("[ \"$(tail -c +1025 %s | tr -d '\\377' | wc -c)\" = 0 ]", misc), 0);
    /* grub-editenv reads our block (as a 1024-byte file, like GRUB's 0+2) */
    char blk[128];
    snprintf(blk, sizeof(blk), "%s/grubenv", dir);
    assert_int_equal(sh("head -c 1024 %s > %s", misc, blk), 0);
    assert_int_equal(sh("grub-editenv %s list > %s/list", blk, dir), 0);
    assert_int_equal(sh("printf 'recovery_request=1\\nrecovery_tries=2\\n' | cmp -s - %s/list", dir), 0);
    /* and we read what grub-editenv writes (including its comment line) */
    assert_int_equal(sh("grub-editenv %s set recovery_tries=3 'note=a\\b' && "
                        "grub-editenv %s unset recovery_request", blk, blk), 0);
    assert_int_equal(sh("dd if=%s of=%s conv=notrunc status=none", blk, misc), 0);
    assert_int_equal(si_grubenv_read_dev(misc, &env, &err), SI_OK);
    assert_null(si_grubenv_get(&env, "recovery_request"));
    assert_string_equal(si_grubenv_get(&env, "recovery_tries"), "3");
    assert_string_equal(si_grubenv_get(&env, "note"), "a\\b");
    /* a file shorter than a block */
    assert_int_equal(sh("head -c 100 %s > %s/short", blk, dir), 0);
    char shortp[128];
    snprintf(shortp, sizeof(shortp), "%s/short", dir);
    assert_int_equal(si_grubenv_read_dev(shortp, &env, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "only 100 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_get_unset_format),
        cmocka_unit_test(escapes_round_trip),
        cmocka_unit_test(parse_accepts_comments_and_empty),
        cmocka_unit_test(parse_rejects_bad_blocks),
        cmocka_unit_test(set_and_format_limits),
        cmocka_unit_test(must_succeed_writes_drop_unknown_variables),
        cmocka_unit_test(device_in_place_and_grub_editenv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
