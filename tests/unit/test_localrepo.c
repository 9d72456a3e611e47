/* test_localrepo.c - repository paths (absolute from the root, no "..")
 * and the refusals before any signature is looked at: no archive-master,
 * not a repository; a measured digest against an index entry; the fetch
 * hook of a source (asked in the chain's order, its errors passed on, the
 * source's name in messages). A published repository verified end to end
 * (directory and URL), its tampering and an expired index refused, is
 * tests/integration/test_image.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "localrepo.h"
#include "testutil.h"

static void test_join(void **state)
{
    (void)state;
    char out[64];
    si_err err;
    assert_int_equal(si_repo_join("/srv/repo", "/pool/a.tar.zst", out, sizeof(out), &err), SI_OK);
    assert_string_equal(out, "/srv/repo/pool/a.tar.zst");
    assert_int_equal(si_repo_join("/r", "/x..y/..z", out, sizeof(out), &err), SI_OK); /* not ".." */
    assert_int_equal(si_repo_join("/r", "pool/a", out, sizeof(out), &err), SI_ERR_UNSAFE_PATH);
    assert_int_equal(si_repo_join("/r", "/pool/../../etc/passwd", out, sizeof(out), &err), SI_ERR_UNSAFE_PATH);
    assert_non_null(strstr(err.msg, "'..'"));
    assert_int_equal(si_repo_join("/r", "/..", out, sizeof(out), &err), SI_ERR_UNSAFE_PATH);
    char tiny[8];
    assert_int_equal(si_repo_join("/srv/repo", "/pool/a", tiny, sizeof(tiny), &err), SI_ERR_USAGE);
}

static void test_refusals(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tu_tmpdir(dir, "localrepo"), 0);
    si_repo_build b;
    si_err err;
    assert_int_equal(si_repo_open_build(dir, "/nonexistent.keyring", "stable", "dev", -1, 0, &b, &err),
                     SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "archive-master keyring"));
    /* a real archive-master, a directory that is no repository */
    if (tu_sh("test -f keys/dev/archive-master.keyring") == 0) {
        assert_int_equal(si_repo_open_build(dir, "keys/dev/archive-master.keyring", "stable", "dev", -1,
                                            0, &b, &err),
                         SI_ERR_MISSING_FILE);
        assert_non_null(strstr(err.msg, "a published repository?"));
    }
    assert_null(b.index);
    assert_int_equal(b.nfiles, 0);
    tu_rmtree(dir);
}

static void test_check_digest(void **state)
{
    (void)state;
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf("abc", 3, d);
    si_index_file f = {.size = 3,
                       .checksum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"};
    si_err err;
    assert_int_equal(si_repo_check_digest("x", &f, d, 3, &err), SI_OK);
    assert_int_equal(si_repo_check_digest("x", &f, d, 4, &err), SI_ERR_SIZE);
    assert_non_null(strstr(err.msg, "x: 4 bytes, the index says 3"));
    d[0] ^= 1;
    assert_int_equal(si_repo_check_digest("x", &f, d, 3, &err), SI_ERR_CHECKSUM);
    assert_non_null(strstr(err.msg, "the index says ba7816bf"));
}

struct fake {
    char asked[8][128];
    int n;
    si_result answer;
};

static si_result fake_fetch(void *ctx, const char *path, const char *local, uint64_t size, uint64_t max,
                            si_err *err)
{
    struct fake *f = ctx;
    (void)local;
    (void)size;
    assert_true(max > 0);
    if (f->n < 8)
        snprintf(f->asked[f->n++], sizeof(f->asked[0]), "%s", path);
    return si_err_set(err, f->answer, "%s: fake answer", path);
}

static void test_fetch_hook(void **state)
{
    (void)state;
    if (tu_sh("test -f keys/dev/archive-master.keyring") != 0)
        skip();
    char dir[64];
    assert_int_equal(tu_tmpdir(dir, "localrepo-fetch"), 0);
    struct fake fk = {.answer = SI_ERR_NOT_FOUND};
    si_repo_src src = {.root = dir, .name = "https://example.org/repo", .fetch = fake_fetch, .ctx = &fk};
    si_repo_query q = {.channel = "stable", .device = "dev", .build = -1};
    si_repo_build b;
    si_err err;
    /* nothing there: the first keyring asked, the URL named */
    assert_int_equal(si_repo_open_build_from(&src, "keys/dev/archive-master.keyring", &q, 0, &b, &err),
                     SI_ERR_MISSING_FILE);
    assert_int_equal(fk.n, 1);
    assert_string_equal(fk.asked[0], "/keyrings/image-master.keyring");
    assert_non_null(strstr(err.msg, "is https://example.org/repo a published repository?"));
    /* any other failure of the source is passed on as it is */
    struct fake down = {.answer = SI_ERR_NETWORK};
    src.ctx = &down;
    assert_int_equal(si_repo_open_build_from(&src, "keys/dev/archive-master.keyring", &q, 0, &b, &err),
                     SI_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "/keyrings/image-master.keyring: fake answer"));
    assert_null(b.index);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_join), cmocka_unit_test(test_refusals),
                                       cmocka_unit_test(test_check_digest), cmocka_unit_test(test_fetch_hook)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
