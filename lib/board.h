/* board.h - a board definition (images/<board>/board.json, docs/flashing.md):
 * the disk layout (GPT: label, size in MiB or "rest", type GUID, filesystem)
 * and the boot-loader recipe (GRUB images, modules, grub.cfg template,
 * counters file). One file read by every program that lays out a disk: the
 * image builder (`sysimage image`), the recovery's flash mode and the test
 * harness (images/board.py). The file is untrusted input: every field is
 * checked, sizes against what the partition must hold.
 *
 * Layout: the first partition starts at disk.first_lba_mib; partitions follow
 * each other in file order, MiB-aligned; the last MiB of the disk is left to
 * the backup GPT. At most one partition has size "rest" (with min_mib): it
 * takes what the disk leaves. */
#ifndef SI_BOARD_H
#define SI_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "grubenv.h"
#include "result.h"

#define SI_BOARD_MAX_BYTES (64 * 1024)
#define SI_BOARD_MAX_PARTS 16
#define SI_BOARD_MAX_MODULES 48
#define SI_BOARD_NAME_MAX 64
#define SI_BOARD_LABEL_MAX 36 /* GPT names: 36 UTF-16 units */
#define SI_BOARD_PATH_MAX 128
#define SI_BOARD_MODULE_MAX 32
#define SI_MIB_BYTES ((uint64_t)1024 * 1024)

typedef enum si_board_fs {
    SI_BOARD_FS_NONE,    /* raw (the BIOS boot partition) */
    SI_BOARD_FS_VFAT,    /* FAT32 (the ESP) */
    SI_BOARD_FS_GRUBENV, /* raw, a GRUB environment block at offset 0 (misc) */
    SI_BOARD_FS_EXT4,
} si_board_fs;

/* Smallest partition per filesystem, MiB (FAT32 needs 65525 clusters of 512 B). */
#define SI_BOARD_MIN_VFAT_MIB 33
#define SI_BOARD_MIN_EXT4_MIB 8
#define SI_BOARD_MIN_RAW_MIB 1

typedef struct si_board_part {
    char label[SI_BOARD_LABEL_MAX + 1];
    char type[37];           /* GPT type GUID, upper case */
    si_board_fs fs;
    uint64_t size_mib;       /* 0 for "rest" */
    uint64_t min_mib;        /* "rest": smallest acceptable size */
    uint64_t min_free_mib;   /* room that must stay free after the builder filled it */
} si_board_part;

typedef struct si_board_grub_image {
    char format[SI_BOARD_MODULE_MAX];    /* grub-mkimage -O */
    char path[SI_BOARD_PATH_MAX];        /* efi: path on the ESP */
    char partition[SI_BOARD_LABEL_MAX + 1]; /* bios: partition holding the core image */
    char boot_img[SI_BOARD_PATH_MAX];    /* bios: GRUB's boot.img */
    size_t nmodules;
    char modules[SI_BOARD_MAX_MODULES][SI_BOARD_MODULE_MAX];
} si_board_grub_image;

typedef struct si_board {
    char name[SI_BOARD_NAME_MAX];
    uint64_t first_lba_mib;
    uint64_t default_size_mib;     /* sum of the partitions at their default size */
    size_t nparts;
    si_board_part parts[SI_BOARD_MAX_PARTS];
    char config[SI_BOARD_PATH_MAX];   /* grub.cfg template, relative to the board's dir */
    char env_file[SI_BOARD_PATH_MAX]; /* GRUB's counters file on the ESP */
    int max_recovery_boots;
    int max_unconfirmed_boots;
    si_board_grub_image efi;
    si_board_grub_image bios;
    char console[SI_BOARD_NAME_MAX];
    /* boot.env_defaults: the ESP counters file a new disk starts with
     * (default recovery_boots=0, normal_boots=0, system_new=0). Numbers are
     * kept as their decimal text; the block is checked to fit 1024 bytes. */
    si_grubenv env_defaults;
    /* "slots": an A/B board (docs/ab.md) names its two system partitions
     * (nslots 2, slot a first); 0 for a board with the one `system`. */
    size_t nslots;
    char slots[2][SI_BOARD_LABEL_MAX + 1];
} si_board;

/* One partition placed on a disk: byte offsets, 1-based GPT number. */
typedef struct si_board_extent {
    const si_board_part *part;
    unsigned number;
    uint64_t start;
    uint64_t size;
} si_board_extent;

/* Parse and check len bytes of board.json. Errors name the field. */
si_result si_board_parse(const char *json, size_t len, si_board *out, si_err *err);
/* Read and parse a file. */
si_result si_board_load(const char *path, si_board *out, si_err *err);
/* images_dir/<name>/board.json into path; SI_ERR_NOT_FOUND naming the board
 * when it does not exist, SI_ERR_USAGE for a name that is not one. */
si_result si_board_path(const char *images_dir, const char *name, char *path, size_t pathlen,
                        si_err *err);

const si_board_part *si_board_part_find(const si_board *b, const char *label);
/* 1-based GPT number of label, 0 when absent. */
unsigned si_board_part_number(const si_board *b, const char *label);
const char *si_board_fs_name(si_board_fs fs);
/* The partition a factory image installs the build into: `system`, or slot a
 * on an A/B board. */
const char *si_board_system_label(const si_board *b);

/* Smallest disk for the board (every "rest" at its min_mib), bytes. */
uint64_t si_board_min_disk_bytes(const si_board *b);
/* Disk size when none is asked: first_lba_mib + default_size_mib + 1 MiB. */
uint64_t si_board_default_disk_bytes(const si_board *b);
/* Place the partitions on a disk of disk_bytes (0 = the default size):
 * out[] gets b->nparts extents. SI_ERR_NO_SPACE naming the partition when the
 * disk is too small for the layout. */
si_result si_board_layout(const si_board *b, uint64_t disk_bytes, si_board_extent *out,
                          si_err *err);

/* grub.cfg from the template text (as images/board.py renders it): @ESP@,
 * @MISC@, @RECOVERY@, @SYSTEM@ (when the board has one), @PART_<LABEL>@ for
 * every partition, on an A/B board @SLOT_A@/@SLOT_B@ (numbers) and
 * @SLOT_A_LABEL@/@SLOT_B_LABEL@ (labels), @MAX_RECOVERY_BOOTS@,
 * @MAX_UNCONFIRMED_BOOTS@, @TIMEOUT@ replaced; any other @NAME@ is
 * SI_ERR_PARSE. malloc'd, NUL-terminated. */
si_result si_board_render_grub_cfg(const si_board *b, const char *tmpl, size_t len, int timeout,
                                   char **out, si_err *err);
/* GRUB's prefix: "(hd0,gptN)/grub" with N the ESP's number. */
void si_board_grub_prefix(const si_board *b, char *out, size_t outlen);

#endif
