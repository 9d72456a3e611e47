/* test_attempts.c - the recovery's try/progress accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "attempts.h"

#define JOB_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define JOB_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void marks_compare_lexicographically(void **state)
{
    (void)state;
    assert_true(si_mark_cmp((si_mark){1, 0}, (si_mark){0, 999}) > 0);
    assert_true(si_mark_cmp((si_mark){1, 5}, (si_mark){1, 6}) < 0);
    assert_int_equal(si_mark_cmp((si_mark){2, 7}, (si_mark){2, 7}), 0);
}

static void new_job_resets_tries(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    memset(&st, 0, sizeof(st));
    si_attempts_begin(&st, false, JOB_A, 2, &s);
    assert_true(s.new_job);
    assert_int_equal(s.tries, 0);
    assert_false(s.exhausted);
    assert_true(st.open);
    assert_string_equal(st.job, JOB_A);

    /* Stored state of another job: also new. */
    st.completed = 3;
    st.best = (si_mark){3, 0};
    si_attempts_begin(&st, true, JOB_B, 2, &s);
    assert_true(s.new_job);
    assert_int_equal(s.tries, 0);
    assert_int_equal(st.completed, 0);
    assert_string_equal(st.job, JOB_B);
}

static void cuts_with_progress_never_exhaust(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    memset(&st, 0, sizeof(st));
    si_attempts_begin(&st, false, JOB_A, 0, &s);
    unsigned tries = s.tries;
    for (int i = 0; i < 20; i++) {
        /* Each attempt gets a bit further, then the power goes. */
        si_attempts_progress(&st, (si_mark){2, (uint64_t)(i + 1) * 1000});
        si_attempts_begin(&st, true, JOB_A, tries, &s);
        assert_true(s.previous_died);
        assert_false(s.previous_counted);
        assert_false(s.exhausted);
        tries = s.tries;
    }
    assert_int_equal(tries, 0);
}

static void cuts_without_progress_exhaust_after_three(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    memset(&st, 0, sizeof(st));
    si_attempts_begin(&st, false, JOB_A, 0, &s);
    si_attempts_progress(&st, (si_mark){1, 10});
    unsigned tries = 0;
    /* First restart: progress was made during attempt 1. */
    si_attempts_begin(&st, true, JOB_A, tries, &s);
    assert_false(s.previous_counted);
    tries = s.tries;
    for (int i = 1; i <= 3; i++) {
        /* Reaching the same point again is no progress. */
        si_attempts_progress(&st, (si_mark){1, 10});
        si_attempts_begin(&st, true, JOB_A, tries, &s);
        assert_true(s.previous_counted);
        assert_int_equal(s.tries, (unsigned)i);
        assert_int_equal(s.exhausted, i == 3);
        tries = s.tries;
    }
}

static void failures_count_even_with_progress(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    memset(&st, 0, sizeof(st));
    si_attempts_begin(&st, false, JOB_A, 0, &s);
    unsigned tries = s.tries;
    for (unsigned i = 1; i <= 3; i++) {
        si_attempts_progress(&st, (si_mark){i, 0});
        tries = si_attempts_fail(&st, tries);
        assert_int_equal(tries, i);
        assert_false(st.open);
        si_attempts_begin(&st, true, JOB_A, tries, &s);
        /* A failed attempt ended: it is not counted a second time. */
        assert_false(s.previous_died);
        assert_int_equal(s.tries, i);
        assert_int_equal(s.exhausted, i == 3);
    }
}

static void step_done_sets_resume_point(void **state)
{
    (void)state;
    si_attempts st;
    memset(&st, 0, sizeof(st));
    si_attempts_progress(&st, (si_mark){0, 4096});
    si_attempts_step_done(&st, 0);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.best.step, 1);
    assert_int_equal(st.best.bytes, 0);
    si_attempts_step_done(&st, 4);
    assert_int_equal(st.completed, 5);
    /* Redoing an earlier step never moves the resume point back. */
    si_attempts_step_done(&st, 2);
    assert_int_equal(st.completed, 5);
    si_attempts_progress(&st, (si_mark){3, 1});
    assert_int_equal(st.best.step, 5);
}

static void format_parse_round_trip(void **state)
{
    (void)state;
    si_attempts st, back;
    memset(&st, 0, sizeof(st));
    strcpy(st.job, JOB_A);
    st.open = true;
    st.touched = true;
    st.completed = 2;
    st.start = (si_mark){1, 77};
    st.best = (si_mark){2, (uint64_t)1 << 40};
    char *json;
    assert_int_equal(si_attempts_format(&st, &json, NULL), SI_OK);
    assert_non_null(strstr(json, "\"job\""));
    assert_int_equal(si_attempts_parse(json, strlen(json), &back, NULL), SI_OK);
    free(json);
    assert_memory_equal(&st, &back, sizeof(st));
}

