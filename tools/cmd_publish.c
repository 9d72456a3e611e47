/* cmd_publish.c - `sysimage publish`: add a version to a static server tree
 * (DESIGN §4), or change a channel (alias, hidden) or the phasing of the
 * newest version. The tree layout and the decisions are in docs/publishing.md.
 *
 * Everything is written atomically (temp file + rename) in an order that
 * never lets a reader see a reference to a file that is not there yet:
 * pool files (+ .sig), keyrings, index.json (+ .sig), channels.json (+ .sig).
 * index.json/channels.json and their .sig are kept consistent across the
 * rename by a transitional .sig holding stanzas for the old and new bytes. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channels.h"
#include "commands.h"
#include "fsutil.h"
#include "index.h"
#include "key.h"
#include "keyring.h"
#include "payload.h"
#include "result.h"
#include "sha256.h"
#include "sigfile.h"
#include "tarformat.h"
#include "version.h"

#define NAME_MAX_LEN 64
#define MAX_DELTAS_BACK 32

static const char publish_usage[] =
    "usage: sysimage publish --repo DIR --keys KEYDIR --channel C --device D --version N\n"
    "                        (--tree T | --tarball T) [--device-tarball T2]\n"
    "                        [--deltas-back K] [--phased P] [--description TEXT]\n"
    "                        [--compression zstd|xz] [--level L] [--hidden]\n"
    "       sysimage publish --repo DIR --keys KEYDIR --channel C\n"
    "                        [--alias TARGET] [--hidden | --visible]\n"
    "                        [--device D --set-phase P]\n\n"
    "Add version N of channel C for device D to the static server tree DIR:\n"
    "the full image (rootfs built from the OS tree or full tarball T, the optional\n"
    "device tarball T2 with system/ or partitions/ members, and a version tarball\n"
    "writing system/etc/sysimage/version.json), deltas from the K newest published\n"
    "versions (default 2, from the full tarballs kept in the pool), an updated\n"
    "C/D/index.json and channels.json, and the keyrings of KEYDIR under keyrings/.\n"
    "Every file is signed with KEYDIR/image-signing.key. N must be greater than\n"
    "every version already published for C/D; nothing is ever overwritten.\n\n"
    "Without --version the command edits the channel: --alias TARGET makes C an\n"
    "alias of TARGET (C serves TARGET's indexes), --hidden/--visible set the hidden\n"
    "flag, --set-phase P sets the phased-percentage (0-100) of the newest version\n"
    "of C/D. The result is re-signed.\n\n"
    "options:\n"
    "  --repo DIR           server tree (created if missing)\n"
    "  --keys KEYDIR        image-signing.key, *.keyring(.sig) (scripts/make-dev-keys.sh)\n"
    "  --channel C          channel name ([A-Za-z0-9][A-Za-z0-9._+-]*)\n"
    "  --device D           device model, same character set\n"
    "  --version N          build number to add (integer > 0)\n"
    "  --tree T | --tarball T  rootfs as a directory or a full tarball\n"
    "  --device-tarball T2  compressed (zstd/xz) tarball with system/ or partitions/\n"
    "  --deltas-back K      deltas from the K newest published versions (0-32, default 2)\n"
    "  --phased P           phased-percentage of the new images (default 100)\n"
    "  --description TEXT   description of the new images\n"
    "  --compression C      zstd (default) or xz for the files built here\n"
    "  --level L            compression level (0 = library default)\n";

enum {
    OPT_REPO = 256, OPT_KEYS, OPT_CHANNEL, OPT_DEVICE, OPT_VERSION, OPT_TREE, OPT_TARBALL,
    OPT_DEVICE_TARBALL, OPT_DELTAS_BACK, OPT_PHASED, OPT_DESCRIPTION, OPT_COMPRESSION,
    OPT_LEVEL, OPT_ALIAS, OPT_HIDDEN, OPT_VISIBLE, OPT_SET_PHASE,
};

typedef struct pub_args {
    const char *repo, *keys, *channel, *device, *tree, *tarball, *device_tarball;
    const char *description, *alias;
    bool has_version;
    int64_t version;
    int deltas_back;
    int phased;
    bool hidden, visible;
    bool has_set_phase;
    int set_phase;
    si_build_opts opts;
} pub_args;

/* Everything one run holds; released by ctx_free. */
typedef struct pub_ctx {
    const pub_args *a;
    char tmpdir[PATH_MAX];   /* <repo>/pool/.tmp-publish-XXXXXX, "" if none */
    int lockfd;
    si_key *signer;
    int64_t now;
} pub_ctx;

static int usage_error(const char *msg)
{
    fprintf(stderr, "sysimage publish: %s (see --help)\n", msg);
    return SI_ERR_USAGE;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '+' && c != '-')))
            return false;
    }
    return true;
}

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static si_result pathf(char *buf, size_t cap, si_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static si_result pathf(char *buf, size_t cap, si_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return si_err_set(err, SI_ERR_USAGE, "path too long: %s...", buf);
    return SI_OK;
}

static si_result mkdir_p(const char *path, si_err *err)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof(buf))
        return si_err_set(err, SI_ERR_USAGE, "%s: path too long", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return si_err_set(err, SI_ERR_IO, "%s: mkdir: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return SI_OK;
}

static si_result mkdir_p_parent(const char *path, si_err *err)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof(buf))
        return si_err_set(err, SI_ERR_USAGE, "%s: path too long", path);
    strcpy(buf, path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return SI_OK;
    *slash = '\0';
    return mkdir_p(buf, err);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------ signing */

/* Write path with content, keeping path+".sig" valid for whatever a reader
 * sees: first a .sig with stanzas for the new and the old bytes, then the
 * new file, then a .sig for the new bytes only. */
static si_result write_signed(pub_ctx *c, const char *path, const char *content, si_err *err)
{
    char sigpath[PATH_MAX];
    si_result r = pathf(sigpath, sizeof(sigpath), err, "%s.sig", path);
    if (r != SI_OK)
        return r;
    size_t len = strlen(content);
    uint8_t newd[SI_SHA256_LEN], oldd[SI_SHA256_LEN];
    si_sha256_buf(content, len, newd);
    bool have_old = si_sha256_file(path, oldd, NULL) == 0;
    si_sigfile *sf = calloc(1, sizeof(*sf));
    if (!sf)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", sigpath);
    if ((r = si_sigfile_add(sf, c->signer, newd, err)) != SI_OK)
        goto out;
    if (have_old && memcmp(oldd, newd, sizeof(newd)) != 0) {
        if ((r = si_sigfile_add(sf, c->signer, oldd, err)) != SI_OK ||
            (r = si_sigfile_write(sigpath, sf, err)) != SI_OK)
            goto out;
        sf->count = 1; /* keep the stanza for the new bytes only */
    }
    int e = si_write_file_atomic(path, content, len, 0644);
    if (e < 0) {
        r = si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-e));
        goto out;
    }
    r = si_sigfile_write(sigpath, sf, err);
