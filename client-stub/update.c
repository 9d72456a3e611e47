/* update.c - `check` and `stage`: the verified chain keyrings -> channels.json
 * -> index.json over HTTPS, the upgrade path, verified downloads into the
 * cache directory and the recovery's command file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bootctl.h"
#include "channels.h"
#include "command.h"
#include "fsutil.h"
#include "jsonutil.h"
#include "keyring.h"
#include "resolve.h"
#include "sha256.h"
#include "sigfile.h"
#include "stub.h"

#define MAX_REDIRECTS 4
#define PATH_CAP 4096

/* Everything `check` learnt, owned by one run. */
typedef struct discovery {
    stub_config cfg;
    stub_net *net;
    si_trust trust;
    bool trust_ready;
    char tmpdir[PATH_CAP / 2];    /* downloaded keyrings/documents */
    int lock_fd;                  /* flock on <state_dir>/lock */
    bool locked;
    bool has_blacklist;
    bool has_device_keyring;
    int64_t build;                /* installed build */
    char machine_id[STUB_MACHINE_ID_MAX];
    si_channels *channels;
    si_index *index;
    si_resolution res;
    bool res_ready;
} discovery;

static const char *const ring_names[] = {"image-master", "blacklist", "image-signing",
                                         "device-signing"};

static void rm_tree_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[PATH_CAP];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void discovery_free(discovery *dc)
{
    if (dc->res_ready)
        si_resolution_free(&dc->res);
    si_index_free(dc->index);
    si_channels_free(dc->channels);
    if (dc->trust_ready)
        si_trust_free(&dc->trust);
    stub_net_close(dc->net);
    if (dc->tmpdir[0])
        rm_tree_flat(dc->tmpdir);
    if (dc->lock_fd >= 0)
        close(dc->lock_fd);
    stub_config_free(&dc->cfg);
}

/* ---------------------------------------------------------------- state */
/* state.json: {"generated_at": <epoch of the newest verified index>} */
static si_result state_read(const stub_config *cfg, int64_t *last, si_err *err)
{
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, STUB_STATE_FILE);
    *last = -1;
    char *buf = NULL;
    size_t len = 0;
    int r = si_read_file(path, STUB_STATE_MAX_BYTES, &buf, &len);
    if (r == -ENOENT)
        return SI_OK;
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    cJSON *root = NULL;
    si_result rc = si_json_parse(buf, len, STUB_STATE_MAX_BYTES, path, &root, err);
    free(buf);
    if (rc != SI_OK)
        return rc;
    rc = cJSON_IsObject(root)
             ? si_json_get_int(root, "", "generated_at", true, 0, INT64_C(1) << 53, last, NULL,
                               err)
             : si_err_set(err, SI_ERR_PARSE, "expected an object");
    cJSON_Delete(root);
    return rc == SI_OK ? SI_OK : si_err_prefix(err, "%s", path);
}

static si_result state_write(const stub_config *cfg, int64_t generated_at, si_err *err)
{
    int r = stub_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", cfg->state_dir, strerror(-r));
    char path[PATH_CAP], text[128];
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, STUB_STATE_FILE);
    int n = snprintf(text, sizeof(text), "{\n    \"generated_at\": %" PRId64 "\n}\n", generated_at);
    r = si_write_file_atomic(path, text, (size_t)n, 0644);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return SI_OK;
}

/* ---------------------------------------------------------------- fetch */
/* GET server path into dir/name; SI_ERR_NOT_FOUND on 404. */
static si_result fetch_to(discovery *dc, const char *path, size_t max, const char *name,
                          char *out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    si_result rc = stub_net_get(dc->net, path, max, &buf, &len, err);
    if (rc != SI_OK)
        return rc;
    if (snprintf(out, PATH_CAP, "%s/%s", dc->tmpdir, name) >= PATH_CAP) {
        free(buf);
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s/%s: path too long", dc->tmpdir, name);
    }
    int r = si_write_file_atomic(out, buf, len, 0644);
    free(buf);
    if (r < 0)
        return si_err_set(err, r == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", out,
                          strerror(-r));
    return SI_OK;
}

