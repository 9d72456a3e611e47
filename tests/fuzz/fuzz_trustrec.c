/* fuzz_trustrec.c - the trust record parser on arbitrary bytes: no crash,
 * and an accepted record formats to one that parses back equal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trustrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_trust_record rec, back;
    si_err err;
    if (si_trust_record_parse((const char *)data, size, &rec, &err) != SI_OK)
        return 0;
    char *json = NULL;
    if (si_trust_record_format(&rec, &json, &err) != SI_OK ||
        si_trust_record_parse(json, strlen(json), &back, &err) != SI_OK ||
        memcmp(&rec, &back, sizeof(rec)) != 0)
        abort();
    free(json);
    return 0;
}
