/* index.h - a device's index.json (docs/formats.md, system-image field names).
 *
 * {"global": {"generated_at": "Mon Apr 29 18:45:27 UTC 2013",
 *             "expires": "Mon May 06 18:45:27 UTC 2013"},
 *  "images": [{"type": "full"|"delta", "version": N, "base": N (deltas),
 *              "description": "...", "description-xx_CC": "...",
 *              "bootme": true, "minversion": N, "phased-percentage": P,
 *              "version_detail": "...",
 *              "files": [{"path", "signature", "checksum", "size", "order",
 *                         "manifest": {"checksum", "size"} (optional)}]}]}
 * Unknown fields are ignored; errors name the field, e.g. "images[3].files[0].size". */
#ifndef SI_INDEX_H
#define SI_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_INDEX_MAX_BYTES (4 * 1024 * 1024)

typedef enum si_image_type { SI_IMAGE_FULL, SI_IMAGE_DELTA } si_image_type;

typedef struct si_index_file {
    char *path;
    char *signature;
    char checksum[65];      /* lowercase sha256 hex */
    uint64_t size;
    int64_t order;
    bool has_manifest;      /* optional "manifest": {"checksum", "size"} of the tarball's */
    char manifest_checksum[65]; /* first member `manifest` (lib/manifest.h) */
    uint64_t manifest_size;
} si_index_file;

typedef struct si_description {
    char *key;              /* "description", "description-de", "description-en_US" */
    char *text;
} si_description;

typedef struct si_image {
    si_image_type type;
    int64_t version;
    bool has_base;
    int64_t base;           /* deltas */
    bool bootme;
    int64_t minversion;     /* fulls; default 0 */
    int phased_percentage;  /* 0..100, default 100 */
    char *version_detail;   /* NULL if absent */
    size_t ndescriptions;
    si_description *descriptions;
    size_t nfiles;
    si_index_file *files;   /* as in the document; see si_image_sorted_files */
} si_image;

typedef struct si_index {
    char *generated_at;     /* NULL if absent */
    int64_t generated_at_epoch; /* -1 if absent */
    char *expires;          /* global.expires, same format; NULL if absent */
    int64_t expires_epoch;  /* -1 if absent */
    size_t nimages;
    si_image *images;
} si_index;

si_result si_index_parse(const char *json, size_t len, si_index **out, si_err *err);
si_result si_index_load(const char *path, si_index **out, si_err *err);
/* Sorted keys, 4-space indent, trailing newline (what the publisher writes). */
si_result si_index_format(const si_index *idx, char **json_out, si_err *err);
void si_index_free(si_index *idx);

/* Building images (the publisher): free what an image owns and zero it;
 * append a deep copy of f; set the plain "description". */
void si_image_clear(si_image *img);
si_result si_image_add_file(si_image *img, const si_index_file *f, si_err *err);
si_result si_image_set_description(si_image *img, const char *text, si_err *err);

/* Freshness (docs/security.md): an index is fresh at `now` when it carries
 * global.expires and now < expires. `now` is the later of the clock, the
 * binary's build time and the newest trusted timestamp the device has seen
 * (see si_index_clock). SI_ERR_STALE_INDEX naming the dates otherwise. */
si_result si_index_check_fresh(const si_index *idx, int64_t now, si_err *err);
/* The clock rule: the latest of the three (each may be < 0 = unknown). */
int64_t si_index_clock(int64_t wall_clock, int64_t build_time, int64_t newest_trusted);

/* "Mon Apr 29 18:45:27 UTC 2013" <-> epoch seconds. */
si_result si_index_parse_time(const char *s, int64_t *epoch, si_err *err);
void si_index_format_time(int64_t epoch, char out[64]);

/* Description for a locale ("de_DE"): description-de_DE, then description-de,
 * then description; NULL if none. */
const char *si_image_description(const si_image *img, const char *locale);
/* Files sorted by `order` (stable); malloc'd array of pointers into img. */
si_result si_image_sorted_files(const si_image *img, const si_index_file ***out, si_err *err);

#endif
