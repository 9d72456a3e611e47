/* fuzz_flashjob.c - the flash job parser on untrusted bytes: whatever parses
 * formats to a text that parses to the same job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flashjob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_flashjob j, again;
    si_err err;
    if (si_flashjob_parse((const char *)data, size, &j, &err) != SI_OK)
        return 0;
    char *text = NULL;
    if (si_flashjob_format(&j, &text, &err) != SI_OK)
        abort();
    if (si_flashjob_parse(text, strlen(text), &again, &err) != SI_OK)
        abort();
    if (memcmp(&j, &again, sizeof(j)) != 0)
        abort();
    free(text);
    return 0;
}
