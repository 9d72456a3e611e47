/* test_grubbios.c - GRUB's BIOS code placed by hand: boot.img's code in the
 * MBR with the core image's LBA, the partition table kept, the core image
 * with its block list; refusals write nothing. */
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

#include "grubbios.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "grubbios");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void put(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void test_install(void **state)
{
    (void)state;
    char disk[128], boot[128], core[128];
    snprintf(disk, sizeof(disk), "%s/disk", dir);
    snprintf(boot, sizeof(boot), "%s/boot.img", dir);
    snprintf(core, sizeof(core), "%s/core.img", dir);
    uint8_t b[512], c[1500], mbr[512];
    for (int i = 0; i < 512; i++)
        b[i] = (uint8_t)i;
    b[510] = 0x55;
    b[511] = 0xaa;
    memset(c, 0xc5, sizeof(c));
    put(boot, b, sizeof(b));
    put(core, c, sizeof(c));
    memset(mbr, 0xee, sizeof(mbr)); /* stands for the protective MBR */
    int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 4 << 20), 0);
    assert_int_equal(pwrite(fd, mbr, 512, 0), 512);
    si_err err;
    assert_int_equal(si_grub_bios_install(fd, 1 << 20, 1 << 20, core, boot, &err), SI_OK);
    uint8_t got[512], gc[1500];
    assert_int_equal(pread(fd, got, 512, 0), 512);
    assert_memory_equal(got, b, 0x5c);
    assert_int_equal(le64(got + 0x5c), 2048);
    assert_memory_equal(got + 0x64, b + 0x64, 440 - 0x64);
    assert_memory_equal(got + 440, mbr + 440, 72); /* table and signature kept */
    assert_int_equal(pread(fd, gc, sizeof(gc), 1 << 20), (ssize_t)sizeof(gc));
    assert_int_equal(le64(gc + 500), 2049);
    assert_int_equal(gc[508] | gc[509] << 8, 2); /* 3 sectors: 2 after the first */
    assert_memory_equal(gc, c, 500);
    assert_memory_equal(gc + 512, c + 512, sizeof(c) - 512);

    /* refusals: nothing written */
    char small[128];
    snprintf(small, sizeof(small), "%s/small", dir);
    int fd2 = open(small, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd2, 1 << 20), 0);
    assert_int_equal(si_grub_bios_install(fd2, 4096, 1024, core, boot, &err), SI_ERR_NO_SPACE);
    b[511] = 0;
    put(boot, b, sizeof(b));
    assert_int_equal(si_grub_bios_install(fd2, 4096, 1 << 20, core, boot, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "not a 512-byte boot sector"));
    close(fd2);
    assert_int_equal(tu_sh("cmp -s %s /dev/zero -n 1048576", small), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_install)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
