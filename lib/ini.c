/* ini.c - strict INI parser (see ini.h). */
#include "ini.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Trim [*s, *e) of blanks. */
static void trim(const char **s, const char **e)
{
    while (*s < *e && blank(**s))
        (*s)++;
    while (*e > *s && blank((*e)[-1]))
        (*e)--;
}

static bool valid_name(const char *s, const char *e)
{
    if (s == e || (size_t)(e - s) > SI_INI_NAME_MAX)
        return false;
    for (const char *p = s; p < e; p++)
        if (!name_char(*p))
            return false;
    return true;
}

void si_ini_free(si_ini *ini)
{
    if (!ini)
        return;
    for (size_t i = 0; i < ini->count; i++)
        free(ini->entries[i].value);
    free(ini->entries);
    free(ini->what);
    free(ini);
}

/* "[name]": the new current section. */
static si_result parse_section(const char *s, const char *e, unsigned lineno, const char *what,
                               char section[SI_INI_NAME_MAX + 1], si_err *err)
{
    if (e[-1] != ']')
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: section header without ']'", what,
                          lineno);
    const char *ns = s + 1, *ne = e - 1;
    trim(&ns, &ne);
    if (!valid_name(ns, ne))
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: invalid section name", what, lineno);
    memcpy(section, ns, (size_t)(ne - ns));
    section[ne - ns] = '\0';
    return SI_OK;
}

/* Append (section, key, value) unless the key is already there. */
static si_result add_entry(si_ini *ini, const char *section, const char *key, const char *vs,
                           const char *ve, unsigned lineno, si_err *err)
{
    const char *what = ini->what;
    for (size_t i = 0; i < ini->count; i++)
        if (strcmp(ini->entries[i].section, section) == 0 &&
            strcmp(ini->entries[i].key, key) == 0)
            return si_err_set(err, SI_ERR_PARSE, "%s: line %u: [%s] %s: duplicate (first on line %u)",
                              what, lineno, section, key, ini->entries[i].line);
    if (ini->count == SI_INI_MAX_ENTRIES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: line %u: more than %d keys", what, lineno,
                          SI_INI_MAX_ENTRIES);
    if (ini->count % 16 == 0) {
        si_ini_entry *ne2 = realloc(ini->entries, (ini->count + 16) * sizeof(*ne2));
        if (!ne2)
            return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", what);
        ini->entries = ne2;
    }
    si_ini_entry *en = &ini->entries[ini->count];
    memset(en, 0, sizeof(*en));
    strcpy(en->section, section);
    strcpy(en->key, key);
    en->line = lineno;
    en->value = strndup(vs, (size_t)(ve - vs));
    if (!en->value)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", what);
    ini->count++;
    return SI_OK;
}

/* "key = value" (value optionally in double quotes). */
static si_result parse_pair(si_ini *ini, const char *section, const char *s, const char *e,
                            unsigned lineno, si_err *err)
{
    const char *what = ini->what;
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq)
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: expected 'key = value'", what, lineno);
    const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
    trim(&ks, &ke);
    trim(&vs, &ve);
    if (!valid_name(ks, ke))
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: invalid key name", what, lineno);
    if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
        vs++;
        ve--;
    }
    if ((size_t)(ve - vs) > SI_INI_VALUE_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: line %u: value longer than %d bytes", what,
                          lineno, SI_INI_VALUE_MAX);
    char key[SI_INI_NAME_MAX + 1];
    memcpy(key, ks, (size_t)(ke - ks));
    key[ke - ks] = '\0';
    return add_entry(ini, section, key, vs, ve, lineno, err);
}

