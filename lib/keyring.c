/* keyring.c - keyrings and the chain of trust (docs/security.md). */
#include "keyring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "jsonutil.h"

#define KR_FORMAT 1
#define KR_MAX_EXPIRY 9007199254740992LL /* 2^53: what JSON numbers hold exactly */

static const char *const type_names[SI_KR_TYPE_COUNT] = {
    [SI_KR_ARCHIVE_MASTER] = "archive-master", [SI_KR_IMAGE_MASTER] = "image-master",
    [SI_KR_IMAGE_SIGNING] = "image-signing",   [SI_KR_DEVICE_SIGNING] = "device-signing",
    [SI_KR_BLACKLIST] = "blacklist",
};

const char *si_keyring_type_name(si_keyring_type t)
{
    return (unsigned)t < SI_KR_TYPE_COUNT ? type_names[t] : "unknown";
}

si_result si_keyring_type_parse(const char *name, si_keyring_type *out)
{
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (si_keyring_type)i;
            return SI_OK;
        }
    }
    return SI_ERR_PARSE;
}

/* The keyring type whose keys sign keyrings of type t. */
static bool parent_type(si_keyring_type t, si_keyring_type *parent)
{
    switch (t) {
    case SI_KR_IMAGE_MASTER:
        *parent = SI_KR_ARCHIVE_MASTER;
        return true;
    case SI_KR_IMAGE_SIGNING:
    case SI_KR_BLACKLIST:
        *parent = SI_KR_IMAGE_MASTER;
        return true;
    case SI_KR_DEVICE_SIGNING:
        *parent = SI_KR_IMAGE_SIGNING;
        return true;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- objects */

si_keyring *si_keyring_new(si_keyring_type type)
{
    si_keyring *kr = calloc(1, sizeof(*kr));
    if (kr)
        kr->type = type;
    return kr;
}

void si_keyring_free(si_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->nkeys; i++)
        si_key_free(kr->keys[i]);
    free(kr);
}

bool si_keyring_has_key_id(const si_keyring *kr, const char *key_id)
{
    if (!kr || !key_id)
        return false;
    for (size_t i = 0; i < kr->nkeys; i++)
        if (strcmp(si_key_id(kr->keys[i]), key_id) == 0)
            return true;
    return false;
}

static const si_key *find_key(const si_keyring *kr, const char *key_id)
{
    for (size_t i = 0; i < kr->nkeys; i++)
        if (strcmp(si_key_id(kr->keys[i]), key_id) == 0)
            return kr->keys[i];
    return NULL;
}

si_result si_keyring_add_key(si_keyring *kr, si_key *key, si_err *err)
{
    if (si_keyring_has_key_id(kr, si_key_id(key)))
        return si_err_set(err, SI_ERR_EXISTS, "key %s is already in the keyring", si_key_id(key));
    if (kr->nkeys >= SI_KEYRING_MAX_KEYS)
        return si_err_set(err, SI_ERR_TOO_LARGE, "keyring already holds %d keys",
                          SI_KEYRING_MAX_KEYS);
    kr->keys[kr->nkeys++] = key;
    return SI_OK;
}

/* ---------------------------------------------------------------- JSON */

/* "format", "type", "expiry" and "model". */
static si_result parse_header(const cJSON *root, si_keyring *kr, si_err *err)
{
    int64_t format = 0;
    si_result r = si_json_get_int(root, "", "format", true, 0, INT32_MAX, &format, NULL, err);
    if (r != SI_OK)
        return r;
    if (format != KR_FORMAT)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "format: version %" PRId64 " (expected %d)",
                          format, KR_FORMAT);
    const char *type = NULL;
    r = si_json_get_string(root, "", "type", true, &type, NULL, err);
    if (r != SI_OK)
        return r;
    if (si_keyring_type_parse(type, &kr->type) != SI_OK)
        return si_err_set(err, SI_ERR_PARSE, "type: unknown keyring type '%.64s'", type);
    r = si_json_get_int(root, "", "expiry", false, 0, KR_MAX_EXPIRY, &kr->expiry, &kr->has_expiry,
                        err);
    if (r != SI_OK)
        return r;
    const char *model = NULL;
    bool has_model = false;
    r = si_json_get_string(root, "", "model", false, &model, &has_model, err);
    if (r != SI_OK || !has_model)
        return r;
    size_t ml = strlen(model);
    if (ml == 0 || ml >= SI_MODEL_MAX)
        return si_err_set(err, SI_ERR_PARSE, "model: must be 1 to %d characters", SI_MODEL_MAX - 1);
    memcpy(kr->model, model, ml + 1);
    return SI_OK;
}

