/* test_ini.c - INI parser: good files, every kind of malformed line, typed getters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ini.h"
#include "testutil.h"

static si_ini *parse_ok(const char *text)
{
    si_ini *ini = NULL;
    si_err err = {0};
    si_result rc = si_ini_parse(text, strlen(text), "t.ini", &ini, &err);
    if (rc != SI_OK)
        fprintf(stderr, "unexpected: %s\n", err.msg);
    assert_int_equal(rc, SI_OK);
    assert_non_null(ini);
    return ini;
}

static void parse_bad(const char *text, si_result code, const char *needle)
{
    si_ini *ini = (si_ini *)1;
    si_err err = {0};
    tu_assert_error(text, si_ini_parse(text, strlen(text), "t.ini", &ini, &err), &err, code, needle);
    assert_null(ini);
}

static void sections_keys_comments(void **state)
{
    (void)state;
    si_ini *ini = parse_ok("top = 1\n"
                           "# comment\n"
                           "; another\n"
                           "\n"
                           "[service]\r\n"
                           "  base =  https://example.com:8443  \n"
                           "channel=stable\n"
                           "empty =\n"
                           "quoted = \"  spaced  \"\n"
                           "[ system ]\n"
                           "cache_dir = /cache/recovery\n"
                           "channel = other");
    assert_string_equal(si_ini_get(ini, "", "top"), "1");
    assert_string_equal(si_ini_get(ini, "service", "base"), "https://example.com:8443");
    assert_string_equal(si_ini_get(ini, "service", "channel"), "stable");
    assert_string_equal(si_ini_get(ini, "service", "empty"), "");
    assert_string_equal(si_ini_get(ini, "service", "quoted"), "  spaced  ");
    assert_string_equal(si_ini_get(ini, "system", "cache_dir"), "/cache/recovery");
    assert_string_equal(si_ini_get(ini, "system", "channel"), "other");
    assert_null(si_ini_get(ini, "system", "base"));
    assert_null(si_ini_get(ini, "nosuch", "x"));
    si_ini_free(ini);
}

static void empty_input(void **state)
{
    (void)state;
    si_ini *ini = parse_ok("");
    assert_int_equal(ini->count, 0);
    si_ini_free(ini);
}

static void malformed_lines_name_the_line(void **state)
{
    (void)state;
    parse_bad("[a]\nnovalue\n", SI_ERR_PARSE, "line 2");
    parse_bad("[a\nx=1\n", SI_ERR_PARSE, "line 1: section header");
    parse_bad("[]\n", SI_ERR_PARSE, "invalid section");
    parse_bad("[a b]\n", SI_ERR_PARSE, "invalid section");
    parse_bad("[a]\n= 1\n", SI_ERR_PARSE, "line 2: invalid key");
    parse_bad("[a]\nk y = 1\n", SI_ERR_PARSE, "invalid key");
    parse_bad("[a]\nx=1\n\nx=2\n", SI_ERR_PARSE, "line 4: [a] x: duplicate (first on line 2)");
    static const char nul[] = "[a]\nx=1\0\n";
    si_ini *ini = NULL;
    si_err err = {0};
    assert_int_equal(si_ini_parse(nul, sizeof(nul) - 1, "t.ini", &ini, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "line 2: NUL"));
}

static void limits(void **state)
{
    (void)state;
    char *big = malloc(SI_INI_MAX_BYTES + 2);
    memset(big, '#', SI_INI_MAX_BYTES + 1);
    big[SI_INI_MAX_BYTES + 1] = '\0';
    parse_bad(big, SI_ERR_TOO_LARGE, "larger than");
    /* long value */
    char *line = malloc(SI_INI_VALUE_MAX + 16);
    strcpy(line, "k=");
    memset(line + 2, 'v', SI_INI_VALUE_MAX + 1);
    line[SI_INI_VALUE_MAX + 3] = '\0';
    parse_bad(line, SI_ERR_TOO_LARGE, "line 1: value longer");
    /* long key */
    memset(line, 'k', SI_INI_NAME_MAX + 1);
    strcpy(line + SI_INI_NAME_MAX + 1, "=1");
    parse_bad(line, SI_ERR_PARSE, "invalid key");
    /* too many keys */
    size_t cap = (SI_INI_MAX_ENTRIES + 1) * 16;
    char *many = malloc(cap);
    size_t n = 0;
    for (int i = 0; i <= SI_INI_MAX_ENTRIES; i++)
        n += (size_t)snprintf(many + n, cap - n, "k%d=1\n", i);
    parse_bad(many, SI_ERR_TOO_LARGE, "more than");
    free(many);
    free(line);
    free(big);
}

