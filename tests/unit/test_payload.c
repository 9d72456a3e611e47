/* test_payload.c - building full and delta tarballs. */
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
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "payload.h"
#include "testutil.h"

static char dir[64];
static char oldt[128], newt[128], out[128];

static void put(const char *root, const char *rel, const char *data, mode_t mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
    struct timeval tv[2] = {{1600000000, 0}, {1600000000, 0}};
    assert_int_equal(utimes(p, tv), 0);
}

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "payload") != 0)
        return -1;
    snprintf(oldt, sizeof(oldt), "%s/old", dir);
    snprintf(newt, sizeof(newt), "%s/new", dir);
    snprintf(out, sizeof(out), "%s/out.tar", dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/b-dir %s/a %s/b-dir", oldt, oldt, newt);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

/* Member names of a tarball after its first member `manifest`, newline-joined;
 * the data of the member after the manifest in first. */
static void list_members(const char *path, char *names, size_t sz, char *first, size_t fsz)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_xz(a);
    assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    names[0] = '\0';
    int i = 0;
    assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
    assert_string_equal(archive_entry_pathname(e), "manifest");
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *un = archive_entry_uname(e), *gn = archive_entry_gname(e);
        assert_true(!un || !*un);
        assert_true(!gn || !*gn);
        strncat(names, archive_entry_pathname(e), sz - strlen(names) - 2);
        if (archive_entry_hardlink(e)) {
            strncat(names, "=>", sz - strlen(names) - 2);
            strncat(names, archive_entry_hardlink(e), sz - strlen(names) - 2);
        }
        strncat(names, "\n", sz - strlen(names) - 1);
        if (i++ == 0 && first) {
            la_ssize_t n = archive_read_data(a, first, fsz - 1);
            assert_true(n >= 0);
            first[n] = '\0';
        }
    }
    archive_read_free(a);
}

static void full_is_sorted_and_prefixed(void **state)
{
    (void)state;
    put(oldt, "a/f", "content", 0644);
    put(oldt, "a-b", "dash sorts after the a/ subtree", 0600);
    char p1[256], p2[256];
    snprintf(p1, sizeof(p1), "%s/a/f", oldt);
    snprintf(p2, sizeof(p2), "%s/b-dir/g", oldt);
    assert_int_equal(link(p1, p2), 0);
    snprintf(p2, sizeof(p2), "%s/a/l", oldt);
    assert_int_equal(symlink("f", p2), 0);
    si_build_opts o = {.compression = SI_COMP_NONE};
    si_err err = {0};
    assert_int_equal(si_build_full(oldt, out, &o, &err), SI_OK);
    char names[1024];
    list_members(out, names, sizeof(names), NULL, 0);
    assert_string_equal(names, "system/a/\nsystem/a/f\nsystem/a/l\nsystem/a-b\nsystem/b-dir/\n"
                               "system/b-dir/g=>system/a/f\n");
    /* compressed variants carry their magic */
    unsigned char magic[6];
    o.compression = SI_COMP_ZSTD;
    o.level = 5;
    assert_int_equal(si_build_full(oldt, out, &o, &err), SI_OK);
    FILE *f = fopen(out, "rb");
    assert_int_equal(fread(magic, 1, 4, f), 4);
    fclose(f);
    assert_memory_equal(magic, "\x28\xb5\x2f\xfd", 4);
    o.compression = SI_COMP_XZ;
    o.level = 1;
    assert_int_equal(si_build_full(oldt, out, &o, &err), SI_OK);
    f = fopen(out, "rb");
    assert_int_equal(fread(magic, 1, 6, f), 6);
    fclose(f);
    assert_memory_equal(magic, "\xfd" "7zXZ\0", 6);
    /* the same tarball rebuilt from itself lists the same members */
    char again[160];
    snprintf(again, sizeof(again), "%s/again.tar", dir);
    o.compression = SI_COMP_NONE;
    assert_int_equal(si_build_full(out, again, &o, &err), SI_OK);
    char names2[1024];
    list_members(again, names2, sizeof(names2), NULL, 0);
    assert_string_equal(names, names2);
}