out:
    free(sf);
    return r;
}

/* ------------------------------------------------------------ pool */

static const char *comp_ext(si_compression comp)
{
    return comp == SI_COMP_XZ ? "tar.xz" : "tar.zst";
}

/* Move tmp (synced first) into the pool as pool/<name>-<sha256>.<ext>, sign
 * it, and fill f. An identical file already there is reused as it is: pool
 * files and their .sig never change once published (cacheable forever); a
 * missing .sig (crash between rename and signing) is written. */
static si_result pool_add(pub_ctx *c, const char *tmp, const char *name, const char *ext,
                          int64_t order, si_index_file *f, si_err *err)
{
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int e = si_sha256_file(tmp, d, &size);
    if (e < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", tmp, strerror(-e));
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, sizeof(d), hex);
    char base[NAME_MAX + 1], final[PATH_MAX];
    si_result r = pathf(base, sizeof(base), err, "%s-%s.%s", name, hex, ext);
    if (r == SI_OK)
        r = pathf(final, sizeof(final), err, "%s/pool/%s", c->a->repo, base);
    if (r != SI_OK)
        return r;
    if (exists(final)) {
        uint8_t d2[SI_SHA256_LEN];
        if (si_sha256_file(final, d2, NULL) < 0 || memcmp(d, d2, sizeof(d)) != 0)
            return si_err_set(err, SI_ERR_EXISTS, "%s: exists with other content", final);
        unlink(tmp);
    } else {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        bool synced = fd >= 0 && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (!synced || chmod(tmp, 0644) < 0 || rename(tmp, final) < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", final, strerror(errno));
        si_fsync_parent_dir(final);
    }
    char sigpath[PATH_MAX];
    if ((r = pathf(sigpath, sizeof(sigpath), err, "%s.sig", final)) != SI_OK)
        return r;
    if (!exists(sigpath) && (r = si_sign_file(final, c->signer, false, err)) != SI_OK)
        return r;
    memset(f, 0, sizeof(*f));
    if (asprintf(&f->path, "/pool/%s", base) < 0 || asprintf(&f->signature, "/pool/%s.sig", base) < 0)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    memcpy(f->checksum, hex, sizeof(f->checksum));
    f->size = size;
    f->order = order;
    return SI_OK;
}

/* A device tarball must be zstd or xz compressed and hold only system/...
 * and partitions/<name>.img members (never system, userdata, cache). */
static si_result check_device_tarball(const char *path, const char **ext, si_err *err)
{
    unsigned char m[6] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: %s", path, strerror(errno));
    size_t got = fread(m, 1, sizeof(m), fp);
    fclose(fp);
    static const unsigned char zst[4] = {0x28, 0xb5, 0x2f, 0xfd};
    static const unsigned char xz[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    if (got >= 4 && memcmp(m, zst, 4) == 0)
        *ext = "tar.zst";
    else if (got == 6 && memcmp(m, xz, 6) == 0)
        *ext = "tar.xz";
    else
        return si_err_set(err, SI_ERR_UNSUPPORTED,
                          "%s: device tarball must be zstd or xz compressed", path);
    struct archive *a = si_tar_reader_new();
    if (!a)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    si_result r = SI_OK;
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
        r = si_err_set(err, SI_ERR_PARSE, "%s: %s", path, archive_error_string(a));
        goto out;
    }
    size_t count = 0;
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK) {
            r = si_err_set(err, SI_ERR_PARSE, "%s: %s", path, archive_error_string(a));
            goto out;
        }
        const char *n = archive_entry_pathname(e);
        if (!n)
            n = "";
        while (n[0] == '.' && n[1] == '/')
            n += 2;
        bool ok = false;
        if (strncmp(n, "system/", 7) == 0 || strcmp(n, "system") == 0) {
            ok = strstr(n, "/../") == NULL && (strlen(n) < 3 || strcmp(n + strlen(n) - 3, "/..") != 0);
        } else if (strncmp(n, "partitions/", 11) == 0) {
            const char *p = n + 11;
            size_t l = strlen(p);
            ok = l > 4 && !strchr(p, '/') && strcmp(p + l - 4, ".img") == 0 &&
                 archive_entry_filetype(e) == AE_IFREG && strcmp(p, "system.img") != 0 &&
                 strcmp(p, "userdata.img") != 0 && strcmp(p, "cache.img") != 0 && p[0] != '.';
        } else if (strcmp(n, "partitions") == 0 || strcmp(n, "partitions/") == 0) {
            ok = archive_entry_filetype(e) == AE_IFDIR;
        }
        if (!ok) {
            r = si_err_set(err, SI_ERR_UNSAFE_PATH,
                           "%s: member '%s' is neither system/<path> nor partitions/<name>.img",
                           path, archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
            goto out;
        }
        count++;
    }
    if (count == 0)
        r = si_err_set(err, SI_ERR_PARSE, "%s: device tarball is empty", path);
out:
    archive_read_free(a);
    return r;
}

