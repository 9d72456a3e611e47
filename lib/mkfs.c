/* mkfs.c - ext4 made in-process with libext2fs.
 *
 * The sequence follows what mke2fs does for `-t ext4` with Debian's
 * mke2fs.conf (written from the libext2fs API, not copied): size the
 * superblock parameters, ext2fs_initialize, flex_bg-packed metadata, lazily
 * initialised inode tables, root and lost+found, reserved and bad-block
 * inodes, resize inode, a zeroed journal, then flush. */
#include "mkfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#define WIPE_BYTES (64 * 1024)

void si_mkfs_opts_init(si_mkfs_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->block_size = 4096;
    opts->inode_ratio = 16384;
    opts->reserved_percent = 5;
}

/* A random (version 4) UUID; getrandom() blocks only until the kernel's pool
 * is initialised (QEMU with -cpu max has RDRAND). */
static int random_uuid(unsigned char u[16])
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(u + got, 16 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    return 0;
}

static unsigned log2u(unsigned long long v)
{
    unsigned l = 0;
    while (v >>= 1)
        l++;
    return l;
}

/* Open the target, find its size (extending a regular file when asked) and
 * wipe old signatures at both ends of the range. O_EXCL on a block device
 * fails when it is mounted or otherwise claimed. */
static si_result prepare_target(const char *path, const si_mkfs_opts *o, uint64_t *size, si_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return si_err_set(err, SI_ERR_IO, "mkfs: %s: %s", path, strerror(errno));
    int blk = S_ISBLK(st.st_mode);
    if (!blk && !S_ISREG(st.st_mode))
        return si_err_set(err, SI_ERR_MKFS, "mkfs: %s is neither a block device nor a file", path);
    int fd = open(path, O_RDWR | O_CLOEXEC | (blk ? O_EXCL : 0));
    if (fd < 0)
        return si_err_set(err, errno == EBUSY ? SI_ERR_MKFS : SI_ERR_IO, "mkfs: open %s: %s", path,
                          errno == EBUSY ? "device is busy (mounted?)" : strerror(errno));
    si_result r = SI_OK;
    uint64_t devsize = 0;
    if (blk) {
        if (ioctl(fd, BLKGETSIZE64, &devsize) != 0) {
            r = si_err_set(err, SI_ERR_IO, "mkfs: %s: BLKGETSIZE64: %s", path, strerror(errno));
            goto out;
        }
        if (o->size > devsize) {
            r = si_err_set(err, SI_ERR_NO_SPACE, "mkfs: %s: requested %llu bytes but the device has %llu",
                           path, (unsigned long long)o->size, (unsigned long long)devsize);
            goto out;
        }
    } else {
        devsize = (uint64_t)st.st_size;
        if (o->size > devsize) {
            if (ftruncate(fd, (off_t)o->size) != 0) {
                r = si_err_set(err, SI_ERR_IO, "mkfs: extend %s to %llu bytes: %s", path,
                               (unsigned long long)o->size, strerror(errno));
                goto out;
            }
            devsize = o->size;
        }
    }
    *size = o->size ? o->size : devsize;
    *size -= *size % o->block_size;
    if (*size < SI_MKFS_MIN_BYTES) { /* checked before anything is written */
        r = si_err_set(err, SI_ERR_NO_SPACE, "mkfs: %s: %llu bytes is too small for ext4 (min %d MiB)",
                       path, (unsigned long long)*size, SI_MKFS_MIN_BYTES >> 20);
        goto out;
    }
    if (blk && o->discard) {
        uint64_t range[2] = {0, *size};
        (void)ioctl(fd, BLKDISCARD, &range); /* best effort: not every device discards */
    }
    static const char zero[4096];
    uint64_t wipe = *size < 2 * WIPE_BYTES ? *size : WIPE_BYTES;
    for (int end = 0; end < 2 && r == SI_OK; end++) {
        uint64_t start = end ? *size - wipe : 0;
        for (uint64_t off = 0; off < wipe; off += sizeof(zero)) {
            size_t n = wipe - off < sizeof(zero) ? (size_t)(wipe - off) : sizeof(zero);
            if (pwrite(fd, zero, n, (off_t)(start + off)) != (ssize_t)n) {
                r = si_err_set(err, SI_ERR_IO, "mkfs: wipe %s at %llu: %s", path,
                               (unsigned long long)(start + off), strerror(errno ? errno : EIO));
                break;
            }
        }
    }
    if (r == SI_OK && fsync(fd) != 0)
        r = si_err_set(err, SI_ERR_IO, "mkfs: fsync %s: %s", path, strerror(errno));
out:
    close(fd);
    return r;
}

