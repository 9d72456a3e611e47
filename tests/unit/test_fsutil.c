/* test_fsutil.c - bounded reads and atomic writes. */
#include <errno.h>
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

#include "fsutil.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "fsutil");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void atomic_write_then_bounded_read(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/f", dir);
    assert_int_equal(si_write_file_atomic(path, "hello", 5, 0640), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(si_read_file(path, 5, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(si_read_file(path, 4, &buf, &len), -EFBIG);
    /* overwrite keeps a whole file */
    assert_int_equal(si_write_file_atomic(path, "bye", 3, 0600), 0);
    assert_int_equal(si_read_file(path, 100, &buf, &len), 0);
    assert_string_equal(buf, "bye");
    free(buf);
}

static void large_file_grows_buffer(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/big", dir);
    size_t n = 100000;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(si_write_file_atomic(path, data, n, 0644), 0);
    char *buf;
    size_t len;
    assert_int_equal(si_read_file(path, n, &buf, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(buf, data, n);
    free(buf);
    assert_int_equal(si_read_file(path, n - 1, &buf, &len), -EFBIG);
    free(data);
}

static void missing_file_and_dir(void **state)
{
    (void)state;
    char *buf;
    size_t len;
    assert_int_equal(si_read_file("/nonexistent/x", 10, &buf, &len), -ENOENT);
    assert_int_equal(si_write_file_atomic("/nonexistent/x", "a", 1, 0644), -ENOENT);
}

static void basename_copies_last_component(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(si_basename("/a/b/c.sig", out, sizeof(out)), 0);
    assert_string_equal(out, "c.sig");
    assert_int_equal(si_basename("plain", out, sizeof(out)), 0);
    assert_string_equal(out, "plain");
    assert_int_equal(si_basename("/x/longername", out, sizeof(out)), -ENAMETOOLONG);
}

static void mkdir_p_creates_parents(void **state)
{
    (void)state;
    char base[] = "/tmp/si-mkdirp-XXXXXX";
    assert_non_null(mkdtemp(base));
    char p[256], q[256];
    snprintf(p, sizeof(p), "%s/a/b//c", base);
    assert_int_equal(si_mkdir_p(p, 0755), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(si_mkdir_p(p, 0755), 0); /* existing: fine */
    snprintf(q, sizeof(q), "%s/a/file", base);
    FILE *f = fopen(q, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/a/file/sub", base);
    assert_int_equal(si_mkdir_p(p, 0755), -ENOTDIR);
    assert_int_equal(si_mkdir_p("", 0755), -ENOENT);
    char *longp = malloc(5000);
    memset(longp, 'x', 4999);
    longp[0] = '/';
    longp[4999] = '\0';
    assert_int_equal(si_mkdir_p(longp, 0755), -ENAMETOOLONG);
    free(longp);
    unlink(q);
    snprintf(p, sizeof(p), "%s/a/b/c", base);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/a/b", base);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/a", base);
    rmdir(p);
    rmdir(base);
}

static void make_temp_dir_creates_unique_dirs(void **state)
{
    (void)state;
    char a[128], b[128], small[16];
    assert_int_equal(si_make_temp_dir(dir, "t", a, sizeof(a)), 0);
    assert_int_equal(si_make_temp_dir(dir, "t", b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    size_t n = strlen(dir) + 3; /* "<dir>/t." */
    assert_int_equal(strncmp(a, dir, strlen(dir)), 0);
    assert_int_equal(strlen(a), n + 6);
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(rmdir(a), 0);
    assert_int_equal(rmdir(b), 0);
    assert_int_equal(si_make_temp_dir(dir, "a-long-prefix", small, sizeof(small)), -ENAMETOOLONG);
    assert_string_equal(small, "");
    char c[128];
    assert_int_equal(si_make_temp_dir("/nonexistent-si-dir", "t", c, sizeof(c)), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(atomic_write_then_bounded_read),
        cmocka_unit_test(large_file_grows_buffer),
        cmocka_unit_test(missing_file_and_dir),
        cmocka_unit_test(basename_copies_last_component),
        cmocka_unit_test(mkdir_p_creates_parents),
        cmocka_unit_test(make_temp_dir_creates_unique_dirs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
