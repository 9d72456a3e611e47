/* outcome.c - how a recovery run ends: attempt counting in the boot control
 * and the state file, last_result.json, and finishing a job (cache wipe,
 * consumed files removed, request cleared). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "protocol.h"
#include "rec.h"
#include "sysmount.h"

static const char *mode_name(recovery_mode m)
{
    return m == MODE_FACTORY_RESET ? "factory-reset" : "update";
}

/* ------------------------------------------------------------ boot control */

static const char *mode_request(const struct rec *r)
{
    return r->mode == MODE_FACTORY_RESET ? SI_BOOT_REQUEST_FACTORY_RESET : SI_BOOT_REQUEST_UPDATE;
}

/* Clearing or keeping the request must not fail for lack of room: other
 * variables are dropped first (issue 10 finding 8). While the system is
 * incomplete the request is never cleared (issue 15): a boot loader that does
 * not know system_incomplete still comes back here. One write of the block
 * carries the three keys. */
si_result rec_bootctl_write(struct rec *r, const char *request, unsigned tries, si_err *err)
{
    if (r->o->dry_run)
        return SI_OK;
    if (r->incomplete && strcmp(request, SI_BOOT_REQUEST_NONE) == 0)
        request = SI_BOOT_REQUEST_UPDATE;
    char t[16];
    snprintf(t, sizeof(t), "%u", tries);
    /* Complete: the mark is removed (an unset system_incomplete is 0 to the
     * boot loader), so a block that never had it does not grow. */
    if (!r->incomplete)
        si_grubenv_unset(&r->env, SI_BOOT_INCOMPLETE);
    const char *keys[3] = {SI_BOOT_REQUEST, SI_BOOT_TRIES, SI_BOOT_INCOMPLETE};
    const char *vals[3] = {request, t, SI_BOOT_INCOMPLETE_YES};
    size_t dropped = 0;
    si_result res = SI_OK;
    for (int i = 0; i < (r->incomplete ? 3 : 2) && res == SI_OK; i++) {
        size_t d = 0;
        res = si_grubenv_set_keeping(&r->env, keys[i], vals[i], si_protocol_boot_keys,
                                     si_protocol_boot_keys_count, &d, err);
        dropped += d;
    }
    if (dropped)
        rlog_msg(&r->log, "boot control full: dropped %zu other variable%s", dropped,
                 dropped == 1 ? "" : "s");
    if (res == SI_OK)
        res = si_grubenv_write_dev(r->misc, &r->env, err);
    if (res != SI_OK)
        return si_err_prefix(err, "boot control on %s", r->misc);
    return SI_OK;
}

si_result rec_mark_incomplete(struct rec *r, si_err *err)
{
    if (r->incomplete || r->o->dry_run)
        return SI_OK;
    r->incomplete = true;
    rlog_msg(&r->log, "boot control: " SI_BOOT_INCOMPLETE "=1 until the job is done");
    return rec_bootctl_write(r, mode_request(r), r->tries, err);
}

bool rec_job_writes_system(const struct rec *r)
{
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        if (c->op == SI_CMD_UPDATE || c->op == SI_CMD_MOUNT || c->op == SI_CMD_UNMOUNT ||
            (c->op == SI_CMD_FORMAT && c->target == SI_TARGET_SYSTEM))
            return true;
    }
    return false;
}

unsigned rec_env_tries(struct rec *r)
{
    const char *v = si_grubenv_get(&r->env, SI_BOOT_TRIES);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || v[0] == '-' || n > 1000) {
        rlog_msg(&r->log, "boot control: " SI_BOOT_TRIES "=%s is not a count; taken as %d", v,
                 SI_ATTEMPTS_MAX_TRIES);
        return SI_ATTEMPTS_MAX_TRIES;
    }
    return (unsigned)n;
}

/* ------------------------------------------------------------ state */

si_result rec_save_state(struct rec *r, si_err *err)
{
    if (r->o->dry_run || !r->have_state)
        return SI_OK;
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, SI_PROTO_STATE);
    return si_attempts_save(p, &r->st, err);
}

static void remove_state(struct rec *r)
{
    if (r->o->dry_run)
        return;
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, SI_PROTO_STATE);
    if (unlink(p) == 0)
        si_fsync_parent_dir(p);
    r->have_state = false;
}

