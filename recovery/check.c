/* check.c - everything the recovery verifies before it touches a partition
 * (docs/security.md): the installed build and trust record from the system
 * partition, the keyring chain from the built-in archive-master and the
 * revocation state, the signed index and its freshness, the job bound to the
 * index (lib/job), and every staged file against its index entry (size,
 * sha256, signature, layout, version record). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builtin_keys.h"
#include "fsutil.h"
#include "buildtime.h"
#include "layout.h"
#include "mkfs.h"
#include "protocol.h"
#include "manifest.h"
#include "rec.h"
#include "sha256.h"
#include "sigfile.h"
#include "sysmount.h"
#include "version.h"

/* ------------------------------------------------------------ partitions */

/* With --partition overrides every label the layout allows raw is mapped;
 * otherwise the board's raw partitions are looked up by label. */
void rec_find_raw_partitions(struct rec *r)
{
    r->nraw = 0;
    if (r->o->nparts) {
        for (size_t i = 0; i < r->o->nparts && r->nraw < REC_MAX_RAW_PARTS; i++) {
            if (!si_layout_raw_label_ok(r->o->parts[i].label))
                continue;
            snprintf(r->raw_paths[r->nraw], SI_PART_PATH_MAX, "%s", r->o->parts[i].path);
            r->raw[r->nraw].name = r->o->parts[i].label;
            r->raw[r->nraw].path = r->raw_paths[r->nraw];
            r->nraw++;
        }
        return;
    }
    for (size_t i = 0; i < si_layout_board_raw_count && r->nraw < REC_MAX_RAW_PARTS; i++) {
        si_err e;
        if (si_partition_find_path(si_layout_board_raw[i], r->raw_paths[r->nraw],
                                   SI_PART_PATH_MAX, &e) != SI_OK)
            continue;
        r->raw[r->nraw].name = si_layout_board_raw[i];
        r->raw[r->nraw].path = r->raw_paths[r->nraw];
        r->nraw++;
    }
}

/* partitions/<label>.img of `size` bytes in `file`: the device has such a
 * partition and the image fits in it (checked before anything is written: a
 * raw image is written in place). */
static si_result check_raw_fits(const struct rec *r, const char *file, const char *label,
                                uint64_t size, si_err *err)
{
    const char *path = NULL;
    for (size_t i = 0; i < r->nraw && !path; i++)
        if (strcmp(r->raw[i].name, label) == 0)
            path = r->raw[i].path;
    if (!path)
        return si_err_set(err, SI_ERR_PARTITION, "%s: partitions/%s.img: no partition '%s' "
                          "on this device", file, label, label);
    unsigned long long cap = 0;
    int b = si_block_device_size(path, &cap);
    if (b < 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: partitions/%s.img: %s: %s", file, label,
                          path, strerror(-b));
    if (b == 1 && size > cap)
        return si_err_set(err, SI_ERR_NO_SPACE, "%s: partitions/%s.img is %" PRIu64 " bytes, "
                          "partition '%s' (%s) holds %llu", file, label, size, label, path, cap);
    return SI_OK;
}

/* ------------------------------------------------------------ installed */

/* The installed build and the trust record, from the system partition only
 * (never from anything on the cache: issue 10 finding 1). */
static si_result read_installed(struct rec *r, si_err *err)
{
    si_result res = rec_part_path(r, "system", r->system, sizeof(r->system), err);
    if (res != SI_OK)
        return res;
    r->installed.resuming = r->have_state && r->st.touched;
    si_trust_record_init(&r->trec);
    char label[SI_FS_LABEL_MAX + 1];
    res = si_fs_read_label(r->system, label, err);
    if (res == SI_ERR_PARTITION) {
        rlog_msg(&r->log, "system partition holds no filesystem: no installed build");
        return SI_OK;
    }
    if (res != SI_OK)
        return res;
    if ((res = sysmount_ext4(r->system, r->sysmnt, true, r->o->dry_run, err)) != SI_OK)
        return res;
    r->system_mounted = true;
    si_version v;
    si_err e;
    bool found = false;
    si_result vr = si_version_read_tree(r->sysmnt, &v, &e);
    si_result tr = si_trust_record_read(r->sysmnt, &r->trec, &found, err);
    rec_unmount_system(r);
    if (r->system_mounted)
        return si_err_set(err, SI_ERR_MOUNT, "%s: cannot unmount after reading the version",
                          r->sysmnt);
    if (tr != SI_OK)
        return si_err_prefix(err, "system partition");
    if (vr == SI_OK) {
        r->installed.has_build = true;
        r->installed.build = v.build;
        r->res.has_from = true;
        r->res.from_version = v.build;
        rlog_msg(&r->log, "installed build %" PRId64 " (channel %s)", v.build, v.channel);
    } else if (vr == SI_ERR_NOT_FOUND) {
        rlog_msg(&r->log, "system records no build");
    } else {
        rlog_msg(&r->log, "warning: installed version record unreadable (%s): treated as none",
                 e.msg);
    }
    return SI_OK;
}

