/* progress.h - progress output that fits where it goes (issue 11 item 4).
 *
 * On a terminal: one line redrawn in place ("\r"), at most every 0.2 s.
 * Anywhere else (a log file, CI, a serial console): a plain line each time
 * another SI_PROGRESS_STEP_PCT percent is done or SI_PROGRESS_STEP_SECONDS
 * have passed with progress, never carriage returns. */
#ifndef SI_PROGRESS_H
#define SI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SI_PROGRESS_STEP_PCT 10
#define SI_PROGRESS_STEP_SECONDS 5.0
#define SI_PROGRESS_TTY_INTERVAL 0.2

typedef struct si_progress {
    FILE *out;
    const char *label;
    bool tty;
    double t0, last_t;
    int last_pct;
    bool line_open;           /* tty: a line without its '\n' is on screen */
} si_progress;

/* tty: 1 or 0 to force, -1 to ask isatty(fileno(out)). */
void si_progress_init(si_progress *p, FILE *out, const char *label, int tty);
/* done/total bytes; now: monotonic seconds (si_progress_now()). */
void si_progress_update_at(si_progress *p, uint64_t done, uint64_t total, double now);
void si_progress_update(si_progress *p, uint64_t done, uint64_t total);
/* End the line (terminal) after success or failure. */
void si_progress_end(si_progress *p);
double si_progress_now(void);

#endif
