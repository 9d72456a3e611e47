/* test_protocol.c - what the stub and the recovery share: reserved names
 * (one list, issue 10 finding 6) and staged files opened without following
 * a symlink or blocking on a FIFO. */
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
#include <unistd.h>

#include <cmocka.h>

#include "protocol.h"

static void reserved_names(void **state)
{
    (void)state;
    const char *reserved[] = {
        SI_PROTO_COMMAND, SI_PROTO_STATE, SI_PROTO_RESULT, SI_PROTO_LOG, "last_log.3",
        SI_PROTO_INDEX, SI_PROTO_INDEX_SIG, "image-master.keyring", "blacklist.keyring.sig",
        "device-signing.keyring", ".hidden", ".", "..", "a/b", "x.part", "", "a b", "a#b",
        "a\nb", "a\x7f", "recovery_state.json.tmp.XYZ", "sysimage_command.tmp.1",
    };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (!si_protocol_is_reserved_name(reserved[i]))
            print_error("not reserved: '%s'\n", reserved[i]);
        assert_true(si_protocol_is_reserved_name(reserved[i]));
    }
    const char *ok[] = {"full-12.tar.zst", "full-12.tar.zst.sig", "version-12.tar.xz",
                        "index.json.old", "my.keyring"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_null(si_protocol_reserved_why(ok[i]));
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_true(si_protocol_is_reserved_name(longname));
}

static void open_staged_only_regular_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_protocol.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[256], q[256];
    snprintf(p, sizeof(p), "%s/file", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    int fd;
    struct stat st;
    si_err err = {0};
    assert_int_equal(si_protocol_open_staged(AT_FDCWD, p, &fd, &st, &err), SI_OK);
    assert_int_equal(st.st_size, 5);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
    char *buf;
    size_t len;
    assert_int_equal(si_protocol_read_staged(AT_FDCWD, p, 100, &buf, &len, &err), SI_OK);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(si_protocol_read_staged(AT_FDCWD, p, 3, &buf, &len, &err), SI_ERR_TOO_LARGE);

    /* a FIFO: refused at once (a plain open would block forever) */
    snprintf(q, sizeof(q), "%s/fifo", dir);
    assert_int_equal(mkfifo(q, 0600), 0);
    assert_int_equal(si_protocol_open_staged(AT_FDCWD, q, &fd, NULL, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "not a regular file (a FIFO)"));
    unlink(q);
    /* a symlink to a regular file: not followed */
    assert_int_equal(symlink(p, q), 0);
    assert_int_equal(si_protocol_open_staged(AT_FDCWD, q, &fd, NULL, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(q);
    /* a directory, and nothing */
    assert_int_equal(si_protocol_open_staged(AT_FDCWD, dir, &fd, NULL, &err), SI_ERR_MISSING_FILE);
    assert_int_equal(si_protocol_open_staged(AT_FDCWD, q, &fd, NULL, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, "no such file"));
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reserved_names),
        cmocka_unit_test(open_staged_only_regular_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
