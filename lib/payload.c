/* payload.c - build full and delta update tarballs (DESIGN §5).
 *
 * A source is an OS tree (directory) or a full tarball (members system/...).
 * Both are read into a manifest: one entry per path with its metadata (type,
 * mode, owner, size, mtime, device number, symlink target, xattrs, hardlink
 * group) but never file contents. Contents are compared by streaming: two
 * trees are compared byte by byte, a tarball's members are hashed (SHA-256)
 * while its manifest is read.
 *
 * Output order: tree sources are written in path order where '/' sorts before
 * every other byte (a depth-first walk with sorted children), so parents come
 * before children and a hardlink group's first path (its leader) before the
 * other members, which are written as hardlinks to it. Tarball sources keep
 * their member order. Owners are numeric only; atime/ctime are dropped. */
#include "payload.h"
#include "layout.h"
#include "manifest.h"
#include "seal.h"
#include "tarformat.h"

#include "patch.h"
#include "sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define IOBUF 65536
#define PREFIX "system/"
#define PREFIX_LEN 7
#define XATTR_LIST_MAX_BYTES 65536
#define XATTR_VALUE_MAX_BYTES 65536

struct xattr {
    char *name;
    void *value;
    size_t len;
};

struct ment {
    char *path;          /* relative to the tree root, no prefix, no trailing '/' */
    mode_t mode;         /* type and permission bits */
    uid_t uid;
    gid_t gid;
    int64_t size;        /* regular files */
    int64_t mtime;
    long mtime_nsec;
    dev_t rdev;
    char *link;          /* symlink target */
    char *hardlink;      /* tarball sources: path this member links to */
    struct xattr *xa;
    size_t nxa;
    uint64_t dev, ino;   /* tree sources */
    size_t leader;       /* index of the hardlink group's first path (self if none) */
    bool has_hash;
    bool ship;           /* delta: goes into the output */
    unsigned char hash[32];
    size_t root;         /* the path whose member/file carries the group's data */
    /* deltas */
    size_t old_idx;      /* new side: the same path in the old manifest, or SIZE_MAX */
    bool in_removed;     /* old side: listed in `removed` unless patched */
    bool need_data;      /* tarball side: data spooled for a patch */
    bool patch;          /* new side: shipped as patch/<path> */
    bool data_differs;   /* new side: regular file whose content is not the old one's */
    int64_t spool_off;   /* tarball side: offset of the spooled data */
    int64_t patch_off, patch_len;
    unsigned char old_sha[32], new_sha[32];
};

struct manifest {
    const char *src;     /* the path given by the caller */
    bool is_tree;
    int layout;          /* tarball sources: enum layout */
    struct ment *e;
    size_t n, cap;
};

struct spool;
static si_result emit_patch(struct archive *w, struct archive_entry *ae, const struct ment *m,
                            const struct spool *ps, const char *out, unsigned char *buf,
                            si_err *err);

static bool opts_no_patches(const si_build_opts *o)
{
    return o && o->whole_files;
}

/* ------------------------------------------------------------ helpers */

/* Path order: '/' sorts before any other byte, so that a directory's whole
 * subtree comes right after it (same order as a sorted depth-first walk). */
static int path_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (;; x++, y++) {
        unsigned cx = *x == '/' ? 1 : *x == 0 ? 0 : (unsigned)*x + 1;
        unsigned cy = *y == '/' ? 1 : *y == 0 ? 0 : (unsigned)*y + 1;
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (!cx)
            return 0;
    }
}

static int ment_cmp(const void *a, const void *b)
{
    return path_cmp(((const struct ment *)a)->path, ((const struct ment *)b)->path);
}

static int xattr_cmp(const void *a, const void *b)
{
    return strcmp(((const struct xattr *)a)->name, ((const struct xattr *)b)->name);
}

static void ment_free(struct ment *m)
{
    free(m->path);
    free(m->link);
    free(m->hardlink);
    for (size_t i = 0; i < m->nxa; i++) {
        free(m->xa[i].name);
        free(m->xa[i].value);
    }
    free(m->xa);
}

static void manifest_free(struct manifest *mf)
{
    for (size_t i = 0; i < mf->n; i++)
        ment_free(&mf->e[i]);
    free(mf->e);
    mf->e = NULL;
    mf->n = mf->cap = 0;
}

static struct ment *manifest_add(struct manifest *mf)
{
    if (mf->n == mf->cap) {
        size_t cap = mf->cap ? mf->cap * 2 : 1024;
        struct ment *e = realloc(mf->e, cap * sizeof(*e));
        if (!e)
            return NULL;
        mf->e = e;
        mf->cap = cap;
    }
    struct ment *m = &mf->e[mf->n++];
    memset(m, 0, sizeof(*m));
    return m;
}

static si_result nomem(si_err *err, const char *what)
{
    return si_err_set(err, SI_ERR_NOMEM, "out of memory (%s)", what);
}

/* A relative member path must be non-empty, without empty, "." or ".."
 * components. */
static bool name_ok(const char *n)
{
    for (const unsigned char *c = (const unsigned char *)n; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

/* n with control bytes as \xNN, for messages. */
static const char *printable(const char *n, char *out, size_t outsz)
{
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)n; *c && o + 5 < outsz; c++) {
        if (*c < 0x20 || *c == 0x7f)
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", *c);
        else
            out[o++] = (char)*c;
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------ hashing */

struct hasher {
    si_sha256 h;
};

static void hasher_init(struct hasher *h)
{
    si_sha256_init(&h->h);
}

static void hasher_update(struct hasher *h, const void *buf, size_t len)
{
    si_sha256_update(&h->h, buf, len);
}

static void hasher_final(struct hasher *h, unsigned char out[32])
{
    si_sha256_final(&h->h, out);
}

static const unsigned char zeros[IOBUF];

/* Up to IOBUF bytes of the open file `full` into buf (retrying EINTR):
 * SI_OK with *got the count, 0 at the end of the file. */
static si_result read_chunk(int fd, void *buf, const char *full, size_t *got, si_err *err)
{
    for (;;) {
        ssize_t r = read(fd, buf, IOBUF);
        if (r >= 0) {
            *got = (size_t)r;
            return SI_OK;
        }
        if (errno != EINTR)
            return si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
    }
}

static si_result hash_tree_file(const struct manifest *mf, struct ment *m, si_err *err)
{
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s/%s", mf->src, m->path);
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
    unsigned char *buf = malloc(IOBUF);
    if (!buf) {
        close(fd);
        return nomem(err, "read buffer");
    }
    struct hasher h;
    hasher_init(&h);
    int64_t total = 0;
    si_result rc = SI_OK;
    for (;;) {
        size_t r;
        rc = read_chunk(fd, buf, full, &r, err);
        if (rc != SI_OK || r == 0)
            break;
        hasher_update(&h, buf, r);
        total += (int64_t)r;
    }
    hasher_final(&h, m->hash);
    free(buf);
    close(fd);
    if (rc == SI_OK && total != m->size)
        rc = si_err_set(err, SI_ERR_IO, "%s: file changed while reading", full);
    if (rc == SI_OK)
        m->has_hash = true;
    return rc;
}

static si_result hash_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    (void)err;
    hasher_update(ctx, buf, len);
    return SI_OK;
}

/* Hash the current member's data, holes as zeros, up to size bytes. */
static si_result hash_archive_data(struct archive *a, struct ment *m, const char *name,
                                   si_err *err)
{
    struct hasher h;
    hasher_init(&h);
    si_result rc = si_tar_member_data(a, m->size, name, hash_piece, &h, err);
    hasher_final(&h, m->hash);
    m->has_hash = rc == SI_OK;
    return rc;
}

/* ------------------------------------------------------------ tree source */

static si_result read_xattrs_path(const char *full, struct ment *m, si_err *err)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n < 0) {
        if (errno == ENOTSUP)
            return SI_OK;
        return si_err_set(err, SI_ERR_IO, "%s: listxattr: %s", full, strerror(errno));
    }
    if (n == 0)
        return SI_OK;
    if (n > XATTR_LIST_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: xattr list too large", full);
    char *list = malloc((size_t)n);
    if (!list)
        return nomem(err, "xattr list");
    n = llistxattr(full, list, (size_t)n);
    if (n < 0) {
        free(list);
        return si_err_set(err, SI_ERR_IO, "%s: listxattr: %s", full, strerror(errno));
    }
    si_result rc = SI_OK;
    for (char *p = list; p < list + n; p += strlen(p) + 1) {
        ssize_t vl = lgetxattr(full, p, NULL, 0);
        if (vl < 0) {
            if (errno == ENODATA)
                continue;
            rc = si_err_set(err, SI_ERR_IO, "%s: getxattr %s: %s", full, p, strerror(errno));
            break;
        }
        if (vl > XATTR_VALUE_MAX_BYTES) {
            rc = si_err_set(err, SI_ERR_TOO_LARGE, "%s: xattr %s too large", full, p);
            break;
        }
        void *val = malloc(vl ? (size_t)vl : 1);
        struct xattr *xa = realloc(m->xa, (m->nxa + 1) * sizeof(*xa));
        char *name = strdup(p);
        if (!val || !xa || !name) {
            free(val);
            free(name);
            if (xa)
                m->xa = xa;
            rc = nomem(err, "xattr");
            break;
        }
        m->xa = xa;
        vl = lgetxattr(full, p, val, (size_t)vl);
        if (vl < 0) {
            free(val);
            free(name);
            rc = si_err_set(err, SI_ERR_IO, "%s: getxattr %s: %s", full, p, strerror(errno));
            break;
        }
        m->xa[m->nxa].name = name;
        m->xa[m->nxa].value = val;
        m->xa[m->nxa].len = (size_t)vl;
        m->nxa++;
    }
    free(list);
    if (rc == SI_OK && m->nxa > 1)
        qsort(m->xa, m->nxa, sizeof(*m->xa), xattr_cmp);
    return rc;
}

