/* progress.c - see progress.h. */
#include "progress.h"

#include <time.h>
#include <unistd.h>

double si_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void si_progress_init(si_progress *p, FILE *out, const char *label, int tty)
{
    p->out = out;
    p->label = label ? label : "progress";
    p->tty = tty < 0 ? isatty(fileno(out)) == 1 : tty != 0;
    p->t0 = -1;
    p->last_t = -1;
    p->last_pct = -1;
    p->line_open = false;
}

static void eta(double el, uint64_t done, uint64_t total, char *buf, size_t sz)
{
    buf[0] = '\0';
    if (done == 0 || done >= total || el < 1)
        return;
    long s = (long)(el * (double)(total - done) / (double)done + 0.5);
    if (s >= 60)
        snprintf(buf, sz, ", about %ldm%02lds left", s / 60, s % 60);
    else
        snprintf(buf, sz, ", about %lds left", s);
}

void si_progress_update_at(si_progress *p, uint64_t done, uint64_t total, double now)
{
    if (!total || done > total)
        return;
    if (p->t0 < 0)
        p->t0 = now;
    int pct = (int)(done * 100 / total);
    bool last = done == total;
    if (pct == p->last_pct)
        return;
    if (p->tty) {
        if (!last && p->last_t >= 0 && now - p->last_t < SI_PROGRESS_TTY_INTERVAL)
            return;
    } else if (!last && p->last_pct >= 0 && pct - p->last_pct < SI_PROGRESS_STEP_PCT &&
               now - p->last_t < SI_PROGRESS_STEP_SECONDS) {
        return;
    }
    char e[48];
    eta(now - p->t0, done, total, e, sizeof(e));
    double mib = (double)done / 1048576.0, tmib = (double)total / 1048576.0;
    if (p->tty) {
        fprintf(p->out, "\r%s: %3d%% (%.1f of %.1f MiB%s)\033[K", p->label, pct, mib, tmib, e);
        p->line_open = true;
        if (last) {
            fputc('\n', p->out);
            p->line_open = false;
        }
    } else {
        fprintf(p->out, "%s: %d%% (%.1f of %.1f MiB%s)\n", p->label, pct, mib, tmib, e);
    }
    fflush(p->out);
    p->last_pct = pct;
    p->last_t = now;
}

void si_progress_update(si_progress *p, uint64_t done, uint64_t total)
{
    si_progress_update_at(p, done, total, si_progress_now());
}

void si_progress_end(si_progress *p)
{
    if (p->line_open) {
        fputc('\n', p->out);
        fflush(p->out);
        p->line_open = false;
    }
}
