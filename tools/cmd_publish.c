/* cmd_publish.c - `sysimage publish`: add a version to a static server tree
 * (docs/formats.md), or change a channel (alias, hidden) or the phasing of the
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
#include "manifest.h"
#include "key.h"
#include "keyring.h"
#include "layout.h"
#include "payload.h"
#include "result.h"
#include "sha256.h"
#include "sigfile.h"
#include "tarformat.h"
#include "version.h"
#include "version_tar.h"

#define NAME_MAX_LEN 64
#define MAX_DELTAS_BACK 32
#define DEFAULT_EXPIRES (7 * 86400)
#define MAX_EXPIRES (INT64_C(3650) * 86400)

static const char publish_usage[] =
    "usage: sysimage publish --repo DIR --keys KEYDIR --channel C --device D --version N\n"
    "                        (--tree T | --tarball T) [--device-tarball T2]\n"
    "                        [--deltas-back K] [--phased P] [--description TEXT]\n"
    "                        [--compression zstd|xz] [--level L] [--hidden]\n"
    "       sysimage publish --repo DIR --keys KEYDIR --channel C\n"
    "                        [--alias TARGET] [--hidden | --visible]\n"
    "                        [--device D --set-phase P] [--refresh [--device D]]\n\n"
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
    "of C/D, --refresh re-signs the unchanged index of C/D (every device of C\n"
    "without --device) with a new generated_at and expiry: run it from cron well\n"
    "before the expiry, or devices refuse the index as stale. The result is re-signed.\n\n"
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
    "  --level L            compression level (0 = library default)\n"
    "  --expires DURATION   every index written expires DURATION after its\n"
    "                       generated_at: N[s|h|d] (default 7d, at most 3650d)\n"
    "  --help               this text\n"
    "\n"
    "exit status: 0 on success, else an si_result code (lib/result.h), e.g.\n"
    "1 usage, 14 version not greater than the published, 17 unsafe member, 27 exists.\n";

enum {
    OPT_REPO = 256, OPT_KEYS, OPT_CHANNEL, OPT_DEVICE, OPT_VERSION, OPT_TREE, OPT_TARBALL,
    OPT_DEVICE_TARBALL, OPT_DELTAS_BACK, OPT_PHASED, OPT_DESCRIPTION, OPT_COMPRESSION,
    OPT_LEVEL, OPT_ALIAS, OPT_HIDDEN, OPT_VISIBLE, OPT_SET_PHASE, OPT_EXPIRES, OPT_REFRESH,
    OPT_HELP,
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
    bool refresh;
    int64_t expires;        /* seconds after generated_at */
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
    return si_tool_usage_error("publish", msg);
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
    int e = si_mkdir_p(path, 0755);
    if (e < 0)
        return si_err_set(err, e == -ENAMETOOLONG ? SI_ERR_USAGE : SI_ERR_IO, "%s: mkdir: %s",
                          path, strerror(-e));
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
    /* a first member `manifest` (sysimage build): the index binds it too */
    bool present = false;
    uint8_t md[SI_SHA256_LEN];
    if ((r = si_manifest_read_first(final, &present, md, &f->manifest_size, NULL, err)) != SI_OK)
        return r;
    f->has_manifest = present;
    if (present)
        si_hex_encode(md, sizeof(md), f->manifest_checksum);
    return SI_OK;
}

/* A device tarball member: system/<path> or partitions/<label>.img with a
 * label the device writes raw (lib/layout: never system, userdata, cache,
 * misc), a regular file; the partitions/ directory entry itself. What the
 * device would refuse is refused here, before anything is published. */