/* A tree entry's metadata from its lstat. */
static void ment_from_stat(struct ment *m, const struct stat *st)
{
    m->mode = st->st_mode;
    m->uid = st->st_uid;
    m->gid = st->st_gid;
    m->size = S_ISREG(st->st_mode) ? st->st_size : 0;
    m->mtime = st->st_mtim.tv_sec;
    m->mtime_nsec = st->st_mtim.tv_nsec;
    m->rdev = (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) ? st->st_rdev : 0;
    m->dev = st->st_dev;
    m->ino = (!S_ISDIR(st->st_mode) && st->st_nlink > 1) ? st->st_ino : 0;
}

/* A symlink's target into m->link (full: the path shown in errors). */
static si_result read_link_target(int dfd, const char *name, const char *full,
                                  struct ment *m, si_err *err)
{
    char target[PATH_MAX + 1];
    ssize_t tl = readlinkat(dfd, name, target, PATH_MAX);
    if (tl < 0)
        return si_err_set(err, SI_ERR_IO, "%s: readlink: %s", full, strerror(errno));
    if (tl >= PATH_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: symlink target too long", full);
    target[tl] = '\0';
    if (!(m->link = strdup(target)))
        return nomem(err, "symlink");
    return SI_OK;
}

/* Walk dirfd (path rel, "" for the root) recursively; stays on root_dev. */
static si_result walk_tree(struct manifest *mf, int dfd, const char *rel, dev_t root_dev,
                           si_err *err)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return si_err_set(err, SI_ERR_IO, "%s/%s: %s", mf->src, rel, strerror(errno));
    }
    si_result rc = SI_OK;
    struct dirent *de;
    char shown[4 * NAME_MAX + 1];
    while (rc == SI_OK && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (!name_ok(name)) {
            rc = si_err_set(err, SI_ERR_UNSAFE_PATH,
                            "%s/%s: a name with a control character (newline, tab, ...) is "
                            "refused: '%s'", mf->src, rel, printable(name, shown, sizeof(shown)));
            break;
        }
        char path[PATH_MAX];
        int pl = snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", name);
        if (pl < 0 || (size_t)pl >= sizeof(path)) {
            rc = si_err_set(err, SI_ERR_TOO_LARGE, "%s/%s/%s: path too long", mf->src, rel, name);
            break;
        }
        char full[PATH_MAX * 2];
        snprintf(full, sizeof(full), "%s/%s", mf->src, path);
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
            break;
        }
        if (S_ISSOCK(st.st_mode))
            continue; /* runtime artefacts, like tar does */
        struct ment *m = manifest_add(mf);
        if (!m || !(m->path = strdup(path))) {
            rc = nomem(err, "manifest");
            break;
        }
        ment_from_stat(m, &st);
        if (S_ISLNK(st.st_mode)) {
            rc = read_link_target(dfd, name, full, m, err);
            if (rc != SI_OK)
                break;
        }
        rc = read_xattrs_path(full, m, err);
        if (rc != SI_OK)
            break;
        if (S_ISDIR(st.st_mode) && st.st_dev == root_dev) {
            int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
                break;
            }
            rc = walk_tree(mf, sub, path, root_dev, err);
        }
    }
    if (rc == SI_OK && errno)
        rc = si_err_set(err, SI_ERR_IO, "%s/%s: readdir: %s", mf->src, rel, strerror(errno));
    closedir(d);
    return rc;
}

/* Hardlink groups of a sorted tree manifest: the first path with a given
 * (dev, ino) is the leader of the others. Open addressing on (dev, ino). */
static si_result group_tree_hardlinks(struct manifest *mf, si_err *err)
{
    for (size_t i = 0; i < mf->n; i++)
        mf->e[i].leader = mf->e[i].root = i;
    size_t nl = 0;
    for (size_t i = 0; i < mf->n; i++)
        nl += mf->e[i].ino != 0;
    if (!nl)
        return SI_OK;
    size_t cap = 16;
    while (cap < nl * 2)
        cap *= 2;
    size_t *tab = malloc(cap * sizeof(*tab));
    if (!tab)
        return nomem(err, "hardlink table");
    for (size_t i = 0; i < cap; i++)
        tab[i] = SIZE_MAX;
    for (size_t i = 0; i < mf->n; i++) {
        struct ment *m = &mf->e[i];
        if (!m->ino)
            continue;
        uint64_t h = (m->ino * 0x9E3779B97F4A7C15ULL) ^ m->dev;
        size_t s = (size_t)(h & (cap - 1));
        for (;; s = (s + 1) & (cap - 1)) {
            if (tab[s] == SIZE_MAX) {
                tab[s] = i;
                break;
            }
            struct ment *o = &mf->e[tab[s]];
            if (o->ino == m->ino && o->dev == m->dev) {
                m->leader = m->root = tab[s];
                break;
            }
        }
    }
    free(tab);
    return SI_OK;
}

/* ------------------------------------------------------------ tarball source */

