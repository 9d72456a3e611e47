/* cmd_image.c - `sysimage image`: a factory disk image of a published build
 * (docs/flashing.md). Verifies the repository with the stub's chain of trust
 * (lib/localrepo), then writes, on a sparse file: the board's GPT (libfdisk),
 * GRUB for UEFI (ESP: BOOTX64.EFI, grub.cfg, counters) and BIOS (core image
 * in `bios`, boot.img in the MBR), the recovery image on `recovery`, the
 * build's full image on `system` (libext2fs, lib/ext4tar), a clean
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
    "usage: sysimage image --board B --repo DIR --channel C [--build N] --out disk.img\n"
    "                      --archive-master FILE [--recovery DIR] [--size MIB]\n"
    "                      [--compress zstd] [--images DIR] [--timeout S]\n\n"
    "Write a factory disk image of a published build: GPT of the board, GRUB for\n"
    "UEFI and BIOS, the recovery image, the build's full image on `system`, a clean\n"
    "boot-control block on `misc`, empty `cache` and `userdata`. The repository is\n"
    "verified as a device verifies it (keyrings, channels.json, index.json, each\n"
    "file's size, sha256 and signature) before anything is written. Output: the\n"
    "sparse image and OUT.bmap (bmaptool copy OUT DEVICE); with --compress zstd,\n"
    "OUT.zst instead of OUT. Same inputs, same bytes.\n\n"
    "  --board B             board name (images/B/board.json) or a board.json path\n"
    "  --repo DIR            the published tree (sysimage publish --repo); a URL is\n"
    "                        not supported: mirror it first (e.g. wget -m)\n"
    "  --channel C           channel\n"
    "  --build N             build (default: the newest full image of the channel)\n"
    "  --device D            device model in channels.json (default: the board name)\n"
    "  --archive-master F    the archive-master keyring devices carry built in\n"
    "  --recovery DIR        recovery image: DIR/vmlinuz and DIR/initrd.img\n"
    "                        (default: build/recovery next to this program)\n"
    "  --size MIB            disk size (default: the board's; `rest` grows)\n"
    "  --compress zstd       write OUT.zst (and OUT.bmap of the raw image)\n"
    "  --images DIR          where boards live (default: $SI_IMAGES_DIR, ./images,\n"
    "                        images/ of the source tree of this program)\n"
    "  --timeout S           GRUB menu timeout in seconds (default 3)\n"
    "  --out FILE            output image (written as FILE.partial, then renamed)\n";

#define PATH_CAP 4096

typedef struct image_opts {
    const char *keys;
    bool erase;
    const char *board, *repo, *channel, *out, *archive_master, *recovery, *images, *device;
    int64_t build;
    uint64_t size_mib;
    bool zstd;
    int timeout;
} image_opts;

/* ------------------------------------------------------------ helpers */

/* Run argv (no shell) with extra environment entries; SI_ERR_IO naming the
 * program when it cannot start or does not exit 0. */
static si_result run(char *const argv[], const char *const extra_env[], si_err *err)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (extra_env && extra_env[k])
        k++;
    char **env = calloc(n + k + 1, sizeof(char *));
    if (!env)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < k; i++)
        env[i] = (char *)extra_env[i];
    for (size_t i = 0; i < n; i++)
        env[k + i] = environ[i];
    /* stdout dropped; stderr kept aside and quoted when the program fails
     * (mkfs.vfat warns about --offset on every run) */
    char logp[] = "/tmp/sysimage-run-XXXXXX";
    int logfd = mkstemp(logp);
    if (logfd >= 0)
        unlink(logp);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (logfd >= 0)
        posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (r != 0) {
        if (logfd >= 0)
            close(logfd);
        return si_err_set(err, SI_ERR_IO, "cannot run %s: %s (is it installed? scripts/deps.sh)",
                          argv[0], strerror(r));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            if (logfd >= 0)
                close(logfd);
            return si_err_set(err, SI_ERR_IO, "%s: waitpid: %s", argv[0], strerror(errno));
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[256] = "";
        if (logfd >= 0) {
            off_t end = lseek(logfd, 0, SEEK_END);
            off_t from = end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0;
            ssize_t n = pread(logfd, tail, sizeof(tail) - 1, from);
            tail[n > 0 ? n : 0] = '\0';
            for (char *q = tail; *q; q++)
                if (*q == '\n')
                    *q = ' ';
            close(logfd);
        }
        return si_err_set(err, SI_ERR_IO, "%s failed (%s %d)%s%s", argv[0],
                          WIFEXITED(status) ? "exit" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail[0] ? ": " : "",
                          tail);
    }
    if (logfd >= 0)
        close(logfd);
    return SI_OK;
}