static si_result copy_file(const char *from, const char *to, si_err *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return si_err_set(err, SI_ERR_IO, "%s: %s", to, strerror(e));
    }
    char buf[64 * 1024];
    si_result r = SI_OK;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = si_err_set(err, SI_ERR_IO, "%s: %s", from, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        int e = si_write_all(out, buf, (size_t)n);
        if (e < 0) {
            r = si_err_set(err, SI_ERR_IO, "%s: %s", to, strerror(-e));
            break;
        }
    }
    if (r == SI_OK && fsync(out) < 0)
        r = si_err_set(err, SI_ERR_IO, "%s: fsync: %s", to, strerror(errno));
    close(in);
    close(out);
    return r;
}

/* ------------------------------------------------------------ keyrings */

/* Copy KEYDIR/<src> and its .sig to <repo>/<dst> (+ .sig) when they differ. */
static si_result publish_keyring(pub_ctx *c, const char *src, const char *dst, si_err *err)
{
    for (int pass = 0; pass < 2; pass++) {
        char from[PATH_MAX], to[PATH_MAX];
        const char *suffix = pass ? "" : ".sig"; /* signature first */
        si_result r = pathf(from, sizeof(from), err, "%s%s", src, suffix);
        if (r == SI_OK)
            r = pathf(to, sizeof(to), err, "%s/%s%s", c->a->repo, dst, suffix);
        if (r != SI_OK)
            return r;
        char *buf = NULL, *old = NULL;
        size_t len = 0, oldlen = 0;
        int e = si_read_file(from, SI_KEYRING_MAX_BYTES, &buf, &len);
        if (e < 0)
            return si_err_set(err, e == -ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s",
                              from, strerror(-e));
        bool same = si_read_file(to, SI_KEYRING_MAX_BYTES, &old, &oldlen) == 0 &&
                    oldlen == len && memcmp(old, buf, len) == 0;
        free(old);
        if (!same && (r = mkdir_p_parent(to, err)) == SI_OK) {
            e = si_write_file_atomic(to, buf, len, 0644);
            if (e < 0)
                r = si_err_set(err, SI_ERR_IO, "%s: %s", to, strerror(-e));
        }
        free(buf);
        if (r != SI_OK)
            return r;
    }
    return SI_OK;
}

/* The device-signing keyring for the model: KEYDIR/<device>/device-signing.keyring,
 * else KEYDIR/device-signing.keyring when its model is the device (or any). */
static si_result find_device_keyring(pub_ctx *c, char *out, size_t cap, bool *found, si_err *err)
{
    *found = false;
    for (int i = 0; i < 2; i++) {
        si_result r = i == 0 ? pathf(out, cap, err, "%s/%s/device-signing.keyring", c->a->keys,
                                     c->a->device)
                             : pathf(out, cap, err, "%s/device-signing.keyring", c->a->keys);
        if (r != SI_OK)
            return r;
        if (!exists(out))
            continue;
        si_keyring *kr = NULL;
        if ((r = si_keyring_load(out, &kr, err)) != SI_OK)
            return si_err_prefix(err, "%s", out);
        bool ok = kr->type == SI_KR_DEVICE_SIGNING &&
                  (kr->model[0] == '\0' || strcmp(kr->model, c->a->device) == 0);
        bool wrong_type = kr->type != SI_KR_DEVICE_SIGNING;
        si_keyring_free(kr);
        if (wrong_type)
            return si_err_set(err, SI_ERR_KEYRING_TYPE, "%s: not a device-signing keyring", out);
        if (ok) {
            *found = true;
            return SI_OK;
        }
    }
    return SI_OK;
}

static si_result publish_keyrings(pub_ctx *c, bool *have_device_kr, si_err *err)
{
    static const char *const required[] = {"image-master", "image-signing"};
    char src[PATH_MAX], dst[PATH_MAX];
    si_result r;
    for (size_t i = 0; i < 2; i++) {
        if ((r = pathf(src, sizeof(src), err, "%s/%s.keyring", c->a->keys, required[i])) != SI_OK ||
            (r = pathf(dst, sizeof(dst), err, "keyrings/%s.keyring", required[i])) != SI_OK ||
            (r = publish_keyring(c, src, dst, err)) != SI_OK)
            return r;
    }
    if ((r = pathf(src, sizeof(src), err, "%s/blacklist.keyring", c->a->keys)) != SI_OK)
        return r;
    if (exists(src) && (r = publish_keyring(c, src, "keyrings/blacklist.keyring", err)) != SI_OK)
        return r;
    *have_device_kr = false;
    if (!c->a->device)
        return SI_OK;
    if ((r = find_device_keyring(c, src, sizeof(src), have_device_kr, err)) != SI_OK)
        return r;
    if (*have_device_kr &&
        ((r = pathf(dst, sizeof(dst), err, "keyrings/%s/device-signing.keyring", c->a->device)) !=
             SI_OK ||
         (r = publish_keyring(c, src, dst, err)) != SI_OK))
        return r;
    return SI_OK;
}

/* ------------------------------------------------------------ channels */

static void chan_devices_free(si_channel *ch)
{
    for (size_t d = 0; d < ch->ndevices; d++) {
        free(ch->devices[d].name);
        free(ch->devices[d].index);
        free(ch->devices[d].keyring_path);
        free(ch->devices[d].keyring_signature);
    }
    free(ch->devices);
    ch->devices = NULL;
    ch->ndevices = 0;
}

