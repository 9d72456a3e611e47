/* ext4tar.c - full update tarballs -> an ext4 image, with libext2fs. */
#include "ext4tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <fcntl.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "layout.h"
#include "tarformat.h"

#define PREFIX "system/"
#define MAX_DEPTH 256
#define BUF_SIZE (64 * 1024)

#define LINK_MAX_EXT4 65000

/* Directory entry type of an inode mode. */
static int ft_of(unsigned mode)
{
    switch (mode & LINUX_S_IFMT) {
    case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
    case LINUX_S_IFDIR: return EXT2_FT_DIR;
    case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
    case LINUX_S_IFCHR: return EXT2_FT_CHRDEV;
    case LINUX_S_IFBLK: return EXT2_FT_BLKDEV;
    case LINUX_S_IFIFO: return EXT2_FT_FIFO;
    case LINUX_S_IFSOCK: return EXT2_FT_SOCK;
    default: return EXT2_FT_UNKNOWN;
    }
}

struct filler {
    ext2_filsys fs;
    const char *file;   /* tarball being read (messages) */
    const char *member; /* its current member */
    int64_t dir_time;
    si_ext4tar_stats st;
    char *buf;
};

static si_result e2err(struct filler *f, errcode_t e, const char *what, si_err *err)
{
    si_result code = (e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL ||
                      e == ENOSPC || e == EXT2_ET_EA_NO_SPACE)
                         ? SI_ERR_NO_SPACE
                         : SI_ERR_IO;
    return si_err_set(err, code, "%s: %s: %s: %s%s", f->file, f->member ? f->member : "-", what,
                      error_message(e), code == SI_ERR_NO_SPACE ? " (the partition is too small)" : "");
}

/* "system/a/b" -> "a/b"; "system/" -> "". NULL when outside system/ or
 * unsafe (lib/layout). */
static const char *rel_path(const char *name, char *out, size_t cap)
{
    return si_layout_system_rel(name, out, cap) ? out : NULL;
}

static si_result read_inode(struct filler *f, ext2_ino_t ino, struct ext2_inode_large *in, si_err *err)
{
    memset(in, 0, sizeof(*in));
    errcode_t e = ext2fs_read_inode_full(f->fs, ino, (struct ext2_inode *)in, sizeof(*in));
    return e ? e2err(f, e, "reading an inode", err) : SI_OK;
}

static si_result write_inode(struct filler *f, ext2_ino_t ino, struct ext2_inode_large *in, si_err *err)
{
    errcode_t e = ext2fs_write_inode_full(f->fs, ino, (struct ext2_inode *)in, sizeof(*in));
    return e ? e2err(f, e, "writing an inode", err) : SI_OK;
}

static void set_times(struct ext2_inode_large *in, int64_t t)
{
    uint32_t lo = (uint32_t)t;
    in->i_atime = in->i_ctime = in->i_mtime = lo;
    in->i_crtime = lo;
    /* epoch bits beyond 32 (dates after 2038) and no nanoseconds */
    uint32_t extra = (uint32_t)(((t - (int64_t)(int32_t)lo) >> 32) & EXT4_EPOCH_MASK);
    in->i_atime_extra = in->i_ctime_extra = in->i_mtime_extra = in->i_crtime_extra = extra;
}

/* Add name -> ino in dir, growing the directory when it is full. */
static errcode_t link_in(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ft)
{
    errcode_t e = ext2fs_link(fs, dir, name, ino, ft);
    if (e == EXT2_ET_DIR_NO_SPACE) {
        if ((e = ext2fs_expand_dir(fs, dir)))
            return e;
        e = ext2fs_link(fs, dir, name, ino, ft);
    }
    return e;
}

/* Walk rel's parent directories from the root, making missing ones; *dir is
 * the parent of the last component, *base points at it in rel. */
