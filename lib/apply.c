/* apply.c - stream update tarballs (DESIGN §5) into a target directory.
 *
 * Every path is resolved relative to a file descriptor of the target,
 * component by component with O_NOFOLLOW: no member is ever written through
 * a symlink, and member names with empty, "." or ".." components are refused,
 * so nothing outside the target can be reached. Files, symlinks, device
 * nodes and hardlinks are created under a temporary name in their final
 * directory and renamed into place; directories are created or updated in
 * place. In the first file of a fresh target (opts.fresh, opts.format) they
 * are created at their final names instead (O_EXCL: nothing is replaced;
 * a name already there takes the temporary way) and a member that fails is
 * removed. The whole target is synced once at the end (syncfs). */
#include "apply.h"
#include "fsutil.h"
#include "layout.h"
#include "manifest.h"
#include "seal.h"
#include "patch.h"
#include "sha256.h"
#include "tarformat.h"
#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TMP_NAME ".sysimage-tmp"
#define READ_CHUNK (128 * 1024)
#define PREFIX "system/"
#define PREFIX_LEN 7
#define PATCH_PREFIX SI_LAYOUT_PATCH_PREFIX
#define PATCH_PREFIX_LEN 6
/* free space kept beyond a patched file's size (extent blocks, directory) */
#define PATCH_SPACE_MARGIN (4u << 20)
#define XATTR_LIST_MAX_BYTES 65536
#define REMOVED_LINE_MAX (PATH_MAX + PREFIX_LEN + 2)
#define LIST_MAX_BYTES (64 << 20)

struct dirtime {
    char *path;
    struct timespec mtime;
};

/* One line of a delta's `patched` member and what the target holds there. */
struct patchent {
    char *rel;
    uint8_t old_sha[32], new_sha[32];
    bool is_new;              /* already the result (re-apply after a power cut) */
    dev_t dev;                /* the file checked, to trust the check later */
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct applier {
    const si_apply_opts *o;
    int root;                 /* O_PATH fd of the target */
    char cpath[PATH_MAX];     /* cached parent directory (relative) */
    int cfd;                  /* its O_PATH fd, or -1 */
    struct dirtime *dt;       /* directory mtimes, set after each tarball */
    size_t ndt, capdt;
    uint64_t done, total;
    const char *file;         /* tarball being applied */
    int in;                   /* its fd */
    unsigned char *zbuf;      /* zeros for partition holes */
    struct patchent *pe;      /* the current tarball's `patched` list, sorted */
    size_t npe;
    si_patch_dec *dec;
    const si_apply_expect *ex;  /* the current file's, or NULL */
    si_unpack *un;            /* the thread reading, hashing, decompressing it */
    uint64_t done_before;     /* input bytes of the files before it */
    const si_manifest *mf;    /* members checked against it, or NULL */
    si_manifest *own_mf;      /* parsed from the file itself (no ex) */
    size_t mi;                /* next member's line */
    size_t fidx;              /* index of the current file */
    int64_t wend;             /* end of the data write_member_data wrote */
    si_sha256 mh;             /* the current member's data (with mf) */
    bool direct;              /* create members at their final names (fresh target) */
};

static si_result map_errno(int e)
{
    return e == ENOSPC || e == EDQUOT ? SI_ERR_NO_SPACE : SI_ERR_APPLY;
}

/* ------------------------------------------------------------ removal */

/* Remove dfd/name and everything below it, never following symlinks.
 * Missing is fine. Returns 0 or -errno. */
static int remove_tree_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = remove_tree_at(fd, de->d_name);
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

si_result si_empty_dir(const char *dir, si_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", dir, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    si_result rc = SI_OK;
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int r = remove_tree_at(fd, de->d_name);
        if (r < 0) {
            rc = si_err_set(err, SI_ERR_IO, "%s/%s: cannot remove: %s", dir, de->d_name,
                            strerror(-r));
            break;
        }
    }
    if (rc == SI_OK && errno)
        rc = si_err_set(err, SI_ERR_IO, "%s: readdir: %s", dir, strerror(errno));
    closedir(d);
    return rc;
}

/* ------------------------------------------------------------ paths */

/* Member name -> path relative to the target (lib/layout). */
static int system_rel(const char *name, char *rel, size_t relsz)
{
    return si_layout_system_rel(name, rel, relsz) ? 0 : -1;
}

static void cache_drop(struct applier *ap)
{
    if (ap->cfd >= 0)
        close(ap->cfd);
    ap->cfd = -1;
    ap->cpath[0] = '\0';
}

/* Open the directory that holds rel (relative to the target) without
 * following any symlink; create missing directories (0755, root) when
 * create is set. *pfd is borrowed (the root or the cache), *base points into
 * rel. Returns SI_OK, SI_ERR_NOT_FOUND (missing and !create), or an error. */
static si_result open_parent(struct applier *ap, const char *member, const char *rel, bool create,
                             int *pfd, const char **base, si_err *err)
{
    const char *slash = strrchr(rel, '/');
    if (!slash) {
        *pfd = ap->root;
        *base = rel;
        return SI_OK;
    }
    size_t dlen = (size_t)(slash - rel);
    *base = slash + 1;
    if (ap->cfd >= 0 && strlen(ap->cpath) == dlen && memcmp(ap->cpath, rel, dlen) == 0) {
        *pfd = ap->cfd;
        return SI_OK;
    }
    char dir[PATH_MAX];
    memcpy(dir, rel, dlen);
    dir[dlen] = '\0';
    int cur = ap->root;
    char *save = NULL;
    for (char *comp = strtok_r(dir, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                if (cur != ap->root)
                    close(cur);
                return si_err_set(err, map_errno(e), "%s: mkdir %s: %s", member, comp,
                                  strerror(e));
            }
            fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = errno;
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))) {
            close(fd);
            fd = -1;
            e = ENOTDIR;
        }
        if (fd < 0) {
            struct stat lst;
            bool is_link = fstatat(cur, comp, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
            if (cur != ap->root)
                close(cur);
            if (is_link)
                return si_err_set(err, SI_ERR_UNSAFE_PATH,
                                  "%s: refusing to write through the symlink %s", member, comp);
            if (e == ENOENT && !create)
                return SI_ERR_NOT_FOUND;
            return si_err_set(err, SI_ERR_APPLY, "%s: parent %s: %s", member, comp, strerror(e));
        }
        if (cur != ap->root)
            close(cur);
        cur = fd;
    }
    cache_drop(ap);
    memcpy(ap->cpath, rel, dlen);
    ap->cpath[dlen] = '\0';
    ap->cfd = cur;
    *pfd = cur;
    return SI_OK;
}

/* ------------------------------------------------------------ manifest */

/* The member (header, and data_sha for a regular file) against the next
 * line of the manifest, when there is one. */