static struct archive *open_tar_reader(const char *path, si_err *err)
{
    struct archive *a = si_tar_reader_new();
    if (!a) {
        nomem(err, "archive reader");
        return NULL;
    }
    if (archive_read_open_filename(a, path, IOBUF) != ARCHIVE_OK) {
        int e = archive_errno(a);
        bool io = e == ENOENT || e == EACCES || e == EIO || e == EISDIR || e == ENOMEM;
        si_err_set(err, io ? SI_ERR_IO : SI_ERR_PARSE,
                   "%s: %s", path, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Which kind of tarball a source is, decided on its first member: a full
 * tarball of sysimage (members system/..., "./" prefixes allowed) or a plain
 * rootfs tarball (etc/..., ./etc/..., "./" for the root) as debootstrap,
 * mkosi, Buildroot and Yocto write them. */
enum layout { LAYOUT_UNKNOWN, LAYOUT_SYSTEM, LAYOUT_ROOTFS };

/* Strip "./" and, in a system/ tarball, the system/ prefix; rel gets "" for
 * the root directory (system/, ./ or .). */
static si_result member_rel(const char *tarpath, enum layout *layout, const char *name, char *rel,
                            size_t relsz, si_err *err)
{
    if (!name)
        return si_err_set(err, SI_ERR_PARSE, "%s: member without a name", tarpath);
    const char *p = name;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (*layout == LAYOUT_UNKNOWN)
        *layout = strcmp(p, "system") == 0 || strncmp(p, PREFIX, PREFIX_LEN) == 0 ? LAYOUT_SYSTEM
                                                                                  : LAYOUT_ROOTFS;
    if (*layout == LAYOUT_SYSTEM) {
        if (strcmp(p, "system") == 0 || strcmp(p, PREFIX) == 0) {
            rel[0] = '\0';
            return SI_OK;
        }
        if (strncmp(p, PREFIX, PREFIX_LEN) != 0)
            return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: member '%s' is not under system/",
                              tarpath, name);
        p += PREFIX_LEN;
    } else if (!*p || strcmp(p, ".") == 0) {
        rel[0] = '\0';
        return SI_OK;
    }
    size_t len = strlen(p);
    while (len && p[len - 1] == '/')
        len--;
    if (len >= relsz)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: member '%s': path too long", tarpath, name);
    memcpy(rel, p, len);
    rel[len] = '\0';
    if (!si_layout_rel_path_ok(rel))
        return si_err_set(err, SI_ERR_UNSAFE_PATH,
                          "%s: member '%s': unsafe path (empty, '.' or '..' component, absolute, "
                          "or a control character)", tarpath, name);
    return SI_OK;
}

static si_result entry_xattrs(struct archive_entry *ae, struct ment *m, si_err *err)
{
    int n = archive_entry_xattr_reset(ae);
    if (n <= 0)
        return SI_OK;
    m->xa = calloc((size_t)n, sizeof(*m->xa));
    if (!m->xa)
        return nomem(err, "xattrs");
    const char *name;
    const void *val;
    size_t len;
    while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK && m->nxa < (size_t)n) {
        struct xattr *x = &m->xa[m->nxa];
        x->name = strdup(name);
        x->value = malloc(len ? len : 1);
        if (!x->name || !x->value) {
            free(x->name);
            free(x->value);
            return nomem(err, "xattr");
        }
        memcpy(x->value, val, len);
        x->len = len;
        m->nxa++;
    }
    if (m->nxa > 1)
        qsort(m->xa, m->nxa, sizeof(*m->xa), xattr_cmp);
    /* libarchive reports an xattr stored both as LIBARCHIVE.xattr and
     * SCHILY.xattr twice: keep one */
    size_t k = 0;
    for (size_t i = 0; i < m->nxa; i++) {
        if (k && strcmp(m->xa[k - 1].name, m->xa[i].name) == 0) {
            free(m->xa[i].name);
            free(m->xa[i].value);
            continue;
        }
        m->xa[k++] = m->xa[i];
    }
    m->nxa = k;
    return SI_OK;
}

/* Same for an entry copied from a tarball to the output. */
static si_result dedupe_entry_xattrs(struct archive_entry *ae, si_err *err)
{
    struct ment tmp;
    memset(&tmp, 0, sizeof(tmp));
    si_result rc = entry_xattrs(ae, &tmp, err);
    if (rc == SI_OK) {
        archive_entry_xattr_clear(ae);
        for (size_t i = 0; i < tmp.nxa; i++)
            archive_entry_xattr_add_entry(ae, tmp.xa[i].name, tmp.xa[i].value, tmp.xa[i].len);
    }
    ment_free(&tmp);
    return rc;
}

static int ment_path_key_cmp(const void *key, const void *elem)
{
    return path_cmp((const char *)key, ((const struct ment *)elem)->path);
}

static struct ment *manifest_find(struct manifest *mf, const char *path)
{
    return bsearch(path, mf->e, mf->n, sizeof(*mf->e), ment_path_key_cmp);
}

/* A full tarball's first member `manifest` (lib/manifest.h) is not part of
 * the tree. */
static bool skip_member(enum layout layout, const char *name)
{
    return layout == LAYOUT_UNKNOWN && name && strcmp(name, SI_MANIFEST_MEMBER) == 0;
}

/* The next member of tarball src that stands in the tree: SI_OK with *ae
 * and rel (not empty) set, or with *end set after the last member. The
 * manifest member and the root directory (system/, ./) are passed over. */
static si_result next_tree_member(struct archive *a, const char *src, enum layout *layout,
                                  struct archive_entry **ae, char *rel, size_t relsz, bool *end,
                                  si_err *err)
{
    *end = false;
    for (;;) {
        int r = archive_read_next_header(a, ae);
        if (r == ARCHIVE_EOF) {
            *end = true;
            return SI_OK;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s", src, archive_error_string(a));
        const char *name = archive_entry_pathname(*ae);
        if (skip_member(*layout, name))
            continue;
        si_result rc = member_rel(src, layout, name, rel, relsz, err);
        if (rc != SI_OK || rel[0])
            return rc;
    }
}

/* The hardlink target of a tar member, as a path of the tree. */
static si_result tar_hardlink(struct manifest *mf, struct ment *m, const char *name,
                              const char *hl, si_err *err)
{
    char hrel[PATH_MAX];
    si_result rc = member_rel(mf->src, (enum layout *)&mf->layout, hl, hrel, sizeof(hrel), err);
    if (rc != SI_OK)
        return rc;
    if (!hrel[0])
        return si_err_set(err, SI_ERR_PARSE, "%s: member '%s' links to system/", mf->src, name);
    if (!(m->hardlink = strdup(hrel)))
        return nomem(err, "hardlink");
    return SI_OK;
}

/* Fill m from the member's header (and its data's hash when asked). */
static si_result tar_ment(struct manifest *mf, struct archive *a, struct archive_entry *ae,
                          struct ment *m, bool hash, si_err *err)
{
    const char *name = archive_entry_pathname(ae);
    const char *hl = archive_entry_hardlink(ae);
    si_result rc = hl ? tar_hardlink(mf, m, name, hl, err) : SI_OK;
    if (rc != SI_OK)
        return rc;
    m->mode = archive_entry_mode(ae);
    if (hl)
        m->mode = S_IFREG | (m->mode & 07777);
    m->uid = (uid_t)archive_entry_uid(ae);
    m->gid = (gid_t)archive_entry_gid(ae);
    m->size = S_ISREG(m->mode) && !hl ? archive_entry_size(ae) : 0;
    m->mtime = archive_entry_mtime(ae);
    m->mtime_nsec = archive_entry_mtime_nsec(ae);
    if (S_ISCHR(m->mode) || S_ISBLK(m->mode))
        m->rdev = archive_entry_rdev(ae);
    if (S_ISLNK(m->mode)) {
        const char *t = archive_entry_symlink(ae);
        if (!t)
            return si_err_set(err, SI_ERR_PARSE, "%s: symlink '%s' without target", mf->src,
                              name);
        if (!(m->link = strdup(t)))
            return nomem(err, "symlink");
    }
    rc = entry_xattrs(ae, m, err);
    if (rc == SI_OK && hash && S_ISREG(m->mode) && !hl)
        rc = hash_archive_data(a, m, name, err);
    return rc;
}

/* Every member of the tarball into mf (unsorted). */
static si_result read_tar_entries(struct manifest *mf, bool hash, si_err *err)
{
    struct archive *a = open_tar_reader(mf->src, err);
    if (!a)
        return err ? err->code : SI_ERR_IO;
    si_result rc = SI_OK;
    struct archive_entry *ae;
    char rel[PATH_MAX];
    bool end = false;
    while (rc == SI_OK) {
        rc = next_tree_member(a, mf->src, (enum layout *)&mf->layout, &ae, rel, sizeof(rel), &end,
                              err);
        if (rc != SI_OK || end)
            break;
        struct ment *m = manifest_add(mf);
        if (!m || !(m->path = strdup(rel)))
            rc = nomem(err, "manifest");
        else
            rc = tar_ment(mf, a, ae, m, hash, err);
    }
    archive_read_free(a);
    return rc;
}

/* Hardlink groups of a tarball's entries (sorted): root = the member that
 * carries the data; leader = the smallest path of the group. */
static si_result group_tar_hardlinks(struct manifest *mf, si_err *err)
{
    si_result rc = SI_OK;
    size_t *root = malloc((mf->n ? mf->n : 1) * sizeof(*root));
    size_t *lead = malloc((mf->n ? mf->n : 1) * sizeof(*lead));
    if (!root || !lead)
        rc = nomem(err, "hardlink groups");
    for (size_t i = 0; i < mf->n && rc == SI_OK; i++) {
        size_t cur = i, steps = 0;
        while (mf->e[cur].hardlink) {
            struct ment *t = manifest_find(mf, mf->e[cur].hardlink);
            if (!t || !S_ISREG(t->mode) || ++steps > mf->n) {
                rc = si_err_set(err, SI_ERR_PARSE, "%s: system/%s: bad hardlink target system/%s",
                                mf->src, mf->e[i].path, mf->e[cur].hardlink);
                break;
            }
            cur = (size_t)(t - mf->e);
        }
        root[i] = cur;
        lead[i] = SIZE_MAX;
    }
    for (size_t i = 0; i < mf->n && rc == SI_OK; i++) {
        struct ment *r = &mf->e[root[i]];
        if (lead[root[i]] == SIZE_MAX)
            lead[root[i]] = i;
        mf->e[i].leader = lead[root[i]];
        mf->e[i].root = root[i];
        if (root[i] != i) {
            mf->e[i].size = r->size;
            memcpy(mf->e[i].hash, r->hash, 32);
            mf->e[i].has_hash = r->has_hash;
        }
    }
    free(lead);
    free(root);
    return rc;
}

static si_result read_tar_manifest(struct manifest *mf, bool hash, si_err *err)
{
    si_result rc = read_tar_entries(mf, hash, err);
    if (rc != SI_OK)
        return rc;
    qsort(mf->e, mf->n, sizeof(*mf->e), ment_cmp);
    for (size_t i = 0; i + 1 < mf->n; i++)
        if (path_cmp(mf->e[i].path, mf->e[i + 1].path) == 0)
            return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: member system/%s appears twice",
                              mf->src, mf->e[i].path);
    return group_tar_hardlinks(mf, err);
}

static si_result read_manifest(struct manifest *mf, const char *src, bool hash, si_err *err)
{
    memset(mf, 0, sizeof(*mf));
    mf->src = src;
    struct stat st;
    if (stat(src, &st) < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", src,
                          strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        mf->is_tree = true;
        int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", src, strerror(errno));
        si_result rc = walk_tree(mf, fd, "", st.st_dev, err);
        if (rc != SI_OK)
            return rc;
        qsort(mf->e, mf->n, sizeof(*mf->e), ment_cmp);
        return group_tree_hardlinks(mf, err);
    }
    if (!S_ISREG(st.st_mode))
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: neither a directory nor a tarball", src);
    return read_tar_manifest(mf, hash, err);
}

/* ------------------------------------------------------------ writer */

static bool opts_manifest(const si_build_opts *o)
{
    return !o || !o->no_manifest;
}

/* With a manifest (the default) the members go to an uncompressed body
 * first; finish_writer seals it (lib/seal). */
static void body_name(const char *tmp, char *body, size_t sz)
{
    snprintf(body, sz, "%s.body", tmp);
}

static struct archive *open_writer(const char *out_tmp, const si_build_opts *opts, si_err *err)
{
    char body[PATH_MAX + 8];
    const char *tmp = out_tmp;
    if (opts_manifest(opts)) {
        body_name(out_tmp, body, sizeof(body));
        tmp = body;
    }
    struct archive *w = archive_write_new();
    if (!w) {
        nomem(err, "archive writer");
        return NULL;
    }
    if (archive_write_set_format_pax(w) != ARCHIVE_OK) {
        si_err_set(err, SI_ERR_INTERNAL, "%s: %s", tmp, archive_error_string(w));
        archive_write_free(w);
        return NULL;
    }
    si_compression comp = opts ? opts->compression : SI_COMP_ZSTD;
    if (opts_manifest(opts))
        comp = SI_COMP_NONE;
    if (si_tar_writer_set_compression(w, comp, opts && !opts_manifest(opts) ? opts->level : 0,
                                      tmp, err) != SI_OK) {
        archive_write_free(w);
        return NULL;
    }
    if (archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
        archive_write_open_filename(w, tmp) != ARCHIVE_OK) {
        si_err_set(err, SI_ERR_IO, "%s: %s", tmp, archive_error_string(w));
        archive_write_free(w);
        return NULL;
    }
    return w;
}

static si_result write_header(struct archive *w, struct archive_entry *ae, const char *out,
                              si_err *err)
{
    /* ARCHIVE_WARN: a name that is not valid in the locale (the tool runs in
     * the C locale) was stored as raw bytes with hdrcharset=BINARY */
    int r = archive_write_header(w, ae);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return si_err_set(err, SI_ERR_IO, "%s: member %s: %s", out, archive_entry_pathname(ae),
                          archive_error_string(w));
    return SI_OK;
}

static si_result write_data(struct archive *w, const void *buf, size_t len, const char *out,
                            si_err *err)
{
    while (len) {
        la_ssize_t r = archive_write_data(w, buf, len);
        if (r <= 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(w));
        buf = (const char *)buf + r;
        len -= (size_t)r;
    }
    return SI_OK;
}

static void fill_entry(struct archive_entry *ae, const struct manifest *mf, const struct ment *m)
{
    char name[PATH_MAX + PREFIX_LEN + 1];
    snprintf(name, sizeof(name), PREFIX "%s", m->path);
    archive_entry_copy_pathname(ae, name);
    archive_entry_set_mode(ae, m->mode);
    archive_entry_set_uid(ae, m->uid);
    archive_entry_set_gid(ae, m->gid);
    archive_entry_set_mtime(ae, m->mtime, m->mtime_nsec);
    for (size_t i = 0; i < m->nxa; i++)
        archive_entry_xattr_add_entry(ae, m->xa[i].name, m->xa[i].value, m->xa[i].len);
    if (m->leader != (size_t)(m - mf->e)) {
        snprintf(name, sizeof(name), PREFIX "%s", mf->e[m->leader].path);
        archive_entry_copy_hardlink(ae, name);
        archive_entry_set_size(ae, 0);
        return;
    }
    if (S_ISREG(m->mode))
        archive_entry_set_size(ae, m->size);
    else
        archive_entry_set_size(ae, 0);
    if (S_ISLNK(m->mode))
        archive_entry_copy_symlink(ae, m->link);
    if (S_ISCHR(m->mode) || S_ISBLK(m->mode))
        archive_entry_set_rdev(ae, m->rdev);
}

/* Write one tree entry: header (with the sparse map of the file) and data. */
static si_result emit_tree_entry(struct archive *w, const struct manifest *mf,
                                 const struct ment *m, const char *out, unsigned char *buf,
                                 si_err *err)
{
    struct archive_entry *ae = archive_entry_new();
    if (!ae)
        return nomem(err, "entry");
    fill_entry(ae, mf, m);
    bool data = S_ISREG(m->mode) && m->leader == (size_t)(m - mf->e) && m->size > 0;
    int fd = -1;
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s/%s", mf->src, m->path);
    si_result rc = SI_OK;
    if (data) {
        fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            archive_entry_free(ae);
            return si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
        }
        /* Sparse map: only when the file has at least one hole. */
        off_t d0 = lseek(fd, 0, SEEK_DATA);
        off_t h0 = d0 >= 0 ? lseek(fd, d0, SEEK_HOLE) : -1;
        bool sparse = d0 < 0 ? (errno == ENXIO) : (d0 > 0 || h0 < m->size);
        if (sparse) {
            off_t pos = 0;
            for (;;) {
                off_t d = lseek(fd, pos, SEEK_DATA);
                if (d < 0)
                    break;
                off_t h = lseek(fd, d, SEEK_HOLE);
                if (h < 0 || h > m->size)
                    h = m->size;
                if (h > d)
                    archive_entry_sparse_add_entry(ae, d, h - d);
                pos = h;
                if (pos >= m->size)
                    break;
            }
            /* a trailing hole still needs an (empty) final extent */
            archive_entry_sparse_add_entry(ae, m->size, 0);
        }
        lseek(fd, 0, SEEK_SET);
    }
    rc = write_header(w, ae, out, err);
    int64_t total = 0;
    while (rc == SI_OK && data) {
        size_t r;
        rc = read_chunk(fd, buf, full, &r, err);
        if (rc != SI_OK || r == 0)
            break;
        if (total + (int64_t)r > m->size) {
            rc = si_err_set(err, SI_ERR_IO, "%s: file grew while reading", full);
            break;
        }
        rc = write_data(w, buf, r, out, err);
        total += (int64_t)r;
    }
    if (rc == SI_OK && data && total != m->size)
        rc = si_err_set(err, SI_ERR_IO, "%s: file shrank while reading", full);
    if (fd >= 0)
        close(fd);
    archive_entry_free(ae);
    return rc;
}

