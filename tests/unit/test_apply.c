/* test_apply.c - the apply engine: members, deltas, type changes,
 * partitions, hostile tarballs. */
#include <archive.h>
#include <archive_entry.h>
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
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "apply.h"
#include "payload.h"
#include "testutil.h"

static char dir[64];
static char target[128], outside[128], tarpath[128];

struct mem {
    const char *name;
    char kind;           /* f file, d dir, l symlink, h hardlink, c char device */
    const char *data;    /* content, or link target */
    int mode;
};

static void write_tar(const char *path, const struct mem *m, size_t n)
{
    struct archive *w = archive_write_new();
    assert_non_null(w);
    assert_int_equal(archive_write_set_format_pax(w), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, m[i].mode ? m[i].mode : 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        switch (m[i].kind) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
            break;
        case 'd': archive_entry_set_filetype(e, AE_IFDIR); break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, m[i].data);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        }
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        if (m[i].kind == 'f' && m[i].data[0])
            assert_int_equal(archive_write_data(w, m[i].data, strlen(m[i].data)),
                             (la_ssize_t)strlen(m[i].data));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
}

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "apply") != 0)
        return -1;
    snprintf(target, sizeof(target), "%s/target", dir);
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    snprintf(tarpath, sizeof(tarpath), "%s/in.tar", dir);
    mkdir(target, 0755);
    mkdir(outside, 0755);
    char s[160];
    snprintf(s, sizeof(s), "%s/sentinel", outside);
    FILE *f = fopen(s, "w");
    fputs("untouched", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void read_text(const char *path, char *buf, size_t sz)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sz - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void check_sentinel(void)
{
    char p[200], buf[64];
    snprintf(p, sizeof(p), "%s/sentinel", outside);
    read_text(p, buf, sizeof(buf));
    assert_string_equal(buf, "untouched");
    snprintf(p, sizeof(p), "%s/pwned", outside);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/pwned", dir);
    assert_int_equal(access(p, F_OK), -1);
}

static si_result apply(bool format, const si_partition_map *pm, size_t np, si_err *err)
{
    si_apply_opts o = {.target_dir = target, .format = format, .partitions = pm,
                       .npartitions = np};
    const char *files[] = {tarpath};
    return si_apply_files(&o, files, 1, err);
}

static void progress_cb(uint64_t done, uint64_t total, void *ctx)
{
    uint64_t *last = ctx;
    assert_true(done <= total);
    assert_true(done >= *last);
    *last = done;
}

static void full_then_reapply(void **state)
{
    (void)state;
    const struct mem m[] = {
        {"system/etc", 'd', NULL, 0755},
        {"system/etc/a", 'f', "alpha", 0600},
        {"system/etc/b", 'h', "system/etc/a", 0},
        {"system/etc/l", 'l', "a", 0},
        {"system/dev/null", 'c', NULL, 0666},
        {"system/x/y/z", 'f', "deep, parents created", 0644},
    };
    write_tar(tarpath, m, sizeof(m) / sizeof(m[0]));
    for (int round = 0; round < 2; round++) {
        uint64_t last = 0;
        si_apply_opts o = {.target_dir = target, .format = round == 1, .progress = progress_cb,
                           .progress_ctx = &last};
        const char *files[] = {tarpath};
        si_err err = {0};
        assert_int_equal(si_apply_files(&o, files, 1, &err), SI_OK);
        struct stat st;
        assert_int_equal(stat(tarpath, &st), 0);
        assert_int_equal(last, (uint64_t)st.st_size);
        char p[200], buf[64];
        snprintf(p, sizeof(p), "%s/etc/a", target);
        read_text(p, buf, sizeof(buf));
        assert_string_equal(buf, "alpha");
        struct stat a, b;
        assert_int_equal(lstat(p, &a), 0);
        assert_int_equal(a.st_mode & 07777, 0600);
        assert_int_equal(a.st_mtime, 1700000000);
        snprintf(p, sizeof(p), "%s/etc/b", target);
        assert_int_equal(lstat(p, &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        snprintf(p, sizeof(p), "%s/etc/l", target);
        ssize_t n = readlink(p, buf, sizeof(buf));
        assert_int_equal(n, 1);
        snprintf(p, sizeof(p), "%s/dev/null", target);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(1, 3));
        snprintf(p, sizeof(p), "%s/etc/.sysimage-tmp", target);
        assert_int_equal(access(p, F_OK), -1);
    }
}

static void delta_removed_and_type_changes(void **state)
{
    (void)state;
    const struct mem full[] = {
        {"system/f2d", 'f', "file", 0644},
        {"system/d2l", 'd', NULL, 0755},
        {"system/d2l/inner", 'f', "in", 0644},
        {"system/gone", 'f', "bye", 0644},
        {"system/keep", 'f', "keep", 0644},
    };
    write_tar(tarpath, full, 5);
    si_err err = {0};
    assert_int_equal(apply(true, NULL, 0, &err), SI_OK);
    const struct mem delta[] = {
        {"removed", 'f', "system/d2l\nsystem/d2l/inner\nsystem/f2d\nsystem/gone\nsystem/never\n", 0},
        {"system/d2l", 'l', "keep", 0},
        {"system/f2d", 'd', NULL, 0700},
        {"system/f2d/now", 'f', "dir now", 0644},
        {"system/keep2", 'h', "system/keep", 0},
    };
    write_tar(tarpath, delta, 5);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(apply(false, NULL, 0, &err), SI_OK);
        char p[200];
        struct stat st;
        snprintf(p, sizeof(p), "%s/d2l", target);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        snprintf(p, sizeof(p), "%s/f2d", target);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        snprintf(p, sizeof(p), "%s/gone", target);
        assert_int_equal(access(p, F_OK), -1);
        struct stat k1, k2;
        snprintf(p, sizeof(p), "%s/keep", target);
        assert_int_equal(lstat(p, &k1), 0);
        snprintf(p, sizeof(p), "%s/keep2", target);
        assert_int_equal(lstat(p, &k2), 0);
        assert_int_equal(k1.st_ino, k2.st_ino);
    }
}

static void hostile_members_refused(void **state)
{
    (void)state;
    char abs_path[200], abs_dir[200];
    snprintf(abs_path, sizeof(abs_path), "%s/pwned", outside);
    snprintf(abs_dir, sizeof(abs_dir), "%s", outside);
    const struct mem cases[][2] = {
        {{abs_path, 'f', "x", 0}, {0}},
        {{"../pwned", 'f', "x", 0}, {0}},
        {{"system/../../pwned", 'f', "x", 0}, {0}},
        {{"etc/passwd", 'f', "x", 0}, {0}},
        {{"system/evil", 'l', abs_dir, 0}, {"system/evil/pwned", 'f', "x", 0}},
        {{"system/up", 'l', "../../outside", 0}, {0}},
        {{"system/h", 'h', "system/../outside/sentinel", 0}, {0}},
        {{"partitions/boot.img", 'c', NULL, 0}, {0}},
        {{"partitions/system.img", 'f', "x", 0}, {0}},
        {{"removed", 'f', "system/../outside/sentinel\n", 0}, {0}},
    };
    si_partition_map pm[] = {{"boot", abs_path}, {"system", abs_path}};
    /* both ways: temp + rename, and final names on a fresh target (format) */
    for (size_t k = 0; k < 2 * sizeof(cases) / sizeof(cases[0]); k++) {
        size_t i = k / 2;
        size_t n = cases[i][1].name ? 2 : 1;
        write_tar(tarpath, cases[i], n);
        si_err err = {0};
        si_result rc = apply(k % 2, pm, 2, &err);
        if (rc != SI_ERR_UNSAFE_PATH)
            fail_msg("case %zu (%s): rc %d: %s", i, k % 2 ? "fresh" : "temp", rc, err.msg);
        /* the message names the member (or the removed entry) */
        const char *named = cases[i][n - 1].kind == 'f' && strcmp(cases[i][n - 1].name, "removed") == 0
                                ? "system/../outside/sentinel"
                                : cases[i][n - 1].name;
        if (!strstr(err.msg, named))
            fail_msg("case %zu: message '%s' does not name '%s'", i, err.msg, named);
        check_sentinel();
    }
}

/* On a fresh target members go to their final names; a name already there
 * (a member listed twice, a file the caller put there) still takes the
 * temporary name and the rename. */
static void fresh_target_names_already_there(void **state)
{
    (void)state;
    const struct mem m[] = {
        {"system/d", 'd', NULL, 0755},
        {"system/d/a", 'f', "one", 0},
        {"system/d/a", 'f', "two", 0600},
        {"system/d/l", 'l', "a", 0},
        {"system/d/l", 'l', "b", 0},
        {"system/d/h", 'h', "system/d/a", 0},
        {"system/d/h", 'h', "system/d/a", 0},
        {"system/d/x", 'f', "new", 0},
    };
    write_tar(tarpath, m, sizeof(m) / sizeof(m[0]));
    char p[200], q[200], buf[64];
    snprintf(p, sizeof(p), "%s/d", target);
    assert_int_equal(si_empty_dir(target, NULL), SI_OK);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/d/x", target);
    FILE *f = fopen(p, "w");
    fputs("old", f);
    fclose(f);
    si_apply_opts o = {.target_dir = target, .fresh = true};
    const char *files[] = {tarpath};
    si_err err = {0};
    assert_int_equal(si_apply_files(&o, files, 1, &err), SI_OK);
    read_text(p, buf, sizeof(buf));
    assert_string_equal(buf, "new");
    snprintf(p, sizeof(p), "%s/d/a", target);
    read_text(p, buf, sizeof(buf));
    assert_string_equal(buf, "two");
    struct stat st, st2;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(q, sizeof(q), "%s/d/h", target);
    assert_int_equal(stat(q, &st2), 0);
    assert_true(st.st_ino == st2.st_ino);
    snprintf(p, sizeof(p), "%s/d/l", target);
    ssize_t n = readlink(p, buf, sizeof(buf) - 1);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 'b');
    snprintf(p, sizeof(p), "%s/d/.sysimage-tmp", target);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(si_empty_dir(target, NULL), SI_OK);
}

