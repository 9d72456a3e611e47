/* run.c - the recovery's job, as a story (docs/recovery.md):
 *
 *   start    mount the cache, open the log, read the boot control
 *   load     read the command file (or the factory-reset request), count the
 *            attempt, parse
 *   check    sequence rules, then (update jobs) everything verified against
 *            the signed index before any partition is touched (check.c)
 *   execute  run the verbs' handlers from the resume point (execute.c)
 *   report   last_result.json, consumed files removed, request cleared
 *            (outcome.c)
 *
 * Each step returns true to go on; a step that stops the run has already
 * reported through outcome.c, whose result code is in r->code.
 *
 * Order of the irreversible things, so that a power cut anywhere converges:
 *   boot control request set + attempt recorded   (before any partition)
 *   steps; after each, its completion recorded    (resume point)
 *   result written, cache wiped (factory reset), consumed files removed,
 *   boot control cleared, command file and state removed  (last) */
#include "recovery.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "protocol.h"
#include "rec.h"
#include "sha256.h"
#include "sysmount.h"

/* ------------------------------------------------------------ helpers */

static const char *mode_name(recovery_mode m)
{
    return m == MODE_FACTORY_RESET ? "factory-reset" : "update";
}

void rec_set_step(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->step, sizeof(r->step), fmt, ap);
    va_end(ap);
}

int rec_path(char *out, size_t outlen, const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    if (dl + 1 + nl + 1 > outlen) {
        if (outlen)
            out[0] = '\0';
        return -ENAMETOOLONG;
    }
    memcpy(out, dir, dl);
    out[dl] = '/';
    memcpy(out + dl + 1, name, nl + 1);
    return 0;
}

/* With --partition overrides, nothing is looked up by label (a host must
 * never have its own partitions picked); otherwise libblkid/sysfs. */
si_result rec_part_path(struct rec *r, const char *label, char *out, size_t outlen, si_err *err)
{
    si_result rc = SI_ERR_PARTITION;
    if (!r->o->nparts)
        rc = si_partition_find_path(label, out, outlen, err);
    for (size_t i = 0; i < r->o->nparts; i++) {
        if (strcmp(r->o->parts[i].label, label) == 0) {
            snprintf(out, outlen, "%s", r->o->parts[i].path);
            return SI_OK;
        }
    }
    if (rc == SI_ERR_PARTITION && strcmp(label, "system") == 0) /* an A/B board? */
        return rec_ab_system(r, out, outlen, err);
    if (r->o->nparts)
        return si_err_set(err, SI_ERR_PARTITION, "partition '%s': not given with --partition", label);
    return rc;
}

void rec_unmount_system(struct rec *r)
{
    if (!r->system_mounted)
        return;
    si_err e;
    if (sysmount_umount(r->sysmnt, &e) != SI_OK)
        rlog_msg(&r->log, "warning: %s", e.msg);
    else
        r->system_mounted = false;
}

/* ------------------------------------------------------------ start */