/* "version" and, for an image-signing keyring, the "blacklist" it names. */
static si_result parse_version_blacklist(const cJSON *root, si_keyring *kr, si_err *err)
{
    bool has_version = false;
    si_result r = si_json_get_int(root, "", "version", false, 0, KR_MAX_EXPIRY, &kr->version,
                                  &has_version, err);
    if (r != SI_OK)
        return r;
    const char *bl = NULL;
    bool has_bl = false;
    r = si_json_get_string(root, "", "blacklist", false, &bl, &has_bl, err);
    if (r != SI_OK || !has_bl)
        return r;
    if (kr->type != SI_KR_IMAGE_SIGNING)
        return si_err_set(err, SI_ERR_PARSE,
                          "blacklist: only an image-signing keyring names a blacklist");
    if (strlen(bl) != 64 || strspn(bl, "0123456789abcdef") != 64)
        return si_err_set(err, SI_ERR_PARSE, "blacklist: expected 64 lowercase hex digits (sha256)");
    memcpy(kr->blacklist_sha256, bl, 65);
    return SI_OK;
}

/* "keys": at most SI_KEYRING_MAX_KEYS different public keys in PEM. */
static si_result parse_keys(const cJSON *root, si_keyring *kr, si_err *err)
{
    const cJSON *keys = NULL;
    si_result r = si_json_get_array(root, "", "keys", true, &keys, NULL, err);
    if (r != SI_OK)
        return r;
    int n = cJSON_GetArraySize(keys);
    if (n > SI_KEYRING_MAX_KEYS)
        return si_err_set(err, SI_ERR_TOO_LARGE, "keys: %d keys (at most %d)", n,
                          SI_KEYRING_MAX_KEYS);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, keys)
    {
        if (!cJSON_IsString(it) || !it->valuestring)
            return si_err_set(err, SI_ERR_PARSE, "keys[%d]: expected string", i);
        si_key *k = NULL;
        r = si_key_load_public_pem(it->valuestring, strlen(it->valuestring), &k, err);
        if (r != SI_OK) {
            si_err_prefix(err, "keys[%d]", i);
            return r;
        }
        r = si_keyring_add_key(kr, k, err);
        if (r != SI_OK) {
            if (r == SI_ERR_EXISTS)
                r = si_err_set(err, SI_ERR_PARSE, "keys[%d]: duplicate key %s", i, si_key_id(k));
            else
                si_err_prefix(err, "keys[%d]", i);
            si_key_free(k);
            return r;
        }
        i++;
    }
    return SI_OK;
}

static si_result parse_tree(const cJSON *root, si_keyring *kr, si_err *err)
{
    si_result r;
    if ((r = parse_header(root, kr, err)) != SI_OK ||
        (r = parse_version_blacklist(root, kr, err)) != SI_OK)
        return r;
    return parse_keys(root, kr, err);
}

si_result si_keyring_parse(const char *json, size_t len, si_keyring **out, si_err *err)
{
    cJSON *root = NULL;
    si_result r = si_json_parse(json, len, SI_KEYRING_MAX_BYTES, "keyring", &root, err);
    if (r != SI_OK)
        return r;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_PARSE, "keyring: expected a JSON object");
    }
    si_keyring *kr = si_keyring_new(SI_KR_ARCHIVE_MASTER);
    if (!kr) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_NOMEM, "keyring: out of memory");
    }
    r = parse_tree(root, kr, err);
    cJSON_Delete(root);
    if (r != SI_OK) {
        si_keyring_free(kr);
        return r;
    }
    *out = kr;
    return SI_OK;
}

