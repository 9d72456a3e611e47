/* abslot.c - the recovery on an A/B board (docs/ab.md, "The recovery on an
 * A/B device"): no partition is labelled `system`, the system lives in the
 * slots `system_a` and `system_b`. An update-mode job (a repair: the full
 * image of the installed build) rewrites the GOOD slot, `ab_active` in
 * GRUB's counters on the ESP: the slot GRUB boots when no trial is pending
 * and the one the device falls back to. The installed build, the trust
 * record and every check are those of that slot, as for `system`. Once the
 * job is durably done, a pending trial of the other slot is withdrawn
 * (ab_try=, ab_tries=0), so the next boot is the repaired slot; a rollback's
 * report (ab_failed) stays. The counters are read and written by the board's
 * sysimage-bootcount, as /init and the normal OS do. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "partitions.h"
#include "rec.h"
#include "rlog.h"

/* The partition is there: given with --partition, or found by its GPT label. */
static bool have_part(struct rec *r, const char *label)
{
    char path[SI_PART_PATH_MAX];
    si_err e;
    return rec_part_path(r, label, path, sizeof(path), &e) == SI_OK;
}

/* Run `bootcount get|set ...`; with out, its stdout (NUL-terminated). */
static si_result bootcount(struct rec *r, char *const args[], char *out, size_t outlen, si_err *err)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return si_err_set(err, SI_ERR_IO, "pipe: %s", strerror(errno));
    char *argv[8] = {(char *)r->o->bootcount};
    for (size_t i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    char drop[256];
    while ((k = out && n + 1 < outlen ? read(pfd[0], out + n, outlen - 1 - n)
                                      : read(pfd[0], drop, sizeof(drop))) > 0)
        if (out && n + 1 < outlen)
            n += (size_t)k;
    if (out)
        out[n] = '\0';
    close(pfd[0]);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return si_err_set(err, SI_ERR_IO, "%s %s: failed (status %d)", argv[0], args[0],
                          pid < 0 ? -1 : st);
    return SI_OK;
}

/* ab_active from `bootcount get`: 'b' only when it says so (as GRUB reads it) */
static si_result good_slot(struct rec *r, char *slot, si_err *err)
{
    char buf[2048];
    char *get[] = {"get", NULL};
    si_result rc = bootcount(r, get, buf, sizeof(buf), err);
    if (rc != SI_OK)
        return si_err_prefix(err, "A/B board: cannot read GRUB's counters");
    *slot = 'a';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        if (strcmp(line, "ab_active=b") == 0)
            *slot = 'b';
    return SI_OK;
}

si_result rec_ab_system(struct rec *r, char *out, size_t outlen, si_err *err)
{
    if (!r->ab_slot) {
        if (!have_part(r, "system_a") || !have_part(r, "system_b"))
            return si_err_set(err, SI_ERR_PARTITION, "no partition labelled 'system' (nor "
                              "'system_a' and 'system_b' of an A/B board)");
        si_result rc = good_slot(r, &r->ab_slot, err);
        if (rc != SI_OK)
            return rc;
        rlog_msg(&r->log, "A/B board: the job is for slot %c (the good slot, ab_active)",
                 r->ab_slot);
    }
    char label[16];
    snprintf(label, sizeof(label), "system_%c", r->ab_slot);
    return rec_part_path(r, label, out, outlen, err);
}

void rec_ab_job_done(struct rec *r)
{
    if (!r->ab_slot || !rec_job_writes_system(r))
        return;
    char active[16];
    snprintf(active, sizeof(active), "ab_active=%c", r->ab_slot);
    char *set[] = {"set", active, "ab_try=", "ab_tries=0", "ab_try_build=", NULL};
    si_err e;
    if (bootcount(r, set, NULL, 0, &e) != SI_OK)
        rlog_msg(&r->log, "warning: %s (a pending trial of the other slot stays)", e.msg);
    else
        rlog_msg(&r->log, "A/B board: slot %c repaired; GRUB boots it next (no trial pending)",
                 r->ab_slot);
}
