/* bmap.h - the block map of a sparse disk image, in the XML format 2.0 that
 * bmaptool (bmap-tools) reads: image size, block size, the mapped block
 * ranges with the SHA-256 of each, and the file's own checksum. A flasher
 * writes only the mapped blocks and checks each range. */
#ifndef SI_BMAP_H
#define SI_BMAP_H

#include <stdint.h>

#include "result.h"

#define SI_BMAP_BLOCK 4096

typedef struct si_bmap_stats {
    uint64_t image_size;
    uint64_t mapped_blocks;
    uint64_t blocks;
} si_bmap_stats;

/* Map image (its data ranges, SEEK_DATA/SEEK_HOLE) into bmap_path
 * (written atomically). stats may be NULL. */
si_result si_bmap_write(const char *image, const char *bmap_path, si_bmap_stats *stats, si_err *err);

#endif
