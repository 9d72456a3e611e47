/* test_layout.c - the update-file layout, defined once: member classes, the
 * raw-partition rule (misc and the filesystems are never written raw) and the
 * pre-scan of a tarball that refuses before anything is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "layout.h"

static void member_names(void **state)
{
    (void)state;
    si_err err = {0};
    si_member_kind k;
    char label[SI_LAYOUT_LABEL_MAX + 1];
    assert_int_equal(si_layout_check_member_name("removed", &k, label, sizeof(label), &err), SI_OK);
    assert_int_equal(k, SI_MEMBER_REMOVED);
    assert_int_equal(si_layout_check_member_name("system/etc/x", &k, NULL, 0, &err), SI_OK);
    assert_int_equal(k, SI_MEMBER_SYSTEM);
    assert_int_equal(si_layout_check_member_name("system", &k, NULL, 0, &err), SI_OK);
    assert_int_equal(si_layout_check_member_name("patched", &k, NULL, 0, &err), SI_OK);
    assert_int_equal(k, SI_MEMBER_PATCHED);
    assert_int_equal(si_layout_check_member_name("patch/usr/lib/x.so", &k, NULL, 0, &err), SI_OK);
    assert_int_equal(k, SI_MEMBER_PATCH);
    assert_int_equal(si_layout_check_member_name("partitions/boot.img", &k, label, sizeof(label),
                                                 &err), SI_OK);
    assert_int_equal(k, SI_MEMBER_PARTITION);
    assert_string_equal(label, "boot");
    const char *bad[] = {"partitions/misc.img", "partitions/system.img", "partitions/userdata.img",
                         "partitions/cache.img", "partitions/.x.img", "partitions/a/b.img",
                         "partitions/boot", "partitions/.img", "etc/passwd", "systemd/x",
                         "partitions/b\nx.img", "./system/x", "removed2", "patched2", "patch"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(si_layout_check_member_name(bad[i], &k, label, sizeof(label), &err),
                         SI_ERR_UNSAFE_PATH);
        assert_true(strlen(err.msg) > 0);
    }
    assert_non_null(strstr((si_layout_check_member_name("partitions/misc.img", &k, NULL, 0, &err),
                            err.msg), "never written raw"));
}

static void raw_labels(void **state)
{
    (void)state;
    for (size_t i = 0; i < si_layout_never_raw_count; i++)
        assert_false(si_layout_raw_label_ok(si_layout_never_raw[i]));
    for (size_t i = 0; i < si_layout_board_raw_count; i++)
        assert_true(si_layout_raw_label_ok(si_layout_board_raw[i]));
    assert_false(si_layout_raw_label_ok(""));
    assert_false(si_layout_raw_label_ok("a b"));
}

/* A plain tar with the given members (regular files, content = name). */
static int make_tar(const char *path, const char *const *names, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)strlen(names[i]));
        archive_write_header(a, e);
        archive_write_data(a, names[i], strlen(names[i]));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return 0;
}

struct progress_log {
    unsigned calls;
    uint64_t last;
};

static void on_progress(uint64_t done, void *ctx)
{
    struct progress_log *pl = ctx;
    assert_true(done > pl->last);
    pl->last = done;
    pl->calls++;
}

static void scan_tarball(void **state)
{
    (void)state;
    char path[] = "/tmp/test_layout.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const char *good[] = {"system/etc/x", "partitions/boot.img", "system/etc/sysimage/v.json"};
    assert_int_equal(make_tar(path, good, 3), 0);
    static si_layout_scan sc;
    si_err err = {0};
    fd = open(path, O_RDONLY);
    assert_int_equal(si_layout_scan_tarball(fd, "t", "system/etc/sysimage/v.json", &sc, &err),
                     SI_OK);
    close(fd);
    /* With progress: called with growing counts ending at the file's size. */
    struct progress_log pl = {0};
    struct stat stt;
    assert_int_equal(stat(path, &stt), 0);
    fd = open(path, O_RDONLY);
    static si_layout_scan sc2;
    assert_int_equal(si_layout_scan_tarball_progress(fd, "t", NULL, &sc2, on_progress, &pl, &err),
                     SI_OK);
    close(fd);
    assert_true(pl.calls >= 1);
    assert_int_equal(pl.last, (uint64_t)stt.st_size);
    assert_int_equal(sc.nparts, 1);
    assert_string_equal(sc.parts[0], "boot");
    assert_true(sc.has_version);
    assert_string_equal(sc.version, "system/etc/sysimage/v.json");

    const char *bad[] = {"system/etc/x", "partitions/misc.img"};
    assert_int_equal(make_tar(path, bad, 2), 0);
    fd = open(path, O_RDONLY);
    assert_int_equal(si_layout_scan_tarball(fd, "t", NULL, &sc, &err), SI_ERR_UNSAFE_PATH);
    close(fd);
    assert_non_null(strstr(err.msg, "partitions/misc.img"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(member_names),
        cmocka_unit_test(raw_labels),
        cmocka_unit_test(scan_tarball),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
