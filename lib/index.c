/* index.c - parse, check and write a device's index.json (docs/formats.md).
 *
 * Field names and meanings are system-image's. The document is untrusted
 * until its signature verified, and even then only trusted to be what the
 * server meant: every field is type-checked and bounded, and every error
 * names the field ("index.json: images[3].files[0].size: expected integer").
 *
 * Accepted real-world variants: the old `"descriptions": {"description": ...}`
 * object (its members become descriptions), `description-xx[_CC]` keys, and
 * checksums that are shorter than 64 hex digits (system-image's own test data
 * uses "" and "abc"): they parse, and simply never match a file's sha256. */
#include "index.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "jsonutil.h"

#define DOC "index.json"
#define MAX_STRING 4096              /* path, signature, descriptions, ... */
#define MAX_VERSION (INT64_C(1) << 53)

static const char *const wday_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* ------------------------------------------------------------------ time */

static int parse_fixed_uint(const char **p, int digits, int *out)
{
    int v = 0;
    for (int i = 0; i < digits; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += digits;
    *out = v;
    return 0;
}

static int match_name(const char **p, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strncmp(*p, names[i], 3) == 0) {
            *p += 3;
            return i;
        }
    }
    return -1;
}

static int expect_char(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int days_in_month(int year, int month /* 0..11 */)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return d[month] + (month == 1 && leap ? 1 : 0);
}

si_result si_index_parse_time(const char *s, int64_t *epoch, si_err *err)
{
    const char *p = s;
    int mday, hour, min, sec, year;
    /* "%a %b %d %H:%M:%S UTC %Y", C locale, like system-image's strptime. */
    if (!s || strnlen(s, 64) >= 64)
        goto bad;
    if (match_name(&p, wday_names, 7) < 0 || expect_char(&p, ' '))
        goto bad;
    int mon = match_name(&p, month_names, 12);
    if (mon < 0 || expect_char(&p, ' '))
        goto bad;
    if (parse_fixed_uint(&p, 2, &mday) || expect_char(&p, ' ') ||
        parse_fixed_uint(&p, 2, &hour) || expect_char(&p, ':') ||
        parse_fixed_uint(&p, 2, &min) || expect_char(&p, ':') ||
        parse_fixed_uint(&p, 2, &sec) || strncmp(p, " UTC ", 5) != 0)
        goto bad;
    p += 5;
    if (parse_fixed_uint(&p, 4, &year) || *p != '\0')
        goto bad;
    if (year < 1970 || mday < 1 || mday > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 60)
        goto bad;
    struct tm tm = {
        .tm_year = year - 1900, .tm_mon = mon, .tm_mday = mday,
        .tm_hour = hour, .tm_min = min, .tm_sec = sec,
    };
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        goto bad;
    *epoch = (int64_t)t;
    return SI_OK;
bad:
    return si_err_set(err, SI_ERR_PARSE,
                      "expected a time like \"Mon Apr 29 18:45:27 UTC 2013\", got \"%.64s\"",
                      s ? s : "(null)");
}

void si_index_format_time(int64_t epoch, char out[64])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    if (epoch < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, 64, "%s %s %02d %02d:%02d:%02d UTC %04d", wday_names[tm.tm_wday],
             month_names[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             tm.tm_year + 1900);
}

/* ------------------------------------------------------------------ parse */

/* Prefix the document name on errors from the getters. */
static si_result doc_err(si_err *err, si_result r)
{
    if (err)
        si_err_prefix(err, DOC);
    return r;
}

static si_result get_str(const cJSON *obj, const char *ctx, const char *key, bool required,
                         char **out, bool *present, si_err *err)
{
    const char *s = NULL;
    bool have = false;
    si_result r = si_json_get_string(obj, ctx, key, required, &s, &have, err);
    if (r != SI_OK)
        return doc_err(err, r);
    if (present)
        *present = have;
    if (!have)
        return SI_OK;
    if (strlen(s) > MAX_STRING)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s%s%s: longer than %d bytes", ctx,
                          *ctx ? "." : "", key, MAX_STRING);
    return si_strdup(s, out, err);
}

static si_result parse_checksum(const cJSON *f, const char *ctx, char out[65], si_err *err)
{
    const char *s = NULL;
    si_result r = si_json_get_string(f, ctx, "checksum", true, &s, NULL, err);
    if (r != SI_OK)
        return doc_err(err, r);
    size_t n = strlen(s);
    if (n > 64)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.checksum: longer than 64 hex digits",
                          ctx);
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return si_err_set(err, SI_ERR_PARSE,
                              DOC ": %s.checksum: expected sha256 hex digits", ctx);
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[n] = '\0';
    return SI_OK;
}

