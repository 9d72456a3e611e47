/* run.c - the recovery's job (DESIGN §7): read and check the command file,
 * verify the keyring chain from the built-in archive-master and every file,
 * refuse downgrades, then format/mount/apply/factory-reset, count attempts
 * in the boot control and report in /cache/recovery/last_result.json.
 *
 * Order of the irreversible things, so that a power cut anywhere converges:
 *   boot control request set + attempt recorded   (before any partition)
 *   steps; after each, its completion recorded    (resume point)
 *   result written, cache wiped (factory reset), consumed files removed,
 *   boot control cleared, command file and state removed  (last) */
#include "recovery.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "attempts.h"
#include "builtin_keys.h"
#include "command.h"
#include "fsutil.h"
#include "grubenv.h"
#include "keyring.h"
#include "lastresult.h"
#include "mkfs.h"
#include "partitions.h"
#include "rlog.h"
#include "sha256.h"
#include "sysmount.h"
#include "version.h"

#define COMMAND_NAME "sysimage_command"
#define STATE_NAME "recovery_state.json"
#define RESULT_NAME "last_result.json"
#define LOG_NAME "last_log"
#define MAX_RAW_PARTS 8
/* Save the progress mark this often while applying: every MiB of input (or
 * second) so that a power cut shortly after the previous one still shows
 * progress. One small atomic write on cache per MiB costs well under 1%. */
#define SAVE_EVERY_BYTES (1u << 20)
#define SAVE_EVERY_SECONDS 1.0

/* Labels of raw partitions an update may carry as partitions/<label>.img. */
static const char *const raw_labels[] = {"bios", "esp", "boot", "recovery"};
/* Never written raw by an update (DESIGN §5), nor the boot control. */
static const char *const not_raw[] = {"system", "userdata", "cache", "misc"};

struct rec {
    const recovery_opts *o;
    recovery_mode mode;         /* opts->mode, or factory reset by request */
    rlog log;
    char cache[PATH_MAX];
    char rdir[PATH_MAX];
    char sysmnt[PATH_MAX];
    char misc[SI_PART_PATH_MAX];
    char system[SI_PART_PATH_MAX];
    char userdata[SI_PART_PATH_MAX];
    bool cache_mounted, system_mounted;
    si_grubenv env;
    si_command_file *cf;
    bool wipe_cache;
    char job[SI_ATTEMPTS_JOB_LEN + 1];
    si_attempts st;
    bool have_state;            /* st is this job's and may be saved */
    unsigned tries;
    si_trust trust;
    bool trust_init;
    size_t nraw;
    si_partition_map raw[MAX_RAW_PARTS];
    char raw_paths[MAX_RAW_PARTS][SI_PART_PATH_MAX];
    si_last_result res;
    char step[SI_COMMAND_NAME_MAX + 64];
    char msg[SI_ERR_MSG_MAX + 128];
};

static const char *mode_name(recovery_mode m)
{
    return m == MODE_FACTORY_RESET ? "factory-reset" : "update";
}

static int64_t build_epoch(void)
{
#ifdef SI_BUILD_EPOCH
    return (int64_t)(SI_BUILD_EPOCH);
#else
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!strptime(__DATE__ " " __TIME__, "%b %d %Y %H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm);
#endif
}

static void set_step(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_step(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->step, sizeof(r->step), fmt, ap);
    va_end(ap);
}

static int path_in(char *out, size_t outlen, const char *dir, const char *name)
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

/* ------------------------------------------------------------ partitions */

static bool label_in(const char *label, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(label, set[i]) == 0)
            return true;
    return false;
}

/* With --partition overrides, nothing is looked up by label (a host must
 * never have its own partitions picked); otherwise libblkid/sysfs. */
static si_result part_path(struct rec *r, const char *label, char *out, size_t outlen, si_err *err)
{
    if (r->o->nparts) {
        for (size_t i = 0; i < r->o->nparts; i++) {
            if (strcmp(r->o->parts[i].label, label) == 0) {
                snprintf(out, outlen, "%s", r->o->parts[i].path);
                return SI_OK;
            }
        }
        return si_err_set(err, SI_ERR_PARTITION, "partition '%s': not given with --partition",
                          label);
    }
    return si_partition_find_path(label, out, outlen, err);
}

