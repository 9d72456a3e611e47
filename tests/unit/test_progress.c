/* test_progress.c - progress output: one redrawn line on a terminal, few
 * plain lines elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static size_t count(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* 10000 updates over `seconds` simulated seconds. */
static char *run(int tty, double seconds)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    si_progress p;
    si_progress_init(&p, f, "apply", tty);
    const uint64_t total = 50u << 20;
    for (int i = 1; i <= 10000; i++)
        si_progress_update_at(&p, total * (uint64_t)i / 10000, total, seconds * i / 10000);
    si_progress_end(&p);
    fclose(f);
    return buf;
}

static void log_output_has_few_plain_lines(void **state)
{
    (void)state;
    char *s = run(0, 40);
    assert_int_equal(count(s, '\r'), 0);
    size_t lines = count(s, '\n');
    /* every 10 % (10 % take 4 s here): 0 %, 10 % ... 100 % */
    assert_true(lines >= 10 && lines <= 11);
    assert_non_null(strstr(s, "apply: 100% (50.0 of 50.0 MiB)\n"));
    assert_null(strstr(s, "\033"));
    free(s);
    /* a slow run prints every 5 seconds even between 10 % steps */
    s = run(0, 1000);
    lines = count(s, '\n');
    assert_true(lines >= 100 && lines <= 201);
    assert_non_null(strstr(s, "left)"));
    free(s);
}

static void terminal_redraws_one_line(void **state)
{
    (void)state;
    char *s = run(1, 100);
    /* one line: a single '\n' at the very end, redraws throttled to 0.2 s */
    assert_int_equal(count(s, '\n'), 1);
    assert_int_equal(s[strlen(s) - 1], '\n');
    size_t frames = count(s, '\r');
    assert_true(frames >= 50 && frames <= 101);
    free(s);
    /* a fast run: redrawn at most every 0.2 s, plus the final 100 % */
    s = run(1, 0.5);
    frames = count(s, '\r');
    assert_true(frames >= 2 && frames <= 4);
    assert_non_null(strstr(s, "100%"));
    free(s);
}

static void failure_ends_the_line(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    si_progress p;
    si_progress_init(&p, f, "apply", 1);
    si_progress_update_at(&p, 10, 100, 0);
    si_progress_end(&p);
    si_progress_end(&p);
    fclose(f);
    assert_int_equal(count(buf, '\n'), 1);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_output_has_few_plain_lines),
        cmocka_unit_test(terminal_redraws_one_line),
        cmocka_unit_test(failure_ends_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
