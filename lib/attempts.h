/* attempts.h - the recovery's attempt accounting (docs/recovery.md).
 *
 * A job (one command file, or a factory reset) may take several attempts:
 * power cuts and failures restart the recovery. The state of the job lives
 * in a small JSON file on the cache partition, written atomically:
 *
 *   {"format": 1, "job": "<64 hex>", "open": true, "touched": true,
 *    "completed": 3, "start": {"step": 2, "bytes": 0},
 *    "best": {"step": 3, "bytes": 1048576}}
 *
 * A progress mark is (steps completed, bytes applied in the step being
 * worked on), compared lexicographically. `best` is the furthest mark any
 * attempt of the job reached, `start` the value of `best` when the last
 * attempt began, `completed` the number of steps durably done (the resume
 * point), `open` that an attempt began and has not ended (seen at the next
 * start, it died: power cut or crash), `touched` that a partition was
 * modified by some attempt.
 *
 * The try counter lives in the boot control. An attempt counts when it
 * failed, or when it died without raising `best` above its `start`; an
 * attempt that died after getting further does not count, so power cuts
 * during an install that keeps progressing never exhaust the counter.
 *
 * Nothing here is trusted for a security decision: the file is on the cache,
 * which the normal OS writes. It only steers counting and resuming; the
 * installed build is always read from the system partition (the recovery's
 * check never takes it from here, issue 10 finding 1). Unknown fields, such
 * as the `from_version` older recoveries wrote, are ignored. */
#ifndef SI_ATTEMPTS_H
#define SI_ATTEMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_ATTEMPTS_MAX_TRIES 3
#define SI_ATTEMPTS_MAX_BYTES 4096
#define SI_ATTEMPTS_JOB_LEN 64

typedef struct si_mark {
    uint32_t step;   /* steps completed */
    uint64_t bytes;  /* bytes applied in the step being worked on */
} si_mark;

typedef struct si_attempts {
    char job[SI_ATTEMPTS_JOB_LEN + 1];
    bool open;
    bool touched;
    uint32_t completed;
    si_mark start;
    si_mark best;
} si_attempts;

/* What si_attempts_begin decided. */
typedef struct si_attempt_start {
    unsigned tries;          /* new value of the boot control's counter */
    bool new_job;            /* no state, or the state of another job */
    bool previous_died;      /* the previous attempt neither succeeded nor failed */
    bool previous_counted;   /* ... and it made no progress, so it counts */
    bool exhausted;          /* tries >= SI_ATTEMPTS_MAX_TRIES: do not try again */
} si_attempt_start;

/* <0, 0, >0 like strcmp. */
int si_mark_cmp(si_mark a, si_mark b);

/* Begin an attempt of `job` (64 lowercase hex chars). `st` holds the stored
 * state when `found`; `tries` is the boot control's counter. On return st is
 * the state to store before working (open, start = best) unless exhausted. */
void si_attempts_begin(si_attempts *st, bool found, const char *job, unsigned tries,
                       si_attempt_start *out);
/* Record progress (raises best when mark is further). */
void si_attempts_progress(si_attempts *st, si_mark mark);
/* Step `index` (0-based) is durably done: completed = index + 1. */
void si_attempts_step_done(si_attempts *st, uint32_t index);
/* The attempt failed: close it and count it. Returns the new try count;
 * it is >= SI_ATTEMPTS_MAX_TRIES when the job must be given up. */
unsigned si_attempts_fail(si_attempts *st, unsigned tries);

/* Untrusted-input parser (the cache partition may hold anything); errors
 * name the field. */
si_result si_attempts_parse(const char *json, size_t len, si_attempts *out, si_err *err);
/* malloc'd canonical JSON. */
si_result si_attempts_format(const si_attempts *st, char **out, si_err *err);
/* *found = false (and SI_OK) when path does not exist. */
si_result si_attempts_load(const char *path, si_attempts *out, bool *found, si_err *err);
/* Atomic write (temp file, fsync, rename, fsync dir). */
si_result si_attempts_save(const char *path, const si_attempts *st, si_err *err);

#endif