static si_result e2_fail(const char *path, const char *what, errcode_t e, si_err *err)
{
    return si_err_set(err, SI_ERR_MKFS, "mkfs: %s: %s: %s", path, what, error_message(e));
}

/* One libext2fs call of a step: on failure the step returns an error naming
 * the path and what was being done. */
#define E2(call, what)                                   \
    do {                                                 \
        errcode_t e2_ = (call);                          \
        if (e2_)                                         \
            return e2_fail(path, what, e2_, err);        \
    } while (0)

/* Place block bitmaps, inode bitmaps and inode tables of all groups one
 * after another (what flex_bg allows), like mke2fs does. */
static errcode_t packed_tables(ext2_filsys fs)
{
    blk64_t goal = 0;
    errcode_t e;
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        if ((e = ext2fs_new_block2(fs, goal, NULL, &goal)))
            return e;
        ext2fs_block_alloc_stats2(fs, goal, +1);
        ext2fs_block_bitmap_loc_set(fs, g, goal);
    }
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        if ((e = ext2fs_new_block2(fs, goal, NULL, &goal)))
            return e;
        ext2fs_block_alloc_stats2(fs, goal, +1);
        ext2fs_inode_bitmap_loc_set(fs, g, goal);
    }
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        blk64_t end = ext2fs_blocks_count(fs->super) - 1;
        if ((e = ext2fs_get_free_blocks2(fs, goal, end, fs->inode_blocks_per_group, fs->block_map,
                                         &goal)))
            return e;
        ext2fs_block_alloc_stats_range(fs, goal, fs->inode_blocks_per_group, +1);
        ext2fs_inode_table_loc_set(fs, g, goal);
        ext2fs_group_desc_csum_set(fs, g);
    }
    return 0;
}

/* The options with defaults filled in, checked before anything is touched. */
static si_result check_opts(const si_mkfs_opts *opts, si_mkfs_opts *o, si_err *err)
{
    if (opts)
        *o = *opts;
    else
        si_mkfs_opts_init(o);
    if (o->block_size == 0)
        o->block_size = 4096;
    if (o->inode_ratio == 0)
        o->inode_ratio = 16384;
    if (o->block_size != 1024 && o->block_size != 2048 && o->block_size != 4096)
        return si_err_set(err, SI_ERR_USAGE, "mkfs: block size %u (must be 1024, 2048 or 4096)",
                          o->block_size);
    if (o->inode_ratio < o->block_size || o->inode_ratio > 64u * 1024 * 1024)
        return si_err_set(err, SI_ERR_USAGE, "mkfs: inode ratio %u out of range", o->inode_ratio);
    if (o->reserved_percent > 50)
        return si_err_set(err, SI_ERR_USAGE, "mkfs: reserved percentage %u over 50", o->reserved_percent);
    if (o->label && strlen(o->label) > SI_FS_LABEL_MAX)
        return si_err_set(err, SI_ERR_USAGE, "mkfs: label '%s' is longer than %d bytes", o->label,
                          SI_FS_LABEL_MAX);
    return SI_OK;
}

/* The superblock parameters of `mke2fs -t ext4` for a filesystem of `bytes`. */
static void super_params(struct ext2_super_block *param, uint64_t bytes, const si_mkfs_opts *o)
{
    uint64_t blocks = bytes / o->block_size;
    memset(param, 0, sizeof(*param));
    param->s_rev_level = EXT2_DYNAMIC_REV;
    param->s_log_block_size = log2u(o->block_size) - EXT2_MIN_BLOCK_LOG_SIZE;
    param->s_log_cluster_size = param->s_log_block_size;
    param->s_feature_compat = EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_RESIZE_INODE |
                              EXT2_FEATURE_COMPAT_DIR_INDEX;
    param->s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS |
                                EXT4_FEATURE_INCOMPAT_64BIT | EXT4_FEATURE_INCOMPAT_FLEX_BG;
    param->s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
                                 EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
                                 EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE |
                                 EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
    if (blocks > 0xffffffffull)
        ext2fs_clear_feature_resize_inode(param);
    param->s_log_groups_per_flex = 4; /* 16 groups per flex group */
    param->s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
    param->s_inode_size = 256;
    param->s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
    ext2fs_blocks_count_set(param, blocks);
    uint64_t inodes = bytes / o->inode_ratio;
    param->s_inodes_count = inodes > 0xffffffffull ? 0xffffffffu : (__u32)inodes;
    ext2fs_r_blocks_count_set(param, blocks * o->reserved_percent / 100);
}

