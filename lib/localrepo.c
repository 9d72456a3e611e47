/* localrepo.c - verify a published repository on disk (the stub's chain). */
#include "localrepo.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channels.h"
#include "fsutil.h"
#include "keyring.h"
#include "sigfile.h"
#include "sha256.h"

#define MAX_REDIRECTS 8
#define PATH_CAP 4096

si_result si_repo_join(const char *repo, const char *path, char *out, size_t outlen, si_err *err)
{
    if (path[0] != '/')
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "'%s' is not an absolute repository path", path);
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return si_err_set(err, SI_ERR_UNSAFE_PATH, "'%s': '..' in a repository path", path);
    if ((size_t)snprintf(out, outlen, "%s%s", repo, path) >= outlen)
        return si_err_set(err, SI_ERR_USAGE, "%s%s: path too long", repo, path);
    return SI_OK;
}

si_result si_repo_check_digest(const char *path, const si_index_file *f,
                               const uint8_t d[SI_SHA256_LEN], uint64_t size, si_err *err)
{
    if (size != f->size)
        return si_err_set(err, SI_ERR_SIZE, "%s: %" PRIu64 " bytes, the index says %" PRIu64, path,
                          size, f->size);
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, SI_SHA256_LEN, hex);
    if (strcmp(hex, f->checksum) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: sha256 %s, the index says %s", path, hex,
                          f->checksum);
    return SI_OK;
}

static si_result hash_check(const char *path, const si_index_file *f, si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_file(path, d, &size);
    if (r < 0)
        return si_err_set(err, r == -2 ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", path, strerror(-r));
    return si_repo_check_digest(path, f, d, size, err);
}

/* "/path" of the repository as a local file in out, fetched first when the
 * source has a fetcher. size: exact (from a signed document) or 0, then max
 * bounds it. A file a directory lacks is SI_ERR_MISSING_FILE; a fetcher
 * answers SI_ERR_NOT_FOUND for one the server lacks (404). */
static si_result get(const si_repo_src *src, const char *path, uint64_t size, uint64_t max,
                     char *out, size_t cap, si_err *err)
{
    si_result rc = si_repo_join(src->root, path, out, cap, err);
    if (rc == SI_OK && src->fetch)
        rc = src->fetch(src->ctx, path, out, size, max, err);
    if (rc == SI_OK && !src->fetch && access(out, F_OK) != 0)
        rc = si_err_set(err, SI_ERR_MISSING_FILE, "%s: missing", out);
    return rc;
}

void si_repo_build_free(si_repo_build *b)
{
    for (size_t i = 0; i < b->nfiles; i++) {
        free(b->paths ? b->paths[i] : NULL);
        free(b->sigpaths ? b->sigpaths[i] : NULL);
    }
    free(b->paths);
    free(b->sigpaths);
    free(b->index_path);
    free(b->index_sig);
    si_index_free(b->index);
    memset(b, 0, sizeof(*b));
}

si_result si_repo_load_trust_from(const si_repo_src *src, si_keyring *am, si_trust *t,
                                  si_err *err)
{
    if (am->type != SI_KR_ARCHIVE_MASTER) {
        si_keyring_free(am);
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "not an archive-master keyring");
    }
    si_result rc = si_trust_set_archive_master(t, am, err);
    if (rc != SI_OK)
        return rc;
    static const char *const names[3] = {"image-master", "blacklist", "image-signing"};
    char kp[3][PATH_CAP], sp[3][PATH_CAP];
    const char *kps[3], *sps[3];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        char k[128], sg[128];
        snprintf(k, sizeof(k), "/keyrings/%s.keyring", names[i]);
        snprintf(sg, sizeof(sg), "/keyrings/%s.keyring.sig", names[i]);
        rc = get(src, k, 0, SI_KEYRING_MAX_BYTES, kp[n], PATH_CAP, err);
        bool absent = rc == SI_ERR_NOT_FOUND || rc == SI_ERR_MISSING_FILE; /* server 404, no file */
        if (absent && i == 1)
            continue; /* the blacklist is optional */
        if (absent)
            return si_err_set(err, SI_ERR_MISSING_FILE, "%s: missing (is %s a published repository?)",
                              kp[n], src->name ? src->name : src->root);
        if (rc != SI_OK || (rc = get(src, sg, 0, SI_SIGFILE_MAX_BYTES, sp[n], PATH_CAP, err)) != SI_OK)
            return rc;
        kps[n] = kp[n];
        sps[n] = sp[n];
        n++;
    }
    return si_trust_load_files(t, kps, sps, n, err);
}

