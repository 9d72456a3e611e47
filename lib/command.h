/* command.h - the recovery command file (docs/formats.md, "Command file").
 *
 * One command per line, words separated by spaces/tabs, '#' starts a comment,
 * file arguments are basenames inside /cache/recovery/ (lib/protocol.h):
 *   load_keyring <keyring> <keyring.sig>
 *   index <index.json> <index.json.sig>     the signed index the job is bound to
 *   image full <version>                    an image chosen from it (path order)
 *   image delta <version> <base>
 *   format system|data
 *   mount system
 *   update <file> <file.sig>
 *   unmount system
 * Every verb is one entry of one table (si_command_verb): its name, its
 * argument rule and its place in the sequence rules; the recovery adds one
 * handler per verb (recovery/run.c). A malformed file is refused whole; the
 * error names the line number. */
#ifndef SI_COMMAND_H
#define SI_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_COMMAND_MAX_BYTES (64 * 1024)
#define SI_COMMAND_MAX_LINES 256
#define SI_COMMAND_NAME_MAX 255

typedef enum si_cmd_op {
    SI_CMD_LOAD_KEYRING,
    SI_CMD_INDEX,
    SI_CMD_IMAGE,
    SI_CMD_FORMAT,
    SI_CMD_MOUNT,
    SI_CMD_UPDATE,
    SI_CMD_UNMOUNT,
    SI_CMD_COUNT
} si_cmd_op;

typedef enum si_cmd_target { SI_TARGET_NONE, SI_TARGET_SYSTEM, SI_TARGET_DATA } si_cmd_target;

/* How a verb's arguments look. */
typedef enum si_cmd_args {
    SI_ARGS_FILES,   /* <name> <name.sig>: two staged basenames */
    SI_ARGS_TARGET,  /* one partition target from `targets` */
    SI_ARGS_IMAGE,   /* full <version> | delta <version> <base> */
} si_cmd_args;

/* Where a verb may stand in a job (checked by si_command_file_check). */
typedef enum si_cmd_place {
    SI_PLACE_PREAMBLE,  /* before every action: load_keyring, index, image */
    SI_PLACE_UNMOUNTED, /* an action with the system not mounted: format */
    SI_PLACE_MOUNTS,    /* mount system: not mounted before, mounted after */
    SI_PLACE_MOUNTED,   /* needs the system mounted: update */
    SI_PLACE_UNMOUNTS,  /* unmount system: mounted before, not after */
} si_cmd_place;

typedef struct si_command_verb {
    si_cmd_op op;
    const char *name;
    si_cmd_args args;
    unsigned targets;       /* SI_ARGS_TARGET: bit (1 << si_cmd_target) per allowed target */
    si_cmd_place place;
    unsigned max_count;     /* at most this many lines of the verb (0 = no limit) */
    bool reserved_ok;       /* its file arguments may be protocol names (keyrings, index) */
} si_command_verb;

/* The table entry of op, NULL when op is not a verb. */
const si_command_verb *si_command_verb_of(si_cmd_op op);

typedef struct si_command {
    si_cmd_op op;
    si_cmd_target target;                 /* format/mount/unmount */
    char file[SI_COMMAND_NAME_MAX + 1];   /* load_keyring/index/update */
    char sig[SI_COMMAND_NAME_MAX + 1];
    bool full;                            /* image: full (else delta) */
    int64_t version;                      /* image */
    int64_t base;                         /* image delta */
    unsigned line;                        /* 1-based line in the file */
} si_command;

typedef struct si_command_file {
    size_t count;
    si_command cmds[SI_COMMAND_MAX_LINES];
} si_command_file;

/* Syntax only: every line a known verb with valid arguments. */
si_result si_command_file_parse(const char *buf, size_t len, si_command_file *out, si_err *err);
si_result si_command_file_load(const char *path, si_command_file *out, si_err *err);
/* The sequence rules of a whole job (docs/formats.md): the preamble
 * (load_keyring, index, image) before every action; mount/update/unmount in
 * mount order; a job with `update` lines has exactly one `index` and at least
 * one `image`, `image` and `format system` need an `index`, an `index` needs
 * `update` lines, and a job installs something (`update`) or is a factory
 * reset (`format data`). Errors name the line. */
si_result si_command_file_check(const si_command_file *cf, si_err *err);
/* Count of lines with verb op. */
size_t si_command_file_count(const si_command_file *cf, si_cmd_op op);
/* The staged files a command file names, in order: the file then the
 * signature of each line whose verb takes files; NULL after the last. *pos
 * starts at 0 and is advanced; *cmd (may be NULL) is the name's line:
 *   size_t pos = 0; const si_command *c; const char *name;
 *   while ((name = si_command_file_next_name(cf, &pos, &c))) ... */
const char *si_command_file_next_name(const si_command_file *cf, size_t *pos,
                                      const si_command **cmd);
/* A short human name for logs: "format system", "image delta 13 12", "update x". */
void si_command_describe(const si_command *c, char *out, size_t outlen);

/* malloc'd text, one command per line. */
si_result si_command_file_format(const si_command_file *cf, char **out, si_err *err);
/* Atomic: temp file, fsync, rename, fsync dir. */
si_result si_command_file_write(const char *path, const si_command_file *cf, si_err *err);
/* Append a command (validates names): load_keyring, index, update take
 * file/sig; format, mount, unmount take target. */
si_result si_command_file_add(si_command_file *cf, si_cmd_op op, si_cmd_target target,
                              const char *file, const char *sig, si_err *err);
si_result si_command_file_add_index(si_command_file *cf, const char *file, const char *sig,
                                    si_err *err);
/* image full <version> (is_full, base ignored) or image delta <version> <base>. */
si_result si_command_file_add_image(si_command_file *cf, bool is_full, int64_t version,
                                    int64_t base, si_err *err);

#endif
