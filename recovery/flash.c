/* flash.c - the recovery's flash mode (docs/flashing.md): provision the
 * internal disk from provisioning media (`sysimage flash-media`).
 *
 * The story: find the media (the partition labelled `flash`) and the one
 * other disk; verify everything on the media (keyrings from the built-in
 * archive-master, the signed flash job, its board against this recovery's
 * own board file, every file's size and sha256, the build's index and files
 * with their signatures) and check the target (large enough for the board's
 * layout; blank, or left by an interrupted flash, or the job consents to
 * erasing it) -- all before the first write. Then: GPT (libfdisk), misc
 * marked "flash incomplete", GRUB's BIOS code, the ESP, recovery, system
 * (the build's full image, libext2fs), empty cache and userdata, a read-back
 * of the raw parts, and last misc clean. The result goes to the media
 * (flash/flash-result.json) and is the exit status. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "board.h"
#include "buildtime.h"
#include "builtin_keys.h"
#include "ext4tar.h"
#include "flash.h"
#include "flashjob.h"
#include "fsutil.h"
#include "gpt.h"
#include "grubbios.h"
#include "grubenv.h"
#include "keyring.h"
#include "localrepo.h"
#include "mkfs.h"
#include "partitions.h"
#include "sha256.h"
#include "sparse.h"
#include "sysmount.h"

#define CAP 4096
#define FLASH_MARK "sysimage_flash"
#define BLANK_PROBE (1024 * 1024)

typedef struct flasher {
    const flash_opts *o;
    char media[CAP];        /* the media's root (mounted partition or a directory) */
    char media_disk[64];    /* kernel name of the media's disk ("" on a host) */
    char target[CAP];       /* the disk to provision */
    bool target_is_file;
    si_board board;
    si_flashjob job;
    si_trust trust;
    bool trust_ready;
    si_repo_build rb;
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    uint64_t disk_bytes;
    uint8_t seed[SI_SHA256_LEN];
    int fd;
    bool mounted;
} flasher;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sysimage-recovery: flash: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static void media_path(const flasher *f, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%.2000s/%.2000s", f->media, rel);
}

static const si_board_extent *extent(const flasher *f, const char *label)
{
    for (size_t i = 0; i < f->board.nparts; i++)
        if (strcmp(f->ex[i].part->label, label) == 0)
            return &f->ex[i];
    return NULL;
}

/* ------------------------------------------------------------ find */

/* The disk (kernel name) a partition belongs to: /sys/class/block/<part>/.. */
static int parent_disk(const char *part, char *out, size_t cap)
{
    char link[CAP], real[CAP];
    snprintf(link, sizeof(link), "/sys/class/block/%s", part);
    if (!realpath(link, real))
        return -errno;
    char *slash = strrchr(real, '/');
    if (!slash)
        return -EINVAL;
    *slash = '\0';
    slash = strrchr(real, '/');
    snprintf(out, cap, "%.60s", slash ? slash + 1 : real);
    return 0;
}

