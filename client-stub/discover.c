/* discover.c - `check`: the verified chain keyrings -> channels.json ->
 * index.json over HTTPS, the revocation and freshness rules
 * (docs/security.md), and the upgrade path (lib/resolve). Each step is one
 * function; stub_discover runs them in order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "buildtime.h"
#include "fsutil.h"
#include "sha256.h"
#include "sigfile.h"
#include "stub.h"

#define MAX_REDIRECTS 4

const si_keyring_type stub_ring_order[4] = {SI_KR_IMAGE_MASTER, SI_KR_IMAGE_SIGNING,
                                            SI_KR_DEVICE_SIGNING, SI_KR_BLACKLIST};

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

void stub_discovery_free(stub_discovery *dc)
{
    if (dc->res_ready)
        si_resolution_free(&dc->res);
    si_index_free(dc->index);
    si_channels_free(dc->channels);
    if (dc->trust_ready)
        si_trust_free(&dc->trust);
    si_http_close(dc->net);
    if (dc->tmpdir[0])
        rm_tree_flat(dc->tmpdir);
    if (dc->lock_fd >= 0)
        close(dc->lock_fd);
    stub_config_free(&dc->cfg);
}

/* ---------------------------------------------------------------- setup */

/* One check/stage at a time: flock <state_dir>/lock. */
static si_result lock_state_dir(stub_discovery *dc, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
    int r = si_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "state dir %s: %s", cfg->state_dir, strerror(-r));
    char lockpath[PATH_CAP];
    snprintf(lockpath, sizeof(lockpath), "%s/lock", cfg->state_dir);
    dc->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (dc->lock_fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", lockpath, strerror(errno));
    if (flock(dc->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return si_err_set(err, errno == EWOULDBLOCK ? SI_ERR_EXISTS : SI_ERR_IO, "%s: %s",
                          lockpath,
                          errno == EWOULDBLOCK ? "another sysimage-stub check/stage is running"
                                               : strerror(errno));
    dc->locked = true;
    return SI_OK;
}

/* Under the lock, leftovers of a killed run go; then a fresh temp dir. */
static si_result make_tmpdir(stub_discovery *dc, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
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
        si_result rc = si_err_set(err, SI_ERR_IO, "%s: %s", dc->tmpdir, strerror(errno));
        dc->tmpdir[0] = '\0';
        return rc;
    }
    return SI_OK;
}

/* Config, installed build, machine id, state, lock, temp dir, the clock. */
static si_result open_run(const stub_opts *o, stub_discovery *dc, si_err *err)
{
    si_result rc = stub_config_load(o->config, &dc->cfg, err);
    if (rc != SI_OK)
        return rc;
    if (o->has_build)
        dc->build = o->build;
    else if ((rc = stub_read_build(&dc->cfg, &dc->build, err)) != SI_OK)
        return rc;
    if ((rc = si_machine_id_read(dc->cfg.machine_id, dc->machine_id,
                                   sizeof(dc->machine_id), err)) != SI_OK ||
        (rc = lock_state_dir(dc, err)) != SI_OK ||
        (rc = stub_state_read(&dc->cfg, &dc->seen, err)) != SI_OK ||
        (rc = make_tmpdir(dc, err)) != SI_OK)
        return rc;
    dc->stored = dc->seen;
    stub_state_merge_system(&dc->cfg, &dc->seen);
    /* docs/security.md: the later of the clock, the build time and the
     * newest trusted timestamp. */
    dc->now = si_index_clock((int64_t)time(NULL), si_build_epoch(), dc->seen.index_generated_at);
    return SI_OK;
}

/* ---------------------------------------------------------------- fetch */

/* GET server path into tmpdir/name; SI_ERR_NOT_FOUND on 404. */
static si_result fetch_to(stub_discovery *dc, const char *path, size_t max, const char *name,
                          char *out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    si_result rc = si_http_get(dc->net, path, max, &buf, &len, err);
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

/* Fetch <type>.keyring and its signature; *present=false when the keyring
 * is 404 and optional. */
static si_result fetch_keyring(stub_discovery *dc, const char *path, const char *sigpath,
                               si_keyring_type type, bool optional, bool *present, char *kpath,
                               char *spath, si_err *err)
{
    const char *name = si_keyring_type_name(type);
    char fname[128];
    snprintf(fname, sizeof(fname), "%s.keyring", name);
    si_result rc = fetch_to(dc, path, SI_KEYRING_MAX_BYTES, fname, kpath, err);
    *present = false;
    if (rc == SI_ERR_NOT_FOUND && optional)
        return SI_OK;
    if (rc != SI_OK)
        return si_err_prefix(err, "%s keyring", name);
    snprintf(fname, sizeof(fname), "%s.keyring.sig", name);
    rc = fetch_to(dc, sigpath, SI_SIGFILE_MAX_BYTES, fname, spath, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s keyring signature", name);
    *present = true;
    return SI_OK;
}

/* ---------------------------------------------------------------- trust */

static si_result load_archive_master(stub_discovery *dc, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
    si_trust_init(&dc->trust, cfg->device, dc->now);
    dc->trust_ready = true;
    si_keyring *am = NULL;
    si_result rc = si_keyring_load(cfg->archive_master, &am, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "archive-master keyring");
    if (am->type != SI_KR_ARCHIVE_MASTER) {
        si_keyring_free(am);
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "%s: not an archive-master keyring",
                          cfg->archive_master);
    }
    return si_trust_set_archive_master(&dc->trust, am, err);
}

/* The revocation rules (lib/trustrec, shared with the recovery): no keyring
 * older than one verified before, no dropping a blacklist once seen, and
 * the blacklist the image-signing keyring names. */
static si_result check_revocation(const stub_discovery *dc, si_err *err)
{
    return si_trust_record_check(&dc->seen, &dc->trust,
                                 dc->blacklist_sha256[0] ? dc->blacklist_sha256 : NULL, err);
}

static si_result hash_blacklist(stub_discovery *dc, const char *path, si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    int r = si_sha256_file(path, d, NULL);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    si_hex_encode(d, sizeof(d), dc->blacklist_sha256);
    return SI_OK;
}

/* image-master, blacklist (optional), image-signing: validated together. */
static si_result fetch_chain(stub_discovery *dc, si_err *err)
{
    static const struct {
        si_keyring_type type;
        const char *path, *sig;
    } srv[3] = {
        {SI_KR_IMAGE_MASTER, "/keyrings/image-master.keyring",
         "/keyrings/image-master.keyring.sig"},
        {SI_KR_BLACKLIST, "/keyrings/blacklist.keyring", "/keyrings/blacklist.keyring.sig"},
        {SI_KR_IMAGE_SIGNING, "/keyrings/image-signing.keyring",
         "/keyrings/image-signing.keyring.sig"},
    };
    char kp[3][PATH_CAP], sp[3][PATH_CAP];
    const char *kps[3], *sps[3];
    size_t nk = 0;
    for (int i = 0; i < 3; i++) {
        bool present = false;
        si_result rc = fetch_keyring(dc, srv[i].path, srv[i].sig, srv[i].type,
                                     srv[i].type == SI_KR_BLACKLIST, &present, kp[nk], sp[nk],
                                     err);
        if (rc != SI_OK)
            return rc;
        if (!present)
            continue;
        if (srv[i].type == SI_KR_BLACKLIST) {
            dc->has_blacklist = true;
            if ((rc = hash_blacklist(dc, kp[nk], err)) != SI_OK)
                return rc;
        }
        kps[nk] = kp[nk];
        sps[nk] = sp[nk];
        nk++;
    }
    si_result rc = si_trust_load_files(&dc->trust, kps, sps, nk, err);
    return rc == SI_OK ? check_revocation(dc, err) : rc;
}

/* channels.json: the channel (following redirects) and the device entry. */
static si_result fetch_channel(stub_discovery *dc, const si_channel **chout,
                               const si_channel_device **devout, si_err *err)
{
    const stub_config *cfg = &dc->cfg;
    char cpath[PATH_CAP], csig[PATH_CAP];
    si_result rc;
    if ((rc = fetch_to(dc, "/channels.json", SI_CHANNELS_MAX_BYTES, "channels.json", cpath,
                       err)) != SI_OK ||
        (rc = fetch_to(dc, "/channels.json.sig", SI_SIGFILE_MAX_BYTES, "channels.json.sig",
                       csig, err)) != SI_OK ||
        (rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_CHANNELS, cpath, csig, NULL, err)) !=
            SI_OK)
        return si_err_prefix(err, "channels.json");
    if ((rc = si_channels_load(cpath, &dc->channels, err)) != SI_OK)
        return rc;
    const si_channel *ch = si_channels_find(dc->channels, cfg->channel);
    for (int hop = 0; ch && ch->redirect; hop++) {
        if (hop == MAX_REDIRECTS)
            return si_err_set(err, SI_ERR_PARSE,
                              "channels.json: more than %d redirects from '%s'", MAX_REDIRECTS,
                              cfg->channel);
        const char *to = ch->redirect;
        if (!(ch = si_channels_find(dc->channels, to)))
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
    *chout = ch;
    *devout = dev;
    return SI_OK;
}

/* The device-signing keyring, when the channel names one. */
static si_result fetch_device_keyring(stub_discovery *dc, const si_channel_device *dev,
                                      si_err *err)
{
    if (!dev->keyring_path)
        return SI_OK;
    char dk[PATH_CAP], ds[PATH_CAP], sigp[PATH_CAP];
    if (dev->keyring_signature)
        snprintf(sigp, sizeof(sigp), "%s", dev->keyring_signature);
    else
        snprintf(sigp, sizeof(sigp), "%s.sig", dev->keyring_path);
    bool present = false;
    si_result rc = fetch_keyring(dc, dev->keyring_path, sigp, SI_KR_DEVICE_SIGNING, false,
                                 &present, dk, ds, err);
    if (rc != SI_OK)
        return rc;
    const char *dks[1] = {dk}, *dss[1] = {ds};
    if ((rc = si_trust_load_files(&dc->trust, dks, dss, 1, err)) != SI_OK)
        return rc;
    dc->has_device_keyring = true;
    return check_revocation(dc, err);
}

/* Not older than the newest index verified before, and not expired. */
static si_result check_freshness(const stub_discovery *dc, si_err *err)
{
    const si_index *idx = dc->index;
    int64_t floor_ts = dc->seen.index_generated_at;
    if (idx->generated_at_epoch < 0)
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "index.json: global.generated_at missing: its age cannot be checked");
    if (idx->generated_at_epoch < floor_ts) {
        char a[64], b[64];
        si_index_format_time(idx->generated_at_epoch, a);
        si_index_format_time(floor_ts, b);
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "index.json: generated_at %s is older than the last verified index (%s):"
                          " refusing a rollback/freeze",
                          a, b);
    }
    return si_index_check_fresh(idx, dc->now, err);
}

