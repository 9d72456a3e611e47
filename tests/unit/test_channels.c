/* test_channels.c - channels.json: fields good and bad, round trips, and
 * system-image's own channels documents. */
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

#include "channels.h"
#include "conformance.h"
#include "testutil.h"

static si_channels *parse_ok(const char *json)
{
    si_channels *ch = NULL;
    si_err err = {0};
    si_result r = si_channels_parse(json, strlen(json), &ch, &err);
    if (r != SI_OK)
        print_error("unexpected error: %s\n", err.msg);
    assert_int_equal(r, SI_OK);
    return ch;
}

static void parse_all_fields(void **state)
{
    (void)state;
    si_channels *ch = parse_ok(
        "{\"daily\": {\"alias\": \"tubular\", \"unknown\": 1, \"devices\": {"
        "  \"mako\": {\"index\": \"/daily/mako/index.json\"},"
        "  \"manta\": {\"index\": \"/daily/manta/index.json\", \"extra\": [],"
        "    \"keyring\": {\"path\": \"/daily/manta/device-signing.keyring\","
        "                  \"signature\": \"/daily/manta/device-signing.keyring.sig\"}}}},"
        " \"tubular\": {\"hidden\": true, \"redirect\": \"ubports/stable\", \"devices\": {}}}");
    assert_int_equal(ch->nchannels, 2);
    const si_channel *d = si_channels_find(ch, "daily");
    assert_non_null(d);
    assert_string_equal(d->alias, "tubular");
    assert_null(d->redirect);
    assert_false(d->hidden);
    assert_int_equal(d->ndevices, 2);
    const si_channel_device *mako = si_channel_find_device(d, "mako");
    assert_string_equal(mako->index, "/daily/mako/index.json");
    assert_null(mako->keyring_path);
    assert_null(mako->keyring_signature);
    const si_channel_device *manta = si_channel_find_device(d, "manta");
    assert_string_equal(manta->keyring_path, "/daily/manta/device-signing.keyring");
    assert_string_equal(manta->keyring_signature, "/daily/manta/device-signing.keyring.sig");
    assert_null(si_channel_find_device(d, "grouper"));
    const si_channel *t = si_channels_find(ch, "tubular");
    assert_true(t->hidden);
    assert_null(t->alias);
    assert_string_equal(t->redirect, "ubports/stable");
    assert_int_equal(t->ndevices, 0);
    assert_null(si_channels_find(ch, "stable"));
    assert_null(si_channels_find(NULL, "stable"));
    si_channels_free(ch);

    ch = parse_ok("{}");
    assert_int_equal(ch->nchannels, 0);
    si_channels_free(ch);
}

struct bad_case {
    const char *json;
    si_result code;
    const char *msg;
};

