/* localrepo.h - a published repository (docs/publishing.md) on the local
 * filesystem, verified the way the stub verifies a server: the keyrings up to
 * image-signing (and the device's) against an archive-master, channels.json,
 * the device's index.json (signatures), then the files of one full image
 * (size, sha256 from the index, signature). Used by `sysimage image` and
 * `sysimage flash-media`; nothing is read from the repository unverified.
 *
 * Paths in channels.json and index.json are absolute from the repository
 * root ("/pool/..."); ".." components are refused. */
#ifndef SI_LOCALREPO_H
#define SI_LOCALREPO_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "keyring.h"
#include "result.h"

typedef struct si_repo_build {
    si_index *index;
    const si_image *image;  /* the full image of the build, points into index */
    int64_t version;
    size_t nfiles;
    char **paths;           /* local paths in apply order (by `order`), verified */
    char **sigpaths;        /* their signature files */
    char *index_path, *index_sig;
} si_repo_build;

/* build < 0: the newest full image of the index. now: time for keyring
 * expiry (the later of the clock and what the caller trusts). */
si_result si_repo_open_build(const char *repo, const char *archive_master, const char *channel,
                             const char *device, int64_t build, int64_t now, si_repo_build *out,
                             si_err *err);
void si_repo_build_free(si_repo_build *b);

/* The chain of trust of a repository: am (takes ownership, also on failure)
 * installed in t (si_trust_init'ed by the caller), then keyrings/ up to
 * image-signing verified. */
si_result si_repo_load_trust(const char *repo, si_keyring *am, si_trust *t, si_err *err);
/* si_repo_open_build with a trust already loaded (a device-signing keyring
 * named by channels.json is added to it). */
si_result si_repo_open_build_trusted(const char *repo, si_trust *t, const char *channel,
                                     const char *device, int64_t build, si_repo_build *out,
                                     si_err *err);

/* "/a/b" under repo -> "repo/a/b"; SI_ERR_UNSAFE_PATH for relative paths or
 * "..". */
si_result si_repo_join(const char *repo, const char *path, char *out, size_t outlen, si_err *err);

#endif
