/* test_flashjob.c - the flash job: a complete job round-trips; each refusal
 * names the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashjob.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define F(n) "\"" n "\": {\"size\": 7, \"sha256\": \"" H64 "\"}"
#define FILES F("board.json") ", " F("esp.img") ", " F("core.img") ", " F("boot.img") ", " F("vmlinuz") ", " \
              F("initrd.img")
#define JOB(consent, files) \
    "{\"format\": 1, \"board\": \"qemu-x86_64\", \"device\": \"qemu-x86_64\", \"channel\": \"stable\", " \
    "\"build\": 12, \"consent\": \"" consent "\", \"files\": {" files "}}"

static void test_round_trip(void **state)
{
    (void)state;
    si_flashjob j, again;
    si_err err;
    const char *doc = JOB("erase", FILES);
    assert_int_equal(si_flashjob_parse(doc, strlen(doc), &j, &err), SI_OK);
    assert_string_equal(j.board, "qemu-x86_64");
    assert_string_equal(j.channel, "stable");
    assert_int_equal(j.build, 12);
    assert_true(j.erase);
    assert_int_equal(j.files[SI_FLASH_ESP].size, 7);
    assert_string_equal(j.files[SI_FLASH_INITRD].sha256, H64);
    char *text = NULL;
    assert_int_equal(si_flashjob_format(&j, &text, &err), SI_OK);
    assert_non_null(strstr(text, "\"consent\": \"erase\""));
    assert_int_equal(si_flashjob_parse(text, strlen(text), &again, &err), SI_OK);
    assert_memory_equal(&j, &again, sizeof(j));
    free(text);
    doc = JOB("blank-only", FILES);
    assert_int_equal(si_flashjob_parse(doc, strlen(doc), &j, &err), SI_OK);
    assert_false(j.erase);
}

static void refuse(const char *doc, const char *want)
{
    si_flashjob j;
    si_err err;
    si_err_clear(&err);
    si_result rc = si_flashjob_parse(doc, strlen(doc), &j, &err);
    if (rc != SI_ERR_PARSE || !strstr(err.msg, want))
        fail_msg("%s: got %d '%s', want '%s'", doc, rc, err.msg, want);
    assert_string_equal(j.board, "");
}

static void test_refusals(void **state)
{
    (void)state;
    refuse(JOB("maybe", FILES), "consent");
    refuse(JOB("erase", F("board.json")), "'esp.img' missing");
    refuse(JOB("erase", FILES ", " F("extra.bin")), "unknown file 'extra.bin'");
    refuse(JOB("erase", FILES ", " F("vmlinuz")), "given twice");
    refuse(JOB("erase", F("board.json") ", \"esp.img\": {\"size\": 1, \"sha256\": \"ABC\"}"), "files.esp.img.sha256");
    refuse("{\"format\": 2}", "format");
    refuse("{\"format\": 1, \"board\": \"../x\"}", "board");
    refuse("[1]", "expected an object");
    refuse("{", "flash.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip), cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