static void find_raw_partitions(struct rec *r)
{
    const size_t nnot = sizeof(not_raw) / sizeof(not_raw[0]);
    if (r->o->nparts) {
        for (size_t i = 0; i < r->o->nparts && r->nraw < MAX_RAW_PARTS; i++) {
            if (label_in(r->o->parts[i].label, not_raw, nnot))
                continue;
            snprintf(r->raw_paths[r->nraw], SI_PART_PATH_MAX, "%s", r->o->parts[i].path);
            r->raw[r->nraw].name = r->o->parts[i].label;
            r->raw[r->nraw].path = r->raw_paths[r->nraw];
            r->nraw++;
        }
        return;
    }
    for (size_t i = 0; i < sizeof(raw_labels) / sizeof(raw_labels[0]); i++) {
        si_err e;
        if (si_partition_find_path(raw_labels[i], r->raw_paths[r->nraw], SI_PART_PATH_MAX, &e) !=
            SI_OK)
            continue;
        r->raw[r->nraw].name = raw_labels[i];
        r->raw[r->nraw].path = r->raw_paths[r->nraw];
        r->nraw++;
    }
}

/* ------------------------------------------------------------ boot control */

static si_result bootctl_write(struct rec *r, const char *request, unsigned tries, si_err *err)
{
    if (r->o->dry_run)
        return SI_OK;
    char t[16];
    snprintf(t, sizeof(t), "%u", tries);
    si_result res = si_grubenv_set(&r->env, "recovery_request", request, err);
    if (res == SI_OK)
        res = si_grubenv_set(&r->env, "recovery_tries", t, err);
    if (res == SI_OK)
        res = si_grubenv_write_dev(r->misc, &r->env, err);
    if (res != SI_OK)
        return si_err_prefix(err, "boot control on %s", r->misc);
    return SI_OK;
}

static unsigned env_tries(struct rec *r)
{
    const char *v = si_grubenv_get(&r->env, "recovery_tries");
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || v[0] == '-' || n > 1000) {
        rlog_msg(&r->log, "boot control: recovery_tries=%s is not a count; taken as %d", v,
                 SI_ATTEMPTS_MAX_TRIES);
        return SI_ATTEMPTS_MAX_TRIES;
    }
    return (unsigned)n;
}

/* ------------------------------------------------------------ state */

static void state_path(struct rec *r, char *out, size_t outlen)
{
    path_in(out, outlen, r->rdir, STATE_NAME);
}

static si_result save_state(struct rec *r, si_err *err)
{
    if (r->o->dry_run || !r->have_state)
        return SI_OK;
    char p[PATH_MAX];
    state_path(r, p, sizeof(p));
    return si_attempts_save(p, &r->st, err);
}

static void remove_state(struct rec *r)
{
    if (r->o->dry_run)
        return;
    char p[PATH_MAX];
    state_path(r, p, sizeof(p));
    if (unlink(p) == 0)
        si_fsync_parent_dir(p);
    r->have_state = false;
}

/* ------------------------------------------------------------ results */

static void unmount_system(struct rec *r)
{
    if (!r->system_mounted)
        return;
    si_err e;
    if (sysmount_umount(r->sysmnt, &e) != SI_OK)
        rlog_msg(&r->log, "warning: %s", e.msg);
    else
        r->system_mounted = false;
}