void rec_point(struct rec *r, si_point p)
{
    double now = rlog_now();
    if (!si_attempts_at(&r->st, p) && now - r->point_saved_at < 1.0)
        return;
    r->point_saved_at = now;
    si_err e;
    if (rec_save_state(r, &e) != SI_OK)
        rlog_msg(&r->log, "warning: %s", e.msg);
}

/* ------------------------------------------------------------ results */

void rec_write_result(struct rec *r, si_result code, const char *msg)
{
    r->code = code;
    r->res.result = code;
    r->res.message = msg;
    r->res.mode = mode_name(r->mode);
    r->res.step = r->step;
    r->res.dry_run = r->o->dry_run;
    if (code == SI_OK)
        rlog_msg(&r->log, "result: ok: %s", msg);
    else
        rlog_msg(&r->log, "result: %s (%d): %s", si_result_name(code), (int)code, msg);
    si_err e;
    if (r->o->dry_run || !r->cache[0]) {
        char *json;
        if (si_last_result_format(&r->res, &json, &e) == SI_OK) {
            fputs(json, stdout);
            free(json);
        }
        return;
    }
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, SI_PROTO_RESULT);
    if (si_last_result_write(p, &r->res, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
}

/* Give up the job: report, clear the request, forget the state. On an
 * incomplete system the job is stopped instead: nothing clears the request. */
si_result rec_give_up(struct rec *r, si_result code, const char *msg)
{
    if (r->incomplete)
        return rec_stop(r, code, msg);
    rec_unmount_system(r);
    rec_write_result(r, code, msg);
    si_err e;
    if (rec_bootctl_write(r, SI_BOOT_REQUEST_NONE, 0, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    remove_state(r);
    return code;
}

static void write_stay_file(struct rec *r, const char *text)
{
    if (!r->o->stay_file || r->o->dry_run)
        return;
    int rc = si_write_file_atomic(r->o->stay_file, text, strlen(text), 0644);
    if (rc < 0)
        rlog_msg(&r->log, "warning: %s: %s", r->o->stay_file, strerror(-rc));
}

si_result rec_stop(struct rec *r, si_result code, const char *msg)
{
    rec_unmount_system(r);
    si_err e;
    if (r->have_state) {
        si_attempts_stop(&r->st, code, msg);
        if (rec_save_state(r, &e) != SI_OK)
            rlog_msg(&r->log, "error: %s", e.msg);
    }
    rec_write_result(r, code, msg);
    if (rec_bootctl_write(r, mode_request(r), r->tries, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    static const char what[] =
        "the system partition holds an incomplete install: it will not be booted.\n"
        "the job is stopped: %s (%d): %s\n"
        "what can be done: stage a new job that installs a full image (format system)\n"
        "in /cache/recovery (it is picked up at the next power-on), or flash the device\n"
        "(factory flash). The recovery stays here; power off to continue.\n";
    char text[sizeof(what) + SI_ATTEMPTS_MSG_MAX + 64];
    snprintf(text, sizeof(text), what, si_result_name(code), (int)code, msg);
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        rlog_msg(&r->log, "STOPPED: %s", line);
        *nl = '\n';
    }
    write_stay_file(r, text);
    return code;
}

/* A failed attempt: counted; retried (request kept) until exhausted. */
si_result rec_failed(struct rec *r, si_result code, const char *msg)
{
    rec_unmount_system(r);
    r->tries = si_attempts_fail(&r->st, r->tries);
    if (r->tries >= SI_ATTEMPTS_MAX_TRIES) {
        char m[sizeof(r->msg) + 64];
        snprintf(m, sizeof(m), "gave up after %u attempts; last: %s: %s", r->tries,
                 si_result_name(code), msg);
        return rec_give_up(r, SI_ERR_TRIES_EXHAUSTED, m);
    }
    si_err e;
    if (rec_save_state(r, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    rec_write_result(r, code, msg);
    if (rec_bootctl_write(r, mode_request(r), r->tries, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    if (!r->o->dry_run)
        rlog_msg(&r->log, "attempt %u of %d failed; the recovery will run again", r->tries,
                 SI_ATTEMPTS_MAX_TRIES);
    return code;
}

/* Errors of the machine rather than verdicts on the staged content: worth
 * another attempt. */
static bool transient(si_result code)
{
    return code == SI_ERR_IO || code == SI_ERR_NOMEM || code == SI_ERR_MOUNT ||
           code == SI_ERR_PARTITION || code == SI_ERR_INTERNAL;
}

/* Refused before touching anything: the installed system is intact, and
 * retrying cannot change a verdict on signed content, so boot it. Once an
 * attempt of this job modified a partition, a refusal is a failure. */
si_result rec_refused(struct rec *r, si_result code, const char *msg)
{
    if ((r->have_state && r->st.touched) || transient(code))
        return rec_failed(r, code, msg);
    return rec_give_up(r, code, msg);
}

/* ------------------------------------------------------------ finishing */

static bool keep_in_rdir(const char *name)
{
    return strcmp(name, SI_PROTO_COMMAND) == 0 || strcmp(name, SI_PROTO_STATE) == 0 ||
           strcmp(name, SI_PROTO_RESULT) == 0 ||
           strncmp(name, SI_PROTO_LOG, strlen(SI_PROTO_LOG)) == 0;
}

static si_result remove_entry(int dfd, const char *dir, const char *name, si_err *err)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? SI_OK
                               : si_err_set(err, SI_ERR_IO, "%s/%s: %s", dir, name, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char p[PATH_MAX];
        rec_path(p, sizeof(p), dir, name);
        si_result res = si_empty_dir(p, err);
        if (res != SI_OK)
            return res;
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", p, strerror(errno));
        return SI_OK;
    }
    if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
        return si_err_set(err, SI_ERR_IO, "%s/%s: %s", dir, name, strerror(errno));
    return SI_OK;
}

/* Factory reset of the cache: everything goes but lost+found and, in
 * recovery/, the logs, the result and what finishing still needs. */
static si_result wipe_cache(struct rec *r, si_err *err)
{
    const char *dirs[2] = {r->cache, r->rdir};
    for (int d = 0; d < 2; d++) {
        DIR *dp = opendir(dirs[d]);
        if (!dp)
            return si_err_set(err, SI_ERR_IO, "%s: %s", dirs[d], strerror(errno));
        struct dirent *de;
        si_result res = SI_OK;
        while (res == SI_OK && (de = readdir(dp))) {
            const char *n = de->d_name;
            if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                continue;
            if (d == 0 && (strcmp(n, "lost+found") == 0 || strcmp(n, SI_PROTO_DIR) == 0))
                continue;
            if (d == 1 && keep_in_rdir(n))
                continue;
            res = remove_entry(dirfd(dp), dirs[d], n, err);
        }
        closedir(dp);
        if (res != SI_OK)
            return res;
    }
    sync();
    return SI_OK;
}

/* The staged files the job named (keyrings, index, updates). */
static void remove_consumed(struct rec *r)
{
    size_t pos = 0;
    const char *name;
    while ((name = si_command_file_next_name(r->cf, &pos, NULL))) {
        char p[PATH_MAX];
        rec_path(p, sizeof(p), r->rdir, name);
        if (unlink(p) < 0 && errno != ENOENT)
            rlog_msg(&r->log, "warning: %s: %s", p, strerror(errno));
    }
}

si_result rec_succeed(struct rec *r, const char *msg)
{
    si_err e;
    rec_set_step(r, "done");
    rec_write_result(r, SI_OK, msg);
    if (r->wipe_cache) {
        rlog_msg(&r->log, "factory reset: clearing the cache (logs kept)");
        if (wipe_cache(r, &e) != SI_OK)
            rlog_msg(&r->log, "warning: %s", e.msg);
    }
    remove_consumed(r);
    /* The job's last step is durably done (every step synced, state says
     * so): only now is the system complete. A job that does not write the
     * system (factory reset) leaves an earlier job's mark as it is. */
    if (rec_job_writes_system(r))
        r->incomplete = false;
    if (rec_bootctl_write(r, SI_BOOT_REQUEST_NONE, 0, &e) != SI_OK) {
        /* The result says ok but the next boot comes back here: the state
         * says every step is done, so that run only finishes again. */
        rlog_msg(&r->log, "error: %s", e.msg);
        return SI_OK;
    }
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, SI_PROTO_COMMAND);
    if (unlink(p) < 0 && errno != ENOENT)
        rlog_msg(&r->log, "warning: %s: %s", p, strerror(errno));
    remove_state(r);
    si_fsync_parent_dir(p);
    rec_ab_job_done(r);
    return SI_OK;
}
