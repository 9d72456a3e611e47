/* test_mkfs.c - ext4 made with libext2fs, checked by e2fsprogs and the kernel. */
#include <errno.h>
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

#include "mkfs.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "mkfs");
}

static int teardown(void **state)
{
    (void)state;
    return tu_sh("umount %s/mnt 2>/dev/null; rm -rf %s", dir, dir) == 0 ? 0 : -1;
}

/* Run a shell command, return its output (malloc'd) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t r;
    while ((r = fread(out + n, 1, cap - 1 - n, p)) > 0) {
        n += r;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static void check_fs(const char *img, const char *label)
{
    char cmd[1024];
    int st;
    snprintf(cmd, sizeof(cmd), "e2fsck -fn %s 2>&1", img);
    char *out = run(cmd, &st);
    if (st != 0)
        fprintf(stderr, "%s\n", out);
    assert_int_equal(st, 0);
    free(out);
    snprintf(cmd, sizeof(cmd), "dumpe2fs -h %s 2>/dev/null", img);
    out = run(cmd, &st);
    assert_int_equal(st, 0);
    const char *feats[] = {"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype",
                           "extent", "64bit", "flex_bg", "sparse_super", "large_file", "huge_file",
                           "dir_nlink", "extra_isize", "metadata_csum"};
    char *fl = strstr(out, "Filesystem features:");
    assert_non_null(fl);
    char line[512];
    sscanf(fl, "Filesystem features: %511[^\n]", line);
    strcat(line, " ");
    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
        char w[64];
        snprintf(w, sizeof(w), "%s ", feats[i]);
        if (!strstr(line, w))
            fail_msg("feature %s missing in '%s'", feats[i], line);
    }
    char want[64];
    snprintf(want, sizeof(want), "Filesystem volume name:   %s\n", *label ? label : "<none>");
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "Filesystem state:         clean"));
    free(out);
}

/* ext4 labelled "userdata" of `size` bytes in a new sparse file dir/name. */
static void make_fs(char *img, size_t imglen, const char *name, uint64_t size)
{
    snprintf(img, imglen, "%s/%s", dir, name);
    int fd = open(img, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    si_mkfs_opts o;
    si_mkfs_opts_init(&o);
    o.label = "userdata";
    o.size = size;
    si_err err;
    si_err_clear(&err);
    if (si_mkfs_ext4(img, &o, &err) != SI_OK)
        fail_msg("%s", err.msg);
}

static void sparse_file_fs_is_clean(void **state)
{
    (void)state;
    char img[128];
    make_fs(img, sizeof(img), "fs.img", 256ull << 20);
    si_err err;
    si_err_clear(&err);
    struct stat st;
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal(st.st_size, 256 << 20);
    /* sparse: far less than the size is allocated (journal 8 MiB + metadata) */
    assert_true((uint64_t)st.st_blocks * 512 < 40ull << 20);
    check_fs(img, "userdata");
    char label[SI_FS_LABEL_MAX + 1];
    assert_int_equal(si_fs_read_label(img, label, &err), SI_OK);
    assert_string_equal(label, "userdata");
}

/* The kernel mounts the filesystem and writes to it; e2fsck still finds it
 * clean. Needs root and a loop device: skipped (and reported as skipped)
 * without them. */
static void kernel_mounts_and_writes(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "kernel_mounts_and_writes: not root, no loop mount: skipped\n");
        skip();
    }
    char img[128];
    make_fs(img, sizeof(img), "mounted.img", 64ull << 20);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/mnt && mount -o loop %s %s/mnt 2>&1", dir, img, dir);
    int rc;
    char *out = run(cmd, &rc);
    if (rc != 0) {
        fprintf(stderr, "kernel_mounts_and_writes: loop mount unavailable (%d: %s): skipped\n",
                rc, out);
        free(out);
        skip();
    }
    free(out);
    snprintf(cmd, sizeof(cmd),
             "mkdir %s/mnt/d && head -c 3000000 /dev/urandom > %s/mnt/d/f && sync; "
             "st=$?; umount %s/mnt || st=1; exit $st", dir, dir, dir);
    out = run(cmd, &rc);
    free(out);
    assert_int_equal(rc, 0);
    check_fs(img, "userdata");
}

