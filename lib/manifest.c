/* manifest.c - member lines of an update tarball's manifest (manifest.h). */
#include "manifest.h"
#include "sha256.h"

#include "tarformat.h"

#include <archive.h>
#include <archive_entry.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char type_char(struct archive_entry *ae)
{
    if (archive_entry_hardlink(ae))
        return 'h';
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG: return 'f';
    case AE_IFDIR: return 'd';
    case AE_IFLNK: return 'l';
    case AE_IFCHR: return 'c';
    case AE_IFBLK: return 'b';
    case AE_IFIFO: return 'p';
    default: return '?';
    }
}

struct xa {
    const char *name;
    const void *value;
    size_t len, seq;
};

static int xa_cmp(const void *a, const void *b)
{
    const struct xa *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->seq < y->seq ? -1 : 1);
}

/* sha256 over the xattrs sorted by name, each once (the last one given
 * wins, as when they are set in order: a pax header may carry an xattr
 * twice, SCHILY and LIBARCHIVE): name NUL, 8-byte big-endian length, value.
 * 0 when none, 1 when hashed, -1 out of memory. */
static int xattrs_sha(struct archive_entry *ae, uint8_t out[32])
{
    int n = archive_entry_xattr_reset(ae);
    if (n <= 0)
        return 0;
    struct xa *v = calloc((size_t)n, sizeof(*v));
    if (!v)
        return -1;
    size_t k = 0;
    while (k < (size_t)n &&
           archive_entry_xattr_next(ae, &v[k].name, &v[k].value, &v[k].len) == ARCHIVE_OK) {
        v[k].seq = k;
        k++;
    }
    qsort(v, k, sizeof(*v), xa_cmp);
    si_sha256 h;
    si_sha256_init(&h);
    for (size_t i = 0; i < k; i++) {
        if (i + 1 < k && strcmp(v[i].name, v[i + 1].name) == 0)
            continue;
        uint8_t be[8];
        for (int j = 0; j < 8; j++)
            be[j] = (uint8_t)((uint64_t)v[i].len >> (56 - 8 * j));
        si_sha256_update(&h, v[i].name, strlen(v[i].name) + 1);
        si_sha256_update(&h, be, sizeof(be));
        si_sha256_update(&h, v[i].value, v[i].len);
    }
    si_sha256_final(&h, out);
    free(v);
    return 1;
}

static void hex_or_dash(const uint8_t *d, char out[65])
{
    if (d)
        si_hex_encode(d, 32, out);
    else
        strcpy(out, "-");
}

si_result si_manifest_line(struct archive_entry *ae, const uint8_t data_sha[32], char *out,
                           size_t outsz, si_err *err)
{
    const char *name = archive_entry_pathname(ae);
    char t = type_char(ae);
    if (!name || t == '?')
        return si_err_set(err, SI_ERR_UNSUPPORTED, "member %s: no manifest line for its type",
                          name ? name : "(unnamed)");
    uint8_t d[32], x[32];
    const uint8_t *dp = NULL;
    const char *link = t == 'h' ? archive_entry_hardlink(ae)
                       : t == 'l' ? archive_entry_symlink(ae) : NULL;
    if (t == 'f')
        dp = data_sha;
    else if (link)
        si_sha256_buf(link, strlen(link), d), dp = d;
    char dh[65], xh[65], rdev[24] = "-";
    hex_or_dash(dp, dh);
    int xr = xattrs_sha(ae, x);
    if (xr < 0)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (xattrs)");
    hex_or_dash(xr ? x : NULL, xh);
    if (t == 'c' || t == 'b')
        snprintf(rdev, sizeof(rdev), "%" PRIu64, (uint64_t)archive_entry_rdev(ae));
    int64_t size = t == 'f' && archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
    int n = snprintf(out, outsz, "%c %04o %" PRId64 " %" PRId64 " %" PRId64 ".%09ld %" PRId64
                     " %s %s %s %s", t, (unsigned)(archive_entry_perm(ae) & 07777),
                     (int64_t)archive_entry_uid(ae), (int64_t)archive_entry_gid(ae),
                     (int64_t)archive_entry_mtime(ae), (long)archive_entry_mtime_nsec(ae),
                     size, rdev, dh, xh, name);
    if (n < 0 || (size_t)n >= outsz)
        return si_err_set(err, SI_ERR_TOO_LARGE, "member %.64s…: manifest line too long", name);
    return SI_OK;
}

/* ------------------------------------------------------------ parsing */

