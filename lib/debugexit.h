/* debugexit.h - report a result to QEMU through its isa-debug-exit device
 * (-device isa-debug-exit,iobase=0xf4,iosize=0x04): writing CODE to the port
 * makes QEMU exit with status (CODE << 1) | 1. Used by the recovery's
 * `debug-exit CODE` sub-command, for tests. x86 only. */
#ifndef SI_DEBUGEXIT_H
#define SI_DEBUGEXIT_H

#include "result.h"

#define SI_DEBUGEXIT_PORT 0xf4

/* Write code to the port. Under QEMU with the device this does not return.
 * Returns SI_ERR_UNSUPPORTED when port access is not permitted (not root,
 * no CAP_SYS_RAWIO, not x86) and SI_ERR_IO when the write returned (no
 * device at the port). */
si_result si_debug_exit(unsigned code, si_err *err);

#endif