static si_result walk_parents(struct filler *f, char *rel, ext2_ino_t *dir, const char **base,
                              si_err *err)
{
    ext2_ino_t cur = EXT2_ROOT_INO;
    char *p = rel;
    for (int depth = 0;; depth++) {
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        if (depth == MAX_DEPTH)
            return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: deeper than %d directories", f->file,
                              f->member, MAX_DEPTH);
        *slash = '\0';
        ext2_ino_t next = 0;
        errcode_t e = ext2fs_lookup(f->fs, cur, p, (int)strlen(p), NULL, &next);
        if (e == EXT2_ET_FILE_NOT_FOUND) {
            if ((e = ext2fs_mkdir(f->fs, cur, 0, p)) == EXT2_ET_DIR_NO_SPACE) {
                if ((e = ext2fs_expand_dir(f->fs, cur)) == 0)
                    e = ext2fs_mkdir(f->fs, cur, 0, p);
            }
            if (e || (e = ext2fs_lookup(f->fs, cur, p, (int)strlen(p), NULL, &next))) {
                *slash = '/';
                return e2err(f, e, "making a parent directory", err);
            }
            struct ext2_inode_large in;
            si_result rc = read_inode(f, next, &in, err);
            if (rc != SI_OK)
                return rc;
            in.i_mode = LINUX_S_IFDIR | 0755;
            in.i_uid = in.i_gid = 0;
            ext2fs_set_i_uid_high(in, 0);
            ext2fs_set_i_gid_high(in, 0);
            set_times(&in, f->dir_time);
            if ((rc = write_inode(f, next, &in, err)) != SI_OK)
                return rc;
        } else if (e) {
            *slash = '/';
            return e2err(f, e, "looking up a parent directory", err);
        } else {
            struct ext2_inode_large in;
            si_result rc = read_inode(f, next, &in, err);
            if (rc != SI_OK)
                return rc;
            if (!LINUX_S_ISDIR(in.i_mode)) {
                *slash = '/';
                return si_err_set(err, SI_ERR_UNSAFE_PATH,
                                  "%s: %s: a parent is not a directory (a symlink or file is in the way)",
                                  f->file, f->member);
            }
        }
        *slash = '/';
        cur = next;
        p = slash + 1;
    }
    *dir = cur;
    *base = p;
    return SI_OK;
}

/* Drop one link of ino (name already unlinked); free it at zero links. */
static si_result drop_link(struct filler *f, ext2_ino_t ino, si_err *err)
{
    struct ext2_inode_large in;
    si_result rc = read_inode(f, ino, &in, err);
    if (rc != SI_OK)
        return rc;
    if (in.i_links_count > 1) {
        in.i_links_count--;
        return write_inode(f, ino, &in, err);
    }
    errcode_t e = 0;
    if (ext2fs_inode_has_valid_blocks2(f->fs, (struct ext2_inode *)&in) || (in.i_flags & EXT4_EXTENTS_FL))
        e = ext2fs_punch(f->fs, ino, (struct ext2_inode *)&in, NULL, 0, ~0ULL);
    if (e)
        return e2err(f, e, "freeing a replaced file's blocks", err);
    if ((rc = read_inode(f, ino, &in, err)) != SI_OK)
        return rc;
    if (in.i_file_acl) {
        ext2fs_adjust_ea_refcount3(f->fs, ext2fs_file_acl_block(f->fs, (struct ext2_inode *)&in), NULL,
                                   -1, NULL, ino);
    }
    in.i_links_count = 0;
    in.i_dtime = (uint32_t)f->dir_time;
    if ((rc = write_inode(f, ino, &in, err)) != SI_OK)
        return rc;
    ext2fs_inode_alloc_stats2(f->fs, ino, -1, 0);
    return SI_OK;
}

/* What exists at dir/base: 0 when nothing. A directory stays when the new
 * member is a directory (its metadata is replaced); anything else is
 * unlinked first. A non-empty directory in the way of a non-directory is
 * refused. */
static si_result clear_way(struct filler *f, ext2_ino_t dir, const char *base, int new_is_dir,
                           ext2_ino_t *kept, si_err *err)
{
    *kept = 0;
    ext2_ino_t old = 0;
    errcode_t e = ext2fs_lookup(f->fs, dir, base, (int)strlen(base), NULL, &old);
    if (e == EXT2_ET_FILE_NOT_FOUND)
        return SI_OK;
    if (e)
        return e2err(f, e, "looking up", err);
    struct ext2_inode_large in;
    si_result rc = read_inode(f, old, &in, err);
    if (rc != SI_OK)
        return rc;
    if (LINUX_S_ISDIR(in.i_mode)) {
        if (new_is_dir) {
            *kept = old;
            return SI_OK;
        }
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "%s: %s: replaces a directory by a non-directory (not in a full image)",
                          f->file, f->member);
    }
    if ((e = ext2fs_unlink(f->fs, dir, base, old, 0)))
        return e2err(f, e, "unlinking the older entry", err);
    return drop_link(f, old, err);
}

