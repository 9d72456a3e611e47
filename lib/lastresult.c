/* lastresult.c - the recovery's report (see lastresult.h). */
#include "lastresult.h"

#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "jsonutil.h"

void si_last_result_add_duration(si_last_result *r, const char *name, double seconds)
{
    for (size_t i = 0; i < r->ndurations; i++) {
        if (strcmp(r->durations[i].name, name) == 0) {
            r->durations[i].seconds += seconds;
            return;
        }
    }
    if (r->ndurations >= SI_LAST_RESULT_MAX_DURATIONS)
        return;
    r->durations[r->ndurations].name = name;
    r->durations[r->ndurations].seconds = seconds;
    r->ndurations++;
}

static bool add_version(cJSON *root, const char *key, bool has, int64_t v)
{
    return has ? cJSON_AddNumberToObject(root, key, (double)v) != NULL
               : cJSON_AddNullToObject(root, key) != NULL;
}

si_result si_last_result_format(const si_last_result *r, char **out, si_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *durations = cJSON_CreateObject();
    if (!root || !durations)
        goto nomem;
    cJSON_AddItemToObject(root, "durations", durations);
    for (size_t i = 0; i < r->ndurations; i++) {
        /* Whole milliseconds: exact in JSON, short on the console. */
        double ms = r->durations[i].seconds * 1000.0;
        double rounded = (double)(int64_t)(ms + (ms < 0 ? -0.5 : 0.5));
        if (!cJSON_AddNumberToObject(durations, r->durations[i].name, rounded))
            goto nomem_root;
    }
    const char *msg = r->message && r->message[0] ? r->message : si_result_message(r->result);
    if (!cJSON_AddNumberToObject(root, "result", (double)r->result) ||
        !cJSON_AddStringToObject(root, "result_name", si_result_name(r->result)) ||
        !cJSON_AddStringToObject(root, "message", msg) ||
        !cJSON_AddStringToObject(root, "mode", r->mode ? r->mode : "update") ||
        !cJSON_AddStringToObject(root, "step", r->step ? r->step : "") ||
        !cJSON_AddBoolToObject(root, "dry_run", r->dry_run) ||
        !add_version(root, "from_version", r->has_from, r->from_version) ||
        !add_version(root, "to_version", r->has_to, r->to_version))
        goto nomem_root;
    si_result res = si_json_print_sorted(root, out, err);
    cJSON_Delete(root);
    return res;
nomem:
    cJSON_Delete(durations);
nomem_root:
    cJSON_Delete(root);
    return si_err_set(err, SI_ERR_NOMEM, "last_result.json: out of memory");
}

si_result si_last_result_write(const char *path, const si_last_result *r, si_err *err)
{
    char *json;
    si_result res = si_last_result_format(r, &json, err);
    if (res != SI_OK)
        return res;
    int rc = si_write_file_atomic(path, json, strlen(json), 0644);
    free(json);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    return SI_OK;
}
