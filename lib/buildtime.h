/* buildtime.h - the time this binary was built: a trusted lower bound of
 * "now" (docs/security.md, the clock rule), since a device clock stuck in
 * the past must not make an expired keyring or index acceptable. */
#ifndef SI_BUILDTIME_H
#define SI_BUILDTIME_H

#include <stdint.h>

/* Epoch seconds, from the compiler's __DATE__/__TIME__ (which honour
 * SOURCE_DATE_EPOCH) minus one day for the build host's time zone; 0 if
 * they cannot be read. */
int64_t si_build_epoch(void);

#endif
