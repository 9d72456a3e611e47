/* commands.h - the sub-commands of the `sysimage` host tool.
 * Each returns a process exit code (an si_result value) and prints its own
 * errors to stderr. Every command answers --help. */
#ifndef SI_TOOL_COMMANDS_H
#define SI_TOOL_COMMANDS_H

typedef int (*si_tool_fn)(int argc, char **argv);

struct si_tool_command {
    const char *name;      /* "keygen", "keyring create", ... (one or two words) */
    const char *summary;
    si_tool_fn run;        /* argv[0] is the last word of name */
};

/* Print "sysimage: <msg>" to stderr for a failed si_err and return its code. */
struct si_err;
int si_tool_fail(const struct si_err *err);
/* Print "sysimage CMD: MSG (see --help)" to stderr; returns SI_ERR_USAGE. */
int si_tool_usage_error(const char *cmd, const char *msg);
/* true if argv has -h/--help; prints usage text then. */
int si_tool_wants_help(int argc, char **argv, const char *usage);

/* cmd_keys.c */
int cmd_keygen(int argc, char **argv);
int cmd_keyring_create_main(int argc, char **argv);
int cmd_keyring_check_main(int argc, char **argv);
int cmd_keyring(int argc, char **argv);
/* cmd_sign.c */
int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);
/* cmd_build.c, cmd_apply.c */
int si_cmd_build_full(int argc, char **argv);
int si_cmd_build_delta(int argc, char **argv);
int si_cmd_apply(int argc, char **argv);
/* cmd_image.c */
int cmd_image(int argc, char **argv);
int cmd_flash_media(int argc, char **argv);
/* cmd_publish.c */
int cmd_publish(int argc, char **argv);

#endif