/* ------------------------------------------------------------ staged files */

static si_result open_staged(struct rec *r, const si_command *c, const char *name, int *fd,
                             struct stat *st, si_err *err)
{
    char p[PATH_MAX];
    if (rec_path(p, sizeof(p), r->rdir, name) < 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, SI_PROTO_COMMAND " line %u: name too long",
                          c->line);
    si_result res = si_protocol_open_staged(AT_FDCWD, p, fd, st, err);
    if (res != SI_OK)
        si_err_prefix(err, SI_PROTO_COMMAND " line %u", c->line);
    return res;
}

/* Every file the job names exists and is a regular file (a FIFO or a symlink
 * never blocks or redirects a read: issue 10 finding 6). */
static si_result check_staged(struct rec *r, si_err *err)
{
    size_t pos = 0;
    const si_command *c;
    const char *name;
    while ((name = si_command_file_next_name(r->cf, &pos, &c))) {
        int fd;
        si_result res = open_staged(r, c, name, &fd, NULL, err);
        if (res != SI_OK)
            return res;
        close(fd);
    }
    return SI_OK;
}

static si_result read_staged(struct rec *r, const si_command *c, const char *name, size_t max,
                             char **buf, size_t *len, si_err *err)
{
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, name);
    si_result res = si_protocol_read_staged(AT_FDCWD, p, max, buf, len, err);
    if (res != SI_OK)
        si_err_prefix(err, SI_PROTO_COMMAND " line %u", c->line);
    return res;
}

static si_result verify_digest(struct rec *r, const si_command *c, si_purpose purpose,
                               const uint8_t digest[SI_SHA256_LEN], si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    si_result res = read_staged(r, c, c->sig, SI_SIGFILE_MAX_BYTES, &buf, &len, err);
    if (res != SI_OK)
        return res;
    si_sigfile *sf = calloc(1, sizeof(*sf));
    if (!sf) {
        free(buf);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    res = si_sigfile_parse(buf, len, sf, err);
    free(buf);
    si_signer who;
    if (res == SI_OK)
        res = si_trust_verify_digest(&r->trust, purpose, digest, sf, &who, err);
    free(sf);
    if (res != SI_OK)
        return si_err_prefix(err, SI_PROTO_COMMAND " line %u: %s", c->line, c->file);
    rlog_msg(&r->log, "verified %s (%s key %.16s)", c->file,
             si_keyring_type_name(who.keyring_type), who.key_id);
    return SI_OK;
}

/* ------------------------------------------------------------ keyrings */

/* sha256 (hex) of the staged keyring file holding the blacklist, "" if none. */
static si_result blacklist_digest(struct rec *r, char hex[SI_SHA256_HEX_LEN + 1], si_err *err)
{
    hex[0] = '\0';
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        if (c->op != SI_CMD_LOAD_KEYRING)
            continue;
        char *buf = NULL;
        size_t len = 0;
        si_result res = read_staged(r, c, c->file, SI_KEYRING_MAX_BYTES, &buf, &len, err);
        if (res != SI_OK)
            return res;
        si_keyring *kr = NULL;
        si_err e;
        if (si_keyring_parse(buf, len, &kr, &e) == SI_OK && kr->type == SI_KR_BLACKLIST) {
            uint8_t d[SI_SHA256_LEN];
            si_sha256_buf(buf, len, d);
            si_hex_encode(d, sizeof(d), hex);
        }
        si_keyring_free(kr);
        free(buf);
    }
    return SI_OK;
}