si_result si_repo_load_trust(const char *repo, si_keyring *am, si_trust *t, si_err *err)
{
    si_repo_src src = {.root = repo};
    return si_repo_load_trust_from(&src, am, t, err);
}

si_result si_repo_open_build_from(const si_repo_src *src, const char *archive_master,
                                  const si_repo_query *q, int64_t now, si_repo_build *out,
                                  si_err *err)
{
    memset(out, 0, sizeof(*out));
    si_trust t;
    si_trust_init(&t, q->device, now);
    si_keyring *am = NULL;
    si_result rc = si_keyring_load(archive_master, &am, err);
    if (rc != SI_OK)
        si_err_prefix(err, "archive-master keyring");
    else if ((rc = si_repo_load_trust_from(src, am, &t, err)) != SI_OK)
        si_err_prefix(err, "%s", archive_master);
    else
        rc = si_repo_open_build_trusted_from(src, &t, q, out, err);
    si_trust_free(&t);
    return rc;
}

si_result si_repo_open_build(const char *repo, const char *archive_master, const char *channel,
                             const char *device, int64_t build, int64_t now, si_repo_build *out,
                             si_err *err)
{
    si_repo_src src = {.root = repo};
    si_repo_query q = {.channel = channel, .device = device, .build = build};
    return si_repo_open_build_from(&src, archive_master, &q, now, out, err);
}

/* channels.json, verified; the channel after its redirects and the device's
 * entry in it. */
static si_result find_device(const si_repo_src *src, si_trust *t, const char *channel,
                             const char *device, si_channels **chs,
                             const si_channel_device **dev, const char **chname, si_err *err)
{
    char cpath[PATH_CAP], csig[PATH_CAP];
    si_result rc;
    if ((rc = get(src, "/channels.json", 0, SI_CHANNELS_MAX_BYTES, cpath, sizeof(cpath), err)) !=
            SI_OK ||
        (rc = get(src, "/channels.json.sig", 0, SI_SIGFILE_MAX_BYTES, csig, sizeof(csig), err)) !=
            SI_OK ||
        (rc = si_trust_verify_file(t, SI_PURPOSE_CHANNELS, cpath, csig, NULL, err)) != SI_OK ||
        (rc = si_channels_load(cpath, chs, err)) != SI_OK)
        return si_err_prefix(err, "channels.json");
    const si_channel *ch = si_channels_find(*chs, channel);
    for (int hop = 0; ch && ch->redirect; hop++) {
        if (hop == MAX_REDIRECTS)
            return si_err_set(err, SI_ERR_PARSE, "channels.json: more than %d redirects from '%s'",
                              MAX_REDIRECTS, channel);
        const char *to = ch->redirect;
        if (!(ch = si_channels_find(*chs, to)))
            return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: '%s' redirects to unknown '%s'",
                              channel, to);
    }
    if (!ch)
        return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: no channel '%s'", channel);
    if (!(*dev = si_channel_find_device(ch, device)))
        return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: channel '%s' has no device '%s'",
                          ch->name, device);
    *chname = ch->name;
    return SI_OK;
}

/* The device-signing keyring channels.json names, if any, into the trust. */
static si_result load_device_keyring(const si_repo_src *src, si_trust *t,
                                     const si_channel_device *dev, si_err *err)
{
    if (!dev->keyring_path)
        return SI_OK;
    char dk[PATH_CAP], ds[PATH_CAP + 8], sigpath[PATH_CAP];
    const char *sigp = dev->keyring_signature;
    if (!sigp) {
        snprintf(sigpath, sizeof(sigpath), "%s.sig", dev->keyring_path);
        sigp = sigpath;
    }
    si_result rc;
    if ((rc = get(src, dev->keyring_path, 0, SI_KEYRING_MAX_BYTES, dk, sizeof(dk), err)) != SI_OK ||
        (rc = get(src, sigp, 0, SI_SIGFILE_MAX_BYTES, ds, sizeof(ds), err)) != SI_OK)
        return rc;
    const char *dks[1] = {dk}, *dss[1] = {ds};
    return si_trust_load_files(t, dks, dss, 1, err);
}

/* index.json, verified and loaded; fresh unless the query allows a stale one
 * (out->expired says so then). */
