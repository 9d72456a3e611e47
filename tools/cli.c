/* cli.c - what every sysimage command shares on its command line: the error
 * report on stderr (exit status = the si_result code) and --help. Kept out of
 * sysimage.c so that no command calls back into the program's main file. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "result.h"

int si_tool_fail(const struct si_err *err)
{
    fprintf(stderr, "sysimage: %s\n", err->msg[0] ? err->msg : si_result_message(err->code));
    return (int)err->code;
}

int si_tool_usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "sysimage %s: %s (see --help)\n", cmd, msg);
    return SI_ERR_USAGE;
}

int si_tool_wants_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        }
    }
    return 0;
}
