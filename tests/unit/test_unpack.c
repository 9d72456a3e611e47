/* test_unpack.c - the decompressing, hashing reader (lib/unpack): zstd, xz,
 * gzip and plain streams give back the exact bytes, the whole file's sha256
 * and size (from the start offset on), with and without the reader
 * thread; truncated, corrupt and empty streams give SI_ERR_PARSE; a stream not
 * read to its end gives no hash. */
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sha256.h"
#include "unpack.h"
#include "testutil.h"

static char dir[64];
static char plain[128];
static unsigned char *want;
static size_t want_len;
static cpu_set_t all_cpus;  /* the affinity the test started with */

/* More than a few slots: 3 MiB of bytes that do not compress to nothing. */
#define PLAIN_LEN (3u * 1024 * 1024 + 12345)

static int setup(void **state)
{
    (void)state;
    if (tu_tmpdir(dir, "unpack") != 0 || sched_getaffinity(0, sizeof(all_cpus), &all_cpus) != 0)
        return -1;
    want_len = PLAIN_LEN;
    want = malloc(want_len);
    if (!want)
        return -1;
    uint32_t x = 12345;
    for (size_t i = 0; i < want_len; i++) {
        x = x * 1103515245u + 12345u;
        want[i] = (unsigned char)((x >> 16) % 16 + 'a');
    }
    snprintf(plain, sizeof(plain), "%s/plain", dir);
    FILE *f = fopen(plain, "wb");
    if (!f || fwrite(want, 1, want_len, f) != want_len)
        return -1;
    return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(want);
    return tu_rmtree(dir);
}

/* Pin this process to one CPU (no thread in lib/unpack) or back to all. */
static void one_cpu(bool one)
{
    if (one) {
        cpu_set_t cs;
        CPU_ZERO(&cs);
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &all_cpus)) {
                CPU_SET(c, &cs);
                break;
            }
        assert_int_equal(sched_setaffinity(0, sizeof(cs), &cs), 0);
    } else {
        assert_int_equal(sched_setaffinity(0, sizeof(all_cpus), &all_cpus), 0);
    }
}

typedef struct run {
    si_result next_rc, end_rc;
    size_t got;          /* decompressed bytes */
    bool same;           /* they equal `want` (so far) */
    uint8_t sha[32];
    uint64_t size;
    uint64_t last_in;    /* in_done at the last piece */
    si_err err;
} run;

/* Read path through lib/unpack from offset `skip`, at most max_pieces pieces
 * (0: all). */
static void unpack_file(const char *path, off_t skip, size_t max_pieces, run *o)
{
    memset(o, 0, sizeof(*o));
    o->same = true;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(lseek(fd, skip, SEEK_SET), skip);
    si_unpack *u = NULL;
    assert_int_equal(si_unpack_start(fd, path, &u, &o->err), SI_OK);
    for (size_t n = 0; max_pieces == 0 || n < max_pieces; n++) {
        const void *buf = NULL;
        size_t len = 0;
        uint64_t in_done = 0;
        o->next_rc = si_unpack_next(u, &buf, &len, &in_done, &o->err);
        if (o->next_rc != SI_OK || len == 0)
            break;
        assert_true(len <= SI_UNPACK_SLOT);
        assert_true(in_done >= o->last_in);
        o->last_in = in_done;
        if (o->got + len > want_len || memcmp(want + o->got, buf, len) != 0)
            o->same = false;
        o->got += len;
    }
    si_err e2 = {0};
    o->end_rc = si_unpack_end(u, o->sha, &o->size, o->next_rc == SI_OK ? &o->err : &e2);
    close(fd);
}

static void expect_file_hash(const char *path, off_t skip, const run *o)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(lseek(fd, skip, SEEK_SET), skip);
    uint8_t sha[32];
    uint64_t size = 0;
    assert_int_equal(si_sha256_fd(fd, sha, &size), 0);
    close(fd);
    assert_int_equal(o->size, size);
    assert_memory_equal(o->sha, sha, 32);
}

static void roundtrip(const char *cmd, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(tu_sh("%s < '%s' > '%s'", cmd, plain, path), 0);
    for (int one = 0; one < 2; one++) {
        one_cpu(one);
        run o;
        unpack_file(path, 0, 0, &o);
        one_cpu(false);
        if (o.next_rc != SI_OK || o.end_rc != SI_OK)
            print_error("%s (one cpu %d): %d %d %s\n", name, one, o.next_rc, o.end_rc,
                        o.err.msg);
        assert_int_equal(o.next_rc, SI_OK);
        assert_int_equal(o.end_rc, SI_OK);
        assert_int_equal(o.got, want_len);
        assert_true(o.same);
        expect_file_hash(path, 0, &o);
    }
}

static void zstd_xz_gzip_plain(void **state)
{
    (void)state;
    roundtrip("zstd -q -3 -c", "f.zst");
    roundtrip("xz -q -1 -c", "f.xz");
    roundtrip("gzip -c", "f.gz");
    roundtrip("cat", "f.raw");
}