struct copy_ctx {
    struct archive *w;
    const char *out;
};

static si_result copy_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    struct copy_ctx *cc = ctx;
    return write_data(cc->w, buf, len, cc->out, err);
}

/* Copy the current member of a tarball into w with normalised metadata. */
static si_result copy_tar_member(struct archive *a, struct archive *w, struct archive_entry *in,
                                 const char *rel, const char *hlrel, const char *src,
                                 const char *out, unsigned char *buf, si_err *err)
{
    struct archive_entry *ae = archive_entry_clone(in);
    if (!ae)
        return nomem(err, "entry");
    char name[PATH_MAX + PREFIX_LEN + 1];
    snprintf(name, sizeof(name), PREFIX "%s", rel);
    archive_entry_copy_pathname(ae, name);
    if (hlrel) {
        snprintf(name, sizeof(name), PREFIX "%s", hlrel);
        archive_entry_copy_hardlink(ae, name);
        archive_entry_set_size(ae, 0);
    }
    archive_entry_copy_uname(ae, NULL);
    archive_entry_copy_gname(ae, NULL);
    archive_entry_unset_atime(ae);
    archive_entry_unset_ctime(ae);
    archive_entry_unset_birthtime(ae);
    archive_entry_set_fflags(ae, 0, 0);
    archive_entry_acl_clear(ae);
    /* the sparse map read from the input (if any) is kept: holes are fed as zeros below */
    int64_t size = archive_entry_size(ae);
    if (!S_ISREG(archive_entry_mode(ae)) || hlrel)
        size = 0;
    si_result rc = dedupe_entry_xattrs(ae, err);
    if (rc == SI_OK)
        rc = write_header(w, ae, out, err);
    if (rc == SI_OK && size > 0) {
        struct copy_ctx cc = {w, out};
        char what[PATH_MAX + 64];
        snprintf(what, sizeof(what), "%s: %s", src, rel);
        rc = si_tar_member_data(a, size, what, copy_piece, &cc, err);
    }
    (void)buf;
    archive_entry_free(ae);
    return rc;
}

