/* seal.c - put the manifest in front of a built tarball's members (seal.h). */
#include "seal.h"
#include "manifest.h"
#include "sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#define ZCHUNK (64 * 1024)

static const unsigned char zeros[ZCHUNK];

static si_result feed_zeros(int64_t n, si_seal_data_fn fn, void *ctx, si_err *err)
{
    si_result rc = SI_OK;
    while (rc == SI_OK && n > 0) {
        size_t z = n < ZCHUNK ? (size_t)n : ZCHUNK;
        rc = fn(zeros, z, ctx, err);
        n -= (int64_t)z;
    }
    return rc;
}

si_result si_tar_member_data(struct archive *a, int64_t size, const char *what,
                             si_seal_data_fn fn, void *ctx, si_err *err)
{
    int64_t pos = 0;
    si_result rc = SI_OK;
    while (rc == SI_OK) {
        const void *blk;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(a, &blk, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s", what, archive_error_string(a));
        if (off < pos || off > size || (int64_t)len > size - off)
            return si_err_set(err, SI_ERR_PARSE, "%s: data outside the member", what);
        rc = feed_zeros(off - pos, fn, ctx, err);
        if (rc == SI_OK && len)
            rc = fn(blk, len, ctx, err);
        pos = off + (int64_t)len;
    }
    if (rc == SI_OK)
        rc = feed_zeros(size - pos, fn, ctx, err);
    return rc;
}

static bool has_data(struct archive_entry *ae)
{
    return archive_entry_filetype(ae) == AE_IFREG && !archive_entry_hardlink(ae);
}

static si_result hash_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    (void)err;
    si_sha256_update(ctx, buf, len);
    return SI_OK;
}

struct strbuf {
    char *p;
    size_t len, cap;
};

static si_result sb_put(struct strbuf *sb, const char *s, size_t n, si_err *err)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 65536;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p)
            return si_err_set(err, SI_ERR_NOMEM, "out of memory (manifest)");
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    return SI_OK;
}

static struct archive *open_body(const char *body, si_err *err)
{
    struct archive *a = si_tar_reader_new();
    if (!a) {
        si_err_set(err, SI_ERR_NOMEM, "out of memory (archive reader)");
        return NULL;
    }
    if (archive_read_open_filename(a, body, 256 * 1024) != ARCHIVE_OK) {
        si_err_set(err, SI_ERR_IO, "%s: %s", body, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

typedef si_result (*member_fn)(struct archive *a, struct archive_entry *ae, void *ctx,
                               si_err *err);

/* fn for every member of the body, in order. */
static si_result each_member(const char *body, member_fn fn, void *ctx, si_err *err)
{
    struct archive *a = open_body(body, err);
    if (!a)
        return err ? err->code : SI_ERR_IO;
    si_result rc = SI_OK;
    while (rc == SI_OK) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            rc = si_err_set(err, SI_ERR_PARSE, "%s: %s", body, archive_error_string(a));
        else
            rc = fn(a, ae, ctx, err);
    }
    archive_read_free(a);
    return rc;
}

/* A member's manifest line, appended to the strbuf ctx. */
static si_result add_line(struct archive *a, struct archive_entry *ae, void *ctx, si_err *err)
{
    uint8_t d[32];
    si_result rc = SI_OK;
    if (has_data(ae)) {
        si_sha256 h;
        si_sha256_init(&h);
        rc = si_tar_member_data(a, archive_entry_size(ae), archive_entry_pathname(ae),
                                hash_piece, &h, err);
        si_sha256_final(&h, d);
    }
    char line[SI_MANIFEST_LINE_MAX];
    if (rc == SI_OK)
        rc = si_manifest_line(ae, has_data(ae) ? d : NULL, line, sizeof(line), err);
    if (rc != SI_OK)
        return rc;
    size_t n = strlen(line);
    line[n++] = '\n';
    return sb_put(ctx, line, n, err);
}

static si_result write_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    struct archive *w = ctx;
    while (len) {
        la_ssize_t r = archive_write_data(w, buf, len);
        if (r <= 0)
            return si_err_set(err, SI_ERR_IO, "write: %s", archive_error_string(w));
        buf = (const char *)buf + r;
        len -= (size_t)r;
    }
    return SI_OK;
}

static si_result write_header(struct archive *w, struct archive_entry *ae, si_err *err)
{
    int r = archive_write_header(w, ae);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return si_err_set(err, SI_ERR_IO, "member %s: %s", archive_entry_pathname(ae),
                          archive_error_string(w));
    return SI_OK;
}

static si_result write_manifest_member(struct archive *w, const struct strbuf *sb, si_err *err)
{
    struct archive_entry *ae = archive_entry_new();
    if (!ae)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (entry)");
    archive_entry_set_pathname(ae, SI_MANIFEST_MEMBER);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, (la_int64_t)sb->len);
    archive_entry_set_mtime(ae, 0, 0);
    si_result rc = write_header(w, ae, err);
    if (rc == SI_OK)
        rc = write_piece(sb->p, sb->len, w, err);
    archive_entry_free(ae);
    return rc;
}

/* A member of the body copied into the writer ctx, unchanged. */
static si_result copy_member(struct archive *a, struct archive_entry *ae, void *ctx, si_err *err)
{
    si_result rc = write_header(ctx, ae, err);
    if (rc == SI_OK && has_data(ae))
        rc = si_tar_member_data(a, archive_entry_size(ae), archive_entry_pathname(ae),
                                write_piece, ctx, err);
    return rc;
}

si_result si_seal_tarball(const char *body, const char *out, si_compression comp, int level,
                          si_err *err)
{
    struct strbuf sb = {0};
    si_result rc = sb_put(&sb, SI_MANIFEST_MAGIC "\n", strlen(SI_MANIFEST_MAGIC) + 1, err);
    if (rc == SI_OK)
        rc = each_member(body, add_line, &sb, err);
    struct archive *w = rc == SI_OK ? archive_write_new() : NULL;
    if (rc == SI_OK && !w)
        rc = si_err_set(err, SI_ERR_NOMEM, "out of memory (archive writer)");
    if (rc == SI_OK && archive_write_set_format_pax(w) != ARCHIVE_OK)
        rc = si_err_set(err, SI_ERR_INTERNAL, "%s: %s", out, archive_error_string(w));
    if (rc == SI_OK)
        rc = si_tar_writer_set_compression(w, comp, level, out, err);
    if (rc == SI_OK && (archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
                        archive_write_open_filename(w, out) != ARCHIVE_OK))
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(w));
    if (rc == SI_OK)
        rc = write_manifest_member(w, &sb, err);
    if (rc == SI_OK)
        rc = each_member(body, copy_member, w, err);
    if (rc == SI_OK && archive_write_close(w) != ARCHIVE_OK)
        rc = si_err_set(err, SI_ERR_IO, "%s: %s", out, archive_error_string(w));
    if (w)
        archive_write_free(w);
    free(sb.p);
    return rc;
}
