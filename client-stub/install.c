/* install.c - A/B mode (docs/ab.md): `install` applies the staged,
 * index-bound job to the inactive system slot while the device runs, then
 * asks GRUB for a trial boot of that slot; `mark-good` confirms the slot the
 * OS booted from; `status` adds the slots and a rollback GRUB made.
 *
 * The engine is the recovery's own program (sysimage-recovery run), shipped
 * in the A/B normal OS: the same checks (keyrings from the built-in
 * archive-master, the signed index, the job bound to it, every staged file's
 * size, sha256, signature and layout) and the same apply code (lib/apply,
 * lib/mkfs) run in one place, and the stub keeps not linking libarchive
 * (it links libext2fs only to read the active slot's block bitmaps).
 * It is pointed at the inactive slot with --partition system=SLOT, at a
 * private boot-control block (the device's misc is never written: GRUB must
 * not see a recovery request) and at the mounted cache.
 *
 * Order, so that nothing reaches the inactive slot before the job is
 * verified and nothing ever reaches the active one:
 *   1. the engine's --dry-run against the ACTIVE slot (read-only mount):
 *      everything verified, the path bound to the running build;
 *   2. GRUB's trial of the inactive slot withdrawn (ab_try=) before it is
 *      overwritten;
 *   3. a delta job: the blocks the active slot's filesystem uses (its block
 *      bitmaps) copied onto the inactive one (the active is mounted
 *      read-only: a consistent image), the same filesystem;
 *   4. the engine's real run on the inactive slot (a full job formats it),
 *      from the start every time (no resume state is kept between installs:
 *      step 3 redoes the base), at idle I/O priority and nice 10;
 *   5. ab_try=<slot> ab_tries=0 ab_try_build=<build> in GRUB's ESP env.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "ext4used.h"
#include "fsutil.h"
#include "grubenv.h"
#include "stub.h"

#define COPY_CHUNK (1u << 20)
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1

typedef struct ab_config {
    const char *slot_dev[2];   /* [ab] slot_a, slot_b: block devices of the slots */
    const char *engine;        /* [ab] engine: sysimage-recovery */
    const char *bootcount;     /* [ab] bootcount: sysimage-bootcount (GRUB's ESP env) */
    const char *cmdline;       /* [ab] cmdline: where sysimage.slot= is read */
    const char *work_dir;      /* [ab] work_dir: mount points of the engine */
} ab_config;

static const char slot_names[2] = {'a', 'b'};

static si_result ab_config_load(const stub_config *cfg, ab_config *ab, si_err *err)
{
    ab->slot_dev[0] = NULL;
    ab->slot_dev[1] = NULL;
    ab->engine = "/usr/lib/sysimage/sysimage-recovery";
    ab->bootcount = "/usr/sbin/sysimage-bootcount";
    ab->cmdline = "/proc/cmdline";
    ab->work_dir = "/run/sysimage-install";
    si_result rc;
    if ((rc = si_ini_get_string(cfg->ini, "ab", "slot_a", false, &ab->slot_dev[0], err)) ||
        (rc = si_ini_get_string(cfg->ini, "ab", "slot_b", false, &ab->slot_dev[1], err)) ||
        (rc = si_ini_get_string(cfg->ini, "ab", "engine", false, &ab->engine, err)) ||
        (rc = si_ini_get_string(cfg->ini, "ab", "bootcount", false, &ab->bootcount, err)) ||
        (rc = si_ini_get_string(cfg->ini, "ab", "cmdline", false, &ab->cmdline, err)) ||
        (rc = si_ini_get_string(cfg->ini, "ab", "work_dir", false, &ab->work_dir, err)))
        return si_err_prefix(err, "%s", cfg->path);
    if (!ab->slot_dev[0] || !ab->slot_dev[1])
        return si_err_set(err, SI_ERR_USAGE, "%s: not an A/B device ([ab] slot_a and slot_b "
                          "are not configured)", cfg->path);
    return SI_OK;
}

