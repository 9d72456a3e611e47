/* jsonutil.h - typed, bounded access to untrusted JSON (cJSON) with error
 * messages that name the field, and the canonical printer (sorted keys,
 * 4-space indent, trailing newline) used for everything sysimage writes. */
#ifndef SI_JSONUTIL_H
#define SI_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "result.h"

/* Parse len bytes (need not be NUL-terminated). SI_ERR_TOO_LARGE when
 * len > max, SI_ERR_PARSE with the byte offset otherwise. `what` names the
 * document in messages ("index.json"). Nesting deeper than 64 is refused. */
si_result si_json_parse(const char *buf, size_t len, size_t max, const char *what,
                        cJSON **out, si_err *err);

/* Getters: `ctx` is the path of obj for messages ("images[3]", "" for the
 * root); a missing optional field leaves *out untouched and sets *present
 * (may be NULL) to false. A field of the wrong type is SI_ERR_PARSE
 * "<ctx>.<key>: expected <type>". */
si_result si_json_get_string(const cJSON *obj, const char *ctx, const char *key, bool required,
                             const char **out, bool *present, si_err *err);
/* Integers must be integral JSON numbers within [min, max] (|x| <= 2^53). */
si_result si_json_get_int(const cJSON *obj, const char *ctx, const char *key, bool required,
                          int64_t min, int64_t max, int64_t *out, bool *present, si_err *err);
si_result si_json_get_bool(const cJSON *obj, const char *ctx, const char *key, bool required,
                           bool *out, bool *present, si_err *err);
si_result si_json_get_array(const cJSON *obj, const char *ctx, const char *key, bool required,
                            const cJSON **out, bool *present, si_err *err);
si_result si_json_get_object(const cJSON *obj, const char *ctx, const char *key, bool required,
                             const cJSON **out, bool *present, si_err *err);

/* Canonical text: object keys sorted (byte order), 4-space indent, ", " free
 * (one member per line), trailing newline. malloc'd. */
si_result si_json_print_sorted(const cJSON *item, char **out, si_err *err);

/* strdup that reports SI_ERR_NOMEM. */
si_result si_strdup(const char *s, char **out, si_err *err);

#endif