static void delta_lists_removed_first(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", newt, oldt, newt);
    assert_int_equal(system(cmd), 0);
    put(newt, "a/f", "changed", 0644);   /* also changes b-dir/g */
    char p[256];
    snprintf(p, sizeof(p), "%s/a-b", newt);
    assert_int_equal(unlink(p), 0);
    put(newt, "zz-new", "new", 0644);
    /* mtime-only change: not shipped */
    snprintf(p, sizeof(p), "%s/a/l", newt);
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    assert_int_equal(lutimes(p, tv), 0);
    si_build_opts o = {.compression = SI_COMP_NONE};
    si_err err = {0};
    assert_int_equal(si_build_delta(oldt, newt, out, &o, &err), SI_OK);
    char names[1024], removed[1024];
    list_members(out, names, sizeof(names), removed, sizeof(removed));
    assert_string_equal(names, "removed\nsystem/a/f\nsystem/b-dir/g=>system/a/f\nsystem/zz-new\n");
    assert_string_equal(removed, "system/a/f\nsystem/a-b\nsystem/b-dir/g\n");
    /* an unchanged tree gives an empty removed list and nothing else */
    assert_int_equal(si_build_delta(newt, newt, out, &o, &err), SI_OK);
    list_members(out, names, sizeof(names), removed, sizeof(removed));
    assert_string_equal(names, "removed\n");
    assert_string_equal(removed, "");
}

static void bad_inputs(void **state)
{
    (void)state;
    si_err err = {0};
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    assert_int_equal(si_build_full(missing, out, NULL, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(si_build_delta(oldt, missing, out, NULL, &err), SI_ERR_MISSING_FILE);
    si_build_opts o = {.compression = SI_COMP_ZSTD, .level = 20};
    assert_int_equal(si_build_full(oldt, out, &o, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "20"));
    o.compression = SI_COMP_XZ;
    o.level = 10;
    assert_int_equal(si_build_full(oldt, out, &o, &err), SI_ERR_USAGE);
    assert_int_equal(si_build_full(NULL, out, NULL, &err), SI_ERR_USAGE);

    /* tarball inputs: unsafe names (a first member outside system/ makes
     * it a rootfs tarball: see rootfs_tarballs) */
    const char *bad[] = {"system/x\nsystem/etc", "system/../x", "system/a/./b"};
    const si_result want[] = {SI_ERR_UNSAFE_PATH, SI_ERR_UNSAFE_PATH, SI_ERR_UNSAFE_PATH};
    char tar[160];
    snprintf(tar, sizeof(tar), "%s/in.tar", dir);
    for (size_t i = 0; i < 3; i++) {
        struct archive *w = archive_write_new();
        archive_write_set_format_pax(w);
        assert_int_equal(archive_write_open_filename(w, tar), ARCHIVE_OK);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, bad[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 0);
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        archive_entry_free(e);
        archive_write_close(w);
        archive_write_free(w);
        assert_int_equal(si_build_full(tar, out, NULL, &err), want[i]);
        assert_non_null(strstr(err.msg, bad[i]));
        assert_int_equal(si_build_delta(oldt, tar, out, NULL, &err), want[i]);
    }
    /* garbage */
    FILE *f = fopen(tar, "w");
    fputs("garbage, not a tarball", f);
    fclose(f);
    assert_int_equal(si_build_full(tar, out, NULL, &err), SI_ERR_PARSE);
    /* no output left behind by failures */
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    assert_int_equal(access(tmp, F_OK), -1);
}


struct tm_ {
    const char *name;
    char kind; /* f d h */
    const char *data;
};

static void write_rootfs(const char *path, const struct tm_ *m, size_t n)
{
    struct archive *w = archive_write_new();
    archive_write_set_format_pax(w);
    archive_write_add_filter_gzip(w);
    assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_uid(e, 123);
        archive_entry_set_gid(e, 456);
        archive_entry_set_mtime(e, 1600000000, 0);
        if (m[i].kind == 'd') {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0750);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 04755);
            archive_entry_xattr_add_entry(e, "user.tag", "v", 1);
            if (m[i].kind == 'h')
                archive_entry_set_hardlink(e, m[i].data);
            else
                archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
        }
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        if (m[i].kind == 'f')
            archive_write_data(w, m[i].data, strlen(m[i].data));
        archive_entry_free(e);
    }
    archive_write_close(w);
    archive_write_free(w);
}

/* Issue 11: rootfs tarballs (./etc/..., etc/...) as build input, owners,
 * modes, xattrs and hardlinks kept. */
