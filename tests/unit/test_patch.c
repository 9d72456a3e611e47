/* test_patch.c - per-file binary patches: build, header, streaming decode,
 * corrupt and mismatched input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "patch.h"
#include "sha256.h"

static uint8_t *pseudo(size_t n, uint32_t seed)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16) & 0x3f; /* compressible but not trivial */
    }
    return b;
}

/* Decode patch p into out (new_size bytes) with old, feeding chunk bytes at
 * a time. */
static si_result decode(const uint8_t *p, size_t pl, const uint8_t *old, uint8_t **out,
                        size_t chunk, si_err *err)
{
    si_patch_dec *d = si_patch_dec_new();
    assert_non_null(d);
    si_patch_dec_reset(d, "patch/x");
    *out = NULL;
    si_result rc = SI_OK;
    size_t pos = 0;
    while (rc == SI_OK && pos < pl) {
        size_t n = pl - pos < chunk ? pl - pos : chunk, used = 0;
        rc = si_patch_dec_feed(d, p + pos, n, &used, err);
        pos += used;
        if (rc == SI_OK && si_patch_dec_state(d) == SI_PATCH_NEED_TARGET) {
            const si_patch_header *h = si_patch_dec_header(d);
            *out = malloc(h->new_size ? h->new_size : 1);
            assert_non_null(*out);
            rc = si_patch_dec_set_target(d, old, *out, err);
        }
    }
    if (rc == SI_OK)
        rc = si_patch_dec_finish(d, err);
    si_patch_dec_free(d);
    return rc;
}

static void round_trip(void **state)
{
    (void)state;
    size_t ol = 300000, nl = 310000;
    uint8_t *old = pseudo(ol, 1), *nw = malloc(nl);
    /* new = old with an insertion, an edit and an appended tail */
    memcpy(nw, old, 1000);
    memset(nw + 1000, 'X', 5000);
    memcpy(nw + 6000, old + 1000, ol - 1000);
    memcpy(nw + 6000 + ol - 1000, old, nl - (6000 + ol - 1000));
    nw[200000] ^= 0x55;
    uint8_t *p;
    size_t pl;
    si_err err = {0};
    assert_int_equal(si_patch_make(old, ol, nw, nl, 3, &p, &pl, &err), SI_OK);
    assert_true(pl < nl / 10); /* a patch, not a copy */
    si_patch_header h;
    assert_int_equal(si_patch_header_parse(p, pl, &h, &err), SI_OK);
    assert_int_equal(h.old_size, ol);
    assert_int_equal(h.new_size, nl);
    uint8_t d[32];
    si_sha256_buf(old, ol, d);
    assert_memory_equal(d, h.old_sha256, 32);
    si_sha256_buf(nw, nl, d);
    assert_memory_equal(d, h.new_sha256, 32);
    size_t chunks[] = {1, 7, 96, 4096, pl};
    for (size_t i = 0; i < 5; i++) {
        uint8_t *out;
        assert_int_equal(decode(p, pl, old, &out, chunks[i], &err), SI_OK);
        assert_memory_equal(out, nw, nl);
        free(out);
    }
    /* the wrong old content gives garbage that the digest catches (or a
     * frame error): never SI_OK */
    uint8_t *other = pseudo(ol, 2), *out;
    assert_int_not_equal(decode(p, pl, other, &out, 4096, &err), SI_OK);
    free(out);
    free(other);
    /* truncated frame, extra byte */
    assert_int_equal(decode(p, pl - 1, old, &out, 4096, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "patch/x"));
    free(out);
    uint8_t *longer = malloc(pl + 1);
    memcpy(longer, p, pl);
    longer[pl] = 0;
    assert_int_equal(decode(longer, pl + 1, old, &out, 4096, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "after"));
    free(out);
    /* a header announcing fewer bytes than the frame produces */
    memcpy(longer, p, pl);
    longer[24] ^= 1; /* new_size low byte */
    si_err e2 = {0};
    assert_int_not_equal(decode(longer, pl, old, &out, 4096, &e2), SI_OK);
    free(out);
    free(longer);
    free(p);
    free(old);
    free(nw);
}

