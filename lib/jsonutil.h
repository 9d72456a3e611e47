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

/* A JSON document read into a structure of its own (index.json,
 * channels.json): `size` zeroed bytes are allocated and filled from the
 * parsed root by fill(); when fill fails, release() frees what it left. */
typedef struct si_json_doc_type {
    const char *name; /* "index.json", in messages */
    size_t max_bytes;
    size_t size;
    si_result (*fill)(const cJSON *root, void *doc, si_err *err);
    void (*release)(void *doc);
} si_json_doc_type;

/* Parse len bytes as a document of type t into a new structure (*out, NULL
 * on failure). */
si_result si_json_parse_doc(const si_json_doc_type *t, const char *json, size_t len, void **out,
                            si_err *err);
/* The same from a file of at most t->max_bytes; errors are prefixed with
 * the path. */
si_result si_json_load_doc(const si_json_doc_type *t, const char *path, void **out, si_err *err);

/* The typed face of a document type, in its module's .c file: defines
 *   si_result parse(const char *json, size_t len, T **out, si_err *err);
 *   si_result load(const char *path, T **out, si_err *err);
 * over si_json_parse_doc/si_json_load_doc, with
 *   si_result fill(const cJSON *root, T *doc, si_err *err)  (fills a zeroed T)
 *   void release(T *doc)                                     (frees a partly filled T). */
#define SI_JSON_DOC_FUNCS(T, name, max_bytes, fill, release, parse, load)                   \
    static si_result parse##_fill(const cJSON *root, void *doc, si_err *err)                \
    {                                                                                       \
        return fill(root, (T *)doc, err);                                                   \
    }                                                                                       \
    static void parse##_release(void *doc)                                                  \
    {                                                                                       \
        release((T *)doc);                                                                  \
    }                                                                                       \
    static const si_json_doc_type parse##_type = {name, max_bytes, sizeof(T), parse##_fill, \
                                                  parse##_release};                         \
    si_result parse(const char *json, size_t len, T **out, si_err *err)                     \
    {                                                                                       \
        void *doc = NULL;                                                                   \
        si_result r = si_json_parse_doc(&parse##_type, json, len, &doc, err);               \
        *out = doc;                                                                         \
        return r;                                                                           \
    }                                                                                       \
    si_result load(const char *path, T **out, si_err *err)                                  \
    {                                                                                       \
        void *doc = NULL;                                                                   \
        si_result r = si_json_load_doc(&parse##_type, path, &doc, err);                     \
        *out = doc;                                                                         \
        return r;                                                                           \
    }

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
