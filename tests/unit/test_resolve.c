/* test_resolve.c - candidate paths, WeightedScorer, phasing and winners with
 * system-image 3.x semantics, on synthetic indexes and on system-image's own
 * test data (expected results from its test suite, docs/design.md §6 ordering). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "index.h"
#include "jsonutil.h"
#include "resolve.h"

static si_index *parse(const char *json)
{
    si_index *idx = NULL;
    si_err err = {0};
    if (si_index_parse(json, strlen(json), &idx, &err) != SI_OK)
        print_error("%s\n", err.msg);
    assert_non_null(idx);
    return idx;
}

static si_index *fixture(const char *rel)
{
    size_t len = 0;
    char *buf = read_fixture(rel, &len);
    assert_non_null(buf);
    si_index *idx = NULL;
    si_err err = {0};
    if (si_index_parse(buf, len, &idx, &err) != SI_OK)
        print_error("%s: %s\n", rel, err.msg);
    free(buf);
    assert_non_null(idx);
    return idx;
}

/* "f1300:d1301:d1304" */
static const char *path_str(const si_path *p, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->nimages && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%c%lld", i ? ":" : "",
                                p->images[i]->type == SI_IMAGE_FULL ? 'f' : 'd',
                                (long long)p->images[i]->version);
    return buf;
}

/* Candidates from build, scored; expected paths and (optional) scores. */
static void expect_candidates(const si_index *idx, int64_t build, const char *const *paths,
                              const int64_t *scores, size_t n)
{
    si_candidates c;
    si_err err = {0};
    assert_int_equal(si_find_candidates(idx, build, &c, &err), SI_OK);
    si_score_candidates(&c);
    char buf[512];
    if (c.count != n)
        for (size_t i = 0; i < c.count; i++)
            print_error("candidate %zu: %s\n", i, path_str(&c.paths[i], buf, sizeof(buf)));
    assert_int_equal(c.count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(path_str(&c.paths[i], buf, sizeof(buf)), paths[i]);
        if (scores)
            assert_int_equal(c.paths[i].score, scores[i]);
    }
    si_candidates_free(&c);
}

