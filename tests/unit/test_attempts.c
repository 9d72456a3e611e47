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

#define MIB (UINT64_C(1) << 20)

/* A first attempt of JOB_A on an empty state. */
static void begin_fresh(si_attempts *st, si_attempt_start *s)
{
    memset(st, 0, sizeof(*st));
    si_attempts_begin(st, false, JOB_A, 0, s);
}

/* One death of the open attempt at p: the attempt recorded p, then the power
 * went; the next start sees it. */
static void die_at(si_attempts *st, si_point p, unsigned *tries, si_attempt_start *s)
{
    si_attempts_at(st, p);
    si_attempts_begin(st, true, JOB_A, *tries, s);
    assert_true(s->previous_died);
    *tries = s->tries;
}

/* Issue 15's trace: cuts after the format, each earlier than the furthest
 * point an earlier attempt reached. None of them counts. */
static void issue_15_decreasing_cuts_never_exhaust(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    si_attempts_step_done(&st, 3);
    unsigned tries = 0;
    static const uint64_t cut[] = {26083328, 9 * MIB + 5, 7 * MIB, 6 * MIB + 77, 2 * MIB, 100};
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        die_at(&st, (si_point){4, false, cut[i]}, &tries, &s);
        assert_int_equal(s.deaths, 1);
        assert_false(s.exhausted);
    }
    assert_int_equal(tries, 0);
    assert_int_equal(st.best.step, 4);
    assert_int_equal(st.best.bytes, 26083328);
}

/* Cuts at seeded random points of a job of 5 steps (verify included): as
 * long as no SI_ATTEMPTS_MAX_SAME_DEATHS consecutive deaths share a window,
 * thousands of cuts never stop the job; a pair in one window is allowed. */
static void random_cuts_never_exhaust(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    unsigned tries = 0;
    uint64_t x = 20261130;
    si_point prev = {0, false, 0};
    unsigned same = 0;
    for (int i = 0; i < 5000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        si_point p = {(uint32_t)((x >> 33) % 5), ((x >> 20) & 1) != 0, (x >> 24) % (40 * MIB)};
        same = i > 0 && si_point_same(p, prev) ? same + 1 : 1;
        if (same >= SI_ATTEMPTS_MAX_SAME_DEATHS) { /* move it: not random any more */
            p.bytes += SI_ATTEMPTS_WINDOW;
            same = 1;
        }
        die_at(&st, p, &tries, &s);
        assert_int_equal(s.deaths, same);
        assert_false(s.exhausted);
        prev = p;
    }
    assert_int_equal(tries, 0);
}

/* A crash at the same byte every time: the recorded point differs within
 * one window (saves every second), it is the same death point. */
static void same_point_deaths_exhaust(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    unsigned tries = 0;
    static const uint64_t at[] = {5 * MIB + 100, 5 * MIB + 9000, 6 * MIB - 1};
    for (unsigned i = 0; i < 3; i++) {
        die_at(&st, (si_point){4, false, at[i]}, &tries, &s);
        assert_int_equal(s.deaths, i + 1);
        assert_int_equal(s.exhausted, i + 1 == SI_ATTEMPTS_MAX_SAME_DEATHS);
    }
    assert_int_equal(tries, 0);  /* deaths are not failures */
    assert_int_equal(st.attempt, 3); /* exhausted: no fourth attempt recorded */
    assert_int_equal(st.death.step, 4);
}

