/* stage.c - `stage`: after `check` (discover.c), download and verify the
 * files of the chosen images into the cache directory, stage the verified
 * keyrings and the signed index, and write the recovery's job bound to that
 * index (lib/command, docs/formats.md). Steps: plan -> clean -> space ->
 * fetch -> trust files -> job -> staged.json -> report. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bootctl.h"
#include "command.h"
#include "fsutil.h"
#include "jsonutil.h"
#include "localrepo.h"
#include "sha256.h"
#include "sigfile.h"
#include "stub.h"

typedef struct stage_file {
    const si_index_file *f;
    char name[SI_COMMAND_NAME_MAX + 1];
    char sig[SI_COMMAND_NAME_MAX + 1];
    bool valid;          /* already staged and intact */
    bool dup;            /* the same file as an earlier entry (one download) */
} stage_file;

typedef struct stage_plan {
    const si_path *w;    /* the winning path */
    size_t nimages;      /* images of it staged this round (up to the first bootme) */
    size_t nfiles;
    stage_file *files;   /* image order, then `order` */
    size_t nunique;      /* files actually fetched or reused */
    uint64_t fetched;    /* bytes received */
} stage_plan;

typedef struct progress_ctx {
    bool json, tty;
    int last_pct;
    const char *last_name;
} progress_ctx;

/* ---------------------------------------------------------------- output */

static void progress(void *ctx, const char *name, uint64_t done, uint64_t total)
{
    progress_ctx *p = ctx;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (p->last_name == name && pct == p->last_pct && done != total)
        return;
    p->last_name = name;
    p->last_pct = pct;
    if (p->json) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "event", "progress") ||
                  !cJSON_AddStringToObject(o, "file", name) ||
                  !cJSON_AddNumberToObject(o, "done", (double)done) ||
                  !cJSON_AddNumberToObject(o, "total", (double)total))) {
            cJSON_Delete(o);
            o = NULL;
        }
        stub_print_json_line(o);
    } else if (p->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%-40.40s [%s] %3d%% %8.1f MiB", name, bar, pct,
                (double)done / (1024.0 * 1024.0));
        if (done == total)
            fputc('\n', stderr);
    }
}

static void event_reused(const stage_file *sf)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "event", "reused") ||
              !cJSON_AddStringToObject(o, "file", sf->name) ||
              !cJSON_AddNumberToObject(o, "size", (double)sf->f->size))) {
        cJSON_Delete(o);
        o = NULL;
    }
    stub_print_json_line(o);
}

