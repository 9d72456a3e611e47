/* test_http.c - lib/http without a server: server paths that are not plain
 * absolute paths are refused before any request; a server that does not
 * answer is SI_ERR_NETWORK naming the URL, with no file left at the
 * destination; the header parser (status lines, Content-Range) and the
 * per-file time budget. Transfers against a real nginx (ranges, resumes, cuts, sizes)
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

static si_http_hdr parse(const char *line, si_http_range *r)
{
    r->start = r->end = r->total = -7;
    return si_http_parse_header(line, strlen(line), r);
}

static void test_parse_header(void **state)
{
    (void)state;
    si_http_range r;
    assert_int_equal(parse("HTTP/1.1 206 Partial Content\r\n", &r), SI_HTTP_HDR_STATUS);
    assert_int_equal(parse("http/2 200\r\n", &r), SI_HTTP_HDR_STATUS);
    assert_int_equal(parse("Content-Range: bytes 7000-29999/30000\r\n", &r), SI_HTTP_HDR_RANGE);
    assert_true(r.start == 7000 && r.end == 29999 && r.total == 30000);
    assert_int_equal(parse("content-range:bytes 0-0/*", &r), SI_HTTP_HDR_RANGE);
    assert_true(r.start == 0 && r.end == 0 && r.total == -1);
    assert_int_equal(parse("CONTENT-RANGE: \tbytes 5-9/10 \n", &r), SI_HTTP_HDR_RANGE);
    /* what sscanf("%llu") took: signs, spaces inside, overflow, trailing junk */
    static const char *const bad[] = {
        "Content-Range: bytes -1-5/10",      "Content-Range: bytes +1-5/10",
        "Content-Range: bytes 1 -5/10",      "Content-Range: bytes 1-5/10x",
        "Content-Range: bytes 5-1/10",       "Content-Range: bytes 1-10/10",
        "Content-Range: bytes 0-1/1",        "Content-Range: items 0-1/2",
        "Content-Range: bytes */10",         "Content-Range: bytes 0-1/",
        "Content-Range: bytes 1-2",          "Content-Range: bytes 1234567890123456789-1/2",
        "Content-Range: bytes 0-18446744073709551615/18446744073709551616",
        "Content-Range:",                    "Content-Type: text/plain",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &r), SI_HTTP_HDR_OTHER);
        assert_int_equal(r.start, -7); /* untouched */
    }
    /* not NUL-terminated: only len bytes count */
    const char line[] = "Content-Range: bytes 1-2/3999";
    assert_int_equal(si_http_parse_header(line, sizeof(line) - 4, &r), SI_HTTP_HDR_RANGE);
    assert_true(r.start == 1 && r.end == 2 && r.total == 3);
    assert_int_equal(si_http_parse_header("HTTP/", 4, &r), SI_HTTP_HDR_OTHER);
}

static void test_budget(void **state)
{
    (void)state;
    si_http_opts o = {.budget_rate = 4096, .budget_allowance = 120};
    assert_int_equal(si_http_budget(&o, 0), 120);
    assert_int_equal(si_http_budget(&o, 1), 121);
    assert_int_equal(si_http_budget(&o, 4096 * 100), 220);
    o.max_rate = 2048; /* our own cap: budgeted at half of it */
    assert_int_equal(si_http_budget(&o, 1024 * 100), 220);
    o.max_rate = 1;
    assert_int_equal(si_http_budget(&o, 10), 130);
    o.max_rate = 1 << 20; /* a cap above the budget rate changes nothing */
    assert_int_equal(si_http_budget(&o, 4096 * 100), 220);
    assert_true(si_http_budget(&o, UINT64_MAX) > 0);
    o.budget_rate = 0;
    assert_int_equal(si_http_budget(&o, 1 << 30), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unsafe_paths),
                                       cmocka_unit_test(test_nobody_listening),
                                       cmocka_unit_test(test_parse_header),
                                       cmocka_unit_test(test_budget)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