/* Winner with an overridden device percentage: "" when up to date. */
static void expect_winner(const si_index *idx, int64_t build, int pct, const char *want)
{
    si_resolve_opts o = {.build = build, .channel = "devel", .percentage_override = true,
                         .device_percentage = pct};
    si_resolution res;
    si_err err = {0};
    assert_int_equal(si_resolve(idx, &o, &res, &err), SI_OK);
    char buf[512] = "";
    if (res.winner >= 0)
        path_str(&res.cand.paths[res.winner], buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        print_error("build %lld, device %d%%: winner \"%s\", want \"%s\"\n", (long long)build,
                    pct, buf, want);
    assert_string_equal(buf, want);
    assert_true(res.has_device_percentage);
    assert_int_equal(res.device_percentage, pct);
    si_resolution_free(&res);
}

#define F(v, extra) "{\"type\": \"full\", \"version\": " #v ", \"files\": []" extra "}"
#define D(b, v, extra) \
    "{\"type\": \"delta\", \"base\": " #b ", \"version\": " #v ", \"files\": []" extra "}"
#define SIZED(n) ", \"files\": [{\"path\": \"p\", \"signature\": \"s\", \"checksum\": \"\", " \
                 "\"size\": " #n ", \"order\": 0}]"

static void dedupe_forks_and_order(void **state)
{
    (void)state;
    si_index *idx = parse("{\"images\": ["
                          D(4, 5, ", \"description\": \"delta-rooted\"") ","
                          F(10, ", \"description\": \"first\"") ","
                          D(10, 11, ", \"description\": \"d11\"") ","
                          D(10, 12, "") ","
                          D(11, 12, "") ","
                          F(10, ", \"description\": \"dup full\"") ","
                          D(10, 11, ", \"description\": \"dup delta\"") ","
                          D(5, 10, "") "]}");
    /* from 4: the full first (full-rooted before delta-rooted), then the
     * delta-rooted path 5 -> 10, each forking at 10 in images[] order */
    const char *from4[] = {"f10:d11:d12", "f10:d12", "d5:d10:d11:d12", "d5:d10:d12"};
    expect_candidates(idx, 4, from4, NULL, 4);
    const char *from10[] = {"d11:d12", "d12"};
    expect_candidates(idx, 10, from10, NULL, 2);
    expect_candidates(idx, 12, NULL, NULL, 0);
    /* the first of duplicates is used */
    si_candidates c;
    assert_int_equal(si_find_candidates(idx, 4, &c, NULL), SI_OK);
    assert_string_equal(si_image_description(c.paths[0].images[0], NULL), "first");
    assert_string_equal(si_image_description(c.paths[0].images[1], NULL), "d11");
    assert_ptr_equal(c.paths[0].images[0], &idx->images[1]);
    si_candidates_free(&c);
    si_index_free(idx);
}

static void scoring_and_ties(void **state)
{
    (void)state;
    /* equal scores: the earlier candidate wins; full-rooted paths come first
     * even when the delta is earlier in images[] */
    si_index *idx = parse("{\"images\": [" D(10, 20, "") "," F(20, "") "]}");
    const char *p[] = {"f20", "d20"};
    const int64_t s[] = {0, 0};
    expect_candidates(idx, 10, p, s, 2);
    expect_winner(idx, 10, 100, "f20");
    si_index_free(idx);

    /* 100 per bootme, 1 per whole MiB over the smallest, 9001 per version short */
    idx = parse("{\"images\": ["
                "{\"type\": \"full\", \"version\": 30, \"bootme\": true" SIZED(1048576) "},"
                "{\"type\": \"full\", \"version\": 29" SIZED(1) "},"
                "{\"type\": \"full\", \"version\": 28" SIZED(3145728) "},"
                "{\"type\": \"delta\", \"base\": 28, \"version\": 30" SIZED(2097151) "}]}");
    const char *p2[] = {"f30", "f29", "f28:d30"};
    /* sizes 1 MiB, 1 B, 5 MiB - 1: (size - 1) / MiB = 0, 0, 4 */
    const int64_t s2[] = {100, 9001, 4};
    expect_candidates(idx, 0, p2, s2, 3);
    expect_winner(idx, 0, 0, "f28:d30");
    si_index_free(idx);

    /* scores saturate instead of overflowing */
    idx = parse("{\"images\": [" F(9007199254740992, "") "," F(1, "") "]}");
    const char *p3[] = {"f9007199254740992", "f1"};
    const int64_t s3[] = {0, INT64_MAX};
    expect_candidates(idx, 0, p3, s3, 2);
    si_index_free(idx);
}

#define SIZED2(p, n) ", \"files\": [{\"path\": \"" p "\", \"signature\": \"s\", " \
                     "\"checksum\": \"\", \"size\": " #n ", \"order\": 0}]"

/* Issue 14: equal scores go to the smaller download, then the fewer images,
 * then the earlier candidate; phasing walks in that order. */
static void ties_by_bytes_then_images(void **state)
{
    (void)state;
    /* from 2: delta 2->3->4 (2 images, 302699 bytes) vs delta 2->4 (1 image,
     * 300441 bytes): both score 0 (same MiB); the smaller wins although it is
     * the later candidate */
    si_index *idx = parse("{\"images\": ["
                          "{\"type\": \"delta\", \"base\": 2, \"version\": 3" SIZED2("a", 151000) "},"
                          "{\"type\": \"delta\", \"base\": 3, \"version\": 4" SIZED2("b", 151699) "},"
                          "{\"type\": \"delta\", \"base\": 2, \"version\": 4" SIZED2("c", 300441) "}]}");
    const char *p[] = {"d3:d4", "d4"};
    const int64_t s[] = {0, 0};
    expect_candidates(idx, 2, p, s, 2);
    expect_winner(idx, 2, 100, "d4");
    si_candidates c;
    assert_int_equal(si_find_candidates(idx, 2, &c, NULL), SI_OK);
    assert_int_equal(c.paths[0].download, 302699);
    assert_int_equal(c.paths[1].download, 300441);
    si_candidates_free(&c);
    si_index_free(idx);

    /* same bytes: the fewer images win; the one pulled (0%) is skipped and
     * the walk goes on in the same order */
    idx = parse("{\"images\": ["
                "{\"type\": \"delta\", \"base\": 2, \"version\": 3" SIZED2("a", 100) "},"
                "{\"type\": \"delta\", \"base\": 3, \"version\": 4" SIZED2("b", 100) "},"
                "{\"type\": \"delta\", \"base\": 2, \"version\": 4, \"phased-percentage\": 40"
                SIZED2("c", 200) "}]}");
    expect_winner(idx, 2, 40, "d4");
    expect_winner(idx, 2, 41, "d3:d4"); /* outside d4's phase: next in order */
    si_index_free(idx);

    /* a file shared by two images of the path counts once */
    idx = parse("{\"images\": [" "{\"type\": \"full\", \"version\": 3" SIZED2("dev", 500) "},"
                "{\"type\": \"delta\", \"base\": 3, \"version\": 4" SIZED2("dev", 500) "},"
                "{\"type\": \"full\", \"version\": 4" SIZED2("big", 900) "}]}");
    assert_int_equal(si_find_candidates(idx, 0, &c, NULL), SI_OK);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.paths[0].size, 1000);
    assert_int_equal(c.paths[0].download, 500);
    assert_int_equal(si_path_download_size(&c.paths[0], 1), 500);
    si_candidates_free(&c);
    expect_winner(idx, 0, 100, "f3:d4"); /* 500 bytes < 900 bytes, same score */
    si_index_free(idx);

    /* everything equal: the earlier candidate */
    idx = parse("{\"images\": [" F(20, "") "," F(20, ", \"minversion\": 0") "," D(10, 20, "") "]}");
    expect_winner(idx, 10, 100, "f20");
    si_index_free(idx);
}

