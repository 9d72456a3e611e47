/* keyring.h - keyrings and the chain of trust (docs/security.md).
 *
 * Keyring JSON: {"format": 1, "type": "...", "expiry": <epoch s, optional>,
 *                "model": "<device, optional>", "keys": ["-----BEGIN PUBLIC KEY-----...", ...],
 *                "version": <integer >= 0, optional, absent = 0>,
 *                "blacklist": "<sha256 hex, image-signing only, optional>"}
 * `version` orders keyrings of one type for revocation (docs/security.md):
 * devices remember the newest verified version and refuse older ones. An
 * image-signing keyring's `blacklist` names the exact blacklist.keyring file
 * (sha256 of its bytes) issued with it; a device given that keyring must be
 * given that blacklist.
 * with a detached signature <file>.sig by its parent:
 *   archive-master (built in, unsigned) -> image-master -> image-signing
 *   -> device-signing; image-master -> blacklist. */
#ifndef SI_KEYRING_H
#define SI_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "result.h"
#include "sigfile.h"

#define SI_KEYRING_MAX_BYTES (256 * 1024)
#define SI_KEYRING_MAX_KEYS 64
#define SI_MODEL_MAX 128

typedef enum si_keyring_type {
    SI_KR_ARCHIVE_MASTER = 0,
    SI_KR_IMAGE_MASTER,
    SI_KR_IMAGE_SIGNING,
    SI_KR_DEVICE_SIGNING,
    SI_KR_BLACKLIST,
    SI_KR_TYPE_COUNT
} si_keyring_type;

typedef struct si_keyring {
    si_keyring_type type;
    bool has_expiry;
    int64_t expiry;             /* epoch seconds */
    char model[SI_MODEL_MAX];   /* "" = any device */
    int64_t version;            /* 0 when absent */
    char blacklist_sha256[65];  /* lowercase hex; "" when absent */
    size_t nkeys;
    si_key *keys[SI_KEYRING_MAX_KEYS];
} si_keyring;

const char *si_keyring_type_name(si_keyring_type t);   /* "image-signing" */
si_result si_keyring_type_parse(const char *name, si_keyring_type *out);

si_result si_keyring_parse(const char *json, size_t len, si_keyring **out, si_err *err);
si_result si_keyring_load(const char *path, si_keyring **out, si_err *err);
/* Sorted keys, 4-space indent, trailing newline; malloc'd. */
si_result si_keyring_format(const si_keyring *kr, char **json_out, si_err *err);
/* Takes ownership of key on success. */
si_result si_keyring_add_key(si_keyring *kr, si_key *key, si_err *err);
si_keyring *si_keyring_new(si_keyring_type type);
void si_keyring_free(si_keyring *kr);
bool si_keyring_has_key_id(const si_keyring *kr, const char *key_id);

/* Who verified a signature. */
typedef struct si_signer {
    char key_id[SI_KEY_ID_LEN + 1];
    si_keyring_type keyring_type;
} si_signer;

/* SI_OK when at least one stanza of sf verifies digest with a key of one of
 * the trusted keyrings that is not in blacklist (may be NULL).
 * SI_ERR_BLACKLISTED when only blacklisted keys verify, else SI_ERR_BAD_SIGNATURE. */
si_result si_verify_digest(const si_sigfile *sf, const uint8_t digest[SI_SHA256_LEN],
                           const si_keyring *const *trusted, size_t ntrusted,
                           const si_keyring *blacklist, si_signer *who, si_err *err);
/* Hash path (streamed) and verify it against sigpath. */
si_result si_verify_file(const char *path, const char *sigpath,
                         const si_keyring *const *trusted, size_t ntrusted,
                         const si_keyring *blacklist, si_signer *who, si_err *err);

/* Validate a keyring already parsed from bytes whose digest is given:
 * signature by parent (not blacklisted), type == expected, model absent or
 * == device (device NULL: no check), expiry > now. */
si_result si_keyring_validate(const si_keyring *kr, const uint8_t digest[SI_SHA256_LEN],
                              const si_sigfile *sig, si_keyring_type expected,
                              const si_keyring *parent, const si_keyring *blacklist,
                              const char *device, int64_t now, si_err *err);

/* The chain of trust of one program run (owned by its main). */
typedef struct si_trust {
    si_keyring *ring[SI_KR_TYPE_COUNT]; /* indexed by type; NULL = not loaded */
    const char *device;                 /* model to enforce; NULL = no check */
    int64_t now;                        /* the later of clock and trusted floor */
} si_trust;

void si_trust_init(si_trust *t, const char *device, int64_t now);
/* Install the (built-in or given) archive-master keyring; takes ownership
 * (also on failure, when am is freed). It must have type archive-master, at
 * least one key, and pass the model and expiry checks. */
si_result si_trust_set_archive_master(si_trust *t, si_keyring *am, si_err *err);
/* Load and validate keyring files given in any order: they are parsed first,
 * then validated in chain order (image-master, blacklist, image-signing,
 * device-signing). The blacklist is signed by image-master, so image-master
 * (and the blacklist itself) are validated before it is known; once it is,
 * every keyring of the batch is checked again: a keyring any of whose
 * verifying signers is blacklisted is refused (SI_ERR_BLACKLISTED, naming
 * the key), even when another stanza verifies. Keyrings installed by an
 * earlier call are not re-checked. Duplicate types, an
 * archive-master or a missing parent are errors naming the file. A file
 * named "<type>.keyring" must hold a keyring of that type. All or nothing:
 * on error none of the files is installed in t. */
si_result si_trust_load_files(si_trust *t, const char *const *paths, const char *const *sigpaths,
                              size_t n, si_err *err);

typedef enum si_purpose {
    SI_PURPOSE_CHANNELS,  /* image-signing */
    SI_PURPOSE_INDEX,     /* image-signing or device-signing */
    SI_PURPOSE_UPDATE,    /* image-signing or device-signing */
} si_purpose;

si_result si_trust_verify_file(const si_trust *t, si_purpose purpose, const char *path,
                               const char *sigpath, si_signer *who, si_err *err);
si_result si_trust_verify_digest(const si_trust *t, si_purpose purpose,
                                 const uint8_t digest[SI_SHA256_LEN], const si_sigfile *sf,
                                 si_signer *who, si_err *err);
void si_trust_free(si_trust *t);

#endif