static void other_point_restarts_chain(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    unsigned tries = 0;
    die_at(&st, (si_point){2, false, 3 * MIB}, &tries, &s);
    die_at(&st, (si_point){2, false, 3 * MIB + 1}, &tries, &s);
    assert_int_equal(s.deaths, 2);
    /* Next window, another step, the verify phase: other points. */
    die_at(&st, (si_point){2, false, 4 * MIB}, &tries, &s);
    assert_int_equal(s.deaths, 1);
    die_at(&st, (si_point){3, false, 4 * MIB}, &tries, &s);
    assert_int_equal(s.deaths, 1);
    die_at(&st, (si_point){3, true, 4 * MIB}, &tries, &s);
    assert_int_equal(s.deaths, 1);
    die_at(&st, (si_point){3, true, 4 * MIB + 5}, &tries, &s);
    assert_int_equal(s.deaths, 2);
    assert_false(s.exhausted);
    /* A failed attempt in between breaks the chain. */
    tries = si_attempts_fail(&st, tries);
    si_attempts_begin(&st, true, JOB_A, tries, &s);
    assert_false(s.previous_died);
    die_at(&st, (si_point){3, true, 4 * MIB + 5}, &tries, &s);
    assert_int_equal(s.deaths, 1);
    assert_int_equal(tries, 1);
}

/* A death is counted by the start that also records the next attempt: a
 * power cut before that record is saved (early boot) does not count it twice. */
static void death_counted_once(void **state)
{
    (void)state;
    si_attempts st, saved;
    si_attempt_start s;
    memset(&st, 0, sizeof(st));
    si_attempts_begin(&st, false, JOB_A, 0, &s);
    si_attempts_at(&st, (si_point){1, false, 7 * MIB});
    saved = st; /* on the cache when the power went */
    for (int boot = 0; boot < 5; boot++) {
        st = saved; /* this boot was cut before it saved its start */
        si_attempts_begin(&st, true, JOB_A, 0, &s);
        assert_int_equal(s.deaths, 1);
        assert_false(s.exhausted);
    }
    assert_int_equal(st.attempt, 2);
    assert_true(st.at.verify);
    assert_int_equal(st.at.step, st.completed);
}

static void at_reports_new_window(void **state)
{
    (void)state;
    si_attempts st;
    memset(&st, 0, sizeof(st));
    assert_false(si_attempts_at(&st, (si_point){0, false, 5}));
    assert_false(si_attempts_at(&st, (si_point){0, false, MIB - 1}));
    assert_true(si_attempts_at(&st, (si_point){0, false, MIB}));
    assert_true(si_attempts_at(&st, (si_point){0, true, MIB}));
    /* Verifying never raises best; working does. */
    assert_int_equal(st.best.bytes, MIB);
    assert_false(si_attempts_at(&st, (si_point){0, true, MIB + 9}));
    assert_int_equal(st.best.bytes, MIB);
}

