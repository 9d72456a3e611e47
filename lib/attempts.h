/* attempts.h - the recovery's attempt accounting (docs/recovery.md).
 *
 * A job (one command file, or a factory reset) may take several attempts:
 * power cuts, crashes and failures restart the recovery. The state of the job
 * lives in a small JSON file on the cache partition, written atomically:
 *
 *   {"format": 1, "job": "<64 hex>", "open": true, "touched": true,
 *    "completed": 3, "best": {"step": 3, "bytes": 1048576},
 *    "attempt": 5, "at": {"step": 3, "bytes": 2097152, "verify": false},
 *    "death": {"step": 3, "bytes": 2097152, "verify": false}, "deaths": 1,
 *    "stopped": false}
 *
 * `completed` is the number of steps durably done (the resume point), `best`
 * the furthest progress mark any attempt reached (steps done, bytes applied in
 * the step being worked on; reported, never used to count), `open` that an
 * attempt began and has not ended (seen at the next start, it died: power cut,
 * crash or hang), `touched` that a partition was modified by some attempt,
 * `attempt` the number of attempts begun.
 *
 * `at` is where the open attempt last recorded itself: the step it works on
 * (`completed` while verifying), whether it was still verifying, and the bytes
 * hashed or applied in it, recorded each time the count enters a new
 * SI_ATTEMPTS_WINDOW (and every second). An attempt that died left its `at`:
 * the *death point*. Two death points are the same when step, verify and the
 * window (bytes / SI_ATTEMPTS_WINDOW) are equal.
 *
 * What counts (the failure signatures):
 *   - an attempt that failed with an error: the boot control's try counter
 *     +1 (si_attempts_fail); SI_ATTEMPTS_MAX_TRIES of them stop the job;
 *   - SI_ATTEMPTS_MAX_SAME_DEATHS consecutive deaths at the same death point
 *     (`deaths` counts them; a death elsewhere restarts at 1, a failure at 0).
 * A death at any other point does not count: random power cuts land at
 * random points, which keep moving (docs/recovery.md says why they cannot
 * imitate a repeated death).
 *
 * A stopped job (`stopped`, with the result and message that stopped it) is
 * not tried again: every later start of the same job reports it again.
 *
 * Nothing here is trusted for a security decision: the file is on the cache,
 * which the normal OS writes. It only steers counting and resuming; the
 * installed build is always read from the system partition. Unknown fields,
 * such as the `start` and `from_version` older recoveries wrote, are ignored;
 * fields this version added are optional. */
#ifndef SI_ATTEMPTS_H
#define SI_ATTEMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_ATTEMPTS_MAX_TRIES 3        /* failed attempts of a job */
#define SI_ATTEMPTS_MAX_SAME_DEATHS 3  /* consecutive deaths at the same point */
#define SI_ATTEMPTS_WINDOW (1u << 20)  /* bytes: the grain of a death point */
#define SI_ATTEMPTS_MAX_BYTES 4096
#define SI_ATTEMPTS_JOB_LEN 64
#define SI_ATTEMPTS_MSG_MAX 1024       /* stop message, NUL included */

typedef struct si_mark {
    uint32_t step;   /* steps completed */
    uint64_t bytes;  /* bytes applied in the step being worked on */
} si_mark;

/* Where an attempt is: the step it works on, whether it is still verifying
 * (before the steps), and the bytes hashed or applied in it. */
typedef struct si_point {
    uint32_t step;
    bool verify;
    uint64_t bytes;
} si_point;

typedef struct si_attempts {
    char job[SI_ATTEMPTS_JOB_LEN + 1];
    bool open;
    bool touched;
    uint32_t completed;
    si_mark best;
    uint32_t attempt;
    si_point at;
    si_point death;
    uint32_t deaths;
    bool stopped;
    int32_t stop_result;
    char stop_message[SI_ATTEMPTS_MSG_MAX];
} si_attempts;

/* What si_attempts_begin decided. */
typedef struct si_attempt_start {
    unsigned tries;          /* new value of the boot control's counter */
    bool new_job;            /* no state, or the state of another job */
    bool previous_died;      /* the previous attempt neither succeeded nor failed */
    si_point died_at;        /* ... where (its last recorded point) */
    unsigned deaths;         /* consecutive deaths at that point, this one included */
    bool stopped;            /* the job was stopped earlier: report it again */
    bool exhausted;          /* a limit is reached now: stop the job */
} si_attempt_start;

/* <0, 0, >0 like strcmp. */
int si_mark_cmp(si_mark a, si_mark b);
/* The same death point: same step, same phase, same SI_ATTEMPTS_WINDOW. */
bool si_point_same(si_point a, si_point b);

/* Begin an attempt of `job` (64 lowercase hex chars). `st` holds the stored
 * state when `found`; `tries` is the boot control's counter. On return st is
 * the state to store before working (open, attempt + 1, at = verifying from
 * the resume point) unless stopped or exhausted. A death is counted once: the
 * state written after this call no longer holds the dead attempt. */
void si_attempts_begin(si_attempts *st, bool found, const char *job, unsigned tries,
                       si_attempt_start *out);
/* The attempt is at `p`; raises best when p is past the check. Returns true
 * when p enters a new window (or another step/phase) compared with the point
 * recorded before: the caller saves the state then. */
bool si_attempts_at(si_attempts *st, si_point p);
/* Step `index` (0-based) is durably done: completed = index + 1. */
void si_attempts_step_done(si_attempts *st, uint32_t index);
/* The attempt failed: close it and count it. Returns the new try count;
 * it is >= SI_ATTEMPTS_MAX_TRIES when the job must be stopped. */
unsigned si_attempts_fail(si_attempts *st, unsigned tries);
/* Stop the job: not tried again; `message` is kept (truncated) for reports. */
void si_attempts_stop(si_attempts *st, si_result code, const char *message);

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