static si_result setup_cache(struct rec *r, si_err *err)
{
    const char *root = r->o->mount_root ? r->o->mount_root : "";
    snprintf(r->sysmnt, sizeof(r->sysmnt), "%s/system", root);
    if (r->o->cache_dir) {
        snprintf(r->cache, sizeof(r->cache), "%s", r->o->cache_dir);
    } else {
        char dev[SI_PART_PATH_MAX];
        si_result res = rec_part_path(r, "cache", dev, sizeof(dev), err);
        if (res != SI_OK)
            return res;
        snprintf(r->cache, sizeof(r->cache), "%s/cache", root);
        if ((res = sysmount_ext4(dev, r->cache, r->o->dry_run, r->o->dry_run, err)) != SI_OK)
            return res;
        r->cache_mounted = true;
    }
    if (rec_path(r->rdir, sizeof(r->rdir), r->cache, SI_PROTO_DIR) < 0)
        return si_err_set(err, SI_ERR_USAGE, "cache directory path too long");
    if (!r->o->dry_run && sysmount_mkdir_p(r->rdir, 0700) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", r->rdir, strerror(errno));
    return SI_OK;
}

static si_result read_bootctl(struct rec *r, si_err *err)
{
    si_result res = rec_part_path(r, "misc", r->misc, sizeof(r->misc), err);
    if (res != SI_OK)
        return res;
    si_err e;
    res = si_grubenv_read_dev(r->misc, &r->env, &e);
    if (res == SI_ERR_IO)
        return si_err_set(err, res, "%s", e.msg);
    if (res != SI_OK) {
        rlog_msg(&r->log, "warning: boot control unreadable (%s); starting a new block", e.msg);
        si_grubenv_init(&r->env);
    }
    const char *inc = si_grubenv_get(&r->env, SI_BOOT_INCOMPLETE);
    r->incomplete = inc && strcmp(inc, SI_BOOT_INCOMPLETE_YES) == 0;
    return SI_OK;
}

/* Nowhere to report or keep state: count the attempt in the boot control. */
static void count_without_cache(struct rec *r)
{
    si_err e;
    if (read_bootctl(r, &e) != SI_OK)
        return;
    unsigned t = rec_env_tries(r) + 1;
    bool last = t >= SI_ATTEMPTS_MAX_TRIES;
    if (last && r->incomplete) {
        /* Never booted half installed: stop here (result on stdout only). */
        r->cache[0] = '\0';
        r->tries = t;
        rec_stop(r, r->code, "the cache partition cannot be used");
        return;
    }
    rec_bootctl_write(r, last ? SI_BOOT_REQUEST_NONE : SI_BOOT_REQUEST_UPDATE, last ? 0 : t, &e);
}

static bool start(struct rec *r)
{
    si_err e;
    si_err_clear(&e);
    if ((r->code = setup_cache(r, &e)) != SI_OK) {
        rlog_msg(&r->log, "error: %s", e.msg);
        count_without_cache(r);
        return false;
    }
    if (!r->o->dry_run) {
        char p[PATH_MAX];
        rec_path(p, sizeof(p), r->rdir, SI_PROTO_LOG);
        int rc = rlog_open_file(&r->log, p);
        if (rc < 0)
            rlog_msg(&r->log, "warning: %s: %s (console log only)", p, strerror(-rc));
    }
    rec_set_step(r, "start");
    si_result res = read_bootctl(r, &e);
    if (res != SI_OK) {
        rec_write_result(r, res, e.msg);
        return false;
    }
    const char *req = si_grubenv_get(&r->env, SI_BOOT_REQUEST);
    if (req && strcmp(req, SI_BOOT_REQUEST_FACTORY_RESET) == 0 && r->mode != MODE_FACTORY_RESET) {
        rlog_msg(&r->log, "boot control requests a factory reset");
        r->mode = MODE_FACTORY_RESET;
    }
    rlog_msg(&r->log, "mode %s%s (request=%s, tries=%u%s)", mode_name(r->mode),
             r->o->dry_run ? ", dry run" : "", req ? req : "unset", rec_env_tries(r),
             r->incomplete ? ", system incomplete" : "");
    return true;
}

/* ------------------------------------------------------------ load */

/* The job's text and identity. *text is NULL for a factory reset or when the
 * file could not be read as one (*why says why: refused after counting). */
struct job_text {
    char *text;
    size_t len;
    si_err why;
    bool unreadable;
};

static bool read_job(struct rec *r, struct job_text *jt)
{
    uint8_t digest[SI_SHA256_LEN];
    if (r->mode == MODE_FACTORY_RESET) {
        static const char fr[] = "factory-reset";
        si_sha256_buf(fr, strlen(fr), digest);
        r->cf->count = 1;
        r->cf->cmds[0] = (si_command){.op = SI_CMD_FORMAT, .target = SI_TARGET_DATA, .line = 0};
        si_hex_encode(digest, sizeof(digest), r->job);
        return true;
    }
    rec_set_step(r, "read command file");
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, SI_PROTO_COMMAND);
    struct stat st;
    if (lstat(p, &st) < 0 && errno == ENOENT) {
        rec_give_up(r, SI_ERR_NOT_FOUND, "nothing to do: no /cache/recovery/" SI_PROTO_COMMAND);
        return false;
    }
    /* Never blocks on a FIFO, never follows a symlink (finding 6). */
    si_result res = si_protocol_read_staged(AT_FDCWD, p, SI_COMMAND_MAX_BYTES, &jt->text,
                                            &jt->len, &jt->why);
    if (res == SI_ERR_IO) {
        r->tries = rec_env_tries(r);
        rec_failed(r, res, jt->why.msg);
        return false;
    }
    if (res != SI_OK) {
        /* Still a job: identified by the message, refused once counted. */
        jt->unreadable = true;
        si_sha256_buf(jt->why.msg, strlen(jt->why.msg), digest);
    } else {
        si_sha256_buf(jt->text, jt->len, digest);
    }
    si_hex_encode(digest, sizeof(digest), r->job);
    return true;
}

