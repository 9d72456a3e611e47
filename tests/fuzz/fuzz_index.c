/* fuzz_index.c - index.json parser, canonical printer and path resolver on
 * arbitrary bytes: no crash, no leak, and format -> parse -> format is a
 * fixpoint for every accepted document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_index *idx = NULL;
    si_err err;
    if (si_index_parse((const char *)data, size, &idx, &err) != SI_OK)
        return 0;
    char *t1 = NULL, *t2 = NULL;
    si_index *again = NULL;
    if (si_index_format(idx, &t1, &err) != SI_OK ||
        si_index_parse(t1, strlen(t1), &again, &err) != SI_OK ||
        si_index_format(again, &t2, &err) != SI_OK || strcmp(t1, t2) != 0)
        abort();
    /* resolve from nothing installed and from each of the first images */
    int64_t builds[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < idx->nimages && i < 3; i++)
        builds[i + 1] = idx->images[i].version;
    for (size_t b = 0; b < 4; b++) {
        si_resolve_opts o = {.build = builds[b], .channel = "fuzz", .machine_id = "id"};
        si_resolution res;
        if (si_resolve(idx, &o, &res, &err) == SI_OK) {
            if (res.winner >= (long)res.cand.count)
                abort();
            if (res.winner >= 0 &&
                si_path_bootme_count(&res.cand.paths[res.winner]) >
                    res.cand.paths[res.winner].nimages)
                abort();
            si_resolution_free(&res);
        }
    }
    free(t1);
    free(t2);
    si_index_free(again);
    si_index_free(idx);
    return 0;
}
