/* test_board.c - board.json: the reference board parses, lays out as the
 * test harness does, renders grub.cfg; each refusal names what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "board.h"
#include "fsutil.h"

#define REF "images/qemu-x86_64/board.json"
#define MIB SI_MIB_BYTES

#define AB "images/qemu-x86_64-ab/board.json"

static char *file_text(const char *path, size_t *len)
{
    char *buf = NULL;
    assert_int_equal(si_read_file(path, SI_BOARD_MAX_BYTES, &buf, len), 0);
    return buf;
}

static void test_reference_board(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load(REF, &b, &err), SI_OK);
    assert_string_equal(b.name, "qemu-x86_64");
    assert_int_equal(b.nparts, 7);
    assert_int_equal(si_board_part_number(&b, "bios"), 1);
    assert_int_equal(si_board_part_number(&b, "esp"), 2);
    assert_int_equal(si_board_part_number(&b, "userdata"), 7);
    assert_int_equal(si_board_part_number(&b, "nope"), 0);
    assert_int_equal(si_board_part_find(&b, "esp")->fs, SI_BOARD_FS_VFAT);
    assert_string_equal(si_board_part_find(&b, "esp")->type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_int_equal(si_board_part_find(&b, "recovery")->min_free_mib, 0);
    assert_int_equal(si_board_part_find(&b, "userdata")->size_mib, 0);
    assert_int_equal(si_board_part_find(&b, "userdata")->min_mib, 64);
    assert_string_equal(b.efi.format, "x86_64-efi");
    assert_string_equal(b.efi.path, "EFI/BOOT/BOOTX64.EFI");
    assert_string_equal(b.bios.partition, "bios");
    assert_string_equal(b.bios.boot_img, "/usr/lib/grub/i386-pc/boot.img");
    assert_string_equal(b.bios.modules[0], "biosdisk");
    assert_int_equal(b.max_recovery_boots, 3);
    char prefix[64];
    si_board_grub_prefix(&b, prefix, sizeof(prefix));
    assert_string_equal(prefix, "(hd0,gpt2)/grub");
}

/* The default disk is what images/board.py builds: 1 MiB, the partitions
 * with userdata at min_mib, 1 MiB for the backup GPT. */
static void test_layout(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load(REF, &b, &err), SI_OK);
    assert_int_equal(si_board_default_disk_bytes(&b), 580 * MIB);
    assert_int_equal(si_board_min_disk_bytes(&b), 580 * MIB);
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    assert_int_equal(si_board_layout(&b, 0, ex, &err), SI_OK);
    assert_int_equal(ex[0].start, 1 * MIB);
    assert_int_equal(ex[0].size, 1 * MIB);
    assert_int_equal(ex[1].start, 2 * MIB);
    assert_int_equal(ex[4].start, 67 * MIB + 64 * MIB);
    assert_int_equal(ex[4].size, 256 * MIB);
    assert_int_equal(ex[6].size, 64 * MIB);
    assert_int_equal(ex[6].start + ex[6].size, 579 * MIB);
    /* a bigger disk: userdata takes it */
    assert_int_equal(si_board_layout(&b, 4096 * MIB + 123, ex, &err), SI_OK);
    assert_int_equal(ex[6].start + ex[6].size, 4095 * MIB);
    /* too small by one MiB */
    assert_int_equal(si_board_layout(&b, 579 * MIB, ex, &err), SI_ERR_NO_SPACE);
    assert_non_null(strstr(err.msg, "at least 580 MiB"));
    assert_non_null(strstr(err.msg, "userdata"));
}

static void test_render(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load(REF, &b, &err), SI_OK);
    const char t[] = "a @ESP@ @MISC@ @RECOVERY@ @SYSTEM@ @MAX_RECOVERY_BOOTS@/@MAX_UNCONFIRMED_BOOTS@ "
                     "t=@TIMEOUT@ mail@example.org @@ @ x";
    char *out = NULL;
    assert_int_equal(si_board_render_grub_cfg(&b, t, strlen(t), 1, &out, &err), SI_OK);
    assert_string_equal(out, "a 2 3 4 5 3/3 t=1 mail@example.org @@ @ x");
    free(out);
    const char bad[] = "x @NOPE@ y";
    assert_int_equal(si_board_render_grub_cfg(&b, bad, strlen(bad), 1, &out, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "@NOPE@"));
    /* the real template renders without leftovers */
    char *tmpl = NULL;
    size_t len = 0;
    assert_int_equal(si_read_file("images/qemu-x86_64/grub.cfg.in", 1 << 20, &tmpl, &len), 0);
    assert_int_equal(si_board_render_grub_cfg(&b, tmpl, len, 3, &out, &err), SI_OK);
    assert_non_null(strstr(out, "set sys_system=(hd0,gpt5)"));
    assert_null(strstr(out, "@SYSTEM@"));
    free(out);
    free(tmpl);
}

