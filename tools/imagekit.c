/* imagekit.c - what `sysimage image` and `sysimage flash-media` share
 * (tools/imagekit.h): subprocesses (grub-mkimage; mkfs.vfat and mcopy for
 * FAT32 written in place with --offset / @@offset, by design: the project
 * has no FAT writer), values derived from the build (UUIDs, timestamps),
 * GRUB's images, the board's ESP, the common preparation (board, layout, the
 * repository verified with the stub's chain of trust, the build's tarballs
 * scanned) and the command line. docs/flashing.md. */
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
#include "index.h"
#include "buildtime.h"
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
#include "repofetch.h"
#include "mkfs.h"
#include "result.h"
#include "sha256.h"
#include "sparse.h"

extern char **environ;

/* ------------------------------------------------------------ helpers */

/* Run argv (no shell) with extra environment entries; SI_ERR_IO naming the
 * program when it cannot start or does not exit 0. */
si_result ik_run(char *const argv[], const char *const extra_env[], si_err *err)
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
void ik_derive(const uint8_t seed[SI_SHA256_LEN], const char *what, uint8_t out[16])
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
    char p[PATH_CAP + 64];
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

si_result ik_set_tree_times(const char *path, int64_t t, si_err *err)
{
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return si_err_set(err, SI_ERR_IO, "%s: utimensat: %s", path, strerror(errno));
    return SI_OK;
}

/* Every directory below (and including) dir gets mtime t. */
si_result ik_set_times_below(const char *dir, int64_t t, si_err *err)
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
            rc = ik_set_times_below(sub, t, err);
        }
        free(names[i]);
    }
    free(names);
    return rc == SI_OK ? ik_set_tree_times(dir, t, err) : rc;
}

static si_result mkdir_t(const char *path, int64_t t, si_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(errno));
    return ik_set_tree_times(path, t, err);
}

static si_result write_t(const char *path, const void *buf, size_t len, int64_t t, si_err *err)
{
    int r = si_write_file_atomic(path, buf, len, 0644);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-r));
    return ik_set_tree_times(path, t, err);
}

static void rm_rf(const char *dir)
{
    char *argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
    ik_run(argv, NULL, NULL);
}

/* ------------------------------------------------------------ steps */


const si_board_extent *ik_extent(const build_ctx *c, const char *label)
{
    for (size_t i = 0; i < c->board.nparts; i++)
        if (strcmp(c->ex[i].part->label, label) == 0)
            return &c->ex[i];
    return NULL;
}

/* GRUB's EFI and i386-pc images of the board's recipe into c->tmp. With
 * early_cfg (provisioning media), that config is embedded, `search` is added
 * and the files are named stick-*. */
si_result ik_grub_images_ex(build_ctx *c, char *efi, char *core, const char *early_cfg, si_err *err)
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
        si_result rc = ik_run(argv, NULL, err);
        if (rc != SI_OK)
            return si_err_prefix(err, "GRUB %s image", imgs[k]->format);
    }
    return SI_OK;
}

si_result ik_grub_images(build_ctx *c, char *efi, char *core, si_err *err)
{
    return ik_grub_images_ex(c, efi, core, NULL, err);
}

/* The ESP's FAT32 with GRUB's EFI image, grub.cfg and counters, made in
 * place in `target` at byte `offset` (the disk image, or an ESP image file
 * for flash media). */