static void rootfs_tarballs(void **state)
{
    (void)state;
    char t1[160], t2[160];
    snprintf(t1, sizeof(t1), "%s/rootfs1.tar.gz", dir);
    snprintf(t2, sizeof(t2), "%s/rootfs2.tar.gz", dir);
    const struct tm_ r1[] = {{"./", 'd', NULL}, {"./etc/", 'd', NULL},
                             {"./etc/passwd", 'f', "root:x:0:0"}, {"./etc/hl", 'h', "./etc/passwd"},
                             {"./usr/", 'd', NULL}, {"./usr/bin/", 'd', NULL},
                             {"./usr/bin/sh", 'f', "shell v1"}};
    const struct tm_ r2[] = {{"etc/", 'd', NULL}, {"etc/passwd", 'f', "root:x:0:0"},
                             {"etc/hl", 'h', "etc/passwd"}, {"usr/", 'd', NULL},
                             {"usr/bin/", 'd', NULL}, {"usr/bin/sh", 'f', "shell v2"}};
    write_rootfs(t1, r1, sizeof(r1) / sizeof(r1[0]));
    write_rootfs(t2, r2, sizeof(r2) / sizeof(r2[0]));
    si_build_opts o = {.compression = SI_COMP_NONE};
    si_err err = {0};
    assert_int_equal(si_build_full(t1, out, &o, &err), SI_OK);
    char names[1024];
    list_members(out, names, sizeof(names), NULL, 0);
    assert_string_equal(names, "system/etc/\nsystem/etc/passwd\nsystem/etc/hl=>system/etc/passwd\n"
                               "system/usr/\nsystem/usr/bin/\nsystem/usr/bin/sh\n");
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, out, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    int seen = 0;
    assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK); /* the manifest */
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_int_equal(archive_entry_uid(e), 123);
        assert_int_equal(archive_entry_gid(e), 456);
        if (strcmp(archive_entry_pathname(e), "system/usr/bin/sh") == 0) {
            seen++;
            assert_int_equal(archive_entry_perm(e), 04755);
            const char *n;
            const void *v;
            size_t l;
            assert_true(archive_entry_xattr_reset(e) >= 1); /* pax: SCHILY + LIBARCHIVE */
            assert_int_equal(archive_entry_xattr_next(e, &n, &v, &l), ARCHIVE_OK);
            assert_string_equal(n, "user.tag");
        }
    }
    archive_read_free(a);
    assert_int_equal(seen, 1);
    /* a delta between the two styles: only usr/bin/sh changed */
    assert_int_equal(si_build_delta(t1, t2, out, &o, &err), SI_OK);
    char removed[256];
    list_members(out, names, sizeof(names), removed, sizeof(removed));
    assert_string_equal(names, "removed\nsystem/usr/bin/sh\n");
    assert_string_equal(removed, "system/usr/bin/sh\n");
    /* an absolute member is refused */
    const struct tm_ abs_[] = {{"/etc/passwd", 'f', "x"}};
    write_rootfs(t1, abs_, 1);
    assert_int_equal(si_build_full(t1, out, &o, &err), SI_ERR_UNSAFE_PATH);
}

/* Issue 10 finding 7: a tree with a directory named "x\nsystem" is refused
 * by build full and delta (nothing written): its `removed` line would
 * otherwise read as two paths. */
static void control_byte_names_refused(void **state)
{
    (void)state;
    char cmd[800], odir[200];
    snprintf(odir, sizeof(odir), "%s/nl", dir);
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p '%s/x\nsystem/etc' %s/etc", odir, odir, odir);
    assert_int_equal(system(cmd), 0);
    unlink(out);
    si_err err = {0};
    assert_int_equal(si_build_full(odir, out, NULL, &err), SI_ERR_UNSAFE_PATH);
    assert_non_null(strstr(err.msg, "x\\x0asystem"));
    assert_int_equal(si_build_delta(oldt, odir, out, NULL, &err), SI_ERR_UNSAFE_PATH);
    assert_int_equal(si_build_delta(odir, oldt, out, NULL, &err), SI_ERR_UNSAFE_PATH);
    assert_int_equal(access(out, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_is_sorted_and_prefixed),
        cmocka_unit_test(delta_lists_removed_first),
        cmocka_unit_test(bad_inputs),
        cmocka_unit_test(rootfs_tarballs),
        cmocka_unit_test(control_byte_names_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
