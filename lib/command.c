/* command.c - the recovery command file (command.h, docs/formats.md).
 *
 * Grammar (one command per line, words separated by spaces or tabs, '#'
 * starts a comment that runs to the end of the line, blank lines allowed):
 * a verb of the table below and its arguments. <name> is a safe basename
 * inside /cache/recovery/: 1..255 bytes, no '/', not "." or "..", no control
 * characters. <version> is a decimal integer 0..2^53. Anything else - an
 * unknown verb, a wrong number of words, a bad target, an over-long line,
 * too many lines, a NUL or other control byte - refuses the whole file,
 * naming the line. */
#include "command.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "protocol.h"

#define WHAT "command file"
#define MAX_LINE 1024   /* bytes per line, without the newline */
#define MAX_WORDS 4     /* the most any command takes; we report "too many" */
#define MAX_VERSION 9007199254740992LL /* 2^53, as the index's JSON numbers */

#define T(t) (1u << (t))

/* The verbs. Adding one: an entry here, its handler in recovery/run.c. */
static const si_command_verb verbs[SI_CMD_COUNT] = {
    [SI_CMD_LOAD_KEYRING] = {SI_CMD_LOAD_KEYRING, "load_keyring", SI_ARGS_FILES, 0,
                             SI_PLACE_PREAMBLE, 0, true},
    [SI_CMD_INDEX] = {SI_CMD_INDEX, "index", SI_ARGS_FILES, 0, SI_PLACE_PREAMBLE, 1, true},
    [SI_CMD_IMAGE] = {SI_CMD_IMAGE, "image", SI_ARGS_IMAGE, 0, SI_PLACE_PREAMBLE, 0, false},
    [SI_CMD_FORMAT] = {SI_CMD_FORMAT, "format", SI_ARGS_TARGET,
                       T(SI_TARGET_SYSTEM) | T(SI_TARGET_DATA), SI_PLACE_UNMOUNTED, 0, false},
    [SI_CMD_MOUNT] = {SI_CMD_MOUNT, "mount", SI_ARGS_TARGET, T(SI_TARGET_SYSTEM),
                      SI_PLACE_MOUNTS, 1, false},
    [SI_CMD_UPDATE] = {SI_CMD_UPDATE, "update", SI_ARGS_FILES, 0, SI_PLACE_MOUNTED, 0, false},
    [SI_CMD_UNMOUNT] = {SI_CMD_UNMOUNT, "unmount", SI_ARGS_TARGET, T(SI_TARGET_SYSTEM),
                        SI_PLACE_UNMOUNTS, 1, false},
};

static const char *const target_names[] = {
    [SI_TARGET_NONE] = NULL, [SI_TARGET_SYSTEM] = "system", [SI_TARGET_DATA] = "data"};

const si_command_verb *si_command_verb_of(si_cmd_op op)
{
    return (unsigned)op < SI_CMD_COUNT ? &verbs[op] : NULL;
}

static const char *target_name(si_cmd_target t)
{
    return (unsigned)t < sizeof(target_names) / sizeof(target_names[0]) ? target_names[t] : NULL;
}

/* "system or data" */
static void targets_text(unsigned mask, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t pos = 0;
    for (unsigned t = 1; t < sizeof(target_names) / sizeof(target_names[0]); t++) {
        if (!(mask & T(t)))
            continue;
        int n = snprintf(out + pos, outlen - pos, "%s%s", pos ? " or " : "", target_names[t]);
        if (n < 0 || (size_t)n >= outlen - pos)
            return;
        pos += (size_t)n;
    }
}

/* NULL when name is a safe basename, else why not. */
static const char *unsafe_name(const char *name, size_t len)
{
    if (len == 0)
        return "empty file name";
    if (len > SI_COMMAND_NAME_MAX)
        return "file name longer than 255 bytes";
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return "file name may not be '.' or '..'";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/')
            return "file name may not contain '/'";
        if (c < 0x20 || c == 0x7f)
            return "file name has a control character";
    }
    return NULL;
}

typedef struct word {
    const char *p;
    size_t len;
} word;

static bool word_is(const word *w, const char *s)
{
    return strlen(s) == w->len && memcmp(w->p, s, w->len) == 0;
}

static bool parse_version(const word *w, int64_t *out)
{
    if (w->len == 0 || w->len > 16 || (w->len > 1 && w->p[0] == '0'))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < w->len; i++) {
        if (w->p[i] < '0' || w->p[i] > '9')
            return false;
        v = v * 10 + (w->p[i] - '0');
    }
    if (v > MAX_VERSION)
        return false;
    *out = v;
    return true;
}