/* Read path (bounded), parse it and hash its exact bytes. */
static si_result load_with_digest(const char *path, si_keyring **out,
                                  uint8_t digest[SI_SHA256_LEN], si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    si_result rd = si_read_file_checked(path, SI_KEYRING_MAX_BYTES, &buf, &len, err);
    if (rd != SI_OK)
        return rd;
    if (digest)
        si_sha256_buf(buf, len, digest);
    si_result r = si_keyring_parse(buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

si_result si_keyring_load(const char *path, si_keyring **out, si_err *err)
{
    return load_with_digest(path, out, NULL, err);
}

si_result si_keyring_format(const si_keyring *kr, char **json_out, si_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *keys = cJSON_CreateArray();
    bool ok = root && keys;
    if (ok) {
        cJSON_AddItemToObject(root, "keys", keys);
        keys = NULL;
        ok = cJSON_AddNumberToObject(root, "format", KR_FORMAT) &&
             cJSON_AddStringToObject(root, "type", si_keyring_type_name(kr->type));
    }
    if (ok && kr->has_expiry)
        ok = cJSON_AddNumberToObject(root, "expiry", (double)kr->expiry) != NULL;
    if (ok && kr->model[0])
        ok = cJSON_AddStringToObject(root, "model", kr->model) != NULL;
    if (ok && kr->version)
        ok = cJSON_AddNumberToObject(root, "version", (double)kr->version) != NULL;
    if (ok && kr->blacklist_sha256[0])
        ok = cJSON_AddStringToObject(root, "blacklist", kr->blacklist_sha256) != NULL;
    cJSON *arr = ok ? cJSON_GetObjectItemCaseSensitive(root, "keys") : NULL;
    for (size_t i = 0; ok && i < kr->nkeys; i++) {
        char *pem = NULL;
        si_result r = si_key_public_pem(kr->keys[i], &pem, err);
        if (r != SI_OK) {
            cJSON_Delete(root);
            cJSON_Delete(keys);
            return r;
        }
        cJSON *s = cJSON_CreateString(pem);
        free(pem);
        ok = s && cJSON_AddItemToArray(arr, s);
        if (s && !ok)
            cJSON_Delete(s);
    }
    si_result r = ok ? si_json_print_sorted(root, json_out, err)
                     : si_err_set(err, SI_ERR_NOMEM, "keyring: out of memory");
    cJSON_Delete(root);
    cJSON_Delete(keys);
    return r;
}

/* ---------------------------------------------------------------- verification */

si_result si_verify_digest(const si_sigfile *sf, const uint8_t digest[SI_SHA256_LEN],
                           const si_keyring *const *trusted, size_t ntrusted,
                           const si_keyring *blacklist, si_signer *who, si_err *err)
{
    bool blacklisted = false, known = false;
    const char *blk_id = NULL;
    for (size_t s = 0; s < sf->count; s++) {
        const si_sig_stanza *st = &sf->stanzas[s];
        for (size_t t = 0; t < ntrusted; t++) {
            if (!trusted[t])
                continue;
            const si_key *k = find_key(trusted[t], st->key_id);
            if (!k)
                continue;
            known = true;
            if (si_key_verify_digest(k, st->algorithm, digest, st->sig, st->sig_len) != SI_OK)
                continue;
            if (blacklist && si_keyring_has_key_id(blacklist, st->key_id)) {
                blacklisted = true;
                blk_id = st->key_id;
                continue;
            }
            if (who) {
                memcpy(who->key_id, st->key_id, sizeof(who->key_id));
                who->keyring_type = trusted[t]->type;
            }
            return SI_OK;
        }
    }
    if (blacklisted)
        return si_err_set(err, SI_ERR_BLACKLISTED, "signed only by blacklisted key %s", blk_id);
    if (known)
        return si_err_set(err, SI_ERR_BAD_SIGNATURE,
                          "signature does not verify (%zu stanza%s, first by key %.16s...)",
                          sf->count, sf->count == 1 ? "" : "s", sf->count ? sf->stanzas[0].key_id : "");
    return si_err_set(err, SI_ERR_BAD_SIGNATURE,
                      "no stanza is signed by a trusted key (%zu stanza%s, first by key %.16s...)",
                      sf->count, sf->count == 1 ? "" : "s", sf->count ? sf->stanzas[0].key_id : "");
}

si_result si_verify_file(const char *path, const char *sigpath, const si_keyring *const *trusted,
                         size_t ntrusted, const si_keyring *blacklist, si_signer *who, si_err *err)
{
    si_sigfile *sf = calloc(1, sizeof(*sf));
    if (!sf)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", path);
    si_result r = si_sigfile_read(sigpath, sf, err);
    if (r != SI_OK) {
        free(sf);
        return r;
    }
    uint8_t digest[SI_SHA256_LEN];
    int rc = si_sha256_file(path, digest, NULL);
    if (rc < 0) {
        free(sf);
        return si_err_set(err, rc == -ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", path,
                          strerror(-rc));
    }
    r = si_verify_digest(sf, digest, trusted, ntrusted, blacklist, who, err);
    free(sf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

si_result si_keyring_validate(const si_keyring *kr, const uint8_t digest[SI_SHA256_LEN],
                              const si_sigfile *sig, si_keyring_type expected,
                              const si_keyring *parent, const si_keyring *blacklist,
                              const char *device, int64_t now, si_err *err)
{
    if (kr->type != expected)
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "keyring type is %s, expected %s",
                          si_keyring_type_name(kr->type), si_keyring_type_name(expected));
    si_keyring_type ptype;
    if (!parent_type(kr->type, &ptype))
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "a %s keyring is not signed by a parent",
                          si_keyring_type_name(kr->type));
    if (!parent)
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s keyring: its parent %s keyring is missing",
                          si_keyring_type_name(kr->type), si_keyring_type_name(ptype));
    if (parent->type != ptype)
        return si_err_set(err, SI_ERR_KEYRING_TYPE, "%s keyring: parent is %s, expected %s",
                          si_keyring_type_name(kr->type), si_keyring_type_name(parent->type),
                          si_keyring_type_name(ptype));
    si_result r = si_verify_digest(sig, digest, &parent, 1, blacklist, NULL, err);
    if (r != SI_OK) {
        si_err_prefix(err, "%s keyring: signature by %s", si_keyring_type_name(kr->type),
                      si_keyring_type_name(ptype));
        return r;
    }
    if (device && kr->model[0] && strcmp(device, kr->model) != 0)
        return si_err_set(err, SI_ERR_KEYRING_MODEL, "%s keyring: for model '%s', not '%s'",
                          si_keyring_type_name(kr->type), kr->model, device);
    if (kr->has_expiry && kr->expiry <= now)
        return si_err_set(err, SI_ERR_KEYRING_EXPIRED,
                          "%s keyring: expired at %" PRId64 " (now %" PRId64 ")",
                          si_keyring_type_name(kr->type), kr->expiry, now);
    return SI_OK;
}

/* ---------------------------------------------------------------- chain */

void si_trust_init(si_trust *t, const char *device, int64_t now)
{
    memset(t, 0, sizeof(*t));
    t->device = device;
    t->now = now;
}

void si_trust_free(si_trust *t)
{
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++) {
        si_keyring_free(t->ring[i]);
        t->ring[i] = NULL;
    }
}

