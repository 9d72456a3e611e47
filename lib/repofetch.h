/* repofetch.h - a published repository served over HTTP(S), mirrored file by
 * file into a local cache directory as lib/localrepo verifies it: the
 * fetcher of an si_repo_src. Documents (keyrings, channels.json, index.json,
 * signatures) are fetched bounded by their format's maximum; update files
 * are streamed to disk (lib/http: through .part, resumed, never more than
 * the size the verified index gives) and hashed from disk by localrepo.
 * Nothing is trusted because it was downloaded: localrepo checks every
 * signature, size and sha256 before a caller reads a byte. */
#ifndef SI_REPOFETCH_H
#define SI_REPOFETCH_H

#include <stdint.h>

#include "localrepo.h"
#include "result.h"

typedef struct si_repofetch si_repofetch;

/* url: "https://host/repo" (http:// too: the signatures are the trust);
 * ca_file: NULL for the system's CA store; cache: an existing directory. */
si_result si_repofetch_open(const char *url, const char *ca_file, const char *cache,
                            si_repofetch **out, si_err *err);
/* The source to give lib/localrepo: root = the cache, name = the URL. */
void si_repofetch_src(si_repofetch *f, si_repo_src *src);
/* Bytes received so far, files fetched. */
void si_repofetch_stats(const si_repofetch *f, uint64_t *bytes, uint64_t *files);
void si_repofetch_close(si_repofetch *f);

#endif
