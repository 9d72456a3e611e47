/* channels.c - parse, check and write channels.json (docs/formats.md).
 *
 * Every channel is an object with a mandatory `devices` object; every device
 * has a mandatory `index` string and an optional `keyring` object whose
 * `path` and `signature` are mandatory. `alias`, `redirect` (strings) and
 * `hidden` (boolean) are optional. Unknown fields are ignored; errors name
 * the field ("channels.json: daily.devices.mako.index: expected string"). */
#include "channels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

#define DOC "channels.json"
#define MAX_NAME 255     /* channel and device names */
#define MAX_STRING 4096  /* paths */
#define MAX_CHANNELS 4096
#define MAX_DEVICES 4096

static si_result doc_err(si_err *err, si_result r)
{
    if (err)
        si_err_prefix(err, DOC);
    return r;
}

/* Names become parts of URLs, file names and seeds: no control characters. */
static si_result check_name(const char *name, const char *ctx, const char *what, si_err *err)
{
    size_t n = strlen(name);
    if (n == 0)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s%sempty %s name", ctx, *ctx ? ": " : "",
                          what);
    if (n > MAX_NAME)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s%s%s name longer than %d bytes", ctx,
                          *ctx ? ": " : "", what, MAX_NAME);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return si_err_set(err, SI_ERR_PARSE, DOC ": %s%s%s name has a control character",
                              ctx, *ctx ? ": " : "", what);
    return SI_OK;
}

static si_result get_str(const cJSON *obj, const char *ctx, const char *key, bool required,
                         char **out, si_err *err)
{
    const char *s = NULL;
    bool have = false;
    si_result r = si_json_get_string(obj, ctx, key, required, &s, &have, err);
    if (r != SI_OK)
        return doc_err(err, r);
    if (!have)
        return SI_OK;
    if (strlen(s) > MAX_STRING)
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s.%s: longer than %d bytes", ctx, key,
                          MAX_STRING);
    return si_strdup(s, out, err);
}

static si_result parse_device(const cJSON *d, const char *chname, si_channel_device *dev,
                              si_err *err)
{
    char ctx[2 * MAX_NAME + 32];
    si_result r;
    snprintf(ctx, sizeof(ctx), "%s.devices.%s", chname, d->string);
    if ((r = si_strdup(d->string, &dev->name, err)) != SI_OK)
        return r;
    if (!cJSON_IsObject(d))
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s: expected object", ctx);
    if ((r = get_str(d, ctx, "index", true, &dev->index, err)) != SI_OK)
        return r;
    const cJSON *kr = NULL;
    bool have = false;
    if ((r = si_json_get_object(d, ctx, "keyring", false, &kr, &have, err)) != SI_OK)
        return doc_err(err, r);
    if (have) {
        char kctx[sizeof(ctx) + 16];
        snprintf(kctx, sizeof(kctx), "%s.keyring", ctx);
        if ((r = get_str(kr, kctx, "path", true, &dev->keyring_path, err)) != SI_OK)
            return r;
        if ((r = get_str(kr, kctx, "signature", true, &dev->keyring_signature, err)) != SI_OK)
            return r;
    }
    return SI_OK;
}