static si_result stage_esp_tree(build_ctx *c, const char *efi, const char *stage, si_err *err)
{
    int64_t t = c->timestamp;
    char p[PATH_CAP + 256];
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
        /* the board's boot.env_defaults (lib/board) */
        char block[SI_GRUBENV_SIZE];
        if ((rc = si_grubenv_format(&c->board.env_defaults, block, err)) == SI_OK) {
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
        rc = ik_set_times_below(stage, t, err);
    return rc;
}

si_result ik_mkfs_fat32(const build_ctx *c, const char *what, const char *label, const char *target,
                        uint64_t offset, uint64_t size, si_err *err)
{
    /* volume ID from the build, --invariant for the rest */
    uint8_t id[16];
    ik_derive(c->seed, what, id);
    char volid[16], offset_arg[32], kib[32];
    snprintf(volid, sizeof(volid), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    snprintf(offset_arg, sizeof(offset_arg), "--offset=%" PRIu64, offset / 512);
    snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
    char *mkfs[] = {"mkfs.vfat", "-F", "32", "-s", "1", "-n", (char *)label, "-i", volid, "--invariant",
                    offset_arg, (char *)target, kib, NULL};
    return ik_run(mkfs, NULL, err);
}

/* FAT32 in place in `target` at `offset`, then the staged tree copied in */
static si_result format_and_fill_esp(build_ctx *c, const char *stage, const char *target, uint64_t offset,
                                     si_err *err)
{
    const si_board_extent *e = ik_extent(c, "esp");
    int64_t t = c->timestamp;
    si_result rc;
    if ((rc = ik_mkfs_fat32(c, "fs:esp", "ESP", target, offset, e->size, err)) != SI_OK)
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
    if ((rc = ik_run(mcopy, env, err)) != SI_OK)
        return si_err_prefix(err, "ESP: copying the boot files");
    return SI_OK;
}

si_result ik_make_esp(build_ctx *c, const char *efi, const char *target, uint64_t offset, si_err *err)
{
    char stage[PATH_CAP];
    snprintf(stage, sizeof(stage), "%.4000s/esp", c->tmp);
    if (stage_esp_tree(c, efi, stage, err) != SI_OK)
        return si_err_prefix(err, "ESP");
    return format_and_fill_esp(c, stage, target, offset, err);
}

double ik_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A temporary directory under $TMPDIR (or /tmp) into out. */
static si_result make_tmp(const char *what, char *out, size_t cap, si_err *err)
{
    const char *td = getenv("TMPDIR");
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "sysimage-%s", what);
    int r = si_make_temp_dir(td && *td ? td : "/tmp", prefix, out, cap);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: temporary directory: %s", td && *td ? td : "/tmp",
                          strerror(-r));
    return SI_OK;
}

/* The repository verified (lib/localrepo) with the clock rule for keyrings
 * and the index's expiry: a directory as it is, a URL mirrored into a cache
 * directory as it is verified (lib/repofetch). */
static si_result open_repo(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    si_repo_query q = {.channel = o->channel, .device = o->device ? o->device : c->board.name,
                       .build = o->build, .allow_expired = o->allow_expired};
    int64_t now = si_index_clock((int64_t)time(NULL), si_build_epoch(), -1);
    si_repo_src src = {.root = o->repo};
    si_repofetch *rf = NULL;
    si_result rc = SI_OK;
    if (strstr(o->repo, "://")) {
        if ((rc = make_tmp("repo", c->cache, sizeof(c->cache), err)) != SI_OK ||
            (rc = si_repofetch_open(o->repo, o->ca, c->cache, &rf, err)) != SI_OK)
            return rc;
        si_repofetch_src(rf, &src);
    }
    double t0 = ik_now_s();
    rc = si_repo_open_build_from(&src, o->archive_master, &q, now, &c->rb, err);
    if (rf && rc == SI_OK) {
        uint64_t bytes = 0, files = 0;
        si_repofetch_stats(rf, &bytes, &files);
        printf("%s: fetched %" PRIu64 " files, %" PRIu64 " KiB from %s in %.1f s\n",
               o->keys ? "flash-media" : "image", files, bytes / 1024, o->repo, ik_now_s() - t0);
    }
    c->repo_root = rf ? c->cache : o->repo;
    si_repofetch_close(rf);
    if (rc != SI_OK)
        return si_err_prefix(err, "--repo %s", o->repo);
    if (c->rb.expired) {
        char when[64];
        si_index_format_time(c->rb.index->expires_epoch, when);
        printf("image: WARNING: index.json expired on %s; written anyway because of "
               "--allow-expired-index\n", when);
    }
    return SI_OK;
}