static void failures_count_even_with_progress(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    unsigned tries = s.tries;
    for (unsigned i = 1; i <= 3; i++) {
        si_attempts_at(&st, (si_point){i, false, 0});
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

static void stopped_job_is_not_tried_again(void **state)
{
    (void)state;
    si_attempts st;
    si_attempt_start s;
    begin_fresh(&st, &s);
    si_attempts_stop(&st, SI_ERR_TRIES_EXHAUSTED, "died 3 times at step 4");
    assert_false(st.open);
    uint32_t attempts = st.attempt;
    for (int i = 0; i < 3; i++) {
        si_attempts_begin(&st, true, JOB_A, 0, &s);
        assert_true(s.stopped);
        assert_false(st.open);
        assert_int_equal(st.attempt, attempts);
        assert_int_equal(st.stop_result, SI_ERR_TRIES_EXHAUSTED);
        assert_string_equal(st.stop_message, "died 3 times at step 4");
        /* Reporting it again keeps the message. */
        si_attempts_stop(&st, SI_ERR_TRIES_EXHAUSTED, st.stop_message);
        assert_string_equal(st.stop_message, "died 3 times at step 4");
    }
    /* A newly staged job is picked up. */
    si_attempts_begin(&st, true, JOB_B, 3, &s);
    assert_true(s.new_job);
    assert_false(s.stopped);
    assert_true(st.open);
    assert_false(st.stopped);
}

static void step_done_sets_resume_point(void **state)
{
    (void)state;
    si_attempts st;
    memset(&st, 0, sizeof(st));
    si_attempts_at(&st, (si_point){0, false, 4096});
    si_attempts_step_done(&st, 0);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.best.step, 1);
    assert_int_equal(st.best.bytes, 0);
    si_attempts_step_done(&st, 4);
    assert_int_equal(st.completed, 5);
    /* Redoing an earlier step never moves the resume point back. */
    si_attempts_step_done(&st, 2);
    assert_int_equal(st.completed, 5);
    si_attempts_at(&st, (si_point){3, false, 1});
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
    st.best = (si_mark){2, (uint64_t)1 << 40};
    st.attempt = 7;
    st.at = (si_point){2, true, 12345};
    st.death = (si_point){1, false, (uint64_t)1 << 41};
    st.deaths = 2;
    st.stopped = true;
    st.stop_result = SI_ERR_TRIES_EXHAUSTED;
    strcpy(st.stop_message, "gave up: \"quoted\" and\nnewline");
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

/* A state file of an older recovery ("start", none of the new fields). */
static void old_state_parses(void **state)
{
    (void)state;
    si_attempts st;
    const char *old = "{\"format\": 1, \"job\": \"" JOB_A "\", \"open\": true, "
                      "\"touched\": true, \"completed\": 1, \"start\": {\"step\": 0, "
                      "\"bytes\": 0}, \"best\": {\"step\": 1, \"bytes\": 0}}";
    assert_int_equal(si_attempts_parse(old, strlen(old), &st, NULL), SI_OK);
    assert_true(st.open);
    assert_int_equal(st.deaths, 0);
    assert_false(st.stopped);
    si_attempt_start s;
    si_attempts_begin(&st, true, JOB_A, 0, &s);
    assert_true(s.previous_died);
    assert_int_equal(s.deaths, 1);
}

/* Pieces of the state files below. */
#define HEAD_A "{\"format\": 1, \"job\": \"" JOB_A "\", "
#define OPEN_A HEAD_A "\"open\": true, \"touched\": false, "
#define START0 "\"start\": {\"step\": 0, \"bytes\": 0}"
#define BEST0 "\"best\": {\"step\": 0, \"bytes\": 0}"
#define BEST1 "\"best\": {\"step\": 1, \"bytes\": 0}"

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
        {HEAD_A "\"open\": 1, \"touched\": false, \"completed\": 0, " START0 ", " BEST0 "}", "open"},
        {OPEN_A "\"completed\": -1, " START0 ", " BEST0 "}", "completed"},
        {OPEN_A "\"completed\": 0, " START0 "}", "best"},
        {OPEN_A "\"completed\": 0, " BEST1 ", \"at\": {\"step\": 1, \"bytes\": 0}}", "verify"},
        {OPEN_A "\"completed\": 0, " BEST1 ", \"deaths\": 1001}", "deaths"},
        {OPEN_A "\"completed\": 0, " BEST1 ", \"stopped\": true, \"stop_message\": \"x\"}", "stop_result"},
        {OPEN_A "\"completed\": 0, " BEST1 ", \"stopped\": true, \"stop_result\": 26}", "stop_message"},
        {OPEN_A "\"completed\": 0, " BEST1 ", \"death\": {\"step\": -1, \"bytes\": 0, \"verify\": false}}",
         "step"},
        {OPEN_A "\"completed\": 3, " START0 ", " BEST1 "}", "completed"},
        {OPEN_A "\"completed\": 0, \"best\": {\"step\": 1, \"bytes\": 0.5}}", "bytes"},
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
        cmocka_unit_test(issue_15_decreasing_cuts_never_exhaust),
        cmocka_unit_test(random_cuts_never_exhaust),
        cmocka_unit_test(same_point_deaths_exhaust),
        cmocka_unit_test(other_point_restarts_chain),
        cmocka_unit_test(death_counted_once),
        cmocka_unit_test(at_reports_new_window),
        cmocka_unit_test(failures_count_even_with_progress),
        cmocka_unit_test(stopped_job_is_not_tried_again),
        cmocka_unit_test(old_state_parses),
        cmocka_unit_test(step_done_sets_resume_point),
        cmocka_unit_test(format_parse_round_trip),
        cmocka_unit_test(from_version_is_ignored),
        cmocka_unit_test(parse_rejects_bad_state),
        cmocka_unit_test(load_save_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
