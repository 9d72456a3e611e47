/* cmd_flash_media.c - `sysimage flash-media`: provisioning media for the
 * recovery's flash mode (docs/flashing.md). The repository is verified as
 * for `sysimage image` (tools/imagekit); the stick is a GPT disk with
 * flash-bios and flash-esp (GRUB for BIOS and UEFI, an embedded config that
 * boots the recovery on the stick with sysimage.mode=flash) and `flash`
 * (ext4, libext2fs): the board file, the board's ESP as an image, GRUB's BIOS
 * images, the recovery image, the build's repository subset and the flash
 * job signed with the image-signing key. */
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

/* ------------------------------------------------------------ flash media */

static const char media_usage[] =
    "usage: sysimage flash-media --board B --repo DIR|URL --channel C [--build N] --keys KEYDIR\n"
    "                            --archive-master FILE --out stick.img [--erase]\n"
    "                            [--recovery DIR] [--images DIR] [--ca FILE]\n\n"
    "Write provisioning media (docs/flashing.md): a GPT disk with one ext4\n"
    "partition `flash` holding the board file, the ESP image, GRUB's BIOS images,\n"
    "the recovery image, the build's repository subset (keyrings, channels.json,\n"
    "index.json, the full image's files, all with their signatures) and the flash\n"
    "job flash.json, signed with KEYDIR/image-signing.key. The recovery booted with\n"
    "sysimage.mode=flash verifies all of it and provisions the internal disk. The\n"
    "repository is verified before anything is written; an expired index is\n"
    "refused (the recovery would refuse it: sysimage publish --refresh). A/B\n"
    "boards: the build goes to slot A, slot B is left empty (docs/ab.md). The\n"
    "recovery image must be the board's (make recovery-image BOARD=B).\n\n"
    "  --erase     the job consents to erasing a disk that is not blank\n"
    "  (other options as for `sysimage image`)\n";

struct media_files {
    size_t n;
    char names[64][PATH_CAP + 16];
    char srcs[64][PATH_CAP + 16];
};

static si_result media_add(struct media_files *m, const char *name, const char *src, si_err *err)
{
    if (m->n == 64)
        return si_err_set(err, SI_ERR_TOO_LARGE, "flash media: more than 64 files");
    snprintf(m->names[m->n], sizeof(m->names[m->n]), "%.4100s", name);
    snprintf(m->srcs[m->n], sizeof(m->srcs[m->n]), "%.4100s", src);
    m->n++;
    return SI_OK;
}

/* A repository file and its signature, if it exists, under repo/ on the media. */
static si_result media_add_repo(struct media_files *m, const char *repo, const char *rel, bool with_sig,
                                bool optional, si_err *err)
{
    char src[PATH_CAP], name[PATH_CAP];
    snprintf(src, sizeof(src), "%.2000s/%.2000s", repo, rel);
    if (access(src, R_OK) != 0) {
        if (optional)
            return SI_OK;
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: %s", src, strerror(errno));
    }
    snprintf(name, sizeof(name), "repo/%.4000s", rel);
    si_result rc = media_add(m, name, src, err);
    if (rc == SI_OK && with_sig) {
        char s2[PATH_CAP + 8], n2[PATH_CAP + 8];
        snprintf(s2, sizeof(s2), "%s.sig", src);
        snprintf(n2, sizeof(n2), "%s.sig", name);
        rc = media_add(m, n2, s2, err);
    }
    return rc;
}

