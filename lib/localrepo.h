/* localrepo.h - a published repository (docs/publishing.md) verified the way
 * the stub verifies a server: the keyrings up to image-signing (and the
 * device's) against an archive-master, channels.json, the device's
 * index.json (signatures, global.expires with the clock rule), then the
 * files of one full image (size, sha256 from the index, signature). Used by
 * `sysimage image`, `sysimage flash-media` and the recovery's flash mode;
 * nothing is read from the repository unverified.
 *
 * The files are read from a local directory. A source may carry a fetcher
 * that brings each file there first, in the order of the chain of trust
 * (lib/repofetch: a URL repository mirrored into a cache directory, each
 * download bounded by what the already verified documents announce).
 *
 * Paths in channels.json and index.json are absolute from the repository
 * root ("/pool/..."); ".." components are refused. */
#ifndef SI_LOCALREPO_H
#define SI_LOCALREPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "keyring.h"
#include "result.h"
#include "sha256.h"

typedef struct si_repo_build {
    si_index *index;
    const si_image *image;  /* the full image of the build, points into index */
    int64_t version;
    size_t nfiles;
    char **paths;           /* local paths in apply order (by `order`), verified */
    char **sigpaths;        /* their signature files */
    char *index_path, *index_sig;
    bool expired;           /* the index had expired (only with allow_expired) */
} si_repo_build;

/* Where the files come from. fetch (NULL for a plain directory) is called
 * before a file is read: bring the server path `path` ("/pool/...") to the
 * local file `local` (root + path); size is exact when a signed document
 * gives it, else 0 and max bounds the download; a file the source does not
 * have is SI_ERR_NOT_FOUND. name: how errors name the repository (a URL). */
typedef si_result (*si_repo_fetch_fn)(void *ctx, const char *path, const char *local,
                                      uint64_t size, uint64_t max, si_err *err);
typedef struct si_repo_src {
    const char *root;
    const char *name;       /* NULL: root */
    si_repo_fetch_fn fetch;
    void *ctx;
} si_repo_src;

typedef struct si_repo_query {
    const char *channel, *device;
    int64_t build;          /* < 0: the newest full image */
    bool allow_expired;     /* accept an expired index (out->expired tells); the
                               caller must say so in its output */
} si_repo_query;

/* Compare a file's measured sha256 and size with its index entry. */
si_result si_repo_check_digest(const char *path, const si_index_file *f,
                               const uint8_t d[SI_SHA256_LEN], uint64_t size, si_err *err);

/* build < 0: the newest full image of the index. now: time for keyring and
 * index expiry (the clock rule: si_index_clock). An expired index is
 * SI_ERR_STALE_INDEX. */
si_result si_repo_open_build(const char *repo, const char *archive_master, const char *channel,
                             const char *device, int64_t build, int64_t now, si_repo_build *out,
                             si_err *err);
si_result si_repo_open_build_from(const si_repo_src *src, const char *archive_master,
                                  const si_repo_query *q, int64_t now, si_repo_build *out,
                                  si_err *err);
void si_repo_build_free(si_repo_build *b);

/* The chain of trust of a repository: am (takes ownership, also on failure)
 * installed in t (si_trust_init'ed by the caller), then keyrings/ up to
 * image-signing verified. */
si_result si_repo_load_trust(const char *repo, si_keyring *am, si_trust *t, si_err *err);
si_result si_repo_load_trust_from(const si_repo_src *src, si_keyring *am, si_trust *t,
                                  si_err *err);
/* si_repo_open_build with a trust already loaded (a device-signing keyring
 * named by channels.json is added to it). */
si_result si_repo_open_build_trusted(const char *repo, si_trust *t, const char *channel,
                                     const char *device, int64_t build, si_repo_build *out,
                                     si_err *err);
si_result si_repo_open_build_trusted_from(const si_repo_src *src, si_trust *t,
                                          const si_repo_query *q, si_repo_build *out, si_err *err);

/* "/a/b" under repo -> "repo/a/b"; SI_ERR_UNSAFE_PATH for relative paths or
 * "..". */
si_result si_repo_join(const char *repo, const char *path, char *out, size_t outlen, si_err *err);

#endif
