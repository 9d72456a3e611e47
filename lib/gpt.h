/* gpt.h - write a board's GPT (lib/board.h layout) with libfdisk: on an
 * image file or a whole-disk device, no sfdisk subprocess. Partition names
 * are the board's labels, types its GUIDs; the disk and partition GUIDs are
 * given (reproducible images) so the same inputs give the same table. The
 * protective MBR's boot code area is left for the BIOS boot loader. */
#ifndef SI_GPT_H
#define SI_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "result.h"

#define SI_UUID_STR 37

/* ex: si_board_layout() of b for this disk; guids: nparts + 1 UUID strings
 * (8-4-4-4-12 hex digits), [0] the disk's, [i] partition i's. SI_ERR_NO_SPACE
 * when the layout does not fit the disk, SI_ERR_PARTITION when libfdisk
 * refuses it (the message names the partition). */
si_result si_gpt_write(const char *disk, const si_board *b, const si_board_extent *ex,
                       char guids[][SI_UUID_STR], si_err *err);

/* A version-4-shaped UUID string made from 16 bytes (e.g. a digest). */
void si_uuid_format(const uint8_t bytes[16], char out[SI_UUID_STR]);

#endif
