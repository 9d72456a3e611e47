/* test_version.c - the build record: parse/format, reading an installed
 * tree and finding the record in update tarballs (the version tarball is
 * written by lib/version_tar: test_version_tar.c). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "version");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static si_result parse_str(const char *s, si_version *v, si_err *err)
{
    return si_version_parse(s, strlen(s), v, err);
}

static void parse_good(void **state)
{
    (void)state;
    si_version v;
    si_err err = {0};
    assert_int_equal(parse_str("{\"build\": 42, \"channel\": \"stable\"}", &v, &err), SI_OK);
    assert_int_equal(v.build, 42);
    assert_string_equal(v.channel, "stable");
    /* unknown fields ignored, whitespace around */
    assert_int_equal(parse_str(" \n{\"x\": [1], \"channel\": \"\", \"build\": 0}\n ", &v, &err),
                     SI_OK);
    assert_int_equal(v.build, 0);
    assert_string_equal(v.channel, "");
    assert_int_equal(parse_str("{\"build\": 9007199254740992, \"channel\": \"a\"}", &v, &err),
                     SI_OK);
    assert_int_equal(v.build, 9007199254740992LL);
    /* not NUL-terminated: only len bytes count */
    const char buf[] = "{\"build\": 7, \"channel\": \"d\"}XXXX";
    assert_int_equal(si_version_parse(buf, sizeof(buf) - 5, &v, &err), SI_OK);
    assert_int_equal(v.build, 7);
}

static void expect_parse_error(const char *json, si_result code, const char *needle)
{
    si_version v;
    si_err err = {0};
    tu_assert_error(json, parse_str(json, &v, &err), &err, code, needle);
}

static void parse_bad(void **state)
{
    (void)state;
    expect_parse_error("", SI_ERR_PARSE, "empty");
    expect_parse_error("{", SI_ERR_PARSE, "invalid JSON");
    expect_parse_error("[1]", SI_ERR_PARSE, "object");
    expect_parse_error("{\"channel\": \"a\"}", SI_ERR_PARSE, "build: missing");
    expect_parse_error("{\"build\": \"1\", \"channel\": \"a\"}", SI_ERR_PARSE, "build");
    expect_parse_error("{\"build\": 1.5, \"channel\": \"a\"}", SI_ERR_PARSE, "build");
    expect_parse_error("{\"build\": -1, \"channel\": \"a\"}", SI_ERR_PARSE, "build");
    expect_parse_error("{\"build\": 1e300, \"channel\": \"a\"}", SI_ERR_PARSE, "build");
    expect_parse_error("{\"build\": 1}", SI_ERR_PARSE, "channel: missing");
    expect_parse_error("{\"build\": 1, \"channel\": 5}", SI_ERR_PARSE, "channel");
    expect_parse_error("{\"build\": 1, \"channel\": \"a\"} x", SI_ERR_PARSE, "trailing");
    char longch[300];
    snprintf(longch, sizeof(longch), "{\"build\": 1, \"channel\": \"%0200d\"}", 0);
    expect_parse_error(longch, SI_ERR_PARSE, "channel");
    char *big = malloc(SI_VERSION_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, ' ', SI_VERSION_MAX_BYTES + 1);
    big[SI_VERSION_MAX_BYTES + 1] = '\0';
    expect_parse_error(big, SI_ERR_TOO_LARGE, "limit");
    free(big);
}

static void format_round_trip(void **state)
{
    (void)state;
    si_version v = {.build = 1234};
    strcpy(v.channel, "dev\"el\n");
    char *json = NULL;
    si_err err = {0};
    assert_int_equal(si_version_format(&v, &json, &err), SI_OK);
    assert_string_equal(json, "{\n    \"build\": 1234,\n    \"channel\": \"dev\\\"el\\n\"\n}\n");
    si_version back;
    assert_int_equal(si_version_parse(json, strlen(json), &back, &err), SI_OK);
    assert_int_equal(back.build, 1234);
    assert_string_equal(back.channel, "dev\"el\n");
    free(json);
    v.build = -3;
    assert_int_equal(si_version_format(&v, &json, &err), SI_ERR_USAGE);
}

static void write_path(const char *rel, const char *content)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    assert_int_equal(si_write_file_atomic(p, content, strlen(content), 0644), 0);
}

