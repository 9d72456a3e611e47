/* apply.h - the apply engine: streams update tarballs (DESIGN §5) into a
 * target directory. Used by `sysimage apply` and by the recovery.
 *
 * Each tarball is read once through libarchive (zstd, xz, gzip, none); no
 * temporary copy, nothing held whole in memory. Members: system/<path>
 * (into target), removed (deltas: paths deleted first), partitions/<name>.img
 * (raw to a mapped path). Files are replaced atomically (temp + rename);
 * the target is synced once (syncfs) at the end. Hostile members are refused
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

typedef struct si_apply_opts {
    const char *target_dir;
    bool format;                       /* empty target_dir first */
    const si_partition_map *partitions;
    size_t npartitions;
    si_apply_progress_fn progress;     /* may be NULL */
    void *progress_ctx;
} si_apply_opts;

/* Apply files in order (format first if asked), then syncfs the target. */
si_result si_apply_files(const si_apply_opts *opts, const char *const *files, size_t nfiles,
                         si_err *err);
/* Remove everything inside dir (dir itself stays). */
si_result si_empty_dir(const char *dir, si_err *err);

#endif