static si_result device_member_ok(const char *path, struct archive_entry *e, si_err *err)
{
    const char *n = archive_entry_pathname(e);
    if (!n)
        n = "";
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    if (strcmp(n, "partitions") == 0 || strcmp(n, "partitions/") == 0) {
        if (archive_entry_filetype(e) == AE_IFDIR)
            return SI_OK;
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s' is not a directory", path,
                          n);
    }
    si_member_kind kind;
    si_result r = si_layout_check_member_name(n, &kind, NULL, 0, err);
    if (r != SI_OK)
        return si_err_prefix(err, "%s: device tarball", path);
    if (kind == SI_MEMBER_REMOVED || kind == SI_MEMBER_PATCHED || kind == SI_MEMBER_PATCH)
        return si_err_set(err, SI_ERR_UNSAFE_PATH,
                          "%s: member '%s' belongs to deltas, not to a device tarball", path, n);
    if (kind == SI_MEMBER_PARTITION && archive_entry_filetype(e) != AE_IFREG)
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s' is not a regular file",
                          path, n);
    size_t l = strlen(n);
    if (kind == SI_MEMBER_SYSTEM &&
        (strstr(n, "/../") || (l >= 3 && strcmp(n + l - 3, "/..") == 0)))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: member '%s' climbs out of system/",
                          path, n);
    return SI_OK;
}

/* A device tarball must be zstd or xz compressed and hold only members that
 * device_member_ok accepts. */
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
        if ((r = device_member_ok(path, e, err)) != SI_OK)
            goto out;
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

/* channels.json of the tree, or an empty set when none is published yet;
 * freed by si_channels_free. */
static si_result chs_load(const char *repo, si_channels **out, si_err *err)
{
    char path[PATH_MAX];
    si_result r = pathf(path, sizeof(path), err, "%s/channels.json", repo);
    *out = NULL;
    if (r != SI_OK)
        return r;
    if (exists(path))
        return si_channels_load(path, out, err);
    if (!(*out = calloc(1, sizeof(**out))))
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    return SI_OK;
}

static si_channel *chs_find(si_channels *ch, const char *name)
{
    for (size_t i = 0; i < ch->nchannels; i++)
        if (strcmp(ch->channels[i].name, name) == 0)
            return &ch->channels[i];
    return NULL;
}