/* The stream starts at the descriptor's offset: the hash and size cover the
 * file from there to its end. */
static void offset_and_whole_file_hash(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/off.zst", dir);
    assert_int_equal(tu_sh("printf 'HEADER--' > '%s' && zstd -q -c < '%s' >> '%s'", path, plain,
                           path), 0);
    for (int one = 0; one < 2; one++) {
        one_cpu(one);
        run o;
        unpack_file(path, 8, 0, &o);
        one_cpu(false);
        assert_int_equal(o.next_rc, SI_OK);
        assert_int_equal(o.end_rc, SI_OK);
        assert_int_equal(o.got, want_len);
        assert_true(o.same);
        expect_file_hash(path, 8, &o);
    }
}

static void expect_parse_error(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (int one = 0; one < 2; one++) {
        one_cpu(one);
        run o;
        unpack_file(path, 0, 0, &o);
        one_cpu(false);
        if (o.next_rc != SI_ERR_PARSE)
            print_error("%s (one cpu %d): next %d \"%s\"\n", name, one, o.next_rc, o.err.msg);
        assert_int_equal(o.next_rc, SI_ERR_PARSE);
        assert_non_null(strstr(o.err.msg, path));
        /* the end reports the producer's error, and no hash */
        assert_int_equal(o.end_rc, SI_ERR_PARSE);
        assert_true(o.got < want_len || !o.same);
    }
}

static void truncated_and_corrupt(void **state)
{
    (void)state;
    char zst[128], xz[128];
    snprintf(zst, sizeof(zst), "%s/c.zst", dir);
    snprintf(xz, sizeof(xz), "%s/c.xz", dir);
    assert_int_equal(tu_sh("zstd -q -c < '%s' > '%s' && xz -q -1 -c < '%s' > '%s'", plain, zst,
                           plain, xz), 0);
    /* cut in the middle */
    assert_int_equal(tu_sh("head -c 100000 '%s' > '%s/cut.zst'", zst, dir), 0);
    assert_int_equal(tu_sh("head -c 100000 '%s' > '%s/cut.xz'", xz, dir), 0);
    expect_parse_error("cut.zst");
    expect_parse_error("cut.xz");
    /* bytes flipped in the middle of the compressed data (zstd frames carry
     * a checksum, xz blocks a CRC64) */
    assert_int_equal(tu_sh("cp '%s' '%s/bad.zst' && printf '\\377\\000\\377\\000' | "
                           "dd of='%s/bad.zst' bs=1 seek=50000 conv=notrunc status=none",
                           zst, dir, dir), 0);
    assert_int_equal(tu_sh("cp '%s' '%s/bad.xz' && printf '\\377\\000\\377\\000' | "
                           "dd of='%s/bad.xz' bs=1 seek=50000 conv=notrunc status=none",
                           xz, dir, dir), 0);
    expect_parse_error("bad.zst");
    expect_parse_error("bad.xz");
    /* an empty file is no stream; a stream of no bytes is no tarball */
    assert_int_equal(tu_sh(": > '%s/nothing'", dir), 0);
    expect_parse_error("nothing");
    assert_int_equal(tu_sh("zstd -q -c < /dev/null > '%s/empty.zst'", dir), 0);
    expect_parse_error("empty.zst");
}

/* Stopped before the end of the stream (both modes): no sha, no size. */
static void not_read_to_the_end(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/part.zst", dir);
    assert_int_equal(tu_sh("zstd -q -c < '%s' > '%s'", plain, path), 0);
    for (int one = 0; one < 2; one++) {
        one_cpu(one);
        run o;
        unpack_file(path, 0, 2, &o);
        one_cpu(false);
        assert_int_equal(o.next_rc, SI_OK);
        assert_int_equal(o.got, 2 * SI_UNPACK_SLOT);
        assert_true(o.same);
        assert_int_equal(o.end_rc, SI_ERR_INTERNAL);
        assert_non_null(strstr(o.err.msg, "not read to its end"));
    }
}

/* An unreadable descriptor: the read error surfaces as the stream's error. */
static void read_error(void **state)
{
    (void)state;
    for (int one = 0; one < 2; one++) {
        one_cpu(one);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);  /* read() gives EISDIR */
        assert_true(fd >= 0);
        si_unpack *u = NULL;
        si_err err = {0};
        assert_int_equal(si_unpack_start(fd, "thedir", &u, &err), SI_OK);
        const void *buf;
        size_t len = 1;
        uint64_t in_done;
        si_result rc = si_unpack_next(u, &buf, &len, &in_done, &err);
        assert_int_not_equal(rc, SI_OK);
        assert_int_equal(len, 0);
        assert_non_null(strstr(err.msg, "thedir"));
        si_err e2 = {0};
        assert_int_equal(si_unpack_end(u, NULL, NULL, &e2), rc);
        close(fd);
        one_cpu(false);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zstd_xz_gzip_plain),
        cmocka_unit_test(offset_and_whole_file_hash),
        cmocka_unit_test(truncated_and_corrupt),
        cmocka_unit_test(not_read_to_the_end),
        cmocka_unit_test(read_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
