/* result.c - names and messages of the shared result codes. */
#include "result.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *message;
} result_table[SI_RESULT_COUNT] = {
    [SI_OK] = {"ok", "success"},
    [SI_ERR_USAGE] = {"usage", "invalid command line"},
    [SI_ERR_IO] = {"io", "input/output error"},
    [SI_ERR_NOMEM] = {"nomem", "out of memory"},
    [SI_ERR_PARSE] = {"parse", "malformed input"},
    [SI_ERR_TOO_LARGE] = {"too-large", "input exceeds its size limit"},
    [SI_ERR_BAD_KEY] = {"bad-key", "key unreadable or unsupported"},
    [SI_ERR_BAD_SIGNATURE] = {"bad-signature", "signature does not verify with a trusted key"},
    [SI_ERR_KEYRING_TYPE] = {"keyring-type", "keyring has the wrong type"},
    [SI_ERR_KEYRING_EXPIRED] = {"keyring-expired", "keyring has expired"},
    [SI_ERR_KEYRING_MODEL] = {"keyring-model", "keyring is for another device model"},
    [SI_ERR_BLACKLISTED] = {"blacklisted", "signed only by blacklisted keys"},
    [SI_ERR_CHECKSUM] = {"checksum", "checksum mismatch"},
    [SI_ERR_SIZE] = {"size", "size mismatch"},
    [SI_ERR_DOWNGRADE] = {"downgrade", "refusing to install an older build"},
    [SI_ERR_COMMAND_FILE] = {"command-file", "malformed command file"},
    [SI_ERR_MISSING_FILE] = {"missing-file", "a referenced file is missing"},
    [SI_ERR_UNSAFE_PATH] = {"unsafe-path", "archive member would escape the target"},
    [SI_ERR_UNSUPPORTED] = {"unsupported", "unsupported input"},
    [SI_ERR_PARTITION] = {"partition", "partition not found or unusable"},
    [SI_ERR_MKFS] = {"mkfs", "making the filesystem failed"},
    [SI_ERR_MOUNT] = {"mount", "mount or unmount failed"},
    [SI_ERR_APPLY] = {"apply", "applying the update failed"},
    [SI_ERR_NETWORK] = {"network", "network transfer failed"},
    [SI_ERR_NO_SPACE] = {"no-space", "not enough free space"},
    [SI_ERR_STALE_INDEX] = {"stale-index", "index expired or older than the last verified one"},
    [SI_ERR_TRIES_EXHAUSTED] = {"tries-exhausted", "recovery gave up after repeated attempts"},
    [SI_ERR_EXISTS] = {"exists", "refusing to overwrite"},
    [SI_ERR_NOT_FOUND] = {"not-found", "not found"},
    [SI_ERR_INTERNAL] = {"internal", "internal error"},
    [SI_ERR_CRASHED] = {"crashed", "program crashed"},
};

const char *si_result_name(si_result r)
{
    if ((int)r < 0 || r >= SI_RESULT_COUNT)
        return "unknown";
    return result_table[r].name;
}

const char *si_result_message(si_result r)
{
    if ((int)r < 0 || r >= SI_RESULT_COUNT)
        return "unknown result code";
    return result_table[r].message;
}

si_result si_err_set(si_err *err, si_result code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

si_result si_err_prefix(si_err *err, const char *fmt, ...)
{
    if (!err)
        return SI_ERR_INTERNAL;
    char prefix[SI_ERR_MSG_MAX];
    char old[SI_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    size_t pl = strnlen(prefix, sizeof(err->msg) - 1);
    memcpy(err->msg, prefix, pl);
    size_t pos = pl;
    if (pos + 2 < sizeof(err->msg)) {
        err->msg[pos++] = ':';
        err->msg[pos++] = ' ';
    }
    size_t ol = strnlen(old, sizeof(old));
    if (ol > sizeof(err->msg) - 1 - pos)
        ol = sizeof(err->msg) - 1 - pos;
    memcpy(err->msg + pos, old, ol);
    err->msg[pos + ol] = '\0';
    return err->code;
}

void si_err_clear(si_err *err)
{
    if (err) {
        err->code = SI_OK;
        err->msg[0] = '\0';
    }
}