/* 16 bytes derived from the build's seed and a purpose ("disk", "part:esp"). */
static void derive(const uint8_t seed[SI_SHA256_LEN], const char *what, uint8_t out[16])
{
    si_sha256 h;
    si_sha256_init(&h);
    si_sha256_update(&h, seed, SI_SHA256_LEN);
    si_sha256_update(&h, what, strlen(what) + 1);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_final(&h, d);
    memcpy(out, d, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

static int dir_has(const char *dir, const char *name)
{
    char p[PATH_CAP];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, R_OK) == 0;
}

/* The directory two levels above this program (build/bin -> the tree). */
static void self_root(char *out, size_t cap)
{
    char exe[PATH_CAP];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (!s)
            return;
        *s = '\0';
    }
    snprintf(out, cap, "%s", exe);
}

static si_result find_board(const image_opts *o, char *path, size_t cap, si_err *err)
{
    if (strchr(o->board, '/') || strstr(o->board, ".json")) {
        snprintf(path, cap, "%s", o->board);
        return SI_OK;
    }
    char root[PATH_CAP], cand[3][PATH_CAP];
    self_root(root, sizeof(root));
    const char *env = getenv("SI_IMAGES_DIR");
    size_t nc = 0;
    if (o->images)
        snprintf(cand[nc++], PATH_CAP, "%s", o->images);
    else {
        if (env && *env)
            snprintf(cand[nc++], PATH_CAP, "%s", env);
        snprintf(cand[nc++], PATH_CAP, "images");
        if (root[0])
            snprintf(cand[nc++], PATH_CAP, "%.4000s/images", root);
    }
    si_result rc = SI_ERR_NOT_FOUND;
    for (size_t i = 0; i < nc; i++)
        if ((rc = si_board_path(cand[i], o->board, path, cap, err)) != SI_ERR_NOT_FOUND)
            return rc;
    return rc;
}

static si_result set_tree_times(const char *path, int64_t t, si_err *err)
{
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: utimensat: %s", path, strerror(errno));
    return SI_OK;
}

/* Every directory below (and including) dir gets mtime t. */
static si_result set_times_below(const char *dir, int64_t t, si_err *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", dir, strerror(errno));
    si_result rc = SI_OK;
    for (int i = 0; i < n; i++) {
        if (rc == SI_OK && names[i]->d_type == DT_DIR && strcmp(names[i]->d_name, ".") != 0 &&
            strcmp(names[i]->d_name, "..") != 0) {
            char sub[PATH_CAP + 256];
            snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]->d_name);
            rc = set_times_below(sub, t, err);
        }
        free(names[i]);
    }
    free(names);
    return rc == SI_OK ? set_tree_times(dir, t, err) : rc;
}

static si_result mkdir_t(const char *path, int64_t t, si_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(errno));
    return set_tree_times(path, t, err);
}

static si_result write_t(const char *path, const void *buf, size_t len, int64_t t, si_err *err)
{
    int r = si_write_file_atomic(path, buf, len, 0644);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return set_tree_times(path, t, err);
}

static void rm_rf(const char *dir)
{
    char *argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
    run(argv, NULL, NULL);
}

/* ------------------------------------------------------------ steps */

typedef struct build_ctx {
    const image_opts *o;
    si_board board;
    char board_path[PATH_CAP];
    char board_dir[PATH_CAP];
    si_repo_build rb;
    char tmp[PATH_CAP];
    char partial[PATH_CAP + 16];
    uint8_t seed[SI_SHA256_LEN];
    int64_t timestamp;
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    uint64_t disk_bytes;
    int fd;
} build_ctx;

static const si_board_extent *extent(const build_ctx *c, const char *label)
{
    for (size_t i = 0; i < c->board.nparts; i++)
        if (strcmp(c->ex[i].part->label, label) == 0)
            return &c->ex[i];
    return NULL;
}

/* GRUB's EFI and i386-pc images of the board's recipe into c->tmp. With
 * early_cfg (provisioning media), that config is embedded, `search` is added
 * and the files are named stick-*. */
static si_result grub_images_ex(build_ctx *c, char *efi, char *core, const char *early_cfg, si_err *err)
{
    char prefix[64];
    si_board_grub_prefix(&c->board, prefix, sizeof(prefix));
    if (early_cfg)
        snprintf(prefix, sizeof(prefix), "/flash");
    const char *tag = early_cfg ? "stick-" : "";
    snprintf(efi, PATH_CAP, "%.4000s/%sBOOTX64.EFI", c->tmp, tag);
    snprintf(core, PATH_CAP, "%.4000s/%score.img", c->tmp, tag);
    const si_board_grub_image *imgs[2] = {&c->board.efi, &c->board.bios};
    const char *outs[2] = {efi, core};
    for (int k = 0; k < 2; k++) {
        char *argv[SI_BOARD_MAX_MODULES + 12];
        int a = 0;
        argv[a++] = "grub-mkimage";
        argv[a++] = "-O";
        argv[a++] = (char *)imgs[k]->format;
        argv[a++] = "-p";
        argv[a++] = prefix;
        argv[a++] = "-o";
        argv[a++] = (char *)outs[k];
        if (early_cfg) {
            argv[a++] = "-c";
            argv[a++] = (char *)early_cfg;
            argv[a++] = "search";
        }
        for (size_t m = 0; m < imgs[k]->nmodules; m++)
            argv[a++] = (char *)imgs[k]->modules[m];
        argv[a] = NULL;
        si_result rc = run(argv, NULL, err);
        if (rc != SI_OK)
            return si_err_prefix(err, "GRUB %s image", imgs[k]->format);
    }
    return SI_OK;
}

