/* debugexit.c - QEMU isa-debug-exit port write (x86). */
#include "debugexit.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#endif

si_result si_debug_exit(unsigned code, si_err *err)
{
    if (code > 0xff)
        return si_err_set(err, SI_ERR_USAGE, "debug-exit: code %u out of range 0..255", code);
#if defined(__x86_64__) || defined(__i386__)
    if (ioperm(SI_DEBUGEXIT_PORT, 4, 1) != 0)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "debug-exit: ioperm(0x%x): %s", SI_DEBUGEXIT_PORT,
                          strerror(errno));
    outb((unsigned char)code, SI_DEBUGEXIT_PORT);
    /* Still here: no isa-debug-exit device at the port. */
    ioperm(SI_DEBUGEXIT_PORT, 4, 0);
    return si_err_set(err, SI_ERR_IO, "debug-exit: wrote %u to port 0x%x but the machine did not exit",
                      code, SI_DEBUGEXIT_PORT);
#else
    (void)code;
    return si_err_set(err, SI_ERR_UNSUPPORTED, "debug-exit: no I/O ports on this architecture");
#endif
}