static si_result set_meta(struct filler *f, ext2_ino_t ino, struct archive_entry *ae, si_err *err)
{
    struct ext2_inode_large in;
    si_result rc = read_inode(f, ino, &in, err);
    if (rc != SI_OK)
        return rc;
    in.i_mode = (uint16_t)((in.i_mode & LINUX_S_IFMT) | (archive_entry_perm(ae) & 07777));
    uint64_t uid = (uint64_t)archive_entry_uid(ae), gid = (uint64_t)archive_entry_gid(ae);
    if (uid > 0xffffffffu || gid > 0xffffffffu)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: owner %llu:%llu out of range", f->file,
                          f->member, (unsigned long long)uid, (unsigned long long)gid);
    in.i_uid = (uint16_t)uid;
    ext2fs_set_i_uid_high(in, (uint16_t)(uid >> 16));
    in.i_gid = (uint16_t)gid;
    ext2fs_set_i_gid_high(in, (uint16_t)(gid >> 16));
    set_times(&in, (int64_t)archive_entry_mtime(ae));
    return write_inode(f, ino, &in, err);
}

static si_result set_xattrs(struct filler *f, ext2_ino_t ino, struct archive_entry *ae, si_err *err)
{
    if (archive_entry_xattr_reset(ae) == 0)
        return SI_OK;
    struct ext2_xattr_handle *h = NULL;
    errcode_t e = ext2fs_xattrs_open(f->fs, ino, &h);
    if (!e)
        e = ext2fs_xattrs_read(h);
    const char *name;
    const void *value;
    size_t size;
    while (!e && archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
        if (strncmp(name, "security.", 9) != 0 && strncmp(name, "trusted.", 8) != 0 &&
            strncmp(name, "user.", 5) != 0) {
            ext2fs_xattrs_close(&h);
            return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: %s: extended attribute '%s' not supported",
                              f->file, f->member, name);
        }
        e = ext2fs_xattr_set(h, name, value, size);
    }
    if (h) {
        errcode_t c = ext2fs_xattrs_close(&h);
        if (!e)
            e = c;
    }
    return e ? e2err(f, e, "writing extended attributes", err) : SI_OK;
}

static int all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Stream the member's data into ino; all-zero blocks are left as holes. */
typedef la_ssize_t (*read_fn)(void *src, void *buf, size_t n);

static la_ssize_t read_archive(void *src, void *buf, size_t n)
{
    return archive_read_data((struct archive *)src, buf, n);
}

