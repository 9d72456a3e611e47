/* jsonutil.c - typed getters over cJSON and the canonical printer. */
#include "jsonutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

/* Nesting depth check before handing bytes to cJSON (which recurses). */
static int max_depth(const char *buf, size_t len)
{
    int depth = 0, worst = 0;
    int in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > worst)
                worst = depth;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return worst;
}

si_result si_json_parse(const char *buf, size_t len, size_t max, const char *what, cJSON **out,
                        si_err *err)
{
    *out = NULL;
    if (len > max)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: %zu bytes exceeds the limit of %zu", what,
                          len, max);
    if (max_depth(buf, len) > JSON_MAX_DEPTH)
        return si_err_set(err, SI_ERR_PARSE, "%s: nested deeper than %d levels", what,
                          JSON_MAX_DEPTH);
    if (memchr(buf, '\0', len))
        return si_err_set(err, SI_ERR_PARSE, "%s: contains a NUL byte", what);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        return si_err_set(err, SI_ERR_PARSE, "%s: invalid JSON near byte %zu", what, off);
    }
    /* Only whitespace may follow the value. */
    if (end) {
        for (const char *p = end; p < buf + len; p++) {
            if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
                cJSON_Delete(root);
                return si_err_set(err, SI_ERR_PARSE, "%s: trailing data at byte %zu", what,
                                  (size_t)(p - buf));
            }
        }
    }
    *out = root;
    return SI_OK;
}

si_result si_json_parse_doc(const si_json_doc_type *t, const char *json, size_t len, void **out,
                            si_err *err)
{
    *out = NULL;
    cJSON *root = NULL;
    si_result r = si_json_parse(json, len, t->max_bytes, t->name, &root, err);
    if (r != SI_OK)
        return r;
    void *doc = calloc(1, t->size);
    if (!doc) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", t->name);
    }
    r = t->fill(root, doc, err);
    cJSON_Delete(root);
    if (r != SI_OK) {
        t->release(doc);
        return r;
    }
    *out = doc;
    return SI_OK;
}

si_result si_json_load_doc(const si_json_doc_type *t, const char *path, void **out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    si_result r = si_read_file_checked(path, t->max_bytes, &buf, &len, err);
    if (r != SI_OK)
        return r;
    r = si_json_parse_doc(t, buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

static const char *sep(const char *ctx)
{
    return (ctx && ctx[0]) ? "." : "";
}

static si_result lookup(const cJSON *obj, const char *ctx, const char *key, bool required,
                        const cJSON **item, bool *present, si_err *err)
{
    if (present)
        *present = false;
    *item = NULL;
    if (!cJSON_IsObject(obj))
        return si_err_set(err, SI_ERR_PARSE, "%s: expected object", ctx && ctx[0] ? ctx : "(root)");
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required)
            return si_err_set(err, SI_ERR_PARSE, "%s%s%s: missing mandatory field", ctx ? ctx : "",
                              sep(ctx), key);
        return SI_OK;
    }
    *item = it;
    if (present)
        *present = true;
    return SI_OK;
}

static si_result wrong_type(si_err *err, const char *ctx, const char *key, const char *type)
{
    return si_err_set(err, SI_ERR_PARSE, "%s%s%s: expected %s", ctx ? ctx : "", sep(ctx), key, type);
}

si_result si_json_get_string(const cJSON *obj, const char *ctx, const char *key, bool required,
                             const char **out, bool *present, si_err *err)
{
    const cJSON *it;
    si_result r = lookup(obj, ctx, key, required, &it, present, err);
    if (r != SI_OK || !it)
        return r;
    if (!cJSON_IsString(it) || !it->valuestring)
        return wrong_type(err, ctx, key, "string");
    *out = it->valuestring;
    return SI_OK;
}

si_result si_json_get_int(const cJSON *obj, const char *ctx, const char *key, bool required,
                          int64_t min, int64_t max, int64_t *out, bool *present, si_err *err)
{
    const cJSON *it;
    si_result r = lookup(obj, ctx, key, required, &it, present, err);
    if (r != SI_OK || !it)
        return r;
    if (!cJSON_IsNumber(it))
        return wrong_type(err, ctx, key, "integer");
    double d = it->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > JSON_MAX_SAFE_INT)
        return wrong_type(err, ctx, key, "integer");
    int64_t v = (int64_t)d;
    if (v < min || v > max)
        return si_err_set(err, SI_ERR_PARSE, "%s%s%s: %" PRId64 " out of range [%" PRId64
                          ", %" PRId64 "]", ctx ? ctx : "", sep(ctx), key, v, min, max);
    *out = v;
    return SI_OK;
}