/* Attempt accounting, before anything else can crash or hang. */
static bool begin_attempt(struct rec *r)
{
    char sp[PATH_MAX];
    si_err e;
    rec_path(sp, sizeof(sp), r->rdir, SI_PROTO_STATE);
    bool found;
    if (si_attempts_load(sp, &r->st, &found, &e) != SI_OK) {
        rlog_msg(&r->log, "warning: %s; starting afresh", e.msg);
        found = false;
    }
    si_attempt_start as;
    si_attempts_begin(&r->st, found, r->job, rec_env_tries(r), &as);
    r->tries = as.tries;
    r->have_state = true;
    if (as.stopped) {
        rec_set_step(r, "stopped");
        rlog_msg(&r->log, "this job was stopped by an earlier attempt; it is not tried again");
        rec_give_up(r, (si_result)r->st.stop_result, r->st.stop_message);
        return false;
    }
    const si_point *d = &as.died_at;
    if (as.previous_died)
        rlog_msg(&r->log,
                 "the previous attempt died at step %" PRIu32 " (%s), %" PRIu64
                 " bytes: %u time%s in a row at that point (limit %d)",
                 d->step, d->verify ? "verifying" : "working", d->bytes, as.deaths,
                 as.deaths == 1 ? "" : "s", SI_ATTEMPTS_MAX_SAME_DEATHS);
    if (as.exhausted) {
        rec_set_step(r, "step %" PRIu32, r->st.death.step);
        if (as.deaths >= SI_ATTEMPTS_MAX_SAME_DEATHS)
            snprintf(r->msg, sizeof(r->msg),
                     "the recovery died %u times at the same point (step %" PRIu32
                     ", %s, bytes %" PRIu64 "..%" PRIu64 "): a crash or hang, not power cuts",
                     as.deaths, d->step, d->verify ? "verifying" : "working",
                     d->bytes / SI_ATTEMPTS_WINDOW * SI_ATTEMPTS_WINDOW,
                     (d->bytes / SI_ATTEMPTS_WINDOW + 1) * SI_ATTEMPTS_WINDOW);
        else
            snprintf(r->msg, sizeof(r->msg), "%u attempts failed (furthest: %" PRIu32
                     " steps and %" PRIu64 " bytes)", as.tries, r->st.best.step, r->st.best.bytes);
        rec_give_up(r, SI_ERR_TRIES_EXHAUSTED, r->msg);
        return false;
    }
    si_result res = rec_save_state(r, &e);
    if (res != SI_OK) {
        rec_failed(r, res, e.msg);
        return false;
    }
    r->point_saved_at = rlog_now();
    const char *req = r->mode == MODE_FACTORY_RESET ? SI_BOOT_REQUEST_FACTORY_RESET
                                                    : SI_BOOT_REQUEST_UPDATE;
    if ((res = rec_bootctl_write(r, req, r->tries, &e)) != SI_OK) {
        rec_write_result(r, res, e.msg);
        return false;
    }
    return true;
}

static bool load(struct rec *r)
{
    struct job_text jt = {0};
    bool ok = read_job(r, &jt) && begin_attempt(r);
    if (ok && r->mode != MODE_FACTORY_RESET) {
        /* Parsed only now: even a parser crash is a counted attempt. */
        rec_set_step(r, "check command file");
        si_result res = jt.unreadable ? SI_ERR_COMMAND_FILE
                                      : si_command_file_parse(jt.text, jt.len, r->cf, &jt.why);
        if (res != SI_OK) {
            if (!jt.unreadable)
                si_err_prefix(&jt.why, "%s/%s", r->rdir, SI_PROTO_COMMAND);
            rec_refused(r, SI_ERR_COMMAND_FILE, jt.why.msg);
            ok = false;
        }
    }
    free(jt.text);
    return ok;
}

/* ------------------------------------------------------------ check */

static bool all_done_before(struct rec *r)
{
    if (r->st.completed > r->cf->count) {
        rlog_msg(&r->log, "warning: %s: beyond the command file; starting afresh", SI_PROTO_STATE);
        r->st.completed = 0;
    }
    return r->st.completed == r->cf->count;
}