static const si_command_verb *verb_named(const word *w)
{
    for (size_t i = 0; i < SI_CMD_COUNT; i++)
        if (word_is(w, verbs[i].name))
            return &verbs[i];
    return NULL;
}

static si_result bad_line(si_err *err, unsigned lineno, const char *verb, const char *why,
                          const word *w)
{
    return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: %s: %s \"%.*s\"", lineno, verb,
                      why, (int)(w->len > 64 ? 64 : w->len), w->p);
}

/* Arguments w[1..nw-1] of verb v into cmd. */
static si_result parse_args(const si_command_verb *v, const word *w, size_t nw, unsigned lineno,
                            si_command *cmd, si_err *err)
{
    switch (v->args) {
    case SI_ARGS_FILES:
        if (nw != 3)
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: %s takes 2 arguments, got %zu", lineno, v->name,
                              nw - 1);
        for (size_t k = 1; k < 3; k++) {
            const char *why = unsafe_name(w[k].p, w[k].len);
            if (why)
                return si_err_set(err, SI_ERR_COMMAND_FILE,
                                  WHAT ": line %u: %s argument %zu: %s", lineno, v->name, k, why);
        }
        memcpy(cmd->file, w[1].p, w[1].len);
        cmd->file[w[1].len] = '\0';
        memcpy(cmd->sig, w[2].p, w[2].len);
        cmd->sig[w[2].len] = '\0';
        return SI_OK;
    case SI_ARGS_TARGET: {
        if (nw != 2)
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: %s takes 1 argument, got %zu", lineno, v->name,
                              nw - 1);
        for (unsigned t = 1; t < sizeof(target_names) / sizeof(target_names[0]); t++) {
            if ((v->targets & T(t)) && word_is(&w[1], target_names[t])) {
                cmd->target = (si_cmd_target)t;
                return SI_OK;
            }
        }
        char allowed[64];
        targets_text(v->targets, allowed, sizeof(allowed));
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": line %u: %s: bad target \"%.*s\" (expected %s)", lineno,
                          v->name, (int)(w[1].len > 64 ? 64 : w[1].len), w[1].p, allowed);
    }
    case SI_ARGS_IMAGE:
        if (nw >= 2 && word_is(&w[1], "full") && nw == 3) {
            cmd->full = true;
        } else if (nw >= 2 && word_is(&w[1], "delta") && nw == 4) {
            cmd->full = false;
        } else {
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: image takes \"full <version>\" or "
                              "\"delta <version> <base>\"", lineno);
        }
        if (!parse_version(&w[2], &cmd->version))
            return bad_line(err, lineno, v->name, "bad version", &w[2]);
        if (!cmd->full && !parse_version(&w[3], &cmd->base))
            return bad_line(err, lineno, v->name, "bad base", &w[3]);
        if (!cmd->full && cmd->base >= cmd->version)
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: image delta %" PRId64 " %" PRId64
                              ": the base must be older than the version", lineno, cmd->version,
                              cmd->base);
        return SI_OK;
    }
    return si_err_set(err, SI_ERR_INTERNAL, WHAT ": line %u: %s: no argument rule", lineno,
                      v->name);
}

static si_result parse_line(const char *line, size_t len, unsigned lineno, si_command_file *out,
                            si_err *err)
{
    word w[MAX_WORDS + 1];
    size_t nw = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: control character 0x%02x", lineno, c);
    }
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i >= len || line[i] == '#')
            break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '#')
            i++;
        if (nw > MAX_WORDS)
            return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: too many words",
                              lineno);
        w[nw].p = line + start;
        w[nw].len = i - start;
        nw++;
    }
    if (nw == 0)
        return SI_OK; /* blank or comment */

    const si_command_verb *v = verb_named(&w[0]);
    if (!v)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: unknown command \"%.*s\"",
                          lineno, (int)(w[0].len > 64 ? 64 : w[0].len), w[0].p);
    si_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.op = v->op;
    cmd.line = lineno;
    si_result r = parse_args(v, w, nw, lineno, &cmd, err);
    if (r != SI_OK)
        return r;
    if (out->count >= SI_COMMAND_MAX_LINES)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: more than %d commands",
                          lineno, SI_COMMAND_MAX_LINES);
    out->cmds[out->count++] = cmd;
    return SI_OK;
}

