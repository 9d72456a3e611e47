/* command.h - the recovery command file (DESIGN §7).
 *
 * One command per line, words separated by spaces/tabs, '#' starts a comment,
 * file arguments are basenames inside /cache/recovery/:
 *   load_keyring <keyring> <keyring.sig>
 *   format system|data
 *   mount system
 *   update <file> <file.sig>
 *   unmount system
 * A malformed file is refused whole; the error names the line number. */
#ifndef SI_COMMAND_H
#define SI_COMMAND_H

#include <stddef.h>

#include "result.h"

#define SI_COMMAND_MAX_BYTES (64 * 1024)
#define SI_COMMAND_MAX_LINES 256
#define SI_COMMAND_NAME_MAX 255

typedef enum si_cmd_op {
    SI_CMD_LOAD_KEYRING,
    SI_CMD_FORMAT,
    SI_CMD_MOUNT,
    SI_CMD_UPDATE,
    SI_CMD_UNMOUNT,
} si_cmd_op;

typedef enum si_cmd_target { SI_TARGET_NONE, SI_TARGET_SYSTEM, SI_TARGET_DATA } si_cmd_target;

typedef struct si_command {
    si_cmd_op op;
    si_cmd_target target;                 /* format/mount/unmount */
    char file[SI_COMMAND_NAME_MAX + 1];   /* load_keyring/update */
    char sig[SI_COMMAND_NAME_MAX + 1];
    unsigned line;                        /* 1-based line in the file */
} si_command;

typedef struct si_command_file {
    size_t count;
    si_command cmds[SI_COMMAND_MAX_LINES];
} si_command_file;

si_result si_command_file_parse(const char *buf, size_t len, si_command_file *out, si_err *err);
si_result si_command_file_load(const char *path, si_command_file *out, si_err *err);
/* malloc'd text, one command per line. */
si_result si_command_file_format(const si_command_file *cf, char **out, si_err *err);
/* Atomic: temp file, fsync, rename, fsync dir. */
si_result si_command_file_write(const char *path, const si_command_file *cf, si_err *err);
/* Append a command (validates names). */
si_result si_command_file_add(si_command_file *cf, si_cmd_op op, si_cmd_target target,
                              const char *file, const char *sig, si_err *err);

#endif