static si_result member_check(struct applier *ap, struct archive_entry *ae,
                              const uint8_t *data_sha, si_err *err)
{
    if (!ap->mf)
        return SI_OK;
    char line[SI_MANIFEST_LINE_MAX];
    si_result rc = si_manifest_line(ae, data_sha, line, sizeof(line), err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", ap->file);
    return si_manifest_check(ap->mf, ap->mi++, line, ap->file, err);
}

static si_result hash_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    (void)err;
    si_sha256_update(ctx, buf, len);
    return SI_OK;
}

/* A member whose data is not used (already applied): read and hashed for its check. */
static si_result member_check_drain(struct applier *ap, struct archive *a,
                                    struct archive_entry *ae, si_err *err)
{
    if (!ap->mf)
        return SI_OK;
    si_sha256 h;
    uint8_t d[32];
    si_sha256_init(&h);
    si_result rc = si_tar_member_data(a, archive_entry_size(ae), archive_entry_pathname(ae),
                                      hash_piece, &h, err);
    si_sha256_final(&h, d);
    return rc == SI_OK ? member_check(ap, ae, d, err) : rc;
}

static void member_hash_zeros(struct applier *ap, int64_t n)
{
    while (ap->mf && n > 0) {
        size_t z = n < READ_CHUNK ? (size_t)n : READ_CHUNK;
        si_sha256_update(&ap->mh, ap->zbuf, z);
        n -= (int64_t)z;
    }
}

/* rename tmp over base; a directory in the way is removed first. */
static si_result replace(struct applier *ap, int pfd, const char *base, const char *member,
                         si_err *err)
{
    if (renameat(pfd, TMP_NAME, pfd, base) == 0)
        return SI_OK;
    if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
        int r = remove_tree_at(pfd, base);
        cache_drop(ap);
        if (r < 0)
            return si_err_set(err, SI_ERR_APPLY, "%s: cannot remove the old entry: %s", member,
                              strerror(-r));
        if (renameat(pfd, TMP_NAME, pfd, base) == 0)
            return SI_OK;
    }
    int e = errno;
    unlinkat(pfd, TMP_NAME, 0);
    return si_err_set(err, map_errno(e), "%s: rename: %s", member, strerror(e));
}

/* Clear a leftover temporary entry (power cut). */
static si_result clear_tmp(struct applier *ap, int pfd, const char *member, si_err *err)
{
    int r = remove_tree_at(pfd, TMP_NAME);
    if (r < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: cannot remove a stale %s: %s", member, TMP_NAME,
                          strerror(-r));
    (void)ap;
    return SI_OK;
}

/* ------------------------------------------------------------ metadata */

/* Make the xattrs of an object exactly those of ae. fd >= 0 uses f*xattr,
 * else path with l*xattr. */
static si_result sync_xattrs(struct archive_entry *ae, int fd, const char *path,
                             const char *member, si_err *err)
{
    char list[XATTR_LIST_MAX_BYTES];
    ssize_t n = fd >= 0 ? flistxattr(fd, list, sizeof(list)) : llistxattr(path, list, sizeof(list));
    if (n < 0 && errno != ENOTSUP)
        return si_err_set(err, SI_ERR_APPLY, "%s: listxattr: %s", member, strerror(errno));
    for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
        bool keep = false;
        const char *name;
        const void *val;
        size_t len;
        archive_entry_xattr_reset(ae);
        while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK)
            if (strcmp(name, p) == 0)
                keep = true;
        if (keep)
            continue;
        int r = fd >= 0 ? fremovexattr(fd, p) : lremovexattr(path, p);
        if (r < 0 && errno != ENODATA)
            return si_err_set(err, SI_ERR_APPLY, "%s: removexattr %s: %s", member, p,
                              strerror(errno));
    }
    const char *name;
    const void *val;
    size_t len;
    archive_entry_xattr_reset(ae);
    while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK) {
        if (!name || !*name)
            return si_err_set(err, SI_ERR_PARSE, "%s: xattr without a name", member);
        int r = fd >= 0 ? fsetxattr(fd, name, val, len, 0) : lsetxattr(path, name, val, len, 0);
        if (r < 0)
            return si_err_set(err, map_errno(errno), "%s: setxattr %s: %s", member, name,
                              strerror(errno));
    }
    return SI_OK;
}

static si_result entry_owner(struct archive_entry *ae, const char *member, uid_t *uid, gid_t *gid,
                             si_err *err)
{
    la_int64_t u = archive_entry_uid(ae), g = archive_entry_gid(ae);
    if (u < 0 || u >= (la_int64_t)UINT32_MAX || g < 0 || g >= (la_int64_t)UINT32_MAX)
        return si_err_set(err, SI_ERR_PARSE, "%s: owner %lld:%lld out of range", member,
                          (long long)u, (long long)g);
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return SI_OK;
}

static struct timespec entry_mtime(struct archive_entry *ae)
{
    struct timespec t = {.tv_sec = archive_entry_mtime(ae), .tv_nsec = archive_entry_mtime_nsec(ae)};
    if (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)
        t.tv_nsec = 0;
    return t;
}

/* chown, chmod, xattrs, mtime of dfd/name via a path through /proc (for
 * objects that cannot be opened: symlinks, device nodes, fifos). */
static si_result meta_at(struct archive_entry *ae, int pfd, const char *name, bool is_link,
                         const char *member, si_err *err)
{
    uid_t uid;
    gid_t gid;
    si_result rc = entry_owner(ae, member, &uid, &gid, err);
    if (rc != SI_OK)
        return rc;
    if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: chown: %s", member, strerror(errno));
    if (!is_link && fchmodat(pfd, name, archive_entry_perm(ae) & 07777, 0) < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: chmod: %s", member, strerror(errno));
    char path[64 + NAME_MAX];
    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", pfd, name);
    rc = sync_xattrs(ae, -1, path, member, err);
    if (rc != SI_OK)
        return rc;
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, entry_mtime(ae)};
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: utimensat: %s", member, strerror(errno));
    return SI_OK;
}

static si_result meta_fd(struct archive_entry *ae, int fd, bool set_mtime, const char *member,
                         si_err *err)
{
    uid_t uid;
    gid_t gid;
    si_result rc = entry_owner(ae, member, &uid, &gid, err);
    if (rc != SI_OK)
        return rc;
    if (fchown(fd, uid, gid) < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: chown: %s", member, strerror(errno));
    if (fchmod(fd, archive_entry_perm(ae) & 07777) < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: chmod: %s", member, strerror(errno));
    rc = sync_xattrs(ae, fd, NULL, member, err);
    if (rc != SI_OK)
        return rc;
    if (set_mtime) {
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, entry_mtime(ae)};
        if (futimens(fd, ts) < 0)
            return si_err_set(err, SI_ERR_APPLY, "%s: futimens: %s", member, strerror(errno));
    }
    return SI_OK;
}

/* ------------------------------------------------------------ data */

/* The member's next data block: SI_OK with *end set after the last one. */
static si_result next_data_block(struct applier *ap, struct archive *a, const char *member,
                                 const void **buf, size_t *len, la_int64_t *off, bool *end,
                                 si_err *err)
{
    int r = archive_read_data_block(a, buf, len, off);
    *end = r == ARCHIVE_EOF;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN && r != ARCHIVE_EOF)
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: %s", ap->file, member,
                          archive_error_string(a));
    return SI_OK;
}