/* Alias channels serve their target's indexes: copy the target's devices. */
static si_result sync_aliases(si_channels *ch, si_err *err)
{
    for (size_t i = 0; i < ch->nchannels; i++) {
        si_channel *a = &ch->channels[i];
        const si_channel *t = a->alias ? chs_find(ch, a->alias) : NULL;
        si_result r;
        if (t && t != a && (r = si_channel_copy_devices(a, t, err)) != SI_OK)
            return r;
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

static si_result index_path(pub_ctx *c, const char *device, char *buf, size_t cap, si_err *err)
{
    return pathf(buf, cap, err, "%s/%s/%s/index.json", c->a->repo, c->a->channel, device);
}

/* Load the channel/device index, or NULL when none is published yet. */
static si_result index_load_opt(pub_ctx *c, const char *device, si_index **out, si_err *err)
{
    char path[PATH_MAX];
    si_result r = index_path(c, device, path, sizeof(path), err);
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

/* Write <channel>/<device>/index.json (+ .sig): the loaded images (shallow)
 * and the extra ones, generated now (never before the previous index: the
 * clock may go backwards, devices refuse an older index) and expiring
 * --expires later. phase >= 0 sets the phased-percentage of phase_version. */
static si_result index_write(pub_ctx *c, const char *device, const si_index *old,
                             si_image *extra, size_t nextra, int64_t phase_version, int phase,
                             si_err *err)
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
    view.generated_at_epoch = c->now;
    if (old && old->generated_at_epoch > view.generated_at_epoch)
        view.generated_at_epoch = old->generated_at_epoch;
    view.expires_epoch = view.generated_at_epoch + c->a->expires;
    char *json = NULL;
    si_result r = si_index_format(&view, &json, err);
    free(view.images);
    if (r != SI_OK)
        return si_err_prefix(err, "%s/%s/index.json", c->a->channel, device);
    char path[PATH_MAX], dir[PATH_MAX];
    if ((r = index_path(c, device, path, sizeof(path), err)) == SI_OK &&
        (r = pathf(dir, sizeof(dir), err, "%s/%s/%s", c->a->repo, c->a->channel, device)) ==
            SI_OK &&
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

/* Everything one `publish --version` builds, released by build_free. */
typedef struct pub_build {
    si_index *idx;                      /* the published index, NULL if none */
    si_channels *ch;
    char fullpath[PATH_MAX];            /* the new rootfs full, in the tmpdir until pooled */
    si_index_file shared[2];            /* device tarball (order 1), version tarball (order 2) */
    si_image imgs[1 + MAX_DELTAS_BACK]; /* [0] the full, then the deltas */
    size_t ndeltas;
} pub_build;

static void build_free(pub_build *b)
{
    for (size_t i = 0; i < 2; i++) {
        free(b->shared[i].path);
        free(b->shared[i].signature);
    }
    for (size_t i = 0; i < 1 + MAX_DELTAS_BACK; i++)
        si_image_clear(&b->imgs[i]);
    si_index_free(b->idx);
    si_channels_free(b->ch);
}

/* The channel is not an alias, and N is new and greater than every published version. */
static si_result check_new_version(pub_ctx *c, pub_build *b, si_err *err)
{
    const pub_args *a = c->a;
    si_result r = chs_load(a->repo, &b->ch, err);
    if (r != SI_OK)
        return r;
    const si_channel *existing = chs_find(b->ch, a->channel);
    if (existing && existing->alias)
        return si_err_set(err, SI_ERR_USAGE, "channel %s is an alias of %s: publish to %s",
                          a->channel, existing->alias, existing->alias);
    if ((r = index_load_opt(c, a->device, &b->idx, err)) != SI_OK)
        return r;
    for (size_t i = 0; b->idx && i < b->idx->nimages; i++)
        if (b->idx->images[i].version == a->version)
            return si_err_set(err, SI_ERR_EXISTS, "%s/%s: version %lld is already published",
                              a->channel, a->device, (long long)a->version);
    int64_t maxv = index_max_version(b->idx);
    if (a->version <= maxv)
        return si_err_set(err, SI_ERR_DOWNGRADE,
                          "%s/%s: version %lld is not greater than the published %lld",
                          a->channel, a->device, (long long)a->version, (long long)maxv);
    return SI_OK;
}

/* The rootfs full (kept in the tmpdir for the deltas), the version tarball
 * and the device tarball (both shared by every image of the version). */
static si_result build_shared(pub_ctx *c, pub_build *b, const char *dev_ext, si_err *err)
{
    const pub_args *a = c->a;
    const char *ext = comp_ext(a->opts.compression);
    char tmp[PATH_MAX], name[NAME_MAX + 1];
    si_result r = pathf(b->fullpath, sizeof(b->fullpath), err, "%s/rootfs-full", c->tmpdir);
    if (r != SI_OK)
        return r;
    fprintf(stderr, "publish: building full rootfs of version %lld\n", (long long)a->version);
    if ((r = si_build_full(a->tree ? a->tree : a->tarball, b->fullpath, &a->opts, err)) != SI_OK)
        return r;
    si_version v = {.build = a->version};
    snprintf(v.channel, sizeof(v.channel), "%s", a->channel);
    if ((r = pathf(tmp, sizeof(tmp), err, "%s/version", c->tmpdir)) != SI_OK ||
        (r = si_version_build_tarball(&v, tmp, &a->opts, err)) != SI_OK ||
        (r = pathf(name, sizeof(name), err, "version-%s-%lld", a->channel,
                   (long long)a->version)) != SI_OK ||
        (r = pool_add(c, tmp, name, ext, 2, &b->shared[1], err)) != SI_OK)
        return r;
    if (!a->device_tarball)
        return SI_OK;
    if ((r = pathf(tmp, sizeof(tmp), err, "%s/device", c->tmpdir)) != SI_OK ||
        (r = copy_file(a->device_tarball, tmp, err)) != SI_OK ||
        (r = pathf(name, sizeof(name), err, "%s-device", a->device)) != SI_OK)
        return r;
    return pool_add(c, tmp, name, dev_ext, 1, &b->shared[0], err);
}

/* One delta from base to the new full, pooled, as image b->imgs[1 + ndeltas]. */
static si_result build_one_delta(pub_ctx *c, pub_build *b, int64_t base, const char *old,
                                 si_err *err)
{
    const pub_args *a = c->a;
    char tmp[PATH_MAX], name[NAME_MAX + 1];
    si_index_file df = {0};
    fprintf(stderr, "publish: building delta %lld -> %lld\n", (long long)base,
            (long long)a->version);
    si_result r;
    if ((r = pathf(tmp, sizeof(tmp), err, "%s/delta", c->tmpdir)) != SI_OK ||
        (r = si_build_delta(old, b->fullpath, tmp, &a->opts, err)) != SI_OK ||
        (r = pathf(name, sizeof(name), err, "%s-rootfs-delta-%lld-%lld", a->device,
                   (long long)base, (long long)a->version)) != SI_OK ||
        (r = pool_add(c, tmp, name, comp_ext(a->opts.compression), 0, &df, err)) != SI_OK) {
        free(df.path);
        free(df.signature);
        return r;
    }
    si_image *img = &b->imgs[1 + b->ndeltas++];
    img->type = SI_IMAGE_DELTA;
    img->version = a->version;
    img->has_base = true;
    img->base = base;
    r = si_image_add_file(img, &df, err);
    free(df.path);
    free(df.signature);
    return r;
}

/* Deltas from the --deltas-back newest published fulls, newest first. */
static si_result build_deltas(pub_ctx *c, pub_build *b, si_err *err)
{
    int64_t bases[MAX_DELTAS_BACK];
    size_t nb = previous_versions(b->idx, c->a->deltas_back, bases);
    for (size_t i = 0; i < nb; i++) {
        char old[PATH_MAX];
        bool found = false;
        si_result r = find_full_rootfs(c, b->idx, bases[i], old, sizeof(old), &found, err);
        if (r != SI_OK)
            return r;
        if (!found) {
            fprintf(stderr, "publish: version %lld has no rootfs full in the pool: no delta\n",
                    (long long)bases[i]);
            continue;
        }
        if ((r = build_one_delta(c, b, bases[i], old, err)) != SI_OK)
            return r;
    }
    return SI_OK;
}

/* Pool the full; every image gets the shared files, the phase and the description. */
static si_result finish_images(pub_ctx *c, pub_build *b, si_err *err)
{
    const pub_args *a = c->a;
    char name[NAME_MAX + 1];
    si_index_file ff = {0};
    si_result r;
    if ((r = pathf(name, sizeof(name), err, "%s-rootfs-full-%lld", a->device,
                   (long long)a->version)) != SI_OK ||
        (r = pool_add(c, b->fullpath, name, comp_ext(a->opts.compression), 0, &ff, err)) !=
            SI_OK ||
        (r = si_image_add_file(&b->imgs[0], &ff, err)) != SI_OK) {
        free(ff.path);
        free(ff.signature);
        return r;
    }
    free(ff.path);
    free(ff.signature);
    b->imgs[0].type = SI_IMAGE_FULL;
    b->imgs[0].version = a->version;
    for (size_t i = 0; i <= b->ndeltas; i++) {
        si_image *img = &b->imgs[i];
        img->phased_percentage = a->phased;
        for (size_t f = 0; f < 2; f++)
            if (b->shared[f].path && (r = si_image_add_file(img, &b->shared[f], err)) != SI_OK)
                return r;
        if (a->description && (r = si_image_set_description(img, a->description, err)) != SI_OK)
            return r;
    }
    return SI_OK;
}

/* channels.json: C/D points at its index (and device keyring); hidden flag. */
static si_result update_channel(pub_ctx *c, si_channels *ch, bool have_dkr, si_err *err)
{
    const pub_args *a = c->a;
    si_channel *chan = si_channels_get(ch, a->channel, err);
    si_channel_device *dev = chan ? si_channel_get_device(chan, a->device, err) : NULL;
    if (!dev)
        return SI_ERR_NOMEM;
    if (a->hidden)
        chan->hidden = true;
    if (a->visible)
        chan->hidden = false;
    free(dev->index);
    free(dev->keyring_path);
    free(dev->keyring_signature);
    dev->index = dev->keyring_path = dev->keyring_signature = NULL;
    if (asprintf(&dev->index, "/%s/%s/index.json", a->channel, a->device) < 0 ||
        (have_dkr &&
         (asprintf(&dev->keyring_path, "/keyrings/%s/device-signing.keyring", a->device) < 0 ||
          asprintf(&dev->keyring_signature, "/keyrings/%s/device-signing.keyring.sig",
                   a->device) < 0))) {
        dev->index = NULL; /* asprintf leaves it undefined on failure */
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    }
    return chs_write(c, ch, err);
}

/* publish --version: check, build, pool, then keyrings, index, channels
 * (the order in which a reader never sees a reference to a missing file). */
static si_result do_publish(pub_ctx *c, si_err *err)
{
    const pub_args *a = c->a;
    pub_build b;
    memset(&b, 0, sizeof(b));
    const char *dev_ext = NULL;
    bool have_dkr = false;
    si_result r = check_new_version(c, &b, err);
    if (r == SI_OK && a->device_tarball)
        r = check_device_tarball(a->device_tarball, &dev_ext, err);
    if (r == SI_OK)
        r = make_tmpdir(c, err);
    if (r == SI_OK)
        r = build_shared(c, &b, dev_ext, err);
    if (r == SI_OK)
        r = build_deltas(c, &b, err);
    if (r == SI_OK)
        r = finish_images(c, &b, err);
    if (r == SI_OK)
        r = publish_keyrings(c, &have_dkr, err);
    if (r == SI_OK)
        r = index_write(c, a->device, b.idx, b.imgs, b.ndeltas + 1, -1, -1, err);
    if (r == SI_OK)
        r = update_channel(c, b.ch, have_dkr, err);
    if (r == SI_OK) {
        printf("published %s/%s version %lld: full", a->channel, a->device,
               (long long)a->version);
        for (size_t i = 0; i < b.ndeltas; i++)
            printf(", delta from %lld", (long long)b.imgs[1 + i].base);
        printf("\n");
    }
    build_free(&b);
    return r;
}

/* ------------------------------------------------------------ edit */

/* --alias TARGET: C serves TARGET's indexes. */
static si_result set_alias(pub_ctx *c, si_channels *ch, si_channel **chan, si_err *err)
{
    const pub_args *a = c->a;
    const si_channel *t = chs_find(ch, a->alias);
    if (!t)
        return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: alias target %s: no such channel",
                          a->alias);
    if (t->alias)
        return si_err_set(err, SI_ERR_USAGE, "channel %s is itself an alias of %s", a->alias,
                          t->alias);
    for (size_t i = 0; i < ch->nchannels; i++)
        if (ch->channels[i].alias && strcmp(ch->channels[i].alias, a->channel) == 0)
            return si_err_set(err, SI_ERR_USAGE, "channel %s is the alias target of %s",
                              a->channel, ch->channels[i].name);
    if (!(*chan = si_channels_get(ch, a->channel, err)))
        return SI_ERR_NOMEM;
    char *alias = strdup(a->alias);
    if (!alias)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    free((*chan)->alias);
    (*chan)->alias = alias;
    return SI_OK;
}

/* --set-phase P: the phased-percentage of the newest version of C/D. */
static si_result set_phase(pub_ctx *c, const si_channel *chan, si_err *err)
{
    const pub_args *a = c->a;
    if (chan->alias)
        return si_err_set(err, SI_ERR_USAGE, "channel %s is an alias of %s: set the phase there",
                          a->channel, chan->alias);
    si_index *idx = NULL;
    si_result r = index_load_opt(c, a->device, &idx, err);
    if (r == SI_OK && (!idx || idx->nimages == 0))
        r = si_err_set(err, SI_ERR_NOT_FOUND, "%s/%s/index.json: nothing published", a->channel,
                       a->device);
    int64_t v = index_max_version(idx);
    if (r == SI_OK && (r = index_write(c, a->device, idx, NULL, 0, v, a->set_phase, err)) == SI_OK)
        printf("%s/%s: version %lld phased at %d%%\n", a->channel, a->device, (long long)v,
               a->set_phase);
    si_index_free(idx);
    return r;
}

/* --refresh: re-sign the unchanged index of C/D (every device of C without
 * --device) with a new generated_at and expiry. */
static si_result refresh(pub_ctx *c, const si_channel *chan, si_err *err)
{
    const pub_args *a = c->a;
    if (chan->alias)
        return si_err_set(err, SI_ERR_USAGE, "channel %s is an alias of %s: refresh that one",
                          a->channel, chan->alias);
    size_t done = 0;
    for (size_t i = 0; i < chan->ndevices; i++) {
        const char *device = chan->devices[i].name;
        if (a->device && strcmp(a->device, device) != 0)
            continue;
        si_index *idx = NULL;
        si_result r = index_load_opt(c, device, &idx, err);
        if (r == SI_OK && !idx)
            r = si_err_set(err, SI_ERR_NOT_FOUND, "%s/%s/index.json: nothing published",
                           a->channel, device);
        if (r == SI_OK)
            r = index_write(c, device, idx, NULL, 0, -1, -1, err);
        si_index_free(idx);
        if (r != SI_OK)
            return r;
        char ts[64];
        si_index_format_time(c->now + a->expires, ts);
        printf("%s/%s: index re-signed, expires %s\n", a->channel, device, ts);
        done++;
    }
    if (done == 0)
        return si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: channel %s has no device%s%s",
                          a->channel, a->device ? " " : "", a->device ? a->device : "");
    return SI_OK;
}

static si_result do_edit(pub_ctx *c, si_err *err)
{
    const pub_args *a = c->a;
    si_channels *ch = NULL;
    si_result r = chs_load(a->repo, &ch, err);
    si_channel *chan = ch ? chs_find(ch, a->channel) : NULL;
    if (r == SI_OK && a->alias)
        r = set_alias(c, ch, &chan, err);
    if (r == SI_OK && !chan)
        r = si_err_set(err, SI_ERR_NOT_FOUND, "channels.json: channel %s: not found", a->channel);
    if (r == SI_OK && a->hidden)
        chan->hidden = true;
    if (r == SI_OK && a->visible)
        chan->hidden = false;
    if (r == SI_OK && a->has_set_phase)
        r = set_phase(c, chan, err);
    if (r == SI_OK && a->refresh)
        r = refresh(c, chan, err);
    bool have_dkr = false;
    if (r == SI_OK && (r = publish_keyrings(c, &have_dkr, err)) == SI_OK &&
        (r = chs_write(c, ch, err)) == SI_OK)
        printf("channel %s:%s%s%s\n", a->channel, chan->alias ? " alias of " : "",
               chan->alias ? chan->alias : "", chan->hidden ? " hidden" : " visible");
    si_channels_free(ch);
    return r;
}

/* ------------------------------------------------------------ arguments */

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
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"refresh", no_argument, NULL, OPT_REFRESH},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* "7d", "12h", "3600s", "3600": seconds in [1, MAX_EXPIRES]. */
static bool parse_duration(const char *s, int64_t *out)
{
    char buf[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n + 1);
    int64_t unit = 1;
    if (buf[n - 1] == 'd' || buf[n - 1] == 'h' || buf[n - 1] == 's') {
        unit = buf[n - 1] == 'd' ? 86400 : buf[n - 1] == 'h' ? 3600 : 1;
        buf[n - 1] = '\0';
    }
    int64_t v;
    if (!parse_int(buf, 1, MAX_EXPIRES / unit, &v))
        return false;
    *out = v * unit;
    return true;
}

/* An option with an integer argument; 0 or a usage error's exit code. */
static int parse_number_opt(int o, const char *arg, pub_args *a)
{
    int64_t n;
    switch (o) {
    case OPT_VERSION:
        if (!parse_int(arg, 1, (int64_t)1 << 53, &n))
            return usage_error("--version: expected an integer in [1, 2^53]");
        a->version = n;
        a->has_version = true;
        return 0;
    case OPT_DELTAS_BACK:
        if (!parse_int(arg, 0, MAX_DELTAS_BACK, &n))
            return usage_error("--deltas-back: expected an integer in [0, 32]");
        a->deltas_back = (int)n;
        return 0;
    case OPT_PHASED:
    case OPT_SET_PHASE:
        if (!parse_int(arg, 0, 100, &n))
            return usage_error(o == OPT_PHASED ? "--phased: expected a percentage in [0, 100]"
                                               : "--set-phase: expected a percentage in [0, 100]");
        if (o == OPT_PHASED)
            a->phased = (int)n;
        else
            a->set_phase = (int)n, a->has_set_phase = true;
        return 0;
    case OPT_LEVEL:
        if (!parse_int(arg, 0, 22, &n))
            return usage_error("--level: expected an integer in [0, 22]");
        a->opts.level = (int)n;
        return 0;
    case OPT_EXPIRES:
        if (!parse_duration(arg, &a->expires))
            return usage_error("--expires: expected N[s|h|d], at most 3650d");
        return 0;
    default:
        return usage_error("unknown option or missing argument");
    }
}

/* getopt_long over argv into a; -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, pub_args *a)
{
    optind = 1;
    opterr = 0;
    int o, rc;
    while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (o) {
        case OPT_REPO: a->repo = optarg; break;
        case OPT_KEYS: a->keys = optarg; break;
        case OPT_CHANNEL: a->channel = optarg; break;
        case OPT_DEVICE: a->device = optarg; break;
        case OPT_TREE: a->tree = optarg; break;
        case OPT_TARBALL: a->tarball = optarg; break;
        case OPT_DEVICE_TARBALL: a->device_tarball = optarg; break;
        case OPT_DESCRIPTION: a->description = optarg; break;
        case OPT_ALIAS: a->alias = optarg; break;
        case OPT_HIDDEN: a->hidden = true; break;
        case OPT_VISIBLE: a->visible = true; break;
        case OPT_REFRESH: a->refresh = true; break;
        case 'h':
        case OPT_HELP:
            fputs(publish_usage, stdout);
            return SI_OK;
        case OPT_COMPRESSION:
            if (strcmp(optarg, "zstd") == 0)
                a->opts.compression = SI_COMP_ZSTD;
            else if (strcmp(optarg, "xz") == 0)
                a->opts.compression = SI_COMP_XZ;
            else
                return usage_error("--compression: expected zstd or xz");
            break;
        default:
            if ((rc = parse_number_opt(o, optarg, a)) != 0)
                return rc;
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument");
    return -1;
}

/* The combinations that make sense; 0 or a usage error's exit code. */
static int check_args(const pub_args *a)
{
    if (!a->repo || !a->keys || !a->channel)
        return usage_error("--repo, --keys and --channel are required");
    if (!valid_name(a->channel) || strcmp(a->channel, "pool") == 0 ||
        strcmp(a->channel, "keyrings") == 0)
        return usage_error("--channel: invalid channel name");
    if (a->device && !valid_name(a->device))
        return usage_error("--device: invalid device name");
    if (a->alias && !valid_name(a->alias))
        return usage_error("--alias: invalid channel name");
    if (a->hidden && a->visible)
        return usage_error("--hidden and --visible exclude each other");
    if (a->has_version) {
        if (!a->device)
            return usage_error("--device is required with --version");
        if (!a->tree == !a->tarball)
            return usage_error("exactly one of --tree and --tarball is required");
        if (a->alias || a->has_set_phase || a->refresh)
            return usage_error("--alias, --set-phase and --refresh do not go with --version");
        return 0;
    }
    if (a->tree || a->tarball || a->device_tarball || a->description)
        return usage_error("--tree, --tarball, --device-tarball, --description need --version");
    if (!a->alias && !a->hidden && !a->visible && !a->has_set_phase && !a->refresh)
        return usage_error("nothing to do: give --version, --alias, --hidden, --visible, "
                           "--set-phase or --refresh");
    if (a->has_set_phase && !a->device)
        return usage_error("--set-phase needs --device");
    if (a->alias && strcmp(a->alias, a->channel) == 0)
        return usage_error("--alias: a channel cannot alias itself");
    return 0;
}

int cmd_publish(int argc, char **argv)
{
    pub_args a = {.deltas_back = 2, .phased = 100, .expires = DEFAULT_EXPIRES,
                  .opts = {.compression = SI_COMP_ZSTD}};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if ((rc = check_args(&a)) != 0)
        return rc;
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