/* Timestamps, UUID and hash seed (fixed when asked, random otherwise),
 * checksums, mount-count policy and the label. */
static si_result set_identity(ext2_filsys fs, const si_mkfs_opts *o, const char *path, si_err *err)
{
    fs->super->s_kbytes_written = 1;
    if (o->timestamp > 0) {
        fs->now = (time_t)o->timestamp;
        fs->super->s_mkfs_time = fs->super->s_wtime = fs->super->s_mtime = (__u32)o->timestamp;
        fs->super->s_lastcheck = (__u32)o->timestamp;
    }
    if (o->uuid) {
        memcpy(fs->super->s_uuid, o->uuid, 16);
        /* the hash seed: the UUID's bytes reversed and flipped, still fixed */
        unsigned char seed[16];
        for (int i = 0; i < 16; i++)
            seed[i] = (unsigned char)~o->uuid[15 - i];
        memcpy(fs->super->s_hash_seed, seed, 16);
    } else if (random_uuid(fs->super->s_uuid) != 0 ||
               random_uuid((unsigned char *)fs->super->s_hash_seed) != 0) {
        return si_err_set(err, SI_ERR_MKFS, "mkfs: %s: getrandom: %s", path, strerror(errno));
    }
    ext2fs_init_csum_seed(fs);
    fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
    fs->super->s_flags |= ((char)-1 < 0) ? EXT2_FLAGS_SIGNED_HASH : EXT2_FLAGS_UNSIGNED_HASH;
    fs->super->s_max_mnt_count = (__u16)-1;
    fs->super->s_checkinterval = 0;
    fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
    if (fs->super->s_inode_size >= EXT2_GOOD_OLD_INODE_SIZE + 32) {
        fs->super->s_min_extra_isize = 32;
        fs->super->s_want_extra_isize = 32;
    }
    memset(fs->super->s_volume_name, 0, sizeof(fs->super->s_volume_name));
    if (o->label)
        memcpy(fs->super->s_volume_name, o->label, strlen(o->label));
    return SI_OK;
}

/* Group tables packed by flex_bg, then the reserved inodes. Inode tables
 * are initialised lazily: every group is marked with all inodes unused
 * (bg_itable_unused) and not zeroed, so the kernel's lazyinit thread zeroes
 * them after mount, as with mke2fs on Linux. Only the reserved inodes are
 * written now, with valid checksums. */
static si_result write_tables(ext2_filsys fs, const char *path, si_err *err)
{
    E2(packed_tables(fs), "allocating group tables");
    E2(ext2fs_convert_subcluster_bitmap(fs, &fs->block_map), "converting the block bitmap");
    struct ext2_inode_large *ino = NULL;
    E2(ext2fs_get_memzero(EXT2_INODE_SIZE(fs->super), &ino), "allocating an inode");
    errcode_t e = 0;
    for (ext2_ino_t i = 1; i < EXT2_FIRST_INO(fs->super) && !e; i++)
        e = ext2fs_write_inode_full(fs, i, (struct ext2_inode *)ino, EXT2_INODE_SIZE(fs->super));
    ext2fs_free_mem(&ino);
    E2(e, "writing the reserved inodes");
    return SI_OK;
}

/* The root directory and /lost+found (mode 0700, at least 16 KiB). */
static si_result make_directories(ext2_filsys fs, const char *path, si_err *err)
{
    E2(ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0), "creating the root directory");
    fs->umask = 077;
    E2(ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found"), "creating /lost+found");
    ext2_ino_t lpf;
    E2(ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &lpf), "looking up /lost+found");
    unsigned sz = fs->blocksize;
    for (int i = 1; i < EXT2_NDIR_BLOCKS && (sz < 16 * 1024 || sz < 2 * fs->blocksize); i++) {
        E2(ext2fs_expand_dir(fs, lpf), "expanding /lost+found");
        sz += fs->blocksize;
    }
    return SI_OK;
}

/* The reserved inodes counted as used, the bad-block inode, the resize
 * inode (when the feature is on) and a zeroed journal. */
