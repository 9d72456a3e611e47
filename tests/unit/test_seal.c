/* test_seal.c - sealing a built tarball (lib/seal): the output starts with
 * the member `manifest`, one line per body member as si_manifest_line gives
 * it, then the body's members unchanged; si_tar_member_data gives a
 * member's logical content (holes as zeros) and stops on its callback's
 * error; a missing or broken body and a bad level are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "manifest.h"
#include "seal.h"
#include "sha256.h"
#include "testutil.h"

static char dir[64];
static char body[128];

#define SPARSE_SIZE 300000
#define SPARSE_AT 100000

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "seal") != 0)
        return -1;
    snprintf(body, sizeof(body), "%s/body.tar", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void add(struct archive *w, const char *name, mode_t type, const char *data,
                const char *link)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_mtime(e, 1700000000, 5);
    if (type == AE_IFLNK)
        archive_entry_set_symlink(e, link);
    else if (link)
        archive_entry_set_hardlink(e, link);
    size_t n = data ? strlen(data) : 0;
    archive_entry_set_size(e, (la_int64_t)n);
    assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
    if (n)
        assert_int_equal(archive_write_data(w, data, n), (la_ssize_t)n);
    archive_entry_free(e);
}

/* A sparse member: SPARSE_SIZE bytes, "DATA" at SPARSE_AT, zeros elsewhere
 * (the pax writer is given the logical content and stores the data blocks
 * the sparse map names). */
static void add_sparse(struct archive *w, const char *name)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, SPARSE_SIZE);
    archive_entry_sparse_add_entry(e, SPARSE_AT, 4);
    assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
    char *all = calloc(1, SPARSE_SIZE);
    assert_non_null(all);
    memcpy(all + SPARSE_AT, "DATA", 4);
    assert_int_equal(archive_write_data(w, all, SPARSE_SIZE), SPARSE_SIZE);
    free(all);
    archive_entry_free(e);
}

/* The body `sysimage build` writes: uncompressed pax. */
static void write_body(void)
{
    struct archive *w = archive_write_new();
    assert_int_equal(archive_write_set_format_pax(w), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(w, body), ARCHIVE_OK);
    add(w, "system", AE_IFDIR, NULL, NULL);
    add(w, "system/hello", AE_IFREG, "hello\n", NULL);
    add(w, "system/empty", AE_IFREG, NULL, NULL);
    add(w, "system/link", AE_IFLNK, NULL, "hello");
    add(w, "system/hard", AE_IFREG, NULL, "system/hello");
    add_sparse(w, "system/sparse");
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
    struct stat st;
    assert_int_equal(stat(body, &st), 0);
    assert_true(st.st_size < SPARSE_SIZE);  /* the hole is not stored */
}

typedef struct collect {
    unsigned char *buf;
    size_t len, cap;
    size_t calls;
    size_t fail_at;   /* 0: never; else fail on this call */
} collect;

static si_result collect_piece(const void *buf, size_t len, void *ctx, si_err *err)
{
    collect *c = ctx;
    if (++c->calls == c->fail_at)
        return si_err_set(err, SI_ERR_IO, "stop here");
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    return SI_OK;
}

/* The members of a tarball: name, manifest line, data (by reading each one
 * through si_tar_member_data). Checks the data of regular files against
 * the content the body was written with. Returns the member count. */
static size_t check_members(struct archive *a, bool sealed, char **manifest_text)
{
    size_t n = 0;
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        int64_t size = archive_entry_size(e);
        collect c = {0};
        si_err err = {0};
        bool data = archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e);
        if (data)
            assert_int_equal(si_tar_member_data(a, size, name, collect_piece, &c, &err), SI_OK);
        if (data)
            assert_int_equal(c.len, (size_t)size);
        if (sealed && n == 0) {
            assert_string_equal(name, SI_MANIFEST_MEMBER);
            *manifest_text = calloc(1, c.len + 1);
            memcpy(*manifest_text, c.buf, c.len);
        } else if (strcmp(name, "system/hello") == 0) {
            assert_memory_equal(c.buf, "hello\n", 6);
        } else if (strcmp(name, "system/sparse") == 0) {
            assert_int_equal(c.len, SPARSE_SIZE);
            for (size_t i = 0; i < c.len; i++)
                if (i < SPARSE_AT || i >= SPARSE_AT + 4)
                    assert_int_equal(c.buf[i], 0);
            assert_memory_equal(c.buf + SPARSE_AT, "DATA", 4);
        }
        free(c.buf);
        n++;
    }
    return n;
}