static si_result grub_images(build_ctx *c, char *efi, char *core, si_err *err)
{
    return grub_images_ex(c, efi, core, NULL, err);
}

/* The ESP's FAT32 with GRUB's EFI image, grub.cfg and counters, made in
 * place in `target` at byte `offset` (the disk image, or an ESP image file
 * for flash media). */
static si_result make_esp(build_ctx *c, const char *efi, const char *target, uint64_t offset, si_err *err)
{
    const si_board_extent *e = extent(c, "esp");
    int64_t t = c->timestamp;
    char stage[PATH_CAP], p[PATH_CAP + 256];
    snprintf(stage, sizeof(stage), "%.4000s/esp", c->tmp);
    si_result rc = mkdir_t(stage, t, err);
    /* EFI/BOOT/BOOTX64.EFI (the board's path), grub/grub.cfg, the counters */
    char efipath[SI_BOARD_PATH_MAX];
    snprintf(efipath, sizeof(efipath), "%s", c->board.efi.path);
    for (char *s = efipath; rc == SI_OK && (s = strchr(s, '/')); s++) {
        *s = '\0';
        snprintf(p, sizeof(p), "%s/%s", stage, efipath);
        rc = mkdir_t(p, t, err);
        *s = '/';
    }
    char *buf = NULL;
    size_t len = 0;
    if (rc == SI_OK && (rc = si_read_file_checked(efi, 16 * 1024 * 1024, &buf, &len, err)) == SI_OK) {
        snprintf(p, sizeof(p), "%s/%s", stage, efipath);
        rc = write_t(p, buf, len, t, err);
        free(buf);
        buf = NULL;
    }
    char tpath[PATH_CAP + 256];
    snprintf(tpath, sizeof(tpath), "%s/%s", c->board_dir, c->board.config);
    if (rc == SI_OK && (rc = si_read_file_checked(tpath, 1024 * 1024, &buf, &len, err)) == SI_OK) {
        char *cfg = NULL;
        rc = si_board_render_grub_cfg(&c->board, buf, len, c->o->timeout, &cfg, err);
        free(buf);
        if (rc == SI_OK) {
            snprintf(p, sizeof(p), "%s/grub", stage);
            if ((rc = mkdir_t(p, t, err)) == SI_OK) {
                snprintf(p, sizeof(p), "%s/grub/grub.cfg", stage);
                rc = write_t(p, cfg, strlen(cfg), t, err);
            }
            free(cfg);
        }
    }
    if (rc == SI_OK) {
        si_grubenv env;
        si_grubenv_init(&env);
        char block[SI_GRUBENV_SIZE];
        if ((rc = si_grubenv_set(&env, "recovery_boots", "0", err)) == SI_OK &&
            (rc = si_grubenv_set(&env, "normal_boots", "0", err)) == SI_OK &&
            (rc = si_grubenv_set(&env, "system_new", "0", err)) == SI_OK &&
            (rc = si_grubenv_format(&env, block, err)) == SI_OK) {
            char envpath[SI_BOARD_PATH_MAX];
            snprintf(envpath, sizeof(envpath), "%s", c->board.env_file);
            for (char *s = envpath; rc == SI_OK && (s = strchr(s, '/')); s++) {
                *s = '\0';
                snprintf(p, sizeof(p), "%s/%s", stage, envpath);
                rc = mkdir_t(p, t, err);
                *s = '/';
            }
            snprintf(p, sizeof(p), "%s/%s", stage, envpath);
            if (rc == SI_OK)
                rc = write_t(p, block, sizeof(block), t, err);
        }
    }
    /* directories last: writing into them changed their mtimes */
    if (rc == SI_OK)
        rc = set_times_below(stage, t, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "ESP");
    /* FAT32 in place; volume ID from the build, --invariant for the rest */
    uint8_t id[16];
    derive(c->seed, "fs:esp", id);
    char volid[16], offset_arg[32], kib[32];
    snprintf(volid, sizeof(volid), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    snprintf(offset_arg, sizeof(offset_arg), "--offset=%" PRIu64, offset / 512);
    snprintf(kib, sizeof(kib), "%" PRIu64, e->size / 1024);
    char *mkfs[] = {"mkfs.vfat", "-F", "32", "-s", "1", "-n", "ESP", "-i", volid, "--invariant",
                    offset_arg, (char *)target, kib, NULL};
    if ((rc = run(mkfs, NULL, err)) != SI_OK)
        return si_err_prefix(err, "ESP");
    char img[PATH_CAP + 64];
    snprintf(img, sizeof(img), "%s@@%" PRIu64, target, offset);
    char epoch[64];
    snprintf(epoch, sizeof(epoch), "SOURCE_DATE_EPOCH=%" PRId64, t);
    const char *env[] = {"MTOOLS_SKIP_CHECK=1", epoch, "LC_ALL=C", NULL};
    /* every top-level entry of the staged tree, in name order */
    struct dirent **names = NULL;
    int n = scandir(stage, &names, NULL, alphasort);
    if (n < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", stage, strerror(errno));
    char *mcopy[16 + 8];
    char paths[16][PATH_CAP + 256];
    int a = 0, k = 0;
    mcopy[a++] = "mcopy";
    mcopy[a++] = "-s";
    mcopy[a++] = "-m";
    mcopy[a++] = "-Q";
    mcopy[a++] = "-i";
    mcopy[a++] = img;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' && k < 16) {
            snprintf(paths[k], sizeof(paths[k]), "%s/%s", stage, names[i]->d_name);
            mcopy[a++] = paths[k++];
        }
        free(names[i]);
    }
    free(names);
    mcopy[a++] = "::/";
    mcopy[a] = NULL;
    if ((rc = run(mcopy, env, err)) != SI_OK)
        return si_err_prefix(err, "ESP: copying the boot files");
    return SI_OK;
}