static bool check(struct rec *r)
{
    si_err e;
    si_result res = si_command_file_check(r->cf, &e);
    if (res != SI_OK) {
        rec_refused(r, res, e.msg);
        return false;
    }
    bool formats_system = false;
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        if (c->op == SI_CMD_FORMAT && c->target == SI_TARGET_DATA)
            r->wipe_cache = true;
        if (c->op == SI_CMD_FORMAT && c->target == SI_TARGET_SYSTEM)
            formats_system = true;
    }
    /* Another job's partial install is on the system: only a full image
     * (format system first) can be put over it, never a delta. */
    if (r->incomplete && rec_job_writes_system(r) && !formats_system && !r->st.touched) {
        rec_refused(r, SI_ERR_COMMAND_FILE,
                    "the system partition holds an incomplete install (" SI_BOOT_INCOMPLETE
                    "=1): only a job that formats it (a full image) can be run");
        return false;
    }
    if (all_done_before(r))
        return true; /* only finishing is left */
    if (si_command_file_count(r->cf, SI_CMD_UPDATE) == 0)
        return true;
    rec_set_step(r, "verify");
    double t = rlog_now();
    res = rec_check_update(r, &e);
    si_last_result_add_duration(&r->res, "verify", rlog_now() - t);
    if (res != SI_OK) {
        rec_refused(r, res, e.msg);
        return false;
    }
    if ((res = rec_save_state(r, &e)) != SI_OK) {
        rec_failed(r, res, e.msg);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ execute */

static bool dry_run_report(struct rec *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        const si_command_verb *v = si_command_verb_of(c->op);
        if (v->place == SI_PLACE_PREAMBLE)
            continue;
        char d[SI_COMMAND_NAME_MAX + 64];
        rec_describe(c, d, sizeof(d));
        rlog_msg(&r->log, "would run: %s", d);
        n++;
    }
    rec_set_step(r, "dry run");
    snprintf(r->msg, sizeof(r->msg), "dry run: everything verified; %zu steps not run", n);
    rec_write_result(r, SI_OK, r->msg);
    return false;
}

static bool execute(struct rec *r)
{
    if (all_done_before(r)) {
        rlog_msg(&r->log, "every step was done by an earlier attempt; finishing");
        if (r->o->dry_run) {
            rec_write_result(r, SI_OK, "dry run: every step was done by an earlier attempt");
            return false;
        }
        snprintf(r->msg, sizeof(r->msg), "finished (steps done by an earlier attempt)");
        return true;
    }
    if (r->o->dry_run)
        return dry_run_report(r);
    if (!r->nraw)
        rec_find_raw_partitions(r);
    si_err e;
    si_result res = rec_execute(r, &e);
    if (res != SI_OK) {
        rec_failed(r, res, e.msg);
        return false;
    }
    if (r->mode == MODE_FACTORY_RESET)
        snprintf(r->msg, sizeof(r->msg), "factory reset done");
    else if (r->res.has_to)
        snprintf(r->msg, sizeof(r->msg), "installed build %" PRId64, r->res.to_version);
    else
        snprintf(r->msg, sizeof(r->msg), "%zu commands done", r->cf->count);
    return true;
}

/* ------------------------------------------------------------ the job */

static si_result job(struct rec *r)
{
    double t0 = rlog_now();
    bool go = start(r) && load(r) && check(r) && execute(r);
    si_last_result_add_duration(&r->res, "total", rlog_now() - t0);
    return go ? rec_succeed(r, r->msg) : r->code;
}

si_result recovery_run(const recovery_opts *opts)
{
    struct rec *r = calloc(1, sizeof(*r));
    si_command_file *cf = calloc(1, sizeof(*cf));
    if (!r || !cf) {
        free(r);
        free(cf);
        fprintf(stderr, "sysimage-recovery: out of memory\n");
        return SI_ERR_NOMEM;
    }
    r->o = opts;
    r->mode = opts->mode;
    r->cf = cf;
    rlog_init(&r->log);
    si_grubenv_init(&r->env);
    si_result res = job(r);
    rec_unmount_system(r);
    if (r->trust_init)
        si_trust_free(&r->trust);
    for (size_t i = 0; i < SI_COMMAND_MAX_LINES; i++)
        si_manifest_free(r->mf[i]);
    si_index_free(r->idx);
    rlog_msg(&r->log, "exit %d (%s)", (int)res, si_result_name(res));
    rlog_close(&r->log);
    if (r->cache_mounted) {
        si_err e;
        if (sysmount_umount(r->cache, &e) != SI_OK)
            fprintf(stderr, "sysimage-recovery: warning: %s\n", e.msg);
    }
    free(cf);
    free(r);
    return res;
}