/* The slot the running OS booted from: sysimage.slot=a|b (GRUB's menu). */
static si_result active_slot(const ab_config *ab, int *slot, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (si_read_file(ab->cmdline, 8192, &buf, &len) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: cannot read", ab->cmdline);
    *slot = -1;
    for (char *t = strtok(buf, " \t\n"); t; t = strtok(NULL, " \t\n")) {
        if (strcmp(t, "sysimage.slot=a") == 0)
            *slot = 0;
        else if (strcmp(t, "sysimage.slot=b") == 0)
            *slot = 1;
    }
    free(buf);
    if (*slot < 0)
        return si_err_set(err, SI_ERR_USAGE, "%s: no sysimage.slot=a|b: not booted from an A/B "
                          "slot", ab->cmdline);
    return SI_OK;
}

/* fork/exec; the child at nice 10 and idle I/O priority when low. Returns
 * the exit status (0-255), or -1 - errno-ish when it could not run. With
 * out != NULL, the child's stdout is read into it (NUL-terminated). */
static int run(char *const argv[], bool low, char *out, size_t outlen)
{
    int pfd[2] = {-1, -1};
    if (out && pipe(pfd) < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (out) {
            dup2(pfd[1], 1);
            close(pfd[0]);
            close(pfd[1]);
        } else {
            dup2(2, 1); /* stdout is the stub's (JSON lines): the engine's report goes to stderr */
        }
        if (low) {
            if (setpriority(PRIO_PROCESS, 0, 10) < 0) { /* best effort */
            }
            syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
        }
        execv(argv[0], argv);
        fprintf(stderr, "sysimage-stub: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    size_t n = 0;
    if (out) {
        close(pfd[1]);
        ssize_t r;
        char drain[512];
        while ((r = n < outlen - 1 ? read(pfd[0], out + n, outlen - 1 - n)
                                   : read(pfd[0], drain, sizeof(drain))) > 0)
            if (n < outlen - 1)
                n += (size_t)r; /* more than outlen is read and dropped: the child never blocks */
        out[n] = '\0';
        close(pfd[0]);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* GRUB's ESP env, through sysimage-bootcount. */
static si_result env_get(const ab_config *ab, si_grubenv *env, si_err *err)
{
    char buf[2048];
    char *argv[] = {(char *)ab->bootcount, "get", NULL};
    int rc = run(argv, false, buf, sizeof(buf));
    if (rc != 0)
        return si_err_set(err, SI_ERR_IO, "%s get: exit %d", ab->bootcount, rc);
    si_grubenv_init(env);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (si_grubenv_set(env, line, eq + 1, err) != SI_OK)
            return si_err_prefix(err, "%s get", ab->bootcount);
    }
    return SI_OK;
}

static si_result env_set(const ab_config *ab, char *const kv[], size_t n, si_err *err)
{
    char *argv[12] = {(char *)ab->bootcount, "set"};
    if (n > 9)
        return si_err_set(err, SI_ERR_INTERNAL, "env_set: too many values");
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = kv[i];
    argv[2 + n] = NULL;
    int rc = run(argv, false, NULL, 0);
    if (rc != 0)
        return si_err_set(err, SI_ERR_IO, "%s set %s...: exit %d", ab->bootcount, kv[0], rc);
    return SI_OK;
}

static const char *env_str(const si_grubenv *env, const char *k)
{
    const char *v = si_grubenv_get(env, k);
    return v ? v : "";
}

/* A fresh private boot-control block for the engine (recovery_request=0):
 * its request and attempt count never reach the device's misc. */
static si_result private_bootctl(const stub_config *cfg, char *path, size_t len, si_err *err)
{
    snprintf(path, len, "%s/install-bootctl.env", cfg->state_dir);
    si_grubenv env;
    si_grubenv_init(&env);
    char block[SI_GRUBENV_SIZE];
    si_result rc = si_grubenv_set(&env, "recovery_request", "0", err);
    if (rc == SI_OK)
        rc = si_grubenv_format(&env, block, err);
    if (rc != SI_OK)
        return rc;
    int r = si_mkdir_p(cfg->state_dir, 0755);
    if (r == 0)
        r = si_write_file_atomic(path, block, sizeof(block), 0600);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return SI_OK;
}

static si_result dev_size(int fd, const char *path, uint64_t *size, si_err *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, size) < 0)
            return si_err_set(err, SI_ERR_IO, "%s: BLKGETSIZE64: %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
    } else {
        return si_err_set(err, SI_ERR_PARTITION, "%s: not a block device", path);
    }
    return SI_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_line(bool json, const char *what, uint64_t done, uint64_t total)
{
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "event", "progress") ||
                  !cJSON_AddStringToObject(o, "file", what) ||
                  !cJSON_AddNumberToObject(o, "done", (double)done) ||
                  !cJSON_AddNumberToObject(o, "total", (double)total))) {
            cJSON_Delete(o);
            o = NULL;
        }
        stub_print_json_line(o);
    } else {
        fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " MiB\n", what, done >> 20, total >> 20);
    }
}