static void read_tree(void **state)
{
    (void)state;
    char root[128], p[256];
    si_version v;
    si_err err = {0};
    snprintf(root, sizeof(root), "%s/root", dir);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_NOT_FOUND);
    snprintf(p, sizeof(p), "%s/etc", root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/etc/sysimage", root);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_NOT_FOUND);
    write_path("root/etc/sysimage/version.json", "{\"build\": 5, \"channel\": \"s\"}\n");
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_OK);
    assert_int_equal(v.build, 5);
    assert_string_equal(v.channel, "s");
    /* malformed record names the file */
    write_path("root/etc/sysimage/version.json", "{\"build\": true, \"channel\": \"s\"}");
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "etc/sysimage/version.json"));
    /* oversized */
    char *big = malloc(SI_VERSION_MAX_BYTES + 10);
    assert_non_null(big);
    memset(big, ' ', SI_VERSION_MAX_BYTES + 9);
    big[SI_VERSION_MAX_BYTES + 9] = '\0';
    write_path("root/etc/sysimage/version.json", big);
    free(big);
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_TOO_LARGE);
    /* a symlink pointing outside the tree is refused */
    write_path("outside.json", "{\"build\": 99, \"channel\": \"evil\"}");
    snprintf(p, sizeof(p), "%s/etc/sysimage/version.json", root);
    assert_int_equal(unlink(p), 0);
    char target[128];
    snprintf(target, sizeof(target), "%s/outside.json", dir);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_UNSAFE_PATH);
    /* and so is a symlinked directory */
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof(p), "%s/etc/sysimage", root);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(symlink(dir, p), 0);
    assert_int_equal(si_version_read_tree(root, &v, &err), SI_ERR_UNSAFE_PATH);
    snprintf(p, sizeof(p), "%s/nonexistent", dir);
    assert_int_equal(si_version_read_tree(p, &v, &err), SI_ERR_NOT_FOUND);
}

typedef struct member {
    const char *name;
    unsigned type;
    const char *data;     /* regular files */
    size_t size;          /* 0: strlen(data) */
    const char *link;     /* symlinks/hardlinks */
} member;

static void write_tar(const char *path, int gzip, const member *m, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip)
        archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, m[i].type);
        archive_entry_set_perm(e, 0644);
        if (m[i].type == AE_IFLNK)
            archive_entry_set_symlink(e, m[i].link);
        else if (m[i].link)
            archive_entry_set_hardlink(e, m[i].link);
        size_t sz = m[i].data ? (m[i].size ? m[i].size : strlen(m[i].data)) : 0;
        archive_entry_set_size(e, (la_int64_t)sz);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (sz)
            assert_int_equal(archive_write_data(a, m[i].data, sz), (la_ssize_t)sz);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static si_result from_tar(const member *m, size_t n, int gzip, si_version *v, bool *found,
                          si_err *err)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/t.tar", dir);
    write_tar(path, gzip, m, n);
    return si_version_from_tarball(path, v, found, err);
}

static void tarball_variants(void **state)
{
    (void)state;
    si_version v;
    bool found = true;
    si_err err = {0};
    const member none[] = {{"system/etc/hostname", AE_IFREG, "box\n", 0, NULL}};
    assert_int_equal(from_tar(none, 1, 0, &v, &found, &err), SI_OK);
    assert_false(found);

    /* gzip, "./" prefix, later occurrence wins */
    const member two[] = {
        {"system/etc/hostname", AE_IFREG, "box\n", 0, NULL},
        {SI_VERSION_MEMBER, AE_IFREG, "{\"build\": 1, \"channel\": \"a\"}", 0, NULL},
        {"./" SI_VERSION_MEMBER, AE_IFREG, "{\"build\": 2, \"channel\": \"b\"}", 0, NULL},
    };
    assert_int_equal(from_tar(two, 3, 1, &v, &found, &err), SI_OK);
    assert_true(found);
    assert_int_equal(v.build, 2);
    assert_string_equal(v.channel, "b");

    const member sym[] = {{SI_VERSION_MEMBER, AE_IFLNK, NULL, 0, "/etc/passwd"}};
    assert_int_equal(from_tar(sym, 1, 0, &v, &found, &err), SI_ERR_UNSAFE_PATH);
    assert_false(found);

    const member hard[] = {
        {"system/x", AE_IFREG, "{\"build\": 3, \"channel\": \"c\"}", 0, NULL},
        {SI_VERSION_MEMBER, AE_IFREG, NULL, 0, "system/x"},
    };
    assert_int_equal(from_tar(hard, 2, 0, &v, &found, &err), SI_ERR_UNSAFE_PATH);

    char *big = malloc(SI_VERSION_MAX_BYTES + 100);
    assert_non_null(big);
    memset(big, ' ', SI_VERSION_MAX_BYTES + 100);
    const member large[] = {{SI_VERSION_MEMBER, AE_IFREG, big, SI_VERSION_MAX_BYTES + 100, NULL}};
    assert_int_equal(from_tar(large, 1, 0, &v, &found, &err), SI_ERR_TOO_LARGE);
    free(big);

    const member bad[] = {{SI_VERSION_MEMBER, AE_IFREG, "{\"build\": \"x\"}", 0, NULL}};
    assert_int_equal(from_tar(bad, 1, 0, &v, &found, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "build"));
    assert_false(found);

    /* not a tarball; missing file */
    write_path("junk", "this is not a tar archive at all, just text that goes on and on");
    char p[128];
    snprintf(p, sizeof(p), "%s/junk", dir);
    assert_int_equal(si_version_from_tarball(p, &v, &found, &err), SI_ERR_PARSE);
    snprintf(p, sizeof(p), "%s/absent.tar", dir);
    assert_int_equal(si_version_from_tarball(p, &v, &found, &err), SI_ERR_MISSING_FILE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(format_round_trip),
        cmocka_unit_test(read_tree),
        cmocka_unit_test(tarball_variants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