/* The manifest lines the body's members give, in order, behind the magic. */
static char *expected_manifest(void)
{
    struct archive *a = si_tar_reader_new();
    assert_int_equal(archive_read_open_filename(a, body, 10240), ARCHIVE_OK);
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    len = (size_t)snprintf(out, cap, "%s\n", SI_MANIFEST_MAGIC);
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        bool data = archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e);
        uint8_t d[32];
        if (data) {
            si_sha256 h;
            si_sha256_init(&h);
            const char *name = archive_entry_pathname(e);
            collect c = {0};
            si_err err = {0};
            assert_int_equal(si_tar_member_data(a, archive_entry_size(e), name, collect_piece,
                                                &c, &err), SI_OK);
            si_sha256_update(&h, c.buf, c.len);
            si_sha256_final(&h, d);
            free(c.buf);
        }
        char line[SI_MANIFEST_LINE_MAX];
        si_err err = {0};
        assert_int_equal(si_manifest_line(e, data ? d : NULL, line, sizeof(line), &err), SI_OK);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", line);
        assert_true(len < cap);
    }
    archive_read_free(a);
    return out;
}

static void seal_every_compression(void **state)
{
    (void)state;
    write_body();
    char *want = expected_manifest();
    const si_compression comps[] = {SI_COMP_ZSTD, SI_COMP_XZ, SI_COMP_NONE};
    for (size_t i = 0; i < 3; i++) {
        char out[128];
        snprintf(out, sizeof(out), "%s/sealed-%zu.tar", dir, i);
        si_err err = {0};
        assert_int_equal(si_seal_tarball(body, out, comps[i], i == 0 ? 3 : 0, &err), SI_OK);
        struct archive *a = si_tar_reader_new();
        assert_int_equal(archive_read_open_filename(a, out, 10240), ARCHIVE_OK);
        char *text = NULL;
        assert_int_equal(check_members(a, true, &text), 7);
        archive_read_free(a);
        assert_non_null(text);
        assert_string_equal(text, want);
        si_manifest *m = NULL;
        assert_int_equal(si_manifest_parse(text, strlen(text), &m, &err), SI_OK);
        assert_int_equal(m->n, 6);
        si_manifest_free(m);
        free(text);
    }
    free(want);
}

/* The callback's error stops the copy and is returned as it is. */
static void member_data_callback_error(void **state)
{
    (void)state;
    write_body();
    struct archive *a = si_tar_reader_new();
    assert_int_equal(archive_read_open_filename(a, body, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK)
        if (strcmp(archive_entry_pathname(e), "system/sparse") == 0)
            break;
    collect c = {.fail_at = 2};
    si_err err = {0};
    tu_assert_error("fail at 2", si_tar_member_data(a, SPARSE_SIZE, "sp", collect_piece, &c, &err),
                    &err, SI_ERR_IO, "stop here");
    assert_int_equal(c.calls, 2);
    free(c.buf);
    archive_read_free(a);
}

static void refusals(void **state)
{
    (void)state;
    write_body();
    char out[128], p[128];
    snprintf(out, sizeof(out), "%s/never.tar", dir);
    si_err err = {0};
    snprintf(p, sizeof(p), "%s/no-such-body.tar", dir);
    tu_assert_error("missing body", si_seal_tarball(p, out, SI_COMP_NONE, 0, &err), &err,
                    SI_ERR_IO, "no-such-body.tar");
    snprintf(p, sizeof(p), "%s/notatar", dir);
    assert_int_equal(tu_sh("head -c 5000 /dev/urandom > '%s'", p), 0);
    assert_int_not_equal(si_seal_tarball(p, out, SI_COMP_NONE, 0, &err), SI_OK);
    /* a body cut inside a member's data */
    snprintf(p, sizeof(p), "%s/cut.tar", dir);
    assert_int_equal(tu_sh("head -c 3000 '%s' > '%s'", body, p), 0);
    tu_assert_error("cut body", si_seal_tarball(p, out, SI_COMP_NONE, 0, &err), &err,
                    SI_ERR_PARSE, "");
    tu_assert_error("bad level", si_seal_tarball(body, out, SI_COMP_ZSTD, 25, &err), &err,
                    SI_ERR_USAGE, "out of range");
    snprintf(out, sizeof(out), "%s/no/such/dir/out.tar", dir);
    tu_assert_error("bad out", si_seal_tarball(body, out, SI_COMP_NONE, 0, &err), &err,
                    SI_ERR_IO, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seal_every_compression),
        cmocka_unit_test(member_data_callback_error),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