/* The base of a delta: the blocks the active slot's filesystem uses (its
 * block bitmaps, lib/ext4used), each at its own offset, onto the inactive
 * slot (O_EXCL: a mounted inactive slot is refused). The result is the same
 * filesystem; the inactive slot's free blocks keep whatever they held, which
 * the filesystem never reads. 1 MiB chunks; the written pages are synced and
 * dropped every 64 MiB so the copy does not evict the running OS's cache. */
typedef struct slot_copy {
    int in, out;
    const char *from, *to;
    char *buf;
    bool json;
    uint64_t done, total, synced; /* bytes copied, to copy, at the last sync */
    double shown;
    si_err *err;
} slot_copy;

static int count_range(uint64_t start, uint64_t len, void *ctx)
{
    (void)start;
    *(uint64_t *)ctx += len;
    return 0;
}

static int copy_range(uint64_t start, uint64_t len, void *ctx)
{
    slot_copy *c = ctx;
    for (uint64_t off = 0; off < len;) {
        size_t want = len - off < COPY_CHUNK ? (size_t)(len - off) : COPY_CHUNK;
        ssize_t r = pread(c->in, c->buf, want, (off_t)(start + off));
        if (r <= 0) {
            si_err_set(c->err, SI_ERR_IO, "%s: read at %" PRIu64 ": %s", c->from, start + off,
                       r < 0 ? strerror(errno) : "end of device");
            return -1;
        }
        ssize_t w = pwrite(c->out, c->buf, (size_t)r, (off_t)(start + off));
        if (w != r) {
            si_err_set(c->err, SI_ERR_IO, "%s: write at %" PRIu64 ": %s", c->to, start + off,
                       w < 0 ? strerror(errno) : "short write");
            return -1;
        }
        off += (uint64_t)r;
        c->done += (uint64_t)r;
        if (c->done - c->synced >= (64u << 20)) {
            fdatasync(c->out);
            posix_fadvise(c->out, 0, 0, POSIX_FADV_DONTNEED);
            posix_fadvise(c->in, 0, 0, POSIX_FADV_DONTNEED);
            c->synced = c->done;
        }
        if (now_s() - c->shown >= 1.0 || c->done == c->total) {
            progress_line(c->json, "copy active slot", c->done, c->total);
            c->shown = now_s();
        }
    }
    return 0;
}

/* Both slots open, the target at least as large as the source. */
static si_result open_slots(slot_copy *c, si_err *err)
{
    c->in = open(c->from, O_RDONLY | O_CLOEXEC);
    if (c->in < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->from, strerror(errno));
    c->out = open(c->to, O_WRONLY | O_CLOEXEC | O_EXCL);
    if (c->out < 0) {
        int e = errno;
        return si_err_set(err, SI_ERR_IO, "%s: %s%s", c->to, strerror(e),
                          e == EBUSY ? " (the inactive slot is in use)" : "");
    }
    uint64_t n_in = 0, n_out = 0;
    si_result rc = dev_size(c->in, c->from, &n_in, err);
    if (rc == SI_OK)
        rc = dev_size(c->out, c->to, &n_out, err);
    if (rc == SI_OK && n_out < n_in)
        rc = si_err_set(err, SI_ERR_NO_SPACE, "%s: %" PRIu64 " bytes, smaller than the active "
                        "slot %s (%" PRIu64 ")", c->to, n_out, c->from, n_in);
    return rc;
}

