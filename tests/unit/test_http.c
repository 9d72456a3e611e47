/* test_http.c - lib/http without a server: server paths that are not plain
 * absolute paths are refused before any request; a server that does not
 * answer is SI_ERR_NETWORK naming the URL, with no file left at the
 * destination. Transfers against a real nginx (ranges, resumes, cuts, sizes)
 * are tests/integration/test_stub.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "testutil.h"

/* 127.0.0.1:1: nothing listens there (a privileged port no test binds) */
static const si_http_opts dead = {.base_url = "http://127.0.0.1:1/repo/", .protocols = "http,https",
                                  .connect_timeout = 5, .low_speed_limit = 1, .low_speed_time = 5,
                                  .retries = 0};

static void test_unsafe_paths(void **state)
{
    (void)state;
    si_http *h = NULL;
    si_err err;
    assert_int_equal(si_http_open(&dead, &h, &err), SI_OK);
    static const char *const bad[] = {"relative", "/a/../b", "/..", "//host/x", "/a?b", "/a#b",
                                      "/a%2e", "/a b", "/a\\b", "/a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *buf = NULL;
        size_t len = 0;
        assert_int_equal(si_http_get(h, bad[i], 100, &buf, &len, &err), SI_ERR_UNSAFE_PATH);
        assert_null(buf);
        assert_non_null(strstr(err.msg, "server path"));
    }
    si_http_close(h);
}

static void test_nobody_listening(void **state)
{
    (void)state;
    char dir[64], dest[128];
    assert_int_equal(tu_tmpdir(dir, "http"), 0);
    snprintf(dest, sizeof(dest), "%s/f", dir);
    si_http *h = NULL;
    si_err err;
    assert_int_equal(si_http_open(&dead, &h, &err), SI_OK);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(si_http_get(h, "/channels.json", 100, &buf, &len, &err), SI_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "http://127.0.0.1:1/repo/channels.json"));
    uint64_t got = 1;
    assert_int_equal(si_http_download(h, "/pool/a.tar.zst", dest, 10, NULL, NULL, &got, &err),
                     SI_ERR_NETWORK);
    assert_int_equal(got, 0);
    assert_int_not_equal(access(dest, F_OK), 0);
    si_http_close(h);
    /* https only (the stub's setting): an http:// URL is refused by libcurl */
    si_http_opts only_https = dead;
    only_https.protocols = NULL;
    assert_int_equal(si_http_open(&only_https, &h, &err), SI_OK);
    assert_int_equal(si_http_get(h, "/channels.json", 100, &buf, &len, &err), SI_ERR_NETWORK);
    si_http_close(h);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unsafe_paths),
                                       cmocka_unit_test(test_nobody_listening)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
