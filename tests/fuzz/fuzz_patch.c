/* fuzz_patch.c - the patch member parser and decoder on arbitrary bytes:
 * fed as a patch member in chunks. The decoder must refuse or produce
 * exactly the announced bytes, never read or write out of bounds. Input:
 * u16 LE old length (clamped), old content, patch member bytes. Also the
 * `patched` list line parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

#define MAX_OUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t split = (size_t)data[0] | (size_t)data[1] << 8;
    if (split > size - 2)
        split = size - 2;
    const uint8_t *old = data + 2, *p = data + 2 + split;
    size_t oldlen = split, pl = size - 2 - split;

    char *line = malloc(size + 1);
    if (!line)
        abort();
    memcpy(line, data, size);
    line[size] = '\0';
    uint8_t o[32], n[32];
    const char *path;
    if (si_patch_list_line_parse(line, o, n, &path, NULL) == SI_OK &&
        (path < line || path > line + size))
        abort();
    free(line);

    si_patch_dec *d = si_patch_dec_new();
    if (!d)
        abort();
    si_patch_dec_reset(d, "fuzz");
    uint8_t *out = NULL;
    si_result rc = SI_OK;
    size_t pos = 0, chunk = 1 + (data[0] % 61);
    while (rc == SI_OK && pos < pl) {
        size_t len = pl - pos < chunk ? pl - pos : chunk, used = 0;
        rc = si_patch_dec_feed(d, p + pos, len, &used, NULL);
        pos += used;
        if (rc == SI_OK && si_patch_dec_state(d) == SI_PATCH_NEED_TARGET) {
            const si_patch_header *h = si_patch_dec_header(d);
            /* the old content must be what the header says, like apply checks */
            if (h->old_size != oldlen || h->new_size > MAX_OUT)
                break;
            out = malloc(h->new_size ? h->new_size : 1);
            if (!out)
                abort();
            rc = si_patch_dec_set_target(d, oldlen ? old : NULL, out, NULL);
        }
    }
    if (rc == SI_OK && out && si_patch_dec_finish(d, NULL) == SI_OK) {
        /* success means the output has the announced digest: recheck */
        const si_patch_header *h = si_patch_dec_header(d);
        si_patch_header again;
        if (si_patch_header_parse(p, pl, &again, NULL) != SI_OK ||
            again.new_size != h->new_size)
            abort();
    }
    free(out);
    si_patch_dec_free(d);
    return 0;
}
