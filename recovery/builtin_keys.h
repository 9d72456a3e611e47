/* builtin_keys.h - the archive-master keyring compiled into the recovery.
 * The Makefile generates build/gen/builtin_archive_master.c from
 * $(KEYS)/archive-master.keyring (scripts/embed-file.sh). */
#ifndef SI_RECOVERY_BUILTIN_KEYS_H
#define SI_RECOVERY_BUILTIN_KEYS_H

#include <stddef.h>

extern const unsigned char si_builtin_archive_master[];
extern const size_t si_builtin_archive_master_len;

#endif