static la_ssize_t read_fd(void *src, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = read(*(int *)src, buf, n);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

static si_result write_data(struct filler *f, read_fn rd, void *src, ext2_ino_t ino, int64_t size,
                            si_err *err)
{
    ext2_file_t file = NULL;
    errcode_t e = ext2fs_file_open(f->fs, ino, EXT2_FILE_WRITE, &file);
    if (e)
        return e2err(f, e, "opening the new file", err);
    unsigned bs = f->fs->blocksize;
    uint64_t pos = 0;
    si_result rc = SI_OK;
    for (;;) {
        la_ssize_t n = rd(src, f->buf, BUF_SIZE);
        if (n < 0) {
            rc = rd == read_archive
                     ? si_err_set(err, SI_ERR_PARSE, "%s: %s: %s", f->file, f->member,
                                  archive_error_string((struct archive *)src))
                     : si_err_set(err, SI_ERR_IO, "%s: read: %s", f->member, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (size_t off = 0; off < (size_t)n;) {
            size_t chunk = (size_t)n - off;
            size_t in_block = bs - (size_t)((pos + off) % bs);
            if (chunk > in_block)
                chunk = in_block;
            if (chunk == bs && all_zero(f->buf + off, chunk)) {
                off += chunk;
                continue;
            }
            if ((e = ext2fs_file_llseek(file, pos + off, EXT2_SEEK_SET, NULL)))
                break;
            unsigned int written = 0;
            if ((e = ext2fs_file_write(file, f->buf + off, (unsigned)chunk, &written)))
                break;
            if (written != chunk) {
                e = EXT2_ET_SHORT_WRITE;
                break;
            }
            off += chunk;
        }
        if (e)
            break;
        pos += (uint64_t)n;
    }
    if (!e && rc == SI_OK) {
        if ((int64_t)pos != size)
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s: %llu bytes of data, header says %lld", f->file,
                            f->member, (unsigned long long)pos, (long long)size);
        else
            e = ext2fs_file_set_size2(file, pos);
    }
    errcode_t c = ext2fs_file_close(file);
    if (!e)
        e = c;
    if (rc == SI_OK && e)
        rc = e2err(f, e, "writing file data", err);
    if (rc == SI_OK)
        f->st.bytes += pos;
    return rc;
}

/* A new inode of mode linked as dir/base (regular files get an extent tree). */
static si_result new_inode(struct filler *f, ext2_ino_t dir, const char *base, uint16_t mode, int ft,
                           uint32_t rdev_major, uint32_t rdev_minor, ext2_ino_t *out, si_err *err)
{
    ext2_ino_t ino = 0;
    errcode_t e = ext2fs_new_inode(f->fs, dir, mode, NULL, &ino);
    if (e)
        return e2err(f, e, "allocating an inode", err);
    if ((e = link_in(f->fs, dir, base, ino, ft)))
        return e2err(f, e, "linking into its directory", err);
    ext2fs_inode_alloc_stats2(f->fs, ino, +1, 0);
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    in.i_mode = mode;
    in.i_links_count = 1;
    in.i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
    set_times(&in, f->dir_time);
    if (LINUX_S_ISCHR(mode) || LINUX_S_ISBLK(mode)) {
        if (rdev_major < 256 && rdev_minor < 256) {
            in.i_block[0] = rdev_major * 256 + rdev_minor;
        } else {
            in.i_block[1] = (rdev_minor & 0xff) | (rdev_major << 8) | ((rdev_minor & ~0xffu) << 12);
        }
    }
    if (LINUX_S_ISREG(mode) && ext2fs_has_feature_extents(f->fs->super)) {
        ext2_extent_handle_t h;
        in.i_flags &= ~EXT4_EXTENTS_FL;
        if ((e = ext2fs_extent_open2(f->fs, ino, (struct ext2_inode *)&in, &h)))
            return e2err(f, e, "starting an extent tree", err);
        ext2fs_extent_free(h);
    }
    if ((e = ext2fs_write_new_inode(f->fs, ino, (struct ext2_inode *)&in)))
        return e2err(f, e, "writing a new inode", err);
    /* write_new_inode writes only the small inode: the large fields too */
    si_result rc = write_inode(f, ino, &in, err);
    if (rc != SI_OK)
        return rc;
    *out = ino;
    return SI_OK;
}

/* A member name of a full image: system/<path> (into rel); not a delta's
 * `removed`, not a raw partition. */
static si_result member_name_ok(const char *file, const char *name, char *rel, size_t relsz,
                                si_err *err)
{
    if (!name)
        return si_err_set(err, SI_ERR_PARSE, "%s: a member without a name", file);
    if (strcmp(name, "removed") == 0)
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "%s: has a 'removed' member: a delta, not a full image", file);
    if (strncmp(name, "partitions/", 11) == 0)
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "%s: %s: raw partition images are not supported by the image builder",
                          file, name);
    if (!rel_path(name, rel, relsz))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s' is outside system/ or unsafe",
                          file, name);
    return SI_OK;
}

/* The first member `manifest` (lib/manifest.h) lists the others: not a file. */
static bool skip_first_manifest(bool first, struct archive_entry *ae)
{
    const char *name = archive_entry_pathname(ae);
    return first && name && strcmp(name, SI_LAYOUT_MANIFEST) == 0;
}