/* Optional "manifest": {"checksum": 64 hex digits, "size": N} (lib/manifest.h). */
static si_result parse_manifest(const cJSON *f, const char *ctx, si_index_file *out, si_err *err)
{
    const cJSON *m = NULL;
    bool present = false;
    si_result r = si_json_get_object(f, ctx, "manifest", false, &m, &present, err);
    if (r != SI_OK)
        return doc_err(err, r);
    if (!present)
        return SI_OK;
    char mctx[160];
    snprintf(mctx, sizeof(mctx), "%s.manifest", ctx);
    if ((r = parse_checksum(m, mctx, out->manifest_checksum, err)) != SI_OK)
        return r;
    if (strlen(out->manifest_checksum) != 64)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.checksum: expected 64 hex digits", mctx);
    int64_t v;
    if ((r = si_json_get_int(m, mctx, "size", true, 1, MAX_VERSION, &v, NULL, err)) != SI_OK)
        return doc_err(err, r);
    out->manifest_size = (uint64_t)v;
    out->has_manifest = true;
    return SI_OK;
}

static si_result parse_file(const cJSON *f, const char *ctx, si_index_file *out, si_err *err)
{
    si_result r;
    int64_t v;
    if (!cJSON_IsObject(f))
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s: expected object", ctx);
    if ((r = get_str(f, ctx, "path", true, &out->path, NULL, err)) != SI_OK)
        return r;
    if ((r = get_str(f, ctx, "signature", true, &out->signature, NULL, err)) != SI_OK)
        return r;
    if ((r = parse_checksum(f, ctx, out->checksum, err)) != SI_OK)
        return r;
    if ((r = si_json_get_int(f, ctx, "size", true, 0, MAX_VERSION, &v, NULL, err)) != SI_OK)
        return doc_err(err, r);
    out->size = (uint64_t)v;
    if ((r = si_json_get_int(f, ctx, "order", true, -MAX_VERSION, MAX_VERSION, &out->order,
                             NULL, err)) != SI_OK)
        return doc_err(err, r);
    return parse_manifest(f, ctx, out, err);
}

static bool is_description_key(const char *k)
{
    if (strcmp(k, "description") == 0)
        return true;
    return strncmp(k, "description-", 12) == 0 && k[12] != '\0';
}

static bool has_description(const si_image *img, const char *key)
{
    for (size_t i = 0; i < img->ndescriptions; i++)
        if (strcmp(img->descriptions[i].key, key) == 0)
            return true;
    return false;
}

static si_result add_description(si_image *img, const char *ctx, const cJSON *item,
                                 si_err *err)
{
    const char *key = item->string;
    if (!cJSON_IsString(item) || !item->valuestring)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.%s: expected string", ctx, key);
    if (strlen(key) > 64)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.%.64s...: key longer than 64 bytes",
                          ctx, key);
    if (strlen(item->valuestring) > MAX_STRING)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.%s: longer than %d bytes", ctx, key,
                          MAX_STRING);
    if (has_description(img, key))
        return SI_OK; /* the first wins: top-level keys, then "descriptions" */
    si_description *d =
        realloc(img->descriptions, (img->ndescriptions + 1) * sizeof(*img->descriptions));
    if (!d)
        return si_err_set(err, SI_ERR_NOMEM, DOC ": %s: out of memory", ctx);
    img->descriptions = d;
    si_description *nd = &d[img->ndescriptions];
    nd->key = strdup(key);
    nd->text = strdup(item->valuestring);
    if (!nd->key || !nd->text) {
        free(nd->key);
        free(nd->text);
        return si_err_set(err, SI_ERR_NOMEM, DOC ": %s: out of memory", ctx);
    }
    img->ndescriptions++;
    return SI_OK;
}

static si_result parse_descriptions(const cJSON *im, const char *ctx, si_image *img, si_err *err)
{
    si_result r;
    const cJSON *item;
    cJSON_ArrayForEach(item, im) {
        if (item->string && is_description_key(item->string))
            if ((r = add_description(img, ctx, item, err)) != SI_OK)
                return r;
    }
    /* Old real indexes: "descriptions": {"description": "20130726.1"}. */
    const cJSON *old = NULL;
    bool have = false;
    if ((r = si_json_get_object(im, ctx, "descriptions", false, &old, &have, err)) != SI_OK)
        return doc_err(err, r);
    if (have) {
        char sub[96];
        snprintf(sub, sizeof(sub), "%s.descriptions", ctx);
        cJSON_ArrayForEach(item, old) {
            if (!item->string || !is_description_key(item->string))
                continue;
            if ((r = add_description(img, sub, item, err)) != SI_OK)
                return r;
        }
    }
    return SI_OK;
}