static void write_result(struct rec *r, si_result code, const char *msg)
{
    r->res.result = code;
    r->res.message = msg;
    r->res.mode = mode_name(r->mode);
    r->res.step = r->step;
    r->res.dry_run = r->o->dry_run;
    if (code == SI_OK)
        rlog_msg(&r->log, "result: ok: %s", msg);
    else
        rlog_msg(&r->log, "result: %s (%d): %s", si_result_name(code), (int)code, msg);
    if (r->o->dry_run || !r->cache[0]) {
        char *json;
        si_err e;
        if (si_last_result_format(&r->res, &json, &e) == SI_OK) {
            fputs(json, stdout);
            free(json);
        }
        return;
    }
    char p[PATH_MAX];
    si_err e;
    path_in(p, sizeof(p), r->rdir, RESULT_NAME);
    if (si_last_result_write(p, &r->res, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
}

/* Give up the job: report, clear the request, forget the state. */
static si_result give_up(struct rec *r, si_result code, const char *msg)
{
    unmount_system(r);
    write_result(r, code, msg);
    si_err e;
    if (bootctl_write(r, "0", 0, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    remove_state(r);
    return code;
}

/* A failed attempt: counted; retried (request kept) until exhausted. */
static si_result failed(struct rec *r, si_result code, const char *msg)
{
    unmount_system(r);
    r->tries = si_attempts_fail(&r->st, r->tries);
    if (r->tries >= SI_ATTEMPTS_MAX_TRIES) {
        char m[sizeof(r->msg) + 64];
        snprintf(m, sizeof(m), "gave up after %u attempts; last: %s: %s", r->tries,
                 si_result_name(code), msg);
        return give_up(r, SI_ERR_TRIES_EXHAUSTED, m);
    }
    si_err e;
    if (save_state(r, &e) != SI_OK)
        rlog_msg(&r->log, "error: %s", e.msg);
    write_result(r, code, msg);
    const char *req = r->mode == MODE_FACTORY_RESET ? "factory-reset" : "1";
    if (bootctl_write(r, req, r->tries, &e) != SI_OK)
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
static si_result refused(struct rec *r, si_result code, const char *msg)
{
    if ((r->have_state && r->st.touched) || transient(code))
        return failed(r, code, msg);
    return give_up(r, code, msg);
}

/* ------------------------------------------------------------ checks */

static const char *op_name(const si_command *c)
{
    switch (c->op) {
    case SI_CMD_LOAD_KEYRING: return "load_keyring";
    case SI_CMD_FORMAT: return c->target == SI_TARGET_DATA ? "format data" : "format system";
    case SI_CMD_MOUNT: return "mount system";
    case SI_CMD_UPDATE: return "update";
    case SI_CMD_UNMOUNT: return "unmount system";
    case SI_CMD_INDEX: return "index";
    case SI_CMD_IMAGE: return "image";
    case SI_CMD_COUNT: break;
    }
    return "?";
}

static bool safe_name(const char *n)
{
    return n[0] && n[0] != '.' && !strchr(n, '/') && strcmp(n, COMMAND_NAME) != 0 &&
           strcmp(n, STATE_NAME) != 0 && strcmp(n, RESULT_NAME) != 0 &&
           strncmp(n, LOG_NAME, strlen(LOG_NAME)) != 0;
}

/* What the parser cannot see: the commands must make sense in sequence. */
static si_result check_sequence(struct rec *r, si_err *err)
{
    const si_command_file *cf = r->cf;
    bool mounted = false;
    if (cf->count == 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, COMMAND_NAME ": no commands");
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        const char *bad = NULL;
        if ((c->op == SI_CMD_LOAD_KEYRING || c->op == SI_CMD_UPDATE) &&
            (!safe_name(c->file) || !safe_name(c->sig)))
            bad = "file names must be plain names of staged files";
        switch (c->op) {
        case SI_CMD_FORMAT:
            if (c->target == SI_TARGET_SYSTEM && mounted)
                bad = "format system while it is mounted";
            else if (c->target == SI_TARGET_DATA)
                r->wipe_cache = true;
            else if (c->target != SI_TARGET_SYSTEM)
                bad = "format: unknown target";
            break;
        case SI_CMD_MOUNT:
            if (c->target != SI_TARGET_SYSTEM)
                bad = "mount: only the system partition is mounted";
            else if (mounted)
                bad = "mount system: already mounted";
            mounted = true;
            break;
        case SI_CMD_UNMOUNT:
            if (!mounted)
                bad = "unmount system: not mounted";
            mounted = false;
            break;
        case SI_CMD_UPDATE:
            if (!mounted)
                bad = "update: the system is not mounted (no 'mount system' before)";
            break;
        case SI_CMD_LOAD_KEYRING:
        case SI_CMD_INDEX:
        case SI_CMD_IMAGE:
        case SI_CMD_COUNT:
            break;
        }
        if (bad)
            return si_err_set(err, SI_ERR_COMMAND_FILE, COMMAND_NAME " line %u: %s", c->line, bad);
    }
    return SI_OK;
}

static si_result check_exists(struct rec *r, const si_command *c, const char *name, si_err *err)
{
    char p[PATH_MAX];
    struct stat st;
    if (path_in(p, sizeof(p), r->rdir, name) < 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, COMMAND_NAME " line %u: name too long",
                          c->line);
    if (stat(p, &st) < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO,
                          COMMAND_NAME " line %u: %s: %s", c->line, p, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return si_err_set(err, SI_ERR_MISSING_FILE, COMMAND_NAME " line %u: %s: not a file",
                          c->line, p);
    return SI_OK;
}

static si_result verify(struct rec *r, si_err *err)
{
    const si_command_file *cf = r->cf;
    si_result res;
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op != SI_CMD_LOAD_KEYRING && c->op != SI_CMD_UPDATE)
            continue;
        if ((res = check_exists(r, c, c->file, err)) != SI_OK ||
            (res = check_exists(r, c, c->sig, err)) != SI_OK)
            return res;
    }

    int64_t now = (int64_t)time(NULL);
    if (build_epoch() > now)
        now = build_epoch();
    si_trust_init(&r->trust, r->o->device, now);
    r->trust_init = true;
    si_keyring *am;
    res = si_keyring_parse((const char *)si_builtin_archive_master, si_builtin_archive_master_len,
                           &am, err);
    if (res != SI_OK)
        return si_err_prefix(err, "built-in archive-master keyring");
    if ((res = si_trust_set_archive_master(&r->trust, am, err)) != SI_OK)
        return si_err_prefix(err, "built-in archive-master keyring");

    size_t n = 0;
    char(*paths)[2][PATH_MAX] = calloc(cf->count, sizeof(*paths));
    const char **kp = calloc(cf->count, sizeof(*kp));
    const char **ks = calloc(cf->count, sizeof(*ks));
    if (!paths || !kp || !ks) {
        free(paths), free(kp), free(ks);
        return si_err_set(err, SI_ERR_NOMEM, "keyring list: out of memory");
    }
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op != SI_CMD_LOAD_KEYRING)
            continue;
        path_in(paths[n][0], PATH_MAX, r->rdir, c->file);
        path_in(paths[n][1], PATH_MAX, r->rdir, c->sig);
        kp[n] = paths[n][0];
        ks[n] = paths[n][1];
        n++;
    }
    res = n ? si_trust_load_files(&r->trust, kp, ks, n, err) : SI_OK;
    free(paths), free(kp), free(ks);
    if (res != SI_OK)
        return res;
    if (n)
        rlog_msg(&r->log, "keyrings: %zu verified from the built-in archive-master", n);

    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op != SI_CMD_UPDATE)
            continue;
        char p[PATH_MAX], s[PATH_MAX];
        path_in(p, sizeof(p), r->rdir, c->file);
        path_in(s, sizeof(s), r->rdir, c->sig);
        si_signer who;
        res = si_trust_verify_file(&r->trust, SI_PURPOSE_UPDATE, p, s, &who, err);
        if (res != SI_OK)
            return si_err_prefix(err, COMMAND_NAME " line %u", c->line);
        rlog_msg(&r->log, "verified %s (%s key %.16s)", c->file,
                 si_keyring_type_name(who.keyring_type), who.key_id);
    }
    return SI_OK;
}

