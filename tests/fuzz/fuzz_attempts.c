/* fuzz_attempts.c - the recovery state file read from the cache partition. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attempts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_attempts st;
    si_err err;
    if (si_attempts_parse((const char *)data, size, &st, &err) == SI_OK) {
        char *json;
        if (si_attempts_format(&st, &json, &err) == SI_OK) {
            si_attempts back;
            if (si_attempts_parse(json, strlen(json), &back, &err) != SI_OK ||
                memcmp(&st, &back, sizeof(st)) != 0)
                abort();
            free(json);
        }
    }
    return 0;
}
