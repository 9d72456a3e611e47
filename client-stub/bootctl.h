/* bootctl.h - the board's boot-control backend as the stub sees it: ask the
 * boot loader to start the recovery once. The reference board keeps a GRUB
 * environment block at offset 0 of the raw `misc` partition (docs/board.md);
 * another board replaces bootctl.c and nothing else. */
#ifndef SI_STUB_BOOTCTL_H
#define SI_STUB_BOOTCTL_H

#include "result.h"

typedef enum stub_boot_request {
    STUB_BOOT_NORMAL,         /* recovery_request=0 */
    STUB_BOOT_UPDATE,         /* recovery_request=1: run the command file */
    STUB_BOOT_FACTORY_RESET,  /* recovery_request=factory-reset */
} stub_boot_request;

/* Set the request in the block at `device` (a partition or a file), keeping
 * every other variable; an update request also resets recovery_tries. */
si_result stub_bootctl_set(const char *device, stub_boot_request req, si_err *err);
/* Read the current request and try counter (*tries = -1 when unset). */
si_result stub_bootctl_get(const char *device, stub_boot_request *req, long *tries, si_err *err);
const char *stub_boot_request_name(stub_boot_request req);

#endif
