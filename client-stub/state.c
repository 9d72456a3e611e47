/* state.c - <state_dir>/state.json: what this device has verified before,
 * the floor a replaying mirror cannot push it under (docs/security.md). It
 * is the same record the recovery keeps on the system partition
 * (lib/trustrec: format, index_generated_at, keyring versions), read and
 * checked with the same code. A state file of an older stub
 * ({"generated_at": N}) is read as a record holding only that time.
 * state.json lives on userdata, which a factory reset wipes: the floors
 * used are the larger of it and the recovery's record on the system root. */
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

/* {"generated_at": N}, written by stubs before the trust record. */
static si_result parse_legacy(const char *buf, size_t len, si_trust_record *rec)
{
    cJSON *root = NULL;
    int64_t gen = -1;
    si_result rc = si_json_parse(buf, len, STUB_STATE_MAX_BYTES, "state", &root, NULL);
    if (rc == SI_OK)
        rc = cJSON_IsObject(root) ? si_json_get_int(root, "", "generated_at", true, 0,
                                                    INT64_C(1) << 53, &gen, NULL, NULL)
                                  : SI_ERR_PARSE;
    cJSON_Delete(root);
    if (rc == SI_OK)
        rec->index_generated_at = gen;
    return rc;
}

si_result stub_state_read(const stub_config *cfg, si_trust_record *rec, si_err *err)
{
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, STUB_STATE_FILE);
    si_trust_record_init(rec);
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
    rc = si_trust_record_parse(buf, len, rec, err);
    if (rc != SI_OK && parse_legacy(buf, len, rec) == SI_OK)
        rc = SI_OK;
    free(buf);
    return rc == SI_OK ? SI_OK : si_err_prefix(err, "%s", path);
}

si_result stub_state_write(const stub_config *cfg, const si_trust_record *rec, si_err *err)
{
    int r = si_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", cfg->state_dir, strerror(-r));
    char *text = NULL;
    si_result rc = si_trust_record_format(rec, &text, err);
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

void stub_state_merge_system(const stub_config *cfg, si_trust_record *rec)
{
    si_trust_record sys;
    bool found = false;
    si_err e = {0};
    if (si_trust_record_read(cfg->system_root, &sys, &found, &e) != SI_OK) {
        fprintf(stderr, "sysimage-stub: note: %s; using %s/%s alone\n", e.msg, cfg->state_dir,
                STUB_STATE_FILE);
        return;
    }
    if (found)
        si_trust_record_merge(rec, &sys);
}
