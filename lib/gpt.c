/* gpt.c - a board's GPT through libfdisk. */
#include "gpt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libfdisk/libfdisk.h>

#define SECTOR 512ull

void si_uuid_format(const uint8_t bytes[16], char out[SI_UUID_STR])
{
    uint8_t u[16];
    memcpy(u, bytes, 16);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, SI_UUID_STR,
             "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* libfdisk's questions and messages: no dialog here, warnings are dropped
 * (every refusal comes back as an error code we report). */
static int no_ask(struct fdisk_context *cxt, struct fdisk_ask *ask, void *data)
{
    (void)cxt;
    (void)data;
    switch (fdisk_ask_get_type(ask)) {
    case FDISK_ASKTYPE_INFO:
    case FDISK_ASKTYPE_WARN:
    case FDISK_ASKTYPE_WARNX:
        return 0;
    default:
        return -EINVAL;
    }
}

si_result si_gpt_write(const char *disk, const si_board *b, const si_board_extent *ex,
                       char guids[][SI_UUID_STR], si_err *err)
{
    struct fdisk_context *cxt = fdisk_new_context();
    if (!cxt)
        return si_err_set(err, SI_ERR_NOMEM, "gpt: out of memory");
    fdisk_set_ask(cxt, no_ask, NULL);
    si_result rc = SI_OK;
    int r = fdisk_assign_device(cxt, disk, 0);
    if (r < 0) {
        rc = si_err_set(err, SI_ERR_IO, "gpt: %s: %s", disk, strerror(-r));
        goto out_free;
    }
    uint64_t sectors = fdisk_get_nsectors(cxt);
    if (fdisk_get_sector_size(cxt) != SECTOR) {
        rc = si_err_set(err, SI_ERR_UNSUPPORTED, "gpt: %s: %lu-byte sectors (512 needed)", disk,
                        fdisk_get_sector_size(cxt));
        goto out;
    }
    const si_board_extent *last = &ex[b->nparts - 1];
    /* the backup GPT takes the last 33 sectors */
    if ((last->start + last->size) / SECTOR + 33 > sectors) {
        rc = si_err_set(err, SI_ERR_NO_SPACE, "gpt: %s: %llu bytes do not hold the layout of %s",
                        disk, (unsigned long long)(sectors * SECTOR), b->name);
        goto out;
    }
    fdisk_enable_wipe(cxt, 1);
    if ((r = fdisk_create_disklabel(cxt, "gpt")) < 0) {
        rc = si_err_set(err, SI_ERR_PARTITION, "gpt: %s: cannot create a GPT: %s", disk, strerror(-r));
        goto out;
    }
    if ((r = fdisk_set_disklabel_id_from_string(cxt, guids[0])) < 0) {
        rc = si_err_set(err, SI_ERR_PARTITION, "gpt: %s: disk GUID %s: %s", disk, guids[0], strerror(-r));
        goto out;
    }
    struct fdisk_label *lb = fdisk_get_label(cxt, "gpt");
    for (size_t i = 0; i < b->nparts; i++) {
        const si_board_part *p = ex[i].part;
        struct fdisk_partition *pa = fdisk_new_partition();
        struct fdisk_parttype *t = fdisk_label_get_parttype_from_string(lb, p->type);
        if (!pa || !t) {
            fdisk_unref_partition(pa);
            fdisk_unref_parttype(t);
            rc = si_err_set(err, SI_ERR_NOMEM, "gpt: out of memory");
            goto out;
        }
        fdisk_partition_set_partno(pa, i);
        fdisk_partition_set_start(pa, ex[i].start / SECTOR);
        fdisk_partition_set_size(pa, ex[i].size / SECTOR);
        fdisk_partition_set_name(pa, p->label);
        fdisk_partition_set_type(pa, t);
        fdisk_partition_set_uuid(pa, guids[i + 1]);
        size_t got = 0;
        r = fdisk_add_partition(cxt, pa, &got);
        fdisk_unref_parttype(t);
        fdisk_unref_partition(pa);
        if (r < 0) {
            rc = si_err_set(err, SI_ERR_PARTITION, "gpt: %s: partition %zu (%s): %s", disk, i + 1,
                            p->label, strerror(-r));
            goto out;
        }
        if (got != i) {
            rc = si_err_set(err, SI_ERR_PARTITION, "gpt: %s: %s became partition %zu, not %zu", disk,
                            p->label, got + 1, i + 1);
            goto out;
        }
    }
    if ((r = fdisk_write_disklabel(cxt)) < 0) {
        rc = si_err_set(err, SI_ERR_IO, "gpt: %s: writing the table: %s", disk, strerror(-r));
        goto out;
    }
out:
    r = fdisk_deassign_device(cxt, 0); /* fsyncs */
    if (rc == SI_OK && r < 0)
        rc = si_err_set(err, SI_ERR_IO, "gpt: %s: closing: %s", disk, strerror(-r));
out_free:
    fdisk_unref_context(cxt);
    return rc;
}