static bool has_op(const si_command_file *cf, si_cmd_op op)
{
    for (size_t i = 0; i < cf->count; i++)
        if (cf->cmds[i].op == op)
            return true;
    return false;
}

/* DESIGN §7.4: the installed build from the system partition, the target
 * build from the last update file (in command order) carrying a version
 * record; refuse target < installed, or no target when one is installed. */
static si_result check_downgrade(struct rec *r, si_err *err)
{
    const si_command_file *cf = r->cf;
    si_result res;
    if (!has_op(cf, SI_CMD_UPDATE))
        return SI_OK;
    if ((res = part_path(r, "system", r->system, sizeof(r->system), err)) != SI_OK)
        return res;

    char label[SI_FS_LABEL_MAX + 1];
    res = si_fs_read_label(r->system, label, err);
    if (res == SI_ERR_PARTITION) {
        rlog_msg(&r->log, "system partition holds no filesystem: no installed build");
    } else if (res != SI_OK) {
        return res;
    } else {
        if ((res = sysmount_ext4(r->system, r->sysmnt, true, r->o->dry_run, err)) != SI_OK)
            return res;
        r->system_mounted = true;
        si_version v;
        si_err e;
        si_result vr = si_version_read_tree(r->sysmnt, &v, &e);
        unmount_system(r);
        if (r->system_mounted)
            return si_err_set(err, SI_ERR_MOUNT, "%s: cannot unmount after reading the version",
                              r->sysmnt);
        if (vr == SI_OK) {
            r->res.has_from = true;
            r->res.from_version = v.build;
            rlog_msg(&r->log, "installed build %" PRId64 " (channel %s)", v.build, v.channel);
        } else if (vr == SI_ERR_NOT_FOUND) {
            rlog_msg(&r->log, "system records no build");
        } else {
            rlog_msg(&r->log, "warning: installed version record unreadable (%s): "
                              "treated as none", e.msg);
        }
    }

    for (size_t i = cf->count; i-- > 0;) {
        const si_command *c = &cf->cmds[i];
        if (c->op != SI_CMD_UPDATE)
            continue;
        char p[PATH_MAX];
        path_in(p, sizeof(p), r->rdir, c->file);
        si_version v;
        bool found = false;
        if ((res = si_version_from_tarball(p, &v, &found, err)) != SI_OK)
            return si_err_prefix(err, COMMAND_NAME " line %u: %s", c->line, c->file);
        if (found) {
            r->res.has_to = true;
            r->res.to_version = v.build;
            rlog_msg(&r->log, "target build %" PRId64 " (from %s)", v.build, c->file);
            break;
        }
    }
    if (r->res.has_from && !r->res.has_to)
        return si_err_set(err, SI_ERR_DOWNGRADE,
                          "installed build %" PRId64 ": the update carries no version record",
                          r->res.from_version);
    if (r->res.has_from && r->res.to_version < r->res.from_version)
        return si_err_set(err, SI_ERR_DOWNGRADE,
                          "target build %" PRId64 " is older than the installed build %" PRId64,
                          r->res.to_version, r->res.from_version);
    return SI_OK;
}

