/* fuzz_manifest.c - si_manifest_parse on arbitrary bytes: a parsed manifest
 * has one digest per member line, and checking any line against it never
 * reads past it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_manifest *m = NULL;
    si_err err;
    if (si_manifest_parse((const char *)data, size, &m, &err) != SI_OK) {
        if (m)
            abort();
        return 0;
    }
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (m->n + 1 != lines || m->nparts > m->n)
        abort();
    if (si_manifest_check(m, m->n, "d 0755 0 0 1.000000000 0 - - - system/x", "f", &err) !=
        SI_ERR_PARSE)
        abort();
    for (size_t i = 0; i < m->n; i++)
        (void)si_manifest_check(m, i, "d 0755 0 0 1.000000000 0 - - - system/x", "f", &err);
    si_manifest_free(m);
    return 0;
}