static void report_staged(const stub_opts *o, const stage_plan *plan, const char *cmdpath)
{
    int64_t target = plan->w->images[plan->nimages - 1]->version;
    if (!o->json) {
        printf("staged build %" PRId64 " (%zu files, %" PRIu64
               " bytes downloaded); command file %s\n",
               target, plan->nunique, plan->fetched, cmdpath);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    if (j && (!cJSON_AddStringToObject(j, "event", "staged") ||
              !cJSON_AddNumberToObject(j, "target", (double)target) ||
              !cJSON_AddNumberToObject(j, "files", (double)plan->nunique) ||
              !cJSON_AddNumberToObject(j, "fetched", (double)plan->fetched) ||
              !cJSON_AddStringToObject(j, "command_file", cmdpath))) {
        cJSON_Delete(j);
        j = NULL;
    }
    stub_print_json_line(j);
}

/* ---------------------------------------------------------------- plan */

/* The basename of an index path, usable as a staged file name: none of the
 * names the recovery and the stub own (lib/protocol), nor staged.json. */
static si_result staged_name(const char *path, char *out, size_t outlen, int64_t version,
                             si_err *err)
{
    const char *why = NULL;
    if (si_basename(path, out, outlen) < 0)
        why = "name too long";
    else if ((why = si_protocol_reserved_why(out)) == NULL && strcmp(out, STUB_STAGED_FILE) == 0)
        why = "reserved for the stub";
    if (!why)
        return SI_OK;
    return si_err_set(err, SI_ERR_UNSAFE_PATH,
                      "index.json: image %" PRId64 ": file '%s': refusing to stage it: %s",
                      version, path, why);
}

/* The same pool file in two images of the path (e.g. an unchanged device
 * tarball) is fetched once and applied by each image; two different files
 * with one name cannot both be staged. */
static si_result mark_duplicate(stage_file *files, size_t k, si_err *err)
{
    stage_file *sf = &files[k];
    for (size_t q = 0; q < k && !sf->dup; q++) {
        bool same_name = strcmp(files[q].name, sf->name) == 0;
        bool same_sig = strcmp(files[q].sig, sf->sig) == 0;
        if (!same_name && !same_sig)
            continue;
        if (same_name && same_sig && files[q].f->size == sf->f->size &&
            strcmp(files[q].f->checksum, sf->f->checksum) == 0) {
            sf->dup = true;
            continue;
        }
        return si_err_set(err, SI_ERR_PARSE,
                          "index.json: two different files of the path are named '%s'",
                          same_name ? sf->name : sf->sig);
    }
    return SI_OK;
}

static si_result plan_image(stage_plan *plan, const si_image *img, size_t *k, si_err *err)
{
    const si_index_file **sorted = NULL;
    si_result rc = si_image_sorted_files(img, &sorted, err);
    for (size_t j = 0; rc == SI_OK && j < img->nfiles; j++, (*k)++) {
        stage_file *sf = &plan->files[*k];
        sf->f = sorted[j];
        if ((rc = staged_name(sf->f->path, sf->name, sizeof(sf->name), img->version, err)) ==
                SI_OK &&
            (rc = staged_name(sf->f->signature, sf->sig, sizeof(sf->sig), img->version, err)) ==
                SI_OK)
            rc = mark_duplicate(plan->files, *k, err);
    }
    free(sorted);
    return rc;
}

/* Files of the images up to the first bootme, in image order then `order`. */
static si_result plan_files(const si_path *w, stage_plan *plan, si_err *err)
{
    plan->w = w;
    plan->nimages = si_path_bootme_count(w);
    for (size_t i = 0; i < plan->nimages; i++)
        plan->nfiles += w->images[i]->nfiles;
    plan->files = calloc(plan->nfiles ? plan->nfiles : 1, sizeof(*plan->files));
    if (!plan->files)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    size_t k = 0;
    si_result rc = SI_OK;
    for (size_t i = 0; i < plan->nimages && rc == SI_OK; i++)
        rc = plan_image(plan, w->images[i], &k, err);
    return rc;
}

/* ---------------------------------------------------------------- clean */

/* Names stage writes: update files, signatures, keyrings, downloads. */
static bool is_ours(const char *name)
{
    static const char *const sfx[] = {".part", ".sig", ".keyring", ".tar", ".zst", ".xz"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        size_t l = strlen(sfx[i]);
        if (n > l && strcmp(name + n - l, sfx[i]) == 0)
            return true;
    }
    return false;
}

static bool needed(const stage_plan *plan, const char *base)
{
    for (size_t q = 0; q < plan->nfiles; q++)
        if (strcmp(base, plan->files[q].name) == 0 || strcmp(base, plan->files[q].sig) == 0)
            return true;
    for (size_t q = 0; q < 4; q++) {
        char kn[64];
        snprintf(kn, sizeof(kn), "%s.keyring", si_keyring_type_name(stub_ring_order[q]));
        if (strcmp(base, kn) == 0)
            return true;
        snprintf(kn, sizeof(kn), "%s.keyring.sig", si_keyring_type_name(stub_ring_order[q]));
        if (strcmp(base, kn) == 0)
            return true;
    }
    return strcmp(base, SI_PROTO_INDEX_SIG) == 0;
}

/* Delete files of ours that the path does not need (a .part counts as its file). */
static si_result clean_cache(const stub_config *cfg, const stage_plan *plan, si_err *err)
{
    DIR *d = opendir(cfg->cache_dir);
    if (!d)
        return si_err_set(err, SI_ERR_IO, "%s: %s", cfg->cache_dir, strerror(errno));
    si_result rc = SI_OK;
    struct dirent *de;
    while (rc == SI_OK && (de = readdir(d))) {
        if (!is_ours(de->d_name))
            continue;
        char base[NAME_MAX + 1];
        snprintf(base, sizeof(base), "%s", de->d_name);
        size_t bl = strlen(base);
        if (bl > 5 && strcmp(base + bl - 5, SI_PROTO_PART_SUFFIX) == 0)
            base[bl - 5] = '\0';
        if (needed(plan, base))
            continue;
        char p[PATH_CAP];
        snprintf(p, sizeof(p), "%s/%s", cfg->cache_dir, de->d_name);
        if (unlink(p) < 0 && errno != ENOENT)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", p, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* ---------------------------------------------------------------- space */

/* Size and sha256 of a staged file against the index; opened without
 * following symlinks or blocking on a FIFO, regular files only. */
static si_result hash_check(const char *path, const si_index_file *f, si_err *err)
{
    int fd = -1;
    si_result rc = si_protocol_open_staged(AT_FDCWD, path, &fd, NULL, err);
    if (rc != SI_OK)
        return rc;
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_fd(fd, d, &size);
    close(fd);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return si_repo_check_digest(path, f, d, size, err);
}

/* Mark the files already staged intact; bytes left to fetch. */
static uint64_t bytes_needed(const stub_config *cfg, stage_plan *plan)
{
    uint64_t need = 4 * (SI_KEYRING_MAX_BYTES / 16) + SI_INDEX_MAX_BYTES / 16;
    for (size_t q = 0; q < plan->nfiles; q++) {
        stage_file *sf = &plan->files[q];
        if (sf->dup)
            continue;
        char p[PATH_CAP];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", cfg->cache_dir, sf->name);
        if (lstat(p, &st) == 0) {
            si_err e2 = {0};
            if (hash_check(p, sf->f, &e2) == SI_OK) {
                sf->valid = true;
                continue;
            }
            unlink(p);
        }
        uint64_t have = 0;
        snprintf(p, sizeof(p), "%s/%s%s", cfg->cache_dir, sf->name, SI_PROTO_PART_SUFFIX);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= sf->f->size)
            have = (uint64_t)st.st_size;
        need += sf->f->size - have + SI_SIGFILE_MAX_BYTES / 16;
    }
    return need;
}

static si_result check_space(const stub_config *cfg, stage_plan *plan, si_err *err)
{
    uint64_t need = bytes_needed(cfg, plan);
    struct statvfs vfs;
    if (statvfs(cfg->cache_dir, &vfs) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: statvfs: %s", cfg->cache_dir, strerror(errno));
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < need)
        return si_err_set(err, SI_ERR_NO_SPACE,
                          "cache dir %s: %" PRIu64 " bytes needed, only %" PRIu64 " free",
                          cfg->cache_dir, need, avail);
    return SI_OK;
}

/* ---------------------------------------------------------------- fetch */

static si_result write_out(const char *path, const char *buf, size_t len, si_err *err)
{
    int r = si_write_file_atomic(path, buf, len, 0644);
    if (r < 0)
        return si_err_set(err, r == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", path,
                          strerror(-r));
    return SI_OK;
}

/* One file: its signature, the bytes (unless already intact), size and
 * sha256 against the index, then the signature. A bad file goes. */
static si_result fetch_one(stub_discovery *dc, const stub_opts *o, stage_plan *plan,
                           stage_file *sf, progress_ctx *pc, si_err *err)
{
    char fp[PATH_CAP], sp[PATH_CAP];
    snprintf(fp, sizeof(fp), "%s/%s", dc->cfg.cache_dir, sf->name);
    snprintf(sp, sizeof(sp), "%s/%s", dc->cfg.cache_dir, sf->sig);
    char *sbuf = NULL;
    size_t slen = 0;
    si_result rc = si_http_get(dc->net, sf->f->signature, SI_SIGFILE_MAX_BYTES, &sbuf, &slen,
                                err);
    if (rc != SI_OK)
        return si_err_prefix(err, "signature of %s", sf->name);
    rc = write_out(sp, sbuf, slen, err);
    free(sbuf);
    if (rc != SI_OK)
        return rc;
    if (sf->valid) {
        if (o->json)
            event_reused(sf);
    } else {
        uint64_t got = 0;
        rc = si_http_download(dc->net, sf->f->path, fp, sf->f->size, progress, pc, &got, err);
        plan->fetched += got;
        if (rc == SI_OK)
            rc = hash_check(fp, sf->f, err);
        if (rc != SI_OK && rc != SI_ERR_NETWORK && rc != SI_ERR_NO_SPACE)
            unlink(fp);
    }
    if (rc == SI_OK &&
        (rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_UPDATE, fp, sp, NULL, err)) != SI_OK) {
        si_err_prefix(err, "%s", sf->name);
        unlink(fp);
    }
    if (rc != SI_OK)
        unlink(sp);
    return rc;
}

static si_result fetch_files(stub_discovery *dc, const stub_opts *o, stage_plan *plan,
                             si_err *err)
{
    progress_ctx pc = {.json = o->json, .tty = isatty(2) != 0, .last_pct = -1};
    for (size_t q = 0; q < plan->nfiles; q++) {
        if (plan->files[q].dup)
            continue;
        plan->nunique++;
        si_result rc = fetch_one(dc, o, plan, &plan->files[q], &pc, err);
        if (rc != SI_OK)
            return rc;
    }
    return SI_OK;
}

/* ---------------------------------------------------------------- job */

/* Copy a verified document from the run's temp dir into the cache dir. */
static si_result stage_copy(const stub_discovery *dc, const char *name, size_t max,
                            si_err *err)
{
    char from[PATH_CAP], to[PATH_CAP];
    snprintf(from, sizeof(from), "%s/%s", dc->tmpdir, name);
    snprintf(to, sizeof(to), "%s/%s", dc->cfg.cache_dir, name);
    char *buf = NULL;
    size_t len = 0;
    int r = si_read_file(from, max, &buf, &len);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", from, strerror(-r));
    si_result rc = write_out(to, buf, len, err);
    free(buf);
    return rc;
}

static bool ring_present(const stub_discovery *dc, si_keyring_type t)
{
    if (t == SI_KR_BLACKLIST)
        return dc->has_blacklist;
    if (t == SI_KR_DEVICE_SIGNING)
        return dc->has_device_keyring;
    return true;
}

/* The keyrings (command-file order) and the signed index the job is bound to;
 * the recovery verifies them again from its own archive-master. */
static si_result stage_trust_files(const stub_discovery *dc, si_command_file *cf, si_err *err)
{
    si_result rc = SI_OK;
    for (size_t q = 0; q < 4 && rc == SI_OK; q++) {
        if (!ring_present(dc, stub_ring_order[q]))
            continue;
        char kn[64], ks[64];
        snprintf(kn, sizeof(kn), "%s.keyring", si_keyring_type_name(stub_ring_order[q]));
        snprintf(ks, sizeof(ks), "%s.keyring.sig", si_keyring_type_name(stub_ring_order[q]));
        if ((rc = stage_copy(dc, kn, SI_KEYRING_MAX_BYTES, err)) == SI_OK &&
            (rc = stage_copy(dc, ks, SI_SIGFILE_MAX_BYTES, err)) == SI_OK)
            rc = si_command_file_add(cf, SI_CMD_LOAD_KEYRING, SI_TARGET_NONE, kn, ks, err);
    }
    if (rc == SI_OK && (rc = stage_copy(dc, SI_PROTO_INDEX, SI_INDEX_MAX_BYTES, err)) == SI_OK &&
        (rc = stage_copy(dc, SI_PROTO_INDEX_SIG, SI_SIGFILE_MAX_BYTES, err)) == SI_OK)
        rc = si_command_file_add_index(cf, SI_PROTO_INDEX, SI_PROTO_INDEX_SIG, err);
    return rc;
}

/* index, image lines (path order), format system iff the path starts with
 * a full, mount, every file of every chosen image, unmount. */
static si_result build_job(const stub_discovery *dc, const stage_plan *plan,
                           si_command_file *cf, si_err *err)
{
    si_result rc = stage_trust_files(dc, cf, err);
    for (size_t i = 0; i < plan->nimages && rc == SI_OK; i++) {
        const si_image *img = plan->w->images[i];
        rc = si_command_file_add_image(cf, img->type == SI_IMAGE_FULL, img->version, img->base,
                                       err);
    }
    if (rc == SI_OK && plan->w->images[0]->type == SI_IMAGE_FULL)
        rc = si_command_file_add(cf, SI_CMD_FORMAT, SI_TARGET_SYSTEM, NULL, NULL, err);
    if (rc == SI_OK)
        rc = si_command_file_add(cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL, err);
    for (size_t q = 0; q < plan->nfiles && rc == SI_OK; q++)
        rc = si_command_file_add(cf, SI_CMD_UPDATE, SI_TARGET_NONE, plan->files[q].name,
                                 plan->files[q].sig, err);
    if (rc == SI_OK)
        rc = si_command_file_add(cf, SI_CMD_UNMOUNT, SI_TARGET_SYSTEM, NULL, NULL, err);
    if (rc == SI_OK && (rc = si_command_file_check(cf, err)) != SI_OK)
        si_err_prefix(err, "internal: the job written would be refused");
    return rc;
}

/* staged.json for `status`: {"from", "size", "target"}. */
static si_result write_staged_json(const stub_discovery *dc, const stage_plan *plan,
                                   si_err *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "from", (double)dc->build) ||
        !cJSON_AddNumberToObject(o, "size",
                                 (double)si_path_download_size(plan->w, plan->nimages)) ||
        !cJSON_AddNumberToObject(o, "target",
                                 (double)plan->w->images[plan->nimages - 1]->version)) {
        cJSON_Delete(o);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    char *text = NULL;
    si_result rc = si_json_print_sorted(o, &text, err);
    cJSON_Delete(o);
    if (rc != SI_OK)
        return rc;
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", dc->cfg.cache_dir, STUB_STAGED_FILE);
    rc = write_out(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- stage */

si_result stub_drop_command_file(const stub_config *cfg, si_err *err)
{
    char cmdpath[PATH_CAP];
    snprintf(cmdpath, sizeof(cmdpath), "%s/%s", cfg->cache_dir, STUB_COMMAND_FILE);
    if (unlink(cmdpath) < 0) {
        if (errno == ENOENT)
            return SI_OK;
        return si_err_set(err, SI_ERR_IO, "%s: %s", cmdpath, strerror(errno));
    }
    si_fsync_parent_dir(cmdpath);
    stub_boot_request req;
    long tries;
    si_err e2 = {0};
    if (stub_bootctl_get(cfg->boot_control, &req, &tries, &e2) == SI_OK &&
        req == STUB_BOOT_UPDATE &&
        stub_bootctl_set(cfg->boot_control, STUB_BOOT_NORMAL, &e2) == SI_OK)
        fprintf(stderr, "sysimage-stub: withdrew the pending recovery request (the staged "
                        "update is being replaced)\n");
    else if (e2.msg[0])
        fprintf(stderr, "sysimage-stub: warning: %s\n", e2.msg);
    return SI_OK;
}

static si_result do_stage(const stub_opts *o, stub_discovery *dc, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
    int r = si_mkdir_p(cfg->cache_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "cache dir %s: %s", cfg->cache_dir, strerror(-r));
    /* An earlier command file no longer describes what is staged. */
    si_result rc = stub_drop_command_file(cfg, err);
    if (rc != SI_OK || dc->res.winner < 0)
        return rc;
    stage_plan plan = {0};
    si_command_file *cf = calloc(1, sizeof(*cf));
    char cmdpath[PATH_CAP];
    snprintf(cmdpath, sizeof(cmdpath), "%s/%s", cfg->cache_dir, STUB_COMMAND_FILE);
    if (!cf)
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
    if (rc == SI_OK)
        rc = plan_files(&dc->res.cand.paths[dc->res.winner], &plan, err);
    if (rc == SI_OK)
        rc = clean_cache(cfg, &plan, err);
    if (rc == SI_OK)
        rc = check_space(cfg, &plan, err);
    if (rc == SI_OK)
        rc = fetch_files(dc, o, &plan, err);
    if (rc == SI_OK)
        rc = build_job(dc, &plan, cf, err);
    if (rc == SI_OK)
        rc = write_staged_json(dc, &plan, err);
    if (rc == SI_OK) /* the command file last */
        rc = si_command_file_write(cmdpath, cf, err);
    if (rc == SI_OK)
        report_staged(o, &plan, cmdpath);
    free(cf);
    free(plan.files);
    return rc;
}

int stub_cmd_stage(const stub_opts *o)
{
    stub_discovery dc;
    si_err err = {0};
    si_result rc = stub_discover(o, &dc, &err);
    if (rc == SI_OK) {
        if (dc.res.winner < 0)
            stub_print_update(&dc, o->json);
        rc = do_stage(o, &dc, &err);
    } else if (dc.locked) {
        /* A failed check must not leave an old command file behind (but
         * another run's files are not ours to touch). */
        si_err e2 = {0};
        if (stub_drop_command_file(&dc.cfg, &e2) != SI_OK)
            fprintf(stderr, "sysimage-stub: warning: %s\n", e2.msg);
    }
    stub_discovery_free(&dc);
    return rc == SI_OK ? SI_OK : stub_fail(&err, o->json);
}