/* Replace the first `from` in the reference text by `to`; parse; expect
 * code and a message containing `want`. */
static void refuse_in(const char *path, const char *from, const char *to, si_result code,
                      const char *want)
{
    size_t len = 0;
    char *ref = file_text(path, &len);
    char *at = strstr(ref, from);
    assert_non_null(at);
    size_t n = len - strlen(from) + strlen(to);
    char *doc = malloc(n + 1);
    assert_non_null(doc);
    size_t pre = (size_t)(at - ref);
    memcpy(doc, ref, pre);
    memcpy(doc + pre, to, strlen(to));
    memcpy(doc + pre + strlen(to), at + strlen(from), len - pre - strlen(from));
    doc[n] = '\0';
    si_board b;
    si_err err;
    si_err_clear(&err);
    si_result rc = si_board_parse(doc, n, &b, &err);
    if (rc != code || !strstr(err.msg, want))
        fail_msg("'%s' -> '%s': got %d '%s', want %d '%s'", from, to, rc, err.msg, code, want);
    assert_int_equal(b.nparts, 0); /* nothing half-filled */
    free(doc);
    free(ref);
}

static void refuse(const char *from, const char *to, si_result code, const char *want)
{
    refuse_in(REF, from, to, code, want);
}

static void test_refusals(void **state)
{
    (void)state;
    refuse("\"format\": 1", "\"format\": 2", SI_ERR_PARSE, "format 1");
    refuse("\"board\": \"qemu-x86_64\"", "\"board\": \"../x\"", SI_ERR_PARSE, "not a board name");
    refuse("\"table\": \"gpt\"", "\"table\": \"dos\"", SI_ERR_PARSE, "only gpt");
    refuse("\"label\": \"bios\"", "\"label\": \"Bios\"", SI_ERR_PARSE, "not a label");
    refuse("\"label\": \"cache\"", "\"label\": \"system\"", SI_ERR_PARSE, "label used twice");
    refuse("\"size_mib\": 64, \"type\": \"C12A", "\"size_mib\": 32, \"type\": \"C12A", SI_ERR_PARSE,
           "too small for vfat");
    refuse("\"type\": \"C12A7328-F81F-11D2-BA4B-00A0C93EC93B\"", "\"type\": \"C12A7328\"",
           SI_ERR_PARSE, "not a GPT type GUID");
    refuse("\"fs\": \"vfat\"", "\"fs\": \"btrfs\"", SI_ERR_PARSE, "not one of");
    refuse("\"fs\": \"vfat\"", "\"fs\": \"ext4\"", SI_ERR_PARSE, "needs a partition 'esp' with fs vfat");
    refuse("\"size\": \"rest\", \"min_mib\": 64", "\"size\": \"rest\"", SI_ERR_PARSE, "needs min_mib");
    refuse("\"size_mib\": 128", "\"size\": \"rest\", \"min_mib\": 8", SI_ERR_PARSE,
           "only one may have size \"rest\"");
    refuse("\"holds\": \"vmlinuz and initrd.img of the recovery image\"", "\"min_free_mib\": 64", SI_ERR_PARSE,
           "not below");
    refuse("\"default_size_mib\": 578", "\"default_size_mib\": 500", SI_ERR_PARSE,
           "less than the partitions' 578 MiB");
    refuse("\"loader\": \"grub\"", "\"loader\": \"uboot\"", SI_ERR_PARSE, "only grub");
    refuse("\"config\": \"grub.cfg.in\"", "\"config\": \"../grub.cfg.in\"", SI_ERR_PARSE,
           "not a relative path");
    refuse("\"max_recovery_boots\": 3", "\"max_recovery_boots\": 9", SI_ERR_PARSE, "max_recovery_boots");
    refuse("\"partition\": \"bios\"", "\"partition\": \"esp\"", SI_ERR_PARSE, "not a raw partition");
    refuse("\"biosdisk\"", "\"bios disk\"", SI_ERR_PARSE, "not a module name");
    refuse("\"path\": \"EFI/BOOT/BOOTX64.EFI\"", "\"path\": \"/EFI/BOOT/BOOTX64.EFI\"", SI_ERR_PARSE,
           "boot.efi.path");
    refuse("{", "[", SI_ERR_PARSE, "board.json");
}

/* The A/B board: two slots instead of `system`, its env_defaults, the
 * @SLOT_*@ and @PART_<LABEL>@ substitutions of images/board.py. */