/* Our own deep copies (never passed to si_channels_free). */
static void chs_free(si_channels *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->nchannels; i++) {
        free(ch->channels[i].name);
        free(ch->channels[i].alias);
        free(ch->channels[i].redirect);
        chan_devices_free(&ch->channels[i]);
    }
    free(ch->channels);
    free(ch);
}

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static bool copy_devices(si_channel *dst, const si_channel *src)
{
    chan_devices_free(dst);
    if (src->ndevices == 0)
        return true;
    dst->devices = calloc(src->ndevices, sizeof(*dst->devices));
    if (!dst->devices)
        return false;
    dst->ndevices = src->ndevices;
    bool ok = true;
    for (size_t d = 0; d < src->ndevices; d++) {
        dst->devices[d].name = dup_or_null(src->devices[d].name, &ok);
        dst->devices[d].index = dup_or_null(src->devices[d].index, &ok);
        dst->devices[d].keyring_path = dup_or_null(src->devices[d].keyring_path, &ok);
        dst->devices[d].keyring_signature = dup_or_null(src->devices[d].keyring_signature, &ok);
    }
    return ok;
}

static si_result chs_load(const char *repo, si_channels **out, si_err *err)
{
    char path[PATH_MAX];
    si_result r = pathf(path, sizeof(path), err, "%s/channels.json", repo);
    if (r != SI_OK)
        return r;
    si_channels *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    *out = ch;
    if (!exists(path))
        return SI_OK;
    si_channels *src = NULL;
    if ((r = si_channels_load(path, &src, err)) != SI_OK)
        return r;
    bool ok = true;
    if (src->nchannels) {
        ch->channels = calloc(src->nchannels, sizeof(*ch->channels));
        ok = ch->channels != NULL;
    }
    for (size_t i = 0; ok && i < src->nchannels; i++) {
        si_channel *d = &ch->channels[i];
        const si_channel *s = &src->channels[i];
        ch->nchannels++;
        d->name = dup_or_null(s->name, &ok);
        d->alias = dup_or_null(s->alias, &ok);
        d->redirect = dup_or_null(s->redirect, &ok);
        d->hidden = s->hidden;
        ok = ok && copy_devices(d, s);
    }
    si_channels_free(src);
    return ok ? SI_OK : si_err_set(err, SI_ERR_NOMEM, "out of memory");
}

static si_channel *chs_get(si_channels *ch, const char *name, bool create)
{
    for (size_t i = 0; i < ch->nchannels; i++)
        if (strcmp(ch->channels[i].name, name) == 0)
            return &ch->channels[i];
    if (!create)
        return NULL;
    si_channel *n = realloc(ch->channels, (ch->nchannels + 1) * sizeof(*n));
    if (!n)
        return NULL;
    ch->channels = n;
    si_channel *c = &n[ch->nchannels];
    memset(c, 0, sizeof(*c));
    if (!(c->name = strdup(name)))
        return NULL;
    ch->nchannels++;
    return c;
}

static si_channel_device *chan_get_device(si_channel *c, const char *name)
{
    for (size_t i = 0; i < c->ndevices; i++)
        if (strcmp(c->devices[i].name, name) == 0)
            return &c->devices[i];
    si_channel_device *n = realloc(c->devices, (c->ndevices + 1) * sizeof(*n));
    if (!n)
        return NULL;
    c->devices = n;
    si_channel_device *d = &n[c->ndevices];
    memset(d, 0, sizeof(*d));
    if (!(d->name = strdup(name)))
        return NULL;
    c->ndevices++;
    return d;
}

/* Alias channels serve their target's indexes: copy the target's devices. */
static si_result sync_aliases(si_channels *ch, si_err *err)
{
    for (size_t i = 0; i < ch->nchannels; i++) {
        si_channel *a = &ch->channels[i];
        if (!a->alias)
            continue;
        const si_channel *t = NULL;
        for (size_t j = 0; j < ch->nchannels; j++)
            if (j != i && strcmp(ch->channels[j].name, a->alias) == 0)
                t = &ch->channels[j];
        if (t && !copy_devices(a, t))
            return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    return SI_OK;
}

static si_result chs_write(pub_ctx *c, si_channels *ch, si_err *err)
{
    si_result r = sync_aliases(ch, err);
    if (r != SI_OK)
        return r;
    char *json = NULL;
    if ((r = si_channels_format(ch, &json, err)) != SI_OK)
        return si_err_prefix(err, "channels.json");
    char path[PATH_MAX];
    if ((r = pathf(path, sizeof(path), err, "%s/channels.json", c->a->repo)) == SI_OK)
        r = write_signed(c, path, json, err);
    free(json);
    return r;
}

/* ------------------------------------------------------------ index */

static void image_free_owned(si_image *img)
{
    for (size_t f = 0; f < img->nfiles; f++) {
        free(img->files[f].path);
        free(img->files[f].signature);
    }
    free(img->files);
    for (size_t d = 0; d < img->ndescriptions; d++) {
        free(img->descriptions[d].key);
        free(img->descriptions[d].text);
    }
    free(img->descriptions);
    free(img->version_detail);
    memset(img, 0, sizeof(*img));
}

static si_result index_path(pub_ctx *c, char *buf, size_t cap, si_err *err)
{
    return pathf(buf, cap, err, "%s/%s/%s/index.json", c->a->repo, c->a->channel, c->a->device);
}

/* Load the channel/device index, or NULL when none is published yet. */
static si_result index_load_opt(pub_ctx *c, si_index **out, si_err *err)
{
    char path[PATH_MAX];
    si_result r = index_path(c, path, sizeof(path), err);
    *out = NULL;
    if (r != SI_OK || !exists(path))
        return r;
    return si_index_load(path, out, err);
}

static int64_t index_max_version(const si_index *idx)
{
    int64_t m = 0;
    for (size_t i = 0; idx && i < idx->nimages; i++)
        if (idx->images[i].version > m)
            m = idx->images[i].version;
    return m;
}

/* Write the view: loaded images (shallow) + extra images, generated now. */
static si_result index_write(pub_ctx *c, const si_index *old, si_image *extra, size_t nextra,
                             int64_t phase_version, int phase, si_err *err)
{
    size_t nold = old ? old->nimages : 0;
    si_index view = {0};
    view.images = calloc(nold + nextra + 1, sizeof(si_image));
    if (!view.images)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nold; i++)
        view.images[i] = old->images[i];
    for (size_t i = 0; i < nextra; i++)
        view.images[nold + i] = extra[i];
    view.nimages = nold + nextra;
    for (size_t i = 0; i < nold && phase >= 0; i++)
        if (view.images[i].version == phase_version)
            view.images[i].phased_percentage = phase;
    /* generated_at never goes backwards, even when the clock does. */
    int64_t t = c->now;
    if (old && old->generated_at_epoch > t)
        t = old->generated_at_epoch;
    char ts[64];
    si_index_format_time(t, ts);
    view.generated_at = ts;
    view.generated_at_epoch = t;
    char *json = NULL;
    si_result r = si_index_format(&view, &json, err);
    free(view.images);
    if (r != SI_OK)
        return si_err_prefix(err, "%s/%s/index.json", c->a->channel, c->a->device);
    char path[PATH_MAX], dir[PATH_MAX];
    if ((r = index_path(c, path, sizeof(path), err)) == SI_OK &&
        (r = pathf(dir, sizeof(dir), err, "%s/%s/%s", c->a->repo, c->a->channel,
                   c->a->device)) == SI_OK &&
        (r = mkdir_p(dir, err)) == SI_OK)
        r = write_signed(c, path, json, err);
    free(json);
    return r;
}

