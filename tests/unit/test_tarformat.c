/* test_tarformat.c - the tarballs sysimage reads and writes (lib/tarformat):
 * the writer's compressions and their level ranges, the tar reader on every
 * compression it accepts (and only those), the raw reader's one entry of
 * decompressed bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "tarformat.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "tarformat");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static const char body[] = "hello, tarformat\n";

/* Write path: a pax tarball with member "a" = body, compressed as asked. */
static si_result write_tar(const char *path, si_compression comp, int level, si_err *err)
{
    struct archive *w = archive_write_new();
    assert_non_null(w);
    assert_int_equal(archive_write_set_format_pax_restricted(w), ARCHIVE_OK);
    si_result r = si_tar_writer_set_compression(w, comp, level, path, err);
    if (r != SI_OK) {
        archive_write_free(w);
        return r;
    }
    assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "a");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(body));
    assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(w, body, strlen(body)), (la_ssize_t)strlen(body));
    archive_entry_free(e);
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
    return SI_OK;
}

/* Read path with the tar reader: ARCHIVE_OK and member "a" = body, or the
 * first failing libarchive status. */
static int read_tar(const char *path)
{
    struct archive *a = si_tar_reader_new();
    assert_non_null(a);
    int r = archive_read_open_filename(a, path, 10240);
    struct archive_entry *e;
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_OK) {
        assert_string_equal(archive_entry_pathname(e), "a");
        char buf[64] = {0};
        assert_int_equal(archive_read_data(a, buf, sizeof(buf)), (la_ssize_t)strlen(body));
        assert_string_equal(buf, body);
        assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_EOF);
    }
    archive_read_free(a);
    return r;
}

static void head4(const char *path, unsigned char out[4])
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(out, 1, 4, f), 4);
    fclose(f);
}

static void writer_compressions(void **state)
{
    (void)state;
    struct {
        si_compression comp;
        int level;
        const char *magic;   /* NULL: plain tar */
    } cases[] = {
        {SI_COMP_ZSTD, 0, "\x28\xb5\x2f\xfd"}, {SI_COMP_ZSTD, 1, "\x28\xb5\x2f\xfd"},
        {SI_COMP_ZSTD, 19, "\x28\xb5\x2f\xfd"}, {SI_COMP_XZ, 0, "\xfd" "7zX"},
        {SI_COMP_XZ, 9, "\xfd" "7zX"},           {SI_COMP_NONE, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/w%zu.tar", dir, i);
        si_err err = {0};
        assert_int_equal(write_tar(path, cases[i].comp, cases[i].level, &err), SI_OK);
        unsigned char h[4];
        head4(path, h);
        if (cases[i].magic)
            assert_memory_equal(h, cases[i].magic, 4);
        else
            assert_memory_equal(h, "a\0\0\0", 4); /* the first header's name */
        assert_int_equal(read_tar(path), ARCHIVE_OK);
    }
}

static void writer_bad_levels(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/bad.tar", dir);
    si_err err = {0};
    tu_assert_error("zstd 20", write_tar(path, SI_COMP_ZSTD, 20, &err), &err, SI_ERR_USAGE,
                    "zstd level 20 out of range 1..19");
    tu_assert_error("zstd -1", write_tar(path, SI_COMP_ZSTD, -1, &err), &err, SI_ERR_USAGE,
                    "zstd level -1");
    tu_assert_error("xz 10", write_tar(path, SI_COMP_XZ, 10, &err), &err, SI_ERR_USAGE,
                    "xz level 10 out of range 0..9");
    tu_assert_error("xz -1", write_tar(path, SI_COMP_XZ, -1, &err), &err, SI_ERR_USAGE,
                    "xz level -1");
    tu_assert_error("unknown", write_tar(path, (si_compression)7, 0, &err), &err, SI_ERR_USAGE,
                    "unknown compression 7");
    assert_non_null(strstr(err.msg, path));
}

/* gzip is read (not written); bzip2 is neither: the reader refuses it. */
static void reader_accepts_only_its_filters(void **state)
{
    (void)state;
    char plain[128];
    snprintf(plain, sizeof(plain), "%s/p.tar", dir);
    si_err err = {0};
    assert_int_equal(write_tar(plain, SI_COMP_NONE, 0, &err), SI_OK);
    assert_int_equal(tu_sh("gzip -c '%s' > '%s.gz'", plain, plain), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s.gz", plain);
    assert_int_equal(read_tar(path), ARCHIVE_OK);
    if (tu_sh("command -v bzip2 >/dev/null") == 0) {
        assert_int_equal(tu_sh("bzip2 -c '%s' > '%s.bz2'", plain, plain), 0);
        snprintf(path, sizeof(path), "%s.bz2", plain);
        assert_int_equal(read_tar(path), ARCHIVE_FATAL);
    }
    /* not a tarball at all */
    snprintf(path, sizeof(path), "%s/text", dir);
    assert_int_equal(tu_sh("echo 'just text' > '%s'", path), 0);
    assert_int_not_equal(read_tar(path), ARCHIVE_OK);
}

/* The raw reader gives the decompressed bytes as one entry, tar or not. */
static void raw_reader(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/raw.txt", dir);
    assert_int_equal(tu_sh("printf 'raw bytes, not a tarball' | zstd -q -c > '%s.zst' && "
                           "printf 'raw bytes, not a tarball' | xz -q -c > '%s.xz'",
                           path, path), 0);
    const char *ext[] = {".zst", ".xz"};
    for (size_t i = 0; i < 2; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", path, ext[i]);
        struct archive *a = si_raw_reader_new();
        assert_non_null(a);
        assert_int_equal(archive_read_open_filename(a, p, 10240), ARCHIVE_OK);
        struct archive_entry *e;
        assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
        char buf[64] = {0};
        assert_int_equal(archive_read_data(a, buf, sizeof(buf) - 1), 24);
        assert_string_equal(buf, "raw bytes, not a tarball");
        assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_EOF);
        archive_read_free(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_compressions),
        cmocka_unit_test(writer_bad_levels),
        cmocka_unit_test(reader_accepts_only_its_filters),
        cmocka_unit_test(raw_reader),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
