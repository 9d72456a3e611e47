/* board.c - board.json: parse, check, place partitions, render grub.cfg. */
#include "board.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "jsonutil.h"

static const char *const fs_names[] = {"none", "vfat", "grubenv", "ext4"};

const char *si_board_fs_name(si_board_fs fs)
{
    return (unsigned)fs < sizeof(fs_names) / sizeof(fs_names[0]) ? fs_names[fs] : "?";
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SI_BOARD_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int valid_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SI_BOARD_LABEL_MAX || !islower((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int valid_guid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* A relative path without "..", NUL, backslash or empty components. */
static int valid_relpath(const char *s)
{
    if (!s[0] || s[0] == '/' || strlen(s) >= SI_BOARD_PATH_MAX)
        return 0;
    const char *p = s;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == '\\' || p[i] == 0x7f)
                return 0;
        p += n;
        if (*p == '/')
            p++;
        if (slash && !*p)
            return 0;
    }
    return 1;
}

static si_result get_str(const cJSON *o, const char *ctx, const char *key, char *dst, size_t cap,
                         int required, si_err *err)
{
    const char *s = NULL;
    bool present = false;
    si_result rc = si_json_get_string(o, ctx, key, required, &s, &present, err);
    if (rc != SI_OK)
        return rc;
    if (!present) {
        dst[0] = '\0';
        return SI_OK;
    }
    if (strlen(s) >= cap)
        return si_err_set(err, SI_ERR_PARSE, "%s.%s: longer than %zu bytes", ctx, key, cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return SI_OK;
}

static si_result parse_part(const cJSON *o, size_t i, si_board_part *p, si_err *err)
{
    char ctx[48];
    snprintf(ctx, sizeof(ctx), "partitions[%zu]", i);
    if (!cJSON_IsObject(o))
        return si_err_set(err, SI_ERR_PARSE, "%s: expected object", ctx);
    si_result rc = get_str(o, ctx, "label", p->label, sizeof(p->label), 1, err);
    if (rc != SI_OK)
        return rc;
    if (!valid_label(p->label))
        return si_err_set(err, SI_ERR_PARSE,
                          "%s.label: '%s' is not a label (a-z first, then a-z 0-9 _ -, up to %d)",
                          ctx, p->label, SI_BOARD_LABEL_MAX);
    snprintf(ctx, sizeof(ctx), "partition %s", p->label);
    if ((rc = get_str(o, ctx, "type", p->type, sizeof(p->type), 1, err)) != SI_OK)
        return rc;
    if (!valid_guid(p->type))
        return si_err_set(err, SI_ERR_PARSE, "%s.type: '%s' is not a GPT type GUID", ctx, p->type);
    for (char *c = p->type; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    char fs[16];
    if ((rc = get_str(o, ctx, "fs", fs, sizeof(fs), 1, err)) != SI_OK)
        return rc;
    size_t k;
    for (k = 0; k < sizeof(fs_names) / sizeof(fs_names[0]); k++)
        if (strcmp(fs, fs_names[k]) == 0)
            break;
    if (k == sizeof(fs_names) / sizeof(fs_names[0]))
        return si_err_set(err, SI_ERR_PARSE, "%s.fs: '%s' is not one of none, vfat, grubenv, ext4",
                          ctx, fs);
    p->fs = (si_board_fs)k;
    char size[8];
    if ((rc = get_str(o, ctx, "size", size, sizeof(size), 0, err)) != SI_OK)
        return rc;
    int64_t v = 0;
    bool present = false;
    if (size[0]) {
        if (strcmp(size, "rest") != 0)
            return si_err_set(err, SI_ERR_PARSE, "%s.size: only \"rest\" is known (else size_mib)", ctx);
        if (cJSON_GetObjectItemCaseSensitive(o, "size_mib"))
            return si_err_set(err, SI_ERR_PARSE, "%s: both size \"rest\" and size_mib", ctx);
        if ((rc = si_json_get_int(o, ctx, "min_mib", true, 1, 1 << 24, &v, NULL, err)) != SI_OK)
            return si_err_prefix(err, "size \"rest\" needs min_mib");
        p->size_mib = 0;
        p->min_mib = (uint64_t)v;
    } else {
        if ((rc = si_json_get_int(o, ctx, "size_mib", true, 1, 1 << 24, &v, NULL, err)) != SI_OK)
            return rc;
        p->size_mib = p->min_mib = (uint64_t)v;
    }
    if ((rc = si_json_get_int(o, ctx, "min_free_mib", false, 0, 1 << 24, &v, &present, err)) != SI_OK)
        return rc;
    p->min_free_mib = present ? (uint64_t)v : 0;
    uint64_t minimum = p->fs == SI_BOARD_FS_VFAT   ? SI_BOARD_MIN_VFAT_MIB
                       : p->fs == SI_BOARD_FS_EXT4 ? SI_BOARD_MIN_EXT4_MIB
                                                   : SI_BOARD_MIN_RAW_MIB;
    if (p->min_mib < minimum)
        return si_err_set(err, SI_ERR_PARSE, "%s: %llu MiB is too small for %s (>= %llu MiB)", ctx,
                          (unsigned long long)p->min_mib, fs, (unsigned long long)minimum);
    if (p->min_free_mib >= p->min_mib)
        return si_err_set(err, SI_ERR_PARSE, "%s: min_free_mib %llu is not below its %llu MiB", ctx,
                          (unsigned long long)p->min_free_mib, (unsigned long long)p->min_mib);
    return SI_OK;
}

static si_result parse_grub_image(const cJSON *boot, const char *key, si_board_grub_image *g,
                                  si_err *err)
{
    const cJSON *o = NULL;
    char ctx[32];
    snprintf(ctx, sizeof(ctx), "boot.%s", key);
    si_result rc = si_json_get_object(boot, "boot", key, true, &o, NULL, err);
    if (rc != SI_OK)
        return rc;
    if ((rc = get_str(o, ctx, "format", g->format, sizeof(g->format), 1, err)) != SI_OK)
        return rc;
    if ((rc = get_str(o, ctx, "path", g->path, sizeof(g->path), 0, err)) != SI_OK ||
        (rc = get_str(o, ctx, "partition", g->partition, sizeof(g->partition), 0, err)) != SI_OK ||
        (rc = get_str(o, ctx, "boot_img", g->boot_img, sizeof(g->boot_img), 0, err)) != SI_OK)
        return rc;
    for (const char *c = g->format; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_'))
            return si_err_set(err, SI_ERR_PARSE, "%s.format: '%s' is not a GRUB target", ctx, g->format);
    if (!g->format[0])
        return si_err_set(err, SI_ERR_PARSE, "%s.format: empty", ctx);
    if (g->path[0] && !valid_relpath(g->path))
        return si_err_set(err, SI_ERR_PARSE, "%s.path: '%s' is not a relative path", ctx, g->path);
    const cJSON *mods = NULL;
    if ((rc = si_json_get_array(o, ctx, "modules", true, &mods, NULL, err)) != SI_OK)
        return rc;
    const cJSON *m;
    g->nmodules = 0;
    cJSON_ArrayForEach(m, mods)
    {
        if (g->nmodules == SI_BOARD_MAX_MODULES)
            return si_err_set(err, SI_ERR_PARSE, "%s.modules: more than %d", ctx, SI_BOARD_MAX_MODULES);
        const char *s = cJSON_GetStringValue(m);
        if (!s || !s[0] || strlen(s) >= SI_BOARD_MODULE_MAX)
            return si_err_set(err, SI_ERR_PARSE, "%s.modules[%zu]: expected a module name", ctx,
                              g->nmodules);
        for (const char *c = s; *c; c++)
            if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-'))
                return si_err_set(err, SI_ERR_PARSE, "%s.modules[%zu]: '%s' is not a module name",
                                  ctx, g->nmodules, s);
        snprintf(g->modules[g->nmodules++], SI_BOARD_MODULE_MAX, "%s", s);
    }
    if (g->nmodules == 0)
        return si_err_set(err, SI_ERR_PARSE, "%s.modules: empty", ctx);
    return SI_OK;
}

/* What the programs of this project need from a board (docs/flashing.md). */
static const struct {
    const char *label;
    si_board_fs fs;
} required_parts[] = {
    {"bios", SI_BOARD_FS_NONE},     {"esp", SI_BOARD_FS_VFAT},    {"misc", SI_BOARD_FS_GRUBENV},
    {"recovery", SI_BOARD_FS_EXT4}, {"cache", SI_BOARD_FS_EXT4}, {"userdata", SI_BOARD_FS_EXT4},
};

const char *si_board_system_label(const si_board *b)
{
    return b->nslots ? b->slots[0] : "system";
}

/* "slots": absent (the one `system` partition) or two different ext4
 * partitions of the board. */
static si_result parse_slots(const cJSON *d, si_board *b, si_err *err)
{
    const cJSON *slots = NULL;
    bool present = false;
    si_result rc = si_json_get_array(d, "", "slots", false, &slots, &present, err);
    if (rc != SI_OK)
        return rc;
    if (!present)
        return SI_OK;
    if (cJSON_GetArraySize(slots) != 2)
        return si_err_set(err, SI_ERR_PARSE, "slots: a list of two partition labels is needed");
    for (int i = 0; i < 2; i++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(slots, i));
        if (!s || !valid_label(s))
            return si_err_set(err, SI_ERR_PARSE, "slots[%d]: expected a partition label", i);
        const si_board_part *bp = si_board_part_find(b, s);
        if (!bp || bp->fs != SI_BOARD_FS_EXT4)
            return si_err_set(err, SI_ERR_PARSE, "slots[%d]: '%s' is not an ext4 partition of the board", i,
                              s);
        snprintf(b->slots[i], sizeof(b->slots[i]), "%s", s);
    }
    if (strcmp(b->slots[0], b->slots[1]) == 0)
        return si_err_set(err, SI_ERR_PARSE, "slots: '%s' twice (two different partitions are needed)",
                          b->slots[0]);
    b->nslots = 2;
    return SI_OK;
}

/* boot.env_defaults: an object of GRUB variables (strings or integers),
 * checked by formatting the block it gives. */
static si_result parse_env_defaults(const cJSON *boot, si_board *b, si_err *err)
{
    si_grubenv_init(&b->env_defaults);
    const cJSON *o = NULL;
    bool present = false;
    si_result rc = si_json_get_object(boot, "boot", "env_defaults", false, &o, &present, err);
    if (rc != SI_OK)
        return rc;
    if (!present) {
        static const char *const dflt[] = {"recovery_boots", "normal_boots", "system_new"};
        for (size_t i = 0; i < 3; i++)
            if ((rc = si_grubenv_set(&b->env_defaults, dflt[i], "0", err)) != SI_OK)
                return rc;
        return SI_OK;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, o)
    {
        char num[32];
        const char *val = NULL;
        if (cJSON_IsString(v)) {
            val = v->valuestring;
        } else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble &&
                   v->valuedouble >= -1e15 && v->valuedouble <= 1e15) {
            snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
            val = num;
        } else {
            return si_err_set(err, SI_ERR_PARSE, "boot.env_defaults.%.64s: a string or an integer is needed",
                              v->string ? v->string : "?");
        }
        if (si_grubenv_get(&b->env_defaults, v->string ? v->string : ""))
            return si_err_set(err, SI_ERR_PARSE, "boot.env_defaults.%.64s: given twice", v->string);
        if ((rc = si_grubenv_set(&b->env_defaults, v->string ? v->string : "", val, err)) != SI_OK)
            break;
    }
    char block[SI_GRUBENV_SIZE];
    if (rc == SI_OK)
        rc = si_grubenv_format(&b->env_defaults, block, err);
    if (rc != SI_OK) {
        /* a bad board file whatever grubenv calls it */
        si_err_prefix(err, "boot.env_defaults");
        if (err)
            err->code = SI_ERR_PARSE;
        return SI_ERR_PARSE;
    }
    return SI_OK;
}

/* "format" and "board": the document is a board definition of format 1 and
 * names its board. */
static si_result parse_header(const cJSON *d, si_board *b, si_err *err)
{
    if (!cJSON_IsObject(d))
        return si_err_set(err, SI_ERR_PARSE, "board.json: expected an object");
    int64_t v = 0;
    si_result rc = si_json_get_int(d, "", "format", true, 1, 1, &v, NULL, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "not a board definition of format 1");
    if ((rc = get_str(d, "", "board", b->name, sizeof(b->name), 1, err)) != SI_OK)
        return rc;
    if (!valid_name(b->name))
        return si_err_set(err, SI_ERR_PARSE, "board: '%s' is not a board name", b->name);
    return SI_OK;
}

/* "disk": a GPT table, where the first partition starts, the default size. */
static si_result parse_disk(const cJSON *d, si_board *b, si_err *err)
{
    const cJSON *disk = NULL;
    si_result rc = si_json_get_object(d, "", "disk", true, &disk, NULL, err);
    if (rc != SI_OK)
        return rc;
    char table[8];
    if ((rc = get_str(disk, "disk", "table", table, sizeof(table), 1, err)) != SI_OK)
        return rc;
    if (strcmp(table, "gpt") != 0)
        return si_err_set(err, SI_ERR_PARSE, "disk.table: '%s' (only gpt is known)", table);
    int64_t v = 0;
    if ((rc = si_json_get_int(disk, "disk", "first_lba_mib", true, 1, 64, &v, NULL, err)) != SI_OK)
        return rc;
    b->first_lba_mib = (uint64_t)v;
    if ((rc = si_json_get_int(disk, "disk", "default_size_mib", true, 1, 1 << 24, &v, NULL, err)) !=
        SI_OK)
        return rc;
    b->default_size_mib = (uint64_t)v;
    return SI_OK;
}

/* "partitions": a non-empty list of distinct labels, at most one of size
 * "rest", holding the partitions every board needs; *min_sum is the sum of
 * their minimum sizes. */
static si_result parse_partitions(const cJSON *d, si_board *b, uint64_t *min_sum, si_err *err)
{
    const cJSON *parts = NULL;
    si_result rc = si_json_get_array(d, "", "partitions", true, &parts, NULL, err);
    if (rc != SI_OK)
        return rc;
    const cJSON *p;
    int rest = 0;
    *min_sum = 0;
    cJSON_ArrayForEach(p, parts)
    {
        if (b->nparts == SI_BOARD_MAX_PARTS)
            return si_err_set(err, SI_ERR_PARSE, "partitions: more than %d", SI_BOARD_MAX_PARTS);
        si_board_part *bp = &b->parts[b->nparts];
        if ((rc = parse_part(p, b->nparts, bp, err)) != SI_OK)
            return rc;
        for (size_t j = 0; j < b->nparts; j++)
            if (strcmp(b->parts[j].label, bp->label) == 0)
                return si_err_set(err, SI_ERR_PARSE, "partition %s: label used twice", bp->label);
        rest += bp->size_mib == 0;
        *min_sum += bp->min_mib;
        b->nparts++;
    }
    if (b->nparts == 0)
        return si_err_set(err, SI_ERR_PARSE, "partitions: a non-empty list is needed");
    if (rest > 1)
        return si_err_set(err, SI_ERR_PARSE, "partitions: only one may have size \"rest\"");
    for (size_t i = 0; i < sizeof(required_parts) / sizeof(required_parts[0]); i++) {
        const si_board_part *bp = si_board_part_find(b, required_parts[i].label);
        if (!bp || bp->fs != required_parts[i].fs)
            return si_err_set(err, SI_ERR_PARSE, "partitions: the board needs a partition '%s' with fs %s",
                              required_parts[i].label, si_board_fs_name(required_parts[i].fs));
    }
    return SI_OK;
}

/* The system: two slots, or else one ext4 partition `system`; and the
 * partitions fit the default disk size. */
static si_result check_system(const cJSON *d, si_board *b, uint64_t min_sum, si_err *err)
{
    si_result rc = parse_slots(d, b, err);
    if (rc != SI_OK)
        return rc;
    if (!b->nslots) {
        const si_board_part *sys = si_board_part_find(b, "system");
        if (!sys || sys->fs != SI_BOARD_FS_EXT4)
            return si_err_set(err, SI_ERR_PARSE,
                              "partitions: the board needs a partition 'system' with fs ext4 (or \"slots\")");
    }
    if (min_sum > b->default_size_mib)
        return si_err_set(err, SI_ERR_PARSE,
                          "disk.default_size_mib: %llu MiB is less than the partitions' %llu MiB",
                          (unsigned long long)b->default_size_mib, (unsigned long long)min_sum);
    return SI_OK;
}

/* "boot": GRUB as the loader, its config and environment files (relative
 * paths), the console, the boot counters. */
static si_result parse_boot(const cJSON *boot, si_board *b, si_err *err)
{
    char loader[16];
    si_result rc = get_str(boot, "boot", "loader", loader, sizeof(loader), 1, err);
    if (rc != SI_OK)
        return rc;
    if (strcmp(loader, "grub") != 0)
        return si_err_set(err, SI_ERR_PARSE, "boot.loader: '%s' (only grub is known)", loader);
    if ((rc = get_str(boot, "boot", "config", b->config, sizeof(b->config), 1, err)) != SI_OK ||
        (rc = get_str(boot, "boot", "env_file", b->env_file, sizeof(b->env_file), 1, err)) != SI_OK ||
        (rc = get_str(boot, "boot", "console", b->console, sizeof(b->console), 0, err)) != SI_OK)
        return rc;
    if (!valid_relpath(b->config))
        return si_err_set(err, SI_ERR_PARSE, "boot.config: '%s' is not a relative path", b->config);
    if (!valid_relpath(b->env_file))
        return si_err_set(err, SI_ERR_PARSE, "boot.env_file: '%s' is not a relative path", b->env_file);
    int64_t v = 0;
    if ((rc = si_json_get_int(boot, "boot", "max_recovery_boots", true, 1, 8, &v, NULL, err)) != SI_OK)
        return rc;
    b->max_recovery_boots = (int)v;
    if ((rc = si_json_get_int(boot, "boot", "max_unconfirmed_boots", true, 1, 8, &v, NULL, err)) !=
        SI_OK)
        return rc;
    b->max_unconfirmed_boots = (int)v;
    return parse_env_defaults(boot, b, err);
}

/* "boot.efi" and "boot.bios": GRUB's images, the BIOS one on a raw
 * partition of the board with an absolute boot.img path. */
static si_result parse_boot_images(const cJSON *boot, si_board *b, si_err *err)
{
    si_result rc;
    if ((rc = parse_grub_image(boot, "efi", &b->efi, err)) != SI_OK ||
        (rc = parse_grub_image(boot, "bios", &b->bios, err)) != SI_OK)
        return rc;
    if (!b->efi.path[0])
        return si_err_set(err, SI_ERR_PARSE, "boot.efi.path: missing");
    const si_board_part *bios = si_board_part_find(b, b->bios.partition);
    if (!b->bios.partition[0] || !bios || bios->fs != SI_BOARD_FS_NONE)
        return si_err_set(err, SI_ERR_PARSE, "boot.bios.partition: '%s' is not a raw partition",
                          b->bios.partition);
    if (!b->bios.boot_img[0])
        snprintf(b->bios.boot_img, sizeof(b->bios.boot_img), "/usr/lib/grub/%s/boot.img",
                 b->bios.format);
    if (b->bios.boot_img[0] != '/')
        return si_err_set(err, SI_ERR_PARSE, "boot.bios.boot_img: '%s' is not an absolute path",
                          b->bios.boot_img);
    return SI_OK;
}

static si_result parse_doc(const cJSON *d, si_board *b, si_err *err)
{
    uint64_t min_sum = 0;
    si_result rc;
    if ((rc = parse_header(d, b, err)) != SI_OK || (rc = parse_disk(d, b, err)) != SI_OK ||
        (rc = parse_partitions(d, b, &min_sum, err)) != SI_OK ||
        (rc = check_system(d, b, min_sum, err)) != SI_OK)
        return rc;
    const cJSON *boot = NULL;
    if ((rc = si_json_get_object(d, "", "boot", true, &boot, NULL, err)) != SI_OK)
        return rc;
    if ((rc = parse_boot(boot, b, err)) != SI_OK)
        return rc;
    return parse_boot_images(boot, b, err);
}

si_result si_board_parse(const char *json, size_t len, si_board *out, si_err *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *d = NULL;
    si_result rc = si_json_parse(json, len, SI_BOARD_MAX_BYTES, "board.json", &d, err);
    if (rc != SI_OK)
        return rc;
    rc = parse_doc(d, out, err);
    cJSON_Delete(d);
    if (rc != SI_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

si_result si_board_load(const char *path, si_board *out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    si_result rc = si_read_file_checked(path, SI_BOARD_MAX_BYTES, &buf, &len, err);
    if (rc != SI_OK)
        return rc;
    rc = si_board_parse(buf, len, out, err);
    free(buf);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", path);
    return SI_OK;
}

si_result si_board_path(const char *images_dir, const char *name, char *path, size_t pathlen,
                        si_err *err)
{
    if (!valid_name(name))
        return si_err_set(err, SI_ERR_USAGE, "'%s' is not a board name", name);
    if ((size_t)snprintf(path, pathlen, "%s/%s/board.json", images_dir, name) >= pathlen)
        return si_err_set(err, SI_ERR_USAGE, "%s: path too long", images_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return si_err_set(err, SI_ERR_NOT_FOUND, "board '%s': no %s", name, path);
    fclose(f);
    return SI_OK;
}

const si_board_part *si_board_part_find(const si_board *b, const char *label)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (strcmp(b->parts[i].label, label) == 0)
            return &b->parts[i];
    return NULL;
}

unsigned si_board_part_number(const si_board *b, const char *label)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (strcmp(b->parts[i].label, label) == 0)
            return (unsigned)i + 1;
    return 0;
}

uint64_t si_board_min_disk_bytes(const si_board *b)
{
    uint64_t mib = b->first_lba_mib + 1;
    for (size_t i = 0; i < b->nparts; i++)
        mib += b->parts[i].min_mib;
    return mib * SI_MIB_BYTES;
}

uint64_t si_board_default_disk_bytes(const si_board *b)
{
    return (b->first_lba_mib + b->default_size_mib + 1) * SI_MIB_BYTES;
}

si_result si_board_layout(const si_board *b, uint64_t disk_bytes, si_board_extent *out, si_err *err)
{
    if (disk_bytes == 0)
        disk_bytes = si_board_default_disk_bytes(b);
    uint64_t disk_mib = disk_bytes / SI_MIB_BYTES;
    uint64_t fixed = 0;
    const si_board_part *rest = NULL;
    for (size_t i = 0; i < b->nparts; i++) {
        if (b->parts[i].size_mib)
            fixed += b->parts[i].size_mib;
        else
            rest = &b->parts[i];
    }
    uint64_t overhead = b->first_lba_mib + 1;
    uint64_t need = fixed + overhead + (rest ? rest->min_mib : 0);
    if (disk_mib < need)
        return si_err_set(err, SI_ERR_NO_SPACE,
                          "board %s needs a disk of at least %llu MiB, this one has %llu MiB%s%s",
                          b->name, (unsigned long long)need, (unsigned long long)disk_mib,
                          rest ? ": too small for " : "", rest ? rest->label : "");
    uint64_t off = b->first_lba_mib * SI_MIB_BYTES;
    for (size_t i = 0; i < b->nparts; i++) {
        const si_board_part *p = &b->parts[i];
        uint64_t mib = p->size_mib ? p->size_mib : disk_mib - overhead - fixed;
        out[i] = (si_board_extent){.part = p, .number = (unsigned)i + 1, .start = off,
                                   .size = mib * SI_MIB_BYTES};
        off += mib * SI_MIB_BYTES;
    }
    return SI_OK;
}

void si_board_grub_prefix(const si_board *b, char *out, size_t outlen)
{
    snprintf(out, outlen, "(hd0,gpt%u)/grub", si_board_part_number(b, "esp"));
}

/* Append text to the output buffer, growing it. */
static bool out_put(char **o, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t c = (*cap + len + 1) * 2;
        char *p = realloc(*o, c);
        if (!p)
            return false;
        *o = p;
        *cap = c;
    }
    memcpy(*o + *n, s, len);
    *n += len;
    return true;
}

/* The value of template variable name[0..len) into val; false when unknown. */
static bool grub_var(const si_board *b, int timeout, const char *name, size_t len, char *val, size_t cap)
{
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    unsigned num = 0;
    if (IS("ESP") || IS("MISC") || IS("RECOVERY") || IS("SYSTEM"))
        num = si_board_part_number(b, IS("ESP") ? "esp" : IS("MISC") ? "misc" : IS("RECOVERY") ? "recovery" : "system");
    else if (b->nslots && (IS("SLOT_A") || IS("SLOT_B")))
        num = si_board_part_number(b, b->slots[name[5] == 'B']);
    else if (b->nslots && (IS("SLOT_A_LABEL") || IS("SLOT_B_LABEL"))) {
        snprintf(val, cap, "%s", b->slots[name[5] == 'B']);
        return true;
    } else if (IS("MAX_RECOVERY_BOOTS") || IS("MAX_UNCONFIRMED_BOOTS") || IS("TIMEOUT")) {
        snprintf(val, cap, "%d", IS("TIMEOUT") ? timeout : IS("MAX_RECOVERY_BOOTS") ? b->max_recovery_boots
                                                                                   : b->max_unconfirmed_boots);
        return true;
    } else if (len > 5 && memcmp(name, "PART_", 5) == 0) {
        for (size_t i = 0; i < b->nparts && !num; i++) {
            const char *l = b->parts[i].label;
            if (strlen(l) != len - 5)
                continue;
            size_t k = 0;
            while (k < len - 5 && toupper((unsigned char)l[k]) == name[5 + k])
                k++;
            if (k == len - 5)
                num = (unsigned)i + 1;
        }
    }
#undef IS
    if (!num)
        return false;
    snprintf(val, cap, "%u", num);
    return true;
}

si_result si_board_render_grub_cfg(const si_board *b, const char *tmpl, size_t len, int timeout,
                                   char **out, si_err *err)
{
    size_t cap = len + 64, n = 0;
    char *o = malloc(cap);
    if (!o)
        return si_err_set(err, SI_ERR_NOMEM, "grub.cfg: out of memory");
    for (size_t i = 0; i < len;) {
        if (tmpl[i] == '\0') {
            free(o);
            return si_err_set(err, SI_ERR_PARSE, "%s: NUL byte at offset %zu", b->config, i);
        }
        size_t j = i + 1;
        while (tmpl[i] == '@' && j < len && (isupper((unsigned char)tmpl[j]) || tmpl[j] == '_'))
            j++;
        if (tmpl[i] != '@' || j == i + 1 || j >= len || tmpl[j] != '@') {
            if (!out_put(&o, &n, &cap, tmpl + i, 1))
                goto nomem;
            i++;
            continue;
        }
        char val[SI_BOARD_LABEL_MAX + 16];
        if (!grub_var(b, timeout, tmpl + i + 1, j - i - 1, val, sizeof(val))) {
            si_err_set(err, SI_ERR_PARSE, "%s: unknown variable @%.*s@", b->config,
                       (int)(j - i - 1 > 64 ? 64 : j - i - 1), tmpl + i + 1);
            free(o);
            return SI_ERR_PARSE;
        }
        if (!out_put(&o, &n, &cap, val, strlen(val)))
            goto nomem;
        i = j + 1;
    }
    o[n] = '\0';
    *out = o;
    return SI_OK;
nomem:
    free(o);
    return si_err_set(err, SI_ERR_NOMEM, "grub.cfg: out of memory");
}