/* Copy the member's data to fd at its offsets. Holes stay holes unless
 * fill_holes (raw partitions, whose old bytes must be overwritten). */
static si_result write_member_data(struct applier *ap, struct archive *a, int fd, int64_t size,
                                   bool fill_holes, const char *member, si_err *err)
{
    int64_t pos = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        bool end;
        si_result rc = next_data_block(ap, a, member, &buf, &len, &off, &end, err);
        if (rc != SI_OK)
            return rc;
        if (end)
            break;
        if (off < pos || off > size || (int64_t)len > size - off)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s: data outside the member", ap->file,
                              member);
        member_hash_zeros(ap, off - pos);
        if (ap->mf)
            si_sha256_update(&ap->mh, buf, len);
        while (fill_holes && pos < off) {
            size_t z = (size_t)(off - pos) < READ_CHUNK ? (size_t)(off - pos) : READ_CHUNK;
            ssize_t w = pwrite(fd, ap->zbuf, z, pos);
            if (w <= 0)
                return si_err_set(err, map_errno(errno), "%s: write: %s", member,
                                  w < 0 ? strerror(errno) : "short write");
            pos += w;
        }
        const char *p = buf;
        while (len) {
            ssize_t w = pwrite(fd, p, len, off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return si_err_set(err, map_errno(errno), "%s: write: %s", member,
                                  w < 0 ? strerror(errno) : "short write");
            p += w;
            off += w;
            len -= (size_t)w;
        }
        if (off > pos)
            pos = off;
    }
    member_hash_zeros(ap, size - pos);
    ap->wend = pos;
    while (fill_holes && pos < size) {
        size_t z = (size_t)(size - pos) < READ_CHUNK ? (size_t)(size - pos) : READ_CHUNK;
        ssize_t w = pwrite(fd, ap->zbuf, z, pos);
        if (w <= 0)
            return si_err_set(err, map_errno(errno), "%s: write: %s", member,
                              w < 0 ? strerror(errno) : "short write");
        pos += w;
    }
    return SI_OK;
}

/* ------------------------------------------------------------ members */

/* Close fd (the file written in pfd as name) and, when rc is SI_OK, rename
 * it over base (name is TMP_NAME) or leave it (name is base: created there);
 * else remove it. */
static si_result finish_file_at(struct applier *ap, int fd, int pfd, const char *name,
                                const char *base, const char *member, si_result rc, si_err *err)
{
    if (close(fd) < 0 && rc == SI_OK)
        rc = si_err_set(err, map_errno(errno), "%s: close: %s", member, strerror(errno));
    if (rc != SI_OK) {
        unlinkat(pfd, name, 0);
        return rc;
    }
    return name == base ? SI_OK : replace(ap, pfd, base, member, err);
}

static si_result finish_tmp(struct applier *ap, int fd, int pfd, const char *base,
                            const char *member, si_result rc, si_err *err)
{
    return finish_file_at(ap, fd, pfd, TMP_NAME, base, member, rc, err);
}

/* Open a new regular file for a member: at base on a fresh target (*name =
 * base), else (or when base exists) at TMP_NAME (*name = TMP_NAME). */
static si_result create_file(struct applier *ap, int pfd, const char *base, const char *member,
                             int *fd, const char **name, si_err *err)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    *name = base;
    if (ap->direct && (*fd = openat(pfd, base, flags, 0600)) >= 0)
        return SI_OK;
    if (ap->direct && errno != EEXIST)
        return si_err_set(err, map_errno(errno), "%s: create: %s", member, strerror(errno));
    *name = TMP_NAME;
    *fd = openat(pfd, TMP_NAME, flags, 0600);
    if (*fd < 0 && errno == EEXIST) { /* a stale one (power cut) */
        si_result rc = clear_tmp(ap, pfd, member, err);
        if (rc != SI_OK)
            return rc;
        *fd = openat(pfd, TMP_NAME, flags, 0600);
    }
    if (*fd < 0)
        return si_err_set(err, map_errno(errno), "%s: create: %s", member, strerror(errno));
    return SI_OK;
}

static si_result apply_regular(struct applier *ap, struct archive *a, struct archive_entry *ae,
                               int pfd, const char *base, const char *member, si_err *err)
{
    int fd;
    const char *name;
    si_result rc = create_file(ap, pfd, base, member, &fd, &name, err);
    if (rc != SI_OK)
        return rc;
    int64_t size = archive_entry_size(ae);
    if (size < 0)
        size = 0;
    si_sha256_init(&ap->mh);
    rc = write_member_data(ap, a, fd, size, false, member, err);
    uint8_t d[32];
    si_sha256_final(&ap->mh, d);
    /* the file is new: only a trailing hole needs the size set */
    if (rc == SI_OK && ap->wend < size && ftruncate(fd, size) < 0)
        rc = si_err_set(err, map_errno(errno), "%s: truncate: %s", member, strerror(errno));
    if (rc == SI_OK)
        rc = meta_fd(ae, fd, true, member, err);
    return finish_file_at(ap, fd, pfd, name, base, member,
                          rc == SI_OK ? member_check(ap, ae, d, err) : rc, err);
}

static si_result add_dirtime(struct applier *ap, const char *rel, struct timespec t, si_err *err)
{
    if (ap->ndt == ap->capdt) {
        size_t cap = ap->capdt ? ap->capdt * 2 : 256;
        struct dirtime *dt = realloc(ap->dt, cap * sizeof(*dt));
        if (!dt)
            return si_err_set(err, SI_ERR_NOMEM, "out of memory (directory times)");
        ap->dt = dt;
        ap->capdt = cap;
    }
    if (!(ap->dt[ap->ndt].path = strdup(rel)))
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (directory times)");
    ap->dt[ap->ndt++].mtime = t;
    return SI_OK;
}

static si_result apply_dir(struct applier *ap, struct archive_entry *ae, int pfd,
                           const char *base, const char *rel, const char *member, si_err *err)
{
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
        if (unlinkat(pfd, base, 0) < 0)
            return si_err_set(err, SI_ERR_APPLY, "%s: unlink: %s", member, strerror(errno));
    }
    if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
        return si_err_set(err, map_errno(errno), "%s: mkdir: %s", member, strerror(errno));
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: open: %s", member, strerror(errno));
    si_result rc = meta_fd(ae, fd, false, member, err);
    close(fd);
    if (rc == SI_OK)
        rc = add_dirtime(ap, rel, entry_mtime(ae), err);
    return rc;
}

