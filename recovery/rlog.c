/* rlog.c - console + last_log logging and progress display (see rlog.h). */
#include "rlog.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double rlog_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rlog_init(rlog *l)
{
    memset(l, 0, sizeof(*l));
    l->t0 = rlog_now();
}

void rlog_msg(rlog *l, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "[%7.1f] ", rlog_now() - l->t0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sysimage-recovery: %s\n", line + n);
    if (l->file) {
        fprintf(l->file, "%s\n", line);
        fflush(l->file);
    } else {
        size_t len = strlen(line);
        if (l->early_len + len + 1 < sizeof(l->early)) {
            memcpy(l->early + l->early_len, line, len);
            l->early[l->early_len + len] = '\n';
            l->early_len += len + 1;
        }
    }
}

int rlog_open_file(rlog *l, const char *path)
{
    char from[4096], to[4096];
    for (int i = RLOG_HISTORY; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof(from), "%s", path);
        else
            snprintf(from, sizeof(from), "%s.%d", path, i - 1);
        snprintf(to, sizeof(to), "%s.%d", path, i);
        if (rename(from, to) < 0 && errno != ENOENT)
            return -errno;
    }
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fwrite(l->early, 1, l->early_len, f);
    fflush(f);
    l->file = f;
    return 0;
}

void rlog_close(rlog *l)
{
    if (!l->file)
        return;
    fflush(l->file);
    fsync(fileno(l->file));
    fclose(l->file);
    l->file = NULL;
}

void rprogress_init(rprogress *p, rlog *l, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->log = l;
    p->total = total;
    p->last_pct = -100;
}

static void fmt_duration(double s, char *out, size_t outlen)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, outlen, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(out, outlen, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, outlen, "%lds", t);
}

void rprogress_update(rprogress *p, const char *what, uint64_t done)
{
    double now = rlog_now();
    uint64_t all = p->base + done;
    if (p->t0 == 0)
        p->t0 = now;
    if (p->total == 0 || all > p->total)
        return;
    int pct = (int)(all * 100 / p->total);
    if (pct - p->last_pct < 5 && !(now - p->last_print >= 30 && pct != p->last_pct) &&
        all != p->total)
        return;
    if (pct == p->last_pct)
        return;
    char eta[64] = "";
    double elapsed = now - p->t0;
    if (all > 0 && elapsed >= 2 && all < p->total) {
        char d[48];
        fmt_duration(elapsed * (double)(p->total - all) / (double)all, d, sizeof(d));
        snprintf(eta, sizeof(eta), ", about %s left", d);
    }
    rlog_msg(p->log, "%s: %d%% (%.1f of %.1f MiB%s)", what, pct, (double)all / 1048576.0,
             (double)p->total / 1048576.0, eta);
    p->last_pct = pct;
    p->last_print = now;
}

void rprogress_step_done(rprogress *p, uint64_t size)
{
    p->base += size;
}