static si_result load_index(const si_repo_src *src, si_trust *t, const si_repo_query *q,
                            const char *index, si_repo_build *out, si_err *err)
{
    char ipath[PATH_CAP], isig[PATH_CAP + 8], sigsrv[PATH_CAP];
    snprintf(sigsrv, sizeof(sigsrv), "%.4000s.sig", index);
    si_result rc;
    if ((rc = get(src, index, 0, SI_INDEX_MAX_BYTES, ipath, sizeof(ipath), err)) != SI_OK ||
        (rc = get(src, sigsrv, 0, SI_SIGFILE_MAX_BYTES, isig, sizeof(isig), err)) != SI_OK ||
        (rc = si_trust_verify_file(t, SI_PURPOSE_INDEX, ipath, isig, NULL, err)) != SI_OK ||
        (rc = si_index_load(ipath, &out->index, err)) != SI_OK)
        return si_err_prefix(err, "index.json");
    out->index_path = strdup(ipath);
    out->index_sig = strdup(isig);
    if (!out->index_path || !out->index_sig)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    if ((rc = si_index_check_fresh(out->index, t->now, err)) != SI_OK) {
        if (!q->allow_expired)
            return rc;
        out->expired = true;
    }
    return SI_OK;
}

/* The full image of the query's build (or the newest) in the index. */
static si_result pick_image(const si_repo_query *q, const char *index, const char *chname,
                            si_repo_build *out, si_err *err)
{
    const si_image *img = NULL;
    for (size_t i = 0; i < out->index->nimages; i++) {
        const si_image *c = &out->index->images[i];
        if (c->type != SI_IMAGE_FULL)
            continue;
        if (q->build >= 0 ? (c->version == q->build && !img) : (!img || c->version > img->version))
            img = c;
    }
    if (!img)
        return q->build >= 0
                   ? si_err_set(err, SI_ERR_NOT_FOUND,
                                "%s: no full image of build %" PRId64 " for %s on channel %s", index,
                                q->build, q->device, chname)
                   : si_err_set(err, SI_ERR_NOT_FOUND, "%s: no full image for %s on channel %s",
                                index, q->device, chname);
    out->image = img;
    out->version = img->version;
    return SI_OK;
}

/* Each file of the image (apply order): fetched, size, sha256, signature. */
static si_result verify_files(const si_repo_src *src, si_trust *t, si_repo_build *out,
                              si_err *err)
{
    const si_image *img = out->image;
    const si_index_file **files = NULL;
    si_result rc = si_image_sorted_files(img, &files, err);
    if (rc != SI_OK)
        return rc;
    out->paths = calloc(img->nfiles + 1, sizeof(char *));
    out->sigpaths = calloc(img->nfiles + 1, sizeof(char *));
    if (!out->paths || !out->sigpaths)
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == SI_OK && i < img->nfiles; i++) {
        char p[PATH_CAP], s[PATH_CAP];
        if ((rc = get(src, files[i]->path, files[i]->size, files[i]->size, p, sizeof(p), err)) !=
                SI_OK ||
            (rc = get(src, files[i]->signature, 0, SI_SIGFILE_MAX_BYTES, s, sizeof(s), err)) !=
                SI_OK)
            break;
        out->nfiles = i + 1;
        out->paths[i] = strdup(p);
        out->sigpaths[i] = strdup(s);
        if (!out->paths[i] || !out->sigpaths[i])
            rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
        else if ((rc = hash_check(p, files[i], err)) == SI_OK)
            rc = si_trust_verify_file(t, SI_PURPOSE_UPDATE, p, s, NULL, err);
    }
    free(files);
    return rc;
}

si_result si_repo_open_build_trusted_from(const si_repo_src *src, si_trust *t,
                                          const si_repo_query *q, si_repo_build *out, si_err *err)
{
    memset(out, 0, sizeof(*out));
    si_channels *chs = NULL;
    const si_channel_device *dev = NULL;
    const char *chname = NULL;
    si_result rc = find_device(src, t, q->channel, q->device, &chs, &dev, &chname, err);
    if (rc == SI_OK)
        rc = load_device_keyring(src, t, dev, err);
    if (rc == SI_OK)
        rc = load_index(src, t, q, dev->index, out, err);
    if (rc == SI_OK)
        rc = pick_image(q, dev->index, chname, out, err);
    if (rc == SI_OK)
        rc = verify_files(src, t, out, err);
    si_channels_free(chs);
    if (rc != SI_OK)
        si_repo_build_free(out);
    return rc;
}

si_result si_repo_open_build_trusted(const char *repo, si_trust *t, const char *channel,
                                     const char *device, int64_t build, si_repo_build *out,
                                     si_err *err)
{
    si_repo_src src = {.root = repo};
    si_repo_query q = {.channel = channel, .device = device, .build = build};
    return si_repo_open_build_trusted_from(&src, t, &q, out, err);
}
