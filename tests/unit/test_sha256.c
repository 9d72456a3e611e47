/* test_sha256.c - SHA-256 vectors, streaming of files, hex helpers. */
#include <errno.h>
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

#include "sha256.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir(dir, "sha256");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmtree(dir);
}

static void hex_of(const void *buf, size_t len, char out[SI_SHA256_HEX_LEN + 1])
{
    uint8_t d[SI_SHA256_LEN];
    si_sha256_buf(buf, len, d);
    si_hex_encode(d, sizeof(d), out);
}

static void known_vectors(void **state)
{
    (void)state;
    char hex[SI_SHA256_HEX_LEN + 1];
    hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* a different input must give a different digest */
    hex_of("abd", 3, hex);
    assert_string_not_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void incremental_equals_oneshot(void **state)
{
    (void)state;
    /* one million 'a' fed in uneven pieces: the FIPS 180-2 long vector */
    size_t total = 1000000;
    char *a = malloc(total);
    assert_non_null(a);
    memset(a, 'a', total);
    si_sha256 h;
    si_sha256_init(&h);
    size_t off = 0, step = 1;
    while (off < total) {
        size_t n = step < total - off ? step : total - off;
        si_sha256_update(&h, a + off, n);
        off += n;
        step = step * 3 + 1;
    }
    si_sha256_update(&h, a, 0);
    uint8_t d[SI_SHA256_LEN];
    si_sha256_final(&h, d);
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, sizeof(d), hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* A multi-MB file, not a multiple of the read chunk, hashed by streaming,
 * compared with sha256sum(1) run on the same file. */
static void stream_large_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/big", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t x = 12345;
    size_t size = 5 * 1024 * 1024 + 777;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        fputc((int)(x >> 24), f);
    }
    assert_int_equal(fclose(f), 0);

    uint8_t d[SI_SHA256_LEN];
    uint64_t got_size = 0;
    assert_int_equal(si_sha256_file(path, d, &got_size), 0);
    assert_int_equal(got_size, size);
    char hex[SI_SHA256_HEX_LEN + 1];
    si_hex_encode(d, sizeof(d), hex);

    char cmd[256], expect[SI_SHA256_HEX_LEN + 1] = {0};
    snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%64s", expect), 1);
    pclose(p);
    assert_string_equal(hex, expect);

    /* the same through an fd, size_out optional */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t d2[SI_SHA256_LEN];
    assert_int_equal(si_sha256_fd(fd, d2, NULL), 0);
    close(fd);
    assert_memory_equal(d, d2, sizeof(d));

    /* one changed byte changes the digest */
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "Z", 1, (off_t)(size / 2)), 1);
    close(fd);
    assert_int_equal(si_sha256_file(path, d2, NULL), 0);
    assert_memory_not_equal(d, d2, sizeof(d));
}

static void file_errors(void **state)
{
    (void)state;
    uint8_t d[SI_SHA256_LEN];
    char path[128];
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(si_sha256_file(path, d, NULL), -ENOENT);
    assert_int_equal(si_sha256_fd(-1, d, NULL), -EBADF);
    /* a directory cannot be read */
    assert_int_equal(si_sha256_file(dir, d, NULL), -EISDIR);
}

static void hex_roundtrip_and_errors(void **state)
{
    (void)state;
    uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff}, out[4];
    char hex[9];
    si_hex_encode(in, sizeof(in), hex);
    assert_string_equal(hex, "00ab7fff");
    assert_int_equal(si_hex_decode("00AB7fFF", out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(si_hex_decode("00ab7fzz", out, sizeof(out)), -EINVAL);
    assert_int_equal(si_hex_decode("00ab7f", out, sizeof(out)), -EINVAL); /* too short */
    assert_int_equal(si_hex_decode("0g", out, 1), -EINVAL);
    assert_int_equal(si_hex_decode(" 0", out, 1), -EINVAL);
    si_hex_encode(in, 0, hex);
    assert_string_equal(hex, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(incremental_equals_oneshot),
        cmocka_unit_test(stream_large_file),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(hex_roundtrip_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