/* Advance *p over one field ending in a space; false when empty. */
static bool field(const char **p, const char *end, const char **f, size_t *flen)
{
    const char *s = *p;
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    if (!sp || sp == s)
        return false;
    *f = s;
    *flen = (size_t)(sp - s);
    *p = sp + 1;
    return true;
}

static bool all_in(const char *f, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, f[i]) || !f[i])
            return false;
    return n > 0;
}

static bool decimal(const char *f, size_t n, size_t maxdigits)
{
    return n <= maxdigits && all_in(f, n, "0123456789");
}

static bool digest_or_dash(const char *f, size_t n)
{
    return (n == 1 && f[0] == '-') || (n == 64 && all_in(f, n, "0123456789abcdef"));
}

static bool mtime_ok(const char *f, size_t n)
{
    if (n && f[0] == '-')
        f++, n--;
    const char *dot = memchr(f, '.', n);
    return dot && decimal(f, (size_t)(dot - f), 19) && decimal(dot + 1, n - (size_t)(dot - f) - 1, 9) &&
           n - (size_t)(dot - f) - 1 == 9;
}

static bool name_ok(const char *f, size_t n)
{
    if (!n || n > SI_MANIFEST_LINE_MAX - 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f[i] < 0x20 || f[i] == 0x7f)
            return false;
    return true;
}

/* Why a member line is malformed, or NULL. Records partitions and the version. */
static const char *check_line(si_manifest *m, const char *s, size_t len)
{
    const char *p = s, *end = s + len, *f;
    size_t n;
    if (!field(&p, end, &f, &n) || n != 1 || !strchr("fdlhcbp", f[0]))
        return "type";
    char t = f[0];
    if (!field(&p, end, &f, &n) || n != 4 || !all_in(f, n, "01234567"))
        return "mode";
    if (!field(&p, end, &f, &n) || !decimal(f, n, 10))
        return "uid";
    if (!field(&p, end, &f, &n) || !decimal(f, n, 10))
        return "gid";
    if (!field(&p, end, &f, &n) || !mtime_ok(f, n))
        return "mtime";
    if (!field(&p, end, &f, &n) || !decimal(f, n, 19) || (t != 'f' && (n != 1 || f[0] != '0')))
        return "size";
    if (!field(&p, end, &f, &n) ||
        !((t == 'c' || t == 'b') ? decimal(f, n, 20) : (n == 1 && f[0] == '-')))
        return "rdev";
    if (!field(&p, end, &f, &n) || !digest_or_dash(f, n) ||
        ((t == 'l' || t == 'h') && n != 64) || (strchr("dcbp", t) && n != 1))
        return "data digest";
    if (!field(&p, end, &f, &n) || !digest_or_dash(f, n))
        return "xattrs digest";
    if (!name_ok(p, (size_t)(end - p)))
        return "name";
    char name[SI_MANIFEST_LINE_MAX];
    memcpy(name, p, (size_t)(end - p));
    name[end - p] = '\0';
    if (strcmp(name, SI_LAYOUT_VERSION_MEMBER) == 0)
        m->has_version = true;
    si_member_kind k;
    char label[SI_LAYOUT_LABEL_MAX + 1];
    si_err tmp = {0};
    if (si_layout_check_member_name(name, &k, label, sizeof(label), &tmp) != SI_OK)
        return "name (not an update member)";
    if (k == SI_MEMBER_PARTITION) {
        if (m->nparts == SI_LAYOUT_SCAN_MAX_PARTS)
            return "name (too many partitions)";
        memcpy(m->parts[m->nparts++], label, sizeof(label));
    }
    return NULL;
}

static si_result add_line(si_manifest *m, const char *s, size_t len, size_t lineno, si_err *err)
{
    const char *why = len >= SI_MANIFEST_LINE_MAX ? "length" : check_line(m, s, len);
    if (why)
        return si_err_set(err, SI_ERR_PARSE, "manifest line %zu: bad %s", lineno, why);
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        uint8_t (*v)[32] = realloc(m->line_sha, cap * sizeof(*v));
        if (!v)
            return si_err_set(err, SI_ERR_NOMEM, "out of memory (manifest)");
        m->line_sha = v;
        m->cap = cap;
    }
    si_sha256_buf(s, len, m->line_sha[m->n++]);
    return SI_OK;
}