static void bootme_truncation(void **state)
{
    (void)state;
    si_index *idx = parse("{\"images\": [" F(10, "") "," D(10, 11, ", \"bootme\": true") ","
                          D(11, 12, ", \"bootme\": true") "," D(12, 13, "") "]}");
    si_candidates c;
    assert_int_equal(si_find_candidates(idx, 0, &c, NULL), SI_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.paths[0].nimages, 4);
    assert_int_equal(c.paths[0].bootme, 2);
    assert_int_equal(si_path_bootme_count(&c.paths[0]), 2);
    si_candidates_free(&c);
    assert_int_equal(si_find_candidates(idx, 12, &c, NULL), SI_OK);
    assert_int_equal(si_path_bootme_count(&c.paths[0]), 1);
    si_candidates_free(&c);
    si_index_free(idx);

    idx = parse("{\"images\": [" F(10, ", \"bootme\": true") "]}");
    assert_int_equal(si_find_candidates(idx, 0, &c, NULL), SI_OK);
    assert_int_equal(si_path_bootme_count(&c.paths[0]), 1);
    si_candidates_free(&c);
    si_index_free(idx);
}

static void too_many_paths(void **state)
{
    (void)state;
    /* 13 diamonds in a row: 2^13 = 8192 paths */
    char *doc = malloc(64 * 1024);
    size_t pos = (size_t)sprintf(doc, "{\"images\": [" F(10, ""));
    for (int i = 1; i <= 13; i++) {
        int b = i * 10;
        pos += (size_t)sprintf(doc + pos,
                               "," D(%d, %d, "") "," D(%d, %d, "") "," D(%d, %d, "") "," D(%d, %d, ""),
                               b, b + 1, b, b + 2, b + 1, b + 10, b + 2, b + 10);
    }
    sprintf(doc + pos, "]}");
    si_index *idx = parse(doc);
    free(doc);
    si_candidates c;
    si_err err = {0};
    assert_int_equal(si_find_candidates(idx, 0, &c, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "more than 4096 upgrade paths"));
    assert_int_equal(c.count, 0);
    assert_null(c.paths);
    /* from further up there are few enough */
    assert_int_equal(si_find_candidates(idx, 100, &c, &err), SI_OK);
    assert_int_equal(c.count, 1 << 4);
    si_candidates_free(&c);
    si_resolve_opts o = {.build = 0, .channel = "c", .machine_id = "m"};
    si_resolution res;
    assert_int_equal(si_resolve(idx, &o, &res, &err), SI_ERR_TOO_LARGE);
    si_index_free(idx);
}