static si_result fetch_index(stub_discovery *dc, const si_channel_device *dev, si_err *err)
{
    char ipath[PATH_CAP], isig[PATH_CAP], isrv[PATH_CAP];
    snprintf(isrv, sizeof(isrv), "%s.sig", dev->index);
    si_result rc;
    if ((rc = fetch_to(dc, dev->index, SI_INDEX_MAX_BYTES, SI_PROTO_INDEX, ipath, err)) !=
            SI_OK ||
        (rc = fetch_to(dc, isrv, SI_SIGFILE_MAX_BYTES, SI_PROTO_INDEX_SIG, isig, err)) !=
            SI_OK ||
        (rc = si_trust_verify_file(&dc->trust, SI_PURPOSE_INDEX, ipath, isig, NULL, err)) !=
            SI_OK)
        return si_err_prefix(err, "index.json");
    if ((rc = si_index_load(ipath, &dc->index, err)) != SI_OK)
        return rc;
    return check_freshness(dc, err);
}

/* Everything verified: raise the floors in state.json. */
static si_result remember(const stub_discovery *dc, si_err *err)
{
    si_trust_record rec = dc->seen;
    si_trust_record_raise(&rec, &dc->trust, dc->index->generated_at_epoch);
    if (memcmp(&rec, &dc->stored, sizeof(rec)) == 0)
        return SI_OK;
    return stub_state_write(&dc->cfg, &rec, err);
}

