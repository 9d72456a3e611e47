/* test_partitions.c - partitions by GPT label: a fake sysfs/dev tree, disk
 * images listed with libblkid, and (when loop partitions work) the kernel. */
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

#include "partitions.h"
#include "testutil.h"

static char dir[64];
static char sysd[128], devd[128];

static void add_dev(const char *name, const char *uevent)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/class/block/%s", sysd, name);
    assert_int_equal(mkdir(p, 0755), 0);
    strcat(p, "/uevent");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(uevent, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "parts") != 0)
        return -1;
    snprintf(sysd, sizeof(sysd), "%s/sys", dir);
    snprintf(devd, sizeof(devd), "%s/dev", dir);
    return tu_sh("mkdir -p %s/class/block %s", sysd, devd);
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void fake_sysfs(void)
{
    tu_sh("rm -rf %s/class/block/* %s/*", sysd, devd);
    add_dev("vda", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=9\n");
    add_dev("vda1", "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=1\nPARTNAME=bios\n");
    add_dev("vda3", "MAJOR=254\nMINOR=3\nDEVNAME=vda3\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=3\nPARTNAME=misc\n");
    add_dev("vda5", "MAJOR=254\nMINOR=5\nDEVNAME=vda5\nDEVTYPE=partition\nPARTN=5\nPARTNAME=system\n");
    /* hostile or odd entries are ignored */
    add_dev("evil", "MAJOR=254\nMINOR=9\nDEVNAME=../evil\nDEVTYPE=partition\nPARTN=9\nPARTNAME=cache\n");
    add_dev("nomajor", "DEVNAME=nomajor\nDEVTYPE=partition\nPARTNAME=cache\n");
    add_dev("loop0", "MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\nPARTNAME=cache\n");
}

/* An existing node that is not the device is refused (root or not). */
static void existing_node_not_the_device_is_refused(void **state)
{
    (void)state;
    fake_sysfs();
    si_partition p;
    si_err err;
    si_err_clear(&err);
    char node[256];
    snprintf(node, sizeof(node), "%s/vda3", devd);
    assert_int_equal(tu_sh("touch %s", node), 0);
    assert_int_equal(si_partition_find(sysd, devd, "misc", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "not block device 254:3"));
}

static void finds_by_label_and_makes_node(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "finds_by_label_and_makes_node: not root, cannot mknod: skipped\n");
        skip();
    }
    fake_sysfs();
    si_partition p;
    si_err err;
    si_err_clear(&err);
    si_result r = si_partition_find(sysd, devd, "misc", &p, &err);
    if (r != SI_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(p.label, "misc");
    assert_string_equal(p.name, "vda3");
    assert_int_equal(p.major, 254);
    assert_int_equal(p.minor, 3);
    assert_int_equal(p.partno, 3);
    char want[256];
    snprintf(want, sizeof(want), "%s/vda3", devd);
    assert_string_equal(p.path, want);
    struct stat st;
    assert_int_equal(lstat(want, &st), 0);
    assert_true(S_ISBLK(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(254, 3));
    /* again: the node exists and is reused */
    assert_int_equal(si_partition_find(sysd, devd, "misc", &p, &err), SI_OK);
    assert_int_equal(si_partition_find(sysd, devd, "system", &p, &err), SI_OK);
    assert_string_equal(p.name, "vda5");
    /* a node with the wrong device numbers is refused */
    assert_int_equal(tu_sh("rm %s/vda5 && mknod %s/vda5 b 254 6", devd, devd), 0);
    assert_int_equal(si_partition_find(sysd, devd, "system", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "not block device 254:5"));
    assert_string_equal(p.path, "");
}

static void not_found_and_ambiguous(void **state)
{
    (void)state;
    fake_sysfs();
    si_partition p;
    si_err err;
    /* "cache" appears only on ignored entries (disk, bad name, no numbers) */
    assert_int_equal(si_partition_find(sysd, devd, "cache", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "no partition labelled 'cache'"));
    assert_int_equal(access("/tmp/evil", F_OK), -1);
    assert_int_equal(si_partition_find(sysd, devd, "", &p, &err), SI_ERR_USAGE);
    add_dev("vdb2", "MAJOR=254\nMINOR=18\nDEVNAME=vdb2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=misc\n");
    assert_int_equal(si_partition_find(sysd, devd, "misc", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "label 'misc' is on both"));
    /* the default roots (/sys, /dev) of this machine */
    char path[SI_PART_PATH_MAX];
    assert_int_equal(si_partition_find_path("si-no-such-label-x7", path, sizeof(path), &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "/sys/class/block"));
    char nosys[160];
    snprintf(nosys, sizeof(nosys), "%s/nosys", dir);
    assert_int_equal(si_partition_find(nosys, devd, "misc", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, nosys));
}

static void make_disk(const char *img)
{
    assert_int_equal(tu_sh("rm -f %s && truncate -s 24M %s && printf 'label: gpt\\n"
                        "size=1M, name=bios, type=21686148-6449-6E6F-744E-656564454649\\n"
                        "size=2M, name=esp, type=U\\nsize=1M, name=misc\\nsize=8M, name=system\\n"
                        "name=userdata\\n' | sfdisk -q %s", img, img, img), 0);
}

static void lists_disk_image(void **state)
{
    (void)state;
    char img[128];
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    make_disk(img);
    si_partition parts[8];
    size_t n = 0;
    char tt[8];
    si_err err;
    si_result r = si_partition_list(img, parts, 8, &n, tt, &err);
    if (r != SI_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(tt, "gpt");
    assert_int_equal(n, 5);
    const char *labels[] = {"bios", "esp", "misc", "system", "userdata"};
    uint64_t sizes[] = {1 << 20, 2 << 20, 1 << 20, 8 << 20, 0};
    uint64_t off = 1 << 20; /* sfdisk aligns the first partition at 1 MiB */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(parts[i].label, labels[i]);
        assert_int_equal(parts[i].partno, (int)i + 1);
        assert_int_equal(parts[i].start, off);
        if (sizes[i])
            assert_int_equal(parts[i].size, sizes[i]);
        assert_int_equal(strlen(parts[i].uuid), 36);
        off += parts[i].size;
    }
    assert_string_equal(parts[1].type, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    assert_true(off <= 24u << 20);
    si_partition p;
    assert_int_equal(si_partition_find_in_disk(img, "system", &p, &err), SI_OK);
    assert_int_equal(p.start, 5u << 20);
    assert_int_equal(si_partition_find_in_disk(img, "cache", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "'cache'"));
    /* too small an array */
    assert_int_equal(si_partition_list(img, parts, 3, &n, NULL, &err), SI_ERR_TOO_LARGE);
    /* duplicate labels */
    assert_int_equal(tu_sh("sfdisk -q --part-label %s 5 misc", img), 0);
    assert_int_equal(si_partition_find_in_disk(img, "misc", &p, &err), SI_ERR_PARTITION);
    assert_non_null(strstr(err.msg, "partitions 3 and 5"));
}

static void bad_disks(void **state)
{
    (void)state;
    char img[128], missing[128];
    snprintf(img, sizeof(img), "%s/blank.img", dir);
    snprintf(missing, sizeof(missing), "%s/missing.img", dir);
    assert_int_equal(tu_sh("truncate -s 4M %s", img), 0);
    si_partition parts[4];
    size_t n = 9;
    si_err err;
    assert_int_equal(si_partition_list(img, parts, 4, &n, NULL, &err), SI_ERR_PARTITION);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "no partition table"));
    assert_int_equal(si_partition_list(missing, parts, 4, &n, NULL, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, missing));
    /* garbage where the GPT header should be */
    assert_int_equal(tu_sh("head -c 65536 /dev/urandom | dd of=%s conv=notrunc status=none", img), 0);
    assert_int_not_equal(si_partition_list(img, parts, 4, &n, NULL, &err), SI_OK);
}