si_result si_trust_set_archive_master(si_trust *t, si_keyring *am, si_err *err)
{
    si_result r = SI_OK;
    if (am->type != SI_KR_ARCHIVE_MASTER)
        r = si_err_set(err, SI_ERR_KEYRING_TYPE, "archive-master keyring has type %s",
                       si_keyring_type_name(am->type));
    else if (t->ring[SI_KR_ARCHIVE_MASTER])
        r = si_err_set(err, SI_ERR_EXISTS, "archive-master keyring already installed");
    else if (am->nkeys == 0)
        r = si_err_set(err, SI_ERR_BAD_KEY, "archive-master keyring holds no key");
    else if (t->device && am->model[0] && strcmp(t->device, am->model) != 0)
        r = si_err_set(err, SI_ERR_KEYRING_MODEL, "archive-master keyring: for model '%s', not '%s'",
                       am->model, t->device);
    else if (am->has_expiry && am->expiry <= t->now)
        r = si_err_set(err, SI_ERR_KEYRING_EXPIRED,
                       "archive-master keyring: expired at %" PRId64 " (now %" PRId64 ")",
                       am->expiry, t->now);
    if (r != SI_OK) {
        si_keyring_free(am);
        return r;
    }
    t->ring[SI_KR_ARCHIVE_MASTER] = am;
    return SI_OK;
}

