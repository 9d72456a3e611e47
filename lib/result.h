/* result.h - the one enum of result codes shared by every sysimage program.
 *
 * Library functions return si_result (SI_OK == 0) and, when given a non-NULL
 * si_err, fill it with the code and a message naming what was wrong.
 * Programs exit with the code; the recovery reports it in last_result.json
 * and through QEMU's isa-debug-exit. Values are stable: never renumber. */
#ifndef SI_RESULT_H
#define SI_RESULT_H

#include <stddef.h>

typedef enum si_result {
    SI_OK = 0,
    SI_ERR_USAGE = 1,            /* bad command line */
    SI_ERR_IO = 2,               /* read/write/open failed */
    SI_ERR_NOMEM = 3,
    SI_ERR_PARSE = 4,            /* malformed input (JSON, signature file, ...) */
    SI_ERR_TOO_LARGE = 5,        /* input over its size limit */
    SI_ERR_BAD_KEY = 6,          /* key file unreadable or unsupported */
    SI_ERR_BAD_SIGNATURE = 7,    /* no stanza verifies with a trusted key */
    SI_ERR_KEYRING_TYPE = 8,     /* keyring of the wrong type */
    SI_ERR_KEYRING_EXPIRED = 9,
    SI_ERR_KEYRING_MODEL = 10,   /* keyring for another device model */
    SI_ERR_BLACKLISTED = 11,     /* only blacklisted keys signed it */
    SI_ERR_CHECKSUM = 12,        /* sha256 differs from the index */
    SI_ERR_SIZE = 13,            /* size differs from the index */
    SI_ERR_DOWNGRADE = 14,       /* older build than the installed one */
    SI_ERR_COMMAND_FILE = 15,    /* malformed command file */
    SI_ERR_MISSING_FILE = 16,    /* a referenced file does not exist */
    SI_ERR_UNSAFE_PATH = 17,     /* member escapes the target, hostile archive */
    SI_ERR_UNSUPPORTED = 18,     /* valid but unsupported input */
    SI_ERR_PARTITION = 19,       /* partition not found / not usable */
    SI_ERR_MKFS = 20,            /* making a filesystem failed */
    SI_ERR_MOUNT = 21,
    SI_ERR_APPLY = 22,           /* applying an update failed */
    SI_ERR_NETWORK = 23,
    SI_ERR_NO_SPACE = 24,
    SI_ERR_STALE_INDEX = 25,     /* index older than the last verified one */
    SI_ERR_TRIES_EXHAUSTED = 26, /* failures or deaths at one point: job given up or stopped */
    SI_ERR_EXISTS = 27,          /* refusing to overwrite */
    SI_ERR_NOT_FOUND = 28,       /* channel/device/version not found */
    SI_ERR_INTERNAL = 29,
    SI_ERR_CRASHED = 30,         /* a program died (reported by /init) */
    SI_RESULT_COUNT
} si_result;

/* Short stable identifier, e.g. "bad-signature". */
const char *si_result_name(si_result r);
/* One-line human description. */
const char *si_result_message(si_result r);

#define SI_ERR_MSG_MAX 512
typedef struct si_err {
    si_result code;
    char msg[SI_ERR_MSG_MAX];
} si_err;

/* Record an error (err may be NULL) and return code, so that callers can
 * write: return si_err_set(err, SI_ERR_PARSE, "index.json: %s: ...", field); */
si_result si_err_set(si_err *err, si_result code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "context: old message". Returns err->code. */
si_result si_err_prefix(si_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void si_err_clear(si_err *err);

#endif
