/* test_command.c - the recovery command file: docs/formats.md's grammar, every
 * malformed line refused whole with its line number, atomic writing. */
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

#include "command.h"
#include "fsutil.h"

static si_command_file cf; /* large: keep it off the stack */

static void parse_design_example(void **state)
{
    (void)state;
    const char *text =
        "# written by sysimage-stub\n"
        "load_keyring image-master.keyring image-master.keyring.sig\n"
        "load_keyring image-signing.keyring image-signing.keyring.sig\n"
        "\n"
        "load_keyring\tdevice-signing.keyring   device-signing.keyring.sig  # device\n"
        "   load_keyring blacklist.keyring blacklist.keyring.sig\n"
        "format system\n"
        "mount system\n"
        "update full-1300.tar.zst full-1300.tar.zst.sig\n"
        "update version-1300.tar.zst version-1300.tar.zst.sig#comment\n"
        "unmount system\n"
        "   # indented comment\n"
        "format data"; /* no final newline */
    si_err err = {0};
    assert_int_equal(si_command_file_parse(text, strlen(text), &cf, &err), SI_OK);
    assert_int_equal(cf.count, 10);
    assert_int_equal(cf.cmds[0].op, SI_CMD_LOAD_KEYRING);
    assert_string_equal(cf.cmds[0].file, "image-master.keyring");
    assert_string_equal(cf.cmds[0].sig, "image-master.keyring.sig");
    assert_int_equal(cf.cmds[0].line, 2);
    assert_int_equal(cf.cmds[2].op, SI_CMD_LOAD_KEYRING);
    assert_string_equal(cf.cmds[2].file, "device-signing.keyring");
    assert_string_equal(cf.cmds[2].sig, "device-signing.keyring.sig");
    assert_int_equal(cf.cmds[2].line, 5);
    assert_int_equal(cf.cmds[4].op, SI_CMD_FORMAT);
    assert_int_equal(cf.cmds[4].target, SI_TARGET_SYSTEM);
    assert_int_equal(cf.cmds[5].op, SI_CMD_MOUNT);
    assert_int_equal(cf.cmds[5].target, SI_TARGET_SYSTEM);
    assert_int_equal(cf.cmds[6].op, SI_CMD_UPDATE);
    assert_string_equal(cf.cmds[6].file, "full-1300.tar.zst");
    assert_string_equal(cf.cmds[7].sig, "version-1300.tar.zst.sig");
    assert_int_equal(cf.cmds[8].op, SI_CMD_UNMOUNT);
    assert_int_equal(cf.cmds[8].target, SI_TARGET_SYSTEM);
    assert_int_equal(cf.cmds[9].op, SI_CMD_FORMAT);
    assert_int_equal(cf.cmds[9].target, SI_TARGET_DATA);
    assert_int_equal(cf.cmds[9].line, 13);

    /* empty and comment-only files hold no command */
    assert_int_equal(si_command_file_parse("", 0, &cf, &err), SI_OK);
    assert_int_equal(cf.count, 0);
    assert_int_equal(si_command_file_parse("# x\n\n \t\n", 8, &cf, &err), SI_OK);
    assert_int_equal(cf.count, 0);
}