static void empty_and_identical(void **state)
{
    (void)state;
    uint8_t *old = pseudo(5000, 3), *same = pseudo(5000, 3);
    uint8_t *p, *out;
    size_t pl;
    si_err err = {0};
    /* identical content (metadata-only change): a tiny patch */
    assert_int_equal(si_patch_make(old, 5000, same, 5000, 19, &p, &pl, &err), SI_OK);
    free(same);
    assert_true(pl < 200);
    assert_int_equal(decode(p, pl, old, &out, 50, &err), SI_OK);
    assert_memory_equal(out, old, 5000);
    free(out);
    free(p);
    /* empty old */
    assert_int_equal(si_patch_make(NULL, 0, old, 5000, 19, &p, &pl, &err), SI_OK);
    assert_int_equal(decode(p, pl, NULL, &out, 50, &err), SI_OK);
    assert_memory_equal(out, old, 5000);
    free(out);
    free(p);
    free(old);
}

static void header_checks(void **state)
{
    (void)state;
    si_patch_header h = {.algorithm = SI_PATCH_ALGO_ZSTD, .old_size = 10, .new_size = 20};
    memset(h.old_sha256, 0xaa, 32);
    memset(h.new_sha256, 0xbb, 32);
    uint8_t b[SI_PATCH_HEADER_SIZE];
    si_patch_header_write(&h, b);
    si_patch_header g;
    si_err err = {0};
    assert_int_equal(si_patch_header_parse(b, sizeof(b), &g, &err), SI_OK);
    assert_memory_equal(&g.old_sha256, &h.old_sha256, 32);
    assert_int_equal(g.new_size, 20);
    assert_int_equal(si_patch_header_parse(b, 95, &g, &err), SI_ERR_PARSE);
    uint8_t c[SI_PATCH_HEADER_SIZE];
    memcpy(c, b, sizeof(c));
    c[0] = 'X';
    assert_int_equal(si_patch_header_parse(c, sizeof(c), &g, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "magic"));
    memcpy(c, b, sizeof(c));
    c[8] = 2;
    assert_int_equal(si_patch_header_parse(c, sizeof(c), &g, &err), SI_ERR_UNSUPPORTED);
    memcpy(c, b, sizeof(c));
    c[12] = 1;
    assert_int_equal(si_patch_header_parse(c, sizeof(c), &g, &err), SI_ERR_PARSE);
    h.new_size = SI_PATCH_MAX_BYTES + 1;
    si_patch_header_write(&h, c);
    assert_int_equal(si_patch_header_parse(c, sizeof(c), &g, &err), SI_ERR_TOO_LARGE);
    uint8_t *p;
    size_t pl;
    assert_int_equal(si_patch_make(b, 10, b, (size_t)SI_PATCH_MAX_BYTES + 1, 1, &p, &pl, &err),
                     SI_ERR_TOO_LARGE);
}

static void list_lines(void **state)
{
    (void)state;
    uint8_t o[32], n[32];
    const char *path;
    si_err err = {0};
    char line[256];
    snprintf(line, sizeof(line), "%064d %s system/usr/lib/libc.so.6", 0,
             "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_int_equal(si_patch_list_line_parse(line, o, n, &path, &err), SI_OK);
    assert_string_equal(path, "system/usr/lib/libc.so.6");
    assert_int_equal(n[0], 0xab);
    line[64] = '\t';
    assert_int_equal(si_patch_list_line_parse(line, o, n, &path, &err), SI_ERR_PARSE);
    line[64] = ' ';
    line[3] = 'g';
    assert_int_equal(si_patch_list_line_parse(line, o, n, &path, &err), SI_ERR_PARSE);
    assert_int_equal(si_patch_list_line_parse("short", o, n, &path, &err), SI_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(empty_and_identical),
        cmocka_unit_test(header_checks),
        cmocka_unit_test(list_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
