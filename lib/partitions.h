/* partitions.h - find partitions by GPT label (docs/design.md §7-§8).
 *
 * In the recovery there is no udev: the kernel's /sys/class/block/<name>/uevent
 * gives DEVNAME, MAJOR, MINOR, PARTN and (for GPT) PARTNAME. When PARTNAME is
 * absent, the label is probed from the device with libblkid. A missing /dev
 * node is created with mknod. The sysfs and /dev roots are parameters (NULL
 * means "/sys" and "/dev") so tests can point them at a fake tree. */
#ifndef SI_PARTITIONS_H
#define SI_PARTITIONS_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_PART_LABEL_MAX 128 /* GPT names: 36 UTF-16 units, UTF-8 up to 108 bytes */
#define SI_PART_NAME_MAX 64
#define SI_PART_PATH_MAX 512

typedef struct si_partition {
    char label[SI_PART_LABEL_MAX];  /* GPT partition name ("" if none) */
    char name[SI_PART_NAME_MAX];    /* kernel name, e.g. "vda3" (find only) */
    char path[SI_PART_PATH_MAX];    /* device node, e.g. "/dev/vda3" (find only) */
    unsigned major, minor;          /* (find only) */
    int partno;                     /* 1-based partition number */
    uint64_t start;                 /* bytes from the start of the disk (list only) */
    uint64_t size;                  /* bytes (list only) */
    char uuid[40];                  /* partition UUID (list only) */
    char type[40];                  /* partition type UUID or MBR type (list only) */
} si_partition;

/* Find the partition whose GPT label is `label` among the block devices the
 * kernel knows (sysfs_root/class/block), make sure its node exists under
 * dev_root (mknod if absent) and fill *out. SI_ERR_PARTITION when no
 * partition, or more than one, carries the label. */
si_result si_partition_find(const char *sysfs_root, const char *dev_root, const char *label,
                            si_partition *out, si_err *err);

/* Same, filling only the device node path (size pathlen) with default roots. */
si_result si_partition_find_path(const char *label, char *path, size_t pathlen, si_err *err);

/* List the partitions of a disk image file or a whole-disk device with
 * libblkid's partition probing: fills up to max entries (start, size, label,
 * partno, uuid, type), sets *count to the number found. `table_type`
 * (optional, size >= 8) receives "gpt" or "dos". SI_ERR_PARTITION when the
 * disk has no partition table, SI_ERR_TOO_LARGE when it has more than max. */
si_result si_partition_list(const char *disk, si_partition *parts, size_t max, size_t *count,
                            char *table_type, si_err *err);

/* Find one partition by label in a disk image/device (via si_partition_list). */
si_result si_partition_find_in_disk(const char *disk, const char *label, si_partition *out,
                                    si_err *err);

#endif
