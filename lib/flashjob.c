/* flashjob.c - flash/flash.json: parse (untrusted until its signature is
 * checked, and parsed only after) and write. */
#include "flashjob.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

const char *const si_flash_file_names[SI_FLASH_NFILES] = {
    "board.json", "esp.img", "core.img", "boot.img", "vmlinuz", "initrd.img",
};

static si_result get_name(const cJSON *o, const char *key, char *dst, size_t cap, si_err *err)
{
    const char *s = NULL;
    si_result rc = si_json_get_string(o, "", key, true, &s, NULL, err);
    if (rc != SI_OK)
        return rc;
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return si_err_set(err, SI_ERR_PARSE, "flash.json: %s: empty or longer than %zu bytes", key, cap - 1);
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return si_err_set(err, SI_ERR_PARSE, "flash.json: %s: '%s' has a byte that is not [A-Za-z0-9._-]",
                              key, s);
    memcpy(dst, s, n + 1);
    return SI_OK;
}

si_result si_flashjob_parse(const char *json, size_t len, si_flashjob *out, si_err *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *d = NULL;
    si_result rc = si_json_parse(json, len, SI_FLASHJOB_MAX_BYTES, "flash.json", &d, err);
    if (rc != SI_OK)
        return rc;
    int64_t v = 0;
    const char *consent = NULL;
    const cJSON *files = NULL;
    if (!cJSON_IsObject(d)) {
        rc = si_err_set(err, SI_ERR_PARSE, "flash.json: expected an object");
        goto out;
    }
    if ((rc = si_json_get_int(d, "", "format", true, 1, 1, &v, NULL, err)) != SI_OK ||
        (rc = get_name(d, "board", out->board, sizeof(out->board), err)) != SI_OK ||
        (rc = get_name(d, "device", out->device, sizeof(out->device), err)) != SI_OK ||
        (rc = get_name(d, "channel", out->channel, sizeof(out->channel), err)) != SI_OK ||
        (rc = si_json_get_int(d, "", "build", true, 0, (int64_t)1 << 53, &out->build, NULL, err)) != SI_OK ||
        (rc = si_json_get_string(d, "", "consent", true, &consent, NULL, err)) != SI_OK ||
        (rc = si_json_get_object(d, "", "files", true, &files, NULL, err)) != SI_OK)
        goto out;
    if (strcmp(consent, "erase") == 0)
        out->erase = true;
    else if (strcmp(consent, "blank-only") != 0) {
        rc = si_err_set(err, SI_ERR_PARSE, "flash.json: consent: '%s' is not blank-only or erase", consent);
        goto out;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        int k;
        for (k = 0; k < SI_FLASH_NFILES; k++)
            if (strcmp(f->string, si_flash_file_names[k]) == 0)
                break;
        if (k == SI_FLASH_NFILES) {
            rc = si_err_set(err, SI_ERR_PARSE, "flash.json: files: unknown file '%s'", f->string);
            goto out;
        }
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "files.%s", si_flash_file_names[k]);
        if (!cJSON_IsObject(f)) {
            rc = si_err_set(err, SI_ERR_PARSE, "flash.json: %s: expected an object", ctx);
            goto out;
        }
        if (out->files[k].sha256[0]) {
            rc = si_err_set(err, SI_ERR_PARSE, "flash.json: %s: given twice", ctx);
            goto out;
        }
        const char *hex = NULL;
        if ((rc = si_json_get_int(f, ctx, "size", true, 0, (int64_t)1 << 53, &v, NULL, err)) != SI_OK ||
            (rc = si_json_get_string(f, ctx, "sha256", true, &hex, NULL, err)) != SI_OK)
            goto out;
        out->files[k].size = (uint64_t)v;
        size_t n = strlen(hex);
        for (size_t i = 0; i < n; i++)
            if (!isxdigit((unsigned char)hex[i]) || isupper((unsigned char)hex[i]))
                n = 0;
        if (n != 64) {
            rc = si_err_set(err, SI_ERR_PARSE, "flash.json: %s.sha256: not 64 lowercase hex digits", ctx);
            goto out;
        }
        memcpy(out->files[k].sha256, hex, 65);
    }
    for (int k = 0; k < SI_FLASH_NFILES; k++)
        if (!out->files[k].sha256[0]) {
            rc = si_err_set(err, SI_ERR_PARSE, "flash.json: files: '%s' missing", si_flash_file_names[k]);
            goto out;
        }
out:
    cJSON_Delete(d);
    if (rc != SI_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

si_result si_flashjob_format(const si_flashjob *j, char **out, si_err *err)
{
    cJSON *d = cJSON_CreateObject(), *files = cJSON_CreateObject();
    if (!d || !files) {
        cJSON_Delete(d);
        cJSON_Delete(files);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    cJSON_AddNumberToObject(d, "format", 1);
    cJSON_AddStringToObject(d, "board", j->board);
    cJSON_AddStringToObject(d, "device", j->device);
    cJSON_AddStringToObject(d, "channel", j->channel);
    cJSON_AddNumberToObject(d, "build", (double)j->build);
    cJSON_AddStringToObject(d, "consent", j->erase ? "erase" : "blank-only");
    for (int k = 0; k < SI_FLASH_NFILES; k++) {
        cJSON *f = cJSON_CreateObject();
        if (!f)
            break;
        cJSON_AddNumberToObject(f, "size", (double)j->files[k].size);
        cJSON_AddStringToObject(f, "sha256", j->files[k].sha256);
        cJSON_AddItemToObject(files, si_flash_file_names[k], f);
    }
    cJSON_AddItemToObject(d, "files", files);
    si_result rc = si_json_print_sorted(d, out, err);
    cJSON_Delete(d);
    return rc;
}
