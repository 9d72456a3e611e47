/* payload.h - building update tarballs (DESIGN §5) from OS trees or full
 * tarballs: full images with the system/ prefix, and deltas (first member
 * `removed`, then added and modified members). Deterministic output: sorted
 * paths, a hardlink's target before the link, numeric owners. */
#ifndef SI_PAYLOAD_H
#define SI_PAYLOAD_H

#include <stdbool.h>

#include "result.h"
#include "tarformat.h"


typedef struct si_build_opts {
    si_compression compression;   /* default SI_COMP_ZSTD */
    int level;                    /* 0 = library default */
    bool whole_files;             /* deltas: no patch/ members, changed files shipped whole */
    bool no_manifest;             /* no first member `manifest` (for recoveries before it) */
} si_build_opts;

/* from: a directory (OS tree) or a full tarball (members system/...). */
si_result si_build_full(const char *from, const char *out, const si_build_opts *opts, si_err *err);
/* old/new: directories or full tarballs. */
si_result si_build_delta(const char *from_old, const char *to_new, const char *out,
                         const si_build_opts *opts, si_err *err);

#endif