static si_result add_special_inodes(ext2_filsys fs, const char *path, si_err *err)
{
    for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
        ext2fs_inode_alloc_stats2(fs, i, +1, 0);
    ext2fs_mark_ib_dirty(fs);
    ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
    ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
    E2(ext2fs_update_bb_inode(fs, NULL), "writing the bad-block inode");
    if (ext2fs_has_feature_resize_inode(fs->super))
        E2(ext2fs_create_resize_inode(fs), "reserving blocks for online resize");
    struct ext2fs_journal_params jp;
    E2(ext2fs_get_journal_params(&jp, fs), "sizing the journal");
    E2(ext2fs_add_journal_inode3(fs, &jp, ~0ULL, EXT2_MKJOURNAL_NO_MNT_CHECK), "creating the journal");
    return SI_OK;
}

si_result si_mkfs_ext4(const char *path, const si_mkfs_opts *opts, si_err *err)
{
    si_mkfs_opts o;
    si_result r = check_opts(opts, &o, err);
    if (r != SI_OK)
        return r;
    initialize_ext2_error_table();
    uint64_t bytes = 0;
    if ((r = prepare_target(path, &o, &bytes, err)) != SI_OK)
        return r;
    struct ext2_super_block param;
    super_params(&param, bytes, &o);
    ext2_filsys fs = NULL;
    E2(ext2fs_initialize(path, EXT2_FLAG_EXCLUSIVE | EXT2_FLAG_64BITS, &param, unix_io_manager, &fs),
       "initialising the superblock");
    if ((r = set_identity(fs, &o, path, err)) != SI_OK || (r = write_tables(fs, path, err)) != SI_OK ||
        (r = make_directories(fs, path, err)) != SI_OK || (r = add_special_inodes(fs, path, err)) != SI_OK) {
        ext2fs_free(fs);
        return r;
    }
    E2(ext2fs_close_free(&fs), "writing the filesystem metadata"); /* frees fs, also on failure */
    return SI_OK;
}

si_result si_fs_read_label(const char *path, char label[SI_FS_LABEL_MAX + 1], si_err *err)
{
    label[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "read label: open %s: %s", path, strerror(errno));
    struct ext2_super_block sb;
    ssize_t n = pread(fd, &sb, sizeof(sb), SUPERBLOCK_OFFSET);
    int e = errno;
    close(fd);
    if (n < 0)
        return si_err_set(err, SI_ERR_IO, "read label: read %s: %s", path, strerror(e));
    if (n != (ssize_t)sizeof(sb) || ext2fs_le16_to_cpu(sb.s_magic) != EXT2_SUPER_MAGIC)
        return si_err_set(err, SI_ERR_PARTITION, "read label: %s holds no ext2/3/4 filesystem", path);
    size_t i;
    for (i = 0; i < SI_FS_LABEL_MAX && sb.s_volume_name[i]; i++) {
        unsigned char c = (unsigned char)sb.s_volume_name[i];
        if (c < 0x20 || c == 0x7f) {
            label[0] = '\0';
            return si_err_set(err, SI_ERR_PARTITION, "read label: %s: label has control byte 0x%02x",
                              path, c);
        }
        label[i] = (char)c;
    }
    label[i] = '\0';
    return SI_OK;
}

si_result si_mkfs_ext4_keep_label(const char *path, const char *fallback_label,
                                  const si_mkfs_opts *opts, si_err *err)
{
    char label[SI_FS_LABEL_MAX + 1];
    si_err lerr;
    si_err_clear(&lerr);
    if (si_fs_read_label(path, label, &lerr) != SI_OK) {
        if (lerr.code == SI_ERR_IO)
            return si_err_set(err, SI_ERR_IO, "%s", lerr.msg);
        if (!fallback_label)
            return si_err_set(err, SI_ERR_MKFS, "%s, and no fallback label was given", lerr.msg);
        if (strlen(fallback_label) > SI_FS_LABEL_MAX)
            return si_err_set(err, SI_ERR_USAGE, "mkfs: fallback label '%s' is longer than %d bytes",
                              fallback_label, SI_FS_LABEL_MAX);
        snprintf(label, sizeof(label), "%s", fallback_label);
    }
    si_mkfs_opts o;
    if (opts)
        o = *opts;
    else
        si_mkfs_opts_init(&o);
    o.label = label;
    return si_mkfs_ext4(path, &o, err);
}
