/* test_ext4used.c - the used blocks of an ext4 filesystem: ranges in order,
 * within the filesystem, holding the superblock and a written file; a copy of
 * only them onto random bytes is the same filesystem (e2fsck clean, the file
 * reads back); no filesystem is refused before the callback runs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext4used.h"
#include "mkfs.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "ext4used");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

struct ranges {
    int n;
    uint64_t end, sum;
    bool sorted, has_super;
    int copy_to; /* fd, or -1 */
    int copy_from;
};

static int collect(uint64_t start, uint64_t len, void *ctx)
{
    struct ranges *r = ctx;
    if (r->n > 0 && start <= r->end) /* runs are maximal: never adjacent or overlapping */
        r->sorted = false;
    if (start <= 1024 && start + len >= 2048)
        r->has_super = true;
    r->n++;
    r->end = start + len;
    r->sum += len;
    if (r->copy_to >= 0) {
        char *buf = malloc(len);
        assert_non_null(buf);
        assert_int_equal(pread(r->copy_from, buf, len, (off_t)start), (ssize_t)len);
        assert_int_equal(pwrite(r->copy_to, buf, len, (off_t)start), (ssize_t)len);
        free(buf);
    }
    return 0;
}

static void make_fs(const char *img, unsigned block_size)
{
    si_mkfs_opts o;
    si_mkfs_opts_init(&o);
    o.size = 32u << 20;
    o.block_size = block_size;
    int fd = open(img, O_CREAT | O_WRONLY, 0600); /* si_mkfs_ext4 extends it */
    assert_true(fd >= 0);
    close(fd);
    si_err err;
    if (si_mkfs_ext4(img, &o, &err) != SI_OK)
        fail_msg("%s", err.msg);
}

static void walk(const char *img, struct ranges *r, si_ext4_used_stats *st)
{
    memset(r, 0, sizeof(*r));
    r->sorted = true;
    r->copy_to = -1;
    si_err err;
    assert_int_equal(si_ext4_used_walk(img, collect, r, st, &err), SI_OK);
}

static void used_blocks_make_the_same_fs(unsigned block_size)
{
    char img[128], copy[128];
    snprintf(img, sizeof(img), "%s/fs%u.img", dir, block_size);
    snprintf(copy, sizeof(copy), "%s/copy%u.img", dir, block_size);
    make_fs(img, block_size);
    struct ranges empty, full;
    si_ext4_used_stats st;
    walk(img, &empty, &st);
    assert_int_equal(st.fs_bytes, 32u << 20);
    assert_int_equal(st.block_size, block_size);
    assert_true(empty.sorted && empty.has_super);
    assert_int_equal(st.used_bytes, empty.sum);
    assert_true(empty.end <= st.fs_bytes && empty.sum < st.fs_bytes / 2);

    assert_int_equal(tu_sh("head -c 4194304 /dev/urandom > %s/data && "
                           "debugfs -w -R 'write %s/data data' %s >/dev/null 2>&1",
                           dir, dir, img), 0);
    walk(img, &full, &st);
    assert_true(full.sorted && full.sum >= empty.sum + (4u << 20));

    assert_int_equal(tu_sh("head -c 33554432 /dev/urandom > %s", copy), 0);
    full.copy_from = open(img, O_RDONLY);
    full.copy_to = open(copy, O_WRONLY);
    assert_true(full.copy_from >= 0 && full.copy_to >= 0);
    full.n = 0;
    si_err err;
    assert_int_equal(si_ext4_used_walk(img, collect, &full, NULL, &err), SI_OK);
    close(full.copy_from);
    close(full.copy_to);
    assert_int_equal(tu_sh("e2fsck -fn %s >/dev/null 2>&1", copy), 0);
    assert_int_equal(tu_sh("debugfs -R 'dump data %s/back' %s >/dev/null 2>&1 && "
                           "cmp -s %s/data %s/back", dir, copy, dir, dir), 0);
}

static void blocks_of_4k(void **state)
{
    (void)state;
    used_blocks_make_the_same_fs(4096);
}

static void blocks_of_1k(void **state)
{
    (void)state;
    used_blocks_make_the_same_fs(1024); /* first data block 1: the boot block counts */
}

static int never(uint64_t start, uint64_t len, void *ctx)
{
    (void)start;
    (void)len;
    *(int *)ctx = 1;
    return 0;
}

static void no_filesystem_is_refused(void **state)
{
    (void)state;
    char img[128];
    snprintf(img, sizeof(img), "%s/zero.img", dir);
    assert_int_equal(tu_sh("head -c 1048576 /dev/zero > %s", img), 0);
    int called = 0;
    si_err err;
    assert_int_equal(si_ext4_used_walk(img, never, &called, NULL, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "zero.img"));
    assert_int_equal(called, 0);
    snprintf(img, sizeof(img), "%s/missing.img", dir);
    assert_int_not_equal(si_ext4_used_walk(img, never, &called, NULL, &err), SI_OK);
    assert_int_equal(called, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocks_of_4k),
        cmocka_unit_test(blocks_of_1k),
        cmocka_unit_test(no_filesystem_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