static void remake_keeps_label(void **state)
{
    (void)state;
    char img[128];
    snprintf(img, sizeof(img), "%s/keep.img", dir);
    int fd = open(img, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 64 << 20), 0);
    close(fd);
    si_err err;
    si_err_clear(&err);
    /* no filesystem yet: the fallback label is used */
    assert_int_equal(si_mkfs_ext4_keep_label(img, NULL, NULL, &err), SI_ERR_MKFS);
    assert_non_null(strstr(err.msg, "no ext2/3/4 filesystem"));
    assert_int_equal(si_mkfs_ext4_keep_label(img, "first", NULL, &err), SI_OK);
    check_fs(img, "first");
    si_mkfs_opts o;
    si_mkfs_opts_init(&o);
    o.label = "precious";
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_OK);
    char u1[64], u2[64], cmd[256];
    int st;
    snprintf(cmd, sizeof(cmd), "dumpe2fs -h %s 2>/dev/null | grep UUID:", img);
    char *out = run(cmd, &st);
    snprintf(u1, sizeof(u1), "%s", out);
    free(out);
    assert_int_equal(si_mkfs_ext4_keep_label(img, "other", NULL, &err), SI_OK);
    check_fs(img, "precious");
    out = run(cmd, &st);
    snprintf(u2, sizeof(u2), "%s", out);
    free(out);
    assert_string_not_equal(u1, u2); /* a new filesystem, not the old one */
    /* an empty label stays empty */
    o.label = NULL;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_OK);
    assert_int_equal(si_mkfs_ext4_keep_label(img, "fallback", NULL, &err), SI_OK);
    check_fs(img, "");
}

static void bad_inputs(void **state)
{
    (void)state;
    si_err err;
    si_mkfs_opts o;
    char img[128];
    snprintf(img, sizeof(img), "%s/bad.img", dir);
    int fd = open(img, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    si_mkfs_opts_init(&o);
    o.label = "seventeen-bytes-x";
    o.size = 64 << 20;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "seventeen-bytes-x"));

    si_mkfs_opts_init(&o);
    o.block_size = 3000;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_ERR_USAGE);

    si_mkfs_opts_init(&o);
    o.size = 1 << 20;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_ERR_NO_SPACE);
    assert_non_null(strstr(err.msg, "too small"));
    /* just under the minimum, in an existing file: refused before any write */
    assert_int_equal(tu_sh("head -c 8388607 /dev/zero | tr '\\0' 'A' > %s", img), 0);
    o.size = 0;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_ERR_NO_SPACE);
    assert_int_equal(tu_sh("[ \"$(tr -d A < %s | wc -c)\" = 0 ]", img), 0);
    /* the minimum works */
    assert_int_equal(truncate(img, SI_MKFS_MIN_BYTES), 0);
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_OK);
    check_fs(img, "");
    assert_int_equal(truncate(img, 0), 0);

    si_mkfs_opts_init(&o);
    o.reserved_percent = 60;
    assert_int_equal(si_mkfs_ext4(img, &o, &err), SI_ERR_USAGE);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope/x.img", dir);
    assert_int_equal(si_mkfs_ext4(missing, NULL, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(si_mkfs_ext4(dir, NULL, &err), SI_ERR_MKFS);

    char label[SI_FS_LABEL_MAX + 1];
    assert_int_equal(si_fs_read_label(missing, label, &err), SI_ERR_IO);
    assert_int_equal(si_fs_read_label(img, label, &err), SI_ERR_PARTITION);
    assert_int_equal(si_mkfs_ext4_keep_label(img, "waytoolongfallbacklabel", NULL, &err), SI_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sparse_file_fs_is_clean),
        cmocka_unit_test(kernel_mounts_and_writes),
        cmocka_unit_test(remake_keeps_label),
        cmocka_unit_test(bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