static si_result parse_image(const cJSON *im, size_t n, si_image *img, si_err *err)
{
    char ctx[48];
    snprintf(ctx, sizeof(ctx), "images[%zu]", n);
    si_result r;
    bool have;
    if (!cJSON_IsObject(im))
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s: expected object", ctx);

    img->phased_percentage = 100;
    const char *type = NULL;
    if ((r = si_json_get_string(im, ctx, "type", true, &type, NULL, err)) != SI_OK)
        return doc_err(err, r);
    if (strcmp(type, "full") == 0)
        img->type = SI_IMAGE_FULL;
    else if (strcmp(type, "delta") == 0)
        img->type = SI_IMAGE_DELTA;
    else
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.type: expected \"full\" or \"delta\"",
                          ctx);
    if ((r = si_json_get_int(im, ctx, "version", true, 1, MAX_VERSION, &img->version, NULL,
                             err)) != SI_OK)
        return doc_err(err, r);
    if ((r = si_json_get_int(im, ctx, "base", img->type == SI_IMAGE_DELTA, 0, MAX_VERSION,
                             &img->base, &have, err)) != SI_OK)
        return doc_err(err, r);
    img->has_base = have;
    /* A path only ever climbs: a delta must lead to a newer build. */
    if (img->type == SI_IMAGE_DELTA && img->base >= img->version)
        return si_err_set(err, SI_ERR_PARSE,
                          DOC ": %s.base: %lld is not lower than version %lld", ctx,
                          (long long)img->base, (long long)img->version);
    if ((r = si_json_get_bool(im, ctx, "bootme", false, &img->bootme, NULL, err)) != SI_OK)
        return doc_err(err, r);
    if ((r = si_json_get_int(im, ctx, "minversion", false, 0, MAX_VERSION, &img->minversion,
                             NULL, err)) != SI_OK)
        return doc_err(err, r);
    int64_t pct = 100;
    if ((r = si_json_get_int(im, ctx, "phased-percentage", false, 0, 100, &pct, NULL, err)) !=
        SI_OK)
        return doc_err(err, r);
    img->phased_percentage = (int)pct;
    if ((r = get_str(im, ctx, "version_detail", false, &img->version_detail, NULL, err)) !=
        SI_OK)
        return r;
    if ((r = parse_descriptions(im, ctx, img, err)) != SI_OK)
        return r;

    const cJSON *files = NULL;
    if ((r = si_json_get_array(im, ctx, "files", true, &files, NULL, err)) != SI_OK)
        return doc_err(err, r);
    size_t nf = (size_t)cJSON_GetArraySize(files);
    if (nf) {
        img->files = calloc(nf, sizeof(*img->files));
        if (!img->files)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": %s.files: out of memory", ctx);
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        char fctx[80];
        snprintf(fctx, sizeof(fctx), "%s.files[%zu]", ctx, img->nfiles);
        r = parse_file(f, fctx, &img->files[img->nfiles], err);
        img->nfiles++; /* partially filled entries are freed too */
        if (r != SI_OK)
            return r;
    }
    return SI_OK;
}

static si_result parse_root(const cJSON *root, si_index *idx, si_err *err)
{
    si_result r;
    bool have = false;
    if (!cJSON_IsObject(root))
        return si_err_set(err, SI_ERR_PARSE, DOC ": expected a JSON object");

    idx->generated_at_epoch = -1;
    idx->expires_epoch = -1;
    const cJSON *global = NULL;
    if ((r = si_json_get_object(root, "", "global", false, &global, &have, err)) != SI_OK)
        return doc_err(err, r);
    if (have) {
        bool have_ts = false;
        if ((r = get_str(global, "global", "generated_at", false, &idx->generated_at, &have_ts,
                         err)) != SI_OK)
            return r;
        if (have_ts && (r = si_index_parse_time(idx->generated_at, &idx->generated_at_epoch,
                                                err)) != SI_OK) {
            if (err)
                si_err_prefix(err, DOC ": global.generated_at");
            return r;
        }
        bool have_exp = false;
        if ((r = get_str(global, "global", "expires", false, &idx->expires, &have_exp, err)) !=
            SI_OK)
            return r;
        if (have_exp &&
            (r = si_index_parse_time(idx->expires, &idx->expires_epoch, err)) != SI_OK) {
            if (err)
                si_err_prefix(err, DOC ": global.expires");
            return r;
        }
    }

    const cJSON *images = NULL;
    if ((r = si_json_get_array(root, "", "images", true, &images, NULL, err)) != SI_OK)
        return doc_err(err, r);
    size_t n = (size_t)cJSON_GetArraySize(images);
    if (n) {
        idx->images = calloc(n, sizeof(*idx->images));
        if (!idx->images)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": images: out of memory");
    }
    const cJSON *im;
    cJSON_ArrayForEach(im, images) {
        r = parse_image(im, idx->nimages, &idx->images[idx->nimages], err);
        idx->nimages++;
        if (r != SI_OK)
            return r;
    }
    return SI_OK;
}