#define DEV "{\"index\": \"/s/d/index.json\"}"
static const struct bad_case bad_cases[] = {
    {"", SI_ERR_PARSE, "channels.json"},
    {"{\"a\": ", SI_ERR_PARSE, "channels.json"},
    {"[]", SI_ERR_PARSE, "channels.json: expected a JSON object"},
    {"{\"stable\": 5}", SI_ERR_PARSE, "channels.json: stable: expected object"},
    {"{\"stable\": {}}", SI_ERR_PARSE, "channels.json: stable.devices: missing mandatory field"},
    {"{\"stable\": {\"devices\": []}}", SI_ERR_PARSE,
     "channels.json: stable.devices: expected object"},
    {"{\"stable\": {\"devices\": {\"mako\": 1}}}", SI_ERR_PARSE,
     "channels.json: stable.devices.mako: expected object"},
    {"{\"stable\": {\"devices\": {\"mako\": {}}}}", SI_ERR_PARSE,
     "channels.json: stable.devices.mako.index: missing mandatory field"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": 3}}}}", SI_ERR_PARSE,
     "channels.json: stable.devices.mako.index: expected string"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": \"i\", \"keyring\": \"k\"}}}}",
     SI_ERR_PARSE, "channels.json: stable.devices.mako.keyring: expected object"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": \"i\", \"keyring\": {}}}}}",
     SI_ERR_PARSE, "channels.json: stable.devices.mako.keyring.path: missing mandatory field"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": \"i\", \"keyring\": {\"path\": \"p\"}}}}}",
     SI_ERR_PARSE,
     "channels.json: stable.devices.mako.keyring.signature: missing mandatory field"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": \"i\", \"keyring\": {\"path\": 1,"
     " \"signature\": \"s\"}}}}}",
     SI_ERR_PARSE, "channels.json: stable.devices.mako.keyring.path: expected string"},
    {"{\"stable\": {\"devices\": {\"mako\": {\"index\": \"i\", \"keyring\": {\"path\": \"p\","
     " \"signature\": []}}}}}",
     SI_ERR_PARSE, "channels.json: stable.devices.mako.keyring.signature: expected string"},
    {"{\"stable\": {\"alias\": 1, \"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: stable.alias: expected string"},
    {"{\"stable\": {\"alias\": \"\", \"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: stable: empty alias name"},
    {"{\"stable\": {\"redirect\": false, \"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: stable.redirect: expected string"},
    {"{\"stable\": {\"hidden\": \"true\", \"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: stable.hidden: expected boolean"},
    {"{\"\": {\"devices\": {}}}", SI_ERR_PARSE, "channels.json: empty channel name"},
    {"{\"a\\nb\": {\"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: channel name has a control character"},
    {"{\"s\": {\"devices\": {\"\": " DEV "}}}", SI_ERR_PARSE,
     "channels.json: s.devices: empty device name"},
    {"{\"s\": {\"devices\": {\"a\\u0001\": " DEV "}}}", SI_ERR_PARSE,
     "channels.json: s.devices: device name has a control character"},
    {"{\"s\": {\"devices\": {}}, \"s\": {\"devices\": {}}}", SI_ERR_PARSE,
     "channels.json: s: duplicate channel"},
    {"{\"s\": {\"devices\": {\"d\": " DEV ", \"d\": " DEV "}}}", SI_ERR_PARSE,
     "channels.json: s.devices.d: duplicate device"},
};

static void malformed_fields_are_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        si_channels *ch = (si_channels *)0x1;
        si_err err = {0};
        char what[32];
        snprintf(what, sizeof(what), "case %zu", i);
        tu_assert_error(what, si_channels_parse(c->json, strlen(c->json), &ch, &err), &err, c->code,
                        c->msg);
        assert_null(ch);
        assert_int_equal(si_channels_parse(c->json, strlen(c->json), &ch, NULL), c->code);
        assert_null(ch);
    }
}

static void limits(void **state)
{
    (void)state;
    si_channels *ch = NULL;
    si_err err = {0};
    size_t n = SI_CHANNELS_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, "{}", 2);
    assert_int_equal(si_channels_parse(big, n, &ch, &err), SI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "channels.json"));
    free(big);

    /* names longer than 255 bytes */
    char doc[1024];
    char name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(doc, sizeof(doc), "{\"%s\": {\"devices\": {}}}", name);
    assert_int_equal(si_channels_parse(doc, strlen(doc), &ch, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "channel name longer than 255 bytes"));
    snprintf(doc, sizeof(doc), "{\"c\": {\"devices\": {\"%s\": {\"index\": \"i\"}}}}", name);
    assert_int_equal(si_channels_parse(doc, strlen(doc), &ch, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, "c.devices: device name longer than 255 bytes"));
    name[255] = '\0';
    snprintf(doc, sizeof(doc), "{\"%s\": {\"devices\": {}}}", name);
    assert_int_equal(si_channels_parse(doc, strlen(doc), &ch, &err), SI_OK);
    si_channels_free(ch);
}