struct bad_case {
    const char *text;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"frobnicate system\n", "line 1: unknown command \"frobnicate\""},
    {"format system\nFORMAT system\n", "line 2: unknown command \"FORMAT\""},
    {"# ok\nload_keyring a\n", "line 2: load_keyring takes 2 arguments, got 1"},
    {"load_keyring\n", "line 1: load_keyring takes 2 arguments, got 0"},
    {"load_keyring a b c\n", "line 1: load_keyring takes 2 arguments, got 3"},
    {"update a\n", "line 1: update takes 2 arguments, got 1"},
    {"update a b c d e f\n", "line 1: too many words"},
    {"update a b c\n", "line 1: update takes 2 arguments, got 3"},
    {"format\n", "line 1: format takes 1 argument, got 0"},
    {"format system data\n", "line 1: format takes 1 argument, got 2"},
    {"format cache\n", "line 1: format: bad target \"cache\" (expected system or data)"},
    {"format userdata\n", "line 1: format: bad target \"userdata\""},
    {"mount data\n", "line 1: mount: bad target \"data\" (expected system)"},
    {"mount\n", "line 1: mount takes 1 argument, got 0"},
    {"unmount data\n", "line 1: unmount: bad target \"data\" (expected system)"},
    {"unmount system now\n", "line 1: unmount takes 1 argument, got 2"},
    {"mount System\n", "line 1: mount: bad target \"System\""},
    {"update ../x x.sig\n", "line 1: update argument 1: file name may not contain '/'"},
    {"update /etc/passwd x.sig\n", "line 1: update argument 1: file name may not contain '/'"},
    {"update x sub/x.sig\n", "line 1: update argument 2: file name may not contain '/'"},
    {"update . x.sig\n", "line 1: update argument 1: file name may not be '.' or '..'"},
    {"update x ..\n", "line 1: update argument 2: file name may not be '.' or '..'"},
    {"load_keyring .. k.sig\n", "line 1: load_keyring argument 1: file name may not be"},
    {"update a\x01 b\n", "line 1: control character 0x01"},
    {"update a\rb c\n", "line 1: control character 0x0d"},
    {"format system\r\n", "line 1: control character 0x0d"},
    {"update a b\x7f\n", "line 1: control character 0x7f"},
    {"mount system\n\nformat\x1bsystem\n", "line 3: control character 0x1b"},
    {"index a\n", "line 1: index takes 2 arguments, got 1"},
    {"image\n", "line 1: image takes \"full <version>\""},
    {"image full\n", "line 1: image takes"},
    {"image full 1 2\n", "line 1: image takes"},
    {"image delta 2\n", "line 1: image takes"},
    {"image partial 2\n", "line 1: image takes"},
    {"image full x\n", "line 1: image: bad version \"x\""},
    {"image full -1\n", "line 1: image: bad version \"-1\""},
    {"image full 012\n", "line 1: image: bad version \"012\""},
    {"image full 99999999999999999\n", "line 1: image: bad version"},
    {"image delta 3 3\n", "line 1: image delta 3 3: the base must be older than the version"},
    {"image delta 3 x\n", "line 1: image: bad base \"x\""},
};

static void malformed_lines_refuse_the_whole_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        si_err err = {0};
        cf.count = 99;
        si_result r = si_command_file_parse(bad_cases[i].text, strlen(bad_cases[i].text), &cf,
                                            &err);
        if (r != SI_ERR_COMMAND_FILE || !strstr(err.msg, bad_cases[i].msg))
            print_error("case %zu: got %d \"%s\", want \"%s\"\n", i, r, err.msg,
                        bad_cases[i].msg);
        assert_int_equal(r, SI_ERR_COMMAND_FILE);
        assert_int_equal(err.code, SI_ERR_COMMAND_FILE);
        assert_non_null(strstr(err.msg, bad_cases[i].msg));
        assert_int_equal(cf.count, 0); /* nothing of a refused file survives */
        assert_int_equal(si_command_file_parse(bad_cases[i].text, strlen(bad_cases[i].text),
                                               &cf, NULL),
                         SI_ERR_COMMAND_FILE);
    }
    /* NUL byte inside the file */
    const char nul[] = "mount system\nformat\0system\n";
    si_err err = {0};
    assert_int_equal(si_command_file_parse(nul, sizeof(nul) - 1, &cf, &err),
                     SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "line 2: control character 0x00"));
}

static void limits(void **state)
{
    (void)state;
    si_err err = {0};
    /* names up to 255 bytes; 256 refused */
    char line[700];
    char name[300];
    memset(name, 'a', 255);
    name[255] = '\0';
    snprintf(line, sizeof(line), "update %s %s\n", name, name);
    assert_int_equal(si_command_file_parse(line, strlen(line), &cf, &err), SI_OK);
    assert_int_equal(strlen(cf.cmds[0].file), 255);
    memset(name, 'a', 256);
    name[256] = '\0';
    snprintf(line, sizeof(line), "update %s x\n", name);
    assert_int_equal(si_command_file_parse(line, strlen(line), &cf, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "line 1: update argument 1: file name longer than 255"));

    /* over-long line (comments count too) */
    char *longline = malloc(2000);
    memcpy(longline, "mount system\n#", 14);
    memset(longline + 14, 'x', 1500);
    longline[1514] = '\n';
    assert_int_equal(si_command_file_parse(longline, 1515, &cf, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "line 2: longer than 1024 bytes"));
    free(longline);

    /* too many lines: 256 are fine, 257 are not */
    size_t n = 257 * 13;
    char *many = malloc(n + 1);
    for (size_t i = 0; i < 257; i++)
        memcpy(many + i * 13, "mount system\n", 13);
    assert_int_equal(si_command_file_parse(many, 256 * 13, &cf, &err), SI_OK);
    assert_int_equal(cf.count, 256);
    assert_int_equal(si_command_file_parse(many, n, &cf, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "line 257: more than 256 lines"));
    assert_int_equal(cf.count, 0);
    for (size_t i = 0; i < 257; i++)
        memcpy(many + i * 13, "# comment   \n", 13);
    assert_int_equal(si_command_file_parse(many, n, &cf, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "line 257"));
    free(many);

    /* over the byte limit */
    size_t big = SI_COMMAND_MAX_BYTES + 1;
    char *huge = calloc(1, big);
    memset(huge, '\n', big);
    assert_int_equal(si_command_file_parse(huge, big, &cf, &err), SI_ERR_TOO_LARGE);
    free(huge);
}