si_result si_manifest_parse(const char *buf, size_t len, si_manifest **out, si_err *err)
{
    *out = NULL;
    if (len > SI_MANIFEST_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "manifest: over %u bytes", SI_MANIFEST_MAX_BYTES);
    size_t ml = strlen(SI_MANIFEST_MAGIC);
    if (len <= ml || memcmp(buf, SI_MANIFEST_MAGIC, ml) != 0 || buf[ml] != '\n')
        return si_err_set(err, SI_ERR_PARSE, "manifest: does not start with '" SI_MANIFEST_MAGIC
                          "'");
    if (buf[len - 1] != '\n')
        return si_err_set(err, SI_ERR_PARSE, "manifest: the last line has no newline");
    si_manifest *m = calloc(1, sizeof(*m));
    if (!m)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (manifest)");
    si_result rc = SI_OK;
    size_t lineno = 2;
    for (const char *p = buf + ml + 1, *end = buf + len; p < end && rc == SI_OK; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        rc = add_line(m, p, (size_t)(nl - p), lineno, err);
        p = nl + 1;
    }
    if (rc != SI_OK) {
        si_manifest_free(m);
        return rc;
    }
    *out = m;
    return SI_OK;
}

void si_manifest_free(si_manifest *m)
{
    if (!m)
        return;
    free(m->line_sha);
    free(m);
}

si_result si_manifest_check(const si_manifest *m, size_t i, const char *line, const char *what,
                            si_err *err)
{
    /* the name is the rest of the line after the 9th space */
    const char *p = line;
    for (int k = 0; k < 9 && p; k++)
        p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
    const char *name = p ? p : line;
    if (i >= m->n)
        return si_err_set(err, SI_ERR_PARSE, "%s: member %s is not in the manifest (%zu members)",
                          what, name, m->n);
    uint8_t d[32];
    si_sha256_buf(line, strlen(line), d);
    if (memcmp(d, m->line_sha[i], 32) != 0)
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: member %zu (%s) differs from the manifest "
                          "(content, metadata or order)", what, i + 1, name);
    return SI_OK;
}

/* ------------------------------------------------------------ reading */

static si_result read_member_text(struct archive *a, const char *path, int64_t size, char **text,
                                  uint8_t sha[32], si_err *err)
{
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (manifest)");
    int64_t got = 0;
    while (got < size) {
        la_ssize_t r = archive_read_data(a, buf + got, (size_t)(size - got));
        if (r <= 0) {
            free(buf);
            return si_err_set(err, SI_ERR_PARSE, "%s: manifest: %s", path,
                              r < 0 ? archive_error_string(a) : "truncated");
        }
        got += r;
    }
    buf[size] = '\0';
    si_sha256_buf(buf, (size_t)size, sha);
    if (text)
        *text = buf;
    else
        free(buf);
    return SI_OK;
}

si_result si_manifest_read_first(const char *path, bool *present, uint8_t sha[32],
                                 uint64_t *size, char **text, si_err *err)
{
    *present = false;
    struct archive *a = si_tar_reader_new();
    if (!a)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (archive reader)");
    si_result rc = SI_OK;
    struct archive_entry *ae;
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK ||
        archive_read_next_header(a, &ae) != ARCHIVE_OK) {
        rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", path, archive_error_string(a));
    } else if (archive_entry_pathname(ae) &&
               strcmp(archive_entry_pathname(ae), SI_MANIFEST_MEMBER) == 0) {
        int64_t sz = archive_entry_size(ae);
        if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) || sz < 0)
            rc = si_err_set(err, SI_ERR_UNSAFE_PATH, "%s: 'manifest' is not a regular file", path);
        else if ((uint64_t)sz > SI_MANIFEST_MAX_BYTES)
            rc = si_err_set(err, SI_ERR_TOO_LARGE, "%s: manifest over %u bytes", path,
                            SI_MANIFEST_MAX_BYTES);
        else
            rc = read_member_text(a, path, sz, text, sha, err);
        *present = rc == SI_OK;
        *size = (uint64_t)sz;
    }
    archive_read_free(a);
    return rc;
}

si_result si_manifest_load_bound(const char *path, uint64_t size, const uint8_t sha[32],
                                 si_manifest **out, si_err *err)
{
    bool present;
    uint8_t got[32];
    uint64_t gsize = 0;
    char *text = NULL;
    si_result rc = si_manifest_read_first(path, &present, got, &gsize, &text, err);
    if (rc != SI_OK)
        return rc;
    if (!present)
        return si_err_set(err, SI_ERR_CHECKSUM, "%s: the index lists a manifest, the file has "
                          "none as its first member", path);
    if (gsize != size || memcmp(got, sha, 32) != 0)
        rc = si_err_set(err, SI_ERR_CHECKSUM, "%s: the manifest differs from the index's "
                        "(%" PRIu64 " bytes, the index says %" PRIu64 ")", path, gsize, size);
    else if ((rc = si_manifest_parse(text, (size_t)gsize, out, err)) != SI_OK)
        si_err_prefix(err, "%s", path);
    free(text);
    return rc;
}