static void format_is_canonical(void **state)
{
    (void)state;
    si_channels *ch = parse_ok(
        "{\"stable\": {\"devices\": {\"mako\": {\"keyring\": {\"signature\": \"/k.sig\","
        " \"path\": \"/k\"}, \"index\": \"/stable/mako/index.json\"}}, \"hidden\": false},"
        " \"daily\": {\"hidden\": true, \"alias\": \"stable\", \"redirect\": \"x\","
        " \"devices\": {}}}");
    char *out = NULL;
    assert_int_equal(si_channels_format(ch, &out, NULL), SI_OK);
    const char *want = "{\n"
                       "    \"daily\": {\n"
                       "        \"alias\": \"stable\",\n"
                       "        \"devices\": {},\n"
                       "        \"hidden\": true,\n"
                       "        \"redirect\": \"x\"\n"
                       "    },\n"
                       "    \"stable\": {\n"
                       "        \"devices\": {\n"
                       "            \"mako\": {\n"
                       "                \"index\": \"/stable/mako/index.json\",\n"
                       "                \"keyring\": {\n"
                       "                    \"path\": \"/k\",\n"
                       "                    \"signature\": \"/k.sig\"\n"
                       "                }\n"
                       "            }\n"
                       "        }\n"
                       "    }\n"
                       "}\n";
    assert_string_equal(out, want);
    free(out);
    si_channels_free(ch);
}

static void assert_same(const si_channels *a, const si_channels *b)
{
    assert_int_equal(a->nchannels, b->nchannels);
    for (size_t i = 0; i < a->nchannels; i++) {
        const si_channel *x = &a->channels[i];
        const si_channel *y = si_channels_find(b, x->name);
        assert_non_null(y);
        assert_int_equal(x->hidden, y->hidden);
        assert_int_equal(x->alias == NULL, y->alias == NULL);
        if (x->alias)
            assert_string_equal(x->alias, y->alias);
        assert_int_equal(x->redirect == NULL, y->redirect == NULL);
        if (x->redirect)
            assert_string_equal(x->redirect, y->redirect);
        assert_int_equal(x->ndevices, y->ndevices);
        for (size_t d = 0; d < x->ndevices; d++) {
            const si_channel_device *u = &x->devices[d];
            const si_channel_device *v = si_channel_find_device(y, u->name);
            assert_non_null(v);
            assert_string_equal(u->index, v->index);
            assert_int_equal(u->keyring_path == NULL, v->keyring_path == NULL);
            if (u->keyring_path) {
                assert_string_equal(u->keyring_path, v->keyring_path);
                assert_string_equal(u->keyring_signature, v->keyring_signature);
            }
        }
    }
}

static void round_trip(const char *json, size_t len)
{
    si_channels *a = NULL, *b = NULL;
    si_err err = {0};
    assert_int_equal(si_channels_parse(json, len, &a, &err), SI_OK);
    char *t1 = NULL, *t2 = NULL;
    assert_int_equal(si_channels_format(a, &t1, &err), SI_OK);
    assert_int_equal(si_channels_parse(t1, strlen(t1), &b, &err), SI_OK);
    assert_same(a, b);
    assert_int_equal(si_channels_format(b, &t2, &err), SI_OK);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);
    si_channels_free(a);
    si_channels_free(b);
}

static void load_from_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-channels-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/channels.json", dir);
    si_channels *ch = NULL;
    si_err err = {0};
    assert_int_equal(si_channels_load(path, &ch, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, path));
    const char *doc = "{\"stable\": {\"devices\": {\"d\": {\"index\": \"/i\"}}}}";
    assert_int_equal(si_write_file_atomic(path, doc, strlen(doc), 0644), 0);
    assert_int_equal(si_channels_load(path, &ch, &err), SI_OK);
    assert_string_equal(ch->channels[0].devices[0].index, "/i");
    si_channels_free(ch);
    round_trip(doc, strlen(doc));
    const char *bad = "{\"stable\": {\"devices\": {\"d\": {}}}}";
    assert_int_equal(si_write_file_atomic(path, bad, strlen(bad), 0644), 0);
    assert_int_equal(si_channels_load(path, &ch, &err), SI_ERR_PARSE);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "stable.devices.d.index: missing mandatory field"));
    unlink(path);
    rmdir(dir);
}

static int is_channels_doc(const char *name)
{
    return strstr(name, "channels") && strstr(name, ".json");
}

static void check_channels_doc(const char *rel, const char *name, char *buf, size_t len, void *ctx)
{
    (void)name;
    (void)ctx;
    si_channels *ch = NULL;
    si_err err = {0};
    if (si_channels_parse(buf, len, &ch, &err) != SI_OK)
        print_error("%s: %s\n", rel, err.msg);
    assert_non_null(ch);
    assert_true(ch->nchannels > 0);
    round_trip(buf, len);
    si_channels_free(ch);
}