/* docs/formats.md, resolution: phasing by the alias, else the configured target; a different
 * alias is a channel switch, resolved from build 0. */
static si_result resolve_path(const stub_opts *o, stub_discovery *dc, const si_channel *ch,
                              si_err *err)
{
    /* the user's override of the device percentage: --percentage, else client.ini */
    int pct = o->percentage >= 0 ? o->percentage : (int)dc->cfg.percentage;
    si_resolve_opts ro = {.build = dc->build, .build_override = o->has_build,
                          .channel = dc->cfg.channel_target, .alias = ch->alias,
                          .machine_id = dc->machine_id, .percentage_override = pct >= 0,
                          .device_percentage = pct};
    si_result rc = si_resolve(dc->index, &ro, &dc->res, err);
    if (rc == SI_OK)
        dc->res_ready = true;
    return rc;
}

si_result stub_discover(const stub_opts *o, stub_discovery *dc, si_err *err)
{
    memset(dc, 0, sizeof(*dc));
    dc->lock_fd = -1;
    si_trust_record_init(&dc->seen);
    const si_channel *ch = NULL;
    const si_channel_device *dev = NULL;
    si_result rc;
    if ((rc = open_run(o, dc, err)) != SI_OK || (rc = load_archive_master(dc, err)) != SI_OK ||
        (rc = stub_net_open(&dc->cfg, &dc->net, err)) != SI_OK ||
        (rc = fetch_chain(dc, err)) != SI_OK || (rc = fetch_channel(dc, &ch, &dev, err)) != SI_OK ||
        (rc = fetch_device_keyring(dc, dev, err)) != SI_OK ||
        (rc = fetch_index(dc, dev, err)) != SI_OK || (rc = remember(dc, err)) != SI_OK)
        return rc;
    return resolve_path(o, dc, ch, err);
}

