/* recovery.h - the job of sysimage-recovery `run` (docs/recovery.md). */
#ifndef SI_RECOVERY_RECOVERY_H
#define SI_RECOVERY_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "result.h"

#define RECOVERY_MAX_PART_OVERRIDES 16

typedef enum recovery_mode { MODE_UPDATE, MODE_FACTORY_RESET } recovery_mode;

/* A/B boards (docs/ab.md): GRUB's counters on the ESP, the board's script */
#define REC_AB_BOOTCOUNT "/bin/sysimage-bootcount"

typedef struct recovery_opts {
    recovery_mode mode;
    bool dry_run;
    const char *device;           /* model for device-signing keyrings; NULL = unknown */
    const char *cache_dir;        /* cache already mounted there; NULL = mount it */
    const char *mount_root;       /* prefix of /cache and /system; "" = / */
    const char *stay_file;        /* written when the job stops on an incomplete system */
    const char *bootcount;        /* A/B boards: the program that gets/sets GRUB's counters */
    unsigned long long fault_apply_bytes; /* test builds only (SI_TEST_FAULTS): crash there */
    size_t nparts;
    struct {
        const char *label;
        const char *path;
    } parts[RECOVERY_MAX_PART_OVERRIDES];
} recovery_opts;

/* Run the job; returns the result code reported in last_result.json. */
si_result recovery_run(const recovery_opts *opts);

#endif