/* Create the symlink (is_link) or device node/fifo of ae as pfd/name. */
static int make_entry(struct archive_entry *ae, int pfd, const char *name, bool is_link)
{
    if (is_link)
        return symlinkat(archive_entry_symlink(ae), pfd, name);
    mode_t type = archive_entry_filetype(ae);
    return mknodat(pfd, name, type | 0600, type == AE_IFIFO ? 0 : archive_entry_rdev(ae));
}

/* A symlink or node (checked against the manifest already), with its
 * metadata: at base on a fresh target, else (or when base exists) under
 * TMP_NAME, renamed over base. */
static si_result place_entry(struct applier *ap, struct archive_entry *ae, int pfd,
                             const char *base, bool is_link, const char *member, si_err *err)
{
    const char *what = is_link ? "symlink" : "mknod";
    const char *name = base;
    si_result rc = SI_OK;
    if (!ap->direct || make_entry(ae, pfd, base, is_link) < 0) {
        if (ap->direct && errno != EEXIST)
            return si_err_set(err, map_errno(errno), "%s: %s: %s", member, what, strerror(errno));
        name = TMP_NAME;
        if ((rc = clear_tmp(ap, pfd, member, err)) != SI_OK)
            return rc;
        if (make_entry(ae, pfd, TMP_NAME, is_link) < 0)
            return si_err_set(err, map_errno(errno), "%s: %s: %s", member, what, strerror(errno));
    }
    rc = meta_at(ae, pfd, name, is_link, member, err);
    if (rc != SI_OK) {
        unlinkat(pfd, name, 0);
        return rc;
    }
    return name == base ? SI_OK : replace(ap, pfd, base, member, err);
}

/* A relative symlink target must not climb above the target's root. */
static bool symlink_escapes(const char *rel, const char *target)
{
    if (target[0] == '/')
        return false; /* resolved against the system's own root at run time */
    long depth = 0;
    for (const char *c = rel; *c; c++)
        depth += *c == '/';
    const char *c = target;
    while (*c) {
        const char *s = strchr(c, '/');
        size_t len = s ? (size_t)(s - c) : strlen(c);
        if (len == 2 && c[0] == '.' && c[1] == '.') {
            if (--depth < 0)
                return true;
        } else if (len && !(len == 1 && c[0] == '.')) {
            depth++;
        }
        if (!s)
            break;
        c = s + 1;
    }
    return false;
}

static si_result apply_symlink(struct applier *ap, struct archive_entry *ae, int pfd,
                               const char *base, const char *rel, const char *member, si_err *err)
{
    const char *target = archive_entry_symlink(ae);
    if (!target || !*target || strlen(target) >= PATH_MAX)
        return si_err_set(err, SI_ERR_PARSE, "%s: symlink without a valid target", member);
    if (symlink_escapes(rel, target))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: symlink to '%s' escapes the target",
                          member, target);
    return place_entry(ap, ae, pfd, base, true, member, err);
}

static si_result apply_hardlink(struct applier *ap, struct archive_entry *ae, const char *rel,
                                const char *member, si_err *err)
{
    const char *hl = archive_entry_hardlink(ae);
    char trel[PATH_MAX];
    if (system_rel(hl, trel, sizeof(trel)) < 0 || !trel[0])
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: hardlink to '%s' outside system/",
                          member, hl);
    /* resolve the link target first: its directory fd must stay valid */
    int tfd;
    const char *tbase;
    si_result rc = open_parent(ap, member, trel, false, &tfd, &tbase, err);
    if (rc == SI_ERR_NOT_FOUND)
        return si_err_set(err, SI_ERR_APPLY, "%s: hardlink target %s does not exist", member, hl);
    if (rc != SI_OK)
        return rc;
    int tdir = tfd == ap->root ? ap->root : dup(tfd);
    if (tdir < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: dup: %s", member, strerror(errno));
    struct stat tst, st;
    int pfd;
    const char *base;
    if (fstatat(tdir, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0)
        rc = si_err_set(err, SI_ERR_APPLY, "%s: hardlink target %s: %s", member, hl,
                        strerror(errno));
    else if (S_ISDIR(tst.st_mode))
        rc = si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: hardlink to the directory %s", member, hl);
    if (rc == SI_OK)
        rc = open_parent(ap, member, rel, true, &pfd, &base, err);
    if (rc == SI_OK && ap->direct && linkat(tdir, tbase, pfd, base, 0) == 0) {
        /* a fresh target: linked at its name */
    } else if (rc == SI_OK && ap->direct && errno != EEXIST) {
        rc = si_err_set(err, map_errno(errno), "%s: link to %s: %s", member, hl, strerror(errno));
    } else if (rc == SI_OK && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == tst.st_dev && st.st_ino == tst.st_ino) {
        /* already linked (re-apply) */
    } else if (rc == SI_OK) {
        rc = clear_tmp(ap, pfd, member, err);
        if (rc == SI_OK && linkat(tdir, tbase, pfd, TMP_NAME, 0) < 0)
            rc = si_err_set(err, map_errno(errno), "%s: link to %s: %s", member, hl,
                            strerror(errno));
        if (rc == SI_OK)
            rc = replace(ap, pfd, base, member, err);
    }
    if (tdir != ap->root)
        close(tdir);
    return rc;
}

static si_result apply_system_member(struct applier *ap, struct archive *a,
                                     struct archive_entry *ae, const char *member,
                                     const char *rel, si_err *err)
{
    mode_t type = archive_entry_filetype(ae);
    if (type != AE_IFREG || archive_entry_hardlink(ae)) {
        si_result rc = member_check(ap, ae, NULL, err);
        if (rc != SI_OK)
            return rc;
    }
    if (!rel[0]) {
        if (type != AE_IFDIR)
            return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: not a directory", ap->file,
                              member);
        return SI_OK; /* the target itself */
    }
    if (archive_entry_hardlink(ae))
        return apply_hardlink(ap, ae, rel, member, err);
    int pfd;
    const char *base;
    si_result rc = open_parent(ap, member, rel, true, &pfd, &base, err);
    if (rc != SI_OK)
        return rc;
    switch (type) {
    case AE_IFREG:
        return apply_regular(ap, a, ae, pfd, base, member, err);
    case AE_IFDIR:
        return apply_dir(ap, ae, pfd, base, rel, member, err);
    case AE_IFLNK:
        return apply_symlink(ap, ae, pfd, base, rel, member, err);
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        return place_entry(ap, ae, pfd, base, false, member, err);
    default:
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: %s: unsupported member type 0%o",
                          ap->file, member, (unsigned)type);
    }
}