static void partitions_mapped_and_unmapped(void **state)
{
    (void)state;
    const struct mem m[] = {{"partitions/boot.img", 'f', "BOOTDATA", 0}};
    write_tar(tarpath, m, 1);
    char dest[200];
    snprintf(dest, sizeof(dest), "%s/boot.raw", dir);
    si_partition_map pm[] = {{"boot", dest}};
    si_err err = {0};
    assert_int_equal(apply(false, pm, 1, &err), SI_OK);
    char buf[64];
    read_text(dest, buf, sizeof(buf));
    assert_string_equal(buf, "BOOTDATA");
    assert_int_equal(apply(false, NULL, 0, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "boot"));
}

static void garbage_and_missing_input(void **state)
{
    (void)state;
    FILE *f = fopen(tarpath, "w");
    fputs("this is not a tarball at all, not even close", f);
    fclose(f);
    si_err err = {0};
    assert_int_equal(apply(false, NULL, 0, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, tarpath));
    unlink(tarpath);
    assert_int_equal(apply(false, NULL, 0, &err), SI_ERR_MISSING_FILE);
    si_apply_opts o = {0};
    assert_int_equal(si_apply_files(&o, NULL, 0, &err), SI_ERR_USAGE);
}

static void empty_dir_does_not_follow_symlinks(void **state)
{
    (void)state;
    char p[200];
    snprintf(p, sizeof(p), "%s/sub/deeper", target);
    assert_int_equal(system(NULL) != 0, 1);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && touch %s/f && ln -s %s %s/sub/link", p, p, outside,
             target);
    assert_int_equal(system(cmd), 0);
    si_err err = {0};
    assert_int_equal(si_empty_dir(target, &err), SI_OK);
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    snprintf(p, sizeof(p), "%s/sub", target);
    assert_int_equal(access(p, F_OK), -1);
    check_sentinel();
    assert_int_equal(si_empty_dir("/nonexistent-si-dir", &err), SI_ERR_IO);
}


