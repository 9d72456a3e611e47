/* test_index.c - index.json: every field good and bad, round trips, and
 * system-image's own index documents. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance.h"
#include "testutil.h"
#include "index.h"

#define GLOBAL "\"global\": {\"generated_at\": \"Mon Apr 29 18:45:27 UTC 2013\"}"
#define FILE_OK                                                                       \
    "{\"path\": \"/pool/a.tar.zst\", \"signature\": \"/pool/a.tar.zst.sig\", "        \
    "\"checksum\": \"edc23d02ee2ba48b45e2cf1e1a736eb1436b47a76a94f5b9375d26a9e5fc4e4c\", " \
    "\"size\": 1234, \"order\": 0}"
#define FULL_OK "{\"type\": \"full\", \"version\": 10, \"files\": [" FILE_OK "]}"
#define DOC1(image) "{" GLOBAL ", \"images\": [" image "]}"
#define IMG(fields) "{\"type\": \"full\", \"version\": 10, " fields "}"
#define DELTA(fields) "{\"type\": \"delta\", \"version\": 10, \"files\": [], " fields "}"
#define FILEIMG(ffields) IMG("\"files\": [{" ffields "}]")
#define FF_NO_PATH "\"signature\": \"s\", \"checksum\": \"\", \"size\": 1, \"order\": 0"

static si_index *parse_ok(const char *json)
{
    si_index *idx = NULL;
    si_err err = {0};
    si_result r = si_index_parse(json, strlen(json), &idx, &err);
    if (r != SI_OK)
        print_error("unexpected error: %s\n", err.msg);
    assert_int_equal(r, SI_OK);
    assert_non_null(idx);
    return idx;
}

static void parse_full_document(void **state)
{
    (void)state;
    const char *json =
        "{" GLOBAL ", \"unknown\": [1, 2], \"images\": ["
        "{\"type\": \"full\", \"version\": 1300, \"minversion\": 600, \"bootme\": true,"
        " \"description\": \"Full\", \"description-de\": \"Voll\","
        " \"description-de_AT\": \"Ganz\", \"version_detail\": \"ubuntu=105,version=305\","
        " \"phased-percentage\": 50, \"whatever\": {\"x\": 1},"
        " \"files\": [" FILE_OK ", {\"path\": \"/b\", \"signature\": \"/b.sig\","
        " \"checksum\": \"ABCDEF\", \"size\": 9007199254740992, \"order\": -3, \"x\": null}]},"
        "{\"type\": \"delta\", \"version\": 1301, \"base\": 1300, \"files\": []}]}";
    si_index *idx = parse_ok(json);
    assert_string_equal(idx->generated_at, "Mon Apr 29 18:45:27 UTC 2013");
    assert_int_equal(idx->generated_at_epoch, 1367261127);
    assert_int_equal(idx->nimages, 2);
    const si_image *a = &idx->images[0];
    assert_int_equal(a->type, SI_IMAGE_FULL);
    assert_int_equal(a->version, 1300);
    assert_false(a->has_base);
    assert_true(a->bootme);
    assert_int_equal(a->minversion, 600);
    assert_int_equal(a->phased_percentage, 50);
    assert_string_equal(a->version_detail, "ubuntu=105,version=305");
    assert_int_equal(a->ndescriptions, 3);
    assert_string_equal(si_image_description(a, NULL), "Full");
    assert_string_equal(si_image_description(a, "de_AT.UTF-8"), "Ganz");
    assert_string_equal(si_image_description(a, "de_DE"), "Voll");
    assert_string_equal(si_image_description(a, "fr_FR"), "Full");
    assert_int_equal(a->nfiles, 2);
    assert_string_equal(a->files[0].path, "/pool/a.tar.zst");
    assert_string_equal(a->files[0].signature, "/pool/a.tar.zst.sig");
    assert_string_equal(a->files[0].checksum,
                        "edc23d02ee2ba48b45e2cf1e1a736eb1436b47a76a94f5b9375d26a9e5fc4e4c");
    assert_int_equal(a->files[0].size, 1234);
    assert_int_equal(a->files[1].size, UINT64_C(9007199254740992));
    assert_int_equal(a->files[1].order, -3);
    assert_string_equal(a->files[1].checksum, "abcdef"); /* normalised to lowercase */
    const si_image *b = &idx->images[1];
    assert_int_equal(b->type, SI_IMAGE_DELTA);
    assert_true(b->has_base);
    assert_int_equal(b->base, 1300);
    assert_false(b->bootme);
    assert_int_equal(b->minversion, 0);
    assert_int_equal(b->phased_percentage, 100);
    assert_null(b->version_detail);
    assert_int_equal(b->nfiles, 0);
    assert_null(si_image_description(b, "en_US"));

    const si_index_file **sorted = NULL;
    assert_int_equal(si_image_sorted_files(a, &sorted, NULL), SI_OK);
    assert_string_equal(sorted[0]->path, "/b");
    assert_string_equal(sorted[1]->path, "/pool/a.tar.zst");
    free(sorted);
    si_index_free(idx);
}