/* One line of `removed`: delete that path (and what is below it). */
static si_result remove_one(struct applier *ap, const char *line, si_err *err)
{
    char rel[PATH_MAX];
    if (system_rel(line, rel, sizeof(rel)) < 0 || !rel[0])
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: removed: unsafe entry '%s'", ap->file,
                          line);
    int pfd;
    const char *base;
    si_err tmp = {0};
    si_result rc = open_parent(ap, line, rel, false, &pfd, &base, &tmp);
    if (rc == SI_ERR_NOT_FOUND || rc == SI_ERR_UNSAFE_PATH)
        return SI_OK; /* nothing there, or only reachable through a symlink */
    if (rc != SI_OK) {
        if (err)
            *err = tmp;
        return rc;
    }
    int r = remove_tree_at(pfd, base);
    cache_drop(ap);
    if (r < 0)
        return si_err_set(err, SI_ERR_APPLY, "%s: removed: %s: %s", ap->file, line, strerror(-r));
    return SI_OK;
}

struct listbuf {
    char *p;
    size_t len;
};

static si_result list_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    (void)err;
    struct listbuf *lb = ctx;
    memcpy(lb->p + lb->len, buf, len);
    lb->len += len;
    return SI_OK;
}

typedef si_result (*line_fn)(struct applier *ap, const char *line, si_err *err);

/* A list member (`removed`, `patched`): read whole (bounded), checked
 * against the manifest, then fn for each non-empty line, in order. */
static si_result apply_list(struct applier *ap, struct archive *a, struct archive_entry *ae,
                            const char *what, size_t linemax, line_fn fn, si_err *err)
{
    int64_t size = archive_entry_size(ae);
    if (size < 0 || size > LIST_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: %s: over %d bytes", ap->file, what,
                          LIST_MAX_BYTES);
    struct listbuf lb = {malloc((size_t)size + 1), 0};
    if (!lb.p)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (%s)", what);
    si_result rc = si_tar_member_data(a, size, what, list_piece, &lb, err);
    if (rc != SI_OK)
        si_err_prefix(err, "%s", ap->file);
    uint8_t d[32];
    si_sha256_buf(lb.p, lb.len, d);
    if (rc == SI_OK)
        rc = member_check(ap, ae, d, err);
    if (rc == SI_OK && memchr(lb.p, '\0', lb.len))
        rc = si_err_set(err, SI_ERR_PARSE, "%s: %s: NUL byte in a line", ap->file, what);
    lb.p[lb.len] = '\n';
    for (char *l = lb.p, *end = lb.p + lb.len; rc == SI_OK && l < end;) {
        char *nl = memchr(l, '\n', (size_t)(end - l) + 1);
        *nl = '\0';
        if ((size_t)(nl - l) > linemax)
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s: line too long", ap->file, what);
        else if (nl > l)
            rc = fn(ap, l, err);
        l = nl + 1;
    }
    free(lb.p);
    return rc;
}

/* member is partitions/<label>.img, label checked by si_layout_check_member_name. */
static si_result apply_partition(struct applier *ap, struct archive *a, struct archive_entry *ae,
                                 const char *member, const char *label, si_err *err)
{
    if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: must be a regular file", ap->file,
                          member);
    const char *path = NULL;
    for (size_t i = 0; i < ap->o->npartitions; i++)
        if (ap->o->partitions[i].name && strcmp(ap->o->partitions[i].name, label) == 0)
            path = ap->o->partitions[i].path;
    if (!path)
        return si_err_set(err, SI_ERR_PARTITION, "%s: %s: no partition mapped for '%s'",
                          ap->file, member, label);
    int64_t size = archive_entry_size(ae);
    if (size < 0)
        size = 0;
    unsigned long long cap = 0;
    if (si_block_device_size(path, &cap) == 1 && (uint64_t)size > cap)
        return si_err_set(err, SI_ERR_NO_SPACE, "%s: %s: %" PRId64 " bytes, partition '%s' (%s) "
                          "holds %llu", ap->file, member, size, label, path, cap);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: %s: %s", member, path, strerror(errno));
    si_sha256_init(&ap->mh);
    si_result rc = write_member_data(ap, a, fd, size, true, member, err);
    uint8_t d[32];
    si_sha256_final(&ap->mh, d);
    /* raw: checked once written (the recovery verifies such files first) */
    if (rc == SI_OK)
        rc = member_check(ap, ae, d, err);
    struct stat st;
    if (rc == SI_OK && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, size) < 0)
        rc = si_err_set(err, map_errno(errno), "%s: %s: truncate: %s", member, path,
                        strerror(errno));
    if (rc == SI_OK && fsync(fd) < 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s: fsync: %s", member, path, strerror(errno));
    close(fd);
    return rc;
}

/* ------------------------------------------------------------ patches */

static int patchent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct patchent *)a)->rel, ((const struct patchent *)b)->rel);
}

static void patches_clear(struct applier *ap)
{
    for (size_t i = 0; i < ap->npe; i++)
        free(ap->pe[i].rel);
    free(ap->pe);
    ap->pe = NULL;
    ap->npe = 0;
}

/* Open system/<rel> of the target read-only, a regular file, no symlink
 * anywhere. */
static si_result open_installed(struct applier *ap, const char *member, const char *rel, int *fd,
                                struct stat *st, si_err *err)
{
    int pfd;
    const char *base;
    si_result rc = open_parent(ap, member, rel, false, &pfd, &base, err);
    if (rc == SI_ERR_NOT_FOUND)
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: %s: the file this delta patches is missing: the system was "
                          "modified, install a full image", ap->file, member);
    if (rc != SI_OK)
        return rc;
    *fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ELOOP)
            return si_err_set(err, SI_ERR_CHECKSUM,
                              "%s: %s: the file this delta patches is %s: the system was "
                              "modified, install a full image", ap->file, member,
                              e == ENOENT ? "missing" : "a symlink");
        return si_err_set(err, SI_ERR_APPLY, "%s: %s: open: %s", ap->file, member, strerror(e));
    }
    if (fstat(*fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: %s: the path this delta patches is not a regular file: the system "
                          "was modified, install a full image", ap->file, member);
    }
    return SI_OK;
}

/* Check one line of `patched`: the installed file must be the old content
 * (or already the new one: re-apply after a power cut). */
static si_result check_patched_line(struct applier *ap, const char *line, si_err *err)
{
    uint8_t o[32], n[32];
    const char *member;
    si_result rc = si_patch_list_line_parse(line, o, n, &member, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", ap->file);
    char rel[PATH_MAX];
    if (system_rel(member, rel, sizeof(rel)) < 0 || !rel[0])
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: patched: unsafe entry '%s'", ap->file,
                          member);
    int fd;
    struct stat st;
    rc = open_installed(ap, member, rel, &fd, &st, err);
    if (rc != SI_OK)
        return rc;
    uint8_t got[32];
    int r = si_sha256_fd(fd, got, NULL);
    close(fd);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s: read: %s", ap->file, member, strerror(-r));
    bool is_new = memcmp(got, n, 32) == 0;
    if (!is_new && memcmp(got, o, 32) != 0) {
        char hg[65], ho[65];
        si_hex_encode(got, 32, hg);
        si_hex_encode(o, 32, ho);
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: %s: the installed file (sha256 %.16s…) is not the one this delta "
                          "patches (%.16s…): the system was modified, install a full image",
                          ap->file, member, hg, ho);
    }
    if (ap->npe % 64 == 0) {
        struct patchent *pe = realloc(ap->pe, (ap->npe + 64) * sizeof(*pe));
        if (!pe)
            return si_err_set(err, SI_ERR_NOMEM, "out of memory (patched)");
        ap->pe = pe;
    }
    struct patchent *e = &ap->pe[ap->npe];
    if (!(e->rel = strdup(rel)))
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (patched)");
    memcpy(e->old_sha, o, 32);
    memcpy(e->new_sha, n, 32);
    e->is_new = is_new;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->size = st.st_size;
    e->mtime = st.st_mtim;
    ap->npe++;
    return SI_OK;
}