/* The type a file name promises: "<dir>/image-signing.keyring" -> image-signing. */
static bool type_from_name(const char *path, si_keyring_type *out)
{
    char base[256];
    if (si_basename(path, base, sizeof(base)) != 0)
        return false;
    size_t n = strlen(base), sl = strlen(".keyring");
    if (n <= sl || strcmp(base + n - sl, ".keyring") != 0)
        return false;
    base[n - sl] = '\0';
    return si_keyring_type_parse(base, out) == SI_OK;
}

struct pending {
    si_keyring *kr;
    uint8_t digest[SI_SHA256_LEN];
    si_sigfile *sig;
    size_t index; /* into paths */
};

/* DESIGN §3: a keyring is valid only if none of its signing keys is
 * blacklisted. Any stanza whose key (of parent) verifies the keyring and is
 * on the blacklist refuses it, even when another stanza verifies too. */
static si_result check_signers(const struct pending *pp, const si_keyring *parent,
                               const si_keyring *blacklist, si_err *err)
{
    if (!blacklist || !parent)
        return SI_OK;
    for (size_t s = 0; s < pp->sig->count; s++) {
        const si_sig_stanza *st = &pp->sig->stanzas[s];
        const si_key *k = find_key(parent, st->key_id);
        if (!k || !si_keyring_has_key_id(blacklist, st->key_id) ||
            si_key_verify_digest(k, st->algorithm, pp->digest, st->sig, st->sig_len) != SI_OK)
            continue;
        return si_err_set(err, SI_ERR_BLACKLISTED,
                          "%s keyring: signed by blacklisted %s key %s",
                          si_keyring_type_name(pp->kr->type), si_keyring_type_name(parent->type),
                          st->key_id);
    }
    return SI_OK;
}

/* Validate the parsed keyrings in chain order; view[] holds the installed
 * ones and receives each that validates. Then, the blacklist being known
 * (it is signed by image-master, so it can only be read once image-master
 * is), re-check every keyring of the batch, image-master and the blacklist
 * included, against it. */
static si_result validate_pending(const si_trust *t, struct pending *p, const si_keyring **view,
                                  const char *const *paths, si_err *err)
{
    static const si_keyring_type order[] = {SI_KR_IMAGE_MASTER, SI_KR_BLACKLIST,
                                            SI_KR_IMAGE_SIGNING, SI_KR_DEVICE_SIGNING};
    const size_t norder = sizeof(order) / sizeof(order[0]);
    si_result r = SI_OK;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t o = 0; r == SI_OK && o < norder; o++) {
            struct pending *pp = &p[order[o]];
            if (!pp->kr)
                continue;
            si_keyring_type ptype = SI_KR_ARCHIVE_MASTER;
            parent_type(pp->kr->type, &ptype);
            if (pass == 0)
                r = si_keyring_validate(pp->kr, pp->digest, pp->sig, pp->kr->type, view[ptype],
                                        view[SI_KR_BLACKLIST], t->device, t->now, err);
            else
                r = check_signers(pp, view[ptype], view[SI_KR_BLACKLIST], err);
            if (r != SI_OK)
                si_err_prefix(err, "%s", paths[pp->index]);
            else
                view[pp->kr->type] = pp->kr;
        }
    }
    return r;
}

