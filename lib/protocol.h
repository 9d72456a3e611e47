/* protocol.h - everything the stub (client-stub/) and the recovery (recovery/)
 * share about a staged job (docs/recovery.md, docs/formats.md):
 *
 *   <cache>/recovery/                 SI_PROTO_DIR, the staging directory
 *     sysimage_command                the job (lib/command.h)
 *     index.json, index.json.sig      the signed index the job is bound to
 *     <keyring>.keyring[.sig]         the chain below the built-in archive-master
 *     <file>, <file>.sig              update files named by the index
 *     recovery_state.json             the recovery's attempt state (lib/attempts.h)
 *     last_result.json, last_log      the recovery's report
 *
 * Boot control (lib/grubenv.h on the reference board): the normal OS sets
 * SI_BOOT_REQUEST to 1 or factory-reset and SI_BOOT_TRIES to 0 before it
 * reboots; the recovery keeps the request while it retries, counts its attempts
 * in SI_BOOT_TRIES, and writes 0 / 0 when it is done or gives up. Both keys
 * must always be writable: lib/grubenv drops unknown variables to make room. */
#ifndef SI_PROTOCOL_H
#define SI_PROTOCOL_H

#include <stdbool.h>
#include <sys/stat.h>

#include "result.h"

/* The staging directory under the cache mount. */
#define SI_PROTO_DIR "recovery"

/* Files in it. */
#define SI_PROTO_COMMAND "sysimage_command"
#define SI_PROTO_STATE "recovery_state.json"
#define SI_PROTO_RESULT "last_result.json"
#define SI_PROTO_LOG "last_log"              /* and last_log.1 ... (rotated) */
#define SI_PROTO_INDEX "index.json"
#define SI_PROTO_INDEX_SIG "index.json.sig"
#define SI_PROTO_KR_IMAGE_MASTER "image-master.keyring"
#define SI_PROTO_KR_IMAGE_SIGNING "image-signing.keyring"
#define SI_PROTO_KR_DEVICE_SIGNING "device-signing.keyring"
#define SI_PROTO_KR_BLACKLIST "blacklist.keyring"
#define SI_PROTO_SIG_SUFFIX ".sig"
#define SI_PROTO_PART_SUFFIX ".part"         /* the stub's downloads in progress */

/* Boot-control keys and values. */
#define SI_BOOT_REQUEST "recovery_request"
#define SI_BOOT_REQUEST_NONE "0"             /* boot the system */
#define SI_BOOT_REQUEST_UPDATE "1"           /* run the staged job */
#define SI_BOOT_REQUEST_FACTORY_RESET "factory-reset" /* format userdata, wipe cache */
#define SI_BOOT_TRIES "recovery_tries"       /* attempts of the current request, 0.. */

/* The boot-control keys of the protocol: writes that must succeed keep these
 * and drop any other variable to make room (si_grubenv_set_keeping). */
extern const char *const si_protocol_boot_keys[];
extern const size_t si_protocol_boot_keys_count;

/* Longest staged file name (a command-file argument). */
#define SI_PROTO_NAME_MAX 255

/* NULL when `name` may be staged as a file named by the index (and by the
 * command file), else why not: empty, too long, "/", a leading '.', control
 * bytes, ' ' or '#' (command-file syntax), a `.part` suffix, or a name the
 * protocol owns (the command, state, result, log, index and keyring files,
 * with or without ".sig"). */
const char *si_protocol_reserved_why(const char *name);
static inline bool si_protocol_is_reserved_name(const char *name)
{
    return si_protocol_reserved_why(name) != NULL;
}

/* Open a staged file for reading without following a final symlink and
 * without blocking on a FIFO (O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC,
 * relative to dirfd or AT_FDCWD), and refuse anything but a regular file.
 * On success *fd is open (O_NONBLOCK cleared) and *st filled (st may be NULL).
 * Errors: SI_ERR_MISSING_FILE (absent, or "not a regular file": FIFO, device,
 * directory, symlink), SI_ERR_IO; the message names path. */
si_result si_protocol_open_staged(int dirfd, const char *path, int *fd, struct stat *st,
                                  si_err *err);

/* si_protocol_open_staged + a bounded read of the whole file into a
 * NUL-terminated malloc'd buffer (SI_ERR_TOO_LARGE beyond max_len). */
si_result si_protocol_read_staged(int dirfd, const char *path, size_t max_len, char **buf,
                                  size_t *len, si_err *err);

#endif