/* The `patched` member: every file the delta patches is checked before
 * anything is written. */
static si_result apply_patched_list(struct applier *ap, struct archive *a,
                                    struct archive_entry *ae, si_err *err)
{
    si_result rc = apply_list(ap, a, ae, SI_LAYOUT_PATCHED, REMOVED_LINE_MAX + 130,
                              check_patched_line, err);
    if (rc == SI_OK && ap->npe > 1) {
        qsort(ap->pe, ap->npe, sizeof(*ap->pe), patchent_cmp);
        for (size_t i = 0; i + 1 < ap->npe; i++)
            if (strcmp(ap->pe[i].rel, ap->pe[i + 1].rel) == 0)
                rc = si_err_set(err, SI_ERR_PARSE, "%s: patched: system/%s listed twice",
                                ap->file, ap->pe[i].rel);
    }
    return rc;
}

struct patch_maps {
    void *old, *out;
    size_t oldlen, outlen;
};

/* The patch header is known: map the installed file (its size checked) and
 * the result, sized after checking the free space. */
static si_result patch_target(struct applier *ap, int oldfd, int outfd, const char *member,
                              struct patch_maps *m, si_err *err)
{
    const si_patch_header *h = si_patch_dec_header(ap->dec);
    struct stat st;
    if (fstat(oldfd, &st) < 0 || (uint64_t)st.st_size != h->old_size)
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: %s: the installed file has not the size the patch needs",
                          ap->file, member);
    m->oldlen = (size_t)h->old_size;
    m->outlen = (size_t)h->new_size;
    if (m->oldlen &&
        (m->old = mmap(NULL, m->oldlen, PROT_READ, MAP_PRIVATE, oldfd, 0)) == MAP_FAILED) {
        m->old = NULL;
        return si_err_set(err, SI_ERR_APPLY, "%s: mmap of the installed file: %s", member,
                          strerror(errno));
    }
    /* A full disk must be an error here, not a SIGBUS while writing through
     * the mapping. No posix_fallocate: its unwritten extents are not flushed
     * by ext4 on the rename that replaces the old file (auto_da_alloc covers
     * delayed allocation only), so a power cut could leave the new name with
     * zeros; written through the page cache like every other member, the
     * data is ordered before the rename. */
    struct statvfs sv;
    if (fstatvfs(outfd, &sv) == 0 &&
        (uint64_t)sv.f_bavail * sv.f_frsize < (uint64_t)m->outlen + PATCH_SPACE_MARGIN)
        return si_err_set(err, SI_ERR_NO_SPACE, "%s: %zu bytes needed, %llu free", member,
                          m->outlen, (unsigned long long)sv.f_bavail * sv.f_frsize);
    if (ftruncate(outfd, (off_t)m->outlen) < 0)
        return si_err_set(err, map_errno(errno), "%s: truncate: %s", member, strerror(errno));
    if (m->outlen && (m->out = mmap(NULL, m->outlen, PROT_READ | PROT_WRITE, MAP_SHARED, outfd,
                                    0)) == MAP_FAILED) {
        m->out = NULL;
        return si_err_set(err, SI_ERR_APPLY, "%s: mmap of the new file: %s", member,
                          strerror(errno));
    }
    return SI_OK;
}

/* Decode the member's patch into fd (new_size bytes, mapped), with the
 * installed file mapped as the prefix. */
static si_result decode_patch(struct applier *ap, struct archive *a, int oldfd, int outfd,
                              const char *member, si_err *err)
{
    si_patch_dec *d = ap->dec;
    si_patch_dec_reset(d, member);
    uint8_t empty[1]; /* the output of an empty result (never written) */
    struct patch_maps m = {0};
    si_result rc = SI_OK;
    la_int64_t pos = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        bool end;
        rc = next_data_block(ap, a, member, &buf, &len, &off, &end, err);
        if (rc != SI_OK || end)
            break;
        if (off != pos) {
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s: a patch member cannot be sparse",
                            ap->file, member);
            break;
        }
        pos += (la_int64_t)len;
        if (ap->mf)
            si_sha256_update(&ap->mh, buf, len);
        const uint8_t *p = buf;
        while (rc == SI_OK && len) {
            size_t used;
            rc = si_patch_dec_feed(d, p, len, &used, err);
            p += used;
            len -= used;
            if (rc != SI_OK || si_patch_dec_state(d) != SI_PATCH_NEED_TARGET)
                continue;
            rc = patch_target(ap, oldfd, outfd, member, &m, err);
            if (rc != SI_OK)
                break;
            rc = si_patch_dec_set_target(d, m.old, m.out ? m.out : (void *)empty, err);
        }
        if (rc != SI_OK)
            break;
    }
    if (rc == SI_OK)
        rc = si_patch_dec_finish(d, err);
    if (m.out && munmap(m.out, m.outlen) < 0 && rc == SI_OK)
        rc = si_err_set(err, SI_ERR_APPLY, "%s: munmap: %s", member, strerror(errno));
    if (m.old)
        munmap(m.old, m.oldlen);
    return rc;
}

static struct patchent *find_patchent(struct applier *ap, const char *rel)
{
    struct patchent key = {.rel = (char *)rel};
    return ap->npe ? bsearch(&key, ap->pe, ap->npe, sizeof(*ap->pe), patchent_cmp) : NULL;
}

/* patch/<path>: rebuild system/<path> from the installed file and the
 * patch, under the temporary name; its sha256 is checked before the rename.
 * A file that already is the result only gets its metadata. */
/* A patch/ member's target: system/<path> (sysname, rel) listed in `patched`. */
static si_result patch_entry(struct applier *ap, struct archive_entry *ae, const char *member,
                             char *rel, char *sysname, size_t sysnamesz, struct patchent **e,
                             si_err *err)
{
    const char *p = member + PATCH_PREFIX_LEN;
    if (strlen(p) >= PATH_MAX)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%.64s…': path too long", ap->file,
                          member);
    snprintf(sysname, sysnamesz, PREFIX "%s", p);
    if (system_rel(sysname, rel, PATH_MAX) < 0 || !rel[0])
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s': unsafe path", ap->file,
                          member);
    if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: %s: must be a regular file", ap->file,
                          member);
    if (!(*e = find_patchent(ap, rel)))
        return si_err_set(err, SI_ERR_PARSE, "%s: %s: not listed in the delta's `patched` member",
                          ap->file, member);
    return SI_OK;
}