si_result si_ini_parse(const char *buf, size_t len, const char *what, si_ini **out, si_err *err)
{
    *out = NULL;
    if (!what)
        what = "config";
    if (len > SI_INI_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %d bytes", what,
                          SI_INI_MAX_BYTES);
    si_ini *ini = calloc(1, sizeof(*ini));
    if (!ini || !(ini->what = strdup(what))) {
        free(ini);
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", what);
    }
    char section[SI_INI_NAME_MAX + 1] = "";
    si_result rc = SI_OK;
    size_t pos = 0;
    unsigned lineno = 0;
    while (pos < len && rc == SI_OK) {
        lineno++;
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        const char *e = nl ? nl : buf + len;
        pos = (size_t)(e - buf) + (nl ? 1 : 0);
        if (memchr(s, '\0', (size_t)(e - s))) {
            rc = si_err_set(err, SI_ERR_PARSE, "%s: line %u: NUL byte", what, lineno);
            break;
        }
        trim(&s, &e);
        if (s == e || *s == '#' || *s == ';')
            continue;
        rc = *s == '[' ? parse_section(s, e, lineno, what, section, err)
                       : parse_pair(ini, section, s, e, lineno, err);
    }
    if (rc != SI_OK) {
        si_ini_free(ini);
        return rc;
    }
    *out = ini;
    return SI_OK;
}

si_result si_ini_load(const char *path, si_ini **out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int r = si_read_file(path, SI_INI_MAX_BYTES, &buf, &len);
    if (r == -EFBIG)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %d bytes", path,
                          SI_INI_MAX_BYTES);
    if (r == -ENOENT)
        return si_err_set(err, SI_ERR_NOT_FOUND, "%s: no such file", path);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    si_result rc = si_ini_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

static const si_ini_entry *find(const si_ini *ini, const char *section, const char *key)
{
    for (size_t i = 0; i < ini->count; i++)
        if (strcmp(ini->entries[i].section, section) == 0 && strcmp(ini->entries[i].key, key) == 0)
            return &ini->entries[i];
    return NULL;
}

const char *si_ini_get(const si_ini *ini, const char *section, const char *key)
{
    const si_ini_entry *e = find(ini, section, key);
    return e ? e->value : NULL;
}

static si_result missing(const si_ini *ini, const char *section, const char *key, si_err *err)
{
    return si_err_set(err, SI_ERR_NOT_FOUND, "%s: [%s] %s: missing", ini->what, section, key);
}

si_result si_ini_get_string(const si_ini *ini, const char *section, const char *key,
                            bool required, const char **out, si_err *err)
{
    const si_ini_entry *e = find(ini, section, key);
    if (!e)
        return required ? missing(ini, section, key, err) : SI_OK;
    if (required && e->value[0] == '\0')
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: [%s] %s: empty value", ini->what,
                          e->line, section, key);
    *out = e->value;
    return SI_OK;
}

si_result si_ini_get_int(const si_ini *ini, const char *section, const char *key, bool required,
                         int64_t min, int64_t max, int64_t *out, si_err *err)
{
    const si_ini_entry *e = find(ini, section, key);
    if (!e)
        return required ? missing(ini, section, key, err) : SI_OK;
    const char *v = e->value;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || (*v != '-' && (*v < '0' || *v > '9')))
        return si_err_set(err, SI_ERR_PARSE, "%s: line %u: [%s] %s: not an integer: '%s'",
                          ini->what, e->line, section, key, v);
    if (x < min || x > max)
        return si_err_set(err, SI_ERR_PARSE,
                          "%s: line %u: [%s] %s: %lld out of range [%lld, %lld]", ini->what,
                          e->line, section, key, x, (long long)min, (long long)max);
    *out = x;
    return SI_OK;
}

si_result si_ini_get_bool(const si_ini *ini, const char *section, const char *key, bool required,
                          bool *out, si_err *err)
{
    const si_ini_entry *e = find(ini, section, key);
    if (!e)
        return required ? missing(ini, section, key, err) : SI_OK;
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(e->value, yes[i]) == 0) {
            *out = true;
            return SI_OK;
        }
        if (strcasecmp(e->value, no[i]) == 0) {
            *out = false;
            return SI_OK;
        }
    }
    return si_err_set(err, SI_ERR_PARSE, "%s: line %u: [%s] %s: not a boolean: '%s'", ini->what,
                      e->line, section, key, e->value);
}