/* Stream a tarball source into w: every member, or only the shipped ones
 * of mf (delta). */
static si_result copy_tar(const char *src, struct archive *w, struct manifest *mf,
                          const struct spool *ps, const char *out, unsigned char *buf,
                          si_err *err)
{
    struct archive *a = open_tar_reader(src, err);
    if (!a)
        return err ? err->code : SI_ERR_IO;
    si_result rc = SI_OK;
    enum layout layout = LAYOUT_UNKNOWN;
    struct archive_entry *ae;
    char rel[PATH_MAX], hrel[PATH_MAX];
    bool end = false;
    for (;;) {
        rc = next_tree_member(a, src, &layout, &ae, rel, sizeof(rel), &end, err);
        if (rc != SI_OK || end)
            break;
        const char *hl = archive_entry_hardlink(ae);
        if (hl) {
            rc = member_rel(src, &layout, hl, hrel, sizeof(hrel), err);
            if (rc != SI_OK)
                break;
        }
        if (mf) {
            struct ment *m = manifest_find(mf, rel);
            if (!m) {
                rc = si_err_set(err, SI_ERR_IO, "%s: system/%s changed while reading", src, rel);
                break;
            }
            /* a shipped hardlink whose data member is not shipped links
             * to the unchanged path already in the target */
            if (!m->ship)
                continue;
            if (m->patch) {
                struct archive_entry *pe = archive_entry_clone(ae);
                if (!pe) {
                    rc = nomem(err, "entry");
                    break;
                }
                archive_entry_copy_uname(pe, NULL);
                archive_entry_copy_gname(pe, NULL);
                archive_entry_unset_atime(pe);
                archive_entry_unset_ctime(pe);
                archive_entry_unset_birthtime(pe);
                archive_entry_set_fflags(pe, 0, 0);
                archive_entry_acl_clear(pe);
                rc = dedupe_entry_xattrs(pe, err);
                if (rc == SI_OK)
                    rc = emit_patch(w, pe, m, ps, out, buf, err);
                archive_entry_free(pe);
                if (rc != SI_OK)
                    break;
                continue;
            }
        }
        int mode = archive_entry_mode(ae);
        if (!hl && !S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode) && !S_ISCHR(mode) &&
            !S_ISBLK(mode) && !S_ISFIFO(mode)) {
            rc = si_err_set(err, SI_ERR_UNSUPPORTED, "%s: system/%s: unsupported member type",
                            src, rel);
            break;
        }
        rc = copy_tar_member(a, w, ae, rel, hl ? hrel : NULL, src, out, buf, err);
        if (rc != SI_OK)
            break;
    }
    archive_read_free(a);
    return rc;
}

static si_result finish_writer(struct archive *w, const char *tmp, const char *out,
                               const si_build_opts *opts, si_result rc, si_err *err)
{
    if (rc == SI_OK && archive_write_close(w) != ARCHIVE_OK)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(w));
    archive_write_free(w);
    if (opts_manifest(opts)) {
        char body[PATH_MAX + 8];
        body_name(tmp, body, sizeof(body));
        if (rc == SI_OK)
            rc = si_seal_tarball(body, tmp, opts ? opts->compression : SI_COMP_ZSTD,
                                 opts ? opts->level : 0, err);
        unlink(body);
    }
    if (rc == SI_OK) {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc == SI_OK && rename(tmp, out) < 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: rename: %s", out, strerror(errno));
    if (rc != SI_OK)
        unlink(tmp);
    return rc;
}