static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    assert_int_equal(system(cmd), 0);
}

static void reset_target(const char *from)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", target, from, target);
    assert_int_equal(system(cmd), 0);
}

/* Members of a tarball, newline-joined. */
static void members(const char *path, char *out, size_t sz)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    out[0] = '\0';
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        strncat(out, archive_entry_pathname(e), sz - strlen(out) - 2);
        strncat(out, "\n", sz - strlen(out) - 1);
    }
    archive_read_free(a);
}

static void same_file(const char *a, const char *b)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
    assert_int_equal(system(cmd), 0);
}

/* Binary patches: round trip, re-apply, stale temporary file, a modified
 * system refused before anything is written. */
static void patch_members(void **state)
{
    (void)state;
    char oldt[160], newt[160], delta[160], p[256], q[256];
    snprintf(oldt, sizeof(oldt), "%s/p-old", dir);
    snprintf(newt, sizeof(newt), "%s/p-new", dir);
    snprintf(delta, sizeof(delta), "%s/p-delta.tar", dir);
    sh("mkdir -p %s/lib %s/lib", oldt, newt);
    size_t n = 400000;
    unsigned char *b = malloc(n);
    uint32_t seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (unsigned char)(seed >> 20);
    }
    snprintf(p, sizeof(p), "%s/lib/libc.so.6", oldt);
    write_file(p, b, n, 0755);
    snprintf(p, sizeof(p), "%s/gone", oldt);
    write_file(p, "old file", 8, 0644);
    memcpy(b + 1000, "a security fix", 14);
    b[300000] ^= 1;
    snprintf(p, sizeof(p), "%s/lib/libc.so.6", newt);
    write_file(p, b, n - 100, 0700);
    free(b);
    si_build_opts o = {.compression = SI_COMP_NONE};
    si_err err = {0};
    assert_int_equal(si_build_delta(oldt, newt, delta, &o, &err), SI_OK);
    char names[1024];
    members(delta, names, sizeof(names));
    assert_string_equal(names, "manifest\npatched\nremoved\npatch/lib/libc.so.6\n");
    struct stat st;
    assert_int_equal(stat(delta, &st), 0);
    assert_true(st.st_size < 20000); /* the patch, not the 400 kB file */

    si_apply_opts ao = {.target_dir = target};
    const char *files[] = {delta};
    snprintf(p, sizeof(p), "%s/lib/libc.so.6", target);
    snprintf(q, sizeof(q), "%s/lib/libc.so.6", newt);
    for (int round = 0; round < 3; round++) {
        if (round != 1)
            reset_target(oldt);
        if (round == 2) {
            /* a power cut left a temporary file next to the target */
            char t[256];
            snprintf(t, sizeof(t), "%s/lib/.sysimage-tmp", target);
            write_file(t, "partial", 7, 0600);
        }
        assert_int_equal(si_apply_files(&ao, files, 1, &err), SI_OK);
        same_file(p, q);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        char g[256];
        snprintf(g, sizeof(g), "%s/gone", target);
        assert_int_equal(access(g, F_OK), -1);
        snprintf(g, sizeof(g), "%s/lib/.sysimage-tmp", target);
        assert_int_equal(access(g, F_OK), -1);
    }
    /* a modified system: refused before `removed` deletes anything */
    reset_target(oldt);
    FILE *f = fopen(p, "r+b");
    fputc('!', f);
    fclose(f);
    assert_int_equal(si_apply_files(&ao, files, 1, &err), SI_ERR_CHECKSUM);
    assert_non_null(strstr(err.msg, "system/lib/libc.so.6"));
    assert_non_null(strstr(err.msg, "modified"));
    char g[256];
    snprintf(g, sizeof(g), "%s/gone", target);
    assert_int_equal(access(g, F_OK), 0);
    /* missing file: the same */
    assert_int_equal(unlink(p), 0);
    assert_int_equal(si_apply_files(&ao, files, 1, &err), SI_ERR_CHECKSUM);
    assert_int_equal(access(g, F_OK), 0);
    /* a patch member that `patched` does not announce */
    const struct mem stray[] = {{"patch/gone", 'f', "SIPATCH1", 0644}};
    write_tar(tarpath, stray, 1);
    assert_int_equal(apply(false, NULL, 0, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "patch/gone"));
    /* `patched` after other members */
    const struct mem late[] = {{"removed", 'f', "", 0644}, {"system/a", 'f', "a", 0644},
                               {"patched", 'f', "", 0644}};
    write_tar(tarpath, late, 3);
    assert_int_equal(apply(false, NULL, 0, &err), SI_ERR_PARSE);
}