/* The chain from the built-in archive-master, then revocation: no keyring
 * older than one verified before, no blacklist dropped (finding 4). */
static si_result load_trust(struct rec *r, si_err *err)
{
    int64_t now = si_index_clock((int64_t)time(NULL), si_build_epoch(), r->trec.index_generated_at);
    si_trust_init(&r->trust, r->o->device, now);
    r->trust_init = true;
    si_keyring *am;
    si_result res = si_keyring_parse((const char *)si_builtin_archive_master,
                                     si_builtin_archive_master_len, &am, err);
    if (res == SI_OK)
        res = si_trust_set_archive_master(&r->trust, am, err);
    if (res != SI_OK)
        return si_err_prefix(err, "built-in archive-master keyring");
    const char *kp[SI_KR_TYPE_COUNT], *ks[SI_KR_TYPE_COUNT];
    char(*paths)[SI_KR_TYPE_COUNT][PATH_MAX] = calloc(2, sizeof(*paths));
    if (!paths)
        return si_err_set(err, SI_ERR_NOMEM, "keyring list: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < r->cf->count; i++) {
        const si_command *c = &r->cf->cmds[i];
        if (c->op != SI_CMD_LOAD_KEYRING)
            continue;
        if (n >= SI_KR_TYPE_COUNT) {
            free(paths);
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              SI_PROTO_COMMAND " line %u: more keyrings than keyring types",
                              c->line);
        }
        rec_path(paths[0][n], PATH_MAX, r->rdir, c->file);
        rec_path(paths[1][n], PATH_MAX, r->rdir, c->sig);
        kp[n] = paths[0][n];
        ks[n] = paths[1][n];
        n++;
    }
    res = n ? si_trust_load_files(&r->trust, kp, ks, n, err) : SI_OK;
    free(paths);
    if (res != SI_OK)
        return res;
    if (n)
        rlog_msg(&r->log, "keyrings: %zu verified from the built-in archive-master", n);
    char bl[SI_SHA256_HEX_LEN + 1];
    if ((res = blacklist_digest(r, bl, err)) != SI_OK)
        return res;
    return si_trust_record_check(&r->trec, &r->trust, bl[0] ? bl : NULL, err);
}

/* ------------------------------------------------------------ index */

static const si_command *index_line(const struct rec *r)
{
    for (size_t i = 0; i < r->cf->count; i++)
        if (r->cf->cmds[i].op == SI_CMD_INDEX)
            return &r->cf->cmds[i];
    return NULL;
}

/* The index the job is bound to: signed by image-signing (or the device's
 * keyring), unexpired (finding 5), not older than the newest one this device
 * verified. Read once: the bytes verified are the bytes parsed. */
static si_result load_index(struct rec *r, si_err *err)
{
    const si_command *c = index_line(r);
    char *buf = NULL;
    size_t len = 0;
    si_result res = read_staged(r, c, c->file, SI_INDEX_MAX_BYTES, &buf, &len, err);
    if (res != SI_OK)
        return res;
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf(buf, len, d);
    res = verify_digest(r, c, SI_PURPOSE_INDEX, d, err);
    if (res == SI_OK && (res = si_index_parse(buf, len, &r->idx, err)) != SI_OK)
        si_err_prefix(err, "%s", c->file);
    free(buf);
    if (res != SI_OK)
        return res;
    /* required even when the trust record is empty (first install), as
     * the stub requires it: an undated index cannot be ordered */
    if (r->idx->generated_at_epoch < 0)
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "%s: global.generated_at missing: its age cannot be checked", c->file);
    if ((res = si_index_check_fresh(r->idx, r->trust.now, err)) != SI_OK)
        return si_err_prefix(err, "%s", c->file);
    if (r->idx->generated_at_epoch < r->trec.index_generated_at) {
        char a[64], b[64];
        si_index_format_time(r->idx->generated_at_epoch, a);
        si_index_format_time(r->trec.index_generated_at, b);
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          "%s: generated %s, older than the index of %s this device installed "
                          "from before", c->file, a, b);
    }
    return SI_OK;
}

/* ------------------------------------------------------------ update files */

/* Where the check is: the bytes of update files it has read so far (hashed,
 * then scanned), in the attempt's point (the death point of a cut or crash
 * here is known to the window; recovery/outcome.c). */
