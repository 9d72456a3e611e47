/* test_job.c - a job bound to its signed index: the image lines must be a
 * path the index offers from the installed build, the update lines exactly
 * the chosen images' files, format system iff the path starts with a full,
 * and the job installs something (issue 10 findings 2 and 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
#define FILE_(n, o) "{\"path\": \"/pool/" n "\", \"signature\": \"/pool/" n ".sig\", " \
                    "\"checksum\": \"" Z64 "\", \"size\": 10, \"order\": " #o "}"

static const char index_json[] =
    "{\"global\": {\"generated_at\": \"Mon Apr 29 18:45:27 UTC 2013\"}, \"images\": ["
    "{\"type\": \"full\", \"version\": 1, \"files\": [" FILE_("full-1", 0) ", " FILE_("ver-1", 1) "]},"
    "{\"type\": \"full\", \"version\": 2, \"minversion\": 1, \"files\": [" FILE_("ver-2", 1) ", "
    FILE_("full-2", 0) "]},"
    "{\"type\": \"delta\", \"version\": 2, \"base\": 1, \"files\": [" FILE_("d-2", 0) ", " FILE_("dver-2", 1) "]},"
    "{\"type\": \"delta\", \"version\": 3, \"base\": 2, \"bootme\": true, \"files\": [" FILE_("d-3", 0) "]},"
    "{\"type\": \"delta\", \"version\": 4, \"base\": 3, \"files\": [" FILE_("d-4", 0) "]}"
    "]}";

static si_index *idx;
static si_command_file cf;
static si_job_plan plan;

static int setup(void **state)
{
    (void)state;
    si_err err;
    return si_index_parse(index_json, strlen(index_json), &idx, &err) == SI_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    si_index_free(idx);
    return 0;
}

static si_result bind(const char *text, bool has, int64_t build, bool resuming, si_err *err)
{
    memset(err, 0, sizeof(*err));
    if (si_command_file_parse(text, strlen(text), &cf, err) != SI_OK)
        fail_msg("parse: %s", err->msg);
    si_job_installed inst = {has, build, resuming};
    return si_job_bind(idx, &cf, &inst, &plan, err);
}

#define PRE "index index.json index.json.sig\n"

static void full_path_from_nothing(void **state)
{
    (void)state;
    si_err err;
    const char *job = PRE "image full 1\nformat system\nmount system\n"
                      "update full-1 full-1.sig\nupdate ver-1 ver-1.sig\nunmount system\n";
    assert_int_equal(bind(job, false, 0, false, &err), SI_OK);
    assert_int_equal(plan.nimages, 1);
    assert_int_equal(plan.nfiles, 2);
    assert_int_equal(plan.target, 1);
    assert_true(plan.starts_full);
    assert_int_equal(plan.files[0].entry->size, 10);
    /* a repair: the installed build again, from its full */
    assert_int_equal(bind(job, true, 1, false, &err), SI_OK);
}

static void files_in_index_order(void **state)
{
    (void)state;
    si_err err;
    /* full 2 lists ver-2 first in the document but full-2 has order 0 */
    const char *job = PRE "image full 2\nformat system\nmount system\n"
                      "update full-2 full-2.sig\nupdate ver-2 ver-2.sig\nunmount system\n";
    assert_int_equal(bind(job, true, 1, false, &err), SI_OK);
    const char *swapped = PRE "image full 2\nformat system\nmount system\n"
                          "update ver-2 ver-2.sig\nupdate full-2 full-2.sig\nunmount system\n";
    assert_int_equal(bind(swapped, true, 1, false, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "expected update full-2"));
}

static void delta_chain(void **state)
{
    (void)state;
    si_err err;
    const char *job = PRE "image delta 2 1\nimage delta 3 2\nmount system\n"
                      "update d-2 d-2.sig\nupdate dver-2 dver-2.sig\nupdate d-3 d-3.sig\n";
    assert_int_equal(bind(job, true, 1, false, &err), SI_OK);
    assert_int_equal(plan.target, 3);
    assert_false(plan.starts_full);
    /* not from the installed build */
    assert_int_equal(bind(job, true, 2, false, &err), SI_ERR_DOWNGRADE);
    assert_int_equal(bind(job, false, 0, false, &err), SI_ERR_NOT_FOUND);
    /* ... unless an earlier attempt of this job got the system there */
    assert_int_equal(bind(job, true, 2, true, &err), SI_OK);
    assert_int_equal(bind(job, false, 0, true, &err), SI_OK);
    assert_int_equal(bind(job, true, 4, true, &err), SI_ERR_DOWNGRADE);
}