static si_result tmp_name(const char *out, char *tmp, size_t sz, si_err *err)
{
    int n = snprintf(tmp, sz, "%s.tmp", out);
    if (n < 0 || (size_t)n >= sz)
        return si_err_set(err, SI_ERR_USAGE, "%s: output path too long", out);
    return SI_OK;
}

/* ------------------------------------------------------------ full */

si_result si_build_full(const char *from, const char *out, const si_build_opts *opts, si_err *err)
{
    if (!from || !out)
        return si_err_set(err, SI_ERR_USAGE, "build full: source and output are required");
    char tmp[PATH_MAX];
    si_result rc = tmp_name(out, tmp, sizeof(tmp), err);
    if (rc != SI_OK)
        return rc;
    struct stat st;
    if (stat(from, &st) < 0)
        return si_err_set(err, errno == ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", from,
                          strerror(errno));
    unsigned char *buf = malloc(IOBUF);
    if (!buf)
        return nomem(err, "buffer");
    struct manifest mf;
    memset(&mf, 0, sizeof(mf));
    if (S_ISDIR(st.st_mode)) {
        rc = read_manifest(&mf, from, false, err);
        if (rc != SI_OK) {
            manifest_free(&mf);
            free(buf);
            return rc;
        }
    } else if (S_ISREG(st.st_mode)) {
        /* validate the whole tarball (paths, hardlinks, duplicates) first */
        rc = read_manifest(&mf, from, false, err);
        manifest_free(&mf);
        if (rc != SI_OK) {
            free(buf);
            return rc;
        }
    } else {
        free(buf);
        return si_err_set(err, SI_ERR_UNSUPPORTED, "%s: neither a directory nor a tarball", from);
    }
    struct archive *w = open_writer(tmp, opts, err);
    if (!w) {
        manifest_free(&mf);
        free(buf);
        return err ? err->code : SI_ERR_IO;
    }
    if (S_ISDIR(st.st_mode)) {
        for (size_t i = 0; i < mf.n && rc == SI_OK; i++)
            rc = emit_tree_entry(w, &mf, &mf.e[i], out, buf, err);
    } else {
        rc = copy_tar(from, w, NULL, NULL, out, buf, err);
    }
    rc = finish_writer(w, tmp, out, opts, rc, err);
    manifest_free(&mf);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ delta */

static bool xattrs_equal(const struct ment *a, const struct ment *b)
{
    if (a->nxa != b->nxa)
        return false;
    for (size_t i = 0; i < a->nxa; i++)
        if (strcmp(a->xa[i].name, b->xa[i].name) != 0 || a->xa[i].len != b->xa[i].len ||
            memcmp(a->xa[i].value, b->xa[i].value, a->xa[i].len) != 0)
            return false;
    return true;
}

static si_result files_equal(const char *pa, const char *pb, bool *eq, si_err *err)
{
    int fa = open(pa, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fa < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", pa, strerror(errno));
    int fb = open(pb, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fb < 0) {
        close(fa);
        return si_err_set(err, SI_ERR_IO, "%s: %s", pb, strerror(errno));
    }
    unsigned char *ba = malloc(IOBUF), *bb = malloc(IOBUF);
    si_result rc = SI_OK;
    *eq = true;
    if (!ba || !bb)
        rc = nomem(err, "compare buffers");
    while (rc == SI_OK) {
        ssize_t ra = read(fa, ba, IOBUF);
        if (ra < 0) {
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", pa, strerror(errno));
            break;
        }
        size_t got = 0;
        while (got < (size_t)ra) {
            ssize_t rb = read(fb, bb + got, (size_t)ra - got);
            if (rb < 0) {
                rc = si_err_set(err, SI_ERR_IO, "%s: %s", pb, strerror(errno));
                break;
            }
            if (rb == 0)
                break;
            got += (size_t)rb;
        }
        if (rc != SI_OK)
            break;
        if (got != (size_t)ra || memcmp(ba, bb, got) != 0) {
            *eq = false;
            break;
        }
        if (ra == 0) {
            char c;
            if (read(fb, &c, 1) != 0)
                *eq = false;
            break;
        }
    }
    free(ba);
    free(bb);
    close(fa);
    close(fb);
    return rc;
}

static si_result content_equal(struct manifest *mo, struct ment *o, struct manifest *mn,
                               struct ment *n, bool *eq, si_err *err)
{
    struct ment *od = &mo->e[o->leader], *nd = &mn->e[n->leader];
    if (mo->is_tree && mn->is_tree) {
        char pa[PATH_MAX * 2], pb[PATH_MAX * 2];
        snprintf(pa, sizeof(pa), "%s/%s", mo->src, od->path);
        snprintf(pb, sizeof(pb), "%s/%s", mn->src, nd->path);
        return files_equal(pa, pb, eq, err);
    }
    si_result rc = SI_OK;
    if (!od->has_hash && mo->is_tree)
        rc = hash_tree_file(mo, od, err);
    if (rc == SI_OK && !nd->has_hash && mn->is_tree)
        rc = hash_tree_file(mn, nd, err);
    if (rc != SI_OK)
        return rc;
    *eq = memcmp(od->hash, nd->hash, 32) == 0;
    return SI_OK;
}

/* Compare everything but mtime. */
static si_result entry_changed(struct manifest *mo, struct ment *o, struct manifest *mn,
                               struct ment *n, bool *changed, si_err *err)
{
    *changed = true;
    if (S_ISREG(o->mode) && S_ISREG(n->mode)) {
        /* patches are only for new content: an identical file may still have
         * to become a new inode (hardlink group change), which a patch whose
         * result is already in place would not do */
        bool eq = o->size == n->size;
        if (eq && o->size > 0) {
            si_result rc = content_equal(mo, o, mn, n, &eq, err);
            if (rc != SI_OK)
                return rc;
        }
        n->data_differs = !eq;
    }
    if (o->mode != n->mode || o->uid != n->uid || o->gid != n->gid || o->rdev != n->rdev)
        return SI_OK;
    if (!xattrs_equal(o, n))
        return SI_OK;
    if (S_ISLNK(o->mode) && strcmp(o->link, n->link) != 0)
        return SI_OK;
    if (path_cmp(mo->e[o->leader].path, mn->e[n->leader].path) != 0)
        return SI_OK;
    if (S_ISREG(o->mode) && n->data_differs)
        return SI_OK;
    *changed = false;
    return SI_OK;
}

struct strbuf {
    char *p;
    size_t len, cap;
};

/* Append "<pre>system/<path>\n". */
static bool sb_add_raw(struct strbuf *sb, const char *pre, const char *s)
{
    size_t l = strlen(s), pl = strlen(pre);
    if (sb->len + pl + l + PREFIX_LEN + 2 > sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 4096;
        while (cap < sb->len + pl + l + PREFIX_LEN + 2)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p)
            return false;
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, pre, pl);
    memcpy(sb->p + sb->len + pl, PREFIX, PREFIX_LEN);
    memcpy(sb->p + sb->len + pl + PREFIX_LEN, s, l);
    sb->len += pl + PREFIX_LEN + l;
    sb->p[sb->len++] = '\n';
    return true;
}

static bool sb_add(struct strbuf *sb, const char *s)
{
    return sb_add_raw(sb, "", s);
}

/* A list member (`removed`, `patched`): regular file, root, 0644, mtime 0. */
static si_result write_list_member(struct archive *w, const char *name, const struct strbuf *sb,
                                   const char *out, si_err *err)
{
    struct archive_entry *ae = archive_entry_new();
    if (!ae)
        return nomem(err, "entry");
    archive_entry_copy_pathname(ae, name);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    archive_entry_set_mtime(ae, 0, 0);
    archive_entry_set_size(ae, (la_int64_t)sb->len);
    si_result rc = write_header(w, ae, out, err);
    if (rc == SI_OK && sb->len)
        rc = write_data(w, sb->p, sb->len, out, err);
    archive_entry_free(ae);
    return rc;
}

/* ------------------------------------------------------------ delta patches
 *
 * A changed regular file whose old version is a regular file too is shipped
 * as patch/<path> (zstd patch-from, lib/patch.h) when the patch is smaller
 * than the file. Contents come from the trees (mapped) or, for tarball
 * sources, from a spool file that one extra pass over the tarball fills with
 * the members a patch needs. Patches are spooled too, then copied into the
 * output in member order; the `patched` member lists them first. */

struct spool {
    FILE *f;
    int fd;
    int64_t len;
};

static si_result spool_open(struct spool *sp, si_err *err)
{
    sp->f = tmpfile();
    if (!sp->f)
        return si_err_set(err, SI_ERR_IO, "temporary file: %s", strerror(errno));
    sp->fd = fileno(sp->f);
    sp->len = 0;
    return SI_OK;
}

static void spool_close(struct spool *sp)
{
    if (sp->f)
        fclose(sp->f);
    sp->f = NULL;
}

static si_result spool_put(struct spool *sp, const void *buf, size_t len, si_err *err)
{
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(sp->fd, p, len, sp->len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return si_err_set(err, SI_ERR_IO, "temporary file: %s",
                              w < 0 ? strerror(errno) : "short write");
        p += w;
        len -= (size_t)w;
        sp->len += w;
    }
    return SI_OK;
}

/* Copy the data of the tarball members marked need_data into sp, each at a
 * page-aligned offset (so it can be mapped), holes as zeros. */
static si_result spool_tar(struct manifest *mf, struct spool *sp, si_err *err)
{
    struct archive *a = open_tar_reader(mf->src, err);
    if (!a)
        return err ? err->code : SI_ERR_IO;
    long pg = sysconf(_SC_PAGESIZE);
    enum layout layout = LAYOUT_UNKNOWN;
    si_result rc = SI_OK;
    struct archive_entry *ae;
    char rel[PATH_MAX];
    bool end = false;
    while (rc == SI_OK) {
        rc = next_tree_member(a, mf->src, &layout, &ae, rel, sizeof(rel), &end, err);
        if (rc != SI_OK || end)
            break;
        if (archive_entry_hardlink(ae))
            continue;
        struct ment *m = manifest_find(mf, rel);
        if (!m || !m->need_data)
            continue;
        sp->len = (sp->len + pg - 1) / pg * pg;
        m->spool_off = sp->len;
        int64_t pos = 0;
        for (;;) {
            const void *buf;
            size_t len;
            la_int64_t off;
            int r = archive_read_data_block(a, &buf, &len, &off);
            if (r == ARCHIVE_EOF)
                break;
            if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
                rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", mf->src, archive_error_string(a));
                break;
            }
            if (off < pos || off > m->size || (int64_t)len > m->size - off) {
                rc = si_err_set(err, SI_ERR_PARSE, "%s: system/%s: data block outside the member",
                                mf->src, rel);
                break;
            }
            while (rc == SI_OK && pos < off) {
                size_t z = (size_t)(off - pos) < IOBUF ? (size_t)(off - pos) : IOBUF;
                rc = spool_put(sp, zeros, z, err);
                pos += (int64_t)z;
            }
            if (rc == SI_OK)
                rc = spool_put(sp, buf, len, err);
            pos += (int64_t)len;
            if (rc != SI_OK)
                break;
        }
        while (rc == SI_OK && pos < m->size) {
            size_t z = (size_t)(m->size - pos) < IOBUF ? (size_t)(m->size - pos) : IOBUF;
            rc = spool_put(sp, zeros, z, err);
            pos += (int64_t)z;
        }
    }
    archive_read_free(a);
    return rc;
}

