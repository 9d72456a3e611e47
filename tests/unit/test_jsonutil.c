/* test_jsonutil.c - typed getters and the canonical printer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonutil.h"

static cJSON *parse_ok(const char *s)
{
    cJSON *j = NULL;
    si_err e;
    assert_int_equal(si_json_parse(s, strlen(s), 4096, "doc", &j, &e), SI_OK);
    return j;
}

static void parse_errors_name_the_problem(void **state)
{
    (void)state;
    cJSON *j;
    si_err e;
    assert_int_equal(si_json_parse("{\"a\": }", 7, 100, "index.json", &j, &e), SI_ERR_PARSE);
    assert_non_null(strstr(e.msg, "index.json"));
    assert_int_equal(si_json_parse("{}", 2, 1, "x.json", &j, &e), SI_ERR_TOO_LARGE);
    assert_int_equal(si_json_parse("{} x", 4, 100, "x.json", &j, &e), SI_ERR_PARSE);
    assert_non_null(strstr(e.msg, "trailing"));
    assert_int_equal(si_json_parse("{}\n  ", 5, 100, "x.json", &j, &e), SI_OK);
    cJSON_Delete(j);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_int_equal(si_json_parse(deep, 200, 1000, "x.json", &j, &e), SI_ERR_PARSE);
    assert_non_null(strstr(e.msg, "nested"));
    assert_int_equal(si_json_parse("\"a\0b\"", 5, 100, "x.json", &j, &e), SI_ERR_PARSE);
}

static void typed_getters(void **state)
{
    (void)state;
    cJSON *j = parse_ok("{\"s\": \"str\", \"i\": 42, \"f\": 1.5, \"b\": true, \"a\": [1], "
                        "\"o\": {}, \"big\": 1e300, \"n\": null}");
    si_err e;
    const char *s = NULL;
    int64_t i = 0;
    bool b = false, present = true;
    const cJSON *a, *o;
    assert_int_equal(si_json_get_string(j, "images[0]", "s", true, &s, &present, &e), SI_OK);
    assert_string_equal(s, "str");
    assert_true(present);
    assert_int_equal(si_json_get_int(j, "images[0]", "i", true, 0, 100, &i, NULL, &e), SI_OK);
    assert_int_equal(i, 42);
    assert_int_equal(si_json_get_int(j, "images[0]", "i", true, 0, 10, &i, NULL, &e), SI_ERR_PARSE);
    assert_non_null(strstr(e.msg, "images[0].i"));
    assert_int_equal(si_json_get_int(j, "images[0]", "f", true, 0, 10, &i, NULL, &e), SI_ERR_PARSE);
    assert_string_equal(e.msg, "images[0].f: expected integer");
    assert_int_equal(si_json_get_int(j, "", "big", true, INT64_MIN, INT64_MAX, &i, NULL, &e),
                     SI_ERR_PARSE);
    assert_string_equal(e.msg, "big: expected integer");
    assert_int_equal(si_json_get_int(j, "", "s", true, 0, 10, &i, NULL, &e), SI_ERR_PARSE);
    assert_int_equal(si_json_get_bool(j, "", "b", true, &b, NULL, &e), SI_OK);
    assert_true(b);
    assert_int_equal(si_json_get_bool(j, "", "i", true, &b, NULL, &e), SI_ERR_PARSE);
    assert_string_equal(e.msg, "i: expected boolean");
    assert_int_equal(si_json_get_array(j, "", "a", true, &a, NULL, &e), SI_OK);
    assert_int_equal(si_json_get_array(j, "", "o", true, &a, NULL, &e), SI_ERR_PARSE);
    assert_int_equal(si_json_get_object(j, "", "o", true, &o, NULL, &e), SI_OK);
    assert_int_equal(si_json_get_object(j, "", "s", true, &o, NULL, &e), SI_ERR_PARSE);
    assert_int_equal(si_json_get_string(j, "", "i", true, &s, NULL, &e), SI_ERR_PARSE);
    assert_string_equal(e.msg, "i: expected string");
    /* missing */
    assert_int_equal(si_json_get_string(j, "global", "zz", true, &s, &present, &e), SI_ERR_PARSE);
    assert_string_equal(e.msg, "global.zz: missing mandatory field");
    assert_int_equal(si_json_get_string(j, "global", "zz", false, &s, &present, &e), SI_OK);
    assert_false(present);
    /* null counts as absent */
    assert_int_equal(si_json_get_string(j, "", "n", false, &s, &present, &e), SI_OK);
    assert_false(present);
    /* not an object */
    assert_int_equal(si_json_get_string(a, "a", "x", false, &s, &present, &e), SI_ERR_PARSE);
    cJSON_Delete(j);
}

static void printer_sorts_keys_and_indents(void **state)
{
    (void)state;
    cJSON *j = parse_ok("{\"b\": [1, \"x\\\"y\", {\"z\": false, \"a\": null}], \"a\": {}, "
                        "\"c\": [], \"d\": 0.5, \"e\": -3}");
    char *out = NULL;
    si_err e;
    assert_int_equal(si_json_print_sorted(j, &out, &e), SI_OK);
    assert_string_equal(out, "{\n"
                             "    \"a\": {},\n"
                             "    \"b\": [\n"
                             "        1,\n"
                             "        \"x\\\"y\",\n"
                             "        {\n"
                             "            \"a\": null,\n"
                             "            \"z\": false\n"
                             "        }\n"
                             "    ],\n"
                             "    \"c\": [],\n"
                             "    \"d\": 0.5,\n"
                             "    \"e\": -3\n"
                             "}\n");
    /* round trip */
    cJSON *k = parse_ok(out);
    char *out2 = NULL;
    assert_int_equal(si_json_print_sorted(k, &out2, &e), SI_OK);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    cJSON_Delete(j);
    cJSON_Delete(k);
}

static void control_chars_escaped(void **state)
{
    (void)state;
    cJSON *s = cJSON_CreateString("a\x01\n\tb");
    char *out = NULL;
    assert_int_equal(si_json_print_sorted(s, &out, NULL), SI_OK);
    assert_string_equal(out, "\"a\\u0001\\n\\tb\"\n");
    free(out);
    cJSON_Delete(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_errors_name_the_problem),
        cmocka_unit_test(typed_getters),
        cmocka_unit_test(printer_sorts_keys_and_indents),
        cmocka_unit_test(control_chars_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