struct verify_progress {
    struct rec *r;
    uint64_t base;
};

static void on_verify_progress(uint64_t done, void *ctx)
{
    struct verify_progress *vp = ctx;
    rec_point(vp->r, (si_point){vp->r->st.completed, true, vp->base + done});
}

static si_result hash_fd(struct verify_progress *vp, int fd, uint8_t d[SI_SHA256_LEN],
                         uint64_t *n)
{
    unsigned char *buf = malloc(128 * 1024);
    if (!buf)
        return SI_ERR_NOMEM;
    si_sha256 h;
    si_sha256_init(&h);
    *n = 0;
    si_result res = SI_OK;
    for (;;) {
        ssize_t k = read(fd, buf, 128 * 1024);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            res = SI_ERR_IO;
            break;
        }
        if (k == 0)
            break;
        si_sha256_update(&h, buf, (size_t)k);
        *n += (uint64_t)k;
        on_verify_progress(*n, vp);
    }
    si_sha256_final(&h, d);
    free(buf);
    vp->base += *n;
    return res;
}

/* One update file against its index entry: size and sha256 (finding 2),
 * signature, layout (no partitions/misc.img), and its version record. */
static si_result check_file(struct rec *r, const si_job_file *jf, si_version *ver, bool *has_ver,
                            struct verify_progress *vp, si_err *err)
{
    const si_command *c = &r->cf->cmds[jf->cmd];
    int fd;
    struct stat st;
    si_result res = open_staged(r, c, c->file, &fd, &st, err);
    if (res != SI_OK)
        return res;
    uint8_t d[SI_SHA256_LEN];
    char hex[SI_SHA256_HEX_LEN + 1];
    uint64_t n = 0;
    if ((uint64_t)st.st_size != jf->entry->size) {
        res = si_err_set(err, SI_ERR_SIZE, SI_PROTO_COMMAND " line %u: %s: %" PRIu64
                         " bytes, the index says %" PRIu64, c->line, c->file,
                         (uint64_t)st.st_size, jf->entry->size);
    } else if (hash_fd(vp, fd, d, &n) != SI_OK || n != jf->entry->size) {
        res = si_err_set(err, SI_ERR_IO, SI_PROTO_COMMAND " line %u: %s: read error", c->line,
                         c->file);
    } else if (si_hex_encode(d, sizeof(d), hex), strcmp(hex, jf->entry->checksum) != 0) {
        res = si_err_set(err, SI_ERR_CHECKSUM, SI_PROTO_COMMAND " line %u: %s: sha256 %.16s..."
                         " differs from the index (%.16s...)", c->line, c->file, hex,
                         jf->entry->checksum);
    } else {
        res = verify_digest(r, c, SI_PURPOSE_UPDATE, d, err);
    }
    si_layout_scan *sc = res == SI_OK ? calloc(1, sizeof(*sc)) : NULL;
    if (res == SI_OK && !sc)
        res = si_err_set(err, SI_ERR_NOMEM, "out of memory");
    if (res == SI_OK && lseek(fd, 0, SEEK_SET) < 0)
        res = si_err_set(err, SI_ERR_IO, "%s: %s", c->file, strerror(errno));
    if (res == SI_OK)
        res = si_layout_scan_tarball_progress(fd, c->file, SI_VERSION_MEMBER, sc,
                                              on_verify_progress, vp, err);
    if (res == SI_OK)
        vp->base += (uint64_t)st.st_size;
    close(fd);
    for (size_t i = 0; res == SI_OK && i < sc->nparts; i++)
        res = check_raw_fits(r, c->file, sc->parts[i], sc->part_size[i], err);
    if (res == SI_OK && sc->has_version) {
        if ((res = si_version_parse(sc->version, sc->version_len, ver, err)) != SI_OK)
            si_err_prefix(err, "%s: %s", c->file, SI_VERSION_MEMBER);
        *has_ver = res == SI_OK;
    }
    free(sc);
    return res;
}

/* A file whose index entry binds a manifest (lib/manifest.h): its size, its
 * signature (over the index's sha256, which the apply checks at the end of
 * its one read of the file) and its manifest (read, checked against the
 * index and parsed). *onepass = false, nothing kept, when the file writes a
 * raw partition (written in place: such a file is verified whole first). */