/* Fetch a keyring and its signature; *present=false when the keyring is 404
 * and optional. */
static si_result fetch_keyring(discovery *dc, const char *path, const char *sigpath,
                               const char *name, bool optional, bool *present, char *kpath,
                               char *spath, si_err *err)
{
    char fname[128];
    snprintf(fname, sizeof(fname), "%s.keyring", name);
    si_result rc = fetch_to(dc, path, SI_KEYRING_MAX_BYTES, fname, kpath, err);
    if (rc == SI_ERR_NOT_FOUND && optional) {
        *present = false;
        return SI_OK;
    }
    if (rc != SI_OK)
        return si_err_prefix(err, "%s keyring", name);
    snprintf(fname, sizeof(fname), "%s.keyring.sig", name);
    rc = fetch_to(dc, sigpath, SI_SIGFILE_MAX_BYTES, fname, spath, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s keyring signature", name);
    *present = true;
    return SI_OK;
}

static si_result discover(const stub_opts *o, discovery *dc, si_err *err)
{
    memset(dc, 0, sizeof(*dc));
    dc->lock_fd = -1;
    si_result rc = stub_config_load(o->config, &dc->cfg, err);
    if (rc != SI_OK)
        return rc;
    const stub_config *cfg = &dc->cfg;
    if (o->has_build)
        dc->build = o->build;
    else if ((rc = stub_read_build(cfg, &dc->build, err)) != SI_OK)
        return rc;
    if ((rc = stub_read_machine_id(cfg->machine_id, dc->machine_id, sizeof(dc->machine_id),
                                   err)) != SI_OK)
        return rc;
    int64_t floor_ts = -1;
    if ((rc = state_read(cfg, &floor_ts, err)) != SI_OK)
        return rc;
    /* DESIGN §3: the later of the clock and the newest trusted timestamp. */
    int64_t now = (int64_t)time(NULL);
    if (floor_ts > now)
        now = floor_ts;
    if (stub_build_epoch() > now)
        now = stub_build_epoch();

    int r = stub_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "state dir %s: %s", cfg->state_dir, strerror(-r));
    /* One check/stage at a time; then leftovers of a killed run can go. */
    char lockpath[PATH_CAP];
    snprintf(lockpath, sizeof(lockpath), "%s/lock", cfg->state_dir);
    dc->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (dc->lock_fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", lockpath, strerror(errno));
    if (flock(dc->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return si_err_set(err, errno == EWOULDBLOCK ? SI_ERR_EXISTS : SI_ERR_IO,
                          "%s: %s", lockpath,
                          errno == EWOULDBLOCK ? "another sysimage-stub check/stage is running"
                                               : strerror(errno));
    dc->locked = true;
    DIR *sd = opendir(cfg->state_dir);
    if (sd) {
        struct dirent *e;
        while ((e = readdir(sd))) {
            if (strncmp(e->d_name, "download.", 9) == 0) {
                char p[PATH_CAP];
                snprintf(p, sizeof(p), "%s/%s", cfg->state_dir, e->d_name);
                rm_tree_flat(p);
            }
        }
        closedir(sd);
    }
    snprintf(dc->tmpdir, sizeof(dc->tmpdir), "%s/download.XXXXXX", cfg->state_dir);
    if (!mkdtemp(dc->tmpdir)) {
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", dc->tmpdir, strerror(errno));
        dc->tmpdir[0] = '\0';
        return rc;
    }

    si_trust_init(&dc->trust, cfg->device, now);
    dc->trust_ready = true;
    si_keyring *am = NULL;
    if ((rc = si_keyring_load(cfg->archive_master, &am, err)) != SI_OK)
        return si_err_prefix(err, "archive-master keyring");
    if (am->type != SI_KR_ARCHIVE_MASTER) {
        si_keyring_free(am);
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "%s: not an archive-master keyring",
                          cfg->archive_master);
    }
    if ((rc = si_trust_set_archive_master(&dc->trust, am, err)) != SI_OK)
        return rc;
    if ((rc = stub_net_open(cfg, &dc->net, err)) != SI_OK)
        return rc;

    /* Keyrings up to image-signing, validated together (blacklist first). */
    char kp[3][PATH_CAP], sp[3][PATH_CAP];
    const char *kps[3], *sps[3];
    size_t nk = 0;
    bool present;
    static const char *const srv[3][2] = {
        {"/keyrings/image-master.keyring", "/keyrings/image-master.keyring.sig"},
        {"/keyrings/blacklist.keyring", "/keyrings/blacklist.keyring.sig"},
        {"/keyrings/image-signing.keyring", "/keyrings/image-signing.keyring.sig"},
    };
    for (int i = 0; i < 3; i++) {
        if ((rc = fetch_keyring(dc, srv[i][0], srv[i][1], ring_names[i], i == 1, &present,
                                kp[nk], sp[nk], err)) != SI_OK)
            return rc;
        if (!present)
            continue;
        if (i == 1)
            dc->has_blacklist = true;
        kps[nk] = kp[nk];
        sps[nk] = sp[nk];
        nk++;
    }
    if ((rc = si_trust_load_files(&dc->trust, kps, sps, nk, err)) != SI_OK)
        return rc;

    /* channels.json */
    char cpath[PATH_CAP], csig[PATH_CAP];
    if ((rc = fetch_to(dc, "/channels.json", SI_CHANNELS_MAX_BYTES, "channels.json", cpath,
                       err)) != SI_OK ||
        (rc = fetch_to(dc, "/channels.json.sig", SI_SIGFILE_MAX_BYTES, "channels.json.sig",
                       csig, err)) != SI_OK)
        return si_err_prefix(err, "channels.json");
    if ((rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_CHANNELS, cpath, csig, NULL, err)) !=
        SI_OK)
        return si_err_prefix(err, "channels.json");
    if ((rc = si_channels_load(cpath, &dc->channels, err)) != SI_OK)
        return rc;
    const si_channel *ch = si_channels_find(dc->channels, cfg->channel);
    for (int hop = 0; ch && ch->redirect; hop++) {
        if (hop == MAX_REDIRECTS)
            return si_err_set(err, SI_ERR_PARSE, "channels.json: more than %d redirects from '%s'",
                              MAX_REDIRECTS, cfg->channel);
        const char *to = ch->redirect;
        ch = si_channels_find(dc->channels, to);
        if (!ch)
            return si_err_set(err, SI_ERR_NOT_FOUND,
                              "channels.json: channel '%s' redirects to unknown '%s'",
                              cfg->channel, to);
    }
    if (!ch)
        return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: no channel '%s'", cfg->channel);
    const si_channel_device *dev = si_channel_find_device(ch, cfg->device);
    if (!dev)
        return si_err_set(err, SI_ERR_NOT_FOUND,
                          "channels.json: channel '%s' has no device '%s' (wrong device model?)",
                          ch->name, cfg->device);

    /* device-signing keyring, if the channel names one */
    if (dev->keyring_path) {
        char dk[PATH_CAP], ds[PATH_CAP];
        char sigp[PATH_CAP];
        if (dev->keyring_signature)
            snprintf(sigp, sizeof(sigp), "%s", dev->keyring_signature);
        else
            snprintf(sigp, sizeof(sigp), "%s.sig", dev->keyring_path);
        if ((rc = fetch_keyring(dc, dev->keyring_path, sigp, "device-signing", false, &present,
                                dk, ds, err)) != SI_OK)
            return rc;
        const char *dks[1] = {dk}, *dss[1] = {ds};
        if ((rc = si_trust_load_files(&dc->trust, dks, dss, 1, err)) != SI_OK)
            return rc;
        dc->has_device_keyring = true;
    }

    /* index.json */
    char ipath[PATH_CAP], isig[PATH_CAP], isrv[PATH_CAP];
    snprintf(isrv, sizeof(isrv), "%s.sig", dev->index);
    if ((rc = fetch_to(dc, dev->index, SI_INDEX_MAX_BYTES, "index.json", ipath, err)) != SI_OK ||
        (rc = fetch_to(dc, isrv, SI_SIGFILE_MAX_BYTES, "index.json.sig", isig, err)) != SI_OK)
        return si_err_prefix(err, "index.json");
    if ((rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_INDEX, ipath, isig, NULL, err)) != SI_OK)
        return si_err_prefix(err, "index.json");
    if ((rc = si_index_load(ipath, &dc->index, err)) != SI_OK)
        return rc;
    if (dc->index->generated_at_epoch < 0)
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "index.json: global.generated_at missing: its age cannot be checked");
    if (dc->index->generated_at_epoch < floor_ts) {
        char a[64], b[64];
        si_index_format_time(dc->index->generated_at_epoch, a);
        si_index_format_time(floor_ts, b);
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "index.json: generated_at %s is older than the last verified index (%s):"
                          " refusing a rollback/freeze",
                          a, b);
    }
    if (dc->index->generated_at_epoch > floor_ts &&
        (rc = state_write(cfg, dc->index->generated_at_epoch, err)) != SI_OK)
        return rc;

    /* DESIGN §6: phasing by the alias, else the configured target; a
     * different alias is a channel switch, resolved from build 0. */
    si_resolve_opts ro = {.build = dc->build, .build_override = o->has_build,
                          .channel = cfg->channel_target, .alias = ch->alias,
                          .machine_id = dc->machine_id};
    if ((rc = si_resolve(dc->index, &ro, &dc->res, err)) != SI_OK)
        return rc;
    dc->res_ready = true;
    return SI_OK;
}