/* The rootfs full tarball of version v in the pool (local path). */
static si_result find_full_rootfs(pub_ctx *c, const si_index *idx, int64_t v, char *out,
                                  size_t cap, bool *found, si_err *err)
{
    char prefix[NAME_MAX + 1];
    si_result r = pathf(prefix, sizeof(prefix), err, "/pool/%s-rootfs-full-", c->a->device);
    *found = false;
    if (r != SI_OK)
        return r;
    for (size_t i = 0; i < idx->nimages; i++) {
        const si_image *img = &idx->images[i];
        if (img->type != SI_IMAGE_FULL || img->version != v)
            continue;
        for (size_t f = 0; f < img->nfiles; f++) {
            const char *p = img->files[f].path;
            if (strncmp(p, prefix, strlen(prefix)) != 0 || strchr(p + 6, '/') ||
                strstr(p, ".."))
                continue;
            if ((r = pathf(out, cap, err, "%s%s", c->a->repo, p)) != SI_OK)
                return r;
            if (!exists(out))
                return si_err_set(err, SI_ERR_MISSING_FILE,
                                  "%s: full image of version %lld is missing from the pool", out,
                                  (long long)v);
            *found = true;
            return SI_OK;
        }
    }
    return SI_OK;
}

/* Versions (descending) of the fulls in idx, up to k of them. */
static size_t previous_versions(const si_index *idx, int k, int64_t *out)
{
    size_t n = 0;
    int64_t below = INT64_MAX;
    while (idx && n < (size_t)k) {
        int64_t best = -1;
        for (size_t i = 0; i < idx->nimages; i++) {
            const si_image *img = &idx->images[i];
            if (img->type == SI_IMAGE_FULL && img->version < below && img->version > best)
                best = img->version;
        }
        if (best < 0)
            break;
        out[n++] = best;
        below = best;
    }
    return n;
}

static si_result set_description(si_image *img, const char *text, si_err *err)
{
    if (!text)
        return SI_OK;
    img->descriptions = calloc(1, sizeof(*img->descriptions));
    if (!img->descriptions)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    img->ndescriptions = 1;
    img->descriptions[0].key = strdup("description");
    img->descriptions[0].text = strdup(text);
    if (!img->descriptions[0].key || !img->descriptions[0].text)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    return SI_OK;
}

static si_result image_add_file(si_image *img, const si_index_file *f, si_err *err)
{
    si_index_file *n = realloc(img->files, (img->nfiles + 1) * sizeof(*n));
    if (!n)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    img->files = n;
    n[img->nfiles] = *f;
    if (!(n[img->nfiles].path = strdup(f->path)) ||
        !(n[img->nfiles].signature = strdup(f->signature))) {
        free(n[img->nfiles].path);
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    img->nfiles++;
    return SI_OK;
}

/* ------------------------------------------------------------ run */

static void remove_tree_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p))
            unlink(p);
    closedir(d);
    rmdir(dir);
}

static void ctx_free(pub_ctx *c)
{
    if (c->tmpdir[0])
        remove_tree_files(c->tmpdir);
    if (c->lockfd >= 0)
        close(c->lockfd); /* releases the flock */
    si_key_free(c->signer);
}