struct blob {
    void *map;
    size_t len;
    const void *p;
};

/* The content of m (a data carrier): its tree file or its spooled data. */
static si_result blob_map(const struct manifest *mf, const struct spool *sp, const struct ment *m,
                          struct blob *b, si_err *err)
{
    memset(b, 0, sizeof(*b));
    b->len = (size_t)m->size;
    if (!b->len)
        return SI_OK;
    if (!mf->is_tree) {
        b->map = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, sp->fd, m->spool_off);
        if (b->map == MAP_FAILED) {
            b->map = NULL;
            return si_err_set(err, SI_ERR_IO, "temporary file: mmap: %s", strerror(errno));
        }
        b->p = b->map;
        return SI_OK;
    }
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s/%s", mf->src, m->path);
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", full, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size != m->size) {
        close(fd);
        return si_err_set(err, SI_ERR_IO, "%s: file changed while reading", full);
    }
    b->map = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (b->map == MAP_FAILED) {
        b->map = NULL;
        return si_err_set(err, SI_ERR_IO, "%s: mmap: %s", full, strerror(errno));
    }
    b->p = b->map;
    return SI_OK;
}

static void blob_unmap(struct blob *b)
{
    if (b->map)
        munmap(b->map, b->len);
    b->map = NULL;
}

static bool patch_candidate(const struct manifest *mo, const struct manifest *mn,
                            const struct ment *n)
{
    if (!n->ship || n->old_idx == SIZE_MAX || !S_ISREG(n->mode) || !n->data_differs)
        return false;
    if (n->root != (size_t)(n - mn->e) || (mn->is_tree && n->leader != n->root))
        return false; /* not the member that carries the data */
    const struct ment *o = &mo->e[n->old_idx];
    if (!S_ISREG(o->mode))
        return false;
    const struct ment *od = &mo->e[o->root];
    return od->size > 0 && n->size > 0 && (uint64_t)od->size <= SI_PATCH_MAX_BYTES &&
           (uint64_t)n->size <= SI_PATCH_MAX_BYTES;
}

/* Decide which changed files are shipped as patches; spool the patches. */
static si_result make_patches(struct manifest *mo, struct manifest *mn, struct spool *ps,
                              si_err *err)
{
    struct spool os = {0}, ns = {0};
    size_t ncand = 0;
    for (size_t k = 0; k < mn->n; k++) {
        struct ment *n = &mn->e[k];
        if (!patch_candidate(mo, mn, n))
            continue;
        ncand++;
        n->need_data = true;
        mo->e[mo->e[n->old_idx].root].need_data = true;
    }
    if (!ncand)
        return SI_OK;
    si_result rc = SI_OK;
    if (!mo->is_tree && (rc = spool_open(&os, err)) == SI_OK)
        rc = spool_tar(mo, &os, err);
    if (rc == SI_OK && !mn->is_tree && (rc = spool_open(&ns, err)) == SI_OK)
        rc = spool_tar(mn, &ns, err);
    for (size_t k = 0; k < mn->n && rc == SI_OK; k++) {
        struct ment *n = &mn->e[k];
        if (!n->need_data)
            continue;
        const struct ment *od = &mo->e[mo->e[n->old_idx].root];
        struct blob ob, nb;
        rc = blob_map(mo, &os, od, &ob, err);
        if (rc != SI_OK)
            break;
        rc = blob_map(mn, &ns, n, &nb, err);
        if (rc != SI_OK) {
            blob_unmap(&ob);
            break;
        }
        uint8_t *pb = NULL;
        size_t pl = 0;
        rc = si_patch_make(ob.p, ob.len, nb.p, nb.len, SI_PATCH_LEVEL, &pb, &pl, err);
        blob_unmap(&ob);
        if (rc != SI_OK) {
            blob_unmap(&nb);
            break;
        }
        /* worth it when smaller than the file shipped whole (compressed),
         * counting the two digests the `patched` line adds */
        size_t whole = (int64_t)pl < n->size ? si_patch_whole_estimate(nb.p, nb.len, 3) : 0;
        if (whole == SIZE_MAX)
            rc = nomem(err, "patch estimate");
        if (rc == SI_OK && pl + 64 < whole) {
            si_patch_header h;
            rc = si_patch_header_parse(pb, pl, &h, err);
            if (rc == SI_OK) {
                n->patch = true;
                n->patch_off = ps->len;
                n->patch_len = (int64_t)pl;
                memcpy(n->old_sha, h.old_sha256, 32);
                memcpy(n->new_sha, h.new_sha256, 32);
                rc = spool_put(ps, pb, pl, err);
            }
        }
        blob_unmap(&nb);
        free(pb);
    }
    spool_close(&os);
    spool_close(&ns);
    return rc;
}

