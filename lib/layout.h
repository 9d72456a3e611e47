/* layout.h - the update-file layout, defined once (docs/formats.md,
 * "Update files"). Members of an update tarball are:
 *   system/<path>           into the system partition at <path>
 *   patched                 (deltas with patches, first member) the files patched,
 *                           with the sha256 of their old and new content
 *   removed                 (deltas, first or after patched) paths deleted before extraction
 *   patch/<path>            binary patch of system/<path> (lib/patch.h)
 *   partitions/<label>.img  written raw to the partition with GPT label <label>
 * A label written raw is 1..59 bytes of [A-Za-z0-9._-], not starting with '.',
 * and never one of SI_LAYOUT_NEVER_RAW (system, userdata, cache, misc): those
 * hold filesystems or the boot control and are only ever formatted/mounted.
 * A first member `manifest` (lib/manifest.h) lists all the others.
 * `sysimage publish`, lib/apply and the recovery all ask this module. */
#ifndef SI_LAYOUT_H
#define SI_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_LAYOUT_SYSTEM "system"
#define SI_LAYOUT_SYSTEM_PREFIX "system/"
#define SI_LAYOUT_REMOVED "removed"
#define SI_LAYOUT_MANIFEST "manifest"
#define SI_LAYOUT_PATCHED "patched"
#define SI_LAYOUT_PATCH_PREFIX "patch/"
#define SI_LAYOUT_PART_PREFIX "partitions/"
#define SI_LAYOUT_PART_SUFFIX ".img"
#define SI_LAYOUT_LABEL_MAX 59
/* The build record every published image carries (lib/version). */
#define SI_LAYOUT_VERSION_MEMBER "system/etc/sysimage/version.json"

typedef enum si_member_kind {
    SI_MEMBER_SYSTEM,     /* "system" or "system/..." */
    SI_MEMBER_REMOVED,    /* "removed" */
    SI_MEMBER_PARTITION,  /* "partitions/<label>.img" */
    SI_MEMBER_PATCHED,    /* "patched" */
    SI_MEMBER_PATCH,      /* "patch/<path>" (the path is checked by lib/apply) */
} si_member_kind;

/* Partitions an update never writes raw. */
extern const char *const si_layout_never_raw[];
extern const size_t si_layout_never_raw_count;
/* The reference board's partitions an update may write raw (the recovery
 * looks these up by GPT label when no --partition override is given). */
extern const char *const si_layout_board_raw[];
extern const size_t si_layout_board_raw_count;

/* NULL when label may be written raw, else why not. */
const char *si_layout_raw_label_why(const char *label);
static inline bool si_layout_raw_label_ok(const char *label)
{
    return si_layout_raw_label_why(label) == NULL;
}

/* Classify a tarball member name and check it against the layout:
 * SI_ERR_UNSAFE_PATH naming the member when it is outside system/, removed
 * and partitions/, or a partitions/ member that is not <label>.img with a
 * label allowed raw. For partitions, label (size >= SI_LAYOUT_LABEL_MAX + 1,
 * may be NULL) receives the label. The path below system/ is checked by
 * lib/apply (no "..", no absolute path). */
si_result si_layout_check_member_name(const char *name, si_member_kind *kind, char *label,
                                      size_t label_size, si_err *err);

/* A relative path of the tree: non-empty, no empty, "." or ".." component,
 * no control byte (0x01-0x1f, 0x7f), shorter than PATH_MAX. */
bool si_layout_rel_path_ok(const char *p);
/* A member name under system/ -> the path below it (one trailing '/'
 * dropped; "system" and "system/" give ""); false outside system/ or unsafe. */
bool si_layout_system_rel(const char *name, char *rel, size_t relsz);

/* What a pre-scan of an update tarball found (si_layout_scan_tarball). */
#define SI_LAYOUT_SCAN_MAX_PARTS 16
#define SI_LAYOUT_VERSION_MAX 4096
typedef struct si_layout_scan {
    size_t nparts;
    char parts[SI_LAYOUT_SCAN_MAX_PARTS][SI_LAYOUT_LABEL_MAX + 1];
    uint64_t part_size[SI_LAYOUT_SCAN_MAX_PARTS];  /* bytes of each image (the largest) */
    bool has_version;                     /* member `version_member` present */
    size_t version_len;
    char version[SI_LAYOUT_VERSION_MAX + 1];  /* its bytes, NUL-terminated */
} si_layout_scan;

/* Read every member header of the tarball open at fd (from its current
 * offset; the data is skipped, decompressed but not kept) and check each name
 * with si_layout_check_member_name, before anything is written anywhere.
 * Records the raw partitions named (with their image sizes, so they can be
 * checked against the partitions before anything is written) and the bytes of version_member (bounded;
 * may be NULL). `what` names the file in errors. */
si_result si_layout_scan_tarball(int fd, const char *what, const char *version_member,
                                 si_layout_scan *out, si_err *err);
/* The same, calling progress(bytes of the file read so far, ctx) after each
 * read of the file (progress may be NULL). */
typedef void (*si_layout_progress_fn)(uint64_t done, void *ctx);
si_result si_layout_scan_tarball_progress(int fd, const char *what, const char *version_member,
                                          si_layout_scan *out, si_layout_progress_fn progress,
                                          void *ctx, si_err *err);

#endif
