/* test_debugexit.c - argument checks and the "not permitted" path. The port
 * write itself is only exercised under QEMU (tests/qemu): never on a host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "debugexit.h"

static void code_out_of_range(void **state)
{
    (void)state;
    si_err err;
    assert_int_equal(si_debug_exit(256, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "256"));
}

/* Without privileges ioperm fails before any port is touched. */
static void unprivileged_is_unsupported(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        si_err err;
        si_result r = si_debug_exit(3, &err);
        _exit(r == SI_ERR_UNSUPPORTED && strstr(err.msg, "ioperm") ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(code_out_of_range),
        cmocka_unit_test(unprivileged_is_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