/* The installed file (open as oldfd) changed since `patched` was checked
 * (only a hostile delta does that): check its digest again. */
static si_result recheck_installed(struct applier *ap, struct patchent *e, int oldfd,
                                   const char *sysname, si_err *err)
{
    uint8_t got[32];
    int r = si_sha256_fd(oldfd, got, NULL);
    if (r < 0 || lseek(oldfd, 0, SEEK_SET) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: read: %s", sysname, strerror(r < 0 ? -r : errno));
    e->is_new = memcmp(got, e->new_sha, 32) == 0;
    if (!e->is_new && memcmp(got, e->old_sha, 32) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM,
                          "%s: %s: changed during the apply: not the file this delta patches",
                          ap->file, sysname);
    return SI_OK;
}

static si_result apply_patch_member(struct applier *ap, struct archive *a,
                                    struct archive_entry *ae, const char *member, si_err *err)
{
    char rel[PATH_MAX], sysname[PATH_MAX + PREFIX_LEN + 1];
    struct patchent *e;
    si_result rc = patch_entry(ap, ae, member, rel, sysname, sizeof(sysname), &e, err);
    if (rc != SI_OK)
        return rc;
    int oldfd;
    struct stat st;
    if ((rc = open_installed(ap, sysname, rel, &oldfd, &st, err)) != SI_OK)
        return rc;
    bool same = st.st_dev == e->dev && st.st_ino == e->ino && st.st_size == e->size &&
                st.st_mtim.tv_sec == e->mtime.tv_sec && st.st_mtim.tv_nsec == e->mtime.tv_nsec;
    if (!same && (rc = recheck_installed(ap, e, oldfd, sysname, err)) != SI_OK) {
        close(oldfd);
        return rc;
    }
    if (e->is_new) {
        /* re-apply after a power cut: the data is there, the metadata may not be */
        rc = member_check_drain(ap, a, ae, err);
        if (rc == SI_OK)
            rc = meta_fd(ae, oldfd, true, sysname, err);
        close(oldfd);
        return rc;
    }
    int pfd;
    const char *base;
    rc = open_parent(ap, sysname, rel, false, &pfd, &base, err);
    if (rc == SI_OK)
        rc = clear_tmp(ap, pfd, sysname, err);
    if (rc != SI_OK) {
        close(oldfd);
        return rc;
    }
    int fd = openat(pfd, TMP_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        close(oldfd);
        return si_err_set(err, map_errno(errno), "%s: create: %s", sysname, strerror(errno));
    }
    si_sha256_init(&ap->mh);
    rc = decode_patch(ap, a, oldfd, fd, member, err);
    uint8_t d[32];
    si_sha256_final(&ap->mh, d);
    close(oldfd);
    if (rc == SI_OK) {
        const si_patch_header *h = si_patch_dec_header(ap->dec);
        if (memcmp(h->old_sha256, e->old_sha, 32) != 0 || memcmp(h->new_sha256, e->new_sha, 32) != 0)
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s: digests differ from the `patched` list",
                            ap->file, member);
    }
    if (rc == SI_OK)
        rc = member_check(ap, ae, d, err);
    if (rc == SI_OK)
        rc = meta_fd(ae, fd, true, sysname, err);
    /* decode_patch does not touch the parent cache: pfd is still valid */
    rc = finish_tmp(ap, fd, pfd, base, sysname, rc, err);
    if (rc == SI_OK)
        e->is_new = true;
    return rc;
}

/* ------------------------------------------------------------ tarballs */

static la_ssize_t src_read(struct archive *a, void *cd, const void **buf)
{
    struct applier *ap = cd;
    size_t len;
    uint64_t in_done;
    si_err e = {0};
    if (si_unpack_next(ap->un, buf, &len, &in_done, &e) != SI_OK) {
        archive_set_error(a, EIO, "%s", e.msg);
        return -1;
    }
    ap->done = ap->done_before + in_done;
    if (ap->o->progress)
        ap->o->progress(ap->done, ap->total, ap->o->progress_ctx);
    return (la_ssize_t)len;
}

/* The end of a file read once: every manifest line met, the rest of the
 * stream read (after the tar end), the file's size and sha256 as the index
 * says. */
static si_result finish_file(struct applier *ap, si_err *err)
{
    if (ap->mf && ap->mi != ap->mf->n)
        return si_err_set(err, SI_ERR_PARSE, "%s: the tarball ends after %zu of the %zu members "
                          "its manifest lists", ap->file, ap->mi, ap->mf->n);
    const void *buf;
    size_t len;
    uint64_t in_done;
    si_result rc;
    do
        rc = si_unpack_next(ap->un, &buf, &len, &in_done, err);
    while (rc == SI_OK && len);
    uint8_t d[32];
    uint64_t size = 0;
    si_unpack *u = ap->un;
    ap->un = NULL;
    if (rc != SI_OK) {
        si_unpack_end(u, NULL, NULL, NULL);
        return rc;
    }
    if ((rc = si_unpack_end(u, d, &size, err)) != SI_OK || !ap->ex)
        return rc;
    if (size != ap->ex->size)
        return si_err_set(err, SI_ERR_SIZE, "%s: %" PRIu64 " bytes, the index says %" PRIu64,
                          ap->file, size, ap->ex->size);
    if (memcmp(d, ap->ex->sha256, 32) != 0) {
        char hex[65];
        si_hex_encode(d, 32, hex);
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: sha256 %.16s... differs from the index",
                          ap->file, hex);
    }
    return SI_OK;
}

/* The first member `manifest`: bound by the caller's index entry (its
 * manifest was checked and parsed there), else parsed from the file to check
 * the members' integrity. */
static si_result apply_manifest_member(struct applier *ap, struct archive *a,
                                       struct archive_entry *ae, si_err *err)
{
    int64_t size = archive_entry_size(ae);
    if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) || size < 0)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: 'manifest' is not a regular file",
                          ap->file);
    if (ap->mf)
        return SI_OK; /* the whole file's sha256 covers what follows */
    if (size > (int64_t)SI_MANIFEST_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: manifest over %u bytes", ap->file,
                          SI_MANIFEST_MAX_BYTES);
    struct listbuf lb = {malloc((size_t)size + 1), 0};
    if (!lb.p)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (manifest)");
    si_result rc = si_tar_member_data(a, size, SI_MANIFEST_MEMBER, list_piece, &lb, err);
    if (rc == SI_OK)
        rc = si_manifest_parse(lb.p, lb.len, &ap->own_mf, err);
    free(lb.p);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", ap->file);
    ap->mf = ap->own_mf;
    return SI_OK;
}