static void add_validates_and_format_round_trips(void **state)
{
    (void)state;
    si_err err = {0};
    cf.count = 0;
    assert_int_equal(si_command_file_add(&cf, SI_CMD_LOAD_KEYRING, SI_TARGET_NONE,
                                         "image-master.keyring", "image-master.keyring.sig",
                                         &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_FORMAT, SI_TARGET_SYSTEM, NULL, NULL, &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL, &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_UPDATE, SI_TARGET_NONE, "a.tar.zst",
                                         "a.tar.zst.sig", &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_UNMOUNT, SI_TARGET_SYSTEM, NULL, NULL,
                                         &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_FORMAT, SI_TARGET_DATA, NULL, NULL, &err),
                     SI_OK);
    /* refused additions leave the file as it was */
    struct {
        si_cmd_op op;
        si_cmd_target t;
        const char *f, *s, *msg;
    } bad[] = {
        {SI_CMD_UPDATE, SI_TARGET_NONE, "../a", "a.sig", "file name may not contain '/'"},
        {SI_CMD_UPDATE, SI_TARGET_NONE, "a", NULL, "argument 2 missing"},
        {SI_CMD_UPDATE, SI_TARGET_NONE, "a b", "a.sig", "may not contain ' ' or '#'"},
        {SI_CMD_UPDATE, SI_TARGET_NONE, "a#b", "a.sig", "may not contain ' ' or '#'"},
        {SI_CMD_LOAD_KEYRING, SI_TARGET_NONE, "", "a.sig", "empty file name"},
        {SI_CMD_LOAD_KEYRING, SI_TARGET_NONE, "k", "..", "may not be '.' or '..'"},
        {SI_CMD_UPDATE, SI_TARGET_NONE, "a\tb", "a.sig", "control character"},
        {SI_CMD_MOUNT, SI_TARGET_DATA, NULL, NULL, "bad target"},
        {SI_CMD_UNMOUNT, SI_TARGET_NONE, NULL, NULL, "bad target"},
        {SI_CMD_FORMAT, SI_TARGET_NONE, NULL, NULL, "bad target"},
        {(si_cmd_op)42, SI_TARGET_SYSTEM, NULL, NULL, "unknown command"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(si_command_file_add(&cf, bad[i].op, bad[i].t, bad[i].f, bad[i].s, &err),
                         SI_ERR_COMMAND_FILE);
        if (!strstr(err.msg, bad[i].msg))
            print_error("case %zu: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, "command 7"));
        assert_non_null(strstr(err.msg, bad[i].msg));
        assert_int_equal(cf.count, 6);
    }
    char *text = NULL;
    assert_int_equal(si_command_file_format(&cf, &text, &err), SI_OK);
    assert_string_equal(text, "load_keyring image-master.keyring image-master.keyring.sig\n"
                              "format system\n"
                              "mount system\n"
                              "update a.tar.zst a.tar.zst.sig\n"
                              "unmount system\n"
                              "format data\n");
    static si_command_file back;
    assert_int_equal(si_command_file_parse(text, strlen(text), &back, &err), SI_OK);
    assert_int_equal(back.count, cf.count);
    for (size_t i = 0; i < cf.count; i++) {
        assert_int_equal(back.cmds[i].op, cf.cmds[i].op);
        assert_int_equal(back.cmds[i].target, cf.cmds[i].target);
        assert_string_equal(back.cmds[i].file, cf.cmds[i].file);
        assert_string_equal(back.cmds[i].sig, cf.cmds[i].sig);
        assert_int_equal(back.cmds[i].line, i + 1);
    }
    free(text);

    /* a hand-built structure with a bad name is not written */
    cf.cmds[3].file[0] = '/';
    assert_int_equal(si_command_file_format(&cf, &text, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "command 4: update argument 1"));
    cf.cmds[3].file[0] = 'a';
    cf.cmds[2].target = SI_TARGET_DATA;
    assert_int_equal(si_command_file_format(&cf, &text, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "command 3: mount: bad target"));
    cf.cmds[2].target = SI_TARGET_SYSTEM;

    /* full */
    while (cf.count < SI_COMMAND_MAX_LINES)
        assert_int_equal(si_command_file_add(&cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL,
                                             &err),
                         SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL, &err),
                     SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, "more than 256 commands"));
    assert_int_equal(si_command_file_format(&cf, &text, &err), SI_OK);
    assert_int_equal(si_command_file_parse(text, strlen(text), &back, &err), SI_OK);
    assert_int_equal(back.count, SI_COMMAND_MAX_LINES);
    free(text);
}