static void optional_global_and_empty_images(void **state)
{
    (void)state;
    si_index *idx = parse_ok("{\"images\": []}");
    assert_null(idx->generated_at);
    assert_int_equal(idx->generated_at_epoch, -1);
    assert_int_equal(idx->nimages, 0);
    si_index_free(idx);
    idx = parse_ok("{\"global\": {}, \"images\": []}");
    assert_null(idx->generated_at);
    si_index_free(idx);
}

static void old_descriptions_object(void **state)
{
    (void)state;
    si_index *idx = parse_ok(DOC1(
        IMG("\"descriptions\": {\"description\": \"20130726.1\", \"description-fr\": \"x\","
            " \"other\": 5}, \"description\": \"top\", \"files\": []")));
    const si_image *im = &idx->images[0];
    /* the top-level key wins over the old object's member of the same name */
    assert_int_equal(im->ndescriptions, 2);
    assert_string_equal(si_image_description(im, NULL), "top");
    assert_string_equal(si_image_description(im, "fr_CA"), "x");
    si_index_free(idx);
}

struct bad_case {
    const char *json;
    si_result code;
    const char *msg; /* expected substring */
};

static const struct bad_case bad_cases[] = {
    {"", SI_ERR_PARSE, "index.json"},
    {"{\"images\": [}", SI_ERR_PARSE, "index.json"},
    {"[]", SI_ERR_PARSE, "index.json: expected a JSON object"},
    {"{}", SI_ERR_PARSE, "index.json: images: missing mandatory field"},
    {"{\"images\": {}}", SI_ERR_PARSE, "index.json: images: expected array"},
    {"{\"images\": null}", SI_ERR_PARSE, "index.json: images: missing mandatory field"},
    {"{\"global\": [], \"images\": []}", SI_ERR_PARSE, "index.json: global: expected object"},
    {"{\"global\": {\"generated_at\": 5}, \"images\": []}", SI_ERR_PARSE,
     "index.json: global.generated_at: expected string"},
    {"{\"global\": {\"generated_at\": \"yesterday\"}, \"images\": []}", SI_ERR_PARSE,
     "index.json: global.generated_at: expected a time"},
    {"{\"global\": {\"generated_at\": \"Mon Feb 30 18:45:27 UTC 2013\"}, \"images\": []}",
     SI_ERR_PARSE, "global.generated_at"},
    {"{\"global\": {\"generated_at\": \"Mon Apr 29 18:45:27 CET 2013\"}, \"images\": []}",
     SI_ERR_PARSE, "global.generated_at"},
    {"{\"global\": {\"generated_at\": \"Mon Apr 29 24:45:27 UTC 2013\"}, \"images\": []}",
     SI_ERR_PARSE, "global.generated_at"},
    {"{\"global\": {\"generated_at\": \"Mon Apr 29 18:45:27 UTC 2013x\"}, \"images\": []}",
     SI_ERR_PARSE, "global.generated_at"},
    {"{\"global\": {\"expires\": \"soon\"}, \"images\": []}", SI_ERR_PARSE,
     "index.json: global.expires: expected a time"},
    {"{\"global\": {\"expires\": 5}, \"images\": []}", SI_ERR_PARSE,
     "index.json: global.expires: expected string"},
    {DOC1("5"), SI_ERR_PARSE, "index.json: images[0]: expected object"},
    {DOC1("{\"version\": 1, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].type: missing mandatory field"},
    {DOC1("{\"type\": 1, \"version\": 1, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].type: expected string"},
    {DOC1("{\"type\": \"patch\", \"version\": 1, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].type: expected \"full\" or \"delta\""},
    {DOC1("{\"type\": \"full\", \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version: missing mandatory field"},
    {DOC1("{\"type\": \"full\", \"version\": \"10\", \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version: expected integer"},
    {DOC1("{\"type\": \"full\", \"version\": 10.5, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version: expected integer"},
    {DOC1("{\"type\": \"full\", \"version\": 0, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version: 0 out of range"},
    {DOC1("{\"type\": \"full\", \"version\": -5, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version"},
    {DOC1("{\"type\": \"full\", \"version\": 1e300, \"files\": []}"), SI_ERR_PARSE,
     "index.json: images[0].version: expected integer"},
    {DOC1(DELTA("\"description\": \"no base\"")), SI_ERR_PARSE,
     "index.json: images[0].base: missing mandatory field"},
    {DOC1(DELTA("\"base\": null")), SI_ERR_PARSE,
     "index.json: images[0].base: missing mandatory field"},
    {DOC1(DELTA("\"base\": \"9\"")), SI_ERR_PARSE, "index.json: images[0].base: expected integer"},
    {DOC1(DELTA("\"base\": 10")), SI_ERR_PARSE,
     "index.json: images[0].base: 10 is not lower than version 10"},
    {DOC1(DELTA("\"base\": 11")), SI_ERR_PARSE, "index.json: images[0].base"},
    {DOC1(DELTA("\"base\": -1")), SI_ERR_PARSE, "index.json: images[0].base: -1 out of range"},
    {DOC1(IMG("\"bootme\": \"yes\", \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].bootme: expected boolean"},
    {DOC1(IMG("\"bootme\": 1, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].bootme: expected boolean"},
    {DOC1(IMG("\"minversion\": \"600\", \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].minversion: expected integer"},
    {DOC1(IMG("\"minversion\": -1, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].minversion: -1 out of range"},
    {DOC1(IMG("\"phased-percentage\": 101, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].phased-percentage: 101 out of range [0, 100]"},
    {DOC1(IMG("\"phased-percentage\": -1, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].phased-percentage"},
    {DOC1(IMG("\"phased-percentage\": \"50\", \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].phased-percentage: expected integer"},
    {DOC1(IMG("\"version_detail\": 5, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].version_detail: expected string"},
    {DOC1(IMG("\"description\": 5, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].description: expected string"},
    {DOC1(IMG("\"description-de_DE\": [], \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].description-de_DE: expected string"},
    {DOC1(IMG("\"descriptions\": \"x\", \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].descriptions: expected object"},
    {DOC1(IMG("\"descriptions\": {\"description\": 5}, \"files\": []")), SI_ERR_PARSE,
     "index.json: images[0].descriptions.description: expected string"},
    {DOC1(IMG("\"description\": \"x\"")), SI_ERR_PARSE,
     "index.json: images[0].files: missing mandatory field"},
    {DOC1(IMG("\"files\": {}")), SI_ERR_PARSE, "index.json: images[0].files: expected array"},
    {DOC1(IMG("\"files\": [5]")), SI_ERR_PARSE, "index.json: images[0].files[0]: expected object"},
    {DOC1(FILEIMG(FF_NO_PATH)), SI_ERR_PARSE,
     "index.json: images[0].files[0].path: missing mandatory field"},
    {DOC1(FILEIMG("\"path\": 1, \"signature\": \"s\", \"checksum\": \"\", \"size\": 1, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].path: expected string"},
    {DOC1(FILEIMG("\"path\": \"p\", \"checksum\": \"\", \"size\": 1, \"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].signature: missing mandatory field"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": false, \"checksum\": \"\", \"size\": 1, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].signature: expected string"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"size\": 1, \"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].checksum: missing mandatory field"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": 12, \"size\": 1, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].checksum: expected string"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"xyz\", \"size\": 1, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].checksum: expected sha256 hex digits"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": "
                  "\"0123456789012345678901234567890123456789012345678901234567890123a\", "
                  "\"size\": 1, \"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].checksum: longer than 64 hex digits"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].size: missing mandatory field"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"size\": \"1\", "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].size: expected integer"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"size\": -1, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].size: -1 out of range"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"size\": 1.5, "
                  "\"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].size: expected integer"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", "
                  "\"size\": 18014398509481984, \"order\": 0")),
     SI_ERR_PARSE, "index.json: images[0].files[0].size: expected integer"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"size\": 1")),
     SI_ERR_PARSE, "index.json: images[0].files[0].order: missing mandatory field"},
    {DOC1(FILEIMG("\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", \"size\": 1, "
                  "\"order\": true")),
     SI_ERR_PARSE, "index.json: images[0].files[0].order: expected integer"},
    /* the error names the image and file by position */
    {"{\"images\": [" FULL_OK ", " FULL_OK ", " FULL_OK ", {\"type\": \"full\", \"version\": 9,"
     " \"files\": [{\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\","
     " \"size\": \"big\", \"order\": 0}]}]}",
     SI_ERR_PARSE, "index.json: images[3].files[0].size: expected integer"},
    {"{\"images\": [" FULL_OK "]} x", SI_ERR_PARSE, "index.json"},
};

static void malformed_fields_are_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        si_index *idx = (si_index *)0x1;
        si_err err = {0};
        char what[32];
        snprintf(what, sizeof(what), "case %zu", i);
        tu_assert_error(what, si_index_parse(c->json, strlen(c->json), &idx, &err), &err, c->code,
                        c->msg);
        assert_null(idx);
        /* same result without an error record */
        assert_int_equal(si_index_parse(c->json, strlen(c->json), &idx, NULL), c->code);
        assert_null(idx);
    }
}

static void oversized_document_and_strings(void **state)
{
    (void)state;
    size_t n = SI_INDEX_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"images\": []}", 14);
    big[n] = '\0';
    si_index *idx = NULL;
    si_err err = {0};
    assert_int_equal(si_index_parse(big, n, &idx, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "index.json"));
    /* one byte under the limit is fine (whitespace after the value) */
    assert_int_equal(si_index_parse(big, n - 1, &idx, &err), SI_OK);
    si_index_free(idx);
    free(big);

    /* a path longer than 4096 bytes */
    char *doc = malloc(10000);
    char *longpath = malloc(4098);
    memset(longpath, 'a', 4097);
    longpath[4097] = '\0';
    snprintf(doc, 10000,
             DOC1(FILEIMG("\"path\": \"%s\", \"signature\": \"s\", \"checksum\": \"\", "
                          "\"size\": 1, \"order\": 0")),
             longpath);
    idx = NULL;
    assert_int_equal(si_index_parse(doc, strlen(doc), &idx, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "images[0].files[0].path: longer than 4096 bytes"));
    free(doc);
    free(longpath);

    /* nesting bombs are refused before cJSON recurses */
    char deep[400];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(si_index_parse(deep, strlen(deep), &idx, &err), SI_ERR_PARSE);
}

static void time_round_trip(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(si_index_parse_time("Mon Apr 29 18:45:27 UTC 2013", &t, NULL), SI_OK);
    assert_int_equal(t, 1367261127);
    assert_int_equal(si_index_parse_time("Thu Feb 29 12:34:56 UTC 2024", &t, NULL), SI_OK);
    assert_int_equal(t, 1709210096);
    char buf[64];
    si_index_format_time(1709210096, buf);
    assert_string_equal(buf, "Thu Feb 29 12:34:56 UTC 2024");
    si_index_format_time(0, buf);
    assert_string_equal(buf, "Thu Jan 01 00:00:00 UTC 1970");
    si_index_format_time(1375344060, buf);
    assert_string_equal(buf, "Thu Aug 01 08:01:00 UTC 2013");
    si_err err = {0};
    const char *bad[] = {"Thu Feb 29 12:34:56 UTC 2023", "Xyz Feb 01 12:34:56 UTC 2023",
                         "Thu Foo 01 12:34:56 UTC 2023", "Thu Feb 1 12:34:56 UTC 2023",
                         "Thu Feb 01 12:60:56 UTC 2023", "Thu Feb 01 12:34:56 UTC 1969",
                         "Thu Feb 01 12:34:56 UTC 20233", "Thu Feb 01 12:34:56  UTC 2023",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(si_index_parse_time(bad[i], &t, &err), SI_ERR_PARSE);
        assert_non_null(strstr(err.msg, "expected a time"));
    }
}

static void format_is_canonical(void **state)
{
    (void)state;
    si_index *idx = parse_ok(
        "{\"images\": [{\"version\": 2, \"type\": \"delta\", \"base\": 1, \"bootme\": true,"
        " \"description-fr\": \"b\", \"description\": \"a\", \"phased-percentage\": 5,"
        " \"files\": [{\"size\": 3, \"order\": 1, \"path\": \"/p\", \"signature\": \"/p.sig\","
        " \"checksum\": \"AB\"}]}, {\"type\": \"full\", \"version\": 3, \"minversion\": 2,"
        " \"version_detail\": \"v=3\", \"files\": []}],"
        " \"global\": {\"generated_at\": \"Thu Feb 29 12:34:56 UTC 2024\"}}");
    char *out = NULL;
    assert_int_equal(si_index_format(idx, &out, NULL), SI_OK);
    const char *want = "{\n"
                       "    \"global\": {\n"
                       "        \"generated_at\": \"Thu Feb 29 12:34:56 UTC 2024\"\n"
                       "    },\n"
                       "    \"images\": [\n"
                       "        {\n"
                       "            \"base\": 1,\n"
                       "            \"bootme\": true,\n"
                       "            \"description\": \"a\",\n"
                       "            \"description-fr\": \"b\",\n"
                       "            \"files\": [\n"
                       "                {\n"
                       "                    \"checksum\": \"ab\",\n"
                       "                    \"order\": 1,\n"
                       "                    \"path\": \"/p\",\n"
                       "                    \"signature\": \"/p.sig\",\n"
                       "                    \"size\": 3\n"
                       "                }\n"
                       "            ],\n"
                       "            \"phased-percentage\": 5,\n"
                       "            \"type\": \"delta\",\n"
                       "            \"version\": 2\n"
                       "        },\n"
                       "        {\n"
                       "            \"files\": [],\n"
                       "            \"minversion\": 2,\n"
                       "            \"type\": \"full\",\n"
                       "            \"version\": 3,\n"
                       "            \"version_detail\": \"v=3\"\n"
                       "        }\n"
                       "    ]\n"
                       "}\n";
    assert_string_equal(out, want);
    free(out);
    si_index_free(idx);

    /* generated_at from the epoch alone */
    si_index built = {0};
    built.generated_at_epoch = 1709210096;
    assert_int_equal(si_index_format(&built, &out, NULL), SI_OK);
    assert_non_null(strstr(out, "\"generated_at\": \"Thu Feb 29 12:34:56 UTC 2024\""));
    assert_non_null(strstr(out, "\"images\": []"));
    free(out);
}

static void expiry_parsed_formatted_and_checked(void **state)
{
    (void)state;
    si_index *idx = parse_ok("{\"global\": {\"generated_at\": \"Thu Feb 29 12:34:56 UTC 2024\","
                             " \"expires\": \"Thu Mar 07 12:34:56 UTC 2024\"}, \"images\": []}");
    assert_string_equal(idx->expires, "Thu Mar 07 12:34:56 UTC 2024");
    assert_int_equal(idx->expires_epoch, 1709210096 + 7 * 86400);
    char *out = NULL;
    assert_int_equal(si_index_format(idx, &out, NULL), SI_OK);
    assert_non_null(strstr(out, "\"expires\": \"Thu Mar 07 12:34:56 UTC 2024\""));
    free(out);

    si_err err = {0};
    assert_int_equal(si_index_check_fresh(idx, 1709210096, &err), SI_OK);
    assert_int_equal(si_index_check_fresh(idx, idx->expires_epoch - 1, &err), SI_OK);
    assert_int_equal(si_index_check_fresh(idx, idx->expires_epoch, &err), SI_ERR_STALE_INDEX);
    assert_non_null(strstr(err.msg, "expired on Thu Mar 07 12:34:56 UTC 2024"));
    si_index_free(idx);

    idx = parse_ok("{\"global\": {\"generated_at\": \"Thu Feb 29 12:34:56 UTC 2024\"},"
                   " \"images\": []}");
    assert_null(idx->expires);
    assert_int_equal(idx->expires_epoch, -1);
    assert_int_equal(si_index_check_fresh(idx, 0, &err), SI_ERR_STALE_INDEX);
    assert_non_null(strstr(err.msg, "global.expires missing"));
    si_index_free(idx);

    /* the clock rule: the latest of clock, build time, newest trusted timestamp */
    assert_int_equal(si_index_clock(100, 50, 20), 100);
    assert_int_equal(si_index_clock(10, 50, 20), 50);
    assert_int_equal(si_index_clock(-1, -1, 20), 20);

    si_index built = {0};
    built.generated_at_epoch = 1709210096;
    built.expires_epoch = 1709210096 + 7 * 86400;
    assert_int_equal(si_index_format(&built, &out, NULL), SI_OK);
    assert_non_null(strstr(out, "\"expires\": \"Thu Mar 07 12:34:56 UTC 2024\""));
    free(out);
}

static void image_building_helpers(void **state)
{
    (void)state;
    si_image img = {0};
    si_err err = {0};
    si_index_file f = {.path = "/pool/a.tar.zst", .signature = "/pool/a.tar.zst.sig",
                       .size = 7, .order = 2};
    strcpy(f.checksum, "ab");
    assert_int_equal(si_image_add_file(&img, &f, &err), SI_OK);
    assert_int_equal(si_image_add_file(&img, &f, &err), SI_OK);
    assert_int_equal(img.nfiles, 2);
    assert_ptr_not_equal(img.files[0].path, f.path);
    assert_string_equal(img.files[1].signature, "/pool/a.tar.zst.sig");
    assert_int_equal(img.files[1].size, 7);
    assert_string_equal(img.files[1].checksum, "ab");
    assert_int_equal(si_image_set_description(&img, "one", &err), SI_OK);
    assert_int_equal(si_image_set_description(&img, "two", &err), SI_OK);
    assert_int_equal(img.ndescriptions, 1);
    assert_string_equal(si_image_description(&img, NULL), "two");
    si_image_clear(&img);
    assert_int_equal(img.nfiles, 0);
    assert_null(img.files);
    assert_null(img.descriptions);
    si_image_clear(&img); /* idempotent */
}

static void assert_same_index(const si_index *a, const si_index *b)
{
    assert_int_equal(a->generated_at_epoch, b->generated_at_epoch);
    assert_int_equal(a->nimages, b->nimages);
    for (size_t i = 0; i < a->nimages; i++) {
        const si_image *x = &a->images[i], *y = &b->images[i];
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->version, y->version);
        assert_int_equal(x->has_base, y->has_base);
        if (x->has_base)
            assert_int_equal(x->base, y->base);
        assert_int_equal(x->bootme, y->bootme);
        assert_int_equal(x->minversion, y->minversion);
        assert_int_equal(x->phased_percentage, y->phased_percentage);
        assert_int_equal(x->version_detail == NULL, y->version_detail == NULL);
        if (x->version_detail)
            assert_string_equal(x->version_detail, y->version_detail);
        assert_int_equal(x->ndescriptions, y->ndescriptions);
        for (size_t d = 0; d < x->ndescriptions; d++) {
            /* formatting sorts keys: look each one up */
            size_t e = 0;
            while (e < y->ndescriptions &&
                   strcmp(x->descriptions[d].key, y->descriptions[e].key) != 0)
                e++;
            assert_true(e < y->ndescriptions);
            assert_string_equal(x->descriptions[d].text, y->descriptions[e].text);
        }
        assert_int_equal(x->nfiles, y->nfiles);
        for (size_t f = 0; f < x->nfiles; f++) {
            assert_string_equal(x->files[f].path, y->files[f].path);
            assert_string_equal(x->files[f].signature, y->files[f].signature);
            assert_string_equal(x->files[f].checksum, y->files[f].checksum);
            assert_int_equal(x->files[f].size, y->files[f].size);
            assert_int_equal(x->files[f].order, y->files[f].order);
        }
    }
}

/* parse -> format -> parse gives the same index, and formatting is a fixpoint. */
static void round_trip(const char *json, size_t len)
{
    si_index *a = NULL, *b = NULL;
    si_err err = {0};
    assert_int_equal(si_index_parse(json, len, &a, &err), SI_OK);
    char *t1 = NULL, *t2 = NULL;
    assert_int_equal(si_index_format(a, &t1, &err), SI_OK);
    assert_int_equal(si_index_parse(t1, strlen(t1), &b, &err), SI_OK);
    assert_same_index(a, b);
    assert_int_equal(si_index_format(b, &t2, &err), SI_OK);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);
    si_index_free(a);
    si_index_free(b);
}

static void round_trips(void **state)
{
    (void)state;
    const char *docs[] = {
        DOC1(FULL_OK),
        "{\"images\": []}",
        "{\"images\": [" FULL_OK ", {\"type\": \"delta\", \"version\": 11, \"base\": 10,"
        " \"bootme\": true, \"phased-percentage\": 0, \"description-en_GB\": \"\\u00e9\\n\","
        " \"files\": [" FILE_OK "]}]}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        round_trip(docs[i], strlen(docs[i]));
}

static void load_from_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-index-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/index.json", dir);
    si_index *idx = NULL;
    si_err err = {0};
    assert_int_equal(si_index_load(path, &idx, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, path));
    const char *doc = DOC1(FULL_OK);
    assert_int_equal(si_write_file_atomic(path, doc, strlen(doc), 0644), 0);
    assert_int_equal(si_index_load(path, &idx, &err), SI_OK);
    assert_int_equal(idx->nimages, 1);
    si_index_free(idx);
    const char *bad = DOC1("{\"type\": \"full\"}");
    assert_int_equal(si_write_file_atomic(path, bad, strlen(bad), 0644), 0);
    assert_int_equal(si_index_load(path, &idx, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "images[0].version: missing mandatory field"));
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------- conformance */

static int is_index_doc(const char *name)
{
    return strstr(name, ".json") && (strstr(name, "index_") || strstr(name, ".index."));
}

/* Every document but one parses (*ctx counts them) and round-trips. */
static void check_index_doc(const char *rel, const char *name, char *buf, size_t len, void *ctx)
{
    si_index *idx = NULL;
    si_err err = {0};
    si_result r = si_index_parse(buf, len, &idx, &err);
    if (strcmp(name, "dbus.index_05.json") == 0) {
        /* upstream data with a delta that has no base: invalid here */
        assert_int_equal(r, SI_ERR_PARSE);
        assert_string_equal(err.msg, "index.json: images[1].base: missing mandatory field");
    } else {
        if (r != SI_OK)
            print_error("%s: %s\n", rel, err.msg);
        assert_int_equal(r, SI_OK);
        assert_true(idx->generated_at_epoch > 0);
        round_trip(buf, len);
        ++*(int *)ctx;
    }
    si_index_free(idx);
}

static void conformance_all_index_documents(void **state)
{
    (void)state;
    if (!have_conformance())
        skip();
    static const char *const dirs[] = {"index", "client-test-fixtures"};
    int parsed = 0;
    assert_int_equal(conformance_each(dirs, 2, is_index_doc, check_index_doc, &parsed), 60);
    assert_int_equal(parsed, 59); /* 60 index documents, one invalid */
}

static si_index *load_fixture(const char *rel)
{
    size_t len = 0;
    char *buf = read_fixture(rel, &len);
    assert_non_null(buf);
    si_index *idx = NULL;
    assert_int_equal(si_index_parse(buf, len, &idx, NULL), SI_OK);
    free(buf);
    return idx;
}

static void conformance_real_index(void **state)
{
    (void)state;
    if (!have_conformance())
        skip();
    si_index *idx = load_fixture("index/real-2013-daily-grouper.index.json");
    assert_int_equal(idx->nimages, 55);
    assert_int_equal(idx->generated_at_epoch, 1375356601); /* Thu Aug 01 11:30:01 UTC 2013 */
    const si_image *first = &idx->images[0];
    assert_int_equal(first->type, SI_IMAGE_FULL);
    assert_int_equal(first->version, 1725);
    assert_string_equal(si_image_description(first, "en_US"), "20130726.1");
    assert_int_equal(first->nfiles, 3);
    assert_int_equal(first->files[0].size, 263581532);
    assert_string_equal(first->files[2].path, "/daily/grouper/version-20130725.tar.xz");
    assert_int_equal(idx->images[1].type, SI_IMAGE_DELTA);
    assert_int_equal(idx->images[1].base, 1725);
    si_index_free(idx);
}

static void conformance_localized_and_details(void **state)
{
    (void)state;
    if (!have_conformance())
        skip();
    si_index *idx = load_fixture("index/localized-descriptions.index.json");
    int found = 0;
    for (size_t i = 0; i < idx->nimages; i++) {
        const si_image *im = &idx->images[i];
        for (size_t d = 0; d < im->ndescriptions; d++) {
            if (strcmp(im->descriptions[d].key, "description-xx_CC") != 0)
                continue;
            found++;
            const char *cc = si_image_description(im, "xx_CC");
            assert_string_equal(cc, im->descriptions[d].text);
            const char *xx = si_image_description(im, "xx_DD");
            assert_non_null(xx);
            assert_string_not_equal(xx, cc);
        }
    }
    assert_true(found > 0);
    si_index_free(idx);

    idx = load_fixture("index/version-detail.index.json");
    int details = 0;
    for (size_t i = 0; i < idx->nimages; i++)
        if (idx->images[i].version_detail &&
            strcmp(idx->images[i].version_detail, "ubuntu=105,raw-device=205,version=305") == 0)
            details++;
    assert_int_equal(details, 1);
    si_index_free(idx);

    idx = load_fixture("index/file-order.index.json");
    for (size_t i = 0; i < idx->nimages; i++) {
        const si_index_file **v = NULL;
        assert_int_equal(si_image_sorted_files(&idx->images[i], &v, NULL), SI_OK);
        for (size_t f = 1; f < idx->images[i].nfiles; f++)
            assert_true(v[f - 1]->order <= v[f]->order);
        free(v);
    }
    si_index_free(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_full_document),
        cmocka_unit_test(optional_global_and_empty_images),
        cmocka_unit_test(old_descriptions_object),
        cmocka_unit_test(malformed_fields_are_named),
        cmocka_unit_test(oversized_document_and_strings),
        cmocka_unit_test(time_round_trip),
        cmocka_unit_test(format_is_canonical),
        cmocka_unit_test(expiry_parsed_formatted_and_checked),
        cmocka_unit_test(image_building_helpers),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(load_from_files),
        cmocka_unit_test(conformance_all_index_documents),
        cmocka_unit_test(conformance_real_index),
        cmocka_unit_test(conformance_localized_and_details),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