/* Write patch/<path> for m: metadata of ae (the new file's), data from the
 * patch spool. */
static si_result emit_patch(struct archive *w, struct archive_entry *ae, const struct ment *m,
                            const struct spool *ps, const char *out, unsigned char *buf,
                            si_err *err)
{
    char name[PATH_MAX + 16];
    snprintf(name, sizeof(name), "patch/%s", m->path);
    archive_entry_copy_pathname(ae, name);
    archive_entry_sparse_clear(ae);
    archive_entry_set_size(ae, m->patch_len);
    si_result rc = write_header(w, ae, out, err);
    int64_t pos = 0;
    while (rc == SI_OK && pos < m->patch_len) {
        size_t n = (size_t)(m->patch_len - pos) < IOBUF ? (size_t)(m->patch_len - pos) : IOBUF;
        ssize_t r = pread(ps->fd, buf, n, m->patch_off + pos);
        if (r <= 0)
            return si_err_set(err, SI_ERR_IO, "temporary file: %s",
                              r < 0 ? strerror(errno) : "short read");
        rc = write_data(w, buf, (size_t)r, out, err);
        pos += r;
    }
    return rc;
}

/* The `patched` member: one line per patch, in output order. */
static si_result emit_patched_list(struct archive *w, const struct manifest *mn, const char *out,
                                   si_err *err)
{
    struct strbuf sb = {0};
    si_result rc = SI_OK;
    size_t n = 0;
    for (size_t k = 0; k < mn->n && rc == SI_OK; k++) {
        const struct ment *m = &mn->e[k];
        if (!m->patch)
            continue;
        n++;
        char line[64 + 1 + 64 + 2];
        si_hex_encode(m->old_sha, 32, line);
        line[64] = ' ';
        si_hex_encode(m->new_sha, 32, line + 65);
        line[129] = ' ';
        line[130] = '\0';
        if (!sb_add_raw(&sb, line, m->path))
            rc = nomem(err, "patched list");
    }
    if (rc == SI_OK && n)
        rc = write_list_member(w, "patched", &sb, out, err);
    free(sb.p);
    return rc;
}

/* Merge-join the sorted manifests: what the delta ships (new side) and
 * what it removes (old side). */
static si_result mark_changes(struct manifest *mo, struct manifest *mn, si_err *err)
{
    si_result rc = SI_OK;
    for (size_t k = 0; k < mn->n; k++)
        mn->e[k].old_idx = SIZE_MAX;
    size_t i = 0, j = 0;
    while (rc == SI_OK && (i < mo->n || j < mn->n)) {
        int c = i >= mo->n ? 1 : j >= mn->n ? -1 : path_cmp(mo->e[i].path, mn->e[j].path);
        if (c < 0) {
            mo->e[i++].in_removed = true;
        } else if (c > 0) {
            mn->e[j++].ship = true;
        } else {
            bool changed;
            rc = entry_changed(mo, &mo->e[i], mn, &mn->e[j], &changed, err);
            if (rc == SI_OK && changed) {
                mn->e[j].ship = true;
                mn->e[j].old_idx = i;
                /* a directory that stays a directory keeps its contents:
                 * its new metadata is applied in place */
                if (!(S_ISDIR(mo->e[i].mode) && S_ISDIR(mn->e[j].mode)))
                    mo->e[i].in_removed = true;
            }
            i++;
            j++;
        }
    }
    return rc;
}

/* The shipped entries of a new tree: patches and whole members. */
static si_result emit_tree_changes(struct archive *w, struct manifest *mn, struct spool *ps,
                                   const char *out, unsigned char *buf, si_err *err)
{
    si_result rc = SI_OK;
    for (size_t k = 0; k < mn->n && rc == SI_OK; k++) {
        struct ment *m = &mn->e[k];
        if (!m->ship)
            continue;
        if (!m->patch) {
            /* a hardlink whose leader is unchanged links to the path already
             * in the target */
            rc = emit_tree_entry(w, mn, m, out, buf, err);
            continue;
        }
        struct archive_entry *ae = archive_entry_new();
        if (!ae)
            return nomem(err, "entry");
        fill_entry(ae, mn, m);
        rc = emit_patch(w, ae, m, ps, out, buf, err);
        archive_entry_free(ae);
    }
    return rc;
}

si_result si_build_delta(const char *from_old, const char *to_new, const char *out,
                         const si_build_opts *opts, si_err *err)
{
    if (!from_old || !to_new || !out)
        return si_err_set(err, SI_ERR_USAGE, "build delta: old, new and output are required");
    char tmp[PATH_MAX];
    si_result rc = tmp_name(out, tmp, sizeof(tmp), err);
    if (rc != SI_OK)
        return rc;
    struct manifest mo, mn;
    memset(&mo, 0, sizeof(mo));
    memset(&mn, 0, sizeof(mn));
    struct strbuf removed = {0};
    struct spool ps = {0};
    unsigned char *buf = NULL;
    struct archive *w = NULL;
    rc = read_manifest(&mo, from_old, true, err);
    if (rc == SI_OK)
        rc = read_manifest(&mn, to_new, true, err);
    if (rc == SI_OK)
        rc = mark_changes(&mo, &mn, err);
    if (rc == SI_OK && !opts_no_patches(opts) && (rc = spool_open(&ps, err)) == SI_OK)
        rc = make_patches(&mo, &mn, &ps, err);
    /* a patched file stays in place: the patch needs it */
    for (size_t k = 0; k < mn.n && rc == SI_OK; k++)
        if (mn.e[k].patch)
            mo.e[mn.e[k].old_idx].in_removed = false;
    for (size_t k = 0; k < mo.n && rc == SI_OK; k++)
        if (mo.e[k].in_removed && !sb_add(&removed, mo.e[k].path))
            rc = nomem(err, "removed list");
    if (rc == SI_OK && !(buf = malloc(IOBUF)))
        rc = nomem(err, "buffer");
    if (rc == SI_OK && !(w = open_writer(tmp, opts, err)))
        rc = err ? err->code : SI_ERR_IO;
    if (rc == SI_OK)
        rc = emit_patched_list(w, &mn, out, err);
    if (rc == SI_OK)
        rc = write_list_member(w, "removed", &removed, out, err);
    if (rc == SI_OK)
        rc = mn.is_tree ? emit_tree_changes(w, &mn, &ps, out, buf, err)
                        : copy_tar(to_new, w, &mn, &ps, out, buf, err);
    if (w)
        rc = finish_writer(w, tmp, out, opts, rc, err);
    spool_close(&ps);
    free(removed.p);
    free(buf);
    manifest_free(&mo);
    manifest_free(&mn);
    return rc;
}