static void typed_getters(void **state)
{
    (void)state;
    si_ini *ini = parse_ok("[n]\nok = 42\nneg = -3\nbad = 4x\nplus = +4\nbig = 99999\n"
                           "empty =\nyes = On\nno = false\nmaybe = perhaps\n");
    si_err err = {0};
    int64_t v = 7;
    assert_int_equal(si_ini_get_int(ini, "n", "ok", true, 0, 100, &v, &err), SI_OK);
    assert_int_equal(v, 42);
    assert_int_equal(si_ini_get_int(ini, "n", "neg", true, -10, 10, &v, &err), SI_OK);
    assert_int_equal(v, -3);
    assert_int_equal(si_ini_get_int(ini, "n", "bad", true, 0, 100, &v, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "t.ini: line 4: [n] bad: not an integer"));
    assert_int_equal(si_ini_get_int(ini, "n", "plus", true, 0, 100, &v, &err), SI_ERR_PARSE);
    assert_int_equal(si_ini_get_int(ini, "n", "big", true, 0, 100, &v, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "[n] big: 99999 out of range"));
    assert_int_equal(si_ini_get_int(ini, "n", "empty", true, 0, 100, &v, &err), SI_ERR_PARSE);
    v = 5;
    assert_int_equal(si_ini_get_int(ini, "n", "absent", false, 0, 100, &v, &err), SI_OK);
    assert_int_equal(v, 5);
    assert_int_equal(si_ini_get_int(ini, "n", "absent", true, 0, 100, &v, &err), SI_ERR_NOT_FOUND);
    assert_string_equal(err.msg, "t.ini: [n] absent: missing");

    const char *s = "default";
    assert_int_equal(si_ini_get_string(ini, "n", "absent", false, &s, &err), SI_OK);
    assert_string_equal(s, "default");
    assert_int_equal(si_ini_get_string(ini, "n", "empty", true, &s, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "[n] empty: empty value"));
    assert_int_equal(si_ini_get_string(ini, "n", "empty", false, &s, &err), SI_OK);
    assert_string_equal(s, "");

    bool b = false;
    assert_int_equal(si_ini_get_bool(ini, "n", "yes", true, &b, &err), SI_OK);
    assert_true(b);
    assert_int_equal(si_ini_get_bool(ini, "n", "no", true, &b, &err), SI_OK);
    assert_false(b);
    assert_int_equal(si_ini_get_bool(ini, "n", "maybe", true, &b, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "[n] maybe: not a boolean"));
    si_ini_free(ini);
}

static void load_from_file(void **state)
{
    (void)state;
    char path[] = "/tmp/si-ini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[service]\nbase = https://x\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    si_ini *ini = NULL;
    si_err err = {0};
    assert_int_equal(si_ini_load(path, &ini, &err), SI_OK);
    assert_string_equal(si_ini_get(ini, "service", "base"), "https://x");
    si_ini_free(ini);
    unlink(path);
    assert_int_equal(si_ini_load(path, &ini, &err), SI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sections_keys_comments),
        cmocka_unit_test(empty_input),
        cmocka_unit_test(malformed_lines_name_the_line),
        cmocka_unit_test(limits),
        cmocka_unit_test(typed_getters),
        cmocka_unit_test(load_from_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