static si_result find_media(flasher *f, si_err *err)
{
    if (f->o->media_dir) {
        snprintf(f->media, sizeof(f->media), "%s", f->o->media_dir);
        return SI_OK;
    }
    si_partition p;
    si_result rc = si_partition_find(NULL, NULL, "flash", &p, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "no provisioning media (a partition labelled 'flash')");
    if (parent_disk(p.name, f->media_disk, sizeof(f->media_disk)) < 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: its disk is not known", p.name);
    snprintf(f->media, sizeof(f->media), "/flash");
    if ((rc = sysmount_ext4(p.path, f->media, false, false, err)) != SI_OK)
        return si_err_prefix(err, "media %s", p.path);
    f->mounted = true;
    say("media: %s on disk %s, mounted at %s", p.path, f->media_disk, f->media);
    return SI_OK;
}

/* The one disk that is not the media: whole disks of /sys/block that are
 * not loop, ram, zram, sr or md devices. */
static si_result find_target(flasher *f, si_err *err)
{
    if (f->o->target) {
        snprintf(f->target, sizeof(f->target), "%s", f->o->target);
        struct stat st;
        if (stat(f->target, &st) != 0)
            return si_err_set(err, SI_ERR_PARTITION, "target %s: %s", f->target, strerror(errno));
        f->target_is_file = S_ISREG(st.st_mode);
        return SI_OK;
    }
    DIR *d = opendir("/sys/block");
    if (!d)
        return si_err_set(err, SI_ERR_PARTITION, "/sys/block: %s", strerror(errno));
    char found[64] = "";
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || strncmp(nm, "loop", 4) == 0 || strncmp(nm, "ram", 3) == 0 ||
            strncmp(nm, "zram", 4) == 0 || strncmp(nm, "sr", 2) == 0 || strncmp(nm, "md", 2) == 0 ||
            strcmp(nm, f->media_disk) == 0)
            continue;
        if (n++ == 0)
            snprintf(found, sizeof(found), "%.60s", nm);
    }
    closedir(d);
    if (n != 1)
        return si_err_set(err, SI_ERR_PARTITION,
                          n ? "%d disks besides the media: which one to provision is not clear"
                            : "no internal disk besides the media%.0d",
                          n);
    snprintf(f->target, sizeof(f->target), "/dev/%s", found);
    if (access(f->target, F_OK) != 0) {
        char sys[CAP], buf[32];
        snprintf(sys, sizeof(sys), "/sys/block/%s/dev", found);
        FILE *fp = fopen(sys, "r");
        unsigned ma = 0, mi = 0;
        if (!fp || !fgets(buf, sizeof(buf), fp) || sscanf(buf, "%u:%u", &ma, &mi) != 2 ||
            mknod(f->target, S_IFBLK | 0600, makedev(ma, mi)) != 0) {
            if (fp)
                fclose(fp);
            return si_err_set(err, SI_ERR_PARTITION, "%s: no device node", f->target);
        }
        fclose(fp);
    }
    return SI_OK;
}

/* ------------------------------------------------------------ verify */

static si_result check_file(const flasher *f, si_flash_file k, si_err *err)
{
    char p[CAP + 64], rel[64], hex[65];
    snprintf(rel, sizeof(rel), "flash/%s", si_flash_file_names[k]);
    media_path(f, rel, p, sizeof(p));
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_file(p, d, &size);
    if (r < 0)
        return si_err_set(err, r == -ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "media: %s: %s", rel,
                          strerror(-r));
    if (size != f->job.files[k].size)
        return si_err_set(err, SI_ERR_SIZE, "media: %s: %" PRIu64 " bytes, the flash job says %" PRIu64,
                          rel, size, f->job.files[k].size);
    si_hex_encode(d, sizeof(d), hex);
    if (strcmp(hex, f->job.files[k].sha256) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM, "media: %s: sha256 %s, the flash job says %s", rel, hex,
                          f->job.files[k].sha256);
    return SI_OK;
}