static si_result copy_slot(const char *from, const char *to, bool json, si_ext4_used_stats *st,
                           double *secs, si_err *err)
{
    slot_copy c = {.in = -1, .out = -1, .from = from, .to = to, .json = json, .err = err};
    double t0 = now_s();
    c.shown = t0;
    si_result rc = open_slots(&c, err);
    if (rc == SI_OK) /* the amount first, for the progress lines */
        rc = si_ext4_used_walk(from, count_range, &c.total, NULL, err);
    if (rc == SI_OK && !(c.buf = malloc(COPY_CHUNK)))
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
    if (rc == SI_OK)
        rc = si_ext4_used_walk(from, copy_range, &c, st, err);
    if (rc == SI_OK && st->used_bytes != c.total) /* the slot changed under the copy */
        rc = si_err_set(err, SI_ERR_IO, "%s: its used blocks changed during the copy (%" PRIu64
                        " then %" PRIu64 " bytes): is it mounted read-write?", from, c.total,
                        st->used_bytes);
    if (rc == SI_OK && fsync(c.out) < 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: fsync: %s", to, strerror(errno));
    free(c.buf);
    if (c.in >= 0)
        close(c.in);
    if (c.out >= 0)
        close(c.out);
    *secs = now_s() - t0;
    return rc;
}
/* The lock `check` and `stage` take (<state_dir>/lock): no stage rewrites the
 * cache while the engine reads it. Returns the fd (held until exit). */
static si_result lock_state_dir(const stub_config *cfg, int *fd, si_err *err)
{
    int r = si_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "state dir %s: %s", cfg->state_dir, strerror(-r));
    char lockpath[PATH_CAP];
    snprintf(lockpath, sizeof(lockpath), "%s/lock", cfg->state_dir);
    *fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (*fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", lockpath, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
        return si_err_set(err, errno == EWOULDBLOCK ? SI_ERR_EXISTS : SI_ERR_IO, "%s: %s",
                          lockpath,
                          errno == EWOULDBLOCK ? "another sysimage-stub check/stage/install is "
                                                 "running"
                                               : strerror(errno));
    return SI_OK;
}

/* The engine's run: verify (dry_run, against the active slot) or install. */
static int engine(const ab_config *ab, const stub_config *cfg, const char *system,
                  const char *bootctl, bool dry_run)
{
    char cache[PATH_CAP], psys[PATH_CAP], pmisc[PATH_CAP], root[PATH_CAP];
    /* the engine wants the cache's mount point: cache_dir is its recovery/ */
    snprintf(cache, sizeof(cache), "%s", cfg->cache_dir);
    size_t cl = strlen(cache), sl = strlen("/" SI_PROTO_DIR);
    if (cl > sl && strcmp(cache + cl - sl, "/" SI_PROTO_DIR) == 0)
        cache[cl - sl] = '\0';
    snprintf(psys, sizeof(psys), "system=%s", system);
    snprintf(pmisc, sizeof(pmisc), "misc=%s", bootctl);
    snprintf(root, sizeof(root), "%s/%s", ab->work_dir, dry_run ? "verify" : "install");
    si_mkdir_p(root, 0700);
    char *argv[] = {(char *)ab->engine, "run", "--mode", "update", "--partition", psys,
                    "--partition", pmisc, "--cache-dir", cache, "--mount-root", root,
                    dry_run ? "--dry-run" : NULL, NULL};
    return run(argv, !dry_run, NULL, 0);
}

static void json_event(bool json, const char *event, const char *k1, const char *v1,
                       const char *k2, double v2)
{
    if (!json)
        return;
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "event", event) ||
              (k1 && !cJSON_AddStringToObject(o, k1, v1)) ||
              (k2 && !cJSON_AddNumberToObject(o, k2, v2)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    stub_print_json_line(o);
}

/* never overwrite the good slot from a system still on trial */
static si_result refuse_trial_slot(ab_config *ab, int act, si_err *err)
{
    si_grubenv env;
    si_result rc;
    if ((rc = env_get(ab, &env, err)) != SI_OK)
        return rc;
    if (strcmp(env_str(&env, "ab_active"), (char[]){slot_names[act], 0}) != 0)
        return si_err_set(err, SI_ERR_USAGE, "slot %c runs on trial (not marked good; the good "
                          "slot is '%s'): installing would overwrite the good slot; run "
                          "`sysimage-stub mark-good` first", slot_names[act],
                          env_str(&env, "ab_active"));
    return SI_OK;
}

/* the staged command file: its build, and whether it formats the system (a full image) */
static si_result load_staged_job(const stub_config *cfg, si_command_file *cf, int64_t *target, bool *full,
                                 si_err *err)
{
    char cmdpath[PATH_CAP];
    snprintf(cmdpath, sizeof(cmdpath), "%s/%s", cfg->cache_dir, STUB_COMMAND_FILE);
    if (si_command_file_load(cmdpath, cf, err) != SI_OK)
        return si_err_prefix(err, "nothing staged (run `sysimage-stub stage` first)");
    *target = -1;
    *full = false;
    for (size_t i = 0; i < cf->count; i++) {
        if (cf->cmds[i].op == SI_CMD_IMAGE)
            *target = cf->cmds[i].version;
        if (cf->cmds[i].op == SI_CMD_FORMAT && cf->cmds[i].target == SI_TARGET_SYSTEM)
            *full = true;
    }
    if (*target < 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, "%s: no image line: not an update job", cmdpath);
    return SI_OK;
}

/* this process (the copy) at low priority too */
static void lower_own_priority(void)
{
    if (setpriority(PRIO_PROCESS, 0, 10) < 0) { /* best effort */
    }
    syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
}

/* 1. verify everything against the running slot; nothing is written */
static si_result verify_against_running_slot(const stub_opts *o, stub_config *cfg, ab_config *ab, int act,
                                             double t0, si_err *err)
{
    int ina = 1 - act;
    char bootctl[PATH_CAP];
    si_result rc;
    if ((rc = private_bootctl(cfg, bootctl, sizeof(bootctl), err)) != SI_OK)
        return rc;
    int code = engine(ab, cfg, ab->slot_dev[act], bootctl, true);
    if (code != 0)
        return si_err_set(err, code > 0 && code <= SI_ERR_CRASHED ? (si_result)code : SI_ERR_INTERNAL,
                          "the job was refused (%s run --dry-run: exit %d); slot %c untouched",
                          ab->engine, code, slot_names[ina]);
    json_event(o->json, "verified", "slot", (char[]){slot_names[ina], 0}, "seconds", now_s() - t0);
    return SI_OK;
}

/* 3. the base of a delta: the running slot copied onto the other one */
static si_result copy_delta_base(const stub_opts *o, ab_config *ab, int act, si_err *err)
{
    int ina = 1 - act;
    si_ext4_used_stats st = {0};
    double secs = 0;
    si_result rc;
    if ((rc = copy_slot(ab->slot_dev[act], ab->slot_dev[ina], o->json, &st, &secs, err)))
        return rc;
    fprintf(stderr, "sysimage-stub: slot %c copied onto slot %c: %" PRIu64 " of %" PRIu64
            " MiB (the used blocks) in %.1f s\n", slot_names[act], slot_names[ina],
            st.used_bytes >> 20, st.fs_bytes >> 20, secs);
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        if (j && (!cJSON_AddStringToObject(j, "event", "copied") ||
                  !cJSON_AddStringToObject(j, "from", (char[]){slot_names[act], 0}) ||
                  !cJSON_AddNumberToObject(j, "seconds", secs) ||
                  !cJSON_AddNumberToObject(j, "bytes", (double)st.used_bytes) ||
                  !cJSON_AddNumberToObject(j, "fs_bytes", (double)st.fs_bytes))) {
            cJSON_Delete(j);
            j = NULL;
        }
        stub_print_json_line(j);
    }
    return SI_OK;
}

