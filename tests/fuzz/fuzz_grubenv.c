/* fuzz_grubenv.c - the GRUB environment block parser on untrusted bytes:
 * whatever parses must format back to a block that parses to the same
 * variables. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grubenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_grubenv env;
    si_err err;
    /* Any length goes in; only exactly SI_GRUBENV_SIZE may parse. */
    if (si_grubenv_parse((const char *)data, size, &env, &err) != SI_OK)
        return 0;
    char block[SI_GRUBENV_SIZE];
    if (si_grubenv_format(&env, block, &err) != SI_OK)
        abort(); /* a parsed block always fits again */
    si_grubenv again;
    if (si_grubenv_parse(block, sizeof(block), &again, &err) != SI_OK)
        abort();
    if (again.count != env.count)
        abort();
    for (size_t i = 0; i < env.count; i++)
        if (strcmp(again.vars[i].key, env.vars[i].key) != 0 ||
            strcmp(again.vars[i].value, env.vars[i].value) != 0)
            abort();
    return 0;
}
