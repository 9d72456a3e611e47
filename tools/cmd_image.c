/* cmd_image.c - `sysimage image`: a factory disk image of a published build
 * (docs/flashing.md). Verifies the repository with the stub's chain of trust
 * (lib/localrepo), then writes, on a sparse file: the board's GPT (libfdisk),
 * GRUB for UEFI (ESP: BOOTX64.EFI, grub.cfg, counters) and BIOS (core image
 * in `bios`, boot.img in the MBR), the recovery image on `recovery`, the
 * build's full image on `system` (slot a on an A/B board, the other slot an
 * empty ext4; libext2fs, lib/ext4tar), a clean
 * boot-control block on `misc`, empty `cache` and `userdata`; then a .bmap
 * and, optionally, a zstd-compressed copy. Same inputs, same bytes: UUIDs,
 * GUIDs and timestamps are derived from the build.
 *
 * Subprocesses, by design: grub-mkimage (GRUB's images), mkfs.vfat and mcopy
 * (the FAT32 ESP, written in place with --offset / @@offset). Everything
 * else is in-process. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <dirent.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "bmap.h"
#include "board.h"
#include "commands.h"
#include "imagekit.h"
#include "ext4tar.h"
#include "flashjob.h"
#include "key.h"
#include "sigfile.h"
#include "fsutil.h"
#include "gpt.h"
#include "grubbios.h"
#include "grubenv.h"
#include "localrepo.h"
#include "mkfs.h"
#include "result.h"
#include "sha256.h"
#include "sparse.h"

extern char **environ;

static const char usage[] =
    "usage: sysimage image --board B --repo DIR|URL --channel C [--build N] --out disk.img\n"
    "                      --archive-master FILE [--recovery DIR] [--size MIB]\n"
    "                      [--compress zstd] [--images DIR] [--timeout S] [--ca FILE]\n"
    "                      [--allow-expired-index]\n\n"
    "Write a factory disk image of a published build: GPT of the board, GRUB for\n"
    "UEFI and BIOS, the recovery image, the build's full image on `system` (slot a\n"
    "of an A/B board, docs/ab.md), a clean\n"
    "boot-control block on `misc`, empty `cache` and `userdata`. The repository is\n"
    "verified as a device verifies it (keyrings, channels.json, index.json and its\n"
    "expiry, each file's size, sha256 and signature) before anything is written. Output: the\n"
    "sparse image and OUT.bmap (bmaptool copy OUT DEVICE); with --compress zstd,\n"
    "OUT.zst instead of OUT. Same inputs, same bytes.\n\n"
    "  --board B             board name (images/B/board.json) or a board.json path\n"
    "  --repo DIR|URL        the published tree (sysimage publish --repo), or its\n"
    "                        http(s):// URL: fetched into a temporary cache as it is\n"
    "                        verified, files streamed to disk\n"
    "  --ca FILE             CA bundle for an https:// repository (default: the\n"
    "                        system's store)\n"
    "  --allow-expired-index write the image although the index has expired (said\n"
    "                        on stdout; better: sysimage publish --refresh)\n"
    "  --channel C           channel\n"
    "  --build N             build (default: the newest full image of the channel)\n"
    "  --device D            device model in channels.json (default: the board name)\n"
    "  --archive-master F    the archive-master keyring devices carry built in\n"
    "  --recovery DIR        recovery image: DIR/vmlinuz and DIR/initrd.img (and\n"
    "                        DIR/board.json: must be this board's); default, next\n"
    "                        to this program: build/recovery-B, else build/recovery\n"
    "  --size MIB            disk size (default: the board's; `rest` grows)\n"
    "  --compress zstd       write OUT.zst (and OUT.bmap of the raw image)\n"
    "  --images DIR          where boards live (default: $SI_IMAGES_DIR, ./images,\n"
    "                        images/ of the source tree of this program)\n"
    "  --timeout S           GRUB menu timeout in seconds (default 3)\n"
    "  --out FILE            output image (written as FILE.partial, then renamed)\n";

static si_result ext4_part(build_ctx *c, const char *label, si_ext4tar_stats *st, si_err *err)
{
    const si_board_extent *e = ik_extent(c, label);
    char path[PATH_CAP + 64];
    snprintf(path, sizeof(path), "%s/%s.ext4", c->tmp, label);
    uint8_t uuid[16];
    char what[64];
    snprintf(what, sizeof(what), "fs:%s", label);
    ik_derive(c->seed, what, uuid);
    si_mkfs_opts mo;
    si_mkfs_opts_init(&mo);
    mo.label = label;
    mo.size = e->size;
    mo.uuid = uuid;
    mo.timestamp = c->timestamp;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(errno));
    close(fd);
    si_result rc = si_mkfs_ext4(path, &mo, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", label);
    if (strcmp(label, "recovery") == 0) {
        char k[PATH_CAP + 32], i[PATH_CAP + 32];
        snprintf(k, sizeof(k), "%s/vmlinuz", c->recovery);
        snprintf(i, sizeof(i), "%s/initrd.img", c->recovery);
        const char *names[] = {"vmlinuz", "initrd.img"}, *srcs[] = {k, i};
        rc = si_ext4_add_files(path, names, srcs, 2, c->timestamp, st, err);
    } else if (strcmp(label, si_board_system_label(&c->board)) == 0) {
        rc = si_ext4_from_tarballs(path, (const char *const *)c->rb.paths, c->rb.nfiles, c->timestamp,
                                   st, err);
    }
    if (rc != SI_OK)
        return si_err_prefix(err, "partition %s", label);
    if (st && st->free_bytes < e->part->min_free_mib * SI_MIB_BYTES)
        return si_err_set(err, SI_ERR_NO_SPACE,
                          "partition %s: %" PRIu64 " MiB left free, the board asks for %" PRIu64 " MiB",
                          label, st->free_bytes / SI_MIB_BYTES, e->part->min_free_mib);
    if ((rc = si_sparse_copy(path, c->fd, e->start, e->size, err)) != SI_OK)
        return si_err_prefix(err, "partition %s", label);
    unlink(path);
    return SI_OK;
}

static si_result compress_zstd(const char *in, const char *out, si_err *err)
{
    char tmp[PATH_CAP + 16];
    snprintf(tmp, sizeof(tmp), "%s.partial", out);
    FILE *fi = fopen(in, "rb"), *fo = fopen(tmp, "wb");
    ZSTD_CCtx *z = ZSTD_createCCtx();
    size_t isz = ZSTD_CStreamInSize(), osz = ZSTD_CStreamOutSize();
    char *ib = malloc(isz), *ob = malloc(osz);
    si_result rc = SI_OK;
    if (!fi || !fo)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", !fi ? in : tmp, strerror(errno));
    else if (!z || !ib || !ob)
        rc = si_err_set(err, SI_ERR_NOMEM, "zstd: out of memory");
    else {
        ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
        for (;;) {
            size_t n = fread(ib, 1, isz, fi);
            if (ferror(fi)) {
                rc = si_err_set(err, SI_ERR_IO, "%s: read error", in);
                break;
            }
            int last = n < isz;
            ZSTD_inBuffer ibuf = {ib, n, 0};
            int done = 0;
            while (!done) {
                ZSTD_outBuffer obuf = {ob, osz, 0};
                size_t left = ZSTD_compressStream2(z, &obuf, &ibuf, last ? ZSTD_e_end : ZSTD_e_continue);
                if (ZSTD_isError(left)) {
                    rc = si_err_set(err, SI_ERR_IO, "zstd: %s", ZSTD_getErrorName(left));
                    break;
                }
                if (fwrite(ob, 1, obuf.pos, fo) != obuf.pos) {
                    rc = si_err_set(err, SI_ERR_IO, "%s: %s", tmp, strerror(errno));
                    break;
                }
                done = last ? left == 0 : ibuf.pos == ibuf.size;
            }
            if (rc != SI_OK || last)
                break;
        }
    }
    if (fi)
        fclose(fi);
    if (fo && (fflush(fo) != 0 || fsync(fileno(fo)) != 0) && rc == SI_OK)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (fo)
        fclose(fo);
    ZSTD_freeCCtx(z);
    free(ib);
    free(ob);
    if (rc == SI_OK && rename(tmp, out) != 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", out, strerror(errno));
    if (rc != SI_OK)
        unlink(tmp);
    return rc;
}

/* 2. a sparse file with the GPT */
static si_result write_gpt_disk(build_ctx *c, si_err *err)
{
    snprintf(c->partial, sizeof(c->partial), "%s.partial", c->o->out);
    unlink(c->partial);
    c->fd = open(c->partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    if (ftruncate(c->fd, (off_t)c->disk_bytes) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    char guids[SI_BOARD_MAX_PARTS + 1][SI_UUID_STR];
    uint8_t u[16];
    ik_derive(c->seed, "gpt:disk", u);
    si_uuid_format(u, guids[0]);
    for (size_t i = 0; i < c->board.nparts; i++) {
        char what[64];
        snprintf(what, sizeof(what), "gpt:%s", c->board.parts[i].label);
        ik_derive(c->seed, what, u);
        si_uuid_format(u, guids[i + 1]);
    }
    return si_gpt_write(c->partial, &c->board, c->ex, guids, err);
}

/* 3. boot loader: GRUB images, ESP, BIOS boot code */
static si_result install_boot_loader(build_ctx *c, si_err *err)
{
    si_result rc;
    char efi[PATH_CAP], core[PATH_CAP];
    if ((rc = ik_grub_images(c, efi, core, err)) != SI_OK || (rc = ik_make_esp(c, efi, c->partial, ik_extent(c, "esp")->start, err)) != SI_OK)
        return rc;
    const si_board_extent *bios = ik_extent(c, c->board.bios.partition);
    return si_grub_bios_install(c->fd, bios->start, bios->size, core, c->board.bios.boot_img, err);
}

/* 4. misc: a clean boot-control block */
static si_result write_clean_misc(build_ctx *c, si_err *err)
{
    si_result rc;
    si_grubenv env;
    si_grubenv_init(&env);
    char block[SI_GRUBENV_SIZE];
    if ((rc = si_grubenv_set(&env, "recovery_request", "0", err)) != SI_OK ||
        (rc = si_grubenv_format(&env, block, err)) != SI_OK)
        return rc;
    if (pwrite(c->fd, block, sizeof(block), (off_t)ik_extent(c, "misc")->start) != (ssize_t)sizeof(block))
        return si_err_set(err, SI_ERR_IO, "misc: %s", strerror(errno));
    return SI_OK;
}

/* 5. ext4: recovery, system, cache, userdata (and any other ext4 one) */
static si_result fill_ext4_parts(build_ctx *c, si_ext4tar_stats *rst, si_ext4tar_stats *sst, si_err *err)
{
    si_result rc;
    memset(rst, 0, sizeof(*rst));
    memset(sst, 0, sizeof(*sst));
    for (size_t i = 0; i < c->board.nparts; i++) {
        const si_board_part *p = &c->board.parts[i];
        if (p->fs != SI_BOARD_FS_EXT4)
            continue;
        si_ext4tar_stats *st = strcmp(p->label, "recovery") == 0 ? rst
                               : strcmp(p->label, si_board_system_label(&c->board)) == 0 ? sst
                                                                 : NULL;
        if ((rc = ext4_part(c, p->label, st, err)) != SI_OK)
            return rc;
    }
    if (fsync(c->fd) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: fsync: %s", c->partial, strerror(errno));
    close(c->fd);
    c->fd = -1;
    return SI_OK;
}

/* 6. block map, compression, the final names */
static si_result finish_image_files(build_ctx *c, char *bmap, size_t bmap_cap, char *final, size_t final_cap,
                                   si_bmap_stats *bs, si_err *err)
{
    const image_opts *o = c->o;
    si_result rc;
    snprintf(bmap, bmap_cap, "%s.bmap", o->out);
    if ((rc = si_bmap_write(c->partial, bmap, bs, err)) != SI_OK)
        return rc;
    if (o->zstd) {
        snprintf(final, final_cap, "%s.zst", o->out);
        if ((rc = compress_zstd(c->partial, final, err)) != SI_OK)
            return rc;
        unlink(c->partial);
    } else {
        snprintf(final, final_cap, "%s", o->out);
        if (rename(c->partial, final) != 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", final, strerror(errno));
    }
    si_fsync_parent_dir(final);
    return SI_OK;
}

static si_result build(build_ctx *c, si_err *err)
{
    double t0 = ik_now_s();
    si_result rc = ik_prepare(c, err);
    if (rc != SI_OK)
        return rc;
    si_ext4tar_stats rst, sst;
    if ((rc = write_gpt_disk(c, err)) != SI_OK || (rc = install_boot_loader(c, err)) != SI_OK ||
        (rc = write_clean_misc(c, err)) != SI_OK || (rc = fill_ext4_parts(c, &rst, &sst, err)) != SI_OK)
        return rc;
    char bmap[PATH_CAP + 8], final[PATH_CAP + 8];
    si_bmap_stats bs;
    if ((rc = finish_image_files(c, bmap, sizeof(bmap), final, sizeof(final), &bs, err)) != SI_OK)
        return rc;
    printf("image: system %" PRIu64 " entries, %" PRIu64 " MiB, %" PRIu64 " MiB free; recovery %" PRIu64
           " MiB free\n",
           sst.members, sst.bytes / SI_MIB_BYTES, sst.free_bytes / SI_MIB_BYTES,
           rst.free_bytes / SI_MIB_BYTES);
    printf("image: wrote %s (%" PRIu64 " MiB, %" PRIu64 " MiB mapped) and %s in %.1f s\n", final,
           bs.image_size / SI_MIB_BYTES, bs.mapped_blocks * SI_BMAP_BLOCK / SI_MIB_BYTES, bmap,
           ik_now_s() - t0);
    return SI_OK;
}

int cmd_image(int argc, char **argv)
{
    return ik_main(argc, argv, false, usage, build);
}
