/* execute.c - the verbs of the command file, one handler each (the verbs'
 * syntax and sequence rules are lib/command's table), and the loop that runs
 * them in order from the resume point, recording each step's completion. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "apply.h"
#include "mkfs.h"
#include "sha256.h"
#include "version.h"
#include "rec.h"
#include "sysmount.h"

#include <stdlib.h>

struct exec {
    struct rec *r;
    rprogress prog;
    size_t nupdates, upd;     /* update lines in the job, and this one's number */
    uint32_t step;            /* index of the running command */
    const char *name;         /* progress label */
    bool fresh;               /* the system was formatted by this run, no update since */
};

typedef si_result (*handler_fn)(struct exec *x, const si_command *c, si_err *err);

/* ------------------------------------------------------------ handlers */

/* Preamble verbs (load_keyring, index, image) were consumed by the check. */
static si_result do_nothing(struct exec *x, const si_command *c, si_err *err)
{
    (void)x, (void)c, (void)err;
    return SI_OK;
}

static si_result do_format(struct exec *x, const si_command *c, si_err *err)
{
    struct rec *r = x->r;
    si_result res;
    double t = rlog_now();
    if (c->target == SI_TARGET_SYSTEM) {
        if ((res = rec_part_path(r, "system", r->system, sizeof(r->system), err)) != SI_OK)
            return res;
        si_mkfs_opts mo;
        si_mkfs_opts_init(&mo);
        mo.label = "system";
        rlog_msg(&r->log, "formatting system (%s)", r->system);
        res = si_mkfs_ext4(r->system, &mo, err);
        /* the next update (the full) writes its members at their final names:
         * not on a resumed run, whose format was an earlier attempt's */
        x->fresh = res == SI_OK;
        si_last_result_add_duration(&r->res, "format", rlog_now() - t);
        return res;
    }
    if ((res = rec_part_path(r, "userdata", r->userdata, sizeof(r->userdata), err)) != SI_OK)
        return res;
    rlog_msg(&r->log, "factory reset: formatting userdata (%s)", r->userdata);
    res = si_mkfs_ext4_keep_label(r->userdata, "userdata", NULL, err);
    si_last_result_add_duration(&r->res, "format_data", rlog_now() - t);
    return res;
}

/* Mounted read-write, the system first receives the trust record raised by
 * this job (a `format system` just before never loses it). */
static si_result do_mount(struct exec *x, const si_command *c, si_err *err)
{
    (void)c;
    struct rec *r = x->r;
    si_result res = rec_part_path(r, "system", r->system, sizeof(r->system), err);
    if (res == SI_OK)
        res = sysmount_ext4(r->system, r->sysmnt, false, false, err);
    if (res != SI_OK)
        return res;
    r->system_mounted = true;
    if (!r->idx)
        return SI_OK;
    si_trust_record_raise(&r->trec, &r->trust, r->idx->generated_at_epoch);
    return si_trust_record_write(r->sysmnt, &r->trec, err);
}

static si_result do_unmount(struct exec *x, const si_command *c, si_err *err)
{
    (void)c;
    si_result res = sysmount_umount(x->r->sysmnt, err);
    if (res == SI_OK)
        x->r->system_mounted = false;
    return res;
}

static void on_progress(uint64_t done, uint64_t total, void *ctx)
{
    (void)total;
    struct exec *x = ctx;
    rprogress_update(&x->prog, x->name, done);
    /* The attempt's point is saved each time it enters a new window (1 MiB
     * of input) and every second: where an attempt dies is known to the
     * window, and a cut right after an earlier one still shows progress. */
    rec_point(x->r, (si_point){x->step, false, done});
    if (x->r->o->fault_apply_bytes && done >= x->r->o->fault_apply_bytes) {
        /* Only a test build sets this (recovery/main.c, SI_TEST_FAULTS). */
        rlog_msg(&x->r->log, "TEST FAULT: crashing at %" PRIu64 " bytes", done);
        rlog_close(&x->r->log);
        abort();
    }
}