/* Create the tree, take the repository lock, load and check the signing key. */
static si_result ctx_open(pub_ctx *c, si_err *err)
{
    char p[PATH_MAX];
    si_result r;
    if ((r = pathf(p, sizeof(p), err, "%s/pool", c->a->repo)) != SI_OK ||
        (r = mkdir_p(p, err)) != SI_OK ||
        (r = pathf(p, sizeof(p), err, "%s/keyrings", c->a->repo)) != SI_OK ||
        (r = mkdir_p(p, err)) != SI_OK ||
        (r = pathf(p, sizeof(p), err, "%s/.publish.lock", c->a->repo)) != SI_OK)
        return r;
    c->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->lockfd < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", p, strerror(errno));
    while (flock(c->lockfd, LOCK_EX) < 0)
        if (errno != EINTR)
            return si_err_set(err, SI_ERR_IO, "%s: lock: %s", p, strerror(errno));
    /* Under the lock, temp dirs of a publish that crashed are stale. */
    if ((r = pathf(p, sizeof(p), err, "%s/pool", c->a->repo)) != SI_OK)
        return r;
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        char stale[PATH_MAX];
        while ((e = readdir(d)))
            if (strncmp(e->d_name, ".tmp-publish-", 13) == 0 &&
                snprintf(stale, sizeof(stale), "%s/%s", p, e->d_name) < (int)sizeof(stale))
                remove_tree_files(stale);
        closedir(d);
    }
    if ((r = pathf(p, sizeof(p), err, "%s/image-signing.key", c->a->keys)) != SI_OK)
        return r;
    if ((r = si_key_load_private_file(p, &c->signer, err)) != SI_OK)
        return si_err_prefix(err, "%s", p);
    /* Devices verify with the published image-signing keyring: the key must be in it. */
    if ((r = pathf(p, sizeof(p), err, "%s/image-signing.keyring", c->a->keys)) != SI_OK)
        return r;
    si_keyring *kr = NULL;
    if ((r = si_keyring_load(p, &kr, err)) != SI_OK)
        return si_err_prefix(err, "%s", p);
    bool in = kr->type == SI_KR_IMAGE_SIGNING && si_keyring_has_key_id(kr, si_key_id(c->signer));
    si_keyring_free(kr);
    if (!in)
        return si_err_set(err, SI_ERR_BAD_KEY,
                          "%s: image-signing.key (%s) is not in this image-signing keyring", p,
                          si_key_id(c->signer));
    return SI_OK;
}

static si_result make_tmpdir(pub_ctx *c, si_err *err)
{
    si_result r = pathf(c->tmpdir, sizeof(c->tmpdir), err, "%s/pool/.tmp-publish-XXXXXX",
                        c->a->repo);
    if (r != SI_OK)
        return r;
    if (!mkdtemp(c->tmpdir)) {
        int e = errno;
        c->tmpdir[0] = '\0';
        return si_err_set(err, SI_ERR_IO, "%s/pool: mkdtemp: %s", c->a->repo, strerror(e));
    }
    return SI_OK;
}