static si_result set_dirtimes(struct applier *ap, si_err *err)
{
    si_result rc = SI_OK;
    for (size_t i = 0; i < ap->ndt; i++) {
        if (rc == SI_OK) {
            int pfd;
            const char *base;
            si_err tmp = {0};
            si_result r = open_parent(ap, ap->dt[i].path, ap->dt[i].path, false, &pfd, &base, &tmp);
            if (r == SI_OK) {
                struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, ap->dt[i].mtime};
                if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
                    rc = si_err_set(err, SI_ERR_APPLY, "system/%s: utimensat: %s",
                                    ap->dt[i].path, strerror(errno));
            }
        }
        free(ap->dt[i].path);
    }
    ap->ndt = 0;
    return rc;
}

/* Where a member may come: `patched` first, `removed` first or after it. */
struct order {
    bool first, after_patched;
};

static si_result apply_list_member(struct applier *ap, struct archive *a,
                                   struct archive_entry *ae, const char *name,
                                   const struct order *o, si_err *err)
{
    bool patched = strcmp(name, SI_LAYOUT_PATCHED) == 0;
    if (patched ? !o->first : !o->first && !o->after_patched)
        return si_err_set(err, SI_ERR_PARSE, patched ? "%s: 'patched' must be the first member"
                          : "%s: 'removed' must be the first member (after 'patched')", ap->file);
    if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: '%s' is not a regular file", ap->file,
                          name);
    if (patched)
        return apply_patched_list(ap, a, ae, err);
    return apply_list(ap, a, ae, SI_LAYOUT_REMOVED, REMOVED_LINE_MAX, remove_one, err);
}

static si_result apply_member(struct applier *ap, struct archive *a, struct archive_entry *ae,
                              const char *name, const struct order *o, si_err *err)
{
    char rel[PATH_MAX];
    char label[SI_LAYOUT_LABEL_MAX + 1];
    si_member_kind kind;
    if (strcmp(name, SI_LAYOUT_PATCHED) == 0 || strcmp(name, SI_LAYOUT_REMOVED) == 0)
        return apply_list_member(ap, a, ae, name, o, err);
    si_result rc = si_layout_check_member_name(name, &kind, label, sizeof(label), err);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", ap->file);
    if (kind == SI_MEMBER_PARTITION)
        return apply_partition(ap, a, ae, name, label, err);
    if (kind == SI_MEMBER_PATCH) {
        if (!ap->dec && !(ap->dec = si_patch_dec_new()))
            return si_err_set(err, SI_ERR_NOMEM, "out of memory (patch decoder)");
        return apply_patch_member(ap, a, ae, name, err);
    }
    if (system_rel(name, rel, sizeof(rel)) == 0)
        return apply_system_member(ap, a, ae, name, rel, err);
    return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s': unsafe path below system/",
                      ap->file, name);
}

static si_result apply_members(struct applier *ap, struct archive *a, si_err *err)
{
    struct order o = {true, false};
    bool any = false;
    for (;;) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s", ap->file, archive_error_string(a));
        const char *name = archive_entry_pathname(ae);
        if (!name)
            return si_err_set(err, SI_ERR_PARSE, "%s: member without a name", ap->file);
        si_result rc;
        if (!any && strcmp(name, SI_MANIFEST_MEMBER) == 0) {
            rc = apply_manifest_member(ap, a, ae, err);
        } else if (!any && ap->mf) {
            rc = si_err_set(err, SI_ERR_CHECKSUM, "%s: the index lists a manifest, the file "
                            "has none as its first member", ap->file);
        } else {
            rc = apply_member(ap, a, ae, name, &o, err);
            o.after_patched = strcmp(name, SI_LAYOUT_PATCHED) == 0;
            o.first = false;
        }
        any = true;
        if (rc != SI_OK)
            return rc;
    }
    return finish_file(ap, err);
}

static si_result apply_one(struct applier *ap, const char *file, size_t fidx, si_err *err)
{
    ap->file = file;
    ap->fidx = fidx;
    ap->ex = ap->o->expect ? &ap->o->expect[fidx] : NULL;
    ap->mf = ap->ex ? ap->ex->manifest : NULL;
    ap->mi = 0;
    ap->direct = fidx == 0 && (ap->o->fresh || ap->o->format);
    ap->done_before = ap->done;
    ap->in = open(file, O_RDONLY | O_CLOEXEC);
    if (ap->in < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", file,
                          strerror(errno));
    struct archive *a = si_tar_reader_new();
    si_result rc = a ? si_unpack_start(ap->in, file, &ap->un, err)
                     : si_err_set(err, SI_ERR_NOMEM, "out of memory (archive reader)");
    if (rc == SI_OK && archive_read_open(a, ap, NULL, src_read, NULL) != ARCHIVE_OK)
        rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", file, archive_error_string(a));
    patches_clear(ap);
    if (rc == SI_OK)
        rc = apply_members(ap, a, err);
    patches_clear(ap);
    si_result r2 = set_dirtimes(ap, rc == SI_OK ? err : NULL);
    if (rc == SI_OK)
        rc = r2;
    if (a)
        archive_read_free(a);
    if (ap->un) /* stopped early */
        si_unpack_end(ap->un, NULL, NULL, NULL);
    ap->un = NULL;
    close(ap->in);
    ap->in = -1;
    ap->ex = NULL;
    ap->direct = false;
    si_manifest_free(ap->own_mf);
    ap->own_mf = NULL;
    ap->mf = NULL;
    return rc;
}

si_result si_apply_files(const si_apply_opts *opts, const char *const *files, size_t nfiles,
                         si_err *err)
{
    if (!opts || !opts->target_dir || (nfiles && !files))
        return si_err_set(err, SI_ERR_USAGE, "apply: a target directory is required");
    struct applier ap;
    memset(&ap, 0, sizeof(ap));
    ap.o = opts;
    ap.cfd = -1;
    ap.in = -1;
    for (size_t i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) < 0)
            return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s",
                              files[i], strerror(errno));
        ap.total += (uint64_t)st.st_size;
    }
    ap.root = open(opts->target_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ap.root < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s",
                          opts->target_dir, strerror(errno));
    si_result rc = SI_OK;
    ap.zbuf = calloc(1, READ_CHUNK);
    if (!ap.zbuf)
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory (apply buffers)");
    if (rc == SI_OK && opts->format)
        rc = si_empty_dir(opts->target_dir, err);
    for (size_t i = 0; i < nfiles && rc == SI_OK; i++)
        rc = apply_one(&ap, files[i], i, err);
    cache_drop(&ap);
    if (syncfs(ap.root) < 0 && rc == SI_OK)
        rc = si_err_set(err, SI_ERR_IO, "%s: syncfs: %s", opts->target_dir, strerror(errno));
    close(ap.root);
    free(ap.zbuf);
    free(ap.dt);
    si_patch_dec_free(ap.dec);
    return rc;
}
