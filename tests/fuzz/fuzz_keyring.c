/* fuzz_keyring.c - keyring JSON parser on arbitrary bytes; whatever parses
 * must format and parse back to the same keyring. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_keyring *kr = NULL;
    si_err err = {0};
    if (si_keyring_parse((const char *)data, size, &kr, &err) != SI_OK) {
        if (err.msg[0] == '\0' || kr)
            abort();
        return 0;
    }
    char *json = NULL;
    if (si_keyring_format(kr, &json, &err) != SI_OK)
        abort();
    si_keyring *back = NULL;
    if (si_keyring_parse(json, strlen(json), &back, &err) != SI_OK)
        abort();
    if (back->type != kr->type || back->has_expiry != kr->has_expiry ||
        (kr->has_expiry && back->expiry != kr->expiry) || strcmp(back->model, kr->model) ||
        back->nkeys != kr->nkeys)
        abort();
    for (size_t i = 0; i < kr->nkeys; i++)
        if (strcmp(si_key_id(kr->keys[i]), si_key_id(back->keys[i])) != 0)
            abort();
    free(json);
    si_keyring_free(back);
    si_keyring_free(kr);
    return 0;
}