SI_JSON_DOC_FUNCS(si_index, DOC, SI_INDEX_MAX_BYTES, parse_root, si_index_free, si_index_parse, si_index_load)

void si_image_clear(si_image *img)
{
    for (size_t f = 0; f < img->nfiles; f++) {
        free(img->files[f].path);
        free(img->files[f].signature);
    }
    free(img->files);
    for (size_t d = 0; d < img->ndescriptions; d++) {
        free(img->descriptions[d].key);
        free(img->descriptions[d].text);
    }
    free(img->descriptions);
    free(img->version_detail);
    memset(img, 0, sizeof(*img));
}

void si_index_free(si_index *idx)
{
    if (!idx)
        return;
    for (size_t i = 0; i < idx->nimages; i++)
        si_image_clear(&idx->images[i]);
    free(idx->images);
    free(idx->generated_at);
    free(idx->expires);
    free(idx);
}

si_result si_image_add_file(si_image *img, const si_index_file *f, si_err *err)
{
    si_index_file *n = realloc(img->files, (img->nfiles + 1) * sizeof(*n));
    if (!n)
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    img->files = n;
    si_index_file *d = &n[img->nfiles];
    *d = *f;
    d->path = strdup(f->path);
    d->signature = strdup(f->signature);
    if (!d->path || !d->signature) {
        free(d->path);
        free(d->signature);
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    }
    img->nfiles++;
    return SI_OK;
}

si_result si_image_set_description(si_image *img, const char *text, si_err *err)
{
    for (size_t d = 0; d < img->ndescriptions; d++) {
        if (strcmp(img->descriptions[d].key, "description") != 0)
            continue;
        char *t = strdup(text);
        if (!t)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
        free(img->descriptions[d].text);
        img->descriptions[d].text = t;
        return SI_OK;
    }
    si_description *n =
        realloc(img->descriptions, (img->ndescriptions + 1) * sizeof(*img->descriptions));
    if (!n)
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    img->descriptions = n;
    n[img->ndescriptions].key = strdup("description");
    n[img->ndescriptions].text = strdup(text);
    if (!n[img->ndescriptions].key || !n[img->ndescriptions].text) {
        free(n[img->ndescriptions].key);
        free(n[img->ndescriptions].text);
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    }
    img->ndescriptions++;
    return SI_OK;
}

/* ------------------------------------------------------------------ format */

