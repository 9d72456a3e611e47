/* trustrec.c - the recovery's trust record (trustrec.h). */
#include "trustrec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "jsonutil.h"

#define FORMAT 1
#define MAX_NUM (INT64_C(1) << 53)

void si_trust_record_init(si_trust_record *rec)
{
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++)
        rec->keyring_version[i] = -1;
    rec->index_generated_at = -1;
}

si_result si_trust_record_parse(const char *json, size_t len, si_trust_record *out, si_err *err)
{
    si_trust_record_init(out);
    cJSON *root = NULL;
    si_result r = si_json_parse(json, len, SI_TRUSTREC_MAX_BYTES, "trust record", &root, err);
    if (r != SI_OK)
        return r;
    int64_t format = 0, gen = -1;
    bool has_gen = false;
    const cJSON *krs = NULL;
    if (!cJSON_IsObject(root))
        r = si_err_set(err, SI_ERR_PARSE, "trust record: expected a JSON object");
    if (r == SI_OK)
        r = si_json_get_int(root, "", "format", true, 0, INT32_MAX, &format, NULL, err);
    if (r == SI_OK && format != FORMAT)
        r = si_err_set(err, SI_ERR_UNSUPPORTED, "trust record: format %" PRId64, format);
    if (r == SI_OK)
        r = si_json_get_int(root, "", "index_generated_at", false, 0, MAX_NUM, &gen, &has_gen,
                            err);
    if (r == SI_OK)
        r = si_json_get_object(root, "", "keyrings", false, &krs, NULL, err);
    for (int i = 1; r == SI_OK && krs && i < SI_KR_TYPE_COUNT; i++) {
        bool has = false;
        int64_t v = -1;
        r = si_json_get_int(krs, "keyrings", si_keyring_type_name((si_keyring_type)i), false, 0,
                            MAX_NUM, &v, &has, err);
        if (r == SI_OK && has)
            out->keyring_version[i] = v;
    }
    if (r == SI_OK && has_gen)
        out->index_generated_at = gen;
    cJSON_Delete(root);
    if (r != SI_OK)
        si_trust_record_init(out);
    return r;
}

si_result si_trust_record_format(const si_trust_record *rec, char **json_out, si_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *krs = root ? cJSON_AddObjectToObject(root, "keyrings") : NULL;
    bool ok = root && krs && cJSON_AddNumberToObject(root, "format", FORMAT);
    if (ok && rec->index_generated_at >= 0)
        ok = cJSON_AddNumberToObject(root, "index_generated_at",
                                     (double)rec->index_generated_at) != NULL;
    for (int i = 1; ok && i < SI_KR_TYPE_COUNT; i++)
        if (rec->keyring_version[i] >= 0)
            ok = cJSON_AddNumberToObject(krs, si_keyring_type_name((si_keyring_type)i),
                                         (double)rec->keyring_version[i]) != NULL;
    si_result r = ok ? si_json_print_sorted(root, json_out, err)
                     : si_err_set(err, SI_ERR_NOMEM, "trust record: out of memory");
    cJSON_Delete(root);
    return r;
}

si_result si_trust_record_read(const char *dir, si_trust_record *rec, bool *found, si_err *err)
{
    si_trust_record_init(rec);
    *found = false;
    char buf[SI_TRUSTREC_MAX_BYTES + 1];
    ssize_t n = lgetxattr(dir, SI_TRUSTREC_XATTR, buf, SI_TRUSTREC_MAX_BYTES);
    if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
        return SI_OK;
    if (n < 0 && errno == ERANGE)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: trust record larger than %d bytes", dir,
                          SI_TRUSTREC_MAX_BYTES);
    if (n < 0)
        return si_err_set(err, SI_ERR_IO, "%s: trust record: %s", dir, strerror(errno));
    si_result r = si_trust_record_parse(buf, (size_t)n, rec, err);
    if (r != SI_OK)
        return si_err_prefix(err, "%s", dir);
    *found = true;
    return SI_OK;
}

si_result si_trust_record_write(const char *dir, const si_trust_record *rec, si_err *err)
{
    char *json = NULL;
    si_result r = si_trust_record_format(rec, &json, err);
    if (r != SI_OK)
        return r;
    int rc = lsetxattr(dir, SI_TRUSTREC_XATTR, json, strlen(json), 0);
    int e = errno;
    free(json);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: writing the trust record: %s", dir, strerror(e));
    return SI_OK;
}

si_result si_trust_record_check(const si_trust_record *rec, const si_trust *t,
                                const char *blacklist_sha256, si_err *err)
{
    for (int i = 1; i < SI_KR_TYPE_COUNT; i++) {
        const char *name = si_keyring_type_name((si_keyring_type)i);
        const si_keyring *kr = t->ring[i];
        if (kr && kr->version < rec->keyring_version[i])
            return si_err_set(err, SI_ERR_BLACKLISTED,
                              "%s.keyring: version %" PRId64 " is older than version %" PRId64
                              " this device verified before (a revocation would be undone)",
                              name, kr->version, rec->keyring_version[i]);
    }
    if (!t->ring[SI_KR_BLACKLIST] && rec->keyring_version[SI_KR_BLACKLIST] >= 0)
        return si_err_set(err, SI_ERR_BLACKLISTED,
                          "no blacklist.keyring staged, but this device verified blacklist "
                          "version %" PRId64 " before: the revocation cannot be dropped",
                          rec->keyring_version[SI_KR_BLACKLIST]);
    const si_keyring *is = t->ring[SI_KR_IMAGE_SIGNING];
    if (is && is->blacklist_sha256[0]) {
        if (!blacklist_sha256 || !t->ring[SI_KR_BLACKLIST])
            return si_err_set(err, SI_ERR_BLACKLISTED,
                              "image-signing.keyring names blacklist %.16s..., but no "
                              "blacklist.keyring is staged", is->blacklist_sha256);
        if (strcmp(blacklist_sha256, is->blacklist_sha256) != 0)
            return si_err_set(err, SI_ERR_BLACKLISTED,
                              "blacklist.keyring (sha256 %.16s...) is not the one "
                              "image-signing.keyring names (%.16s...)", blacklist_sha256,
                              is->blacklist_sha256);
    }
    return SI_OK;
}

void si_trust_record_raise(si_trust_record *rec, const si_trust *t, int64_t index_generated_at)
{
    for (int i = 1; i < SI_KR_TYPE_COUNT; i++)
        if (t->ring[i] && t->ring[i]->version > rec->keyring_version[i])
            rec->keyring_version[i] = t->ring[i]->version;
    if (index_generated_at > rec->index_generated_at)
        rec->index_generated_at = index_generated_at;
}

void si_trust_record_merge(si_trust_record *rec, const si_trust_record *other)
{
    for (int i = 0; i < SI_KR_TYPE_COUNT; i++)
        if (other->keyring_version[i] > rec->keyring_version[i])
            rec->keyring_version[i] = other->keyring_version[i];
    if (other->index_generated_at > rec->index_generated_at)
        rec->index_generated_at = other->index_generated_at;
}
