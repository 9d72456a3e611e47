/* test_repofetch.c - lib/repofetch without a server: only http:// and
 * https:// URLs; the source it gives lib/localrepo (root = the cache, name =
 * the URL); a server that does not answer fails the verification at the
 * first keyring, naming the URL, with nothing in the cache and nothing
 * counted. The URL repository against nginx (same bytes as the directory,
 * a tampered file, an unreachable server) is tests/integration/test_image.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repofetch.h"
#include "testutil.h"

static void test_urls(void **state)
{
    (void)state;
    si_repofetch *f = NULL;
    si_err err;
    assert_int_equal(si_repofetch_open("ftp://example.org/r", NULL, "/tmp", &f, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "not an http:// or https:// URL"));
    assert_int_equal(si_repofetch_open("/srv/repo", NULL, "/tmp", &f, &err), SI_ERR_USAGE);
    assert_null(f);
    assert_int_equal(si_repofetch_open("https://example.org/r", NULL, "/cache", &f, &err), SI_OK);
    si_repo_src src;
    si_repofetch_src(f, &src);
    assert_string_equal(src.root, "/cache");
    assert_string_equal(src.name, "https://example.org/r");
    assert_non_null(src.fetch);
    si_repofetch_close(f);
}

static void test_dead_server(void **state)
{
    (void)state;
    if (tu_sh("test -f keys/dev/archive-master.keyring") != 0)
        skip();
    char dir[64];
    assert_int_equal(tu_tmpdir(dir, "repofetch"), 0);
    si_repofetch *f = NULL;
    si_err err;
    assert_int_equal(si_repofetch_open("http://127.0.0.1:1", NULL, dir, &f, &err), SI_OK);
    si_repo_src src;
    si_repofetch_src(f, &src);
    si_repo_query q = {.channel = "stable", .device = "dev", .build = -1};
    si_repo_build b;
    assert_int_equal(si_repo_open_build_from(&src, "keys/dev/archive-master.keyring", &q, 0, &b, &err),
                     SI_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "http://127.0.0.1:1/keyrings/image-master.keyring"));
    uint64_t bytes = 1, files = 1;
    si_repofetch_stats(f, &bytes, &files);
    assert_int_equal(bytes, 0);
    assert_int_equal(files, 0);
    assert_int_equal(tu_sh("test -z \"$(find '%s' -type f)\"", dir), 0);
    si_repofetch_close(f);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_urls), cmocka_unit_test(test_dead_server)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