/* The recovery image: --recovery, or the board's next to this program
 * (build/recovery-<board> from `make recovery-image BOARD=<board>`, else
 * build/recovery). The image is a per-board product: when its directory has
 * the board file it embeds (board.json, initramfs/build.sh), that file must
 * be this board's, byte for byte, or the image is refused. */
static si_result find_recovery(build_ctx *c, si_err *err)
{
    const image_opts *o = c->o;
    if (o->recovery)
        snprintf(c->recovery, sizeof(c->recovery), "%s", o->recovery);
    else {
        char root[PATH_CAP];
        self_root(root, sizeof(root));
        snprintf(c->recovery, sizeof(c->recovery), "%.2000s/build/recovery-%s", root, c->board.name);
        if (!dir_has(c->recovery, "initrd.img"))
            snprintf(c->recovery, sizeof(c->recovery), "%.2000s/build/recovery", root);
    }
    if (!dir_has(c->recovery, "vmlinuz") || !dir_has(c->recovery, "initrd.img"))
        return si_err_set(err, SI_ERR_MISSING_FILE,
                          "%s: no vmlinuz and initrd.img (the recovery image of board '%s': make "
                          "recovery-image BOARD=%s)",
                          c->recovery, c->board.name, c->board.name);
    if (!dir_has(c->recovery, "board.json"))
        return SI_OK;
    char theirs[PATH_CAP + 16];
    snprintf(theirs, sizeof(theirs), "%s/board.json", c->recovery);
    uint8_t a[SI_SHA256_LEN], b[SI_SHA256_LEN];
    if (si_sha256_file(theirs, a, NULL) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: unreadable", theirs);
    if (si_sha256_file(c->board_path, b, NULL) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: unreadable", c->board_path);
    if (memcmp(a, b, sizeof(a)) == 0)
        return SI_OK;
    si_board other;
    si_err ignored;
    si_err_clear(&ignored);
    const char *name = si_board_load(theirs, &other, &ignored) == SI_OK ? other.name : "?";
    return si_err_set(err, SI_ERR_UNSUPPORTED,
                      "%s is the recovery image of board '%s' (its board.json differs from %s): build "
                      "the one of board '%s' with `make recovery-image BOARD=%s`, or give --recovery",
                      c->recovery, name, c->board_path, c->board.name, c->board.name);
}

/* Board, layout, recovery image, the repository verified, the build's
 * tarballs scanned, the seed of every UUID, a temporary directory. */
si_result ik_prepare(build_ctx *c, si_err *err)
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
    if ((rc = find_recovery(c, err)) != SI_OK)
        return rc;

    /* 1. the repository, verified before anything is written */
    if ((rc = open_repo(c, err)) != SI_OK)
        return rc;
    const char *device = o->device ? o->device : c->board.name;
    uint64_t data = 0, members = 0;
    if ((rc = si_ext4tar_scan((const char *const *)c->rb.paths, c->rb.nfiles, &c->timestamp, &data,
                              &members, err)) != SI_OK)
        return rc;
    if (c->timestamp <= 0)
        c->timestamp = 1;
    const si_board_extent *sys = ik_extent(c, si_board_system_label(&c->board));
    if (data > sys->size)
        return si_err_set(err, SI_ERR_NO_SPACE,
                          "build %" PRId64 ": %" PRIu64 " MiB of files do not fit the %" PRIu64
                          " MiB %s partition of %s",
                          c->rb.version, data / SI_MIB_BYTES, sys->size / SI_MIB_BYTES, sys->part->label,
                          c->board.name);
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
    return make_tmp("image", c->tmp, sizeof(c->tmp), err);
}

/* The options into `o`; SI_OK, or the exit code of a usage error (reported) */
static int parse_image_opts(int argc, char **argv, bool media, image_opts *o)
{
    static const struct option opts[] = {
        {"board", required_argument, NULL, 'b'},   {"repo", required_argument, NULL, 'r'},
        {"channel", required_argument, NULL, 'c'}, {"build", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},     {"archive-master", required_argument, NULL, 'a'},
        {"recovery", required_argument, NULL, 'R'}, {"size", required_argument, NULL, 's'},
        {"compress", required_argument, NULL, 'z'}, {"images", required_argument, NULL, 'i'},
        {"device", required_argument, NULL, 'd'},  {"timeout", required_argument, NULL, 't'},
        {"keys", required_argument, NULL, 'k'},    {"erase", no_argument, NULL, 'e'},
        {"ca", required_argument, NULL, 'C'},      {"allow-expired-index", no_argument, NULL, 'X'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'b': o->board = optarg; break;
        case 'r': o->repo = optarg; break;
        case 'c': o->channel = optarg; break;
        case 'o': o->out = optarg; break;
        case 'a': o->archive_master = optarg; break;
        case 'R': o->recovery = optarg; break;
        case 'i': o->images = optarg; break;
        case 'd': o->device = optarg; break;
        case 'C': o->ca = optarg; break;
        case 'X': o->allow_expired = true; break;
        case 'k':
        case 'e':
            if (!media) {
                fprintf(stderr, "sysimage image: --%s is for flash-media\n", ch == 'k' ? "keys" : "erase");
                return SI_ERR_USAGE;
            }
            if (ch == 'k')
                o->keys = optarg;
            else
                o->erase = true;
            break;
        case 'n':
            o->build = strtoll(optarg, &end, 10);
            if (!*optarg || *end || o->build < 0) {
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
            o->size_mib = v;
            break;
        }
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 600) {
                fprintf(stderr, "sysimage image: --timeout: '%s' is not 0..600 seconds\n", optarg);
                return SI_ERR_USAGE;
            }
            o->timeout = (int)v;
            break;
        }
        case 'z':
            if (strcmp(optarg, "zstd") != 0) {
                fprintf(stderr, "sysimage image: --compress: only zstd is known\n");
                return SI_ERR_USAGE;
            }
            o->zstd = true;
            break;
        default:
            return SI_ERR_USAGE;
        }
    }
    return SI_OK;
}