/* The real kernel: a loop device with partitions, when the system allows
 * partition scanning of loop devices (often not in containers). Covers the
 * uevent PARTNAME path and the libblkid fallback (uevent without PARTNAME). */
static void kernel_loop_device(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "kernel_loop_device: not root, no loop device: skipped\n");
        skip();
    }
    char img[128], label[64];
    snprintf(img, sizeof(img), "%s/loop.img", dir);
    make_disk(img);
    snprintf(label, sizeof(label), "si-test-%d", (int)getpid());
    assert_int_equal(tu_sh("sfdisk -q --part-label %s 4 %s", img, label), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "losetup -P -f --show %s 2>/dev/null", img);
    FILE *f = popen(cmd, "r");
    char loopdev[64] = "";
    if (f) {
        if (!fgets(loopdev, sizeof(loopdev), f))
            loopdev[0] = '\0';
        pclose(f);
    }
    loopdev[strcspn(loopdev, "\n")] = '\0';
    if (!loopdev[0]) {
        fprintf(stderr, "kernel_loop_device: no loop device (losetup -P -f failed): skipped\n");
        skip();
    }
    const char *base = strrchr(loopdev, '/') + 1;
    char part_uevent[160];
    snprintf(part_uevent, sizeof(part_uevent), "/sys/class/block/%sp4/uevent", base);
    for (int i = 0; i < 20 && access(part_uevent, F_OK) != 0; i++)
        usleep(50000);
    if (access(part_uevent, F_OK) != 0) {
        tu_sh("losetup -d %s", loopdev);
        fprintf(stderr, "kernel_loop_device: loop partition scanning unavailable here: skipped\n");
        skip();
    }
    si_partition p;
    si_err err;
    si_result r = si_partition_find("/sys", devd, label, &p, &err);
    char want[64];
    snprintf(want, sizeof(want), "%sp4", base);
    if (r == SI_OK)
        assert_string_equal(p.name, want);
    /* libblkid fallback: same device, uevent without PARTNAME */
    fake_sysfs();
    struct stat st;
    char pdev[80];
    snprintf(pdev, sizeof(pdev), "/dev/%s", want);
    int have = stat(pdev, &st) == 0;
    if (have) {
        char ue[256];
        snprintf(ue, sizeof(ue), "MAJOR=%u\nMINOR=%u\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=4\n",
                 major(st.st_rdev), minor(st.st_rdev), want);
        add_dev(want, ue);
    }
    si_partition q;
    si_result r2 = have ? si_partition_find(sysd, devd, label, &q, &err) : SI_OK;
    tu_sh("losetup -d %s", loopdev);
    if (r != SI_OK)
        fail_msg("%s", err.msg);
    if (have) {
        assert_int_equal(r2, SI_OK);
        assert_string_equal(q.name, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(existing_node_not_the_device_is_refused),
        cmocka_unit_test(finds_by_label_and_makes_node),
        cmocka_unit_test(not_found_and_ambiguous),
        cmocka_unit_test(lists_disk_image),
        cmocka_unit_test(bad_disks),
        cmocka_unit_test(kernel_loop_device),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
