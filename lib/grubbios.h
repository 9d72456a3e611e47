/* grubbios.h - GRUB's BIOS boot code installed by hand on a GPT disk (image
 * file or device; grub-install and grub-bios-setup refuse image files):
 * the i386-pc core image raw at the start of the BIOS boot partition,
 * boot.img's code (its first 440 bytes; the protective MBR's partition table
 * and signature stay) in LBA 0 pointing at the core image
 * (boot.img@0x5c = its LBA), and the core image's first sector (diskboot)
 * pointing at the rest (core@500 = LBA + 1, core@508 = sectors - 1). */
#ifndef SI_GRUBBIOS_H
#define SI_GRUBBIOS_H

#include <stdint.h>

#include "result.h"

#define SI_GRUB_CORE_MAX (1024 * 1024)

/* SI_ERR_NO_SPACE when the core image is larger than the partition,
 * SI_ERR_PARSE when boot.img is not a 512-byte sector with the 0x55AA
 * signature or core.img is shorter than a sector. */
si_result si_grub_bios_install(int disk_fd, uint64_t part_start, uint64_t part_size,
                               const char *core_img, const char *boot_img, si_err *err);

#endif