static void resolve_options_and_json(void **state)
{
    (void)state;
    si_index *idx = parse("{\"images\": [" F(11, ", \"phased-percentage\": 51") "]}");
    si_resolution res;
    si_err err = {0};
    /* seeded: ("ubuntu", 11, "0123456789abcdef") -> 51: inside the phase */
    si_resolve_opts o = {.build = 1, .channel = "ubuntu", .machine_id = "0123456789abcdef"};
    assert_int_equal(si_resolve(idx, &o, &res, &err), SI_OK);
    assert_int_equal(res.target, 11);
    assert_int_equal(res.device_percentage, 51);
    assert_int_equal(res.winner, 0);
    assert_false(res.channel_switch);
    assert_string_equal(res.phase_channel, "ubuntu");
    si_resolution_free(&res);
    /* ("devel", 11, ...) -> 96 via the alias: outside; and a channel switch */
    o.alias = "devel";
    assert_int_equal(si_resolve(idx, &o, &res, &err), SI_OK);
    assert_true(res.channel_switch);
    assert_int_equal(res.build, 0);
    assert_string_equal(res.phase_channel, "devel");
    assert_int_equal(res.device_percentage, 96);
    assert_int_equal(res.winner, -1);
    cJSON *j = NULL;
    char *text = NULL;
    assert_int_equal(si_resolution_to_json(&res, &j, &err), SI_OK);
    assert_int_equal(si_json_print_sorted(j, &text, &err), SI_OK);
    assert_string_equal(text, "{\n"
                              "    \"build\": 0,\n"
                              "    \"candidates\": [\n"
                              "        {\n"
                              "            \"bytes\": 0,\n"
                              "            \"images\": [\n"
                              "                {\n"
                              "                    \"base\": null,\n"
                              "                    \"type\": \"full\",\n"
                              "                    \"version\": 11\n"
                              "                }\n"
                              "            ],\n"
                              "            \"score\": 0\n"
                              "        }\n"
                              "    ],\n"
                              "    \"device_percentage\": 96,\n"
                              "    \"winner\": []\n"
                              "}\n");
    free(text);
    cJSON_Delete(j);
    si_resolution_free(&res);
    /* alias equal to the configured channel: no switch */
    o.alias = "ubuntu";
    assert_int_equal(si_resolve(idx, &o, &res, &err), SI_OK);
    assert_false(res.channel_switch);
    assert_int_equal(res.build, 1);
    si_resolution_free(&res);

    /* nothing newer: no target, no percentage unless overridden */
    si_resolve_opts up = {.build = 11, .channel = "ubuntu"};
    assert_int_equal(si_resolve(idx, &up, &res, &err), SI_OK);
    assert_int_equal(res.cand.count, 0);
    assert_int_equal(res.target, -1);
    assert_false(res.has_device_percentage);
    assert_int_equal(res.winner, -1);
    assert_int_equal(si_resolution_to_json(&res, &j, &err), SI_OK);
    assert_int_equal(si_json_print_sorted(j, &text, &err), SI_OK);
    assert_string_equal(text, "{\n    \"build\": 11,\n    \"candidates\": [],\n"
                              "    \"device_percentage\": null,\n    \"winner\": []\n}\n");
    free(text);
    cJSON_Delete(j);
    si_resolution_free(&res);

    /* errors */
    si_resolve_opts bad = {.build = 1, .channel = NULL};
    assert_int_equal(si_resolve(idx, &bad, &res, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "channel"));
    bad.channel = "ubuntu";
    assert_int_equal(si_resolve(idx, &bad, &res, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "machine-id"));
    bad.build = -1;
    assert_int_equal(si_resolve(idx, &bad, &res, &err), SI_ERR_USAGE);
    assert_non_null(strstr(err.msg, "negative"));
    si_index_free(idx);

    /* a pulled image (0%) never wins, whatever the device percentage */
    idx = parse("{\"images\": [" F(11, ", \"phased-percentage\": 0") "]}");
    expect_winner(idx, 1, 0, "");
    expect_winner(idx, 1, -100, "");
    si_index_free(idx);
}

/* ---------------------------------------------------------- conformance */

#define SKIP_WITHOUT_FIXTURES() \
    do {                        \
        if (!have_conformance()) \
            skip();             \
    } while (0)

