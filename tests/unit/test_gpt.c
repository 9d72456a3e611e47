/* test_gpt.c - the reference board's GPT written with libfdisk on an image
 * file: partitions, names, types and GUIDs as asked (read back with
 * libblkid); a disk too small is refused before anything is written. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "board.h"
#include "gpt.h"
#include "partitions.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "gpt");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void guids_for(const si_board *b, char g[][SI_UUID_STR])
{
    for (size_t i = 0; i <= b->nparts; i++) {
        uint8_t u[16];
        for (int k = 0; k < 16; k++)
            u[k] = (uint8_t)(i * 16 + k);
        si_uuid_format(u, g[i]);
    }
}

static void test_board_table(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load("images/qemu-x86_64/board.json", &b, &err), SI_OK);
    char disk[128];
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 600 * SI_MIB_BYTES), 0);
    close(fd);
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    assert_int_equal(si_board_layout(&b, 600 * SI_MIB_BYTES, ex, &err), SI_OK);
    char g[SI_BOARD_MAX_PARTS + 1][SI_UUID_STR];
    guids_for(&b, g);
    assert_string_equal(g[0], "00010203-0405-4607-8809-0A0B0C0D0E0F"); /* v4, RFC 4122 variant */
    assert_int_equal(si_gpt_write(disk, &b, ex, g, &err), SI_OK);
    si_partition parts[16];
    size_t n = 0;
    char type[8];
    assert_int_equal(si_partition_list(disk, parts, 16, &n, type, &err), SI_OK);
    assert_string_equal(type, "gpt");
    assert_int_equal(n, b.nparts);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(parts[i].label, b.parts[i].label);
        assert_int_equal(parts[i].partno, (int)i + 1);
        assert_int_equal(parts[i].start, ex[i].start);
        assert_int_equal(parts[i].size, ex[i].size);
        assert_int_equal(strcasecmp(parts[i].uuid, g[i + 1]), 0);
        assert_int_equal(strcasecmp(parts[i].type, b.parts[i].type), 0);
    }
    /* the same inputs, the same table */
    char again[128];
    snprintf(again, sizeof(again), "%s/again.img", dir);
    fd = open(again, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 600 * SI_MIB_BYTES), 0);
    close(fd);
    assert_int_equal(si_gpt_write(again, &b, ex, g, &err), SI_OK);
    assert_int_equal(tu_sh("cmp -s %s %s", disk, again), 0);
}

static void test_too_small(void **state)
{
    (void)state;
    si_board b;
    si_err err;
    assert_int_equal(si_board_load("images/qemu-x86_64/board.json", &b, &err), SI_OK);
    si_board_extent ex[SI_BOARD_MAX_PARTS];
    assert_int_equal(si_board_layout(&b, 0, ex, &err), SI_OK); /* laid out for 580 MiB */
    char disk[128];
    snprintf(disk, sizeof(disk), "%s/small.img", dir);
    int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 579 * SI_MIB_BYTES), 0);
    close(fd);
    char g[SI_BOARD_MAX_PARTS + 1][SI_UUID_STR];
    guids_for(&b, g);
    assert_int_equal(si_gpt_write(disk, &b, ex, g, &err), SI_ERR_NO_SPACE);
    assert_non_null(strstr(err.msg, "do not hold the layout"));
    assert_int_equal(tu_sh("cmp -s %s /dev/zero -n 1048576", disk), 0); /* nothing written */
    assert_int_equal(si_gpt_write("/nonexistent/disk", &b, ex, g, &err), SI_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_board_table), cmocka_unit_test(test_too_small)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