static void write_is_atomic_and_loads_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/si-command-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/sysimage_command", dir);
    si_err err = {0};
    assert_int_equal(si_command_file_load(path, &cf, &err), SI_ERR_MISSING_FILE);
    assert_non_null(strstr(err.msg, path));

    cf.count = 0;
    assert_int_equal(si_command_file_add(&cf, SI_CMD_MOUNT, SI_TARGET_SYSTEM, NULL, NULL, &err),
                     SI_OK);
    assert_int_equal(si_command_file_add(&cf, SI_CMD_UPDATE, SI_TARGET_NONE, "u.tar.xz",
                                         "u.tar.xz.sig", &err),
                     SI_OK);
    assert_int_equal(si_command_file_write(path, &cf, &err), SI_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    static si_command_file back;
    assert_int_equal(si_command_file_load(path, &back, &err), SI_OK);
    assert_int_equal(back.count, 2);
    assert_string_equal(back.cmds[1].file, "u.tar.xz");

    /* overwriting keeps a whole file; a refused structure leaves the old one */
    cf.cmds[0].target = SI_TARGET_DATA;
    assert_int_equal(si_command_file_write(path, &cf, &err), SI_ERR_COMMAND_FILE);
    assert_int_equal(si_command_file_load(path, &back, &err), SI_OK);
    assert_int_equal(back.count, 2);

    /* a malformed file on disk names the path and the line */
    const char *bad = "mount system\nupdate x\n";
    assert_int_equal(si_write_file_atomic(path, bad, strlen(bad), 0600), 0);
    assert_int_equal(si_command_file_load(path, &back, &err), SI_ERR_COMMAND_FILE);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "line 2"));

    /* unwritable destination */
    char nodir[160];
    snprintf(nodir, sizeof(nodir), "%s/missing/sysimage_command", dir);
    assert_int_equal(si_command_file_write(nodir, &cf, &err), SI_ERR_COMMAND_FILE);
    cf.cmds[0].target = SI_TARGET_SYSTEM;
    assert_int_equal(si_command_file_write(nodir, &cf, &err), SI_ERR_IO);
    assert_non_null(strstr(err.msg, nodir));
    unlink(path);
    assert_int_equal(rmdir(dir), 0); /* no temporary file left behind */
}

/* The job's verbs (issue 10): index and image lines parse and round-trip. */
static void index_and_image_lines(void **state)
{
    (void)state;
    const char *text = "index index.json index.json.sig\nimage full 12\nimage delta 13 12\n";
    si_err err = {0};
    assert_int_equal(si_command_file_parse(text, strlen(text), &cf, &err), SI_OK);
    assert_int_equal(cf.count, 3);
    assert_int_equal(cf.cmds[0].op, SI_CMD_INDEX);
    assert_string_equal(cf.cmds[0].sig, "index.json.sig");
    assert_int_equal(cf.cmds[1].op, SI_CMD_IMAGE);
    assert_true(cf.cmds[1].full);
    assert_int_equal(cf.cmds[1].version, 12);
    assert_false(cf.cmds[2].full);
    assert_int_equal(cf.cmds[2].version, 13);
    assert_int_equal(cf.cmds[2].base, 12);
    static si_command_file built;
    built.count = 0;
    assert_int_equal(si_command_file_add_index(&built, "index.json", "index.json.sig", &err), SI_OK);
    assert_int_equal(si_command_file_add_image(&built, true, 12, 0, &err), SI_OK);
    assert_int_equal(si_command_file_add_image(&built, false, 13, 12, &err), SI_OK);
    assert_int_not_equal(si_command_file_add_image(&built, false, 13, 13, &err), SI_OK);
    char *out = NULL;
    assert_int_equal(si_command_file_format(&built, &out, &err), SI_OK);
    assert_string_equal(out, text);
    free(out);
    /* every verb is in the table, named as the parser reads it */
    for (int op = 0; op < SI_CMD_COUNT; op++) {
        const si_command_verb *v = si_command_verb_of((si_cmd_op)op);
        assert_non_null(v);
        assert_int_equal(v->op, op);
    }
    assert_null(si_command_verb_of(SI_CMD_COUNT));
}

struct seq_case {
    const char *text;
    const char *msg; /* NULL: accepted */
};

