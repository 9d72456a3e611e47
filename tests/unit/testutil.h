/* testutil.h - what several unit tests share: a private temporary directory
 * per test program, a printf-style shell runner and the check of an
 * expected error. Header-only (static functions): each test is one .c file
 * linked alone with the library. */
#ifndef SI_TEST_UTIL_H
#define SI_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "result.h"

/* Run a shell command built like printf; its exit status, -1 if it died. */
static int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static int tu_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return -1;
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* dir (64 bytes) = a new /tmp/si-<name>-XXXXXX; 0 or -1 for cmocka setups. */
static int tu_tmpdir(char dir[64], const char *name) __attribute__((unused));
static int tu_tmpdir(char dir[64], const char *name)
{
    int n = snprintf(dir, 64, "/tmp/si-%s-XXXXXX", name);
    if (n < 0 || n >= 64)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

/* Remove dir and everything in it; 0 or -1 for cmocka teardowns. */
static int tu_rmtree(const char *dir) __attribute__((unused));
static int tu_rmtree(const char *dir)
{
    return tu_sh("rm -rf '%s'", dir) == 0 ? 0 : -1;
}

/* `what` (a case, an input) gave `got` with err->msg: it must be `want` with
 * a message that contains `needle`; both are printed when not. */
static void tu_assert_error(const char *what, si_result got, const si_err *err, si_result want,
                            const char *needle) __attribute__((unused));
static void tu_assert_error(const char *what, si_result got, const si_err *err, si_result want,
                            const char *needle)
{
    if (got != want || !strstr(err->msg, needle))
        print_error("%s: got %d \"%s\", want %d \"%s\"\n", what, got, err->msg, want, needle);
    assert_int_equal(got, want);
    assert_non_null(strstr(err->msg, needle));
}

#endif
