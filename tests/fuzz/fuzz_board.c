/* fuzz_board.c - board.json parser on untrusted bytes: whatever parses
 * lays out on its minimum and default disks with partitions in order,
 * inside the disk, and renders a grub.cfg template. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_board b;
    si_err err;
    if (si_board_parse((const char *)data, size, &b, &err) != SI_OK)
        return 0;
    if (b.nparts == 0 || b.nparts > SI_BOARD_MAX_PARTS)
        abort();
    uint64_t sizes[2] = {si_board_min_disk_bytes(&b), si_board_default_disk_bytes(&b)};
    for (int k = 0; k < 2; k++) {
        si_board_extent ex[SI_BOARD_MAX_PARTS];
        if (si_board_layout(&b, sizes[k], ex, &err) != SI_OK)
            abort(); /* both sizes hold the layout */
        uint64_t off = b.first_lba_mib * SI_MIB_BYTES;
        for (size_t i = 0; i < b.nparts; i++) {
            if (ex[i].start != off || ex[i].size < ex[i].part->min_mib * SI_MIB_BYTES)
                abort();
            off += ex[i].size;
        }
        if (off + SI_MIB_BYTES > sizes[k])
            abort();
    }
    if (si_board_layout(&b, sizes[0] - SI_MIB_BYTES, (si_board_extent[SI_BOARD_MAX_PARTS]){0}, &err) !=
        SI_ERR_NO_SPACE)
        abort();
    static const char tmpl[] = "set esp=(hd0,gpt@ESP@) @TIMEOUT@ @ x@ @@";
    char *cfg = NULL;
    if (si_board_render_grub_cfg(&b, tmpl, sizeof(tmpl) - 1, 3, &cfg, &err) != SI_OK)
        abort();
    if (strstr(cfg, "@ESP@"))
        abort();
    free(cfg);
    return 0;
}
