/* job.h - a recovery job bound to its signed index (docs/security.md,
 * docs/formats.md "Command file").
 *
 * The command file is unsigned (it lives on the cache partition, which the
 * normal OS writes). It only *chooses*: its `image` lines name images of the
 * signed index.json by version/base, and its `update` lines must be exactly
 * the files of those images (image order, then each image's file `order`).
 * si_job_bind checks that choice against the index and the build installed on
 * the system partition and returns the plan: for every `update` line the
 * index entry (size, sha256) the staged file must match, and the build the
 * job installs. It is pure (no I/O): the recovery verifies the index's
 * signature and freshness first and the staged files afterwards.
 *
 * Path rules (the index offers the path from the installed build I):
 *   - the first image is a full with version >= I (== I: a repair, the same
 *     build re-installed) and minversion <= I (0 when none is installed), or a
 *     delta with base == I; with no installed build the path starts with a full;
 *   - each further image is a delta whose base is the previous image's version;
 *   - the path ends at the first image with bootme;
 *   - `format system` is in the job iff the path starts with a full.
 * Resuming an attempt that already modified the system (the recovery's own
 * attempt state says so), I may also be absent or any build on the path: the
 * job still ends at its last image, never below I. */
#ifndef SI_JOB_H
#define SI_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "index.h"
#include "result.h"

typedef struct si_job_installed {
    bool has_build;   /* the system partition records a build */
    int64_t build;
    bool resuming;    /* an earlier attempt of this job modified the system */
} si_job_installed;

typedef struct si_job_file {
    size_t cmd;                    /* index of the update line in the command file */
    size_t image;                  /* index into si_job_plan.images */
    const si_index_file *entry;    /* points into the index */
} si_job_file;

typedef struct si_job_plan {
    size_t nimages;
    const si_image *images[SI_COMMAND_MAX_LINES];  /* point into the index, path order */
    size_t nfiles;
    si_job_file files[SI_COMMAND_MAX_LINES];       /* one per update line, in order */
    bool starts_full;
    int64_t target;                                /* version of the path's last image */
} si_job_plan;

/* The basename of an index path ("pool/a.tar.zst" -> "a.tar.zst"). */
const char *si_job_basename(const char *path);

/* Check cf (already parsed) against the verified index idx and the installed
 * build. Errors name the command line: SI_ERR_COMMAND_FILE (sequence, update
 * lines that are not the images' files), SI_ERR_NOT_FOUND (an image the index
 * does not offer), SI_ERR_DOWNGRADE (the path does not start at the installed
 * build, or ends below it). */
si_result si_job_bind(const si_index *idx, const si_command_file *cf,
                      const si_job_installed *inst, si_job_plan *plan, si_err *err);

#endif
