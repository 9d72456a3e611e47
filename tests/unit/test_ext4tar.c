/* test_ext4tar.c - full tarballs into an ext4 image with libext2fs, read
 * back with e2fsck and debugfs: files, directories, symlinks, hardlinks,
 * FIFOs, holes, owners, modes, xattrs, a later tarball replacing a file;
 * the scan's rules and figures; refusals (a delta, a filesystem too small). */
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

#include "ext4tar.h"
#include "mkfs.h"
#include "payload.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "ext4tar") != 0)
        return -1;
    /* tree a: every kind of entry; tree b: one file changed */
    return tu_sh("set -e; cd %s; mkdir -p a/etc a/usr/bin a/var/empty a/dev; "
                 "echo host-a > a/etc/hostname; printf 'x%%.0s' $(seq 1 5000) > a/usr/bin/tool; "
                 "chmod 4755 a/usr/bin/tool; ln a/usr/bin/tool a/usr/bin/tool2; ln -s ../etc/hostname a/usr/name; "
                 "ln -s /a/very/long/target/$(printf 'd%%.0s' $(seq 1 100)) a/usr/longlink; "
                 "mkfifo a/dev/fifo; truncate -s 3M a/usr/sparse; printf data | dd of=a/usr/sparse bs=1 seek=2000000 "
                 "conv=notrunc 2>/dev/null; chmod 700 a/var/empty; "
                 "setfattr -n user.color -v blue a/etc/hostname; "
                 "touch -d @1700000000 a/etc/hostname; "
                 "cp -a a b; echo host-b > b/etc/hostname; touch -d @1700000500 b/etc/hostname; "
                 "mkdir -p c/etc; echo only-c > c/etc/hostname", dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void mkfs(const char *path, unsigned mib)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    close(fd);
    si_mkfs_opts o;
    si_mkfs_opts_init(&o);
    o.size = (uint64_t)mib << 20;
    o.label = "system";
    si_err err;
    assert_int_equal(si_mkfs_ext4(path, &o, &err), SI_OK);
}

static void full(const char *tree, const char *out)
{
    char from[128], to[128];
    snprintf(from, sizeof(from), "%s/%s", dir, tree);
    snprintf(to, sizeof(to), "%s/%s", dir, out);
    si_err err;
    assert_int_equal(si_build_full(from, to, NULL, &err), SI_OK);
}

/* debugfs REQUEST on fs prints something matching grep -E PATTERN */
static int dbg(const char *fs, const char *req, const char *pattern)
{
    return tu_sh("debugfs -R '%s' %s 2>/dev/null | grep -Eq -- '%s'", req, fs, pattern);
}

static void test_fill(void **state)
{
    (void)state;
    full("a", "a.tar.zst");
    full("c", "c.tar.zst");
    char fs[128], ta[128], tc[128];
    snprintf(fs, sizeof(fs), "%s/fs.img", dir);
    snprintf(ta, sizeof(ta), "%s/a.tar.zst", dir);
    snprintf(tc, sizeof(tc), "%s/c.tar.zst", dir);
    mkfs(fs, 16);
    const char *tars[] = {ta, tc};
    int64_t newest = 0;
    uint64_t bytes = 0, members = 0;
    si_err err;
    assert_int_equal(si_ext4tar_scan(tars, 2, &newest, &bytes, &members, &err), SI_OK);
    assert_true(newest >= 1700000000);
    assert_true(bytes >= 5000 + 3 * 1024 * 1024);
    si_ext4tar_stats st;
    assert_int_equal(si_ext4_from_tarballs(fs, tars, 2, 1234567890, &st, &err), SI_OK);
    assert_true(st.members >= 12);
    assert_int_equal(tu_sh("e2fsck -fn %s >/dev/null 2>&1", fs), 0);
    assert_int_equal(dbg(fs, "cat /etc/hostname", "^only-c$"), 0);      /* the later tarball won */
    assert_int_equal(dbg(fs, "stat /usr/bin/tool", "Links: 2"), 0);
    assert_int_equal(dbg(fs, "stat /usr/bin/tool", "Mode:  04755"), 0);
    assert_int_equal(dbg(fs, "stat /usr/bin/tool2", "Links: 2"), 0);
    assert_int_equal(dbg(fs, "stat /usr/name", "Fast link dest: \"../etc/hostname\""), 0);
    assert_int_equal(dbg(fs, "stat /usr/longlink", "Type: symlink"), 0);
    assert_int_equal(dbg(fs, "stat /dev/fifo", "Type: FIFO"), 0);
    assert_int_equal(dbg(fs, "stat /var/empty", "Mode:  0700"), 0);
    assert_int_equal(dbg(fs, "stat /usr/sparse", "Size: 3145728"), 0);
    assert_int_equal(dbg(fs, "stat /usr/sparse", "Blockcount: 8$"), 0); /* one 4 KiB block: a hole */
    assert_int_equal(tu_sh("debugfs -R 'dump /usr/bin/tool %s/tool.out' %s 2>/dev/null && cmp -s %s/tool.out "
                           "%s/a/usr/bin/tool", dir, fs, dir, dir), 0);
    assert_int_equal(tu_sh("debugfs -R 'dump /usr/sparse %s/sparse.out' %s 2>/dev/null && cmp -s %s/sparse.out "
                           "%s/a/usr/sparse", dir, fs, dir, dir), 0);
    /* the replaced hostname's xattr went with it; a's is in a fresh fill */
    char fs2[128];
    snprintf(fs2, sizeof(fs2), "%s/fs2.img", dir);
    mkfs(fs2, 16);
    assert_int_equal(si_ext4_from_tarballs(fs2, tars, 1, 1234567890, NULL, &err), SI_OK);
    assert_int_equal(dbg(fs2, "ea_list /etc/hostname", "color.*blue"), 0);
    assert_int_equal(dbg(fs2, "stat /etc/hostname", "mtime: 0x6553f100"), 0); /* 1700000000 */
}

