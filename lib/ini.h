/* ini.h - a small, strict INI parser for configuration files.
 *
 *   # comment            ; comment
 *   [section]
 *   key = value
 *
 * Keys before the first section belong to section "". Section and key names
 * are [A-Za-z0-9_.-]+; values are trimmed of surrounding blanks and may be
 * empty; one optional pair of matching double quotes around a value is
 * removed. A duplicate section+key, a line that is none of the above, or an
 * over-long line is an error that names the line. Input is bounded by
 * SI_INI_MAX_BYTES. */
#ifndef SI_INI_H
#define SI_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_INI_MAX_BYTES (64 * 1024)
#define SI_INI_MAX_ENTRIES 256
#define SI_INI_NAME_MAX 64      /* section or key, without NUL */
#define SI_INI_VALUE_MAX 1024   /* without NUL */

typedef struct si_ini_entry {
    char section[SI_INI_NAME_MAX + 1];
    char key[SI_INI_NAME_MAX + 1];
    char *value;
    unsigned line;
} si_ini_entry;

typedef struct si_ini {
    char *what;             /* file name for messages */
    size_t count;
    si_ini_entry *entries;
} si_ini;

/* Parse len bytes of untrusted text; `what` names the file in messages. */
si_result si_ini_parse(const char *buf, size_t len, const char *what, si_ini **out, si_err *err);
si_result si_ini_load(const char *path, si_ini **out, si_err *err);
void si_ini_free(si_ini *ini);

/* NULL when absent. */
const char *si_ini_get(const si_ini *ini, const char *section, const char *key);
/* Typed getters: a missing required key is SI_ERR_NOT_FOUND "<what>: [section] key: missing";
 * a malformed value is SI_ERR_PARSE naming the key and its line. An absent
 * optional key leaves *out untouched. */
si_result si_ini_get_string(const si_ini *ini, const char *section, const char *key,
                            bool required, const char **out, si_err *err);
si_result si_ini_get_int(const si_ini *ini, const char *section, const char *key, bool required,
                         int64_t min, int64_t max, int64_t *out, si_err *err);
/* "true|yes|on|1" / "false|no|off|0" (case-insensitive). */
si_result si_ini_get_bool(const si_ini *ini, const char *section, const char *key, bool required,
                          bool *out, si_err *err);

#endif