static void conformance_candidates(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("client-test-fixtures/candidates.index_01.json");
    expect_candidates(idx, 1400, NULL, NULL, 0);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_02.json"); /* minversion */
    expect_candidates(idx, 100, NULL, NULL, 0);
    const char *from800[] = {"f1300"};
    expect_candidates(idx, 800, from800, NULL, 1);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_03.json");
    const char *two_fulls[] = {"f1300", "f1400"};
    expect_candidates(idx, 400, two_fulls, NULL, 2);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_04.json");
    expect_candidates(idx, 100, NULL, NULL, 0);
    si_candidates c;
    assert_int_equal(si_find_candidates(idx, 500, &c, NULL), SI_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.paths[0].nimages, 1);
    assert_string_equal(si_image_description(c.paths[0].images[0], NULL), "Delta 2");
    si_candidates_free(&c);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_05.json");
    assert_int_equal(si_find_candidates(idx, 1100, &c, NULL), SI_OK);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.paths[0].nimages, 1);
    assert_int_equal(c.paths[1].nimages, 1);
    si_candidates_free(&c);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_06.json");
    const char *from1000[] = {"f1300:d1301:d1302"};
    expect_candidates(idx, 1000, from1000, NULL, 1);
    const char *from1300[] = {"d1301:d1302"};
    expect_candidates(idx, 1300, from1300, NULL, 1);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_07.json"); /* fork */
    assert_int_equal(si_find_candidates(idx, 1200, &c, NULL), SI_OK);
    assert_int_equal(c.count, 2);
    char buf[256];
    const char *a = path_str(&c.paths[0], buf, sizeof(buf));
    int long_first = strcmp(a, "f1300:d1301:d1302") == 0;
    assert_true(long_first || strcmp(a, "f1300:d1302") == 0);
    const si_path *lp = &c.paths[long_first ? 0 : 1], *sp = &c.paths[long_first ? 1 : 0];
    assert_string_equal(path_str(lp, buf, sizeof(buf)), "f1300:d1301:d1302");
    assert_string_equal(si_image_description(lp->images[2], NULL), "Delta 3");
    assert_string_equal(path_str(sp, buf, sizeof(buf)), "f1300:d1302");
    assert_string_equal(si_image_description(sp->images[1], NULL), "Delta 2");
    si_candidates_free(&c);
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_11.json");
    const char *deltas_only[] = {"d1200"};
    assert_int_equal(si_find_candidates(idx, 100, &c, NULL), SI_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.paths[0].images[0]->type, SI_IMAGE_DELTA);
    si_candidates_free(&c);
    (void)deltas_only;
    si_index_free(idx);

    idx = fixture("client-test-fixtures/candidates.index_12.json");
    assert_int_equal(si_find_candidates(idx, 100, &c, NULL), SI_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.paths[0].nimages, 3);
    assert_string_equal(si_image_description(c.paths[0].images[0], NULL), "Delta A");
    assert_string_equal(si_image_description(c.paths[0].images[2], NULL), "Delta C");
    si_candidates_free(&c);
    si_index_free(idx);
}

static void conformance_weighted_scorer_example(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    const char *files[] = {"index/weighted-scorer-docstring-example.index.json",
                           "index/version-detail.index.json",
                           "client-test-fixtures/scores.index_07.json"};
    for (size_t f = 0; f < 3; f++) {
        si_index *idx = fixture(files[f]);
        const char *paths[] = {"f1300:d1301:d1304", "f1200:d1201:d1304", "f1100:d1303"};
        const int64_t scores[] = {300, 200, 9401};
        expect_candidates(idx, 600, paths, scores, 3);
        si_resolve_opts o = {.build = 600, .channel = "devel", .machine_id = "0123456789abcdef"};
        si_resolution res;
        assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
        assert_int_equal(res.winner, 1);
        const si_path *w = &res.cand.paths[1];
        assert_string_equal(si_image_description(w->images[0], NULL), "Full B");
        assert_string_equal(si_image_description(w->images[1], NULL), "Delta B.1");
        assert_string_equal(si_image_description(w->images[2], NULL), "Delta B.2");
        if (f == 1)
            assert_string_equal(w->images[2]->version_detail,
                                "ubuntu=105,raw-device=205,version=305");
        if (f == 2)
            assert_null(w->images[2]->version_detail);
        si_resolution_free(&res);
        si_index_free(idx);
    }
    si_index *idx = fixture("client-test-fixtures/scores.index_02.json");
    const char *one[] = {"f1300:d1301"};
    const int64_t s200[] = {200};
    expect_candidates(idx, 600, one, s200, 1);
    expect_winner(idx, 600, 50, "f1300:d1301");
    si_index_free(idx);
}