static void conformance_all_channels_documents(void **state)
{
    (void)state;
    if (!have_conformance())
        skip();
    static const char *const dirs[] = {"channels", "client-test-fixtures"};
    assert_int_equal(conformance_each(dirs, 2, is_channels_doc, check_channels_doc, NULL), 28);
}

static void conformance_alias_hidden_keyrings(void **state)
{
    (void)state;
    if (!have_conformance())
        skip();
    size_t len = 0;
    char *buf = read_fixture("channels/alias-hidden-device-keyrings.channels.json", &len);
    assert_non_null(buf);
    si_channels *ch = NULL;
    assert_int_equal(si_channels_parse(buf, len, &ch, NULL), SI_OK);
    free(buf);
    assert_int_equal(ch->nchannels, 3);
    const si_channel *daily = si_channels_find(ch, "daily");
    assert_string_equal(daily->alias, "tubular");
    assert_false(daily->hidden);
    const si_channel *tub = si_channels_find(ch, "tubular");
    assert_true(tub->hidden);
    assert_null(tub->alias);
    assert_int_equal(tub->ndevices, 4);
    const si_channel_device *manta = si_channel_find_device(tub, "manta");
    assert_string_equal(manta->index, "/tubular/manta/index.json");
    assert_string_equal(manta->keyring_path, "/tubular/manta/device-signing.tar.xz");
    assert_string_equal(manta->keyring_signature, "/tubular/manta/device-signing.tar.xz.asc");
    assert_null(si_channel_find_device(tub, "grouper")->keyring_path);
    si_channels_free(ch);
}

/* The publisher's editing helpers: get-or-append and device copies, freed
 * by si_channels_free. */
static void editing_helpers(void **state)
{
    (void)state;
    si_channels *ch = calloc(1, sizeof(*ch));
    assert_non_null(ch);
    si_err err = {0};
    si_channel *a = si_channels_get(ch, "stable", &err);
    assert_non_null(a);
    assert_ptr_equal(si_channels_get(ch, "stable", &err), a);
    si_channel_device *d = si_channel_get_device(a, "board", &err);
    assert_non_null(d);
    assert_ptr_equal(si_channel_get_device(a, "board", &err), d);
    d->index = strdup("/stable/board/index.json");
    d->keyring_path = strdup("/keyrings/board/device-signing.keyring");
    si_channel *b = si_channels_get(ch, "daily", &err);
    assert_non_null(b);
    a = &ch->channels[0]; /* the array may have moved */
    b->alias = strdup("stable");
    assert_int_equal(si_channel_copy_devices(b, a, &err), SI_OK);
    assert_int_equal(b->ndevices, 1);
    assert_string_equal(b->devices[0].index, "/stable/board/index.json");
    assert_null(b->devices[0].keyring_signature);
    assert_ptr_not_equal(b->devices[0].index, a->devices[0].index);
    /* copying again replaces, and the document round-trips */
    assert_int_equal(si_channel_copy_devices(b, a, &err), SI_OK);
    assert_int_equal(b->ndevices, 1);
    char *json = NULL;
    assert_int_equal(si_channels_format(ch, &json, &err), SI_OK);
    si_channels *back = NULL;
    assert_int_equal(si_channels_parse(json, strlen(json), &back, &err), SI_OK);
    assert_int_equal(back->nchannels, 2);
    const si_channel *daily = si_channels_find(back, "daily");
    assert_non_null(daily);
    assert_string_equal(daily->alias, "stable");
    assert_non_null(si_channel_find_device(daily, "board"));
    free(json);
    si_channels_free(back);
    si_channels_free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(editing_helpers),
        cmocka_unit_test(parse_all_fields),
        cmocka_unit_test(malformed_fields_are_named),
        cmocka_unit_test(limits),
        cmocka_unit_test(format_is_canonical),
        cmocka_unit_test(load_from_files),
        cmocka_unit_test(conformance_all_channels_documents),
        cmocka_unit_test(conformance_alias_hidden_keyrings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
