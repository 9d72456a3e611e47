/* test_lastresult.c - the recovery's last_result.json writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "jsonutil.h"
#include "lastresult.h"

static cJSON *parse(const char *json)
{
    cJSON *root;
    assert_int_equal(si_json_parse(json, strlen(json), 65536, "result", &root, NULL), SI_OK);
    return root;
}

static void success_with_versions(void **state)
{
    (void)state;
    si_last_result r;
    memset(&r, 0, sizeof(r));
    r.result = SI_OK;
    r.message = "installed build 12";
    r.mode = "update";
    r.has_from = true;
    r.from_version = 10;
    r.has_to = true;
    r.to_version = 12;
    r.step = "done";
    si_last_result_add_duration(&r, "apply", 1.2344);
    si_last_result_add_duration(&r, "apply", 1.0);
    si_last_result_add_duration(&r, "verify", 0.5);
    char *json;
    assert_int_equal(si_last_result_format(&r, &json, NULL), SI_OK);
    cJSON *root = parse(json);
    free(json);
    assert_int_equal(cJSON_GetObjectItem(root, "result")->valueint, 0);
    assert_string_equal(cJSON_GetObjectItem(root, "result_name")->valuestring, "ok");
    assert_string_equal(cJSON_GetObjectItem(root, "message")->valuestring, "installed build 12");
    assert_string_equal(cJSON_GetObjectItem(root, "mode")->valuestring, "update");
    assert_string_equal(cJSON_GetObjectItem(root, "step")->valuestring, "done");
    assert_int_equal(cJSON_GetObjectItem(root, "from_version")->valueint, 10);
    assert_int_equal(cJSON_GetObjectItem(root, "to_version")->valueint, 12);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "dry_run")));
    cJSON *d = cJSON_GetObjectItem(root, "durations");
    assert_int_equal(cJSON_GetObjectItem(d, "apply")->valueint, 2234);
    assert_int_equal(cJSON_GetObjectItem(d, "verify")->valueint, 500);
    cJSON_Delete(root);
}

static void failure_without_versions(void **state)
{
    (void)state;
    si_last_result r;
    memset(&r, 0, sizeof(r));
    r.result = SI_ERR_BAD_SIGNATURE;
    r.mode = "factory-reset";
    r.dry_run = true;
    char *json;
    assert_int_equal(si_last_result_format(&r, &json, NULL), SI_OK);
    cJSON *root = parse(json);
    /* Sorted keys: "durations" comes before "result". */
    assert_true(strstr(json, "\"durations\"") < strstr(json, "\"result\""));
    free(json);
    assert_int_equal(cJSON_GetObjectItem(root, "result")->valueint, SI_ERR_BAD_SIGNATURE);
    assert_string_equal(cJSON_GetObjectItem(root, "result_name")->valuestring, "bad-signature");
    /* No message given: the code's own message. */
    assert_string_equal(cJSON_GetObjectItem(root, "message")->valuestring,
                        si_result_message(SI_ERR_BAD_SIGNATURE));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "from_version")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "to_version")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "dry_run")));
    assert_string_equal(cJSON_GetObjectItem(root, "step")->valuestring, "");
    cJSON_Delete(root);
}

static void too_many_durations_are_dropped(void **state)
{
    (void)state;
    si_last_result r;
    memset(&r, 0, sizeof(r));
    static const char *names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    for (size_t i = 0; i < 10; i++)
        si_last_result_add_duration(&r, names[i], 1);
    assert_int_equal(r.ndurations, SI_LAST_RESULT_MAX_DURATIONS);
}

static void write_is_atomic_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-lastresult-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/last_result.json", dir);
    si_last_result r;
    memset(&r, 0, sizeof(r));
    r.result = SI_ERR_DOWNGRADE;
    r.message = "target build 3 is older than the installed build 5";
    assert_int_equal(si_last_result_write(path, &r, NULL), SI_OK);
    char *buf;
    size_t len;
    assert_int_equal(si_read_file(path, 65536, &buf, &len), 0);
    assert_non_null(strstr(buf, "older than the installed build 5"));
    assert_int_equal(buf[len - 1], '\n');
    free(buf);
    unlink(path);
    /* A directory that does not exist: an I/O error naming the path. */
    si_err err;
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/last_result.json", dir);
    assert_int_equal(si_last_result_write(bad, &r, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, bad));
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(success_with_versions),
        cmocka_unit_test(failure_without_versions),
        cmocka_unit_test(too_many_durations_are_dropped),
        cmocka_unit_test(write_is_atomic_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