static si_result do_publish(pub_ctx *c, si_err *err)
{
    const pub_args *a = c->a;
    si_channels *ch = NULL;
    si_index *idx = NULL;
    si_image imgs[1 + MAX_DELTAS_BACK];
    size_t nimgs = 0;
    memset(imgs, 0, sizeof(imgs));
    si_index_file fl[3];
    memset(fl, 0, sizeof(fl));
    char tmp[PATH_MAX], fullpath[PATH_MAX], name[NAME_MAX + 1];
    si_result r;

    if ((r = chs_load(a->repo, &ch, err)) != SI_OK)
        goto out;
    const si_channel *existing = chs_get(ch, a->channel, false);
    if (existing && existing->alias) {
        r = si_err_set(err, SI_ERR_USAGE, "channel %s is an alias of %s: publish to %s",
                       a->channel, existing->alias, existing->alias);
        goto out;
    }
    if ((r = index_load_opt(c, &idx, err)) != SI_OK)
        goto out;
    for (size_t i = 0; idx && i < idx->nimages; i++)
        if (idx->images[i].version == a->version) {
            r = si_err_set(err, SI_ERR_EXISTS, "%s/%s: version %lld is already published",
                           a->channel, a->device, (long long)a->version);
            goto out;
        }
    int64_t maxv = index_max_version(idx);
    if (a->version <= maxv) {
        r = si_err_set(err, SI_ERR_DOWNGRADE,
                       "%s/%s: version %lld is not greater than the published %lld", a->channel,
                       a->device, (long long)a->version, (long long)maxv);
        goto out;
    }
    const char *dev_ext = NULL;
    if (a->device_tarball && (r = check_device_tarball(a->device_tarball, &dev_ext, err)) != SI_OK)
        goto out;
    if ((r = make_tmpdir(c, err)) != SI_OK)
        goto out;
    const char *ext = comp_ext(a->opts.compression);

    /* The full rootfs: kept in the tmpdir until the deltas are built. */
    if ((r = pathf(fullpath, sizeof(fullpath), err, "%s/rootfs-full", c->tmpdir)) != SI_OK)
        goto out;
    fprintf(stderr, "publish: building full rootfs of version %lld\n", (long long)a->version);
    if ((r = si_build_full(a->tree ? a->tree : a->tarball, fullpath, &a->opts, err)) != SI_OK)
        goto out;
    /* The version tarball and the device tarball, shared by every image. */
    si_version v = {.build = a->version};
    snprintf(v.channel, sizeof(v.channel), "%s", a->channel);
    if ((r = pathf(tmp, sizeof(tmp), err, "%s/version", c->tmpdir)) != SI_OK ||
        (r = si_version_build_tarball(&v, tmp, &a->opts, err)) != SI_OK ||
        (r = pathf(name, sizeof(name), err, "version-%s-%lld", a->channel,
                   (long long)a->version)) != SI_OK ||
        (r = pool_add(c, tmp, name, ext, 2, &fl[2], err)) != SI_OK)
        goto out;
    if (a->device_tarball) {
        if ((r = pathf(tmp, sizeof(tmp), err, "%s/device", c->tmpdir)) != SI_OK ||
            (r = copy_file(a->device_tarball, tmp, err)) != SI_OK ||
            (r = pathf(name, sizeof(name), err, "%s-device", a->device)) != SI_OK ||
            (r = pool_add(c, tmp, name, dev_ext, 1, &fl[1], err)) != SI_OK)
            goto out;
    }

    /* Deltas from the previous fulls, newest first. */
    int64_t bases[MAX_DELTAS_BACK];
    size_t nb = previous_versions(idx, a->deltas_back, bases);
    for (size_t i = 0; i < nb; i++) {
        char old[PATH_MAX];
        bool found = false;
        if ((r = find_full_rootfs(c, idx, bases[i], old, sizeof(old), &found, err)) != SI_OK)
            goto out;
        if (!found) {
            fprintf(stderr, "publish: version %lld has no rootfs full in the pool: no delta\n",
                    (long long)bases[i]);
            continue;
        }
        fprintf(stderr, "publish: building delta %lld -> %lld\n", (long long)bases[i],
                (long long)a->version);
        si_index_file df;
        si_image *img = &imgs[1 + nimgs];
        if ((r = pathf(tmp, sizeof(tmp), err, "%s/delta", c->tmpdir)) != SI_OK ||
            (r = si_build_delta(old, fullpath, tmp, &a->opts, err)) != SI_OK ||
            (r = pathf(name, sizeof(name), err, "%s-rootfs-delta-%lld-%lld", a->device,
                       (long long)bases[i], (long long)a->version)) != SI_OK ||
            (r = pool_add(c, tmp, name, ext, 0, &df, err)) != SI_OK)
            goto out;
        img->type = SI_IMAGE_DELTA;
        img->version = a->version;
        img->has_base = true;
        img->base = bases[i];
        img->phased_percentage = a->phased;
        nimgs++;
        r = image_add_file(img, &df, err);
        free(df.path);
        free(df.signature);
        if (r != SI_OK)
            goto out;
    }
    if ((r = pathf(name, sizeof(name), err, "%s-rootfs-full-%lld", a->device,
                   (long long)a->version)) != SI_OK ||
        (r = pool_add(c, fullpath, name, ext, 0, &fl[0], err)) != SI_OK)
        goto out;

    si_image *full = &imgs[0];
    full->type = SI_IMAGE_FULL;
    full->version = a->version;
    full->phased_percentage = a->phased;
    for (size_t i = 0; i <= nimgs; i++) {
        si_image *img = &imgs[i];
        if (i == 0 && (r = image_add_file(img, &fl[0], err)) != SI_OK)
            goto out;
        for (size_t f = 1; f < 3; f++)
            if (fl[f].path && (r = image_add_file(img, &fl[f], err)) != SI_OK)
                goto out;
        if ((r = set_description(img, a->description, err)) != SI_OK)
            goto out;
    }

    bool have_dkr = false;
    if ((r = publish_keyrings(c, &have_dkr, err)) != SI_OK)
        goto out;
    if ((r = index_write(c, idx, imgs, nimgs + 1, -1, -1, err)) != SI_OK)
        goto out;

    si_channel *chan = chs_get(ch, a->channel, true);
    si_channel_device *dev = chan ? chan_get_device(chan, a->device) : NULL;
    if (!dev) {
        r = si_err_set(err, SI_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (a->hidden)
        chan->hidden = true;
    if (a->visible)
        chan->hidden = false;
    free(dev->index);
    free(dev->keyring_path);
    free(dev->keyring_signature);
    dev->keyring_path = dev->keyring_signature = NULL;
    if (asprintf(&dev->index, "/%s/%s/index.json", a->channel, a->device) < 0 ||
        (have_dkr &&
         (asprintf(&dev->keyring_path, "/keyrings/%s/device-signing.keyring", a->device) < 0 ||
          asprintf(&dev->keyring_signature, "/keyrings/%s/device-signing.keyring.sig",
                   a->device) < 0))) {
        dev->index = NULL;
        r = si_err_set(err, SI_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = chs_write(c, ch, err)) != SI_OK)
        goto out;
    printf("published %s/%s version %lld: full", a->channel, a->device, (long long)a->version);
    for (size_t i = 0; i < nimgs; i++)
        printf(", delta from %lld", (long long)imgs[1 + i].base);
    printf("\n");
out:
    for (size_t i = 0; i < 3; i++) {
        free(fl[i].path);
        free(fl[i].signature);
    }
    for (size_t i = 0; i < 1 + MAX_DELTAS_BACK; i++)
        image_free_owned(&imgs[i]);
    si_index_free(idx);
    chs_free(ch);
    return r;
}

static si_result do_edit(pub_ctx *c, si_err *err)
{
    const pub_args *a = c->a;
    si_channels *ch = NULL;
    si_index *idx = NULL;
    si_result r = chs_load(a->repo, &ch, err);
    if (r != SI_OK)
        goto out;
    si_channel *chan = chs_get(ch, a->channel, false);
    if (a->alias) {
        const si_channel *t = chs_get(ch, a->alias, false);
        if (!t) {
            r = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: alias target %s: no such channel",
                           a->alias);
            goto out;
        }
        if (t->alias) {
            r = si_err_set(err, SI_ERR_USAGE, "channel %s is itself an alias of %s", a->alias,
                           t->alias);
            goto out;
        }
        for (size_t i = 0; i < ch->nchannels; i++)
            if (ch->channels[i].alias && strcmp(ch->channels[i].alias, a->channel) == 0) {
                r = si_err_set(err, SI_ERR_USAGE, "channel %s is the alias target of %s",
                               a->channel, ch->channels[i].name);
                goto out;
            }
        if (!(chan = chs_get(ch, a->channel, true))) {
            r = si_err_set(err, SI_ERR_NOMEM, "out of memory");
            goto out;
        }
        free(chan->alias);
        if (!(chan->alias = strdup(a->alias))) {
            r = si_err_set(err, SI_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (!chan) {
        r = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: channel %s: not found", a->channel);
        goto out;
    }
    if (a->hidden)
        chan->hidden = true;
    if (a->visible)
        chan->hidden = false;
    if (a->has_set_phase) {
        if (chan->alias) {
            r = si_err_set(err, SI_ERR_USAGE, "channel %s is an alias of %s: set the phase there",
                           a->channel, chan->alias);
            goto out;
        }
        if ((r = index_load_opt(c, &idx, err)) != SI_OK)
            goto out;
        if (!idx || idx->nimages == 0) {
            r = si_err_set(err, SI_ERR_NOT_FOUND, "%s/%s/index.json: nothing published",
                           a->channel, a->device);
            goto out;
        }
        int64_t v = index_max_version(idx);
        if ((r = index_write(c, idx, NULL, 0, v, a->set_phase, err)) != SI_OK)
            goto out;
        printf("%s/%s: version %lld phased at %d%%\n", a->channel, a->device, (long long)v,
               a->set_phase);
    }
    bool have_dkr = false;
    if ((r = publish_keyrings(c, &have_dkr, err)) != SI_OK ||
        (r = chs_write(c, ch, err)) != SI_OK)
        goto out;
    printf("channel %s:%s%s%s\n", a->channel, chan->alias ? " alias of " : "",
           chan->alias ? chan->alias : "", chan->hidden ? " hidden" : " visible");
out:
    si_index_free(idx);
    chs_free(ch);
    return r;
}

int cmd_publish(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, publish_usage))
        return SI_OK;
    static const struct option longopts[] = {
        {"repo", required_argument, NULL, OPT_REPO},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"version", required_argument, NULL, OPT_VERSION},
        {"tree", required_argument, NULL, OPT_TREE},
        {"tarball", required_argument, NULL, OPT_TARBALL},
        {"device-tarball", required_argument, NULL, OPT_DEVICE_TARBALL},
        {"deltas-back", required_argument, NULL, OPT_DELTAS_BACK},
        {"phased", required_argument, NULL, OPT_PHASED},
        {"description", required_argument, NULL, OPT_DESCRIPTION},
        {"compression", required_argument, NULL, OPT_COMPRESSION},
        {"level", required_argument, NULL, OPT_LEVEL},
        {"alias", required_argument, NULL, OPT_ALIAS},
        {"hidden", no_argument, NULL, OPT_HIDDEN},
        {"visible", no_argument, NULL, OPT_VISIBLE},
        {"set-phase", required_argument, NULL, OPT_SET_PHASE},
        {NULL, 0, NULL, 0},
    };
    pub_args a = {.deltas_back = 2, .phased = 100, .opts = {.compression = SI_COMP_ZSTD}};
    int64_t n;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case OPT_REPO: a.repo = optarg; break;
        case OPT_KEYS: a.keys = optarg; break;
        case OPT_CHANNEL: a.channel = optarg; break;
        case OPT_DEVICE: a.device = optarg; break;
        case OPT_TREE: a.tree = optarg; break;
        case OPT_TARBALL: a.tarball = optarg; break;
        case OPT_DEVICE_TARBALL: a.device_tarball = optarg; break;
        case OPT_DESCRIPTION: a.description = optarg; break;
        case OPT_ALIAS: a.alias = optarg; break;
        case OPT_HIDDEN: a.hidden = true; break;
        case OPT_VISIBLE: a.visible = true; break;
        case OPT_VERSION:
            if (!parse_int(optarg, 1, (int64_t)1 << 53, &n))
                return usage_error("--version: expected an integer in [1, 2^53]");
            a.version = n;
            a.has_version = true;
            break;
        case OPT_DELTAS_BACK:
            if (!parse_int(optarg, 0, MAX_DELTAS_BACK, &n))
                return usage_error("--deltas-back: expected an integer in [0, 32]");
            a.deltas_back = (int)n;
            break;
        case OPT_PHASED:
            if (!parse_int(optarg, 0, 100, &n))
                return usage_error("--phased: expected a percentage in [0, 100]");
            a.phased = (int)n;
            break;
        case OPT_SET_PHASE:
            if (!parse_int(optarg, 0, 100, &n))
                return usage_error("--set-phase: expected a percentage in [0, 100]");
            a.set_phase = (int)n;
            a.has_set_phase = true;
            break;
        case OPT_LEVEL:
            if (!parse_int(optarg, 0, 22, &n))
                return usage_error("--level: expected an integer in [0, 22]");
            a.opts.level = (int)n;
            break;
        case OPT_COMPRESSION:
            if (strcmp(optarg, "zstd") == 0)
                a.opts.compression = SI_COMP_ZSTD;
            else if (strcmp(optarg, "xz") == 0)
                a.opts.compression = SI_COMP_XZ;
            else
                return usage_error("--compression: expected zstd or xz");
            break;
        default:
            return usage_error("unknown option or missing argument");
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument");
    if (!a.repo || !a.keys || !a.channel)
        return usage_error("--repo, --keys and --channel are required");
    if (!valid_name(a.channel) || strcmp(a.channel, "pool") == 0 ||
        strcmp(a.channel, "keyrings") == 0)
        return usage_error("--channel: invalid channel name");
    if (a.device && !valid_name(a.device))
        return usage_error("--device: invalid device name");
    if (a.alias && !valid_name(a.alias))
        return usage_error("--alias: invalid channel name");
    if (a.hidden && a.visible)
        return usage_error("--hidden and --visible exclude each other");
    if (a.has_version) {
        if (!a.device)
            return usage_error("--device is required with --version");
        if (!a.tree == !a.tarball)
            return usage_error("exactly one of --tree and --tarball is required");
        if (a.alias || a.has_set_phase)
            return usage_error("--alias and --set-phase do not go with --version");
    } else {
        if (a.tree || a.tarball || a.device_tarball || a.description)
            return usage_error("--tree, --tarball, --device-tarball, --description need --version");
        if (!a.alias && !a.hidden && !a.visible && !a.has_set_phase)
            return usage_error("nothing to do: give --version, --alias, --hidden, --visible "
                               "or --set-phase");
        if (a.has_set_phase && !a.device)
            return usage_error("--set-phase needs --device");
        if (a.alias && strcmp(a.alias, a.channel) == 0)
            return usage_error("--alias: a channel cannot alias itself");
    }
    pub_ctx c = {.a = &a, .lockfd = -1, .now = (int64_t)time(NULL)};
    si_err err = {0};
    si_result r = ctx_open(&c, &err);
    if (r == SI_OK)
        r = a.has_version ? do_publish(&c, &err) : do_edit(&c, &err);
    ctx_free(&c);
    if (r != SI_OK) {
        err.code = r;
        return si_tool_fail(&err);
    }
    return SI_OK;
}