si_result si_command_file_parse(const char *buf, size_t len, si_command_file *out, si_err *err)
{
    out->count = 0;
    if (len > SI_COMMAND_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, WHAT ": %zu bytes exceeds the limit of %d",
                          len, SI_COMMAND_MAX_BYTES);
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        if (lineno > SI_COMMAND_MAX_LINES) {
            out->count = 0;
            return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: more than %d lines",
                              lineno, SI_COMMAND_MAX_LINES);
        }
        if (end - pos > MAX_LINE) {
            out->count = 0;
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: longer than %d bytes", lineno, MAX_LINE);
        }
        si_result r = parse_line(buf + pos, end - pos, lineno, out, err);
        if (r != SI_OK) {
            out->count = 0; /* refused whole */
            return r;
        }
        pos = end + 1;
    }
    return SI_OK;
}

si_result si_command_file_load(const char *path, si_command_file *out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    out->count = 0;
    si_result rd = si_protocol_read_staged(AT_FDCWD, path, SI_COMMAND_MAX_BYTES, &buf, &len,
                                           err);
    if (rd != SI_OK)
        return rd;
    si_result r = si_command_file_parse(buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

/* ---------------------------------------------------------------- sequence */

const char *si_command_file_next_name(const si_command_file *cf, size_t *pos,
                                      const si_command **cmd)
{
    /* *pos is 2 * line index + (0: the file, 1: the signature) */
    for (; *pos / 2 < cf->count; *pos = (*pos / 2 + 1) * 2) {
        const si_command *c = &cf->cmds[*pos / 2];
        const si_command_verb *v = si_command_verb_of(c->op);
        if (!v || v->args != SI_ARGS_FILES)
            continue;
        if (cmd)
            *cmd = c;
        return (*pos)++ % 2 == 0 ? c->file : c->sig;
    }
    return NULL;
}

size_t si_command_file_count(const si_command_file *cf, si_cmd_op op)
{
    size_t n = 0;
    for (size_t i = 0; i < cf->count; i++)
        n += cf->cmds[i].op == op;
    return n;
}

void si_command_describe(const si_command *c, char *out, size_t outlen)
{
    const si_command_verb *v = si_command_verb_of(c->op);
    if (!v) {
        snprintf(out, outlen, "?");
        return;
    }
    switch (v->args) {
    case SI_ARGS_FILES:
        snprintf(out, outlen, "%s %s", v->name, c->file);
        return;
    case SI_ARGS_TARGET:
        snprintf(out, outlen, "%s %s", v->name, target_name(c->target) ? target_name(c->target) : "?");
        return;
    case SI_ARGS_IMAGE:
        if (c->full)
            snprintf(out, outlen, "image full %" PRId64, c->version);
        else
            snprintf(out, outlen, "image delta %" PRId64 " %" PRId64, c->version, c->base);
        return;
    }
    snprintf(out, outlen, "%s", v->name);
}

/* The file arguments' protocol rule: update files are named by the index and
 * may never be a name the protocol owns; keyrings and the index are protocol
 * names, but never the recovery's own files. */
static const char *bad_names(const si_command_verb *v, const si_command *c)
{
    const char *args[2] = {c->file, c->sig};
    for (int k = 0; k < 2; k++) {
        const char *why = si_protocol_reserved_why(args[k]);
        size_t n = strlen(args[k]), pl = strlen(SI_PROTO_PART_SUFFIX);
        bool part = n >= pl && strcmp(args[k] + n - pl, SI_PROTO_PART_SUFFIX) == 0;
        if (!why || (v->reserved_ok && args[k][0] != '.' && !part &&
                     strncmp(args[k], SI_PROTO_COMMAND, strlen(SI_PROTO_COMMAND)) != 0 &&
                     strncmp(args[k], SI_PROTO_STATE, strlen(SI_PROTO_STATE)) != 0 &&
                     strncmp(args[k], SI_PROTO_RESULT, strlen(SI_PROTO_RESULT)) != 0 &&
                     strncmp(args[k], SI_PROTO_LOG, strlen(SI_PROTO_LOG)) != 0))
            continue;
        return why;
    }
    return NULL;
}

static si_result seq_err(si_err *err, const si_command *c, const char *fmt, const char *arg)
{
    char d[SI_COMMAND_NAME_MAX + 64];
    si_command_describe(c, d, sizeof(d));
    char why[256];
    snprintf(why, sizeof(why), fmt, arg);
    return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: %s: %s", c->line, d, why);
}

si_result si_command_file_check(const si_command_file *cf, si_err *err)
{
    if (cf->count == 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": no commands");
    bool mounted = false, acted = false, formatted_system = false;
    unsigned seen[SI_CMD_COUNT] = {0};
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        const si_command_verb *v = si_command_verb_of(c->op);
        if (!v)
            return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: unknown command",
                              c->line);
        seen[c->op]++;
        if (v->max_count && seen[c->op] > v->max_count)
            return seq_err(err, c, "more than one %s line", v->name);
        if (v->args == SI_ARGS_FILES) {
            const char *why = bad_names(v, c);
            if (why)
                return seq_err(err, c, "%s", why);
        }
        switch (v->place) {
        case SI_PLACE_PREAMBLE:
            if (acted)
                return seq_err(err, c, "%s", "must come before format, mount and update");
            if (c->op == SI_CMD_IMAGE && !seen[SI_CMD_INDEX])
                return seq_err(err, c, "%s", "no index line before it");
            if (c->op == SI_CMD_INDEX && seen[SI_CMD_IMAGE])
                return seq_err(err, c, "%s", "must come before the image lines");
            break;
        case SI_PLACE_UNMOUNTED:
            if (mounted)
                return seq_err(err, c, "%s", "the system is mounted");
            if (c->target == SI_TARGET_SYSTEM) {
                if (formatted_system || seen[SI_CMD_MOUNT])
                    return seq_err(err, c, "%s", "format system comes once, before mount");
                formatted_system = true;
            }
            break;
        case SI_PLACE_MOUNTS:
            if (mounted)
                return seq_err(err, c, "%s", "already mounted");
            mounted = true;
            break;
        case SI_PLACE_MOUNTED:
            if (!mounted)
                return seq_err(err, c, "%s", "the system is not mounted (no 'mount system' before)");
            break;
        case SI_PLACE_UNMOUNTS:
            if (!mounted)
                return seq_err(err, c, "%s", "not mounted");
            mounted = false;
            break;
        }
        if (v->place != SI_PLACE_PREAMBLE)
            acted = true;
    }
    size_t nupd = seen[SI_CMD_UPDATE], nidx = seen[SI_CMD_INDEX], nimg = seen[SI_CMD_IMAGE];
    bool format_data = false;
    for (size_t i = 0; i < cf->count; i++)
        format_data |= cf->cmds[i].op == SI_CMD_FORMAT && cf->cmds[i].target == SI_TARGET_DATA;
    if (nupd && (!nidx || !nimg))
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": update lines need the signed index they come from "
                               "(an index line and at least one image line)");
    if (nidx && !nupd)
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": the job names an index but installs nothing (no update line)");
    if (formatted_system && !nupd)
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": format system without an update to install");
    if (!nupd && !format_data)
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": the job installs nothing (no update line, no format data)");
    return SI_OK;
}

