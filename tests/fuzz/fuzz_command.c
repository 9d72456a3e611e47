/* fuzz_command.c - the recovery command file parser on arbitrary bytes: no
 * crash, and every accepted file formats to text that parses to the same
 * commands. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

static si_command_file cf, back;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_err err;
    if (si_command_file_parse((const char *)data, size, &cf, &err) != SI_OK) {
        if (cf.count != 0 || err.msg[0] == '\0')
            abort(); /* refused whole, with a message */
        return 0;
    }
    char *text = NULL;
    if (si_command_file_format(&cf, &text, &err) != SI_OK ||
        si_command_file_parse(text, strlen(text), &back, &err) != SI_OK ||
        back.count != cf.count)
        abort();
    for (size_t i = 0; i < cf.count; i++) {
        if (back.cmds[i].op != cf.cmds[i].op || back.cmds[i].target != cf.cmds[i].target ||
            strcmp(back.cmds[i].file, cf.cmds[i].file) != 0 ||
            strcmp(back.cmds[i].sig, cf.cmds[i].sig) != 0 ||
            back.cmds[i].full != cf.cmds[i].full || back.cmds[i].version != cf.cmds[i].version ||
            back.cmds[i].base != cf.cmds[i].base)
            abort();
    }
    free(text);
    /* The sequence rules never crash and refuse with a message. */
    err.msg[0] = '\0';
    if (si_command_file_check(&cf, &err) != SI_OK && err.msg[0] == '\0')
        abort();
    return 0;
}