static void conformance_phasing(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("index/phased-percentage-50.index.json");
    const char *paths[] = {"f300:d301:d304", "f200:d201:d304", "d303"};
    const int64_t scores[] = {300, 100, 9101};
    expect_candidates(idx, 100, paths, scores, 3);
    expect_winner(idx, 100, 0, "f200:d201:d304");
    expect_winner(idx, 100, 22, "f200:d201:d304");
    expect_winner(idx, 100, 50, "f200:d201:d304");
    expect_winner(idx, 100, 51, "f300:d301:d304");
    expect_winner(idx, 100, 66, "f300:d301:d304");
    expect_winner(idx, 100, 100, "f300:d301:d304");
    expect_winner(idx, 100, 101, "");

    /* seeded: "devel.304.m3" -> 51 (outside 50%), "devel.304.m4" -> 11 */
    si_resolution res;
    si_resolve_opts o = {.build = 100, .channel = "devel", .machine_id = "m3"};
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_int_equal(res.target, 304);
    assert_int_equal(res.device_percentage, 51);
    assert_int_equal(res.winner, 0);
    si_resolution_free(&res);
    o.machine_id = "m4";
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_int_equal(res.device_percentage, 11);
    assert_int_equal(res.winner, 1);
    si_resolution_free(&res);

    /* channel switch: the alias seeds the percentage ("devel.304.m1" -> 91,
     * "stable.304.m1" -> 37) and the device resolves from build 0 */
    o = (si_resolve_opts){.build = 100, .channel = "stable", .machine_id = "m1"};
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_int_equal(res.device_percentage, 37);
    assert_int_equal(res.winner, 1);
    si_resolution_free(&res);
    o.alias = "devel";
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_true(res.channel_switch);
    assert_int_equal(res.build, 0);
    assert_int_equal(res.cand.count, 3);
    char buf[256];
    assert_string_equal(path_str(&res.cand.paths[2], buf, sizeof(buf)), "f100:d303");
    assert_int_equal(res.device_percentage, 91);
    assert_int_equal(res.winner, 0);
    si_resolution_free(&res);
    o.build_override = true; /* an explicit build is kept */
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_int_equal(res.build, 100);
    assert_string_equal(path_str(&res.cand.paths[2], buf, sizeof(buf)), "d303");
    si_resolution_free(&res);
    si_index_free(idx);

    idx = fixture("index/phased-percentage-0-pulled.index.json");
    expect_winner(idx, 100, 0, "f300:d301:d304");
    expect_winner(idx, 100, 50, "f300:d301:d304");
    expect_winner(idx, 100, 51, "f300:d301:d304");
    expect_winner(idx, 100, 100, "f300:d301:d304");
    expect_winner(idx, 100, -100, "f300:d301:d304");
    expect_winner(idx, 100, 1000, "");
    si_index_free(idx);
}

static void conformance_bootme_midpath(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("index/bootme-midpath.index.json");
    si_resolve_opts o = {.build = 600, .channel = "devel", .machine_id = "0123456789abcdef"};
    si_resolution res;
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_true(res.winner >= 0);
    const si_path *w = &res.cand.paths[res.winner];
    char buf[256];
    assert_string_equal(path_str(w, buf, sizeof(buf)), "f1200:d1201:d1304");
    size_t n = si_path_bootme_count(w);
    assert_int_equal(n, 2);
    /* downloads: files of Full B and Delta B.1 only */
    const char *want[] = {"/3/4/5.txt", "/4/5/6.txt", "/5/6/7.txt",
                          "/6/7/8.txt", "/7/8/9.txt", "/8/9/a.txt"};
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < w->images[i]->nfiles; f++) {
            const char *p = w->images[i]->files[f].path;
            int found = 0;
            for (size_t k = 0; k < 6; k++)
                found |= strcmp(p, want[k]) == 0;
            assert_true(found);
            got++;
        }
    }
    assert_int_equal(got, 6);
    si_resolution_free(&res);
    si_index_free(idx);

    /* without the mid-path bootme all files are downloaded */
    idx = fixture("client-test-fixtures/candidates.index_08.json");
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    w = &res.cand.paths[res.winner];
    assert_string_equal(path_str(w, buf, sizeof(buf)), "f1200:d1201:d1304");
    assert_int_equal(si_path_bootme_count(w), 3);
    si_resolution_free(&res);
    si_index_free(idx);
}

