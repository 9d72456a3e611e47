/* test_buildtime.c - si_build_epoch: a lower bound of the build time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "buildtime.h"

static void build_epoch_is_a_lower_bound(void **state)
{
    (void)state;
    int64_t t = si_build_epoch();
    /* this test binary was built after 2026-01-01 and before now */
    assert_true(t > 1767225600);
    assert_true(t <= (int64_t)time(NULL));
    /* stable within a process */
    assert_int_equal(si_build_epoch(), t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(build_epoch_is_a_lower_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