static bool add_num(cJSON *obj, const char *key, double v)
{
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static bool add_str(cJSON *obj, const char *key, const char *v)
{
    return cJSON_AddStringToObject(obj, key, v ? v : "") != NULL;
}

static cJSON *format_image(const si_image *img)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = add_str(o, "type", img->type == SI_IMAGE_FULL ? "full" : "delta") &&
              add_num(o, "version", (double)img->version);
    if (ok && img->has_base)
        ok = add_num(o, "base", (double)img->base);
    if (ok && img->bootme)
        ok = cJSON_AddTrueToObject(o, "bootme") != NULL;
    if (ok && img->minversion != 0)
        ok = add_num(o, "minversion", (double)img->minversion);
    if (ok && img->phased_percentage != 100)
        ok = add_num(o, "phased-percentage", img->phased_percentage);
    if (ok && img->version_detail)
        ok = add_str(o, "version_detail", img->version_detail);
    for (size_t d = 0; ok && d < img->ndescriptions; d++)
        ok = add_str(o, img->descriptions[d].key, img->descriptions[d].text);
    cJSON *files = ok ? cJSON_AddArrayToObject(o, "files") : NULL;
    ok = ok && files;
    for (size_t i = 0; ok && i < img->nfiles; i++) {
        const si_index_file *f = &img->files[i];
        cJSON *fo = cJSON_CreateObject();
        if (!fo || !cJSON_AddItemToArray(files, fo)) {
            cJSON_Delete(fo);
            ok = false;
            break;
        }
        ok = add_str(fo, "path", f->path) && add_str(fo, "signature", f->signature) &&
             add_str(fo, "checksum", f->checksum) && add_num(fo, "size", (double)f->size) &&
             add_num(fo, "order", (double)f->order);
        if (ok && f->has_manifest) {
            cJSON *mo = cJSON_AddObjectToObject(fo, "manifest");
            ok = mo && add_str(mo, "checksum", f->manifest_checksum) &&
                 add_num(mo, "size", (double)f->manifest_size);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* global.<key>: the stored text, else the epoch formatted, else nothing. */
static bool add_time(cJSON *root, const char *key, const char *text, int64_t epoch)
{
    char ts[64];
    if (!text && epoch < 0)
        return true;
    if (!text) {
        si_index_format_time(epoch, ts);
        text = ts;
    }
    cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "global");
    if (!g)
        g = cJSON_AddObjectToObject(root, "global");
    return g && add_str(g, key, text);
}

si_result si_index_format(const si_index *idx, char **json_out, si_err *err)
{
    *json_out = NULL;
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    ok = ok && add_time(root, "generated_at", idx->generated_at, idx->generated_at_epoch) &&
         add_time(root, "expires", idx->expires, idx->expires_epoch);
    cJSON *images = ok ? cJSON_AddArrayToObject(root, "images") : NULL;
    ok = ok && images;
    for (size_t i = 0; ok && i < idx->nimages; i++) {
        cJSON *o = format_image(&idx->images[i]);
        if (!o || !cJSON_AddItemToArray(images, o)) {
            cJSON_Delete(o);
            ok = false;
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory while formatting");
    }
    si_result r = si_json_print_sorted(root, json_out, err);
    cJSON_Delete(root);
    return r;
}

/* ------------------------------------------------------------------ freshness */

int64_t si_index_clock(int64_t wall_clock, int64_t build_time, int64_t newest_trusted)
{
    int64_t t = wall_clock;
    if (build_time > t)
        t = build_time;
    if (newest_trusted > t)
        t = newest_trusted;
    return t;
}

si_result si_index_check_fresh(const si_index *idx, int64_t now, si_err *err)
{
    char a[64], b[64];
    if (idx->expires_epoch < 0)
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          DOC ": global.expires missing: a replayed old index could not be told "
                              "from a fresh one");
    if (now >= idx->expires_epoch) {
        si_index_format_time(idx->expires_epoch, a);
        si_index_format_time(now, b);
        return si_err_set(err, SI_ERR_STALE_INDEX,
                          DOC ": expired on %s (now %s): the server's index is stale or "
                              "replayed",
                          a, b);
    }
    return SI_OK;
}

/* ------------------------------------------------------------------ queries */

const char *si_image_description(const si_image *img, const char *locale)
{
    const char *exact = NULL, *lang = NULL, *plain = NULL;
    size_t langlen = 0;
    if (locale) {
        /* "de_DE.UTF-8@euro" -> "de_DE" and "de" */
        langlen = strcspn(locale, "_.@");
    }
    size_t fulllen = locale ? strcspn(locale, ".@") : 0;
    for (size_t i = 0; i < img->ndescriptions; i++) {
        const char *k = img->descriptions[i].key;
        if (strcmp(k, "description") == 0) {
            if (!plain)
                plain = img->descriptions[i].text;
            continue;
        }
        const char *suffix = k + 12; /* after "description-" */
        if (!locale || fulllen == 0)
            continue;
        if (!exact && strlen(suffix) == fulllen && strncmp(suffix, locale, fulllen) == 0)
            exact = img->descriptions[i].text;
        else if (!lang && strlen(suffix) == langlen && strncmp(suffix, locale, langlen) == 0)
            lang = img->descriptions[i].text;
    }
    return exact ? exact : lang ? lang : plain;
}

static int cmp_order(const void *a, const void *b)
{
    const si_index_file *x = *(const si_index_file *const *)a;
    const si_index_file *y = *(const si_index_file *const *)b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    /* Same order: keep document order (the entries live in one array). */
    return x < y ? -1 : x > y ? 1 : 0;
}

si_result si_image_sorted_files(const si_image *img, const si_index_file ***out, si_err *err)
{
    *out = NULL;
    const si_index_file **v = calloc(img->nfiles ? img->nfiles : 1, sizeof(*v));
    if (!v)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory sorting files");
    for (size_t i = 0; i < img->nfiles; i++)
        v[i] = &img->files[i];
    if (img->nfiles > 1)
        qsort(v, img->nfiles, sizeof(*v), cmp_order);
    *out = v;
    return SI_OK;
}
