/* test_sparse.c - data ranges of a sparse file; a sparse copy writes only
 * them, at an offset, and refuses a source larger than its room. */
#include <fcntl.h>
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

#include "sparse.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "sparse");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

struct ranges {
    int n;
    uint64_t start[8], len[8];
};

static int collect(uint64_t start, uint64_t len, void *ctx)
{
    struct ranges *r = ctx;
    if (r->n < 8) {
        r->start[r->n] = start;
        r->len[r->n] = len;
    }
    r->n++;
    return 0;
}

/* 1 MiB file: 10 bytes at 8192, 5000 bytes at 512 KiB, hole elsewhere */
static void make(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    assert_int_equal(pwrite(fd, "0123456789", 10, 8192), 10);
    char buf[5000];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(pwrite(fd, buf, sizeof(buf), 512 * 1024), (ssize_t)sizeof(buf));
    close(fd);
}

static void test_walk(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof(p), "%s/f", dir);
    make(p);
    int fd = open(p, O_RDONLY);
    struct ranges r = {0};
    si_err err;
    assert_int_equal(si_sparse_walk(fd, 1 << 20, 4096, collect, &r, &err), SI_OK);
    close(fd);
    /* filesystems map whole blocks; each data byte is inside a range */
    assert_true(r.n >= 2);
    int found8192 = 0, found512k = 0;
    for (int i = 0; i < r.n && i < 8; i++) {
        assert_int_equal(r.start[i] % 4096, 0);
        if (r.start[i] <= 8192 && r.start[i] + r.len[i] >= 8202)
            found8192 = 1;
        if (r.start[i] <= 512 * 1024 && r.start[i] + r.len[i] >= 512 * 1024 + 5000)
            found512k = 1;
        if (i)
            assert_true(r.start[i] > r.start[i - 1] + r.len[i - 1] - 1);
    }
    assert_true(found8192 && found512k);
}

static void test_copy(void **state)
{
    (void)state;
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/src", dir);
    snprintf(dst, sizeof(dst), "%s/dst", dir);
    make(src);
    int fd = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 4 << 20), 0);
    si_err err;
    assert_int_equal(si_sparse_copy(src, fd, 1 << 20, 1 << 20, &err), SI_OK);
    char buf[16];
    assert_int_equal(pread(fd, buf, 10, (1 << 20) + 8192), 10);
    assert_memory_equal(buf, "0123456789", 10);
    assert_int_equal(pread(fd, buf, 1, (1 << 20) + 512 * 1024 + 4999), 1);
    assert_int_equal(buf[0], 'x');
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_blocks * 512 < 512 * 1024); /* holes stayed holes */
    assert_int_equal(si_sparse_copy(src, fd, 0, (1 << 20) - 1, &err), SI_ERR_NO_SPACE);
    assert_non_null(strstr(err.msg, "do not fit"));
    close(fd);
    assert_int_equal(si_sparse_copy("/nonexistent/x", 1, 0, 1, &err), SI_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_walk), cmocka_unit_test(test_copy)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
