/* test_localrepo.c - repository paths (absolute from the root, no "..")
 * and the refusals before any signature is looked at: no archive-master,
 * not a repository. A published repository verified end to end, and its
 * tampering refused, is tests/integration/test_image.py. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_join), cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