static void test_add_files(void **state)
{
    (void)state;
    char fs[128], src[128];
    snprintf(fs, sizeof(fs), "%s/rec.img", dir);
    snprintf(src, sizeof(src), "%s/a/usr/bin/tool", dir);
    mkfs(fs, 8);
    const char *names[] = {"vmlinuz", "deep/er/initrd.img"}, *srcs[] = {src, src};
    si_err err;
    assert_int_equal(si_ext4_add_files(fs, names, srcs, 2, 1700000000, NULL, &err), SI_OK);
    assert_int_equal(tu_sh("e2fsck -fn %s >/dev/null 2>&1", fs), 0);
    assert_int_equal(dbg(fs, "stat /deep/er/initrd.img", "Size: 5000"), 0);
    const char *bad[] = {"../x"};
    assert_int_equal(si_ext4_add_files(fs, bad, srcs, 1, 1, NULL, &err), SI_ERR_UNSAFE_PATH);
    const char *missing[] = {"/nonexistent/file"};
    assert_int_equal(si_ext4_add_files(fs, names, missing, 1, 1, NULL, &err), SI_ERR_MISSING_FILE);
}

static void test_refusals(void **state)
{
    (void)state;
    char fs[128], a[128], b[128], delta[128];
    snprintf(fs, sizeof(fs), "%s/small.img", dir);
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(delta, sizeof(delta), "%s/delta.tar.zst", dir);
    si_err err;
    assert_int_equal(si_build_delta(a, b, delta, NULL, &err), SI_OK);
    const char *d[] = {delta};
    assert_int_equal(si_ext4tar_scan(d, 1, NULL, NULL, NULL, &err), SI_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "a delta, not a full image"));
    mkfs(fs, 8);
    assert_int_equal(si_ext4_from_tarballs(fs, d, 1, 1, NULL, &err), SI_ERR_UNSUPPORTED);
    /* 12 MiB of random data into an 8 MiB filesystem */
    assert_int_equal(tu_sh("mkdir -p %s/big && head -c 12M /dev/urandom > %s/big/blob", dir, dir), 0);
    full("big", "big.tar.zst");
    char big[128];
    snprintf(big, sizeof(big), "%s/big.tar.zst", dir);
    const char *t[] = {big};
    assert_int_equal(si_ext4_from_tarballs(fs, t, 1, 1, NULL, &err), SI_ERR_NO_SPACE);
    assert_non_null(strstr(err.msg, "system/blob"));
    assert_non_null(strstr(err.msg, "too small"));
    assert_int_equal(si_ext4_from_tarballs("/nonexistent.img", t, 1, 1, NULL, &err), SI_ERR_PARTITION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fill), cmocka_unit_test(test_add_files),
                                       cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
