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

bool si_point_same(si_point a, si_point b)
{
    return a.step == b.step && a.verify == b.verify &&
           a.bytes / SI_ATTEMPTS_WINDOW == b.bytes / SI_ATTEMPTS_WINDOW;
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
    } else if (st->stopped) {
        out->tries = tries;
        out->stopped = true;
        return;
    } else if (st->open) {
        /* The previous attempt died where it last recorded itself. */
        out->previous_died = true;
        out->died_at = st->at;
        if (st->deaths > 0 && si_point_same(st->at, st->death)) {
            st->deaths++;
        } else {
            st->death = st->at;
            st->deaths = 1;
        }
        out->deaths = st->deaths;
    }
    /* A failed attempt was counted when it ended (si_attempts_fail). */
    out->tries = tries;
    out->exhausted = tries >= SI_ATTEMPTS_MAX_TRIES || st->deaths >= SI_ATTEMPTS_MAX_SAME_DEATHS;
    if (!out->exhausted) {
        st->open = true;
        st->attempt++;
        st->at = (si_point){st->completed, true, 0};
    }
}

bool si_attempts_at(si_attempts *st, si_point p)
{
    bool moved = !si_point_same(p, st->at);
    st->at = p;
    if (!p.verify && si_mark_cmp((si_mark){p.step, p.bytes}, st->best) > 0)
        st->best = (si_mark){p.step, p.bytes};
    return moved;
}

void si_attempts_step_done(si_attempts *st, uint32_t index)
{
    if (index + 1 > st->completed)
        st->completed = index + 1;
    si_attempts_at(st, (si_point){index + 1, false, 0});
}

unsigned si_attempts_fail(si_attempts *st, unsigned tries)
{
    st->open = false;
    st->deaths = 0; /* an attempt that ended breaks a chain of deaths */
    return tries + 1;
}

void si_attempts_stop(si_attempts *st, si_result code, const char *message)
{
    st->open = false;
    st->stopped = true;
    st->stop_result = (int32_t)code;
    if (message != st->stop_message) /* reporting a stop again */
        snprintf(st->stop_message, sizeof(st->stop_message), "%s", message ? message : "");
}

/* "step" and "bytes" of the object `key` (obj). */
static si_result get_step_bytes(const cJSON *obj, const char *key, si_mark *out, si_err *err)
{
    int64_t step, bytes;
    si_result r = si_json_get_int(obj, key, "step", true, 0, UINT32_MAX, &step, NULL, err);
    if (r != SI_OK)
        return r;
    if ((r = si_json_get_int(obj, key, "bytes", true, 0, INT64_C(1) << 53, &bytes, NULL, err)) !=
        SI_OK)
        return r;
    out->step = (uint32_t)step;
    out->bytes = (uint64_t)bytes;
    return SI_OK;
}

static si_result get_mark(const cJSON *root, const char *key, si_mark *out, si_err *err)
{
    const cJSON *obj;
    si_result r = si_json_get_object(root, "", key, true, &obj, NULL, err);
    if (r != SI_OK)
        return r;
    return get_step_bytes(obj, key, out, err);
}

static si_result get_point(const cJSON *root, const char *key, si_point *out, si_err *err)
{
    const cJSON *obj;
    bool present = false;
    si_result r = si_json_get_object(root, "", key, false, &obj, &present, err);
    if (r != SI_OK || !present)
        return r;
    si_mark m;
    if ((r = get_step_bytes(obj, key, &m, err)) != SI_OK ||
        (r = si_json_get_bool(obj, key, "verify", true, &out->verify, NULL, err)) != SI_OK)
        return r;
    out->step = m.step;
    out->bytes = m.bytes;
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
    if ((r = get_mark(root, "best", &out->best, err)) != SI_OK)
        goto out;
    int64_t n;
    bool present = false;
    if ((r = si_json_get_int(root, "", "attempt", false, 0, UINT32_MAX, &n, &present, err)) !=
        SI_OK)
        goto out;
    out->attempt = present ? (uint32_t)n : 0;
    if ((r = get_point(root, "at", &out->at, err)) != SI_OK ||
        (r = get_point(root, "death", &out->death, err)) != SI_OK)
        goto out;
    if ((r = si_json_get_int(root, "", "deaths", false, 0, 1000, &n, &present, err)) != SI_OK)
        goto out;
    out->deaths = present ? (uint32_t)n : 0;
    if ((r = si_json_get_bool(root, "", "stopped", false, &out->stopped, NULL, err)) != SI_OK)
        goto out;
    if (out->stopped) {
        const char *msg;
        if ((r = si_json_get_int(root, "", "stop_result", true, 0, 255, &n, NULL, err)) !=
            SI_OK)
            goto out;
        out->stop_result = (int32_t)n;
        if ((r = si_json_get_string(root, "", "stop_message", true, &msg, NULL, err)) != SI_OK)
            goto out;
        if (strlen(msg) >= sizeof(out->stop_message)) {
            r = si_err_set(err, SI_ERR_PARSE, "recovery state: stop_message: too long");
            goto out;
        }
        snprintf(out->stop_message, sizeof(out->stop_message), "%s", msg);
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

/* A point is a mark with "verify". */
static cJSON *point_json(si_point p)
{
    cJSON *o = mark_json((si_mark){p.step, p.bytes});
    if (o && !cJSON_AddBoolToObject(o, "verify", p.verify)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

si_result si_attempts_format(const si_attempts *st, char **out, si_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *best = mark_json(st->best), *at = point_json(st->at), *death = point_json(st->death);
    si_result r = SI_ERR_NOMEM;
    if (!root || !best || !at || !death)
        goto fail;
    cJSON_AddItemToObject(root, "best", best);
    best = NULL;
    cJSON_AddItemToObject(root, "at", at);
    at = NULL;
    cJSON_AddItemToObject(root, "death", death);
    death = NULL;
    if (!cJSON_AddNumberToObject(root, "format", 1) ||
        !cJSON_AddStringToObject(root, "job", st->job) ||
        !cJSON_AddBoolToObject(root, "open", st->open) ||
        !cJSON_AddBoolToObject(root, "touched", st->touched) ||
        !cJSON_AddNumberToObject(root, "completed", (double)st->completed) ||
        !cJSON_AddNumberToObject(root, "attempt", (double)st->attempt) ||
        !cJSON_AddNumberToObject(root, "deaths", (double)st->deaths) ||
        !cJSON_AddBoolToObject(root, "stopped", st->stopped))
        goto fail;
    if (st->stopped && (!cJSON_AddNumberToObject(root, "stop_result", st->stop_result) ||
                        !cJSON_AddStringToObject(root, "stop_message", st->stop_message)))
        goto fail;
    r = si_json_print_sorted(root, out, err);
    cJSON_Delete(root);
    return r;
fail:
    cJSON_Delete(root);
    cJSON_Delete(best);
    cJSON_Delete(at);
    cJSON_Delete(death);
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