/* 4. the real run, from the start */
static si_result install_into_slot(const stub_opts *o, stub_config *cfg, ab_config *ab, int ina, si_err *err)
{
    char st[PATH_CAP], bootctl[PATH_CAP];
    si_result rc;
    snprintf(st, sizeof(st), "%s/%s", cfg->cache_dir, SI_PROTO_STATE);
    if (unlink(st) < 0 && errno != ENOENT)
        return si_err_set(err, SI_ERR_IO, "%s: %s", st, strerror(errno));
    if ((rc = private_bootctl(cfg, bootctl, sizeof(bootctl), err)) != SI_OK)
        return rc;
    double t1 = now_s();
    int code = engine(ab, cfg, ab->slot_dev[ina], bootctl, false);
    if (code != 0)
        return si_err_set(err, code > 0 && code <= SI_ERR_CRASHED ? (si_result)code : SI_ERR_INTERNAL,
                          "installing into slot %c failed (%s: exit %d; %s/%s); no trial boot is set",
                          slot_names[ina], ab->engine, code, cfg->cache_dir, STUB_LAST_RESULT);
    json_event(o->json, "installed", "slot", (char[]){slot_names[ina], 0}, "seconds", now_s() - t1);
    return SI_OK;
}

/* 5. the trial boot */
static si_result set_trial_boot(ab_config *ab, int ina, int64_t target, si_err *err)
{
    char k1[16], k2[48];
    snprintf(k1, sizeof(k1), "ab_try=%c", slot_names[ina]);
    snprintf(k2, sizeof(k2), "ab_try_build=%" PRId64, target);
    char *trial[] = {k1, "ab_tries=0", k2};
    return env_set(ab, trial, 3, err);
}

