/* rlog.h - the recovery's log: every line goes to the console (stderr) and
 * to /cache/recovery/last_log once the cache is mounted (lines logged
 * before are kept in memory and written then). Progress of long steps is
 * printed sparingly: the serial console under TCG is slow. */
#ifndef SI_RECOVERY_RLOG_H
#define SI_RECOVERY_RLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define RLOG_HISTORY 5       /* last_log.1 .. last_log.5 */
#define RLOG_EARLY_MAX 16384 /* bytes kept before the log file opens */

typedef struct rlog {
    FILE *file;
    char early[RLOG_EARLY_MAX];
    size_t early_len;
    double t0;               /* monotonic seconds at start */
} rlog;

double rlog_now(void);       /* CLOCK_MONOTONIC seconds */
void rlog_init(rlog *l);
void rlog_msg(rlog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rotate path -> path.1 -> ... -> path.RLOG_HISTORY, open path, write the
 * early lines. Returns 0 or -errno (the log then stays console-only). */
int rlog_open_file(rlog *l, const char *path);
void rlog_close(rlog *l);    /* flush, fsync, close */

/* Console progress over a known number of bytes. */
typedef struct rprogress {
    rlog *log;
    uint64_t total;          /* bytes of all the steps */
    uint64_t base;           /* bytes of the steps already finished */
    double t0;               /* when the first byte was counted */
    double last_print;
    int last_pct;
} rprogress;

void rprogress_init(rprogress *p, rlog *l, uint64_t total);
/* done = bytes of the current step; prints at most every 5 % or 30 s. */
void rprogress_update(rprogress *p, const char *what, uint64_t done);
/* The current step of `size` bytes is finished. */
void rprogress_step_done(rprogress *p, uint64_t size);

#endif
