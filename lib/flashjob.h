/* flashjob.h - the signed flash job on provisioning media (docs/flashing.md):
 * flash/flash.json, signed like an update file (flash.json.sig, image-signing
 * or device-signing key). It names the board, the build of a channel to
 * install (whose index, keyrings and files are on the media as a repository
 * subset, verified by lib/localrepo), whether a disk that is not blank may
 * be erased, and the size and sha256 of the media's other files:
 *
 * {"format": 1, "board": "qemu-x86_64", "device": "qemu-x86_64",
 *  "channel": "stable", "build": 1, "consent": "blank-only" | "erase",
 *  "files": {"board.json": {"size": N, "sha256": "hex"}, "esp.img": ...,
 *            "core.img": ..., "boot.img": ..., "vmlinuz": ..., "initrd.img": ...}}
 *
 * Every file of SI_FLASH_FILES is required, no other is accepted. */
#ifndef SI_FLASHJOB_H
#define SI_FLASHJOB_H

#include <stdbool.h>
#include <stdint.h>

#include "result.h"

#define SI_FLASHJOB_MAX_BYTES (64 * 1024)
#define SI_FLASH_NFILES 6

typedef enum si_flash_file {
    SI_FLASH_BOARD, /* board.json: the board definition the media was made for */
    SI_FLASH_ESP,   /* esp.img: the ESP's FAT filesystem (GRUB EFI, grub.cfg, counters) */
    SI_FLASH_CORE,  /* core.img: GRUB's i386-pc core image */
    SI_FLASH_BOOT,  /* boot.img: GRUB's boot sector */
    SI_FLASH_KERNEL,/* vmlinuz: the recovery's kernel */
    SI_FLASH_INITRD,/* initrd.img: the recovery's initramfs */
} si_flash_file;

extern const char *const si_flash_file_names[SI_FLASH_NFILES];

typedef struct si_flashjob {
    char board[64];
    char device[64];
    char channel[64];
    int64_t build;
    bool erase;               /* consent to erase a disk that is not blank */
    struct {
        uint64_t size;
        char sha256[65];
    } files[SI_FLASH_NFILES];
} si_flashjob;

si_result si_flashjob_parse(const char *json, size_t len, si_flashjob *out, si_err *err);
/* The canonical text (sorted keys); malloc'd. */
si_result si_flashjob_format(const si_flashjob *j, char **out, si_err *err);

#endif