/* Issue 10 finding 1: a planted "from_version" (null or a number) is not
 * state any more: it is ignored, never carried to a new job, never written. */
static void from_version_is_ignored(void **state)
{
    (void)state;
    si_attempts st;
    const char *planted = "{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": false, "
                          "\"touched\": true, \"completed\": 0, \"start\": {\"step\": 0, "
                          "\"bytes\": 0}, \"best\": {\"step\": 0, \"bytes\": 0}, "
                          "\"from_version\": null}";
    assert_int_equal(si_attempts_parse(planted, strlen(planted), &st, NULL), SI_OK);
    char *json;
    assert_int_equal(si_attempts_format(&st, &json, NULL), SI_OK);
    assert_null(strstr(json, "from_version"));
    free(json);
}

static void parse_rejects_bad_state(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *needle;
    } bad[] = {
        {"", NULL},
        {"[]", NULL},
        {"{\"format\": 2}", "format"},
        {"{\"format\": 1, \"job\": \"xyz\", \"open\": true, \"touched\": false, \"completed\": 0,"
         " \"start\": {\"step\": 0, \"bytes\": 0}, \"best\": {\"step\": 0, \"bytes\": 0}}", "job"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": 1, \"touched\": false,"
         " \"completed\": 0, \"start\": {\"step\": 0, \"bytes\": 0},"
         " \"best\": {\"step\": 0, \"bytes\": 0}}", "open"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, \"touched\": false,"
         " \"completed\": -1, \"start\": {\"step\": 0, \"bytes\": 0},"
         " \"best\": {\"step\": 0, \"bytes\": 0}}", "completed"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, \"touched\": false,"
         " \"completed\": 0, \"start\": {\"step\": 0, \"bytes\": 0}}", "best"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, \"touched\": false,"
         " \"completed\": 0, \"start\": {\"step\": 2, \"bytes\": 0},"
         " \"best\": {\"step\": 1, \"bytes\": 0}}", "start"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, \"touched\": false,"
         " \"completed\": 3, \"start\": {\"step\": 0, \"bytes\": 0},"
         " \"best\": {\"step\": 1, \"bytes\": 0}}", "completed"},
        {"{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, \"touched\": false,"
         " \"completed\": 0, \"start\": {\"step\": 0, \"bytes\": 0.5},"
         " \"best\": {\"step\": 1, \"bytes\": 0}}", "bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        si_attempts st;
        si_err err;
        si_err_clear(&err);
        si_result r = si_attempts_parse(bad[i].json, strlen(bad[i].json), &st, &err);
        if (r == SI_OK)
            fail_msg("accepted bad state %zu: %s", i, bad[i].json);
        if (bad[i].needle && !strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: message '%s' does not name '%s'", i, err.msg, bad[i].needle);
    }
}

static void load_save_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-attempts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/state.json", dir);
    si_attempts st, back;
    bool found = true;
    assert_int_equal(si_attempts_load(path, &back, &found, NULL), SI_OK);
    assert_false(found);
    memset(&st, 0, sizeof(st));
    strcpy(st.job, JOB_B);
    st.best = (si_mark){4, 2};
    st.completed = 4;
    assert_int_equal(si_attempts_save(path, &st, NULL), SI_OK);
    assert_int_equal(si_attempts_load(path, &back, &found, NULL), SI_OK);
    assert_true(found);
    assert_memory_equal(&st, &back, sizeof(st));
    /* Garbage on the cache partition is an error naming the file. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"format\": 1", f);
    fclose(f);
    si_err err;
    assert_int_not_equal(si_attempts_load(path, &back, &found, &err), SI_OK);
    assert_non_null(strstr(err.msg, path));
    assert_false(found);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(marks_compare_lexicographically),
        cmocka_unit_test(new_job_resets_tries),
        cmocka_unit_test(cuts_with_progress_never_exhaust),
        cmocka_unit_test(cuts_without_progress_exhaust_after_three),
        cmocka_unit_test(failures_count_even_with_progress),
        cmocka_unit_test(step_done_sets_resume_point),
        cmocka_unit_test(format_parse_round_trip),
        cmocka_unit_test(from_version_is_ignored),
        cmocka_unit_test(parse_rejects_bad_state),
        cmocka_unit_test(load_save_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