/* ---------------------------------------------------------------- writing */

/* Check one command as the parser would; `what` names it in messages. */
static si_result check_command(const si_command *c, const char *what, si_err *err)
{
    const si_command_verb *v = si_command_verb_of(c->op);
    if (!v)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: unknown command %d", what,
                          (int)c->op);
    switch (v->args) {
    case SI_ARGS_FILES: {
        const char *args[2] = {c->file, c->sig};
        for (int k = 0; k < 2; k++) {
            size_t n = strnlen(args[k], SI_COMMAND_NAME_MAX + 1);
            const char *why = unsafe_name(args[k], n);
            if (!why)
                for (size_t i = 0; i < n && !why; i++)
                    if (args[k][i] == ' ' || args[k][i] == '#')
                        why = "file name may not contain ' ' or '#'";
            if (why)
                return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: %s argument %d: %s",
                                  what, v->name, k + 1, why);
        }
        return SI_OK;
    }
    case SI_ARGS_TARGET:
        if ((unsigned)c->target < 32 && (v->targets & T(c->target)))
            return SI_OK;
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: %s: bad target %d", what,
                          v->name, (int)c->target);
    case SI_ARGS_IMAGE:
        if (c->version < 0 || c->version > MAX_VERSION ||
            (!c->full && (c->base < 0 || c->base >= c->version)))
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": %s: image: bad version %" PRId64 " / base %" PRId64, what,
                              c->version, c->base);
        return SI_OK;
    }
    return si_err_set(err, SI_ERR_INTERNAL, WHAT ": %s: no argument rule", what);
}

static si_result append(si_command_file *cf, const si_command *c, si_err *err)
{
    char what[32];
    snprintf(what, sizeof(what), "command %zu", cf->count + 1);
    if (cf->count >= SI_COMMAND_MAX_LINES)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": more than %d commands",
                          SI_COMMAND_MAX_LINES);
    si_result r = check_command(c, what, err);
    if (r != SI_OK)
        return r;
    cf->cmds[cf->count] = *c;
    cf->count++;
    cf->cmds[cf->count - 1].line = (unsigned)cf->count;
    return SI_OK;
}

