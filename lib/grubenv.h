/* grubenv.h - GRUB environment block, the reference board's boot control
 * (docs/board.md): exactly 1024 bytes, "# GRUB Environment Block\n", then
 * "key=value\n" lines, padded with '#', at offset 0 of the raw `misc`
 * partition. Keys used: recovery_request (0 | 1 | factory-reset) and
 * recovery_tries. Written in place (never truncate-and-rewrite). */
#ifndef SI_GRUBENV_H
#define SI_GRUBENV_H

#include <stddef.h>

#include "result.h"

#define SI_GRUBENV_SIZE 1024
#define SI_GRUBENV_MAX_VARS 32
#define SI_GRUBENV_KEY_MAX 64
#define SI_GRUBENV_VALUE_MAX 256

typedef struct si_grubenv {
    size_t count;
    struct {
        char key[SI_GRUBENV_KEY_MAX];
        char value[SI_GRUBENV_VALUE_MAX];
    } vars[SI_GRUBENV_MAX_VARS];
} si_grubenv;

void si_grubenv_init(si_grubenv *env);
/* Parse a 1024-byte block (untrusted); errors name what is wrong. */
si_result si_grubenv_parse(const char *block, size_t len, si_grubenv *env, si_err *err);
/* Serialize into exactly SI_GRUBENV_SIZE bytes; SI_ERR_TOO_LARGE if it does not fit. */
si_result si_grubenv_format(const si_grubenv *env, char block[SI_GRUBENV_SIZE], si_err *err);
const char *si_grubenv_get(const si_grubenv *env, const char *key); /* NULL if unset */
si_result si_grubenv_set(si_grubenv *env, const char *key, const char *value, si_err *err);
void si_grubenv_unset(si_grubenv *env, const char *key);
/* A write that must succeed (clearing or keeping the recovery request): set
 * key=value and, when the block is full (SI_GRUBENV_MAX_VARS variables, or
 * more than SI_GRUBENV_SIZE bytes formatted), drop variables not named in
 * keep[] - the last one first - until it fits. *dropped (may be NULL) counts
 * them. Fails only when key/value are invalid or keep[] alone does not fit. */
si_result si_grubenv_set_keeping(si_grubenv *env, const char *key, const char *value,
                                 const char *const *keep, size_t nkeep, size_t *dropped,
                                 si_err *err);

/* Read/write the block at offset 0 of a device or file (pwrite in place + fsync). */
si_result si_grubenv_read_dev(const char *path, si_grubenv *env, si_err *err);
si_result si_grubenv_write_dev(const char *path, const si_grubenv *env, si_err *err);

#endif