si_result si_json_get_bool(const cJSON *obj, const char *ctx, const char *key, bool required,
                           bool *out, bool *present, si_err *err)
{
    const cJSON *it;
    si_result r = lookup(obj, ctx, key, required, &it, present, err);
    if (r != SI_OK || !it)
        return r;
    if (!cJSON_IsBool(it))
        return wrong_type(err, ctx, key, "boolean");
    *out = cJSON_IsTrue(it);
    return SI_OK;
}

si_result si_json_get_array(const cJSON *obj, const char *ctx, const char *key, bool required,
                            const cJSON **out, bool *present, si_err *err)
{
    const cJSON *it;
    si_result r = lookup(obj, ctx, key, required, &it, present, err);
    if (r != SI_OK || !it)
        return r;
    if (!cJSON_IsArray(it))
        return wrong_type(err, ctx, key, "array");
    *out = it;
    return SI_OK;
}

si_result si_json_get_object(const cJSON *obj, const char *ctx, const char *key, bool required,
                             const cJSON **out, bool *present, si_err *err)
{
    const cJSON *it;
    si_result r = lookup(obj, ctx, key, required, &it, present, err);
    if (r != SI_OK || !it)
        return r;
    if (!cJSON_IsObject(it))
        return wrong_type(err, ctx, key, "object");
    *out = it;
    return SI_OK;
}

si_result si_strdup(const char *s, char **out, si_err *err)
{
    *out = strdup(s ? s : "");
    if (!*out)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    return SI_OK;
}

/* ---- canonical printer ---- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t ncap = sb->cap ? sb->cap : 256;
        while (sb->len + n + 1 > ncap)
            ncap *= 2;
        char *np = realloc(sb->p, ncap);
        if (!np) {
            sb->failed = 1;
            return;
        }
        sb->p = np;
        sb->cap = ncap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s)
{
    sb_put(sb, s, strlen(s));
}

static void sb_indent(strbuf *sb, int level)
{
    for (int i = 0; i < level; i++)
        sb_put(sb, "    ", 4);
}

static void sb_string(strbuf *sb, const char *s)
{
    sb_put(sb, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(sb, "\\\"", 2); break;
        case '\\': sb_put(sb, "\\\\", 2); break;
        case '\n': sb_put(sb, "\\n", 2); break;
        case '\r': sb_put(sb, "\\r", 2); break;
        case '\t': sb_put(sb, "\\t", 2); break;
        case '\b': sb_put(sb, "\\b", 2); break;
        case '\f': sb_put(sb, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                sb_puts(sb, esc);
            } else {
                sb_put(sb, (const char *)p, 1);
            }
        }
    }
    sb_put(sb, "\"", 1);
}

static int cmp_keys(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

static void print_item(strbuf *sb, const cJSON *it, int level)
{
    char num[64];
    if (cJSON_IsNull(it)) {
        sb_puts(sb, "null");
    } else if (cJSON_IsTrue(it)) {
        sb_puts(sb, "true");
    } else if (cJSON_IsFalse(it)) {
        sb_puts(sb, "false");
    } else if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) <= JSON_MAX_SAFE_INT)
            snprintf(num, sizeof(num), "%" PRId64, (int64_t)d);
        else if (isfinite(d))
            snprintf(num, sizeof(num), "%.17g", d);
        else
            snprintf(num, sizeof(num), "null");
        sb_puts(sb, num);
    } else if (cJSON_IsString(it)) {
        sb_string(sb, it->valuestring ? it->valuestring : "");
    } else if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
        int is_obj = cJSON_IsObject(it);
        size_t n = 0;
        for (const cJSON *c = it->child; c; c = c->next)
            n++;
        if (n == 0) {
            sb_puts(sb, is_obj ? "{}" : "[]");
            return;
        }
        const cJSON **kids = malloc(n * sizeof(*kids));
        if (!kids) {
            sb->failed = 1;
            return;
        }
        size_t i = 0;
        for (const cJSON *c = it->child; c; c = c->next)
            kids[i++] = c;
        if (is_obj)
            qsort(kids, n, sizeof(*kids), cmp_keys);
        sb_puts(sb, is_obj ? "{\n" : "[\n");
        for (i = 0; i < n; i++) {
            sb_indent(sb, level + 1);
            if (is_obj) {
                sb_string(sb, kids[i]->string ? kids[i]->string : "");
                sb_puts(sb, ": ");
            }
            print_item(sb, kids[i], level + 1);
            sb_puts(sb, i + 1 < n ? ",\n" : "\n");
        }
        sb_indent(sb, level);
        sb_puts(sb, is_obj ? "}" : "]");
        free(kids);
    } else {
        sb_puts(sb, "null");
    }
}

si_result si_json_print_sorted(const cJSON *item, char **out, si_err *err)
{
    strbuf sb = {0};
    print_item(&sb, item, 0);
    sb_puts(&sb, "\n");
    if (sb.failed) {
        free(sb.p);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory printing JSON");
    }
    *out = sb.p;
    return SI_OK;
}
