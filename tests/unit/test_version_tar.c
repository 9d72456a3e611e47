/* test_version_tar.c - the version tarball (lib/version_tar): exactly one
 * member with the record, in every compression, the same bytes for the same
 * record, read back by si_version_from_tarball; bad options and an
 * unwritable path fail without leaving a file or a temp file behind. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "version.h"
#include "version_tar.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "version_tar");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

/* List the members of a tarball: "name mode uid gid size\n" each. */
static char *list_members(const char *path)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_none(a);
    assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
    static char out[1024];
    out[0] = '\0';
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, "%s %o %lld %lld %lld\n", archive_entry_pathname(e),
                 (unsigned)archive_entry_mode(e), (long long)archive_entry_uid(e),
                 (long long)archive_entry_gid(e), (long long)archive_entry_size(e));
    }
    archive_read_free(a);
    return out;
}

static void build_and_read_tarball(void **state)
{
    (void)state;
    si_version v = {.build = 77};
    strcpy(v.channel, "stable");
    char out[128];
    si_err err = {0};
    const si_compression comps[] = {SI_COMP_ZSTD, SI_COMP_XZ, SI_COMP_NONE};
    const unsigned char magic[][4] = {{0x28, 0xb5, 0x2f, 0xfd}, {0xfd, '7', 'z', 'X'}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(out, sizeof(out), "%s/version-%zu.tar", dir, i);
        si_build_opts opts = {.compression = comps[i], .level = i == 0 ? 3 : 0};
        assert_int_equal(si_version_build_tarball(&v, out, &opts, &err), SI_OK);
        FILE *f = fopen(out, "rb");
        assert_non_null(f);
        unsigned char head[4];
        assert_int_equal(fread(head, 1, 4, f), 4);
        fclose(f);
        if (i < 2)
            assert_memory_equal(head, magic[i], 4);
        char *members = list_members(out);
        char expect[128];
        snprintf(expect, sizeof(expect), "%s 100644 0 0 %zu\n", SI_VERSION_MEMBER,
                 strlen("{\n    \"build\": 77,\n    \"channel\": \"stable\"\n}\n"));
        assert_string_equal(members, expect);
        si_version back = {0};
        bool found = false;
        assert_int_equal(si_version_from_tarball(out, &back, &found, &err), SI_OK);
        assert_true(found);
        assert_int_equal(back.build, 77);
        assert_string_equal(back.channel, "stable");
    }
    /* deterministic: same record, same bytes */
    char again[128];
    snprintf(again, sizeof(again), "%s/again.tar", dir);
    si_build_opts zopts = {.compression = SI_COMP_ZSTD, .level = 3};
    assert_int_equal(si_version_build_tarball(&v, again, &zopts, &err), SI_OK);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    snprintf(out, sizeof(out), "%s/version-0.tar", dir);
    assert_int_equal(si_read_file(out, 1 << 20, &a, &la), 0);
    assert_int_equal(si_read_file(again, 1 << 20, &b, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    /* bad arguments */
    si_build_opts bad = {.compression = (si_compression)42};
    assert_int_equal(si_version_build_tarball(&v, again, &bad, &err), SI_ERR_USAGE);
    snprintf(out, sizeof(out), "%s/no/such/dir/v.tar", dir);
    assert_int_equal(si_version_build_tarball(&v, out, NULL, &err), SI_ERR_IO);
}

/* Entries of dir whose name starts with prefix. */
static int count_prefixed(const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* A failed write leaves an existing out as it was, and no temp file. */
static void failure_keeps_out(void **state)
{
    (void)state;
    si_version v = {.build = 5};
    strcpy(v.channel, "beta");
    char out[128];
    snprintf(out, sizeof(out), "%s/keep.tar", dir);
    assert_int_equal(si_write_file_atomic(out, "old", 3, 0600), 0);
    si_err err = {0};
    si_build_opts zbad = {.compression = SI_COMP_ZSTD, .level = 20};
    tu_assert_error("zstd level 20", si_version_build_tarball(&v, out, &zbad, &err), &err,
                    SI_ERR_USAGE, "out of range");
    si_build_opts xbad = {.compression = SI_COMP_XZ, .level = 10};
    tu_assert_error("xz level 10", si_version_build_tarball(&v, out, &xbad, &err), &err,
                    SI_ERR_USAGE, "out of range");
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(si_read_file(out, 100, &buf, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "old", 3);
    free(buf);
    assert_int_equal(count_prefixed("keep.tar.tmp"), 0);
    /* opts NULL: zstd, and out replaced (mode 0644) */
    assert_int_equal(si_version_build_tarball(&v, out, NULL, &err), SI_OK);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    unsigned char head[4];
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, 4, f), 4);
    fclose(f);
    assert_memory_equal(head, "\x28\xb5\x2f\xfd", 4);
    si_version back = {0};
    bool found = false;
    assert_int_equal(si_version_from_tarball(out, &back, &found, &err), SI_OK);
    assert_true(found);
    assert_int_equal(back.build, 5);
    assert_string_equal(back.channel, "beta");
    assert_int_equal(count_prefixed("keep.tar.tmp"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(build_and_read_tarball),
        cmocka_unit_test(failure_keeps_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
