/* flash.h - the recovery's flash mode (docs/flashing.md). */
#ifndef SI_RECOVERY_FLASH_H
#define SI_RECOVERY_FLASH_H

#include "result.h"

#define FLASH_BOARD_FILE "/etc/sysimage/board.json"

typedef struct flash_opts {
    const char *board_file; /* this recovery's board definition */
    const char *device;     /* device model; NULL = the job's */
    const char *media_dir;  /* host tests: the media's root (else the `flash` partition) */
    const char *target;     /* host tests: the disk (image file or device) to provision */
} flash_opts;

/* Provision the internal disk from the media; the result code. */
si_result recovery_flash(const flash_opts *o);

#endif