/* ------------------------------------------------------------ execution */

struct apply_ctx {
    struct rec *r;
    rprogress *prog;
    uint32_t step;
    const char *name;
    uint64_t saved_bytes;
    double saved_at;
};

static void on_progress(uint64_t done, uint64_t total, void *vctx)
{
    (void)total;
    struct apply_ctx *a = vctx;
    rprogress_update(a->prog, a->name, done);
    double now = rlog_now();
    if (done - a->saved_bytes >= SAVE_EVERY_BYTES || now - a->saved_at >= SAVE_EVERY_SECONDS) {
        si_attempts_progress(&a->r->st, (si_mark){a->step, done});
        si_err e;
        if (save_state(a->r, &e) != SI_OK)
            rlog_msg(&a->r->log, "warning: %s", e.msg);
        a->saved_bytes = done;
        a->saved_at = now;
    }
}

static uint64_t file_size(struct rec *r, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    path_in(p, sizeof(p), r->rdir, name);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static si_result do_mount(struct rec *r, si_err *err)
{
    si_result res = part_path(r, "system", r->system, sizeof(r->system), err);
    if (res == SI_OK)
        res = sysmount_ext4(r->system, r->sysmnt, false, false, err);
    if (res == SI_OK)
        r->system_mounted = true;
    return res;
}

static si_result do_unmount(struct rec *r, si_err *err)
{
    si_result res = sysmount_umount(r->sysmnt, err);
    if (res == SI_OK)
        r->system_mounted = false;
    return res;
}

static si_result do_format(struct rec *r, const si_command *c, si_err *err)
{
    si_result res;
    double t = rlog_now();
    if (c->target == SI_TARGET_SYSTEM) {
        if ((res = part_path(r, "system", r->system, sizeof(r->system), err)) != SI_OK)
            return res;
        si_mkfs_opts mo;
        si_mkfs_opts_init(&mo);
        mo.label = "system";
        rlog_msg(&r->log, "formatting system (%s)", r->system);
        res = si_mkfs_ext4(r->system, &mo, err);
        si_last_result_add_duration(&r->res, "format", rlog_now() - t);
    } else {
        if ((res = part_path(r, "userdata", r->userdata, sizeof(r->userdata), err)) != SI_OK)
            return res;
        rlog_msg(&r->log, "factory reset: formatting userdata (%s)", r->userdata);
        res = si_mkfs_ext4_keep_label(r->userdata, "userdata", NULL, err);
        si_last_result_add_duration(&r->res, "format_data", rlog_now() - t);
    }
    return res;
}

static si_result execute(struct rec *r, si_err *err)
{
    const si_command_file *cf = r->cf;
    uint32_t resume = r->st.completed;
    uint64_t total = 0;
    size_t nupdates = 0, upd = 0;
    for (size_t i = 0; i < cf->count; i++) {
        if (cf->cmds[i].op != SI_CMD_UPDATE)
            continue;
        nupdates++;
        if (i >= resume)
            total += file_size(r, cf->cmds[i].file);
    }
    if (resume)
        rlog_msg(&r->log, "resuming after step %" PRIu32 " of %zu", resume, cf->count);
    rprogress prog;
    rprogress_init(&prog, &r->log, total);
    si_result res = SI_OK;
    for (size_t i = 0; i < cf->count && res == SI_OK; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op == SI_CMD_UPDATE)
            upd++;
        if (i < resume) {
            /* Done before: only the mount state is rebuilt. */
            if (c->op == SI_CMD_MOUNT)
                res = do_mount(r, err);
            else if (c->op == SI_CMD_UNMOUNT)
                res = do_unmount(r, err);
            continue;
        }
        if (c->op == SI_CMD_UPDATE)
            set_step(r, "line %u: update %s", c->line, c->file);
        else
            set_step(r, "line %u: %s", c->line, op_name(c));
        if (c->op != SI_CMD_LOAD_KEYRING && !r->st.touched) {
            r->st.touched = true;
            if ((res = save_state(r, err)) != SI_OK)
                break;
        }
        switch (c->op) {
        case SI_CMD_LOAD_KEYRING:
        case SI_CMD_INDEX:
        case SI_CMD_IMAGE:
        case SI_CMD_COUNT:
            break;
        case SI_CMD_FORMAT:
            res = do_format(r, c, err);
            break;
        case SI_CMD_MOUNT:
            res = do_mount(r, err);
            break;
        case SI_CMD_UNMOUNT:
            res = do_unmount(r, err);
            break;
        case SI_CMD_UPDATE: {
            char p[PATH_MAX], label[64];
            path_in(p, sizeof(p), r->rdir, c->file);
            snprintf(label, sizeof(label), "update %zu/%zu", upd, nupdates);
            rlog_msg(&r->log, "%s: applying %s", label, c->file);
            struct apply_ctx a = {r, &prog, (uint32_t)i, label, 0, rlog_now()};
            si_apply_opts ao = {
                .target_dir = r->sysmnt,
                .format = false,
                .partitions = r->raw,
                .npartitions = r->nraw,
                .progress = on_progress,
                .progress_ctx = &a,
            };
            const char *files[1] = {p};
            double t = rlog_now();
            res = si_apply_files(&ao, files, 1, err);
            si_last_result_add_duration(&r->res, "apply", rlog_now() - t);
            if (res == SI_OK) {
                uint64_t sz = file_size(r, c->file);
                rprogress_update(&prog, label, sz);
                rprogress_step_done(&prog, sz);
            } else {
                si_err_prefix(err, "%s", c->file);
            }
            break;
        }
        }
        if (res != SI_OK)
            break;
        si_attempts_step_done(&r->st, (uint32_t)i);
        res = save_state(r, err);
    }
    if (res == SI_OK && r->system_mounted) {
        set_step(r, "unmount system");
        res = do_unmount(r, err);
    }
    return res;
}