static void report_installed(const stub_opts *o, int64_t target, int ina, double t0)
{
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        if (j && (!cJSON_AddStringToObject(j, "event", "done") ||
                  !cJSON_AddNumberToObject(j, "build", (double)target) ||
                  !cJSON_AddStringToObject(j, "slot", (char[]){slot_names[ina], 0}) ||
                  !cJSON_AddNumberToObject(j, "seconds", now_s() - t0))) {
            cJSON_Delete(j);
            j = NULL;
        }
        stub_print_json_line(j);
    }
    else
        printf("build %" PRId64 " installed into slot %c; the next boot tries it\n", target,
               slot_names[ina]);
}

/* client.ini, its [ab] section and the slot the OS booted from; cfg is
 * freed by the caller (stub_config_free), also after a failure. */
static si_result ab_setup(const stub_opts *o, stub_config *cfg, ab_config *ab, int *act, si_err *err)
{
    *act = -1;
    si_result rc = stub_config_load(o->config, cfg, err);
    if (rc == SI_OK && (rc = ab_config_load(cfg, ab, err)) == SI_OK)
        rc = active_slot(ab, act, err);
    return rc;
}

int stub_cmd_install(const stub_opts *o)
{
    stub_config cfg = {0};
    ab_config ab;
    si_err err;
    si_err_clear(&err);
    int act = -1;
    int lock_fd = -1;
    si_command_file *cf = calloc(1, sizeof(*cf));
    si_result rc = cf ? SI_OK : si_err_set(&err, SI_ERR_NOMEM, "out of memory");
    if (rc != SI_OK || (rc = ab_setup(o, &cfg, &ab, &act, &err)) != SI_OK ||
        (rc = lock_state_dir(&cfg, &lock_fd, &err)))
        goto out;
    int ina = 1 - act;
    int64_t target = -1;
    bool full = false;
    if ((rc = refuse_trial_slot(&ab, act, &err)) != SI_OK ||
        (rc = load_staged_job(&cfg, cf, &target, &full, &err)) != SI_OK)
        goto out;
    lower_own_priority();
    fprintf(stderr, "sysimage-stub: install build %" PRId64 " (%s) into slot %c; running slot %c\n",
            target, full ? "full" : "delta", slot_names[ina], slot_names[act]);
    double t0 = now_s();
    if ((rc = verify_against_running_slot(o, &cfg, &ab, act, t0, &err)) != SI_OK)
        goto out;
    /* 2. no trial of a slot being rewritten */
    char *withdraw[] = {"ab_try=", "ab_tries=0", "ab_try_build="};
    if ((rc = env_set(&ab, withdraw, 3, &err)) != SI_OK)
        goto out;
    if (!full && (rc = copy_delta_base(o, &ab, act, &err)) != SI_OK)
        goto out;
    if ((rc = install_into_slot(o, &cfg, &ab, ina, &err)) != SI_OK ||
        (rc = set_trial_boot(&ab, ina, target, &err)) != SI_OK)
        goto out;
    report_installed(o, target, ina, t0);
out:
    if (lock_fd >= 0)
        close(lock_fd);
    free(cf);
    stub_config_free(&cfg);
    return rc == SI_OK ? 0 : stub_fail(&err, o->json);
}

