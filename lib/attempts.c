/* attempts.c - the recovery's attempt accounting (see attempts.h). */
#include "attempts.h"

#include <fcntl.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "jsonutil.h"
#include "protocol.h"

int si_mark_cmp(si_mark a, si_mark b)
{
    if (a.step != b.step)
        return a.step < b.step ? -1 : 1;
    if (a.bytes != b.bytes)
        return a.bytes < b.bytes ? -1 : 1;
    return 0;
}

void si_attempts_begin(si_attempts *st, bool found, const char *job, unsigned tries,
                       si_attempt_start *out)
{
    memset(out, 0, sizeof(*out));
    if (!found || strcmp(st->job, job) != 0) {
        memset(st, 0, sizeof(*st));
        snprintf(st->job, sizeof(st->job), "%s", job);
        out->new_job = true;
        tries = 0;
    } else if (st->open) {
        out->previous_died = true;
        if (si_mark_cmp(st->best, st->start) <= 0) {
            out->previous_counted = true;
            tries++;
        }
    }
    /* A failed attempt was counted when it ended (si_attempts_fail). */
    out->tries = tries;
    out->exhausted = tries >= SI_ATTEMPTS_MAX_TRIES;
    if (!out->exhausted) {
        st->open = true;
        st->start = st->best;
    }
}

void si_attempts_progress(si_attempts *st, si_mark mark)
{
    if (si_mark_cmp(mark, st->best) > 0)
        st->best = mark;
}

void si_attempts_step_done(si_attempts *st, uint32_t index)
{
    if (index + 1 > st->completed)
        st->completed = index + 1;
    si_attempts_progress(st, (si_mark){index + 1, 0});
}

unsigned si_attempts_fail(si_attempts *st, unsigned tries)
{
    st->open = false;
    return tries + 1;
}

static si_result get_mark(const cJSON *root, const char *key, si_mark *out, si_err *err)
{
    const cJSON *obj;
    si_result r = si_json_get_object(root, "", key, true, &obj, NULL, err);
    if (r != SI_OK)
        return r;
    int64_t step, bytes;
    if ((r = si_json_get_int(obj, key, "step", true, 0, UINT32_MAX, &step, NULL, err)) != SI_OK)
        return r;
    if ((r = si_json_get_int(obj, key, "bytes", true, 0, INT64_C(1) << 53, &bytes, NULL, err)) !=
        SI_OK)
        return r;
    out->step = (uint32_t)step;
    out->bytes = (uint64_t)bytes;
    return SI_OK;
}

static bool is_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

si_result si_attempts_parse(const char *json, size_t len, si_attempts *out, si_err *err)
{
    cJSON *root;
    si_result r = si_json_parse(json, len, SI_ATTEMPTS_MAX_BYTES, "recovery state", &root, err);
    if (r != SI_OK)
        return r;
    memset(out, 0, sizeof(*out));
    int64_t format, completed;
    const char *job;
    if ((r = si_json_get_int(root, "", "format", true, 1, 1, &format, NULL, err)) != SI_OK)
        goto out;
    if ((r = si_json_get_string(root, "", "job", true, &job, NULL, err)) != SI_OK)
        goto out;
    if (!is_lower_hex(job, SI_ATTEMPTS_JOB_LEN)) {
        r = si_err_set(err, SI_ERR_PARSE, "recovery state: job: expected 64 lowercase hex digits");
        goto out;
    }
    memcpy(out->job, job, SI_ATTEMPTS_JOB_LEN + 1);
    if ((r = si_json_get_bool(root, "", "open", true, &out->open, NULL, err)) != SI_OK)
        goto out;
    if ((r = si_json_get_bool(root, "", "touched", true, &out->touched, NULL, err)) != SI_OK)
        goto out;
    if ((r = si_json_get_int(root, "", "completed", true, 0, UINT32_MAX, &completed, NULL,
                             err)) != SI_OK)
        goto out;
    out->completed = (uint32_t)completed;
    if ((r = get_mark(root, "start", &out->start, err)) != SI_OK)
        goto out;
    if ((r = get_mark(root, "best", &out->best, err)) != SI_OK)
        goto out;
    if (si_mark_cmp(out->start, out->best) > 0) {
        r = si_err_set(err, SI_ERR_PARSE, "recovery state: start: beyond best");
        goto out;
    }
    if (out->completed > out->best.step) {
        r = si_err_set(err, SI_ERR_PARSE, "recovery state: completed: beyond best.step");
        goto out;
    }
out:
    cJSON_Delete(root);
    if (r != SI_OK)
        memset(out, 0, sizeof(*out));
    return r;
}

static cJSON *mark_json(si_mark m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "step", (double)m.step) ||
        !cJSON_AddNumberToObject(o, "bytes", (double)m.bytes)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

si_result si_attempts_format(const si_attempts *st, char **out, si_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *start = mark_json(st->start), *best = mark_json(st->best);
    si_result r = SI_ERR_NOMEM;
    if (!root || !start || !best)
        goto fail;
    cJSON_AddItemToObject(root, "start", start);
    start = NULL;
    cJSON_AddItemToObject(root, "best", best);
    best = NULL;
    if (!cJSON_AddNumberToObject(root, "format", 1) ||
        !cJSON_AddStringToObject(root, "job", st->job) ||
        !cJSON_AddBoolToObject(root, "open", st->open) ||
        !cJSON_AddBoolToObject(root, "touched", st->touched) ||
        !cJSON_AddNumberToObject(root, "completed", (double)st->completed))
        goto fail;
    r = si_json_print_sorted(root, out, err);
    cJSON_Delete(root);
    return r;
fail:
    cJSON_Delete(root);
    cJSON_Delete(start);
    cJSON_Delete(best);
    return si_err_set(err, r, "recovery state: out of memory");
}

si_result si_attempts_load(const char *path, si_attempts *out, bool *found, si_err *err)
{
    char *buf;
    size_t len;
    *found = false;
    /* Never blocks on a FIFO, never follows a symlink (issue 10 finding 6). */
    si_result r = si_protocol_read_staged(AT_FDCWD, path, SI_ATTEMPTS_MAX_BYTES, &buf, &len, err);
    if (r == SI_ERR_MISSING_FILE && access(path, F_OK) < 0 && errno == ENOENT)
        return SI_OK;
    if (r != SI_OK)
        return r;
    r = si_attempts_parse(buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        return si_err_prefix(err, "%s", path);
    *found = true;
    return SI_OK;
}

si_result si_attempts_save(const char *path, const si_attempts *st, si_err *err)
{
    char *json;
    si_result r = si_attempts_format(st, &json, err);
    if (r != SI_OK)
        return r;
    int rc = si_write_file_atomic(path, json, strlen(json), 0644);
    free(json);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    return SI_OK;
}