#define PRE "load_keyring image-master.keyring image-master.keyring.sig\n" \
            "index index.json index.json.sig\n"

static const struct seq_case seq_cases[] = {
    {PRE "image full 1\nformat system\nmount system\nupdate a a.sig\nunmount system\n", NULL},
    {PRE "image delta 2 1\nmount system\nupdate a a.sig\n", NULL},
    {"format data\n", NULL},
    {"", "no commands"},
    {"format system\n", "format system without an update"},
    {"mount system\nunmount system\n", "installs nothing"},
    {"mount system\nupdate a a.sig\n", "need the signed index"},
    {PRE "mount system\nupdate a a.sig\n", "need the signed index"},
    {PRE "image full 1\n", "installs nothing"},
    {"image full 1\n", "no index line before it"},
    {PRE "image full 1\nmount system\nupdate a a.sig\nimage full 2\n", "must come before"},
    {PRE "image full 1\nindex i i.sig\n", "more than one index"},
    {PRE "image full 1\nupdate a a.sig\n", "line 4: update a: the system is not mounted"},
    {PRE "image full 1\nmount system\nformat system\nupdate a a.sig\n", "the system is mounted"},
    {PRE "image full 1\nmount system\nmount system\n", "more than one mount"},
    {PRE "image full 1\nunmount system\n", "not mounted"},
    {PRE "image full 1\nformat system\nformat system\nmount system\nupdate a a.sig\n",
     "format system comes once"},
    {PRE "image full 1\nmount system\nupdate recovery_state.json x.sig\n", "reserved"},
    {PRE "image full 1\nmount system\nupdate .hidden x.sig\n", "starts with '.'"},
    {PRE "image full 1\nmount system\nupdate a.part a.part.sig\n", ".part"},
    {"load_keyring sysimage_command x.sig\nformat data\n", "reserved"},
    {"load_keyring last_log k.sig\nformat data\n", "reserved"},
};

static void sequence_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(seq_cases) / sizeof(seq_cases[0]); i++) {
        si_err err = {0};
        const char *t = seq_cases[i].text;
        assert_int_equal(si_command_file_parse(t, strlen(t), &cf, &err), SI_OK);
        si_result r = si_command_file_check(&cf, &err);
        if (!seq_cases[i].msg) {
            if (r != SI_OK)
                print_error("case %zu: %s\n", i, err.msg);
            assert_int_equal(r, SI_OK);
            continue;
        }
        if (r != SI_ERR_COMMAND_FILE || !strstr(err.msg, seq_cases[i].msg))
            print_error("case %zu: got %d \"%s\", want \"%s\"\n", i, r, err.msg,
                        seq_cases[i].msg);
        assert_int_equal(r, SI_ERR_COMMAND_FILE);
        assert_non_null(strstr(err.msg, seq_cases[i].msg));
    }
}

/* The staged names of a job, in order, each with its line; lines without
 * files are passed over. */
static void next_name_walks_the_staged_files(void **state)
{
    (void)state;
    const char *text = "index index.json index.json.sig\n"
                       "image full 12\n"
                       "load_keyring a.keyring a.keyring.sig\n"
                       "format system\n"
                       "mount system\n"
                       "update u.tar u.tar.sig\n"
                       "unmount system\n";
    si_err err = {0};
    assert_int_equal(si_command_file_parse(text, strlen(text), &cf, &err), SI_OK);
    static const char *const want[] = {"index.json", "index.json.sig", "a.keyring",
                                       "a.keyring.sig", "u.tar", "u.tar.sig"};
    static const unsigned line[] = {1, 1, 3, 3, 6, 6};
    size_t pos = 0, n = 0;
    const si_command *c = NULL;
    const char *name;
    while ((name = si_command_file_next_name(&cf, &pos, &c))) {
        assert_true(n < 6);
        assert_string_equal(name, want[n]);
        assert_int_equal(c->line, line[n]);
        n++;
    }
    assert_int_equal(n, 6);
    assert_null(si_command_file_next_name(&cf, &pos, NULL)); /* stays at the end */
    static si_command_file empty; /* large: off the stack */
    pos = 0;
    assert_null(si_command_file_next_name(&empty, &pos, &c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_design_example),
        cmocka_unit_test(malformed_lines_refuse_the_whole_file),
        cmocka_unit_test(limits),
        cmocka_unit_test(add_validates_and_format_round_trips),
        cmocka_unit_test(write_is_atomic_and_loads_back),
        cmocka_unit_test(index_and_image_lines),
        cmocka_unit_test(sequence_rules),
        cmocka_unit_test(next_name_walks_the_staged_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
