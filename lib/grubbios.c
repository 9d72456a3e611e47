/* grubbios.c - GRUB's BIOS boot code on a GPT disk (BOARD-FACTS: measured). */
#include "grubbios.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

#define SECTOR 512u
#define MBR_CODE 440u
#define BOOT_KERNEL_SECTOR 0x5c /* GRUB_BOOT_MACHINE_KERNEL_SECTOR */
#define DISKBOOT_BLOCKLIST 500  /* start (u64), sectors (u16), segment (u16) */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

si_result si_grub_bios_install(int disk_fd, uint64_t part_start, uint64_t part_size,
                               const char *core_img, const char *boot_img, si_err *err)
{
    char *boot = NULL, *core = NULL;
    size_t blen = 0, clen = 0;
    si_result rc = si_read_file_checked(boot_img, SECTOR, &boot, &blen, err);
    if (rc != SI_OK)
        return rc;
    if ((rc = si_read_file_checked(core_img, SI_GRUB_CORE_MAX, &core, &clen, err)) != SI_OK)
        goto out;
    if (blen != SECTOR || (uint8_t)boot[510] != 0x55 || (uint8_t)boot[511] != 0xaa) {
        rc = si_err_set(err, SI_ERR_PARSE, "%s: not a 512-byte boot sector", boot_img);
        goto out;
    }
    if (clen < SECTOR) {
        rc = si_err_set(err, SI_ERR_PARSE, "%s: %zu bytes, not a GRUB core image", core_img, clen);
        goto out;
    }
    if (clen > part_size) {
        rc = si_err_set(err, SI_ERR_NO_SPACE, "%s: %zu bytes do not fit the %llu-byte BIOS boot partition",
                        core_img, clen, (unsigned long long)part_size);
        goto out;
    }
    if (part_start % SECTOR) {
        rc = si_err_set(err, SI_ERR_PARTITION, "BIOS boot partition not sector aligned");
        goto out;
    }
    uint64_t lba = part_start / SECTOR;
    uint64_t sectors = (clen + SECTOR - 1) / SECTOR;
    put_le64((uint8_t *)boot + BOOT_KERNEL_SECTOR, lba);
    put_le64((uint8_t *)core + DISKBOOT_BLOCKLIST, lba + 1);
    core[DISKBOOT_BLOCKLIST + 8] = (char)((sectors - 1) & 0xff);
    core[DISKBOOT_BLOCKLIST + 9] = (char)((sectors - 1) >> 8);
    if (pwrite(disk_fd, core, clen, (off_t)part_start) != (ssize_t)clen ||
        pwrite(disk_fd, boot, MBR_CODE, 0) != (ssize_t)MBR_CODE) {
        rc = si_err_set(err, SI_ERR_IO, "writing GRUB's BIOS boot code: %s", strerror(errno));
        goto out;
    }
out:
    free(boot);
    free(core);
    return rc;
}
