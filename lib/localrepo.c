/* localrepo.c - verify a published repository on disk (the stub's chain). */
#include "localrepo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"
#include "fsutil.h"
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

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

static si_result hash_check(const char *path, const si_index_file *f, si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_file(path, d, &size);
    if (r < 0)
        return si_err_set(err, r == -2 ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", path, strerror(-r));
    if (size != f->size)
        return si_err_set(err, SI_ERR_SIZE, "%s: %" PRIu64 " bytes, the index says %" PRIu64, path,
                          size, f->size);
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, sizeof(d), hex);
    if (strcmp(hex, f->checksum) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: sha256 %s, the index says %s", path, hex,
                          f->checksum);
    return SI_OK;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
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

si_result si_repo_load_trust(const char *repo, si_keyring *am, si_trust *t, si_err *err)
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
        snprintf(kp[n], PATH_CAP, "%s/keyrings/%s.keyring", repo, names[i]);
        snprintf(sp[n], PATH_CAP, "%s/keyrings/%s.keyring.sig", repo, names[i]);
        if (!exists(kp[n])) {
            if (i == 1)
                continue; /* the blacklist is optional */
            return si_err_set(err, SI_ERR_MISSING_FILE, "%s: missing (is %s a published repository?)",
                              kp[n], repo);
        }
        kps[n] = kp[n];
        sps[n] = sp[n];
        n++;
    }
    return si_trust_load_files(t, kps, sps, n, err);
}

si_result si_repo_open_build(const char *repo, const char *archive_master, const char *channel,
                             const char *device, int64_t build, int64_t now, si_repo_build *out,
                             si_err *err)
{
    memset(out, 0, sizeof(*out));
    si_trust t;
    si_trust_init(&t, device, now);
    si_keyring *am = NULL;
    si_result rc = si_keyring_load(archive_master, &am, err);
    if (rc != SI_OK)
        si_err_prefix(err, "archive-master keyring");
    else if ((rc = si_repo_load_trust(repo, am, &t, err)) != SI_OK)
        si_err_prefix(err, "%s", archive_master);
    else
        rc = si_repo_open_build_trusted(repo, &t, channel, device, build, out, err);
    si_trust_free(&t);
    return rc;
}

si_result si_repo_open_build_trusted(const char *repo, si_trust *t, const char *channel,
                                     const char *device, int64_t build, si_repo_build *out,
                                     si_err *err)
{
    memset(out, 0, sizeof(*out));
    si_channels *chs = NULL;
    si_result rc = SI_OK;

    char cpath[PATH_CAP], csig[PATH_CAP];
    snprintf(cpath, sizeof(cpath), "%s/channels.json", repo);
    snprintf(csig, sizeof(csig), "%s/channels.json.sig", repo);
    if ((rc = si_trust_verify_file(t, SI_PURPOSE_CHANNELS, cpath, csig, NULL, err)) != SI_OK ||
        (rc = si_channels_load(cpath, &chs, err)) != SI_OK) {
        si_err_prefix(err, "channels.json");
        goto out;
    }
    const si_channel *ch = si_channels_find(chs, channel);
    for (int hop = 0; ch && ch->redirect; hop++) {
        if (hop == MAX_REDIRECTS) {
            rc = si_err_set(err, SI_ERR_PARSE, "channels.json: more than %d redirects from '%s'",
                            MAX_REDIRECTS, channel);
            goto out;
        }
        const char *to = ch->redirect;
        if (!(ch = si_channels_find(chs, to))) {
            rc = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: '%s' redirects to unknown '%s'",
                            channel, to);
            goto out;
        }
    }
    if (!ch) {
        rc = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: no channel '%s'", channel);
        goto out;
    }
    const si_channel_device *dev = si_channel_find_device(ch, device);
    if (!dev) {
        rc = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: channel '%s' has no device '%s'",
                        ch->name, device);
        goto out;
    }
    if (dev->keyring_path) {
        char dk[PATH_CAP], ds[PATH_CAP + 8];
        if ((rc = si_repo_join(repo, dev->keyring_path, dk, sizeof(dk), err)) != SI_OK)
            goto out;
        if (dev->keyring_signature) {
            if ((rc = si_repo_join(repo, dev->keyring_signature, ds, sizeof(ds), err)) != SI_OK)
                goto out;
        } else {
            snprintf(ds, sizeof(ds), "%s.sig", dk);
        }
        const char *dks[1] = {dk}, *dss[1] = {ds};
        if ((rc = si_trust_load_files(t, dks, dss, 1, err)) != SI_OK)
            goto out;
    }
    char ipath[PATH_CAP], isig[PATH_CAP + 8];
    if ((rc = si_repo_join(repo, dev->index, ipath, sizeof(ipath), err)) != SI_OK)
        goto out;
    snprintf(isig, sizeof(isig), "%s.sig", ipath);
    if ((rc = si_trust_verify_file(t, SI_PURPOSE_INDEX, ipath, isig, NULL, err)) != SI_OK ||
        (rc = si_index_load(ipath, &out->index, err)) != SI_OK) {
        si_err_prefix(err, "index.json");
        goto out;
    }
    out->index_path = strdup(ipath);
    out->index_sig = strdup(isig);
    const si_image *img = NULL;
    for (size_t i = 0; i < out->index->nimages; i++) {
        const si_image *c = &out->index->images[i];
        if (c->type != SI_IMAGE_FULL)
            continue;
        if (build >= 0 ? (c->version == build && !img) : (!img || c->version > img->version))
            img = c;
    }
    if (!img) {
        rc = build >= 0 ? si_err_set(err, SI_ERR_NOT_FOUND,
                                     "%s: no full image of build %" PRId64 " for %s on channel %s",
                                     dev->index, build, device, ch->name)
                        : si_err_set(err, SI_ERR_NOT_FOUND, "%s: no full image for %s on channel %s",
                                     dev->index, device, ch->name);
        goto out;
    }
    out->image = img;
    out->version = img->version;
    const si_index_file **files = NULL;
    if ((rc = si_image_sorted_files(img, &files, err)) != SI_OK)
        goto out;
    out->paths = calloc(img->nfiles + 1, sizeof(char *));
    out->sigpaths = calloc(img->nfiles + 1, sizeof(char *));
    if (!out->paths || !out->sigpaths || !out->index_path || !out->index_sig) {
        free(files);
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < img->nfiles; i++) {
        char p[PATH_CAP], s[PATH_CAP];
        if ((rc = si_repo_join(repo, files[i]->path, p, sizeof(p), err)) != SI_OK ||
            (rc = si_repo_join(repo, files[i]->signature, s, sizeof(s), err)) != SI_OK)
            break;
        out->nfiles = i + 1;
        out->paths[i] = dup_or_null(p);
        out->sigpaths[i] = dup_or_null(s);
        if (!out->paths[i] || !out->sigpaths[i]) {
            rc = si_err_set(err, SI_ERR_NOMEM, "out of memory");
            break;
        }
        if ((rc = hash_check(p, files[i], err)) != SI_OK ||
            (rc = si_trust_verify_file(t, SI_PURPOSE_UPDATE, p, s, NULL, err)) != SI_OK)
            break;
    }
    free(files);
out:
    si_channels_free(chs);
    if (rc != SI_OK)
        si_repo_build_free(out);
    return rc;
}