/* ---------------------------------------------------------------- output */
static void print_image_ref(FILE *f, const si_image *img)
{
    fprintf(f, "{\"type\": \"%s\", \"version\": %" PRId64 ", \"base\": ",
            img->type == SI_IMAGE_FULL ? "full" : "delta", img->version);
    if (img->has_base)
        fprintf(f, "%" PRId64 "}", img->base);
    else
        fputs("null}", f);
}

static void print_update(const discovery *dc, bool json)
{
    const si_resolution *res = &dc->res;
    if (res->winner < 0) {
        if (json)
            printf("{\"build\": %" PRId64 ", \"update_available\": false}\n", dc->build);
        else
            printf("up to date (build %" PRId64 ")\n", dc->build);
        return;
    }
    const si_path *w = &res->cand.paths[res->winner];
    size_t ndl = si_path_bootme_count(w);
    const si_image *last = w->images[ndl - 1];
    uint64_t size = si_path_download_size(w, ndl);
    const char *locale = getenv("LANG");
    char loc[64] = "";
    if (locale) {
        snprintf(loc, sizeof(loc), "%s", locale);
        loc[strcspn(loc, ".@")] = '\0';
    }
    if (json) {
        printf("{\"build\": %" PRId64 ", \"update_available\": true, \"target\": %" PRId64
               ", \"path_end\": %" PRId64 ", \"download_size\": %" PRIu64 ", \"path\": [",
               dc->build, last->version, w->images[w->nimages - 1]->version, size);
        for (size_t i = 0; i < ndl; i++) {
            if (i)
                fputs(", ", stdout);
            print_image_ref(stdout, w->images[i]);
        }
        fputs("], \"descriptions\": [", stdout);
        for (size_t i = 0; i < ndl; i++) {
            if (i)
                fputs(", ", stdout);
            const char *d = si_image_description(w->images[i], loc);
            if (d)
                stub_json_string(stdout, d);
            else
                fputs("null", stdout);
        }
        fputs("]}\n", stdout);
        return;
    }
    printf("update available: build %" PRId64 " -> %" PRId64, dc->build, last->version);
    if (ndl < w->nimages)
        printf(" (reboots there, then continues to %" PRId64 ")",
               w->images[w->nimages - 1]->version);
    printf("\ndownload size: %" PRIu64 " bytes (%.1f MiB)\npath:\n", size,
           (double)size / (1024.0 * 1024.0));
    for (size_t i = 0; i < ndl; i++) {
        const si_image *img = w->images[i];
        const char *d = si_image_description(img, loc);
        if (img->type == SI_IMAGE_FULL)
            printf("  full  %" PRId64, img->version);
        else
            printf("  delta %" PRId64 " -> %" PRId64, img->base, img->version);
        printf("%s%s\n", d ? "  " : "", d ? d : "");
    }
}

