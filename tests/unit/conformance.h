/* conformance.h - locate system-image's conformance fixtures for unit tests.
 *
 * The fixtures are system-image's, not the project's, so they are not in the
 * repository: they are read from the directory $SI_SHARED if set, else
 * <repo>/../shared, where the repo root is $SI_ROOT (set by tests/run_all.py)
 * or the current directory. Tests skip() when absent (tests/allowed-skips.txt
 * allows it). */
#ifndef SI_TEST_CONFORMANCE_H
#define SI_TEST_CONFORMANCE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fsutil.h"

/* <shared>/conformance/system-image/<rel> into buf; buf must hold 4096. */
static inline const char *conformance_path(const char *rel, char *buf)
{
    const char *shared = getenv("SI_SHARED");
    if (shared && shared[0]) {
        snprintf(buf, 4096, "%s/conformance/system-image/%s", shared, rel);
    } else {
        const char *root = getenv("SI_ROOT");
        snprintf(buf, 4096, "%s/../shared/conformance/system-image/%s",
                 root && root[0] ? root : ".", rel);
    }
    return buf;
}

/* Whether the fixtures are there; when not, says so on stderr as
 * "<test>: <reason>: skipped", the line tests/run_all.py reports the skip with. */
static inline int have_conformance_in(const char *test)
{
    char p[4096];
    struct stat st;
    if (stat(conformance_path("", p), &st) == 0 && S_ISDIR(st.st_mode))
        return 1;
    fprintf(stderr, "%s: no conformance fixtures in %s (set SI_SHARED): skipped\n", test, p);
    return 0;
}
#define have_conformance() have_conformance_in(__func__)

/* Whole fixture, NUL-terminated, or NULL. */
static inline char *read_fixture(const char *rel, size_t *len)
{
    char p[4096];
    char *buf = NULL;
    if (si_read_file(conformance_path(rel, p), 8 * 1024 * 1024, &buf, len) != 0)
        return NULL;
    return buf;
}

#endif
