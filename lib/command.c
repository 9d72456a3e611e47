/* command.c - the recovery command file (DESIGN §7).
 *
 * Grammar (one command per line, words separated by spaces or tabs, '#'
 * starts a comment that runs to the end of the line, blank lines allowed):
 *   load_keyring <name> <name>
 *   update <name> <name>
 *   format system|data
 *   mount system
 *   unmount system
 * <name> is a safe basename inside /cache/recovery/: 1..255 bytes, no '/',
 * not "." or "..", no control characters. Anything else - an unknown command,
 * a wrong number of words, a bad target, an over-long line, too many lines,
 * a NUL or other control byte - refuses the whole file, naming the line. */
#include "command.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

#define WHAT "command file"
#define MAX_LINE 1024   /* bytes per line, without the newline */
#define MAX_WORDS 4     /* more than any command takes; we report "too many" */

static const char *op_name(si_cmd_op op)
{
    switch (op) {
    case SI_CMD_LOAD_KEYRING: return "load_keyring";
    case SI_CMD_FORMAT: return "format";
    case SI_CMD_MOUNT: return "mount";
    case SI_CMD_UPDATE: return "update";
    case SI_CMD_UNMOUNT: return "unmount";
    }
    return NULL;
}

static const char *target_name(si_cmd_target t)
{
    switch (t) {
    case SI_TARGET_SYSTEM: return "system";
    case SI_TARGET_DATA: return "data";
    case SI_TARGET_NONE: break;
    }
    return NULL;
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

    si_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.line = lineno;
    size_t want;
    if (word_is(&w[0], "load_keyring")) {
        cmd.op = SI_CMD_LOAD_KEYRING;
        want = 3;
    } else if (word_is(&w[0], "update")) {
        cmd.op = SI_CMD_UPDATE;
        want = 3;
    } else if (word_is(&w[0], "format")) {
        cmd.op = SI_CMD_FORMAT;
        want = 2;
    } else if (word_is(&w[0], "mount")) {
        cmd.op = SI_CMD_MOUNT;
        want = 2;
    } else if (word_is(&w[0], "unmount")) {
        cmd.op = SI_CMD_UNMOUNT;
        want = 2;
    } else {
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": line %u: unknown command \"%.*s\"",
                          lineno, (int)(w[0].len > 64 ? 64 : w[0].len), w[0].p);
    }
    if (nw != want)
        return si_err_set(err, SI_ERR_COMMAND_FILE,
                          WHAT ": line %u: %s takes %zu argument%s, got %zu", lineno,
                          op_name(cmd.op), want - 1, want == 2 ? "" : "s", nw - 1);
    if (want == 2) {
        if (word_is(&w[1], "system"))
            cmd.target = SI_TARGET_SYSTEM;
        else if (cmd.op == SI_CMD_FORMAT && word_is(&w[1], "data"))
            cmd.target = SI_TARGET_DATA;
        else
            return si_err_set(err, SI_ERR_COMMAND_FILE,
                              WHAT ": line %u: %s: bad target \"%.*s\" (expected %s)", lineno,
                              op_name(cmd.op), (int)(w[1].len > 64 ? 64 : w[1].len), w[1].p,
                              cmd.op == SI_CMD_FORMAT ? "system or data" : "system");
    } else {
        for (size_t k = 1; k < 3; k++) {
            const char *why = unsafe_name(w[k].p, w[k].len);
            if (why)
                return si_err_set(err, SI_ERR_COMMAND_FILE,
                                  WHAT ": line %u: %s argument %zu: %s", lineno,
                                  op_name(cmd.op), k, why);
        }
        memcpy(cmd.file, w[1].p, w[1].len);
        cmd.file[w[1].len] = '\0';
        memcpy(cmd.sig, w[2].p, w[2].len);
        cmd.sig[w[2].len] = '\0';
    }
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
    si_result rd = si_read_file_checked(path, SI_COMMAND_MAX_BYTES, &buf, &len, err);
    if (rd != SI_OK)
        return rd;
    si_result r = si_command_file_parse(buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

/* Check one command as the parser would; `what` names it in messages. */
static si_result check_command(si_cmd_op op, si_cmd_target target, const char *file,
                               const char *sig, const char *what, si_err *err)
{
    const char *name = op_name(op);
    if (!name)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: unknown command %d", what,
                          (int)op);
    if (op == SI_CMD_LOAD_KEYRING || op == SI_CMD_UPDATE) {
        const char *args[2] = {file, sig};
        for (int k = 0; k < 2; k++) {
            if (!args[k])
                return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: %s argument %d missing",
                                  what, name, k + 1);
            size_t n = strnlen(args[k], SI_COMMAND_NAME_MAX + 1);
            const char *why = unsafe_name(args[k], n);
            if (!why)
                for (size_t i = 0; i < n && !why; i++)
                    if (args[k][i] == ' ' || args[k][i] == '#')
                        why = "file name may not contain ' ' or '#'";
            if (why)
                return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: %s argument %d: %s",
                                  what, name, k + 1, why);
        }
        return SI_OK;
    }
    if (target == SI_TARGET_SYSTEM || (op == SI_CMD_FORMAT && target == SI_TARGET_DATA))
        return SI_OK;
    return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: %s: bad target %d", what, name,
                      (int)target);
}

si_result si_command_file_add(si_command_file *cf, si_cmd_op op, si_cmd_target target,
                              const char *file, const char *sig, si_err *err)
{
    char what[32];
    snprintf(what, sizeof(what), "command %zu", cf->count + 1);
    if (cf->count >= SI_COMMAND_MAX_LINES)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": more than %d commands",
                          SI_COMMAND_MAX_LINES);
    si_result r = check_command(op, target, file, sig, what, err);
    if (r != SI_OK)
        return r;
    si_command *c = &cf->cmds[cf->count];
    memset(c, 0, sizeof(*c));
    c->op = op;
    if (op == SI_CMD_LOAD_KEYRING || op == SI_CMD_UPDATE) {
        c->target = SI_TARGET_NONE;
        snprintf(c->file, sizeof(c->file), "%s", file);
        snprintf(c->sig, sizeof(c->sig), "%s", sig);
    } else {
        c->target = target;
    }
    cf->count++;
    c->line = (unsigned)cf->count;
    return SI_OK;
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
        char what[32];
        snprintf(what, sizeof(what), "command %zu", i + 1);
        bool named = c->op == SI_CMD_LOAD_KEYRING || c->op == SI_CMD_UPDATE;
        /* The arrays are fixed-size: make sure they hold a terminated string. */
        if (named && (!memchr(c->file, '\0', sizeof(c->file)) ||
                      !memchr(c->sig, '\0', sizeof(c->sig)))) {
            free(buf);
            return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": %s: unterminated file name",
                              what);
        }
        si_result r = check_command(c->op, c->target, c->file, c->sig, what, err);
        if (r != SI_OK) {
            free(buf);
            return r;
        }
        int n;
        if (named)
            n = snprintf(buf + pos, cap - pos, "%s %s %s\n", op_name(c->op), c->file, c->sig);
        else
            n = snprintf(buf + pos, cap - pos, "%s %s\n", op_name(c->op),
                         target_name(c->target));
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