/* ---------------------------------------------------------------- check */

static const char *locale_of_env(char *buf, size_t len)
{
    const char *locale = getenv("LANG");
    buf[0] = '\0';
    if (locale) {
        snprintf(buf, len, "%s", locale);
        buf[strcspn(buf, ".@")] = '\0';
    }
    return buf;
}

static cJSON *image_ref_json(const si_image *img)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "type",
                                           img->type == SI_IMAGE_FULL ? "full" : "delta") &&
              cJSON_AddNumberToObject(o, "version", (double)img->version) &&
              (img->has_base ? cJSON_AddNumberToObject(o, "base", (double)img->base) != NULL
                             : cJSON_AddNullToObject(o, "base") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* {"build", "update_available", "target", "path_end", "download_size",
 *  "path": [image refs], "descriptions": [text|null]} */
static cJSON *update_json(const stub_discovery *dc)
{
    const si_resolution *res = &dc->res;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "build", (double)dc->build) &&
              cJSON_AddBoolToObject(o, "update_available", res->winner >= 0);
    if (!ok || res->winner < 0)
        return ok ? o : (cJSON_Delete(o), NULL);
    const si_path *w = &res->cand.paths[res->winner];
    size_t ndl = si_path_bootme_count(w);
    char loc[64];
    locale_of_env(loc, sizeof(loc));
    cJSON *path = cJSON_AddArrayToObject(o, "path");
    cJSON *descs = cJSON_AddArrayToObject(o, "descriptions");
    ok = path && descs &&
         cJSON_AddNumberToObject(o, "target", (double)w->images[ndl - 1]->version) &&
         cJSON_AddNumberToObject(o, "path_end", (double)w->images[w->nimages - 1]->version) &&
         cJSON_AddNumberToObject(o, "download_size", (double)si_path_download_size(w, ndl));
    for (size_t i = 0; ok && i < ndl; i++) {
        const char *d = si_image_description(w->images[i], loc);
        cJSON *ref = image_ref_json(w->images[i]);
        cJSON *dj = d ? cJSON_CreateString(d) : cJSON_CreateNull();
        ok = ref && dj && cJSON_AddItemToArray(path, ref) && cJSON_AddItemToArray(descs, dj);
        if (!ok) {
            cJSON_Delete(ref);
            cJSON_Delete(dj);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void print_update_text(const stub_discovery *dc)
{
    const si_resolution *res = &dc->res;
    if (res->winner < 0) {
        printf("up to date (build %" PRId64 ")\n", dc->build);
        return;
    }
    const si_path *w = &res->cand.paths[res->winner];
    size_t ndl = si_path_bootme_count(w);
    uint64_t size = si_path_download_size(w, ndl);
    char loc[64];
    locale_of_env(loc, sizeof(loc));
    printf("update available: build %" PRId64 " -> %" PRId64, dc->build,
           w->images[ndl - 1]->version);
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

void stub_print_update(const stub_discovery *dc, bool json)
{
    if (json)
        stub_print_json_line(update_json(dc));
    else
        print_update_text(dc);
}

int stub_cmd_check(const stub_opts *o)
{
    stub_discovery dc;
    si_err err = {0};
    si_result rc = stub_discover(o, &dc, &err);
    bool available = rc == SI_OK && dc.res.winner >= 0;
    if (rc == SI_OK)
        stub_print_update(&dc, o->json);
    stub_discovery_free(&dc);
    if (rc != SI_OK)
        return stub_fail(&err, o->json);
    return available ? SI_OK : STUB_EXIT_UP_TO_DATE;
}