static void test_ab_board(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load(REF, &b, &err), SI_OK);
    assert_int_equal(b.nslots, 0);
    assert_string_equal(si_board_system_label(&b), "system");
    /* no env_defaults: the recovery-mode counters */
    assert_int_equal(b.env_defaults.count, 3);
    assert_string_equal(si_grubenv_get(&b.env_defaults, "normal_boots"), "0");

    assert_int_equal(si_board_load(AB, &b, &err), SI_OK);
    assert_int_equal(b.nslots, 2);
    assert_string_equal(b.slots[0], "system_a");
    assert_string_equal(b.slots[1], "system_b");
    assert_string_equal(si_board_system_label(&b), "system_a");
    assert_int_equal(si_board_part_number(&b, "system"), 0);
    assert_int_equal(b.env_defaults.count, 7);
    assert_string_equal(si_grubenv_get(&b.env_defaults, "ab_active"), "a");
    assert_string_equal(si_grubenv_get(&b.env_defaults, "ab_tries"), "0");
    assert_string_equal(si_grubenv_get(&b.env_defaults, "ab_try"), "");
    assert_null(si_grubenv_get(&b.env_defaults, "normal_boots"));

    const char t[] = "@SLOT_A@ @SLOT_B@ @SLOT_A_LABEL@ @SLOT_B_LABEL@ @PART_CACHE@ @PART_SYSTEM_B@ @ESP@";
    char *out = NULL;
    assert_int_equal(si_board_render_grub_cfg(&b, t, strlen(t), 1, &out, &err), SI_OK);
    assert_string_equal(out, "5 6 system_a system_b 7 6 2");
    free(out);
    const char nosys[] = "@SYSTEM@", nopart[] = "@PART_NOPE@";
    assert_int_equal(si_board_render_grub_cfg(&b, nosys, strlen(nosys), 1, &out, &err), SI_ERR_PARSE);
    assert_int_equal(si_board_render_grub_cfg(&b, nopart, strlen(nopart), 1, &out, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "@PART_NOPE@"));
    /* the board's template renders without leftovers */
    char *tmpl = NULL;
    size_t len = 0;
    assert_int_equal(si_read_file("images/qemu-x86_64-ab/grub.cfg.in", 1 << 20, &tmpl, &len), 0);
    assert_int_equal(si_board_render_grub_cfg(&b, tmpl, len, 3, &out, &err), SI_OK);
    assert_non_null(strstr(out, "set slot_a=(hd0,gpt5)"));
    assert_non_null(strstr(out, "set slot_b=(hd0,gpt6)"));
    free(out);
    free(tmpl);
    /* the reference board has no slots to substitute */
    assert_int_equal(si_board_load(REF, &b, &err), SI_OK);
    assert_int_equal(si_board_render_grub_cfg(&b, "@SLOT_A@", 8, 1, &out, &err), SI_ERR_PARSE);
}

static void test_ab_refusals(void **state)
{
    (void)state;
    refuse_in(AB, "\"system_b\"\n    ]", "\"system_a\"\n    ]", SI_ERR_PARSE, "'system_a' twice");
    refuse_in(AB, "\"system_b\"\n    ]", "\"cache\", \"userdata\"\n    ]", SI_ERR_PARSE,
              "two partition labels");
    refuse_in(AB, "\"system_b\"\n    ]", "\"nope\"\n    ]", SI_ERR_PARSE,
              "'nope' is not an ext4 partition");
    refuse_in(AB, "\"system_b\"\n    ]", "\"misc\"\n    ]", SI_ERR_PARSE,
              "'misc' is not an ext4 partition");
    refuse_in(AB, "\"slots\"", "\"no_slots\"", SI_ERR_PARSE, "partition 'system' with fs ext4");
    refuse_in(AB, "\"ab_tries\": 0", "\"ab_tries\": 0.5", SI_ERR_PARSE,
              "boot.env_defaults.ab_tries: a string or an integer");
    refuse_in(AB, "\"ab_tries\": 0", "\"ab tries\": 0", SI_ERR_PARSE, "boot.env_defaults");
    refuse_in(AB, "\"ab_tries\": 0", "\"ab_tries\": [0]", SI_ERR_PARSE, "a string or an integer");
    refuse_in(AB, "\"env_defaults\": {", "\"env_defaults\": 7, \"x\": {", SI_ERR_PARSE, "env_defaults");
}

static void test_path(void **state)
{
    (void)state;
    char p[256];
    si_err err;
    assert_int_equal(si_board_path("images", "qemu-x86_64", p, sizeof(p), &err), SI_OK);
    assert_string_equal(p, "images/qemu-x86_64/board.json");
    assert_int_equal(si_board_path("images", "nope", p, sizeof(p), &err), SI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "board 'nope'"));
    assert_int_equal(si_board_path("images", "../etc", p, sizeof(p), &err), SI_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_board), cmocka_unit_test(test_layout),
        cmocka_unit_test(test_render),          cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_path),            cmocka_unit_test(test_ab_board),
        cmocka_unit_test(test_ab_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
