/* imagekit.h - the parts `sysimage image` (cmd_image.c) and `sysimage
 * flash-media` (cmd_flash_media.c) share: options, the build context,
 * subprocesses, values derived from the build, GRUB images, the ESP, the
 * common preparation (board, layout, repository verified, tarballs scanned)
 * and the command line. docs/flashing.md. */
#ifndef SI_TOOLS_IMAGEKIT_H
#define SI_TOOLS_IMAGEKIT_H

#include <stdbool.h>
#include <stdint.h>

#include "board.h"
#include "localrepo.h"
#include "result.h"
#include "sha256.h"

#define PATH_CAP 4096

typedef struct image_opts {
    const char *keys;
    bool erase;
    const char *board, *repo, *channel, *out, *archive_master, *recovery, *images, *device;
    const char *ca;           /* --ca: CA bundle for an https:// repository */
    bool allow_expired;       /* --allow-expired-index (image only; said in the output) */
    int64_t build;
    uint64_t size_mib;
    bool zstd;
    int timeout;
} image_opts;

typedef struct build_ctx {
    const image_opts *o;
    si_board board;
    char board_path[PATH_CAP];
    char board_dir[PATH_CAP];
    char recovery[PATH_CAP];  /* the recovery image: --recovery or the board's (ik_prepare) */
    si_repo_build rb;
    const char *repo_root;    /* the verified repository on disk (o->repo or cache) */
    char cache[PATH_CAP];     /* a URL repository's files, removed at the end */
    char tmp[PATH_CAP];
    char partial[PATH_CAP + 16];
    uint8_t seed[SI_SHA256_LEN];
    int64_t timestamp;
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    uint64_t disk_bytes;
    int fd;
} build_ctx;

typedef si_result (*ik_build_fn)(build_ctx *c, si_err *err);

/* Run argv (no shell, stdout dropped, stderr quoted on failure). */
si_result ik_run(char *const argv[], const char *const extra_env[], si_err *err);
/* 16 bytes (UUID-shaped) derived from the build's seed and a purpose. */
void ik_derive(const uint8_t seed[SI_SHA256_LEN], const char *what, uint8_t out[16]);
si_result ik_set_tree_times(const char *path, int64_t t, si_err *err);
si_result ik_set_times_below(const char *dir, int64_t t, si_err *err);
const si_board_extent *ik_extent(const build_ctx *c, const char *label);
/* GRUB's images of the board's recipe (early_cfg: embedded, media). */
si_result ik_grub_images_ex(build_ctx *c, char *efi, char *core, const char *early_cfg, si_err *err);
si_result ik_grub_images(build_ctx *c, char *efi, char *core, si_err *err);
/* An empty FAT32 of size bytes in place in target at offset, labelled
 * label, its volume ID derived from the seed and `what`. */
si_result ik_mkfs_fat32(const build_ctx *c, const char *what, const char *label, const char *target,
                        uint64_t offset, uint64_t size, si_err *err);
/* The board's ESP (FAT32) in place in target at offset. */
si_result ik_make_esp(build_ctx *c, const char *efi, const char *target, uint64_t offset, si_err *err);
double ik_now_s(void);
/* Board, layout, recovery image, repository verified, tarballs scanned,
 * seed, temporary directory. */
si_result ik_prepare(build_ctx *c, si_err *err);
/* The command line of both commands; build_fn does the work. */
int ik_main(int argc, char **argv, bool media, const char *usage_text, ik_build_fn build_fn);

#endif
