/* apply.h - the apply engine: streams update tarballs (DESIGN §5) into a
 * target directory. Used by `sysimage apply` and by the recovery.
 *
 * Each tarball is read once through libarchive (zstd, xz, gzip, none); no
 * temporary copy, nothing held whole in memory. Members: system/<path>
 * (into target), removed (deltas: paths deleted first), partitions/<name>.img
 * (raw to a mapped path). Files are replaced atomically (temp + rename),
 * except in the first file of a fresh target (si_apply_opts.fresh); the
 * target is synced once (syncfs) at the end. Hostile members are refused
 * with SI_ERR_UNSAFE_PATH before anything outside the target is touched. */
#ifndef SI_APPLY_H
#define SI_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

/* done/total in bytes of compressed input read. */
typedef void (*si_apply_progress_fn)(uint64_t done, uint64_t total, void *ctx);

typedef struct si_partition_map {
    const char *name;   /* GPT label, e.g. "boot" */
    const char *path;   /* device or file to write */
} si_partition_map;

struct si_manifest;

/* What a file must be, from signed data (the recovery's index entry). With a
 * manifest, every member is checked against its line before it reaches its
 * final path (one read: docs/payloads.md); the whole file's size and sha256
 * are checked when the read ends. */
typedef struct si_apply_expect {
    uint64_t size;
    uint8_t sha256[32];
    const struct si_manifest *manifest;   /* NULL: the caller verified the file first */
} si_apply_expect;

typedef struct si_apply_opts {
    const char *target_dir;
    bool format;                       /* empty target_dir first (implies fresh) */
    /* The caller formatted target_dir just before this call and keeps the
     * system marked not installed (system_incomplete) until it returns
     * SI_OK. The first file's members are then created at their final names
     * (no temporary name, no rename): the target holds nothing a bad member
     * could replace. A name that exists already still takes temp + rename;
     * a member that fails its check is removed before the error returns.
     * Never guessed from the target's contents: set only by such callers. */
    bool fresh;
    const si_partition_map *partitions;
    size_t npartitions;
    si_apply_progress_fn progress;     /* may be NULL */
    void *progress_ctx;
    const si_apply_expect *expect;     /* NULL, or one per file */
} si_apply_opts;

/* Apply files in order (format first if asked), then syncfs the target. */
si_result si_apply_files(const si_apply_opts *opts, const char *const *files, size_t nfiles,
                         si_err *err);
/* Remove everything inside dir (dir itself stays). */
si_result si_empty_dir(const char *dir, si_err *err);

#endif