static si_result verify_media(flasher *f, si_err *err)
{
    /* this recovery's board: the layout it knows */
    si_result rc = si_board_load(f->o->board_file, &f->board, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "this recovery's board file");
    if (f->board.nslots)
        say("board %s: A/B, the build goes to slot %s, slot %s gets an empty file system", f->board.name,
            f->board.slots[0], f->board.slots[1]);
    char repo[CAP];
    media_path(f, "repo", repo, sizeof(repo));
    si_keyring *am = NULL;
    if ((rc = si_keyring_parse((const char *)si_builtin_archive_master, si_builtin_archive_master_len, &am,
                               err)) != SI_OK)
        return si_err_prefix(err, "built-in archive-master");
    si_trust_init(&f->trust, f->o->device, si_index_clock((int64_t)time(NULL), si_build_epoch(), -1));
    f->trust_ready = true;
    if ((rc = si_repo_load_trust(repo, am, &f->trust, err)) != SI_OK)
        return si_err_prefix(err, "media keyrings");
    char job[CAP], sig[CAP];
    media_path(f, "flash/flash.json", job, sizeof(job));
    media_path(f, "flash/flash.json.sig", sig, sizeof(sig));
    if ((rc = si_trust_verify_file(&f->trust, SI_PURPOSE_UPDATE, job, sig, NULL, err)) != SI_OK)
        return si_err_prefix(err, "media: flash.json");
    char *text = NULL;
    size_t len = 0;
    if ((rc = si_read_file_checked(job, SI_FLASHJOB_MAX_BYTES, &text, &len, err)) != SI_OK)
        return rc;
    rc = si_flashjob_parse(text, len, &f->job, err);
    free(text);
    if (rc != SI_OK)
        return rc;
    say("flash job: board %s, %s build %" PRId64 " of %s, consent %s", f->job.board, f->job.device,
        f->job.build, f->job.channel, f->job.erase ? "erase" : "blank-only");
    if (strcmp(f->job.board, f->board.name) != 0)
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "the media was made for board '%s'; this recovery is for board '%s'", f->job.board,
                          f->board.name);
    if (f->o->device && strcmp(f->job.device, f->o->device) != 0)
        return si_err_set(err, SI_ERR_KEYRING_MODEL, "the media holds a build for '%s'; this device is '%s'",
                          f->job.device, f->o->device);
    for (int k = 0; k < SI_FLASH_NFILES; k++)
        if ((rc = check_file(f, (si_flash_file)k, err)) != SI_OK)
            return rc;
    /* the media's board file is this recovery's, byte for byte */
    uint8_t d[SI_SHA256_LEN];
    char hex[65];
    if (si_sha256_file(f->o->board_file, d, NULL) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: unreadable", f->o->board_file);
    si_hex_encode(d, sizeof(d), hex);
    if (strcmp(hex, f->job.files[SI_FLASH_BOARD].sha256) != 0)
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "the media's board.json differs from this recovery's (another revision of "
                          "board '%s')",
                          f->board.name);
    if ((rc = si_repo_open_build_trusted(repo, &f->trust, f->job.channel, f->job.device, f->job.build,
                                         &f->rb, err)) != SI_OK)
        return si_err_prefix(err, "media");
    say("verified: keyrings, flash.json, %d boot files, index.json and %zu files of build %" PRId64,
        SI_FLASH_NFILES, f->rb.nfiles, f->rb.version);
    if ((rc = si_ext4tar_scan((const char *const *)f->rb.paths, f->rb.nfiles, NULL, NULL, NULL, err)) != SI_OK)
        return rc;
    si_sha256 h;
    si_sha256_init(&h);
    si_sha256_update(&h, "sysimage flash v1", 18);
    for (int k = 0; k < SI_FLASH_NFILES; k++)
        si_sha256_update(&h, f->job.files[k].sha256, 64);
    for (size_t i = 0; i < f->rb.image->nfiles; i++)
        si_sha256_update(&h, f->rb.image->files[i].checksum, 64);
    si_sha256_final(&h, f->seed);
    return SI_OK;
}