int stub_cmd_mark_good(const stub_opts *o)
{
    stub_config cfg;
    ab_config ab;
    si_err err;
    si_err_clear(&err);
    int act = -1;
    si_grubenv env;
    si_result rc;
    if ((rc = ab_setup(o, &cfg, &ab, &act, &err)) == SI_OK && (rc = env_get(&ab, &env, &err)) == SI_OK) {
        char me[2] = {slot_names[act], 0};
        bool trial = strcmp(env_str(&env, "ab_try"), me) == 0;
        if (trial || strcmp(env_str(&env, "ab_active"), me) != 0) {
            char k1[16];
            snprintf(k1, sizeof(k1), "ab_active=%s", me);
            char *kv[] = {k1, "ab_try=", "ab_tries=0", "ab_failed=", "ab_failed_build="};
            rc = env_set(&ab, kv, 5, &err);
            if (rc == SI_OK)
                printf("slot %s marked good (build %s)\n", me, env_str(&env, "ab_try_build"));
        } else {
            printf("slot %s is already the good slot\n", me);
        }
    }
    stub_config_free(&cfg);
    return rc == SI_OK ? 0 : stub_fail(&err, o->json);
}

cJSON *stub_ab_state(const stub_config *cfg)
{
    if (!si_ini_get(cfg->ini, "ab", "slot_a") && !si_ini_get(cfg->ini, "ab", "slot_b"))
        return NULL;
    ab_config ab;
    si_err err;
    si_err_clear(&err);
    int act = -1;
    si_grubenv env;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    bool ok;
    if (ab_config_load(cfg, &ab, &err) == SI_OK && active_slot(&ab, &act, &err) == SI_OK &&
        env_get(&ab, &env, &err) == SI_OK)
        ok = cJSON_AddStringToObject(j, "booted_slot", (char[]){slot_names[act], 0}) &&
             cJSON_AddStringToObject(j, "good_slot", env_str(&env, "ab_active")) &&
             cJSON_AddStringToObject(j, "trial_slot", env_str(&env, "ab_try")) &&
             cJSON_AddStringToObject(j, "trial_build", env_str(&env, "ab_try_build")) &&
             cJSON_AddStringToObject(j, "rolled_back_slot", env_str(&env, "ab_failed")) &&
             cJSON_AddStringToObject(j, "rolled_back_build", env_str(&env, "ab_failed_build"));
    else
        ok = cJSON_AddStringToObject(j, "error", err.msg) != NULL;
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

void stub_ab_status_text(const cJSON *ab)
{
    if (!ab)
        return;
    if (jstr(ab, "error")[0]) {
        printf("A/B slots:        unknown (%s)\n", jstr(ab, "error"));
        return;
    }
    printf("slot:             %s (good slot %s%s%s)\n", jstr(ab, "booted_slot"),
           jstr(ab, "good_slot"), jstr(ab, "trial_slot")[0] ? ", on trial: " : "",
           jstr(ab, "trial_slot"));
    if (jstr(ab, "rolled_back_slot")[0])
        printf("rollback:         build %s in slot %s did not come up; back on slot %s\n",
               jstr(ab, "rolled_back_build")[0] ? jstr(ab, "rolled_back_build") : "?",
               jstr(ab, "rolled_back_slot"), jstr(ab, "good_slot"));
}