static void conformance_minversion(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("index/minversion.index.json");
    expect_candidates(idx, 100, NULL, NULL, 0);
    expect_candidates(idx, 599, NULL, NULL, 0);
    const char *p600[] = {"f1300"};
    expect_candidates(idx, 600, p600, NULL, 1);
    expect_winner(idx, 800, 100, "f1300");
    const char *p1100[] = {"f1300", "f1400"};
    const int64_t s1100[] = {100 + 9001 * 100, 100};
    expect_candidates(idx, 1100, p1100, s1100, 2);
    expect_winner(idx, 1100, 100, "f1400");
    const char *p1300[] = {"f1400"};
    expect_candidates(idx, 1300, p1300, NULL, 1);
    expect_candidates(idx, 1400, NULL, NULL, 0);
    si_index_free(idx);
}

static void conformance_three_paths(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("index/three-paths-new-version-regime.index.json");
    const char *paths[] = {"f300:d301:d304", "f200:d201:d304", "f100:d303"};
    expect_candidates(idx, 0, paths, NULL, 3);
    si_resolve_opts o = {.build = 0, .channel = "devel", .machine_id = "0123456789abcdef"};
    si_resolution res;
    assert_int_equal(si_resolve(idx, &o, &res, NULL), SI_OK);
    assert_int_equal(res.winner, 1);
    const si_path *w = &res.cand.paths[1];
    assert_string_equal(si_image_description(w->images[0], NULL), "Full B");
    assert_int_equal(w->images[1]->base, 200);
    assert_int_equal(w->images[2]->base, 201);
    si_resolution_free(&res);
    si_index_free(idx);
}

static void conformance_real_index(void **state)
{
    (void)state;
    SKIP_WITHOUT_FIXTURES();
    si_index *idx = fixture("index/real-2013-daily-grouper.index.json");
    const char *from1[] = {
        "f1725:d1726:d1727:d1728:d1729:d1730:d1731:d1732:d1733:d1800",
        "f1726:d1727:d1728:d1729:d1730:d1731:d1732:d1733:d1800",
        "f1729:d1730:d1731:d1732:d1733:d1800",
        "f1727:d1728:d1729:d1730:d1731:d1732:d1733:d1800",
        "f1728:d1729:d1730:d1731:d1732:d1733:d1800",
        "f1800",
        "f1733:d1800",
        "f1731:d1732:d1733:d1800",
        "f1732:d1733:d1800",
        "f1730:d1731:d1732:d1733:d1800",
    };
    const int64_t s1[] = {280, 239, 110, 198, 157, 0, 43, 84, 84, 95};
    expect_candidates(idx, 1, from1, s1, 10);
    expect_winner(idx, 1, 100, "f1800");

    const char *from1728[] = {
        "f1729:d1730:d1731:d1732:d1733:d1800",
        "f1800",
        "f1733:d1800",
        "f1731:d1732:d1733:d1800",
        "f1732:d1733:d1800",
        "f1730:d1731:d1732:d1733:d1800",
        "d1729:d1730:d1731:d1732:d1733:d1800",
    };
    const int64_t s1728[] = {232, 121, 165, 206, 205, 217, 0};
    expect_candidates(idx, 1728, from1728, s1728, 7);
    expect_winner(idx, 1728, 100, "d1729:d1730:d1731:d1732:d1733:d1800");
    expect_candidates(idx, 1800, NULL, NULL, 0);
    expect_winner(idx, 1800, 100, "");
    si_index_free(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dedupe_forks_and_order),
        cmocka_unit_test(scoring_and_ties),
        cmocka_unit_test(ties_by_bytes_then_images),
        cmocka_unit_test(bootme_truncation),
        cmocka_unit_test(too_many_paths),
        cmocka_unit_test(resolve_options_and_json),
        cmocka_unit_test(conformance_candidates),
        cmocka_unit_test(conformance_weighted_scorer_example),
        cmocka_unit_test(conformance_phasing),
        cmocka_unit_test(conformance_bootme_midpath),
        cmocka_unit_test(conformance_minversion),
        cmocka_unit_test(conformance_three_paths),
        cmocka_unit_test(conformance_real_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
