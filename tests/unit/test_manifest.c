/* test_manifest.c - manifest lines from member headers, the parser's checks
 * of every field, and the per-member check (order, content, extra members). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "manifest.h"
#include "sha256.h"

#define D64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static struct archive_entry *entry(const char *name, mode_t type, int64_t size)
{
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, name);
    archive_entry_set_filetype(ae, type);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 42);
    archive_entry_set_mtime(ae, 1700000000, 5);
    archive_entry_set_size(ae, size);
    return ae;
}

static void lines_from_headers(void **state)
{
    (void)state;
    si_err err = {0};
    char line[SI_MANIFEST_LINE_MAX];
    uint8_t d[32];
    si_sha256_buf("test", 4, d);
    struct archive_entry *ae = entry("system/etc/a b", AE_IFREG, 4);
    assert_int_equal(si_manifest_line(ae, d, line, sizeof(line), &err), SI_OK);
    assert_string_equal(line, "f 0644 0 42 1700000000.000000005 4 - " D64 " - system/etc/a b");
    /* an xattr changes the line; the same xattr given twice counts once */
    archive_entry_xattr_add_entry(ae, "user.k", "v", 1);
    char with[SI_MANIFEST_LINE_MAX];
    assert_int_equal(si_manifest_line(ae, d, with, sizeof(with), &err), SI_OK);
    assert_string_not_equal(line, with);
    archive_entry_xattr_add_entry(ae, "user.k", "v", 1);
    assert_int_equal(si_manifest_line(ae, d, line, sizeof(line), &err), SI_OK);
    assert_string_equal(line, with);
    archive_entry_free(ae);
    ae = entry("system/lib", AE_IFLNK, 0);
    archive_entry_set_symlink(ae, "test");
    archive_entry_set_perm(ae, 0777);
    assert_int_equal(si_manifest_line(ae, NULL, line, sizeof(line), &err), SI_OK);
    assert_string_equal(line, "l 0777 0 42 1700000000.000000005 0 - " D64 " - system/lib");
    archive_entry_free(ae);
}

static si_manifest *parse(const char *text, si_result want, const char *msg)
{
    si_err err = {0};
    si_manifest *m = NULL;
    assert_int_equal(si_manifest_parse(text, strlen(text), &m, &err), want);
    if (msg)
        assert_non_null(strstr(err.msg, msg));
    return m;
}

static void parse_and_check(void **state)
{
    (void)state;
    const char *l1 = "d 0755 0 0 1.000000000 0 - - - system/etc/";
    const char *l2 = "f 0644 0 0 1.000000000 4 - " D64 " - system/etc/x";
    const char *l3 = "f 0644 0 0 1.000000000 4 - " D64 " - partitions/boot.img";
    char text[1024];
    snprintf(text, sizeof(text), SI_MANIFEST_MAGIC "\n%s\n%s\n%s\n", l1, l2, l3);
    si_manifest *m = parse(text, SI_OK, NULL);
    assert_int_equal(m->n, 3);
    assert_int_equal(m->nparts, 1);
    assert_string_equal(m->parts[0], "boot");
    assert_false(m->has_version);
    si_err err = {0};
    assert_int_equal(si_manifest_check(m, 0, l1, "u", &err), SI_OK);
    assert_int_equal(si_manifest_check(m, 1, l2, "u", &err), SI_OK);
    /* out of order, changed, beyond the end */
    assert_int_equal(si_manifest_check(m, 1, l1, "u", &err), SI_ERR_CHECKSUM);
    assert_non_null(strstr(err.msg, "member 2 (system/etc/) differs from the manifest"));
    assert_int_equal(si_manifest_check(m, 3, l2, "u", &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "system/etc/x is not in the manifest"));
    si_manifest_free(m);
}

static void parse_refuses(void **state)
{
    (void)state;
    parse("", SI_ERR_PARSE, "does not start");
    parse("sysimage-manifest 2\n", SI_ERR_PARSE, "does not start");
    parse(SI_MANIFEST_MAGIC "\nd 0755 0 0 1.000000000 0 - - - system/x", SI_ERR_PARSE,
          "no newline");
    si_manifest_free(parse(SI_MANIFEST_MAGIC "\n", SI_OK, NULL));
    static const struct {
        const char *line, *why;
    } bad[] = {
        {"x 0755 0 0 1.000000000 0 - - - system/x", "line 2: bad type"},
        {"d 755 0 0 1.000000000 0 - - - system/x", "bad mode"},
        {"d 0758 0 0 1.000000000 0 - - - system/x", "bad mode"},
        {"d 0755 -1 0 1.000000000 0 - - - system/x", "bad uid"},
        {"d 0755 0 0 1.0 0 - - - system/x", "bad mtime"},
        {"d 0755 0 0 1.000000000 5 - - - system/x", "bad size"},
        {"c 0755 0 0 1.000000000 0 - - - system/x", "bad rdev"},
        {"f 0644 0 0 1.000000000 0 - abc - system/x", "bad data digest"},
        {"l 0777 0 0 1.000000000 0 - - - system/x", "bad data digest"},
        {"d 0755 0 0 1.000000000 0 - - - ", "bad name"},
        {"d 0755 0 0 1.000000000 0 - - - system/a\tb", "bad name"},
        {"f 0644 0 0 1.000000000 0 - - - ../etc/passwd", "not an update member"},
        {"f 0644 0 0 1.000000000 0 - - - partitions/misc.img", "not an update member"},
        {"d 0755 0 0 1.000000000 0 - - -  system/x", "not an update member"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), SI_MANIFEST_MAGIC "\n%s\n", bad[i].line);
        assert_null(parse(text, SI_ERR_PARSE, bad[i].why));
    }
}

static void version_member_noted(void **state)
{
    (void)state;
    si_manifest *m = parse(SI_MANIFEST_MAGIC "\nf 0644 0 0 1.000000000 4 - " D64
                           " - system/etc/sysimage/version.json\n", SI_OK, NULL);
    assert_true(m->has_version);
    si_manifest_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_from_headers),
        cmocka_unit_test(parse_and_check),
        cmocka_unit_test(parse_refuses),
        cmocka_unit_test(version_member_noted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
