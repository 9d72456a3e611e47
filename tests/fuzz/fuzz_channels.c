/* fuzz_channels.c - channels.json parser and printer on arbitrary bytes:
 * no crash, no leak, format -> parse -> format is a fixpoint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_channels *ch = NULL;
    si_err err;
    if (si_channels_parse((const char *)data, size, &ch, &err) != SI_OK)
        return 0;
    char *t1 = NULL, *t2 = NULL;
    si_channels *again = NULL;
    if (si_channels_format(ch, &t1, &err) != SI_OK ||
        si_channels_parse(t1, strlen(t1), &again, &err) != SI_OK ||
        si_channels_format(again, &t2, &err) != SI_OK || strcmp(t1, t2) != 0)
        abort();
    for (size_t i = 0; i < ch->nchannels; i++) {
        const si_channel *c = si_channels_find(again, ch->channels[i].name);
        if (!c || c->ndevices != ch->channels[i].ndevices)
            abort();
    }
    free(t1);
    free(t2);
    si_channels_free(again);
    si_channels_free(ch);
    return 0;
}
