/* trustrec.h - the recovery's trust record: what this device has verified
 * before, kept where the normal OS cannot forge it (docs/security.md).
 *
 * Stored as the extended attribute SI_TRUSTREC_XATTR of the system
 * partition's root directory (the normal OS mounts system read-only; the
 * recovery writes it when it mounts the system read-write, so a `format
 * system` never loses it):
 *   {"format": 1, "index_generated_at": <epoch s>,
 *    "keyrings": {"image-master": <version>, "image-signing": <version>,
 *                 "device-signing": <version>, "blacklist": <version>}}
 * A type absent from "keyrings" was never seen. The recovery refuses a job
 * whose keyrings are older than these versions, a job without a blacklist
 * once one was seen, and an index older than index_generated_at; the latter
 * is also the newest trusted timestamp of the clock rule. */
#ifndef SI_TRUSTREC_H
#define SI_TRUSTREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "result.h"

#define SI_TRUSTREC_XATTR "trusted.sysimage.trust"
#define SI_TRUSTREC_MAX_BYTES 4096

typedef struct si_trust_record {
    int64_t keyring_version[SI_KR_TYPE_COUNT]; /* -1: never seen */
    int64_t index_generated_at;                /* -1: none */
} si_trust_record;

void si_trust_record_init(si_trust_record *rec);
si_result si_trust_record_parse(const char *json, size_t len, si_trust_record *out, si_err *err);
si_result si_trust_record_format(const si_trust_record *rec, char **json_out, si_err *err);
/* From / to the xattr of dir (the mounted system root). Absent: *found =
 * false, rec initialised, SI_OK. */
si_result si_trust_record_read(const char *dir, si_trust_record *rec, bool *found, si_err *err);
si_result si_trust_record_write(const char *dir, const si_trust_record *rec, si_err *err);

/* The keyrings loaded in t against rec: each no older than the version seen;
 * a blacklist present once one was seen; and when the image-signing keyring
 * names a blacklist, the staged one must be it (blacklist_sha256: lowercase
 * hex of the staged blacklist.keyring bytes, NULL when none was staged).
 * SI_ERR_BLACKLISTED naming the keyring (a revocation undone otherwise). */
si_result si_trust_record_check(const si_trust_record *rec, const si_trust *t,
                                const char *blacklist_sha256, si_err *err);
/* Raise rec to what t holds and to index_generated_at (if newer). */
void si_trust_record_raise(si_trust_record *rec, const si_trust *t, int64_t index_generated_at);
/* Raise rec to other, floor by floor: each keyring version and
 * index_generated_at becomes the larger of the two. */
void si_trust_record_merge(si_trust_record *rec, const si_trust_record *other);

#endif