int stub_cmd_check(const stub_opts *o)
{
    discovery dc;
    si_err err = {0};
    si_result rc = discover(o, &dc, &err);
    if (rc == SI_OK)
        print_update(&dc, o->json);
    discovery_free(&dc);
    return rc == SI_OK ? SI_OK : stub_fail(&err, o->json);
}

/* ---------------------------------------------------------------- stage */
typedef struct stage_file {
    const si_index_file *f;
    char name[SI_COMMAND_NAME_MAX + 1];
    char sig[SI_COMMAND_NAME_MAX + 1];
    bool valid;          /* already staged and intact */
    bool dup;            /* the same file as an earlier entry (one download) */
} stage_file;

typedef struct progress_ctx {
    bool json, tty;
    int last_pct;
    uint64_t last_done;
    const char *last_name;
} progress_ctx;

static void progress(void *ctx, const char *name, uint64_t done, uint64_t total)
{
    progress_ctx *p = ctx;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (p->last_name == name && pct == p->last_pct && done != total)
        return;
    p->last_name = name;
    p->last_pct = pct;
    if (p->json) {
        printf("{\"event\": \"progress\", \"file\": ");
        stub_json_string(stdout, name);
        printf(", \"done\": %" PRIu64 ", \"total\": %" PRIu64 "}\n", done, total);
        fflush(stdout);
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

static bool valid_name(const char *s)
{
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > SI_COMMAND_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == '/' || *s == '#' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool has_suffix(const char *s, const char *sfx)
{
    size_t n = strlen(s), l = strlen(sfx);
    return n >= l && strcmp(s + n - l, sfx) == 0;
}

/* A staged file name: plain, and not one of the names the stub and the
 * recovery use for themselves. */
static bool usable_name(const char *s)
{
    return valid_name(s) && !has_suffix(s, ".part") && !has_suffix(s, ".keyring") &&
           !has_suffix(s, ".keyring.sig") && strcmp(s, STUB_COMMAND_FILE) != 0 &&
           strcmp(s, STUB_STAGED_FILE) != 0 && strcmp(s, STUB_LAST_RESULT) != 0 &&
           strcmp(s, "last_log") != 0;
}

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

static si_result hash_check(const char *path, const si_index_file *f, si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_file(path, d, &size);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    if (size != f->size)
        return si_err_set(err, SI_ERR_SIZE, "%s: %" PRIu64 " bytes, the index says %" PRIu64,
                          path, size, f->size);
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, sizeof(d), hex);
    if (strcmp(hex, f->checksum) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: sha256 %s, the index says %s", path, hex,
                          f->checksum);
    return SI_OK;
}

static si_result copy_file(const char *from, const char *to, size_t max, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r = si_read_file(from, max, &buf, &len);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", from, strerror(-r));
    r = si_write_file_atomic(to, buf, len, 0644);
    free(buf);
    if (r < 0)
        return si_err_set(err, r == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", to,
                          strerror(-r));
    return SI_OK;
}

/* Remove the command file; a pending update request that pointed at it is
 * withdrawn (best effort: a recovery without a command file does nothing). */
static si_result drop_command_file(const stub_config *cfg, si_err *err)
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

static si_result do_stage(const stub_opts *o, discovery *dc, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
    char cmdpath[PATH_CAP];
    snprintf(cmdpath, sizeof(cmdpath), "%s/%s", cfg->cache_dir, STUB_COMMAND_FILE);
    int r = stub_mkdir_p(cfg->cache_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "cache dir %s: %s", cfg->cache_dir, strerror(-r));
    /* An earlier command file no longer describes what is staged. */
    si_result rc0 = drop_command_file(cfg, err);
    if (rc0 != SI_OK)
        return rc0;

    const si_resolution *res = &dc->res;
    if (res->winner < 0)
        return SI_OK;
    const si_path *w = &res->cand.paths[res->winner];
    size_t ndl = si_path_bootme_count(w);

    /* Files in image order, then `order`. */
    size_t nfiles = 0;
    for (size_t i = 0; i < ndl; i++)
        nfiles += w->images[i]->nfiles;
    stage_file *sf = calloc(nfiles ? nfiles : 1, sizeof(*sf));
    if (!sf)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    si_result rc = SI_OK;
    size_t k = 0;
    bool has_full = false;
    for (size_t i = 0; i < ndl && rc == SI_OK; i++) {
        const si_image *img = w->images[i];
        has_full |= img->type == SI_IMAGE_FULL;
        const si_index_file **sorted = NULL;
        if ((rc = si_image_sorted_files(img, &sorted, err)) != SI_OK)
            break;
        for (size_t j = 0; j < img->nfiles; j++, k++) {
            sf[k].f = sorted[j];
            if (si_basename(sorted[j]->path, sf[k].name, sizeof(sf[k].name)) < 0 ||
                si_basename(sorted[j]->signature, sf[k].sig, sizeof(sf[k].sig)) < 0 ||
                !usable_name(sf[k].name) || !usable_name(sf[k].sig)) {
                rc = si_err_set(err, SI_ERR_UNSAFE_PATH,
                                "index.json: image %" PRId64 ": file '%s' / '%s': unusable name",
                                img->version, sorted[j]->path, sorted[j]->signature);
                break;
            }
            /* The same pool file in two images of the path (e.g. an unchanged
             * device tarball) is fetched once and applied by each image. */
            for (size_t q = 0; q < k && !sf[k].dup; q++) {
                bool same_name = strcmp(sf[q].name, sf[k].name) == 0;
                bool same_sig = strcmp(sf[q].sig, sf[k].sig) == 0;
                if (!same_name && !same_sig)
                    continue;
                if (same_name && same_sig && sf[q].f->size == sf[k].f->size &&
                    strcmp(sf[q].f->checksum, sf[k].f->checksum) == 0) {
                    sf[k].dup = true;
                    continue;
                }
                rc = si_err_set(err, SI_ERR_PARSE,
                                "index.json: two different files of the path are named '%s'",
                                same_name ? sf[k].name : sf[k].sig);
                break;
            }
            if (rc != SI_OK)
                break;
        }
        free(sorted);
    }
    if (rc != SI_OK)
        goto out;

    /* Delete stale files: anything of ours the path does not need. */
    DIR *d = opendir(cfg->cache_dir);
    if (!d) {
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", cfg->cache_dir, strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_ours(de->d_name))
            continue;
        bool keep = false;
        char base[NAME_MAX + 1];
        snprintf(base, sizeof(base), "%s", de->d_name);
        size_t bl = strlen(base);
        if (bl > 5 && strcmp(base + bl - 5, ".part") == 0)
            base[bl - 5] = '\0';
        for (size_t q = 0; q < nfiles && !keep; q++)
            keep = strcmp(base, sf[q].name) == 0 || strcmp(base, sf[q].sig) == 0;
        for (int q = 0; q < 4 && !keep; q++) {
            char kn[64];
            snprintf(kn, sizeof(kn), "%s.keyring", ring_names[q]);
            keep = strcmp(base, kn) == 0;
            snprintf(kn, sizeof(kn), "%s.keyring.sig", ring_names[q]);
            keep |= strcmp(base, kn) == 0;
        }
        if (!keep) {
            char p[PATH_CAP];
            snprintf(p, sizeof(p), "%s/%s", cfg->cache_dir, de->d_name);
            if (unlink(p) < 0 && errno != ENOENT) {
                rc = si_err_set(err, SI_ERR_IO, "%s: %s", p, strerror(errno));
                break;
            }
        }
    }
    closedir(d);
    if (rc != SI_OK)
        goto out;

    /* What is already there, and how much is left to fetch. */
    uint64_t need = 0;
    for (size_t q = 0; q < nfiles; q++) {
        if (sf[q].dup)
            continue;
        char p[PATH_CAP];
        snprintf(p, sizeof(p), "%s/%s", cfg->cache_dir, sf[q].name);
        struct stat st;
        if (stat(p, &st) == 0) {
            si_err e2 = {0};
            if (hash_check(p, sf[q].f, &e2) == SI_OK) {
                sf[q].valid = true;
                continue;
            }
            unlink(p);
        }
        uint64_t have = 0;
        snprintf(p, sizeof(p), "%s/%s.part", cfg->cache_dir, sf[q].name);
        if (stat(p, &st) == 0 && (uint64_t)st.st_size <= sf[q].f->size)
            have = (uint64_t)st.st_size;
        need += sf[q].f->size - have + SI_SIGFILE_MAX_BYTES / 16;
    }
    need += 4 * (SI_KEYRING_MAX_BYTES / 16);
    struct statvfs vfs;
    if (statvfs(cfg->cache_dir, &vfs) < 0) {
        rc = si_err_set(err, SI_ERR_IO, "%s: statvfs: %s", cfg->cache_dir, strerror(errno));
        goto out;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < need) {
        rc = si_err_set(err, SI_ERR_NO_SPACE,
                        "cache dir %s: %" PRIu64 " bytes needed, only %" PRIu64 " free",
                        cfg->cache_dir, need, avail);
        goto out;
    }

    progress_ctx pc = {.json = o->json, .tty = isatty(2) != 0, .last_pct = -1};
    uint64_t fetched_total = 0;
    size_t nunique = 0;
    for (size_t q = 0; q < nfiles && rc == SI_OK; q++) {
        if (sf[q].dup)
            continue;
        nunique++;
        char fp[PATH_CAP], sp[PATH_CAP];
        snprintf(fp, sizeof(fp), "%s/%s", cfg->cache_dir, sf[q].name);
        snprintf(sp, sizeof(sp), "%s/%s", cfg->cache_dir, sf[q].sig);
        char *sbuf = NULL;
        size_t slen = 0;
        if ((rc = stub_net_get(dc->net, sf[q].f->signature, SI_SIGFILE_MAX_BYTES, &sbuf, &slen,
                               err)) != SI_OK) {
            si_err_prefix(err, "signature of %s", sf[q].name);
            break;
        }
        r = si_write_file_atomic(sp, sbuf, slen, 0644);
        free(sbuf);
        if (r < 0) {
            rc = si_err_set(err, r == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", sp,
                            strerror(-r));
            break;
        }
        if (!sf[q].valid) {
            uint64_t got = 0;
            rc = stub_net_download(dc->net, sf[q].f->path, fp, sf[q].f->size, progress, &pc,
                                   &got, err);
            fetched_total += got;
            if (rc != SI_OK) {
                unlink(sp);
                break;
            }
            if ((rc = hash_check(fp, sf[q].f, err)) != SI_OK) {
                unlink(fp);
                unlink(sp);
                break;
            }
        } else if (o->json) {
            printf("{\"event\": \"reused\", \"file\": ");
            stub_json_string(stdout, sf[q].name);
            printf(", \"size\": %" PRIu64 "}\n", sf[q].f->size);
        }
        if ((rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_UPDATE, fp, sp, NULL, err)) !=
            SI_OK) {
            si_err_prefix(err, "%s", sf[q].name);
            unlink(fp);
            unlink(sp);
            break;
        }
    }
    if (rc != SI_OK)
        goto out;

    /* Keyrings the recovery verifies again from its own archive-master. */
    si_command_file *cf = calloc(1, sizeof(*cf));
    if (!cf) {
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
        goto out;
    }
    static const int order[4] = {0, 2, 3, 1}; /* image-master, image-signing, device, blacklist */
    for (int qi = 0; qi < 4 && rc == SI_OK; qi++) {
        int q = order[qi];
        if ((q == 1 && !dc->has_blacklist) || (q == 3 && !dc->has_device_keyring))
            continue;
        char kn[64], ks[64], from[PATH_CAP], to[PATH_CAP];
        snprintf(kn, sizeof(kn), "%s.keyring", ring_names[q]);
        snprintf(ks, sizeof(ks), "%s.keyring.sig", ring_names[q]);
        snprintf(from, sizeof(from), "%s/%s", dc->tmpdir, kn);
        snprintf(to, sizeof(to), "%s/%s", cfg->cache_dir, kn);
        if ((rc = copy_file(from, to, SI_KEYRING_MAX_BYTES, err)) != SI_OK)
            break;
        snprintf(from, sizeof(from), "%s/%s", dc->tmpdir, ks);
        snprintf(to, sizeof(to), "%s/%s", cfg->cache_dir, ks);
        if ((rc = copy_file(from, to, SI_SIGFILE_MAX_BYTES, err)) != SI_OK)
            break;
        rc = si_command_file_add(cf, SI_CMD_LOAD_KEYRING, SI_TARGET_NONE, kn, ks, err);
    }
    if (rc == SI_OK && has_full)
        rc = si_command_file_add(cf, SI_CMD_FORMAT, SI_TARGET_SYSTEM, NULL, NULL, err);
    if (rc == SI_OK)
        rc = si_command_file_add(cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL, err);
    for (size_t q = 0; q < nfiles && rc == SI_OK; q++)
        rc = si_command_file_add(cf, SI_CMD_UPDATE, SI_TARGET_NONE, sf[q].name, sf[q].sig, err);
    if (rc == SI_OK)
        rc = si_command_file_add(cf, SI_CMD_UNMOUNT, SI_TARGET_SYSTEM, NULL, NULL, err);
    if (rc == SI_OK) {
        /* staged.json for `status`, then the command file last. */
        const si_image *last = w->images[ndl - 1];
        char sj[PATH_CAP], text[256];
        snprintf(sj, sizeof(sj), "%s/%s", cfg->cache_dir, STUB_STAGED_FILE);
        int n = snprintf(text, sizeof(text),
                         "{\n    \"from\": %" PRId64 ",\n    \"size\": %" PRIu64
                         ",\n    \"target\": %" PRId64 "\n}\n",
                         dc->build, si_path_download_size(w, ndl), last->version);
        r = si_write_file_atomic(sj, text, (size_t)n, 0644);
        if (r < 0)
            rc = si_err_set(err, r == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", sj,
                            strerror(-r));
    }
    if (rc == SI_OK)
        rc = si_command_file_write(cmdpath, cf, err);
    free(cf);
    if (rc == SI_OK) {
        const si_image *last = w->images[ndl - 1];
        if (o->json)
            printf("{\"event\": \"staged\", \"target\": %" PRId64 ", \"files\": %zu, "
                   "\"fetched\": %" PRIu64 ", \"command_file\": ",
                   last->version, nunique, fetched_total);
        else
            printf("staged build %" PRId64 " (%zu files, %" PRIu64
                   " bytes downloaded); command file %s\n",
                   last->version, nunique, fetched_total, cmdpath);
        if (o->json) {
            stub_json_string(stdout, cmdpath);
            fputs("}\n", stdout);
        }
    }
out:
    free(sf);
    return rc;
}

int stub_cmd_stage(const stub_opts *o)
{
    discovery dc;
    si_err err = {0};
    si_result rc = discover(o, &dc, &err);
    if (rc == SI_OK) {
        if (dc.res.winner < 0)
            print_update(&dc, o->json);
        rc = do_stage(o, &dc, &err);
    } else if (dc.locked) {
        /* A failed check must not leave an old command file behind (but
         * another run's files are not ours to touch). */
        si_err e2 = {0};
        if (drop_command_file(&dc.cfg, &e2) != SI_OK)
            fprintf(stderr, "sysimage-stub: warning: %s\n", e2.msg);
    }
    discovery_free(&dc);
    return rc == SI_OK ? SI_OK : stub_fail(&err, o->json);
}
