/* test_bmap.c - the bmap of a sparse file: sizes, ranges with their sha256,
 * the file checksum taken with the field zeroed; bmaptool accepts it when
 * installed (copy, then compare). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bmap.h"
#include "fsutil.h"
#include "sha256.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "bmap");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void test_bmap(void **state)
{
    (void)state;
    char img[128], bmap[128];
    snprintf(img, sizeof(img), "%s/img", dir);
    snprintf(bmap, sizeof(bmap), "%s/img.bmap", dir);
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 10 * 4096 + 100), 0); /* a partial last block */
    char blk[4096];
    memset(blk, 'a', sizeof(blk));
    assert_int_equal(pwrite(fd, blk, 4096, 4096 * 3), 4096);
    assert_int_equal(pwrite(fd, "z", 1, 10 * 4096 + 50), 1);
    close(fd);
    si_bmap_stats st;
    si_err err;
    assert_int_equal(si_bmap_write(img, bmap, &st, &err), SI_OK);
    assert_int_equal(st.image_size, 10 * 4096 + 100);
    assert_int_equal(st.blocks, 11);
    assert_true(st.mapped_blocks >= 2 && st.mapped_blocks <= 11);
    char *x = NULL;
    size_t len = 0;
    assert_int_equal(si_read_file(bmap, 1 << 20, &x, &len), 0);
    assert_non_null(strstr(x, "<bmap version=\"2.0\">"));
    assert_non_null(strstr(x, "<ImageSize> 41060 </ImageSize>"));
    assert_non_null(strstr(x, "<BlocksCount> 11 </BlocksCount>"));
    /* the file checksum: sha256 of the file with the field all zeros */
    uint8_t d[SI_SHA256_LEN];
    char hex[65];
    char *copy = strdup(x);
    char *f = strstr(copy, "<BmapFileChecksum> ") + strlen("<BmapFileChecksum> ");
    char want[65];
    memcpy(want, f, 64);
    want[64] = '\0';
    memset(f, '0', 64);
    si_sha256_buf(copy, len, d);
    si_hex_encode(d, sizeof(d), hex);
    assert_string_equal(hex, want);
    free(copy);
    /* the range holding block 3 carries the sha256 of its bytes: when the
     * filesystem mapped block 3 alone, that of the 4096 'a' bytes */
    if (strstr(x, "> 3 </Range>")) {
        si_sha256_buf(blk, sizeof(blk), d);
        si_hex_encode(d, sizeof(d), hex);
        assert_non_null(strstr(x, hex));
    }
    free(x);
}

static void test_bmaptool_accepts_it(void **state)
{
    (void)state;
    if (tu_sh("command -v bmaptool >/dev/null") != 0)
        skip();
    char img[128], bmap[128], copy[128];
    snprintf(img, sizeof(img), "%s/b.img", dir);
    snprintf(bmap, sizeof(bmap), "%s/b.bmap", dir);
    snprintf(copy, sizeof(copy), "%s/b.copy", dir);
    assert_int_equal(tu_sh("truncate -s 3M %s && printf hello | dd of=%s bs=1 seek=1048576 conv=notrunc "
                           "2>/dev/null", img, img), 0);
    si_err err;
    assert_int_equal(si_bmap_write(img, bmap, NULL, &err), SI_OK);
    assert_int_equal(tu_sh("bmaptool -q copy --bmap %s %s %s && cmp %s %s", bmap, img, copy, img, copy), 0);
    assert_int_equal(si_bmap_write("/nonexistent", bmap, NULL, &err), SI_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bmap), cmocka_unit_test(test_bmaptool_accepts_it)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