/* Positional arguments, required options, a local repository; SI_OK or the exit code */
static int check_image_opts(int argc, char **argv, bool media, const char *cmd, const image_opts *o)
{
    if (optind != argc) {
        fprintf(stderr, "sysimage %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return SI_ERR_USAGE;
    }
    const char *missing = !o->board ? "--board" : !o->repo ? "--repo" : !o->channel ? "--channel"
                          : !o->out ? "--out" : !o->archive_master ? "--archive-master"
                          : media && !o->keys ? "--keys" : NULL;
    if (missing) {
        fprintf(stderr, "sysimage %s: %s is required (see --help)\n", cmd, missing);
        return SI_ERR_USAGE;
    }
    if (media && o->allow_expired) {
        fprintf(stderr, "sysimage flash-media: --allow-expired-index is for `sysimage image`: the "
                        "recovery refuses an expired index; run `sysimage publish --refresh`\n");
        return SI_ERR_USAGE;
    }
    return SI_OK;
}

int ik_main(int argc, char **argv, bool media, const char *usage_text, ik_build_fn build_fn)
{
    const char *cmd = media ? "flash-media" : "image";
    if (si_tool_wants_help(argc, argv, usage_text))
        return SI_OK;
    image_opts o = {.build = -1, .timeout = 3};
    int code = parse_image_opts(argc, argv, media, &o);
    if (code == SI_OK)
        code = check_image_opts(argc, argv, media, cmd, &o);
    if (code != SI_OK)
        return code;
    build_ctx c;
    memset(&c, 0, sizeof(c));
    c.o = &o;
    c.fd = -1;
    si_err err;
    si_err_clear(&err);
    si_result rc = build_fn(&c, &err);
    if (c.fd >= 0)
        close(c.fd);
    if (rc != SI_OK && c.partial[0])
        unlink(c.partial);
    if (c.tmp[0])
        rm_rf(c.tmp);
    if (c.cache[0])
        rm_rf(c.cache);
    si_repo_build_free(&c.rb);
    if (rc != SI_OK) {
        if (!err.msg[0])
            si_err_set(&err, rc, "%s", si_result_message(rc));
        return si_tool_fail(&err);
    }
    return SI_OK;
}
