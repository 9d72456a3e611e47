/* fuzz_version.c - si_version_parse on arbitrary bytes; a parsed record must
 * format and parse back to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_version v;
    si_err err;
    if (si_version_parse((const char *)data, size, &v, &err) != SI_OK)
        return 0;
    char *json = NULL;
    if (si_version_format(&v, &json, &err) != SI_OK)
        abort();
    si_version back;
    if (si_version_parse(json, strlen(json), &back, &err) != SI_OK || back.build != v.build ||
        strcmp(back.channel, v.channel) != 0)
        abort();
    free(json);
    return 0;
}
