/* state.c - <state_dir>/state.json: what this device has verified before,
 * the floor that a replaying mirror cannot push it under (docs/security.md):
 *
 *   {"generated_at": <epoch of the newest verified index>,
 *    "keyrings": {"image-master": V, "image-signing": V,
 *                 "device-signing": V, "blacklist": V}}
 *
 * A keyring type absent from "keyrings" was never verified (older state
 * files hold only generated_at). Written atomically with cJSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "jsonutil.h"
#include "protocol.h"
#include "stub.h"

#define MAX_INT (INT64_C(1) << 53)

static const si_keyring_type tracked[] = {SI_KR_IMAGE_MASTER, SI_KR_IMAGE_SIGNING,
                                          SI_KR_DEVICE_SIGNING, SI_KR_BLACKLIST};
#define NTRACKED (sizeof(tracked) / sizeof(tracked[0]))

void stub_state_init(stub_state *st)
{
    st->generated_at = -1;
    for (size_t i = 0; i < SI_KR_TYPE_COUNT; i++)
        st->keyring_version[i] = -1;
}

static si_result parse_keyrings(const cJSON *root, stub_state *st, si_err *err)
{
    const cJSON *krs = NULL;
    bool have = false;
    si_result rc = si_json_get_object(root, "", "keyrings", false, &krs, &have, err);
    if (rc != SI_OK || !have)
        return rc;
    for (size_t i = 0; i < NTRACKED; i++) {
        si_keyring_type t = tracked[i];
        rc = si_json_get_int(krs, "keyrings", si_keyring_type_name(t), false, 0, MAX_INT,
                             &st->keyring_version[t], NULL, err);
        if (rc != SI_OK)
            return rc;
    }
    return SI_OK;
}

si_result stub_state_read(const stub_config *cfg, stub_state *st, si_err *err)
{
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, STUB_STATE_FILE);
    stub_state_init(st);
    char *buf = NULL;
    size_t len = 0;
    si_err e2 = {0};
    si_result rc = si_protocol_read_staged(AT_FDCWD, path, STUB_STATE_MAX_BYTES, &buf, &len,
                                           &e2);
    if (rc == SI_ERR_MISSING_FILE && access(path, F_OK) < 0 && errno == ENOENT)
        return SI_OK; /* first run */
    if (rc != SI_OK) {
        if (err)
            *err = e2;
        return rc;
    }
    cJSON *root = NULL;
    rc = si_json_parse(buf, len, STUB_STATE_MAX_BYTES, path, &root, err);
    free(buf);
    if (rc != SI_OK)
        return rc;
    if (!cJSON_IsObject(root))
        rc = si_err_set(err, SI_ERR_PARSE, "expected an object");
    else if ((rc = si_json_get_int(root, "", "generated_at", true, 0, MAX_INT,
                                   &st->generated_at, NULL, err)) == SI_OK)
        rc = parse_keyrings(root, st, err);
    cJSON_Delete(root);
    return rc == SI_OK ? SI_OK : si_err_prefix(err, "%s", path);
}

static cJSON *state_json(const stub_state *st)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *krs = root ? cJSON_AddObjectToObject(root, "keyrings") : NULL;
    bool ok = krs && cJSON_AddNumberToObject(root, "generated_at",
                                             (double)(st->generated_at < 0 ? 0
                                                                           : st->generated_at));
    for (size_t i = 0; ok && i < NTRACKED; i++) {
        si_keyring_type t = tracked[i];
        if (st->keyring_version[t] >= 0)
            ok = cJSON_AddNumberToObject(krs, si_keyring_type_name(t),
                                         (double)st->keyring_version[t]) != NULL;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

si_result stub_state_write(const stub_config *cfg, const stub_state *st, si_err *err)
{
    int r = si_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", cfg->state_dir, strerror(-r));
    cJSON *root = state_json(st);
    if (!root)
        return si_err_set(err, SI_ERR_NOMEM, "state.json: out of memory");
    char *text = NULL;
    si_result rc = si_json_print_sorted(root, &text, err);
    cJSON_Delete(root);
    if (rc != SI_OK)
        return rc;
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, STUB_STATE_FILE);
    r = si_write_file_atomic(path, text, strlen(text), 0644);
    free(text);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return SI_OK;
}

bool stub_state_equal(const stub_state *a, const stub_state *b)
{
    if (a->generated_at != b->generated_at)
        return false;
    for (size_t i = 0; i < NTRACKED; i++)
        if (a->keyring_version[tracked[i]] != b->keyring_version[tracked[i]])
            return false;
    return true;
}