static uint64_t file_size(struct rec *r, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    rec_path(p, sizeof(p), r->rdir, name);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The version record a file installed in one read put on the system must
 * name the build the job installs (checked before the read for other files). */
static si_result check_applied_version(struct rec *r, si_err *err)
{
    si_version v;
    si_result res = si_version_read_tree(r->sysmnt, &v, err);
    if (res != SI_OK)
        return res;
    if (v.build != r->plan.target)
        return si_err_set(err, SI_ERR_DOWNGRADE, "the version record says build %" PRId64
                          ", the index's image says %" PRId64, v.build, r->plan.target);
    return SI_OK;
}

static si_result do_update(struct exec *x, const si_command *c, si_err *err)
{
    struct rec *r = x->r;
    char p[PATH_MAX], label[64];
    rec_path(p, sizeof(p), r->rdir, c->file);
    snprintf(label, sizeof(label), "update %zu/%zu", x->upd, x->nupdates);
    rlog_msg(&r->log, "%s: applying %s", label, c->file);
    x->name = label;
    si_apply_opts ao = {
        .target_dir = r->sysmnt,
        .format = false,
        .fresh = x->fresh,   /* the system stays marked incomplete until the job ends */
        .partitions = r->raw,
        .npartitions = r->nraw,
        .progress = on_progress,
        .progress_ctx = x,
    };
    if (x->fresh)
        rlog_msg(&r->log, "%s: onto the system formatted just before: members written at "
                 "their final names (the system stays marked incomplete until the end)", label);
    x->fresh = false;
    const char *files[1] = {p};
    size_t ci = (size_t)(c - r->cf->cmds);
    si_apply_expect ex = {.manifest = r->mf[ci]};
    if (r->mf[ci]) {
        /* one read: members checked against the manifest, the file against the index */
        ex.size = r->entry[ci]->size;
        si_hex_decode(r->entry[ci]->checksum, ex.sha256, sizeof(ex.sha256));
        ao.expect = &ex;
    }
    double t = rlog_now();
    si_result res = si_apply_files(&ao, files, 1, err);
    si_last_result_add_duration(&r->res, "apply", rlog_now() - t);
    if (res == SI_OK && r->check_version[ci])
        res = check_applied_version(r, err);
    if (res != SI_OK)
        return si_err_prefix(err, "%s", c->file);
    uint64_t sz = file_size(r, c->file);
    rprogress_update(&x->prog, label, sz);
    rprogress_step_done(&x->prog, sz);
    return SI_OK;
}

/* ------------------------------------------------------------ the table */

/* One entry per verb of lib/command's table: the handler, whether it
 * modifies a partition, and what a resumed run redoes for a step an earlier
 * attempt completed (only the mount state is rebuilt). */
static const struct {
    handler_fn run;
    bool touches;
    handler_fn replay;
} handlers[SI_CMD_COUNT] = {
    [SI_CMD_LOAD_KEYRING] = {do_nothing, false, NULL},
    [SI_CMD_INDEX] = {do_nothing, false, NULL},
    [SI_CMD_IMAGE] = {do_nothing, false, NULL},
    [SI_CMD_FORMAT] = {do_format, true, NULL},
    [SI_CMD_MOUNT] = {do_mount, true, do_mount},
    [SI_CMD_UPDATE] = {do_update, true, NULL},
    [SI_CMD_UNMOUNT] = {do_unmount, true, do_unmount},
};

void rec_describe(const si_command *c, char *out, size_t outlen)
{
    si_command_describe(c, out, outlen);
}

/* ------------------------------------------------------------ the loop */

static si_result run_step(struct exec *x, size_t i, si_err *err)
{
    struct rec *r = x->r;
    const si_command *c = &r->cf->cmds[i];
    char d[SI_COMMAND_NAME_MAX + 64];
    si_command_describe(c, d, sizeof(d));
    rec_set_step(r, "line %u: %s", c->line, d);
    si_result res = SI_OK;
    bool data = c->op == SI_CMD_FORMAT && c->target == SI_TARGET_DATA;
    x->step = (uint32_t)i;
    r->st.touched |= handlers[c->op].touches;
    si_attempts_at(&r->st, (si_point){x->step, false, 0});
    r->point_saved_at = rlog_now();
    if ((res = rec_save_state(r, err)) != SI_OK)
        return res;
    /* Before the first write to the system (or a raw partition an update
     * writes), the boot control says the system is incomplete (issue 15).
     * After the state says `touched`: a cut between the two writes must not
     * leave a mark that this job's next attempt takes for another job's. */
    if (handlers[c->op].touches && !data && (res = rec_mark_incomplete(r, err)) != SI_OK)
        return res;
    if ((res = handlers[c->op].run(x, c, err)) != SI_OK)
        return res;
    si_attempts_step_done(&r->st, (uint32_t)i);
    return rec_save_state(r, err);
}

si_result rec_execute(struct rec *r, si_err *err)
{
    const si_command_file *cf = r->cf;
    uint32_t resume = r->st.completed;
    struct exec x = {.r = r};
    uint64_t total = 0;
    for (size_t i = 0; i < cf->count; i++) {
        if (cf->cmds[i].op != SI_CMD_UPDATE)
            continue;
        x.nupdates++;
        if (i >= resume)
            total += file_size(r, cf->cmds[i].file);
    }
    if (resume)
        rlog_msg(&r->log, "resuming after step %" PRIu32 " of %zu", resume, cf->count);
    rprogress_init(&x.prog, &r->log, total);
    si_result res = SI_OK;
    for (size_t i = 0; i < cf->count && res == SI_OK; i++) {
        const si_command *c = &cf->cmds[i];
        x.upd += c->op == SI_CMD_UPDATE;
        if (i >= resume)
            res = run_step(&x, i, err);
        else if (handlers[c->op].replay)
            res = handlers[c->op].replay(&x, c, err);
    }
    if (res == SI_OK && r->system_mounted) {
        rec_set_step(r, "unmount system");
        res = do_unmount(&x, NULL, err);
    }
    return res;
}