/* Issue 10 finding 7: names with control bytes are refused, so a directory
 * named "x\nsystem" can never make `removed` delete unrelated paths. */
static void control_bytes_refused(void **state)
{
    (void)state;
    const struct mem cases[][1] = {
        {{"system/x\nsystem/etc", 'f', "x", 0}},
        {{"system/tab\there", 'f', "x", 0}},
        {{"system/esc\033", 'd', NULL, 0}},
        {{"removed", 'f', "system/x\tsystem\n", 0}},
        {{"system/l", 'h', "system/a\nb", 0}},
    };
    char etc[200];
    snprintf(etc, sizeof(etc), "%s/etc", target);
    mkdir(etc, 0755);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_tar(tarpath, cases[i], 1);
        si_err err = {0};
        si_result rc = apply(false, NULL, 0, &err);
        if (rc != SI_ERR_UNSAFE_PATH)
            fail_msg("case %zu: rc %d: %s", i, rc, err.msg);
        assert_int_equal(access(etc, F_OK), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_then_reapply),
        cmocka_unit_test(delta_removed_and_type_changes),
        cmocka_unit_test(hostile_members_refused),
        cmocka_unit_test(fresh_target_names_already_there),
        cmocka_unit_test(partitions_mapped_and_unmapped),
        cmocka_unit_test(garbage_and_missing_input),
        cmocka_unit_test(empty_dir_does_not_follow_symlinks),
        cmocka_unit_test(patch_members),
        cmocka_unit_test(control_bytes_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
