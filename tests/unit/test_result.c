/* test_result.c - result codes and si_err helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "result.h"

static void every_code_has_a_distinct_name_and_message(void **state)
{
    (void)state;
    for (int i = 0; i < SI_RESULT_COUNT; i++) {
        assert_non_null(si_result_message((si_result)i));
        assert_string_not_equal(si_result_name((si_result)i), "unknown");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(si_result_name((si_result)i), si_result_name((si_result)j));
    }
    assert_string_equal(si_result_name(SI_RESULT_COUNT), "unknown");
    assert_string_equal(si_result_name((si_result)-1), "unknown");
}

static void err_set_and_prefix(void **state)
{
    (void)state;
    si_err e;
    assert_int_equal(si_err_set(&e, SI_ERR_PARSE, "field %s", "images[0].version"), SI_ERR_PARSE);
    assert_int_equal(e.code, SI_ERR_PARSE);
    assert_string_equal(e.msg, "field images[0].version");
    si_err_prefix(&e, "index.json");
    assert_string_equal(e.msg, "index.json: field images[0].version");
    assert_int_equal(si_err_set(NULL, SI_ERR_IO, "x"), SI_ERR_IO);
    si_err_clear(&e);
    assert_int_equal(e.code, SI_OK);
    assert_string_equal(e.msg, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_distinct_name_and_message),
        cmocka_unit_test(err_set_and_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