static bool all_zero(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Blank (zeros at both ends), or left by an interrupted flash of this board
 * (misc marked), or the job consents. */
static si_result check_target(flasher *f, si_err *err)
{
    f->fd = open(f->target, O_RDWR | O_CLOEXEC);
    if (f->fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", f->target, strerror(errno));
    uint64_t size = 0;
    if (f->target_is_file) {
        struct stat st;
        if (fstat(f->fd, &st) != 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", f->target, strerror(errno));
        size = (uint64_t)st.st_size;
    } else if (ioctl(f->fd, BLKGETSIZE64, &size) != 0) {
        return si_err_set(err, SI_ERR_IO, "%s: BLKGETSIZE64: %s", f->target, strerror(errno));
    }
    f->disk_bytes = size;
    si_result rc = si_board_layout(&f->board, size, f->ex, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", f->target);
    say("target: %s, %" PRIu64 " MiB; userdata gets %" PRIu64 " MiB", f->target, size / SI_MIB_BYTES,
        extent(f, "userdata")->size / SI_MIB_BYTES);
    char *buf = malloc(BLANK_PROBE);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    bool blank = pread(f->fd, buf, BLANK_PROBE, 0) == BLANK_PROBE && all_zero(buf, BLANK_PROBE) &&
                 pread(f->fd, buf, BLANK_PROBE, (off_t)(size - BLANK_PROBE)) == BLANK_PROBE &&
                 all_zero(buf, BLANK_PROBE);
    bool resumable = false;
    if (!blank && pread(f->fd, buf, SI_GRUBENV_SIZE, (off_t)extent(f, "misc")->start) == SI_GRUBENV_SIZE) {
        si_grubenv env;
        si_err ignore;
        const char *v;
        resumable = si_grubenv_parse(buf, SI_GRUBENV_SIZE, &env, &ignore) == SI_OK &&
                    (v = si_grubenv_get(&env, FLASH_MARK)) && strcmp(v, "incomplete") == 0;
    }
    free(buf);
    if (blank)
        say("target is blank");
    else if (resumable)
        say("target holds an interrupted flash: provisioning it again");
    else if (f->job.erase)
        say("target is not blank: the flash job consents to erasing it");
    else
        return si_err_set(err, SI_ERR_EXISTS,
                          "%s is not blank and the flash job does not consent to erasing it "
                          "(sysimage flash-media --erase)",
                          f->target);
    return SI_OK;
}

/* ------------------------------------------------------------ write */

static si_result write_misc(flasher *f, bool incomplete, si_err *err)
{
    si_grubenv env;
    si_grubenv_init(&env);
    char block[SI_GRUBENV_SIZE];
    si_result rc = si_grubenv_set(&env, "recovery_request", "0", err);
    if (rc == SI_OK && incomplete)
        rc = si_grubenv_set(&env, FLASH_MARK, "incomplete", err);
    if (rc == SI_OK && incomplete)
        rc = si_grubenv_set(&env, "system_incomplete", "1", err);
    if (rc == SI_OK)
        rc = si_grubenv_format(&env, block, err);
    if (rc != SI_OK)
        return rc;
    if (pwrite(f->fd, block, sizeof(block), (off_t)extent(f, "misc")->start) != (ssize_t)sizeof(block) ||
        fsync(f->fd) != 0)
        return si_err_set(err, SI_ERR_IO, "misc: %s", strerror(errno));
    return SI_OK;
}

/* The node of partition n of the target (block devices), waiting for the
 * kernel to create it after the table was re-read. */
static si_result part_node(const flasher *f, unsigned n, char *out, size_t cap, si_err *err)
{
    const char *disk = f->target;
    size_t len = strlen(disk);
    bool digit = len && disk[len - 1] >= '0' && disk[len - 1] <= '9';
    snprintf(out, cap, "%.4000s%s%u", disk, digit ? "p" : "", n);
    for (int i = 0; i < 100; i++) {
        struct stat st;
        if (stat(out, &st) == 0 && S_ISBLK(st.st_mode))
            return SI_OK;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return si_err_set(err, SI_ERR_PARTITION, "%s: no device node after re-reading the table", out);
}

static si_result write_ext4(flasher *f, const si_board_extent *e, si_err *err)
{
    const char *label = e->part->label;
    char path[CAP];
    si_result rc = SI_OK;
    if (f->target_is_file) {
        snprintf(path, sizeof(path), "%s.%s.ext4", f->target, label);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
    } else if ((rc = part_node(f, e->number, path, sizeof(path), err)) != SI_OK) {
        return rc;
    }
    say("writing %s (%" PRIu64 " MiB)", label, e->size / SI_MIB_BYTES);
    uint8_t uuid[16];
    si_sha256 h;
    si_sha256_init(&h);
    si_sha256_update(&h, f->seed, sizeof(f->seed));
    si_sha256_update(&h, label, strlen(label) + 1);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_final(&h, d);
    memcpy(uuid, d, 16);
    si_mkfs_opts mo;
    si_mkfs_opts_init(&mo);
    mo.label = label;
    mo.size = e->size;
    mo.uuid = uuid;
    if ((rc = si_mkfs_ext4(path, &mo, err)) == SI_OK) {
        si_ext4tar_stats st;
        if (strcmp(label, "recovery") == 0) {
            char k[CAP], i[CAP];
            media_path(f, "flash/vmlinuz", k, sizeof(k));
            media_path(f, "flash/initrd.img", i, sizeof(i));
            const char *names[] = {"vmlinuz", "initrd.img"}, *srcs[] = {k, i};
            rc = si_ext4_add_files(path, names, srcs, 2, (int64_t)time(NULL), &st, err);
        } else if (strcmp(label, si_board_system_label(&f->board)) == 0) {
            rc = si_ext4_from_tarballs(path, (const char *const *)f->rb.paths, f->rb.nfiles,
                                       (int64_t)time(NULL), &st, err);
            if (rc == SI_OK)
                say("%s: %" PRIu64 " entries, %" PRIu64 " MiB written", label, st.members,
                    st.bytes / SI_MIB_BYTES);
        }
    }
    if (rc == SI_OK && f->target_is_file)
        rc = si_sparse_copy(path, f->fd, e->start, e->size, err);
    if (f->target_is_file)
        unlink(path);
    return rc == SI_OK ? SI_OK : si_err_prefix(err, "partition %s", label);
}

/* Read back a raw region and compare it with a file (ESP) or bytes. */
static si_result read_back(flasher *f, const char *what, uint64_t off, uint64_t len, const char *want_hex,
                           si_err *err)
{
    char *buf = malloc(1024 * 1024);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    si_sha256 h;
    si_sha256_init(&h);
    si_result rc = SI_OK;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done > 1024 * 1024 ? 1024 * 1024 : (size_t)(len - done);
        ssize_t r = pread(f->fd, buf, n, (off_t)(off + done));
        if (r <= 0) {
            rc = si_err_set(err, SI_ERR_IO, "reading back %s: %s", what, r < 0 ? strerror(errno) : "short");
            break;
        }
        si_sha256_update(&h, buf, (size_t)r);
        done += (uint64_t)r;
    }
    free(buf);
    if (rc != SI_OK)
        return rc;
    uint8_t d[SI_SHA256_LEN];
    char hex[65];
    si_sha256_final(&h, d);
    si_hex_encode(d, sizeof(d), hex);
    if (strcmp(hex, want_hex) != 0)
        return si_err_set(err, SI_ERR_IO, "reading back %s: sha256 %s, written %s", what, hex, want_hex);
    return SI_OK;
}

static si_result provision(flasher *f, si_err *err)
{
    char guids[SI_BOARD_MAX_PARTS + 1][SI_UUID_STR];
    for (size_t i = 0; i <= f->board.nparts; i++) {
        si_sha256 h;
        si_sha256_init(&h);
        si_sha256_update(&h, f->seed, sizeof(f->seed));
        const char *what = i ? f->board.parts[i - 1].label : "gpt:disk";
        si_sha256_update(&h, what, strlen(what) + 1);
        uint8_t d[SI_SHA256_LEN];
        si_sha256_final(&h, d);
        si_uuid_format(d, guids[i]);
    }
    say("writing the partition table (%zu partitions)", f->board.nparts);
    si_result rc = si_gpt_write(f->target, &f->board, f->ex, guids, err);
    if (rc != SI_OK)
        return rc;
    if ((rc = write_misc(f, true, err)) != SI_OK)
        return rc;
    if (!f->target_is_file && ioctl(f->fd, BLKRRPART) != 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: re-reading the partition table: %s", f->target,
                          strerror(errno));
    const si_board_extent *bios = extent(f, f->board.bios.partition), *esp = extent(f, "esp");
    char core[CAP], boot[CAP], espimg[CAP];
    media_path(f, "flash/core.img", core, sizeof(core));
    media_path(f, "flash/boot.img", boot, sizeof(boot));
    media_path(f, "flash/esp.img", espimg, sizeof(espimg));
    say("writing the boot loader (BIOS core image, ESP)");
    if ((rc = si_grub_bios_install(f->fd, bios->start, bios->size, core, boot, err)) != SI_OK)
        return rc;
    if (f->job.files[SI_FLASH_ESP].size != esp->size)
        return si_err_set(err, SI_ERR_SIZE, "esp.img: %" PRIu64 " bytes for a %" PRIu64 "-byte ESP",
                          f->job.files[SI_FLASH_ESP].size, esp->size);
    /* every byte of the ESP: the image's holes are zeros on the disk too */
    {
        char *zero = calloc(1, 1024 * 1024);
        if (!zero)
            return si_err_set(err, SI_ERR_NOMEM, "out of memory");
        for (uint64_t o = 0; o < esp->size && rc == SI_OK; o += 1024 * 1024)
            if (pwrite(f->fd, zero, 1024 * 1024, (off_t)(esp->start + o)) != 1024 * 1024)
                rc = si_err_set(err, SI_ERR_IO, "esp: %s", strerror(errno));
        free(zero);
    }
    if (rc == SI_OK)
        rc = si_sparse_copy(espimg, f->fd, esp->start, esp->size, err);
    if (rc == SI_OK && fsync(f->fd) != 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: fsync: %s", f->target, strerror(errno));
    if (rc == SI_OK)
        rc = read_back(f, "esp", esp->start, esp->size, f->job.files[SI_FLASH_ESP].sha256, err);
    for (size_t i = 0; rc == SI_OK && i < f->board.nparts; i++)
        if (f->board.parts[i].fs == SI_BOARD_FS_EXT4)
            rc = write_ext4(f, &f->ex[i], err);
    if (rc == SI_OK && fsync(f->fd) != 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: fsync: %s", f->target, strerror(errno));
    if (rc == SI_OK)
        rc = write_misc(f, false, err);
    return rc;
}

static void write_result(flasher *f, si_result rc, const si_err *err, double secs)
{
    if (!f->media[0])
        return;
    char path[CAP], text[2048], msg[SI_ERR_MSG_MAX * 2];
    size_t j = 0;
    for (const char *s = rc == SI_OK ? "" : err->msg; *s && j + 2 < sizeof(msg); s++) {
        if (*s == '"' || *s == '\\')
            msg[j++] = '\\';
        msg[j++] = (unsigned char)*s < 0x20 ? ' ' : *s;
    }
    msg[j] = '\0';
    snprintf(text, sizeof(text),
             "{\n    \"board\": \"%s\",\n    \"build\": %" PRId64 ",\n    \"message\": \"%s\",\n"
             "    \"result\": %d,\n    \"result_name\": \"%s\",\n    \"seconds\": %.1f,\n"
             "    \"target\": \"%s\"\n}\n",
             f->board.name, f->job.build, msg, (int)rc, si_result_name(rc), secs, f->target);
    media_path(f, "flash/flash-result.json", path, sizeof(path));
    if (si_write_file_atomic(path, text, strlen(text), 0644) < 0)
        say("could not write %s", path);
}

si_result recovery_flash(const flash_opts *o)
{
    flasher f;
    memset(&f, 0, sizeof(f));
    f.o = o;
    f.fd = -1;
    si_err err;
    si_err_clear(&err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    si_result rc = find_media(&f, &err);
    if (rc == SI_OK)
        rc = find_target(&f, &err);
    if (rc == SI_OK)
        rc = verify_media(&f, &err);
    if (rc == SI_OK)
        rc = check_target(&f, &err);
    if (rc == SI_OK)
        rc = provision(&f, &err);
    if (f.fd >= 0)
        close(f.fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc == SI_OK)
        say("done: %s provisioned with build %" PRId64 " in %.1f s", f.target, f.job.build, secs);
    else
        say("result: %s (%d): %s", si_result_name(rc), (int)rc, err.msg[0] ? err.msg : si_result_message(rc));
    write_result(&f, rc, &err, secs);
    if (f.mounted) {
        si_err e2;
        sysmount_umount(f.media, &e2);
    }
    si_repo_build_free(&f.rb);
    if (f.trust_ready)
        si_trust_free(&f.trust);
    return rc;
}