/* Finding 2: mix and match. */
static void mix_and_match_refused(void **state)
{
    (void)state;
    si_err err;
    /* full 1 with the version tarball of full 2 */
    assert_int_equal(bind(PRE "image full 1\nformat system\nmount system\n"
                          "update full-1 full-1.sig\nupdate ver-2 ver-2.sig\n", false, 0, false, &err),
                     SI_ERR_COMMAND_FILE);
    /* an extra file */
    assert_int_equal(bind(PRE "image full 1\nformat system\nmount system\n"
                          "update full-1 full-1.sig\nupdate ver-1 ver-1.sig\nupdate d-3 d-3.sig\n",
                          false, 0, false, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "not a file of the chosen images"));
    /* a missing file */
    assert_int_equal(bind(PRE "image full 1\nformat system\nmount system\n"
                          "update full-1 full-1.sig\n", false, 0, false, &err), SI_ERR_COMMAND_FILE);
    /* an image the index does not offer */
    assert_int_equal(bind(PRE "image full 3\nformat system\nmount system\n"
                          "update full-1 full-1.sig\n", false, 0, false, &err), SI_ERR_NOT_FOUND);
    /* a gap in the path */
    assert_int_equal(bind(PRE "image delta 2 1\nimage delta 4 3\nmount system\n"
                          "update d-2 d-2.sig\n", true, 1, false, &err), SI_ERR_COMMAND_FILE);
    /* past bootme */
    assert_int_equal(bind(PRE "image delta 3 2\nimage delta 4 3\nmount system\n"
                          "update d-3 d-3.sig\nupdate d-4 d-4.sig\n", true, 2, false, &err),
                     SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "bootme"));
}

static void rollback_refused(void **state)
{
    (void)state;
    si_err err;
    const char *job = PRE "image full 1\nformat system\nmount system\n"
                      "update full-1 full-1.sig\nupdate ver-1 ver-1.sig\n";
    assert_int_equal(bind(job, true, 2, false, &err), SI_ERR_DOWNGRADE);
    assert_non_null(strstr(err.msg, "older than the installed build 2"));
    /* minversion */
    const char *j2 = PRE "image full 2\nformat system\nmount system\n"
                     "update full-2 full-2.sig\nupdate ver-2 ver-2.sig\n";
    assert_int_equal(bind(j2, false, 0, false, &err), SI_ERR_NOT_FOUND);
}

/* Finding 3 and the format rule. */
static void format_rules(void **state)
{
    (void)state;
    si_err err;
    assert_int_equal(bind("format system\n", true, 1, false, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "installs nothing") ? err.msg : strstr(err.msg, "without"));
    assert_int_equal(bind(PRE "image full 1\nmount system\nupdate full-1 full-1.sig\n"
                          "update ver-1 ver-1.sig\n", false, 0, false, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "needs 'format system'"));
    assert_int_equal(bind(PRE "image delta 2 1\nformat system\nmount system\n"
                          "update d-2 d-2.sig\nupdate dver-2 dver-2.sig\n", true, 1, false, &err),
                     SI_ERR_COMMAND_FILE);
    /* updates without an index, an index without updates */
    assert_int_equal(bind("mount system\nupdate full-1 full-1.sig\n", false, 0, false, &err),
                     SI_ERR_COMMAND_FILE);
    assert_int_equal(bind(PRE "image full 1\n", false, 0, false, &err), SI_ERR_COMMAND_FILE);
}

static void reserved_names_in_index(void **state)
{
    (void)state;
    static const char bad[] =
        "{\"global\": {}, \"images\": [{\"type\": \"full\", \"version\": 1, \"files\": ["
        "{\"path\": \"/pool/recovery_state.json\", \"signature\": \"/pool/x.sig\", "
        "\"checksum\": \"" Z64 "\", \"size\": 1, \"order\": 0}]}]}";
    si_index *b = NULL;
    si_err err;
    assert_int_equal(si_index_parse(bad, strlen(bad), &b, &err), SI_OK);
    const char *job = PRE "image full 1\nformat system\nmount system\n"
                      "update recovery_state.json x.sig\n";
    assert_int_equal(si_command_file_parse(job, strlen(job), &cf, &err), SI_OK);
    si_job_installed inst = {0};
    assert_int_not_equal(si_job_bind(b, &cf, &inst, &plan, &err), SI_OK);
    si_index_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_path_from_nothing),
        cmocka_unit_test(files_in_index_order),
        cmocka_unit_test(delta_chain),
        cmocka_unit_test(mix_and_match_refused),
        cmocka_unit_test(rollback_refused),
        cmocka_unit_test(format_rules),
        cmocka_unit_test(reserved_names_in_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