static si_result add_hardlink(struct filler *f, ext2_ino_t dir, const char *base,
                              const char *name, const char *hardlink, si_err *err)
{
    char trel[4096];
    if (!rel_path(hardlink, trel, sizeof(trel)) || !trel[0])
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: hardlink to '%s' outside system/",
                          f->file, name, hardlink);
    ext2_ino_t target = 0;
    errcode_t e = ext2fs_namei(f->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, trel, &target);
    if (e)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: hardlink target '%s' is not in the image",
                          f->file, name, hardlink);
    struct ext2_inode_large in;
    si_result rc = read_inode(f, target, &in, err);
    if (rc != SI_OK)
        return rc;
    if (LINUX_S_ISDIR(in.i_mode))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: hardlink to a directory", f->file, name);
    if (in.i_links_count >= LINK_MAX_EXT4)
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: %s: too many links", f->file, name);
    ext2_ino_t kept;
    if ((rc = clear_way(f, dir, base, 0, &kept, err)) != SI_OK)
        return rc;
    /* the target may have lost a link if it was the entry replaced */
    if ((rc = read_inode(f, target, &in, err)) != SI_OK)
        return rc;
    if (in.i_links_count == 0)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: hardlink to itself", f->file, name);
    if ((e = link_in(f->fs, dir, base, target, ft_of(in.i_mode))))
        return e2err(f, e, "linking", err);
    in.i_links_count++;
    f->st.members++;
    return write_inode(f, target, &in, err);
}

static bool ext2_mode_of(mode_t type, uint16_t *mode)
{
    switch (type) {
    case AE_IFDIR: *mode = LINUX_S_IFDIR; return true;
    case AE_IFREG: *mode = LINUX_S_IFREG; return true;
    case AE_IFLNK: *mode = LINUX_S_IFLNK; return true;
    case AE_IFCHR: *mode = LINUX_S_IFCHR; return true;
    case AE_IFBLK: *mode = LINUX_S_IFBLK; return true;
    case AE_IFIFO: *mode = LINUX_S_IFIFO; return true;
    case AE_IFSOCK: *mode = LINUX_S_IFSOCK; return true;
    default: return false;
    }
}

/* dir/base as a directory (kept when one is there: *ino) or a symlink. */
static si_result make_dir_or_symlink(struct filler *f, struct archive_entry *ae, ext2_ino_t dir,
                                     const char *base, ext2_ino_t *ino, si_err *err)
{
    errcode_t e = 0;
    if (archive_entry_filetype(ae) == AE_IFDIR) {
        if (*ino)
            return SI_OK;
        if ((e = ext2fs_mkdir(f->fs, dir, 0, base)) == EXT2_ET_DIR_NO_SPACE &&
            (e = ext2fs_expand_dir(f->fs, dir)) == 0)
            e = ext2fs_mkdir(f->fs, dir, 0, base);
        if (e || (e = ext2fs_lookup(f->fs, dir, base, (int)strlen(base), NULL, ino)))
            return e2err(f, e, "making a directory", err);
        return SI_OK;
    }
    const char *target = archive_entry_symlink(ae);
    if (!target || !target[0] || strlen(target) >= f->fs->blocksize)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: bad symlink target", f->file, f->member);
    if ((e = ext2fs_symlink(f->fs, dir, 0, base, target)) == EXT2_ET_DIR_NO_SPACE &&
        (e = ext2fs_expand_dir(f->fs, dir)) == 0)
        e = ext2fs_symlink(f->fs, dir, 0, base, target);
    if (e || (e = ext2fs_lookup(f->fs, dir, base, (int)strlen(base), NULL, ino)))
        return e2err(f, e, "making a symlink", err);
    return SI_OK;
}

/* Any member but a hardlink: the inode, its data, metadata and xattrs. */
static si_result add_entry(struct filler *f, struct archive *a, struct archive_entry *ae,
                           ext2_ino_t dir, const char *base, si_err *err)
{
    mode_t type = archive_entry_filetype(ae);
    uint16_t mode;
    if (!ext2_mode_of(type, &mode))
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: %s: unknown file type", f->file,
                          f->member);
    ext2_ino_t ino = 0;
    si_result rc = clear_way(f, dir, base, type == AE_IFDIR, &ino, err);
    if (rc != SI_OK)
        return rc;
    if (type == AE_IFDIR || type == AE_IFLNK) {
        rc = make_dir_or_symlink(f, ae, dir, base, &ino, err);
    } else {
        uint32_t maj = 0, min = 0;
        if (type == AE_IFCHR || type == AE_IFBLK) {
            maj = (uint32_t)archive_entry_rdevmajor(ae);
            min = (uint32_t)archive_entry_rdevminor(ae);
        }
        rc = new_inode(f, dir, base, (uint16_t)(mode | (archive_entry_perm(ae) & 07777)),
                       ft_of(mode), maj, min, &ino, err);
        if (rc == SI_OK && type == AE_IFREG)
            rc = write_data(f, read_archive, a, ino, archive_entry_size(ae), err);
    }
    if (rc != SI_OK || (rc = set_meta(f, ino, ae, err)) != SI_OK ||
        (rc = set_xattrs(f, ino, ae, err)) != SI_OK)
        return rc;
    f->st.members++;
    return SI_OK;
}