si_result si_trust_load_files(si_trust *t, const char *const *paths, const char *const *sigpaths,
                              size_t n, si_err *err)
{
    struct pending p[SI_KR_TYPE_COUNT];
    memset(p, 0, sizeof(p));
    si_result r = SI_OK;
    size_t i;
    for (i = 0; i < n && r == SI_OK; i++) {
        si_keyring *kr = NULL;
        uint8_t digest[SI_SHA256_LEN];
        r = load_with_digest(paths[i], &kr, digest, err);
        if (r != SI_OK)
            break;
        si_keyring_type named;
        if (type_from_name(paths[i], &named) && named != kr->type)
            r = si_err_set(err, SI_ERR_KEYRING_TYPE, "%s: keyring type is %s, expected %s",
                           paths[i], si_keyring_type_name(kr->type), si_keyring_type_name(named));
        else if (kr->type == SI_KR_ARCHIVE_MASTER)
            r = si_err_set(err, SI_ERR_KEYRING_TYPE,
                           "%s: an archive-master keyring is built in, never loaded", paths[i]);
        else if (t->ring[kr->type] || p[kr->type].kr)
            r = si_err_set(err, SI_ERR_EXISTS, "%s: a second %s keyring", paths[i],
                           si_keyring_type_name(kr->type));
        if (r != SI_OK) {
            si_keyring_free(kr);
            break;
        }
        struct pending *pp = &p[kr->type];
        pp->kr = kr;
        memcpy(pp->digest, digest, sizeof(digest));
        pp->index = i;
        pp->sig = calloc(1, sizeof(*pp->sig));
        if (!pp->sig) {
            r = si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", paths[i]);
            break;
        }
        r = si_sigfile_read(sigpaths[i], pp->sig, err);
    }
    const si_keyring *view[SI_KR_TYPE_COUNT];
    for (int k = 0; k < SI_KR_TYPE_COUNT; k++)
        view[k] = t->ring[k];
    if (r == SI_OK)
        r = validate_pending(t, p, view, paths, err);
    for (int k = 0; k < SI_KR_TYPE_COUNT; k++) {
        free(p[k].sig);
        if (r == SI_OK && p[k].kr)
            t->ring[k] = p[k].kr;
        else
            si_keyring_free(p[k].kr);
    }
    return r;
}

static size_t purpose_rings(const si_trust *t, si_purpose purpose, const si_keyring **out)
{
    size_t n = 0;
    if (t->ring[SI_KR_IMAGE_SIGNING])
        out[n++] = t->ring[SI_KR_IMAGE_SIGNING];
    if (purpose != SI_PURPOSE_CHANNELS && t->ring[SI_KR_DEVICE_SIGNING])
        out[n++] = t->ring[SI_KR_DEVICE_SIGNING];
    return n;
}

si_result si_trust_verify_digest(const si_trust *t, si_purpose purpose,
                                 const uint8_t digest[SI_SHA256_LEN], const si_sigfile *sf,
                                 si_signer *who, si_err *err)
{
    const si_keyring *rings[2];
    size_t n = purpose_rings(t, purpose, rings);
    if (n == 0)
        return si_err_set(err, SI_ERR_BAD_SIGNATURE, "no image-signing keyring is loaded");
    return si_verify_digest(sf, digest, rings, n, t->ring[SI_KR_BLACKLIST], who, err);
}

si_result si_trust_verify_file(const si_trust *t, si_purpose purpose, const char *path,
                               const char *sigpath, si_signer *who, si_err *err)
{
    const si_keyring *rings[2];
    size_t n = purpose_rings(t, purpose, rings);
    if (n == 0)
        return si_err_set(err, SI_ERR_BAD_SIGNATURE, "%s: no image-signing keyring is loaded",
                          path);
    return si_verify_file(path, sigpath, rings, n, t->ring[SI_KR_BLACKLIST], who, err);
}
