/* fuzz_index.c - index.json parser (with global.expires), the freshness
 * check, canonical printer and path resolver on arbitrary bytes: no crash,
 * no leak, format -> parse -> format is a fixpoint for every accepted
 * document, and the winner is never out-ranked (score, download bytes,
 * images) by another phased-in candidate. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "resolve.h"

static void check_winner(const si_resolution *res)
{
    if (res->winner < 0)
        return;
    const si_path *w = &res->cand.paths[res->winner];
    if (w->download > w->size)
        abort();
    for (size_t i = 0; i < res->cand.count; i++) {
        const si_path *p = &res->cand.paths[i];
        int pct = p->images[p->nimages - 1]->phased_percentage;
        if (pct <= 0 || res->device_percentage > pct)
            continue;
        bool better = p->score < w->score ||
                      (p->score == w->score &&
                       (p->download < w->download ||
                        (p->download == w->download &&
                         (p->nimages < w->nimages ||
                          (p->nimages == w->nimages && (long)i < res->winner)))));
        if (better)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_index *idx = NULL;
    si_err err;
    if (si_index_parse((const char *)data, size, &idx, &err) != SI_OK)
        return 0;
    si_err ferr;
    si_result fr = si_index_check_fresh(idx, si_index_clock(0, 1, 2), &ferr);
    if ((fr == SI_OK) != (idx->expires_epoch > 2))
        abort();
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
            check_winner(&res);
            si_resolution_free(&res);
        }
    }
    free(t1);
    free(t2);
    si_index_free(again);
    si_index_free(idx);
    return 0;
}