static si_result do_member(struct filler *f, struct archive *a, struct archive_entry *ae, si_err *err)
{
    const char *name = archive_entry_pathname(ae);
    char rel[4096];
    si_result rc = member_name_ok(f->file, name, rel, sizeof(rel), err);
    if (rc != SI_OK)
        return rc;
    f->member = name;
    const char *hardlink = archive_entry_hardlink(ae);
    if (rel[0] == '\0') { /* system/ itself: the root's metadata */
        if (archive_entry_filetype(ae) != AE_IFDIR || hardlink)
            return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: system/ is not a directory", f->file);
        f->st.members++;
        return set_meta(f, EXT2_ROOT_INO, ae, err);
    }
    ext2_ino_t dir = 0;
    const char *base = NULL;
    if ((rc = walk_parents(f, rel, &dir, &base, err)) != SI_OK)
        return rc;
    if (strlen(base) > EXT2_NAME_LEN)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: name longer than %d bytes", f->file, name,
                          EXT2_NAME_LEN);
    if (hardlink)
        return add_hardlink(f, dir, base, name, hardlink, err);
    return add_entry(f, a, ae, dir, base, err);
}

static si_result fill_one(struct filler *f, const char *path, si_err *err)
{
    struct archive *a = si_tar_reader_new();
    if (!a)
        return si_err_set(err, SI_ERR_NOMEM, "%s: cannot make a tar reader", path);
    f->file = path;
    f->member = NULL;
    si_result rc = SI_OK;
    if (archive_read_open_filename(a, path, BUF_SIZE) != ARCHIVE_OK) {
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", path, archive_error_string(a));
        goto out;
    }
    for (bool first = true;;) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", path, archive_error_string(a));
            break;
        }
        if (skip_first_manifest(first, ae)) {
            first = false;
            continue;
        }
        first = false;
        if ((rc = do_member(f, a, ae, err)) != SI_OK)
            break;
    }
out:
    archive_read_free(a);
    return rc;
}

static si_result fs_open(struct filler *f, const char *fs_path, int64_t dir_time, si_err *err)
{
    initialize_ext2_error_table();
    memset(f, 0, sizeof(*f));
    f->dir_time = dir_time;
    f->file = fs_path;
    f->buf = malloc(BUF_SIZE);
    if (!f->buf)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    errcode_t e = ext2fs_open2(fs_path, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager,
                               &f->fs);
    if (e) {
        free(f->buf);
        return si_err_set(err, SI_ERR_PARTITION, "%s: not an ext4 filesystem: %s", fs_path,
                          error_message(e));
    }
    f->fs->now = (time_t)dir_time;
    if ((e = ext2fs_read_bitmaps(f->fs))) {
        si_result rc = e2err(f, e, "reading the bitmaps", err);
        ext2fs_free(f->fs);
        free(f->buf);
        return rc;
    }
    return SI_OK;
}

/* Write and close on success, drop on failure. */
static si_result fs_close(struct filler *f, const char *fs_path, si_result rc, si_ext4tar_stats *stats,
                          si_err *err)
{
    if (rc == SI_OK) {
        f->fs->super->s_mtime = f->fs->super->s_wtime = (uint32_t)f->dir_time;
        f->st.free_bytes = ext2fs_free_blocks_count(f->fs->super) * (uint64_t)f->fs->blocksize;
        f->member = NULL;
        f->file = fs_path;
        errcode_t e = ext2fs_close_free(&f->fs);
        if (e)
            rc = e2err(f, e, "writing the filesystem", err);
    } else {
        ext2fs_free(f->fs);
    }
    free(f->buf);
    if (rc == SI_OK && stats)
        *stats = f->st;
    return rc;
}