si_result si_command_file_add(si_command_file *cf, si_cmd_op op, si_cmd_target target,
                              const char *file, const char *sig, si_err *err)
{
    const si_command_verb *v = si_command_verb_of(op);
    if (!v || v->args == SI_ARGS_IMAGE)
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": command %zu: unknown command %d (image lines: "
                               "si_command_file_add_image)", cf->count + 1, (int)op);
    si_command c;
    memset(&c, 0, sizeof(c));
    c.op = op;
    if (v->args == SI_ARGS_FILES) {
        const char *args[2] = {file, sig};
        for (int k = 0; k < 2; k++)
            if (!args[k])
                return si_err_set(err, SI_ERR_COMMAND_FILE,
                                  WHAT ": command %zu: %s argument %d missing", cf->count + 1,
                                  v->name, k + 1);
        if (strlen(file) > SI_COMMAND_NAME_MAX || strlen(sig) > SI_COMMAND_NAME_MAX)
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": command %zu: %s: file name longer than 255 bytes",
                              cf->count + 1, v->name);
        snprintf(c.file, sizeof(c.file), "%s", file);
        snprintf(c.sig, sizeof(c.sig), "%s", sig);
    } else {
        c.target = target;
    }
    return append(cf, &c, err);
}

si_result si_command_file_add_index(si_command_file *cf, const char *file, const char *sig,
                                    si_err *err)
{
    return si_command_file_add(cf, SI_CMD_INDEX, SI_TARGET_NONE, file, sig, err);
}

si_result si_command_file_add_image(si_command_file *cf, bool is_full, int64_t version,
                                    int64_t base, si_err *err)
{
    si_command c;
    memset(&c, 0, sizeof(c));
    c.op = SI_CMD_IMAGE;
    c.full = is_full;
    c.version = version;
    c.base = is_full ? 0 : base;
    return append(cf, &c, err);
}

si_result si_command_file_format(const si_command_file *cf, char **out, si_err *err)
{
    *out = NULL;
    if (cf->count > SI_COMMAND_MAX_LINES)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": more than %d commands",
                          SI_COMMAND_MAX_LINES);
    /* Longest line: "load_keyring " + 2 names + space + newline. */
    size_t cap = cf->count * (13 + 2 * (SI_COMMAND_NAME_MAX + 1) + 1) + 1;
    char *buf = malloc(cap);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, WHAT ": out of memory");
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        const si_command_verb *v = si_command_verb_of(c->op);
        char what[32];
        snprintf(what, sizeof(what), "command %zu", i + 1);
        bool named = v && v->args == SI_ARGS_FILES;
        /* The arrays are fixed-size: make sure they hold a terminated string. */
        if (named && (!memchr(c->file, '\0', sizeof(c->file)) ||
                      !memchr(c->sig, '\0', sizeof(c->sig)))) {
            free(buf);
            return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: unterminated file name",
                              what);
        }
        si_result r = check_command(c, what, err);
        if (r != SI_OK) {
            free(buf);
            return r;
        }
        int n;
        if (named)
            n = snprintf(buf + pos, cap - pos, "%s %s %s\n", v->name, c->file, c->sig);
        else if (v->args == SI_ARGS_TARGET)
            n = snprintf(buf + pos, cap - pos, "%s %s\n", v->name, target_name(c->target));
        else if (c->full)
            n = snprintf(buf + pos, cap - pos, "image full %" PRId64 "\n", c->version);
        else
            n = snprintf(buf + pos, cap - pos, "image delta %" PRId64 " %" PRId64 "\n",
                         c->version, c->base);
        if (n < 0 || (size_t)n >= cap - pos) {
            free(buf);
            return si_err_set(err, SI_ERR_INTERNAL, WHAT ": formatting overflow");
        }
        pos += (size_t)n;
    }
    *out = buf;
    return SI_OK;
}

si_result si_command_file_write(const char *path, const si_command_file *cf, si_err *err)
{
    char *text = NULL;
    si_result r = si_command_file_format(cf, &text, err);
    if (r != SI_OK)
        return r;
    int rc = si_write_file_atomic(path, text, strlen(text), 0600);
    free(text);
    if (rc < 0)
        return si_err_set(err, rc == -ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: %s", path,
                          strerror(-rc));
    return SI_OK;
}