/* ------------------------------------------------------------ finishing */

static bool keep_in_rdir(const char *name)
{
    return strcmp(name, COMMAND_NAME) == 0 || strcmp(name, STATE_NAME) == 0 ||
           strcmp(name, RESULT_NAME) == 0 || strncmp(name, LOG_NAME, strlen(LOG_NAME)) == 0;
}

static si_result remove_entry(int dfd, const char *dir, const char *name, si_err *err)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? SI_OK
                               : si_err_set(err, SI_ERR_IO, "%s/%s: %s", dir, name, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char p[PATH_MAX];
        path_in(p, sizeof(p), dir, name);
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
            if (d == 0 && (strcmp(n, "lost+found") == 0 || strcmp(n, "recovery") == 0))
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

static void remove_consumed(struct rec *r)
{
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        if (c->op != SI_CMD_LOAD_KEYRING && c->op != SI_CMD_UPDATE)
            continue;
        const char *names[2] = {c->file, c->sig};
        for (int k = 0; k < 2; k++) {
            char p[PATH_MAX];
            path_in(p, sizeof(p), r->rdir, names[k]);
            if (unlink(p) < 0 && errno != ENOENT)
                rlog_msg(&r->log, "warning: %s: %s", p, strerror(errno));
        }
    }
}

static si_result succeed(struct rec *r, const char *msg)
{
    si_err e;
    set_step(r, "done");
    write_result(r, SI_OK, msg);
    if (r->wipe_cache) {
        rlog_msg(&r->log, "factory reset: clearing the cache (logs kept)");
        if (wipe_cache(r, &e) != SI_OK)
            rlog_msg(&r->log, "warning: %s", e.msg);
    }
    remove_consumed(r);
    if (bootctl_write(r, "0", 0, &e) != SI_OK) {
        /* The result says ok but the next boot comes back here: the state
         * says every step is done, so that run only finishes again. */
        rlog_msg(&r->log, "error: %s", e.msg);
        return SI_OK;
    }
    char p[PATH_MAX];
    path_in(p, sizeof(p), r->rdir, COMMAND_NAME);
    if (unlink(p) < 0 && errno != ENOENT)
        rlog_msg(&r->log, "warning: %s: %s", p, strerror(errno));
    remove_state(r);
    si_fsync_parent_dir(p);
    return SI_OK;
}

/* ------------------------------------------------------------ the job */