/* path relative to the repository root of an absolute host path under it */
static const char *repo_rel(const char *repo, const char *path)
{
    size_t n = strlen(repo);
    if (strncmp(path, repo, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

static si_result file_digest(const char *path, uint64_t *size, char hex[65], si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    int r = si_sha256_file(path, d, size);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    si_hex_encode(d, sizeof(d), hex);
    return SI_OK;
}

#define MEDIA_ESP_MIB 34 /* FAT32 with 512-byte clusters needs 33 MiB */

/* The media's ESP: FAT32 in place with EFI/BOOT/BOOTX64.EFI only. */
static si_result stick_esp(build_ctx *c, const char *efi, const char *target, uint64_t offset, uint64_t size,
                           si_err *err)
{
    char stage[PATH_CAP], p[PATH_CAP + 64];
    snprintf(stage, sizeof(stage), "%.4000s/stick-esp", c->tmp);
    snprintf(p, sizeof(p), "%s/EFI/BOOT", stage);
    si_result rc = SI_OK;
    char *mk[] = {"mkdir", "-p", p, NULL};
    char *cp[] = {"cp", (char *)efi, NULL, NULL};
    char dst[PATH_CAP + 80];
    snprintf(dst, sizeof(dst), "%s/BOOTX64.EFI", p);
    cp[2] = dst;
    if ((rc = ik_run(mk, NULL, err)) != SI_OK || (rc = ik_run(cp, NULL, err)) != SI_OK ||
        (rc = ik_set_tree_times(dst, c->timestamp, err)) != SI_OK ||
        (rc = ik_set_times_below(stage, c->timestamp, err)) != SI_OK)
        return rc;
    if ((rc = ik_mkfs_fat32(c, "media:esp", "FLASH-ESP", target, offset, size, err)) != SI_OK)
        return si_err_prefix(err, "media ESP");
    char img[PATH_CAP + 64], src[PATH_CAP + 16], epoch[64];
    snprintf(img, sizeof(img), "%s@@%" PRIu64, target, offset);
    snprintf(src, sizeof(src), "%s/EFI", stage);
    snprintf(epoch, sizeof(epoch), "SOURCE_DATE_EPOCH=%" PRId64, c->timestamp);
    const char *env[] = {"MTOOLS_SKIP_CHECK=1", epoch, "LC_ALL=C", NULL};
    char *mcopy[] = {"mcopy", "-s", "-m", "-Q", "-i", img, src, "::/", NULL};
    if ((rc = ik_run(mcopy, env, err)) != SI_OK)
        return si_err_prefix(err, "media ESP");
    return SI_OK;
}

static const char *const media_labels[3] = {"flash-bios", "flash-esp", "flash"};

/* The signing key must load before anything is built. */
static si_result check_media_board_and_key(build_ctx *c, char *keypath, size_t keypath_cap, si_err *err)
{
    snprintf(keypath, keypath_cap, "%.4000s/image-signing.key", c->o->keys);
    si_key *signer = NULL;
    if (si_key_load_private_file(keypath, &signer, err) != SI_OK)
        return si_err_prefix(err, "signing key");
    si_key_free(signer);
    return SI_OK;
}

/* the boot files: GRUB images, the ESP as an image file */
static si_result make_boot_files(build_ctx *c, char *esp, size_t esp_cap, char *core, si_err *err)
{
    char efi[PATH_CAP];
    si_result rc;
    if ((rc = ik_grub_images(c, efi, core, err)) != SI_OK)
        return rc;
    snprintf(esp, esp_cap, "%s/esp.img", c->tmp);
    int fd = open(esp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)ik_extent(c, "esp")->size) != 0) {
        if (fd >= 0)
            close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: %s", esp, strerror(errno));
    }
    close(fd);
    return ik_make_esp(c, efi, esp, 0, err);
}

static void init_flash_job(const build_ctx *c, si_flashjob *job)
{
    const image_opts *o = c->o;
    memset(job, 0, sizeof(*job));
    snprintf(job->board, sizeof(job->board), "%s", c->board.name);
    snprintf(job->device, sizeof(job->device), "%s", o->device ? o->device : c->board.name);
    snprintf(job->channel, sizeof(job->channel), "%s", o->channel);
    job->build = c->rb.version;
    job->erase = o->erase;
}

/* the flash files with their digests in the job, then the signed job itself */
static si_result add_flash_files_and_job(build_ctx *c, struct media_files *m, si_flashjob *job, const char *esp,
                                         const char *core, const char *keypath, si_err *err)
{
    si_result rc = SI_OK;
    char kern[PATH_CAP + 16], initrd[PATH_CAP + 16];
    snprintf(kern, sizeof(kern), "%s/vmlinuz", c->recovery);
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", c->recovery);
    const char *srcs[SI_FLASH_NFILES] = {c->board_path, esp, core, c->board.bios.boot_img, kern, initrd};
    for (int k = 0; rc == SI_OK && k < SI_FLASH_NFILES; k++) {
        char name[PATH_CAP];
        snprintf(name, sizeof(name), "flash/%s", si_flash_file_names[k]);
        if ((rc = file_digest(srcs[k], &job->files[k].size, job->files[k].sha256, err)) == SI_OK)
            rc = media_add(m, name, srcs[k], err);
    }
    char jpath[PATH_CAP + 16], jsig[PATH_CAP + 16];
    snprintf(jpath, sizeof(jpath), "%s/flash.json", c->tmp);
    snprintf(jsig, sizeof(jsig), "%s/flash.json.sig", c->tmp);
    char *text = NULL;
    si_key *signer = NULL;
    if (rc == SI_OK && (rc = si_flashjob_format(job, &text, err)) == SI_OK) {
        int r = si_write_file_atomic(jpath, text, strlen(text), 0644);
        free(text);
        if (r < 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", jpath, strerror(-r));
        else if ((rc = si_key_load_private_file(keypath, &signer, err)) == SI_OK) {
            rc = si_sign_file(jpath, signer, false, err);
            si_key_free(signer);
        }
    }
    if (rc == SI_OK && (rc = media_add(m, "flash/flash.json", jpath, err)) == SI_OK)
        rc = media_add(m, "flash/flash.json.sig", jsig, err);
    return rc;
}

/* the repository subset */
static si_result add_repo_subset(build_ctx *c, struct media_files *m, const char *device, si_err *err)
{
    si_result rc = SI_OK;
    static const char *const rings[] = {"image-master", "image-signing", "blacklist"};
    for (size_t i = 0; rc == SI_OK && i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "keyrings/%s.keyring", rings[i]);
        rc = media_add_repo(m, c->repo_root, rel, true, i == 2, err);
    }
    if (rc == SI_OK) {
        char rel[256];
        snprintf(rel, sizeof(rel), "keyrings/%.64s/device-signing.keyring", device);
        rc = media_add_repo(m, c->repo_root, rel, true, true, err);
    }
    if (rc == SI_OK)
        rc = media_add_repo(m, c->repo_root, "channels.json", true, false, err);
    if (rc == SI_OK)
        rc = media_add_repo(m, c->repo_root, repo_rel(c->repo_root, c->rb.index_path), true, false, err);
    for (size_t i = 0; rc == SI_OK && i < c->rb.nfiles; i++) {
        if ((rc = media_add_repo(m, c->repo_root, repo_rel(c->repo_root, c->rb.paths[i]), false, false, err)) == SI_OK)
            rc = media_add_repo(m, c->repo_root, repo_rel(c->repo_root, c->rb.sigpaths[i]), false, false, err);
    }
    return rc;
}

/* the flash partition: ext4 in a file, sized for its files */
static si_result make_flash_fs(build_ctx *c, const struct media_files *m, const char *fsimg, uint64_t *part_mib,
                               si_err *err)
{
    si_result rc = SI_OK;
    uint64_t bytes = 0;
    for (size_t i = 0; rc == SI_OK && i < m->n; i++) {
        struct stat st;
        if (stat(m->srcs[i], &st) != 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", m->srcs[i], strerror(errno));
        else
            bytes += (uint64_t)st.st_blocks * 512 + 4096;
    }
    *part_mib = bytes / SI_MIB_BYTES * 11 / 10 + 32;
    if (rc == SI_OK) {
        int fd = open(fsimg, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", fsimg, strerror(errno));
        else
            close(fd);
    }
    if (rc == SI_OK) {
        uint8_t uuid[16];
        ik_derive(c->seed, "media:flash", uuid);
        si_mkfs_opts mo;
        si_mkfs_opts_init(&mo);
        mo.label = "flash";
        mo.size = *part_mib * SI_MIB_BYTES;
        mo.uuid = uuid;
        mo.timestamp = c->timestamp;
        rc = si_mkfs_ext4(fsimg, &mo, err);
    }
    if (rc == SI_OK) {
        const char *names[64], *paths[64];
        for (size_t i = 0; i < m->n; i++) {
            names[i] = m->names[i];
            paths[i] = m->srcs[i];
        }
        rc = si_ext4_add_files(fsimg, names, paths, m->n, c->timestamp, NULL, err);
    }
    return rc;
}

/* The media disk's layout: flash-bios, flash-esp, flash; returns the disk's size */
static uint64_t media_layout(const build_ctx *c, uint64_t part_mib, si_board *mb, si_board_extent mex[3])
{
    const si_board_part *bios_p = si_board_part_find(&c->board, c->board.bios.partition);
    const si_board_part *esp_p = si_board_part_find(&c->board, "esp");
    memset(mb, 0, sizeof(*mb));
    snprintf(mb->name, sizeof(mb->name), "flash-media");
    mb->nparts = 3;
    const uint64_t msizes[3] = {1, MEDIA_ESP_MIB, part_mib};
    const char *mtypes[3] = {bios_p->type, esp_p->type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"};
    uint64_t off = SI_MIB_BYTES;
    for (int i = 0; i < 3; i++) {
        snprintf(mb->parts[i].label, sizeof(mb->parts[i].label), "%s", media_labels[i]);
        snprintf(mb->parts[i].type, sizeof(mb->parts[i].type), "%s", mtypes[i]);
        mb->parts[i].size_mib = msizes[i];
        mex[i] = (si_board_extent){.part = &mb->parts[i], .number = (unsigned)i + 1, .start = off,
                                   .size = msizes[i] * SI_MIB_BYTES};
        off += mex[i].size;
    }
    return off + SI_MIB_BYTES;
}

/* GRUB's embedded config: boot the recovery from `flash` in flash mode, no menu */
static si_result write_media_early_cfg(const build_ctx *c, const char *early, si_err *err)
{
    char cfg[1024];
    const char *console = c->board.console[0] ? c->board.console : "ttyS0,115200";
    snprintf(cfg, sizeof(cfg),
             "search --no-floppy --label flash --set=root\n"
             "serial --unit=0 --speed=115200\n"
             "terminal_output serial\n"
             "echo \"sysimage: booting the recovery from the media (mode flash, %s build %" PRId64 ")\"\n"
             "linux ($root)/flash/vmlinuz console=%s panic=-1 no_timer_check sysimage.mode=flash sysimage.halt=poweroff\n"
             "initrd ($root)/flash/initrd.img\n"
             "boot\n",
             c->board.name, c->rb.version, console);
    int r = si_write_file_atomic(early, cfg, strlen(cfg), 0644);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", early, strerror(-r));
    return SI_OK;
}

/* GPT, flash partition, BIOS boot code and ESP into `<out>.partial`, renamed to `<out>` */
static si_result write_media_disk(build_ctx *c, const si_board *mb, const si_board_extent mex[3],
                                  uint64_t media_bytes, const char *fsimg, const char *sefi, const char *score,
                                  si_err *err)
{
    const image_opts *o = c->o;
    si_result rc;
    snprintf(c->partial, sizeof(c->partial), "%s.partial", o->out);
    unlink(c->partial);
    c->fd = open(c->partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    if (ftruncate(c->fd, (off_t)media_bytes) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    char guids[4][SI_UUID_STR];
    uint8_t u[16];
    for (int i = 0; i < 4; i++) {
        char what[32];
        snprintf(what, sizeof(what), "media:%s", i ? media_labels[i - 1] : "disk");
        ik_derive(c->seed, what, u);
        si_uuid_format(u, guids[i]);
    }
    if ((rc = si_gpt_write(c->partial, mb, mex, guids, err)) != SI_OK ||
        (rc = si_sparse_copy(fsimg, c->fd, mex[2].start, mex[2].size, err)) != SI_OK ||
        (rc = si_grub_bios_install(c->fd, mex[0].start, mex[0].size, score, c->board.bios.boot_img, err)) !=
            SI_OK ||
        (rc = stick_esp(c, sefi, c->partial, mex[1].start, mex[1].size, err)) != SI_OK)
        return rc;
    if (fsync(c->fd) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    close(c->fd);
    c->fd = -1;
    if (rename(c->partial, o->out) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", o->out, strerror(errno));
    si_fsync_parent_dir(o->out);
    return SI_OK;
}

static si_result build_media(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    double t0 = ik_now_s();
    si_result rc = ik_prepare(c, err);
    if (rc != SI_OK)
        return rc;
    char keypath[PATH_CAP], core[PATH_CAP], esp[PATH_CAP + 16];
    if ((rc = check_media_board_and_key(c, keypath, sizeof(keypath), err)) != SI_OK ||
        (rc = make_boot_files(c, esp, sizeof(esp), core, err)) != SI_OK)
        return rc;

    /* the job, the repository subset and the flash partition's file system */
    si_flashjob job;
    init_flash_job(c, &job);
    struct media_files *m = calloc(1, sizeof(*m));
    if (!m)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    char fsimg[PATH_CAP + 16];
    snprintf(fsimg, sizeof(fsimg), "%s/flash.ext4", c->tmp);
    uint64_t part_mib = 0;
    rc = add_flash_files_and_job(c, m, &job, esp, core, keypath, err);
    if (rc == SI_OK)
        rc = add_repo_subset(c, m, job.device, err);
    if (rc == SI_OK)
        rc = make_flash_fs(c, m, fsimg, &part_mib, err);
    size_t nfiles = m->n;
    free(m);
    if (rc != SI_OK)
        return si_err_prefix(err, "flash media");

    /* the media disk: GPT with flash-bios, flash-esp (GRUB for BIOS and
     * UEFI with an embedded config that boots the recovery from `flash`
     * with sysimage.mode=flash; no menu) and flash */
    si_board mb;
    si_board_extent mex[3];
    uint64_t media_bytes = media_layout(c, part_mib, &mb, mex);
    char early[PATH_CAP + 16], sefi[PATH_CAP], score[PATH_CAP];
    snprintf(early, sizeof(early), "%s/stick-early.cfg", c->tmp);
    if ((rc = write_media_early_cfg(c, early, err)) != SI_OK)
        return rc;
    if ((rc = ik_grub_images_ex(c, sefi, score, early, err)) != SI_OK)
        return si_err_prefix(err, "flash media boot loader");
    if ((rc = write_media_disk(c, &mb, mex, media_bytes, fsimg, sefi, score, err)) != SI_OK)
        return rc;
    printf("flash-media: wrote %s (%" PRIu64 " MiB, %zu files, build %" PRId64 ", consent %s) in %.1f s\n",
           o->out, media_bytes / SI_MIB_BYTES, nfiles, job.build, job.erase ? "erase" : "blank-only", ik_now_s() - t0);
    return SI_OK;
}

int cmd_flash_media(int argc, char **argv)
{
    return ik_main(argc, argv, true, media_usage, build_media);
}