si_result si_ext4_add_files(const char *fs_path, const char *const *names, const char *const *srcs,
                            size_t n, int64_t mtime, si_ext4tar_stats *stats, si_err *err)
{
    struct filler f;
    si_result rc = fs_open(&f, fs_path, mtime, err);
    if (rc != SI_OK)
        return rc;
    for (size_t i = 0; rc == SI_OK && i < n; i++) {
        char full[4096], rel[4096];
        f.member = srcs[i];
        if (snprintf(full, sizeof(full), "%s%s", PREFIX, names[i]) >= (int)sizeof(full) ||
            !rel_path(full, rel, sizeof(rel)) || !rel[0]) {
            rc = si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: '%s' is not a path inside it", fs_path, names[i]);
            break;
        }
        int fd = open(srcs[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            rc = si_err_set(err, fd < 0 && errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO,
                            "%s: %s", srcs[i], fd < 0 ? strerror(errno) : "not a regular file");
            if (fd >= 0)
                close(fd);
            break;
        }
        ext2_ino_t dir = 0, ino = 0, kept = 0;
        const char *base = NULL;
        if ((rc = walk_parents(&f, rel, &dir, &base, err)) == SI_OK &&
            (rc = clear_way(&f, dir, base, 0, &kept, err)) == SI_OK &&
            (rc = new_inode(&f, dir, base, LINUX_S_IFREG | 0644, EXT2_FT_REG_FILE, 0, 0, &ino, err)) ==
                SI_OK)
            rc = write_data(&f, read_fd, &fd, ino, (int64_t)st.st_size, err);
        close(fd);
        if (rc == SI_OK)
            f.st.members++;
    }
    return fs_close(&f, fs_path, rc, stats, err);
}

si_result si_ext4_from_tarballs(const char *fs_path, const char *const *tarballs, size_t n,
                                int64_t dir_time, si_ext4tar_stats *stats, si_err *err)
{
    struct filler f;
    si_result rc = fs_open(&f, fs_path, dir_time, err);
    if (rc != SI_OK)
        return rc;
    for (size_t i = 0; rc == SI_OK && i < n; i++)
        rc = fill_one(&f, tarballs[i], err);
    return fs_close(&f, fs_path, rc, stats, err);
}

si_result si_ext4tar_scan(const char *const *tarballs, size_t n, int64_t *newest_mtime,
                          uint64_t *data_bytes, uint64_t *members, si_err *err)
{
    int64_t newest = 0;
    uint64_t bytes = 0, count = 0;
    si_result rc = SI_OK;
    for (size_t i = 0; rc == SI_OK && i < n; i++) {
        struct archive *a = si_tar_reader_new();
        if (!a)
            return si_err_set(err, SI_ERR_NOMEM, "%s: cannot make a tar reader", tarballs[i]);
        if (archive_read_open_filename(a, tarballs[i], BUF_SIZE) != ARCHIVE_OK)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", tarballs[i], archive_error_string(a));
        for (bool first = true; rc == SI_OK; first = false) {
            struct archive_entry *ae;
            int r = archive_read_next_header(a, &ae);
            if (r == ARCHIVE_EOF)
                break;
            if (r != ARCHIVE_OK) {
                rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", tarballs[i], archive_error_string(a));
                break;
            }
            char rel[4096];
            if (skip_first_manifest(first, ae))
                continue;
            rc = member_name_ok(tarballs[i], archive_entry_pathname(ae), rel, sizeof(rel), err);
            if (rc != SI_OK)
                break;
            if ((int64_t)archive_entry_mtime(ae) > newest)
                newest = (int64_t)archive_entry_mtime(ae);
            if (archive_entry_filetype(ae) == AE_IFREG && !archive_entry_hardlink(ae))
                bytes += (uint64_t)archive_entry_size(ae);
            count++;
            if (archive_read_data_skip(a) != ARCHIVE_OK) {
                rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", tarballs[i], archive_error_string(a));
                break;
            }
        }
        archive_read_free(a);
    }
    if (rc == SI_OK) {
        if (newest_mtime)
            *newest_mtime = newest;
        if (data_bytes)
            *data_bytes = bytes;
        if (members)
            *members = count;
    }
    return rc;
}