static si_result parse_channel(const cJSON *c, si_channel *ch, si_err *err)
{
    const char *name = c->string;
    si_result r;
    if ((r = si_strdup(name, &ch->name, err)) != SI_OK)
        return r;
    if (!cJSON_IsObject(c))
        return si_err_set(err, SI_ERR_PARSE, DOC ": %s: expected object", name);
    if ((r = get_str(c, name, "alias", false, &ch->alias, err)) != SI_OK)
        return r;
    if (ch->alias && (r = check_name(ch->alias, name, "alias", err)) != SI_OK)
        return r;
    if ((r = get_str(c, name, "redirect", false, &ch->redirect, err)) != SI_OK)
        return r;
    if (ch->redirect && (r = check_name(ch->redirect, name, "redirect", err)) != SI_OK)
        return r;
    if ((r = si_json_get_bool(c, name, "hidden", false, &ch->hidden, NULL, err)) != SI_OK)
        return doc_err(err, r);
    const cJSON *devices = NULL;
    if ((r = si_json_get_object(c, name, "devices", true, &devices, NULL, err)) != SI_OK)
        return doc_err(err, r);
    size_t n = (size_t)cJSON_GetArraySize(devices);
    if (n > MAX_DEVICES)
        return si_err_set(err, SI_ERR_TOO_LARGE, DOC ": %s.devices: more than %d devices", name,
                          MAX_DEVICES);
    if (n) {
        ch->devices = calloc(n, sizeof(*ch->devices));
        if (!ch->devices)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": %s.devices: out of memory", name);
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, devices) {
        char ctx[MAX_NAME + 16];
        snprintf(ctx, sizeof(ctx), "%s.devices", name);
        if ((r = check_name(d->string, ctx, "device", err)) != SI_OK)
            return r;
        if (si_channel_find_device(ch, d->string))
            return si_err_set(err, SI_ERR_PARSE, DOC ": %s.%s: duplicate device", ctx,
                              d->string);
        r = parse_device(d, name, &ch->devices[ch->ndevices], err);
        ch->ndevices++;
        if (r != SI_OK)
            return r;
    }
    return SI_OK;
}

static si_result parse_root(const cJSON *root, si_channels *chs, si_err *err)
{
    if (!cJSON_IsObject(root))
        return si_err_set(err, SI_ERR_PARSE, DOC ": expected a JSON object");
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (n > MAX_CHANNELS)
        return si_err_set(err, SI_ERR_TOO_LARGE, DOC ": more than %d channels", MAX_CHANNELS);
    if (n) {
        chs->channels = calloc(n, sizeof(*chs->channels));
        if (!chs->channels)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    }
    const cJSON *c;
    si_result r;
    cJSON_ArrayForEach(c, root) {
        if ((r = check_name(c->string, "", "channel", err)) != SI_OK)
            return r;
        if (si_channels_find(chs, c->string))
            return si_err_set(err, SI_ERR_PARSE, DOC ": %s: duplicate channel", c->string);
        r = parse_channel(c, &chs->channels[chs->nchannels], err);
        chs->nchannels++;
        if (r != SI_OK)
            return r;
    }
    return SI_OK;
}

SI_JSON_DOC_FUNCS(si_channels, DOC, SI_CHANNELS_MAX_BYTES, parse_root, si_channels_free, si_channels_parse, si_channels_load)

void si_channels_free(si_channels *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->nchannels; i++) {
        si_channel *c = &ch->channels[i];
        for (size_t d = 0; d < c->ndevices; d++) {
            free(c->devices[d].name);
            free(c->devices[d].index);
            free(c->devices[d].keyring_path);
            free(c->devices[d].keyring_signature);
        }
        free(c->devices);
        free(c->name);
        free(c->alias);
        free(c->redirect);
    }
    free(ch->channels);
    free(ch);
}

