/* conformance.h - locate system-image's conformance fixtures for unit tests.
 *
 * The fixtures are system-image's, not the project's, so they are not in the
 * repository: they are read from the directory $SI_SHARED if set, else
 * <repo>/../shared, where the repo root is $SI_ROOT (set by tests/run_all.py)
 * or the current directory. Tests skip() when absent (tests/allowed-skips.txt
 * allows it). */
#ifndef SI_TEST_CONFORMANCE_H
#define SI_TEST_CONFORMANCE_H

#include <dirent.h>
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

/* For each fixture in the folders dirs[0..n) whose file name match()
 * accepts: fn(rel, name, buf, len, ctx) with rel its path under the
 * fixtures, name its file name and buf its whole text (freed after). Returns
 * how many were seen. Needs cmocka. */
typedef void (*conformance_fn)(const char *rel, const char *name, char *buf, size_t len, void *ctx);
static inline int conformance_each(const char *const *dirs, size_t n, int (*match)(const char *name),
                                   conformance_fn fn, void *ctx)
{
    int seen = 0;
    for (size_t d = 0; d < n; d++) {
        char p[4096];
        DIR *dh = opendir(conformance_path(dirs[d], p));
        assert_non_null(dh);
        struct dirent *de;
        while ((de = readdir(dh))) {
            if (!match(de->d_name))
                continue;
            char rel[512];
            snprintf(rel, sizeof(rel), "%s/%s", dirs[d], de->d_name);
            size_t len = 0;
            char *buf = read_fixture(rel, &len);
            assert_non_null(buf);
            fn(rel, de->d_name, buf, len, ctx);
            free(buf);
            seen++;
        }
        closedir(dh);
    }
    return seen;
}

#endif