static si_result ext4_part(build_ctx *c, const char *label, si_ext4tar_stats *st, si_err *err)
{
    const si_board_extent *e = extent(c, label);
    char path[PATH_CAP + 64];
    snprintf(path, sizeof(path), "%s/%s.ext4", c->tmp, label);
    uint8_t uuid[16];
    char what[64];
    snprintf(what, sizeof(what), "fs:%s", label);
    derive(c->seed, what, uuid);
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
        snprintf(k, sizeof(k), "%s/vmlinuz", c->o->recovery);
        snprintf(i, sizeof(i), "%s/initrd.img", c->o->recovery);
        const char *names[] = {"vmlinuz", "initrd.img"}, *srcs[] = {k, i};
        rc = si_ext4_add_files(path, names, srcs, 2, c->timestamp, st, err);
    } else if (strcmp(label, "system") == 0) {
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Board, layout, recovery image, the repository verified, the build's
 * tarballs scanned, the seed of every UUID, a temporary directory. */
static si_result prepare(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    char bpath[PATH_CAP];
    si_result rc = find_board(o, bpath, sizeof(bpath), err);
    if (rc != SI_OK || (rc = si_board_load(bpath, &c->board, err)) != SI_OK)
        return rc;
    snprintf(c->board_path, sizeof(c->board_path), "%s", bpath);
    snprintf(c->board_dir, sizeof(c->board_dir), "%s", bpath);
    char *slash = strrchr(c->board_dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(c->board_dir, sizeof(c->board_dir), ".");
    c->disk_bytes = o->size_mib ? o->size_mib * SI_MIB_BYTES : si_board_default_disk_bytes(&c->board);
    if ((rc = si_board_layout(&c->board, c->disk_bytes, c->ex, err)) != SI_OK)
        return rc;
    if (!dir_has(o->recovery, "vmlinuz") || !dir_has(o->recovery, "initrd.img"))
        return si_err_set(err, SI_ERR_MISSING_FILE,
                          "%s: no vmlinuz and initrd.img (the recovery image: make recovery-image)",
                          o->recovery);

    /* 1. the repository, verified before anything is written */
    const char *device = o->device ? o->device : c->board.name;
    if ((rc = si_repo_open_build(o->repo, o->archive_master, o->channel, device, o->build,
                                 (int64_t)time(NULL), &c->rb, err)) != SI_OK)
        return rc;
    uint64_t data = 0, members = 0;
    if ((rc = si_ext4tar_scan((const char *const *)c->rb.paths, c->rb.nfiles, &c->timestamp, &data,
                              &members, err)) != SI_OK)
        return rc;
    if (c->timestamp <= 0)
        c->timestamp = 1;
    const si_board_extent *sys = extent(c, "system");
    if (data > sys->size)
        return si_err_set(err, SI_ERR_NO_SPACE,
                          "build %" PRId64 ": %" PRIu64 " MiB of files do not fit the %" PRIu64
                          " MiB system partition of %s",
                          c->rb.version, data / SI_MIB_BYTES, sys->size / SI_MIB_BYTES, c->board.name);
    {
        si_sha256 h;
        si_sha256_init(&h);
        si_sha256_update(&h, "sysimage image v1", 18);
        si_sha256_update(&h, c->board.name, strlen(c->board.name) + 1);
        char v[32];
        snprintf(v, sizeof(v), "%" PRId64, c->rb.version);
        si_sha256_update(&h, v, strlen(v) + 1);
        for (size_t i = 0; i < c->rb.image->nfiles; i++)
            si_sha256_update(&h, c->rb.image->files[i].checksum, 64);
        si_sha256_final(&h, c->seed);
    }
    printf("%s: %s build %" PRId64 " of %s (%zu files verified, %" PRIu64 " members, %" PRIu64
           " MiB of data)\n",
           o->keys ? "flash-media" : "image", device, c->rb.version, o->channel, c->rb.nfiles, members, data / SI_MIB_BYTES);
    snprintf(c->tmp, sizeof(c->tmp), "%s", "/tmp/sysimage-image.XXXXXX");
    const char *td = getenv("TMPDIR");
    if (td && *td)
        snprintf(c->tmp, sizeof(c->tmp), "%.4000s/sysimage-image.XXXXXX", td);
    if (!mkdtemp(c->tmp)) {
        c->tmp[0] = '\0';
        return si_err_set(err, SI_ERR_IO, "mkdtemp: %s", strerror(errno));
    }
    return SI_OK;
}

static si_result build(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    double t0 = now_s();
    si_result rc = prepare(c, err);
    if (rc != SI_OK)
        return rc;

    /* 2. a sparse file with the GPT */
    snprintf(c->partial, sizeof(c->partial), "%s.partial", o->out);
    unlink(c->partial);
    c->fd = open(c->partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    if (ftruncate(c->fd, (off_t)c->disk_bytes) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", c->partial, strerror(errno));
    char guids[SI_BOARD_MAX_PARTS + 1][SI_UUID_STR];
    uint8_t u[16];
    derive(c->seed, "gpt:disk", u);
    si_uuid_format(u, guids[0]);
    for (size_t i = 0; i < c->board.nparts; i++) {
        char what[64];
        snprintf(what, sizeof(what), "gpt:%s", c->board.parts[i].label);
        derive(c->seed, what, u);
        si_uuid_format(u, guids[i + 1]);
    }
    if ((rc = si_gpt_write(c->partial, &c->board, c->ex, guids, err)) != SI_OK)
        return rc;

    /* 3. boot loader: GRUB images, ESP, BIOS boot code */
    char efi[PATH_CAP], core[PATH_CAP];
    if ((rc = grub_images(c, efi, core, err)) != SI_OK || (rc = make_esp(c, efi, c->partial, extent(c, "esp")->start, err)) != SI_OK)
        return rc;
    const si_board_extent *bios = extent(c, c->board.bios.partition);
    if ((rc = si_grub_bios_install(c->fd, bios->start, bios->size, core, c->board.bios.boot_img, err)) !=
        SI_OK)
        return rc;

    /* 4. misc: a clean boot-control block */
    {
        si_grubenv env;
        si_grubenv_init(&env);
        char block[SI_GRUBENV_SIZE];
        if ((rc = si_grubenv_set(&env, "recovery_request", "0", err)) != SI_OK ||
            (rc = si_grubenv_format(&env, block, err)) != SI_OK)
            return rc;
        if (pwrite(c->fd, block, sizeof(block), (off_t)extent(c, "misc")->start) != (ssize_t)sizeof(block))
            return si_err_set(err, SI_ERR_IO, "misc: %s", strerror(errno));
    }

    /* 5. ext4: recovery, system, cache, userdata (and any other ext4 one) */
    si_ext4tar_stats rst, sst;
    memset(&rst, 0, sizeof(rst));
    memset(&sst, 0, sizeof(sst));
    for (size_t i = 0; i < c->board.nparts; i++) {
        const si_board_part *p = &c->board.parts[i];
        if (p->fs != SI_BOARD_FS_EXT4)
            continue;
        si_ext4tar_stats *st = strcmp(p->label, "recovery") == 0 ? &rst
                               : strcmp(p->label, "system") == 0 ? &sst
                                                                 : NULL;
        if ((rc = ext4_part(c, p->label, st, err)) != SI_OK)
            return rc;
    }
    if (fsync(c->fd) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: fsync: %s", c->partial, strerror(errno));
    close(c->fd);
    c->fd = -1;

    /* 6. block map, compression, the final names */
    char bmap[PATH_CAP + 8];
    snprintf(bmap, sizeof(bmap), "%s.bmap", o->out);
    si_bmap_stats bs;
    if ((rc = si_bmap_write(c->partial, bmap, &bs, err)) != SI_OK)
        return rc;
    char final[PATH_CAP + 8];
    if (o->zstd) {
        snprintf(final, sizeof(final), "%s.zst", o->out);
        if ((rc = compress_zstd(c->partial, final, err)) != SI_OK)
            return rc;
        unlink(c->partial);
    } else {
        snprintf(final, sizeof(final), "%s", o->out);
        if (rename(c->partial, final) != 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", final, strerror(errno));
    }
    si_fsync_parent_dir(final);
    printf("image: system %" PRIu64 " entries, %" PRIu64 " MiB, %" PRIu64 " MiB free; recovery %" PRIu64
           " MiB free\n",
           sst.members, sst.bytes / SI_MIB_BYTES, sst.free_bytes / SI_MIB_BYTES,
           rst.free_bytes / SI_MIB_BYTES);
    printf("image: wrote %s (%" PRIu64 " MiB, %" PRIu64 " MiB mapped) and %s in %.1f s\n", final,
           bs.image_size / SI_MIB_BYTES, bs.mapped_blocks * SI_BMAP_BLOCK / SI_MIB_BYTES, bmap,
           now_s() - t0);
    return SI_OK;
}


/* ------------------------------------------------------------ flash media */

static const char media_usage[] =
    "usage: sysimage flash-media --board B --repo DIR --channel C [--build N] --keys KEYDIR\n"
    "                            --archive-master FILE --out stick.img [--erase]\n"
    "                            [--recovery DIR] [--images DIR]\n\n"
    "Write provisioning media (docs/flashing.md): a GPT disk with one ext4\n"
    "partition `flash` holding the board file, the ESP image, GRUB's BIOS images,\n"
    "the recovery image, the build's repository subset (keyrings, channels.json,\n"
    "index.json, the full image's files, all with their signatures) and the flash\n"
    "job flash.json, signed with KEYDIR/image-signing.key. The recovery booted with\n"
    "sysimage.mode=flash verifies all of it and provisions the internal disk. The\n"
    "repository is verified before anything is written.\n\n"
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
    if ((rc = run(mk, NULL, err)) != SI_OK || (rc = run(cp, NULL, err)) != SI_OK ||
        (rc = set_tree_times(dst, c->timestamp, err)) != SI_OK ||
        (rc = set_times_below(stage, c->timestamp, err)) != SI_OK)
        return rc;
    uint8_t id[16];
    derive(c->seed, "media:esp", id);
    char volid[16], offset_arg[32], kib[32];
    snprintf(volid, sizeof(volid), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    snprintf(offset_arg, sizeof(offset_arg), "--offset=%" PRIu64, offset / 512);
    snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
    char *mkfs[] = {"mkfs.vfat", "-F", "32", "-s", "1", "-n", "FLASH-ESP", "-i", volid, "--invariant",
                    offset_arg, (char *)target, kib, NULL};
    if ((rc = run(mkfs, NULL, err)) != SI_OK)
        return si_err_prefix(err, "media ESP");
    char img[PATH_CAP + 64], src[PATH_CAP + 16], epoch[64];
    snprintf(img, sizeof(img), "%s@@%" PRIu64, target, offset);
    snprintf(src, sizeof(src), "%s/EFI", stage);
    snprintf(epoch, sizeof(epoch), "SOURCE_DATE_EPOCH=%" PRId64, c->timestamp);
    const char *env[] = {"MTOOLS_SKIP_CHECK=1", epoch, "LC_ALL=C", NULL};
    char *mcopy[] = {"mcopy", "-s", "-m", "-Q", "-i", img, src, "::/", NULL};
    if ((rc = run(mcopy, env, err)) != SI_OK)
        return si_err_prefix(err, "media ESP");
    return SI_OK;
}

static si_result build_media(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    double t0 = now_s();
    si_result rc = prepare(c, err);
    if (rc != SI_OK)
        return rc;
    char keypath[PATH_CAP];
    snprintf(keypath, sizeof(keypath), "%.4000s/image-signing.key", o->keys);
    si_key *signer = NULL;
    if ((rc = si_key_load_private_file(keypath, &signer, err)) != SI_OK)
        return si_err_prefix(err, "signing key");
    si_key_free(signer);
    signer = NULL;

    /* the boot files: GRUB images, the ESP as an image file */
    char efi[PATH_CAP], core[PATH_CAP], esp[PATH_CAP + 16];
    if ((rc = grub_images(c, efi, core, err)) != SI_OK)
        return rc;
    snprintf(esp, sizeof(esp), "%s/esp.img", c->tmp);
    int fd = open(esp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)extent(c, "esp")->size) != 0) {
        if (fd >= 0)
            close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: %s", esp, strerror(errno));
    }
    close(fd);
    if ((rc = make_esp(c, efi, esp, 0, err)) != SI_OK)
        return rc;

    /* the job */
    si_flashjob job;
    memset(&job, 0, sizeof(job));
    snprintf(job.board, sizeof(job.board), "%s", c->board.name);
    snprintf(job.device, sizeof(job.device), "%s", o->device ? o->device : c->board.name);
    snprintf(job.channel, sizeof(job.channel), "%s", o->channel);
    job.build = c->rb.version;
    job.erase = o->erase;
    char kern[PATH_CAP + 16], initrd[PATH_CAP + 16];
    snprintf(kern, sizeof(kern), "%s/vmlinuz", o->recovery);
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", o->recovery);
    const char *srcs[SI_FLASH_NFILES] = {c->board_path, esp, core, c->board.bios.boot_img, kern, initrd};
    struct media_files *m = calloc(1, sizeof(*m));
    if (!m)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    for (int k = 0; rc == SI_OK && k < SI_FLASH_NFILES; k++) {
        char name[PATH_CAP];
        snprintf(name, sizeof(name), "flash/%s", si_flash_file_names[k]);
        if ((rc = file_digest(srcs[k], &job.files[k].size, job.files[k].sha256, err)) == SI_OK)
            rc = media_add(m, name, srcs[k], err);
    }
    char jpath[PATH_CAP + 16], jsig[PATH_CAP + 16];
    snprintf(jpath, sizeof(jpath), "%s/flash.json", c->tmp);
    snprintf(jsig, sizeof(jsig), "%s/flash.json.sig", c->tmp);
    char *text = NULL;
    if (rc == SI_OK && (rc = si_flashjob_format(&job, &text, err)) == SI_OK) {
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

    /* the repository subset */
    static const char *const rings[] = {"image-master", "image-signing", "blacklist"};
    for (size_t i = 0; rc == SI_OK && i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "keyrings/%s.keyring", rings[i]);
        rc = media_add_repo(m, o->repo, rel, true, i == 2, err);
    }
    if (rc == SI_OK) {
        char rel[256];
        snprintf(rel, sizeof(rel), "keyrings/%.64s/device-signing.keyring", job.device);
        rc = media_add_repo(m, o->repo, rel, true, true, err);
    }
    if (rc == SI_OK)
        rc = media_add_repo(m, o->repo, "channels.json", true, false, err);
    if (rc == SI_OK)
        rc = media_add_repo(m, o->repo, repo_rel(o->repo, c->rb.index_path), true, false, err);
    for (size_t i = 0; rc == SI_OK && i < c->rb.nfiles; i++) {
        if ((rc = media_add_repo(m, o->repo, repo_rel(o->repo, c->rb.paths[i]), false, false, err)) == SI_OK)
            rc = media_add_repo(m, o->repo, repo_rel(o->repo, c->rb.sigpaths[i]), false, false, err);
    }

    /* the flash partition: ext4 in a file, sized for its files */
    uint64_t bytes = 0;
    for (size_t i = 0; rc == SI_OK && i < m->n; i++) {
        struct stat st;
        if (stat(m->srcs[i], &st) != 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", m->srcs[i], strerror(errno));
        else
            bytes += (uint64_t)st.st_blocks * 512 + 4096;
    }
    uint64_t part_mib = bytes / SI_MIB_BYTES * 11 / 10 + 32;
    char fsimg[PATH_CAP + 16];
    snprintf(fsimg, sizeof(fsimg), "%s/flash.ext4", c->tmp);
    if (rc == SI_OK) {
        fd = open(fsimg, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", fsimg, strerror(errno));
        else
            close(fd);
    }
    if (rc == SI_OK) {
        uint8_t uuid[16];
        derive(c->seed, "media:flash", uuid);
        si_mkfs_opts mo;
        si_mkfs_opts_init(&mo);
        mo.label = "flash";
        mo.size = part_mib * SI_MIB_BYTES;
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
    size_t nfiles = m->n;
    free(m);
    if (rc != SI_OK)
        return si_err_prefix(err, "flash media");

    /* the media disk: GPT with flash-bios, flash-esp (GRUB for BIOS and
     * UEFI with an embedded config that boots the recovery from `flash`
     * with sysimage.mode=flash; no menu) and flash */
    const si_board_part *bios_p = si_board_part_find(&c->board, c->board.bios.partition);
    const si_board_part *esp_p = si_board_part_find(&c->board, "esp");
    si_board mb;
    memset(&mb, 0, sizeof(mb));
    snprintf(mb.name, sizeof(mb.name), "flash-media");
    mb.nparts = 3;
    static const char *const mlabels[3] = {"flash-bios", "flash-esp", "flash"};
    const uint64_t msizes[3] = {1, MEDIA_ESP_MIB, part_mib};
    const char *mtypes[3] = {bios_p->type, esp_p->type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"};
    si_board_extent mex[3];
    uint64_t off = SI_MIB_BYTES;
    for (int i = 0; i < 3; i++) {
        snprintf(mb.parts[i].label, sizeof(mb.parts[i].label), "%s", mlabels[i]);
        snprintf(mb.parts[i].type, sizeof(mb.parts[i].type), "%s", mtypes[i]);
        mb.parts[i].size_mib = msizes[i];
        mex[i] = (si_board_extent){.part = &mb.parts[i], .number = (unsigned)i + 1, .start = off,
                                   .size = msizes[i] * SI_MIB_BYTES};
        off += mex[i].size;
    }
    uint64_t media_bytes = off + SI_MIB_BYTES;
    char early[PATH_CAP + 16], sefi[PATH_CAP], score[PATH_CAP];
    snprintf(early, sizeof(early), "%s/stick-early.cfg", c->tmp);
    {
        char cfg[1024];
        const char *console = c->board.console[0] ? c->board.console : "ttyS0,115200";
        snprintf(cfg, sizeof(cfg),
                 "search --no-floppy --label flash --set=root\n"
                 "serial --unit=0 --speed=115200\n"
                 "terminal_output serial\n"
                 "echo \"sysimage: booting the recovery from the media (mode flash, %s build %" PRId64 ")\"\n"
                 "linux ($root)/flash/vmlinuz console=%s panic=-1 sysimage.mode=flash sysimage.halt=poweroff\n"
                 "initrd ($root)/flash/initrd.img\n"
                 "boot\n",
                 c->board.name, c->rb.version, console);
        int r = si_write_file_atomic(early, cfg, strlen(cfg), 0644);
        if (r < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", early, strerror(-r));
    }
    if ((rc = grub_images_ex(c, sefi, score, early, err)) != SI_OK)
        return si_err_prefix(err, "flash media boot loader");
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
        snprintf(what, sizeof(what), "media:%s", i ? mlabels[i - 1] : "disk");
        derive(c->seed, what, u);
        si_uuid_format(u, guids[i]);
    }
    if ((rc = si_gpt_write(c->partial, &mb, mex, guids, err)) != SI_OK ||
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
    printf("flash-media: wrote %s (%" PRIu64 " MiB, %zu files, build %" PRId64 ", consent %s) in %.1f s\n",
           o->out, media_bytes / SI_MIB_BYTES, nfiles, job.build, job.erase ? "erase" : "blank-only", now_s() - t0);
    return SI_OK;
}

static int image_main(int argc, char **argv, bool media)
{
    const char *cmd = media ? "flash-media" : "image";
    if (si_tool_wants_help(argc, argv, media ? media_usage : usage))
        return SI_OK;
    static const struct option opts[] = {
        {"board", required_argument, NULL, 'b'},   {"repo", required_argument, NULL, 'r'},
        {"channel", required_argument, NULL, 'c'}, {"build", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},     {"archive-master", required_argument, NULL, 'a'},
        {"recovery", required_argument, NULL, 'R'}, {"size", required_argument, NULL, 's'},
        {"compress", required_argument, NULL, 'z'}, {"images", required_argument, NULL, 'i'},
        {"device", required_argument, NULL, 'd'},  {"timeout", required_argument, NULL, 't'},
        {"keys", required_argument, NULL, 'k'},    {"erase", no_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    image_opts o = {.build = -1, .timeout = 3};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'b': o.board = optarg; break;
        case 'r': o.repo = optarg; break;
        case 'c': o.channel = optarg; break;
        case 'o': o.out = optarg; break;
        case 'a': o.archive_master = optarg; break;
        case 'R': o.recovery = optarg; break;
        case 'i': o.images = optarg; break;
        case 'd': o.device = optarg; break;
        case 'k':
        case 'e':
            if (!media) {
                fprintf(stderr, "sysimage image: --%s is for flash-media\n", ch == 'k' ? "keys" : "erase");
                return SI_ERR_USAGE;
            }
            if (ch == 'k')
                o.keys = optarg;
            else
                o.erase = true;
            break;
        case 'n':
            o.build = strtoll(optarg, &end, 10);
            if (!*optarg || *end || o.build < 0) {
                fprintf(stderr, "sysimage image: --build: '%s' is not a build number\n", optarg);
                return SI_ERR_USAGE;
            }
            break;
        case 's': {
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || v == 0 || v > (1ull << 24)) {
                fprintf(stderr, "sysimage image: --size: '%s' is not a size in MiB\n", optarg);
                return SI_ERR_USAGE;
            }
            o.size_mib = v;
            break;
        }
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 600) {
                fprintf(stderr, "sysimage image: --timeout: '%s' is not 0..600 seconds\n", optarg);
                return SI_ERR_USAGE;
            }
            o.timeout = (int)v;
            break;
        }
        case 'z':
            if (strcmp(optarg, "zstd") != 0) {
                fprintf(stderr, "sysimage image: --compress: only zstd is known\n");
                return SI_ERR_USAGE;
            }
            o.zstd = true;
            break;
        default:
            return SI_ERR_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sysimage %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return SI_ERR_USAGE;
    }
    const char *missing = !o.board ? "--board" : !o.repo ? "--repo" : !o.channel ? "--channel"
                          : !o.out ? "--out" : !o.archive_master ? "--archive-master"
                          : media && !o.keys ? "--keys" : NULL;
    if (missing) {
        fprintf(stderr, "sysimage %s: %s is required (see --help)\n", cmd, missing);
        return SI_ERR_USAGE;
    }
    if (strstr(o.repo, "://")) {
        fprintf(stderr, "sysimage %s: --repo %s: only a local directory is supported; mirror the "
                        "repository first (e.g. wget -m) and give its directory\n", cmd, o.repo);
        return SI_ERR_UNSUPPORTED;
    }
    char recdir[PATH_CAP];
    if (!o.recovery) {
        char root[PATH_CAP];
        self_root(root, sizeof(root));
        snprintf(recdir, sizeof(recdir), "%.4000s/build/recovery", root);
        o.recovery = recdir;
    }
    build_ctx c;
    memset(&c, 0, sizeof(c));
    c.o = &o;
    c.fd = -1;
    si_err err;
    si_err_clear(&err);
    si_result rc = media ? build_media(&c, &err) : build(&c, &err);
    if (c.fd >= 0)
        close(c.fd);
    if (rc != SI_OK && c.partial[0])
        unlink(c.partial);
    if (c.tmp[0])
        rm_rf(c.tmp);
    si_repo_build_free(&c.rb);
    if (rc != SI_OK) {
        if (!err.msg[0])
            si_err_set(&err, rc, "%s", si_result_message(rc));
        return si_tool_fail(&err);
    }
    return SI_OK;
}

int cmd_image(int argc, char **argv)
{
    return image_main(argc, argv, false);
}

int cmd_flash_media(int argc, char **argv)
{
    return image_main(argc, argv, true);
}