static si_result check_file_onepass(struct rec *r, const si_job_file *jf, bool *onepass,
                                    si_err *err)
{
    const si_command *c = &r->cf->cmds[jf->cmd];
    const si_index_file *e = jf->entry;
    uint8_t d[SI_SHA256_LEN], md[SI_SHA256_LEN];
    *onepass = false;
    if (!e->has_manifest || strlen(e->checksum) != SI_SHA256_HEX_LEN ||
        si_hex_decode(e->checksum, d, sizeof(d)) < 0 ||
        si_hex_decode(e->manifest_checksum, md, sizeof(md)) < 0)
        return SI_OK;
    int fd;
    struct stat st;
    si_result res = open_staged(r, c, c->file, &fd, &st, err);
    if (res != SI_OK)
        return res;
    close(fd);
    if ((uint64_t)st.st_size != e->size)
        return si_err_set(err, SI_ERR_SIZE, SI_PROTO_COMMAND " line %u: %s: %" PRIu64
                          " bytes, the index says %" PRIu64, c->line, c->file,
                          (uint64_t)st.st_size, e->size);
    char p[PATH_MAX];
    rec_path(p, sizeof(p), r->rdir, c->file);
    si_manifest *m = NULL;
    if ((res = si_manifest_load_bound(p, e->manifest_size, md, &m, err)) != SI_OK)
        return si_err_prefix(err, SI_PROTO_COMMAND " line %u", c->line);
    if (m->nparts) {
        si_manifest_free(m);
        return SI_OK;
    }
    if ((res = verify_digest(r, c, SI_PURPOSE_UPDATE, d, err)) != SI_OK) {
        si_manifest_free(m);
        return res;
    }
    r->mf[jf->cmd] = m;
    *onepass = true;
    rlog_msg(&r->log, "%s: manifest of %zu members as the index says: checked while applied",
             c->file, m->n);
    return SI_OK;
}

/* Every staged file; the version record must come from the path's last
 * image and name its version (a file installed in one read: checked once
 * applied, recovery/execute.c). */
static si_result check_files(struct rec *r, si_err *err)
{
    const si_job_plan *p = &r->plan;
    bool found = false;
    struct verify_progress vp = {.r = r};
    for (size_t i = 0; i < p->nfiles; i++) {
        si_version v;
        bool has = false, onepass;
        const si_job_file *jf = &p->files[i];
        r->entry[jf->cmd] = jf->entry;
        si_result res = check_file_onepass(r, jf, &onepass, err);
        if (res == SI_OK && !onepass)
            res = check_file(r, jf, &v, &has, &vp, err);
        if (res != SI_OK)
            return res;
        if (onepass && r->mf[jf->cmd]->has_version && jf->image == p->nimages - 1)
            found = r->check_version[jf->cmd] = true;
        if (!has || jf->image != p->nimages - 1)
            continue;
        if (v.build != p->target)
            return si_err_set(err, SI_ERR_DOWNGRADE,
                              "%s: the version record says build %" PRId64 ", the index's "
                              "image says %" PRId64, r->cf->cmds[p->files[i].cmd].file, v.build,
                              p->target);
        found = true;
    }
    if (!found)
        return si_err_set(err, SI_ERR_DOWNGRADE,
                          "image %" PRId64 ", the last of the path, carries no version record",
                          p->target);
    r->res.has_to = true;
    r->res.to_version = p->target;
    rlog_msg(&r->log, "target build %" PRId64 " (%zu image%s, %zu files)", p->target,
             p->nimages, p->nimages == 1 ? "" : "s", p->nfiles);
    return SI_OK;
}

/* ------------------------------------------------------------ the check */

si_result rec_check_update(struct rec *r, si_err *err)
{
    si_result res;
    if ((res = check_staged(r, err)) != SI_OK || (res = read_installed(r, err)) != SI_OK ||
        (res = load_trust(r, err)) != SI_OK || (res = load_index(r, err)) != SI_OK)
        return res;
    res = si_job_bind(r->idx, r->cf, &r->installed, &r->plan, err);
    if (r->plan.nimages) { /* reported even when refused */
        r->res.has_to = true;
        r->res.to_version = r->plan.target;
    }
    if (res != SI_OK)
        return res;
    rec_find_raw_partitions(r);
    return check_files(r, err);
}