si_result si_channels_format(const si_channels *ch, char **json_out, si_err *err)
{
    *json_out = NULL;
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    for (size_t i = 0; ok && i < ch->nchannels; i++) {
        const si_channel *c = &ch->channels[i];
        cJSON *co = cJSON_AddObjectToObject(root, c->name ? c->name : "");
        ok = co != NULL;
        if (ok && c->alias)
            ok = cJSON_AddStringToObject(co, "alias", c->alias) != NULL;
        if (ok && c->redirect)
            ok = cJSON_AddStringToObject(co, "redirect", c->redirect) != NULL;
        if (ok && c->hidden)
            ok = cJSON_AddTrueToObject(co, "hidden") != NULL;
        cJSON *devs = ok ? cJSON_AddObjectToObject(co, "devices") : NULL;
        ok = ok && devs;
        for (size_t d = 0; ok && d < c->ndevices; d++) {
            const si_channel_device *dv = &c->devices[d];
            cJSON *dobj = cJSON_AddObjectToObject(devs, dv->name ? dv->name : "");
            ok = dobj && cJSON_AddStringToObject(dobj, "index", dv->index ? dv->index : "");
            if (ok && dv->keyring_path) {
                cJSON *k = cJSON_AddObjectToObject(dobj, "keyring");
                ok = k && cJSON_AddStringToObject(k, "path", dv->keyring_path) &&
                     cJSON_AddStringToObject(k, "signature", dv->keyring_signature
                                                                 ? dv->keyring_signature
                                                                 : "");
            }
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

const si_channel *si_channels_find(const si_channels *ch, const char *name)
{
    if (!ch || !name)
        return NULL;
    for (size_t i = 0; i < ch->nchannels; i++)
        if (ch->channels[i].name && strcmp(ch->channels[i].name, name) == 0)
            return &ch->channels[i];
    return NULL;
}

const si_channel_device *si_channel_find_device(const si_channel *c, const char *device)
{
    if (!c || !device)
        return NULL;
    for (size_t i = 0; i < c->ndevices; i++)
        if (c->devices[i].name && strcmp(c->devices[i].name, device) == 0)
            return &c->devices[i];
    return NULL;
}

/* ------------------------------------------------------------ editing */

si_channel *si_channels_get(si_channels *ch, const char *name, si_err *err)
{
    for (size_t i = 0; i < ch->nchannels; i++)
        if (strcmp(ch->channels[i].name, name) == 0)
            return &ch->channels[i];
    si_channel *n = realloc(ch->channels, (ch->nchannels + 1) * sizeof(*n));
    if (!n) {
        si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
        return NULL;
    }
    ch->channels = n;
    si_channel *c = &n[ch->nchannels];
    memset(c, 0, sizeof(*c));
    if (!(c->name = strdup(name))) {
        si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
        return NULL;
    }
    ch->nchannels++;
    return c;
}

si_channel_device *si_channel_get_device(si_channel *c, const char *name, si_err *err)
{
    for (size_t i = 0; i < c->ndevices; i++)
        if (strcmp(c->devices[i].name, name) == 0)
            return &c->devices[i];
    si_channel_device *n = realloc(c->devices, (c->ndevices + 1) * sizeof(*n));
    if (!n) {
        si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
        return NULL;
    }
    c->devices = n;
    si_channel_device *d = &n[c->ndevices];
    memset(d, 0, sizeof(*d));
    if (!(d->name = strdup(name))) {
        si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
        return NULL;
    }
    c->ndevices++;
    return d;
}

static void devices_free(si_channel_device *devs, size_t n)
{
    for (size_t d = 0; d < n; d++) {
        free(devs[d].name);
        free(devs[d].index);
        free(devs[d].keyring_path);
        free(devs[d].keyring_signature);
    }
    free(devs);
}

static bool dup_opt(const char *s, char **out)
{
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

si_result si_channel_copy_devices(si_channel *dst, const si_channel *src, si_err *err)
{
    si_channel_device *devs = NULL;
    if (src->ndevices) {
        devs = calloc(src->ndevices, sizeof(*devs));
        if (!devs)
            return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    }
    bool ok = true;
    for (size_t d = 0; d < src->ndevices; d++) {
        const si_channel_device *s = &src->devices[d];
        ok = dup_opt(s->name, &devs[d].name) && dup_opt(s->index, &devs[d].index) &&
             dup_opt(s->keyring_path, &devs[d].keyring_path) &&
             dup_opt(s->keyring_signature, &devs[d].keyring_signature) && ok;
    }
    if (!ok) {
        devices_free(devs, src->ndevices);
        return si_err_set(err, SI_ERR_NOMEM, DOC ": out of memory");
    }
    devices_free(dst->devices, dst->ndevices);
    dst->devices = devs;
    dst->ndevices = src->ndevices;
    return SI_OK;
}