static si_result setup_cache(struct rec *r, si_err *err)
{
    const char *root = r->o->mount_root ? r->o->mount_root : "";
    snprintf(r->sysmnt, sizeof(r->sysmnt), "%s/system", root);
    if (r->o->cache_dir) {
        snprintf(r->cache, sizeof(r->cache), "%s", r->o->cache_dir);
    } else {
        char dev[SI_PART_PATH_MAX];
        si_result res = part_path(r, "cache", dev, sizeof(dev), err);
        if (res != SI_OK)
            return res;
        snprintf(r->cache, sizeof(r->cache), "%s/cache", root);
        if ((res = sysmount_ext4(dev, r->cache, r->o->dry_run, r->o->dry_run, err)) != SI_OK)
            return res;
        r->cache_mounted = true;
    }
    if (path_in(r->rdir, sizeof(r->rdir), r->cache, "recovery") < 0)
        return si_err_set(err, SI_ERR_USAGE, "cache directory path too long");
    if (!r->o->dry_run && sysmount_mkdir_p(r->rdir, 0700) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", r->rdir, strerror(errno));
    return SI_OK;
}

static si_result read_bootctl(struct rec *r, si_err *err)
{
    si_result res = part_path(r, "misc", r->misc, sizeof(r->misc), err);
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
    return SI_OK;
}

/* The command file's raw bytes (bounded): *buf = NULL when there is none. */
static si_result read_commands(struct rec *r, char **buf, size_t *len, si_err *err)
{
    char p[PATH_MAX];
    path_in(p, sizeof(p), r->rdir, COMMAND_NAME);
    *buf = NULL;
    int rc = si_read_file(p, SI_COMMAND_MAX_BYTES, buf, len);
    if (rc == -ENOENT)
        return SI_OK;
    if (rc == -EFBIG) {
        /* Still a job (of its first bytes' worth): refused below. */
        return si_err_set(err, SI_ERR_COMMAND_FILE, "%s: larger than %d bytes", p,
                          SI_COMMAND_MAX_BYTES);
    }
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", p, strerror(-rc));
    return SI_OK;
}

static si_result job(struct rec *r)
{
    si_err e;
    si_err_clear(&e);
    si_result res;
    double t_start = rlog_now();

    if ((res = setup_cache(r, &e)) != SI_OK) {
        rlog_msg(&r->log, "error: %s", e.msg);
        /* Nowhere to report or keep state: count in the boot control. */
        if (read_bootctl(r, &e) == SI_OK) {
            unsigned t = env_tries(r) + 1;
            bootctl_write(r, t >= SI_ATTEMPTS_MAX_TRIES ? "0" : "1",
                          t >= SI_ATTEMPTS_MAX_TRIES ? 0 : t, &e);
        }
        return res;
    }
    if (!r->o->dry_run) {
        char p[PATH_MAX];
        path_in(p, sizeof(p), r->rdir, LOG_NAME);
        int rc = rlog_open_file(&r->log, p);
        if (rc < 0)
            rlog_msg(&r->log, "warning: %s: %s (console log only)", p, strerror(-rc));
    }
    set_step(r, "start");
    if ((res = read_bootctl(r, &e)) != SI_OK) {
        write_result(r, res, e.msg);
        return res;
    }
    const char *req = si_grubenv_get(&r->env, "recovery_request");
    const recovery_opts *o = r->o;
    if (req && strcmp(req, "factory-reset") == 0 && r->mode != MODE_FACTORY_RESET) {
        rlog_msg(&r->log, "boot control requests a factory reset");
        r->mode = MODE_FACTORY_RESET;
    }
    rlog_msg(&r->log, "mode %s%s (request=%s, tries=%u)", mode_name(r->mode),
             o->dry_run ? ", dry run" : "", req ? req : "unset", env_tries(r));

    uint8_t digest[SI_SHA256_LEN];
    bool parsed = true;
    char *cmdbuf = NULL;
    size_t cmdlen = 0;
    si_err cmd_err;
    si_err_clear(&cmd_err);
    if (r->mode == MODE_FACTORY_RESET) {
        static const char fr[] = "factory-reset";
        si_sha256_buf(fr, strlen(fr), digest);
        r->cf->count = 1;
        r->cf->cmds[0] = (si_command){.op = SI_CMD_FORMAT, .target = SI_TARGET_DATA, .line = 0};
        r->wipe_cache = true;
    } else {
        set_step(r, "read command file");
        res = read_commands(r, &cmdbuf, &cmdlen, &cmd_err);
        if (res == SI_ERR_IO) {
            r->tries = env_tries(r);
            return failed(r, res, cmd_err.msg);
        }
        if (res == SI_ERR_COMMAND_FILE) {
            /* Too large: identify the job by the message, refuse it below. */
            si_sha256_buf(cmd_err.msg, strlen(cmd_err.msg), digest);
            parsed = false;
        } else if (!cmdbuf) {
            return give_up(r, SI_ERR_NOT_FOUND, "nothing to do: no /cache/recovery/" COMMAND_NAME);
        } else {
            si_sha256_buf(cmdbuf, cmdlen, digest);
        }
    }
    si_hex_encode(digest, sizeof(digest), r->job);

    /* Attempt accounting. */
    char sp[PATH_MAX];
    state_path(r, sp, sizeof(sp));
    bool found;
    if (si_attempts_load(sp, &r->st, &found, &e) != SI_OK) {
        rlog_msg(&r->log, "warning: %s; starting afresh", e.msg);
        found = false;
    }
    si_attempt_start as;
    si_attempts_begin(&r->st, found, r->job, env_tries(r), &as);
    r->tries = as.tries;
    r->have_state = true;
    if (as.previous_died)
        rlog_msg(&r->log, "the previous attempt was interrupted %s",
                 as.previous_counted ? "without progress (counted)" : "after progress");
    if (as.exhausted) {
        free(cmdbuf);
        set_step(r, "step %" PRIu32, r->st.best.step);
        snprintf(r->msg, sizeof(r->msg),
                 "%u attempts failed or made no progress (furthest: %" PRIu32
                 " steps and %" PRIu64 " bytes)", as.tries, r->st.best.step, r->st.best.bytes);
        return give_up(r, SI_ERR_TRIES_EXHAUSTED, r->msg);
    }
    if ((res = save_state(r, &e)) != SI_OK) {
        free(cmdbuf);
        return failed(r, res, e.msg);
    }
    if ((res = bootctl_write(r, r->mode == MODE_FACTORY_RESET ? "factory-reset" : "1", r->tries,
                             &e)) != SI_OK) {
        free(cmdbuf);
        write_result(r, res, e.msg);
        return res;
    }

    /* Parsed only now: even a parser crash is a counted attempt. */
    set_step(r, "check command file");
    if (cmdbuf) {
        res = si_command_file_parse(cmdbuf, cmdlen, r->cf, &cmd_err);
        free(cmdbuf);
        cmdbuf = NULL;
        if (res != SI_OK) {
            parsed = false;
            cmd_err.code = SI_ERR_COMMAND_FILE;
            si_err_prefix(&cmd_err, "%s/%s", r->rdir, COMMAND_NAME);
        }
    }
    if (!parsed)
        return refused(r, SI_ERR_COMMAND_FILE, cmd_err.msg);
    if ((res = check_sequence(r, &e)) != SI_OK)
        return refused(r, res, e.msg);

    if (r->st.completed > r->cf->count) {
        rlog_msg(&r->log, "warning: %s: beyond the command file; starting afresh", sp);
        r->st.completed = 0;
    }
    if (r->st.completed == r->cf->count) {
        rlog_msg(&r->log, "every step was done by an earlier attempt; finishing");
        if (o->dry_run) {
            write_result(r, SI_OK, "dry run: every step was done by an earlier attempt");
            return SI_OK;
        }
        return succeed(r, "finished (steps done by an earlier attempt)");
    }

    if (r->mode == MODE_UPDATE) {
        set_step(r, "verify");
        double t = rlog_now();
        res = verify(r, &e);
        si_last_result_add_duration(&r->res, "verify", rlog_now() - t);
        if (res != SI_OK)
            return refused(r, res, e.msg);
        set_step(r, "check version");
        t = rlog_now();
        res = check_downgrade(r, &e);
        si_last_result_add_duration(&r->res, "check_version", rlog_now() - t);
        if (res != SI_OK)
            return refused(r, res, e.msg);
        if (!o->dry_run && (res = save_state(r, &e)) != SI_OK)
            return failed(r, res, e.msg);
    }

    if (o->dry_run) {
        size_t n = 0;
        for (size_t i = 0; i < r->cf->count; i++) {
            const si_command *c = &r->cf->cmds[i];
            if (c->op == SI_CMD_LOAD_KEYRING)
                continue;
            rlog_msg(&r->log, "would run: %s%s%s", op_name(c),
                     c->op == SI_CMD_UPDATE ? " " : "", c->op == SI_CMD_UPDATE ? c->file : "");
            n++;
        }
        set_step(r, "dry run");
        si_last_result_add_duration(&r->res, "total", rlog_now() - t_start);
        snprintf(r->msg, sizeof(r->msg), "dry run: everything verified; %zu steps not run", n);
        write_result(r, SI_OK, r->msg);
        return SI_OK;
    }

    find_raw_partitions(r);
    res = execute(r, &e);
    si_last_result_add_duration(&r->res, "total", rlog_now() - t_start);
    if (res != SI_OK)
        return failed(r, res, e.msg);
    if (r->mode == MODE_FACTORY_RESET)
        snprintf(r->msg, sizeof(r->msg), "factory reset done");
    else if (r->res.has_to)
        snprintf(r->msg, sizeof(r->msg), "installed build %" PRId64, r->res.to_version);
    else
        snprintf(r->msg, sizeof(r->msg), "%zu commands done", r->cf->count);
    return succeed(r, r->msg);
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
    unmount_system(r);
    if (r->trust_init)
        si_trust_free(&r->trust);
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
