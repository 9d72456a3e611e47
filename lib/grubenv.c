/* grubenv.c - GRUB environment block (boot control of the reference board).
 *
 * Format (GRUB's lib/envblk.c): the signature "# GRUB Environment Block\n",
 * then "name=value\n" lines where '\\' and '\n' inside a value are escaped
 * with a backslash, then '#' padding up to exactly 1024 bytes; lines starting
 * with '#' are comments (grub-editenv adds one). The block read from a device
 * is untrusted: the parser accepts only that shape (no NUL, no duplicate or
 * malformed names, nothing but '#' after the last line). */
#include "grubenv.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


#define SIG "# GRUB Environment Block\n"
#define SIG_LEN (sizeof(SIG) - 1)

void si_grubenv_init(si_grubenv *env)
{
    memset(env, 0, sizeof(*env));
}

/* GRUB variable names: a letter or '_' first, then letters, digits, '_'. */
static int valid_key(const char *k, size_t n)
{
    if (n == 0 || n >= SI_GRUBENV_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0))
            return 0;
    }
    return 1;
}

static int find(const si_grubenv *env, const char *key)
{
    for (size_t i = 0; i < env->count; i++)
        if (strcmp(env->vars[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* A comment line at *p (grub-editenv writes a warning): *p moves past it;
 * without a newline it is the padding and *p stays. */
static si_result skip_comment(const char *block, size_t len, size_t *p, unsigned line,
                              bool *padding, si_err *err)
{
    const char *nl = memchr(block + *p, '\n', len - *p);
    *padding = !nl;
    if (!nl)
        return SI_OK;
    if (memchr(block + *p, '\0', (size_t)(nl - (block + *p))))
        return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u: NUL byte in a comment", line);
    *p = (size_t)(nl - block) + 1;
    return SI_OK;
}

/* The value at *p of the variable named key (kn bytes), backslash escapes
 * undone, up to its newline; *p moves past the newline. */
static si_result read_value(const char *block, size_t len, size_t *p, unsigned line,
                            const char *key, size_t kn, char value[SI_GRUBENV_VALUE_MAX],
                            si_err *err)
{
    size_t vn = 0;
    for (;;) {
        if (*p >= len)
            return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u: value of '%.*s' not terminated",
                              line, (int)kn, key);
        char c = block[*p];
        if (c == '\n')
            break;
        if (c == '\\') {
            if (++*p >= len)
                return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u: dangling '\\' in '%.*s'",
                                  line, (int)kn, key);
            c = block[*p];
        }
        if (c == '\0')
            return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u: NUL byte in value of '%.*s'",
                              line, (int)kn, key);
        if (vn + 1 >= SI_GRUBENV_VALUE_MAX)
            return si_err_set(err, SI_ERR_TOO_LARGE, "grubenv: line %u: value of '%.*s' over %d bytes",
                              line, (int)kn, key, SI_GRUBENV_VALUE_MAX - 1);
        value[vn++] = c;
        (*p)++;
    }
    value[vn] = '\0';
    (*p)++; /* '\n' */
    return SI_OK;
}

/* One "name=value" line at *p, added to env. */
static si_result parse_var(const char *block, size_t len, size_t *p, unsigned line,
                           si_grubenv *env, si_err *err)
{
    size_t ks = *p;
    while (*p < len && block[*p] != '=' && block[*p] != '\n' && block[*p] != '\0')
        (*p)++;
    if (*p >= len || block[*p] != '=')
        return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u (offset %zu): no '=' after name",
                          line, ks);
    size_t kn = *p - ks;
    if (!valid_key(block + ks, kn))
        return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u (offset %zu): invalid name '%.*s'",
                          line, ks, (int)(kn < 64 ? kn : 64), block + ks);
    (*p)++; /* '=' */
    char value[SI_GRUBENV_VALUE_MAX];
    si_result r = read_value(block, len, p, line, block + ks, kn, value, err);
    if (r != SI_OK)
        return r;
    char key[SI_GRUBENV_KEY_MAX];
    memcpy(key, block + ks, kn);
    key[kn] = '\0';
    if (find(env, key) >= 0)
        return si_err_set(err, SI_ERR_PARSE, "grubenv: line %u: duplicate name '%s'", line, key);
    if (env->count >= SI_GRUBENV_MAX_VARS)
        return si_err_set(err, SI_ERR_TOO_LARGE, "grubenv: line %u: more than %d variables", line,
                          SI_GRUBENV_MAX_VARS);
    strcpy(env->vars[env->count].key, key);
    memcpy(env->vars[env->count].value, value, strlen(value) + 1);
    env->count++;
    return SI_OK;
}

si_result si_grubenv_parse(const char *block, size_t len, si_grubenv *env, si_err *err)
{
    si_grubenv_init(env);
    if (len != SI_GRUBENV_SIZE)
        return si_err_set(err, SI_ERR_PARSE, "grubenv: block is %zu bytes, expected %d", len,
                          SI_GRUBENV_SIZE);
    if (memcmp(block, SIG, SIG_LEN) != 0)
        return si_err_set(err, SI_ERR_PARSE, "grubenv: missing signature '# GRUB Environment Block'");
    size_t p = SIG_LEN;
    for (unsigned line = 2; p < len; line++) {
        bool padding = false;
        si_result r = block[p] == '#' ? skip_comment(block, len, &p, line, &padding, err)
                                      : parse_var(block, len, &p, line, env, err);
        if (r != SI_OK)
            return r;
        if (padding)
            break;
    }
    for (size_t i = p; i < len; i++)
        if (block[i] != '#')
            return si_err_set(err, SI_ERR_PARSE,
                              "grubenv: byte 0x%02x at offset %zu in the padding (expected '#')",
                              (unsigned char)block[i], i);
    return SI_OK;
}

si_result si_grubenv_format(const si_grubenv *env, char block[SI_GRUBENV_SIZE], si_err *err)
{
    size_t p = 0;
    memcpy(block, SIG, SIG_LEN);
    p = SIG_LEN;
    for (size_t i = 0; i < env->count; i++) {
        const char *k = env->vars[i].key, *v = env->vars[i].value;
        size_t kn = strnlen(k, SI_GRUBENV_KEY_MAX);
        if (!valid_key(k, kn))
            return si_err_set(err, SI_ERR_PARSE, "grubenv: invalid name '%.*s'", (int)kn, k);
        size_t need = kn + 2; /* '=' and '\n' */
        size_t vn = strnlen(v, SI_GRUBENV_VALUE_MAX);
        if (vn >= SI_GRUBENV_VALUE_MAX)
            return si_err_set(err, SI_ERR_TOO_LARGE, "grubenv: value of '%s' not terminated", k);
        for (size_t j = 0; j < vn; j++)
            need += (v[j] == '\\' || v[j] == '\n') ? 2 : 1;
        if (p + need > SI_GRUBENV_SIZE)
            return si_err_set(err, SI_ERR_TOO_LARGE,
                              "grubenv: variables do not fit in %d bytes (at '%s')", SI_GRUBENV_SIZE, k);
        memcpy(block + p, k, kn);
        p += kn;
        block[p++] = '=';
        for (size_t j = 0; j < vn; j++) {
            if (v[j] == '\\' || v[j] == '\n')
                block[p++] = '\\';
            block[p++] = v[j];
        }
        block[p++] = '\n';
    }
    memset(block + p, '#', SI_GRUBENV_SIZE - p);
    return SI_OK;
}

const char *si_grubenv_get(const si_grubenv *env, const char *key)
{
    int i = find(env, key);
    return i < 0 ? NULL : env->vars[i].value;
}

si_result si_grubenv_set(si_grubenv *env, const char *key, const char *value, si_err *err)
{
    size_t kn = strlen(key);
    if (!valid_key(key, kn))
        return si_err_set(err, SI_ERR_USAGE, "grubenv: invalid variable name '%s'", key);
    size_t vn = strlen(value);
    if (vn >= SI_GRUBENV_VALUE_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "grubenv: value of '%s' is %zu bytes (max %d)", key,
                          vn, SI_GRUBENV_VALUE_MAX - 1);
    int i = find(env, key);
    if (i < 0) {
        if (env->count >= SI_GRUBENV_MAX_VARS)
            return si_err_set(err, SI_ERR_TOO_LARGE, "grubenv: cannot add '%s': %d variables already",
                              key, SI_GRUBENV_MAX_VARS);
        i = (int)env->count++;
        memcpy(env->vars[i].key, key, kn + 1);
    }
    memcpy(env->vars[i].value, value, vn + 1);
    return SI_OK;
}

void si_grubenv_unset(si_grubenv *env, const char *key)
{
    int i = find(env, key);
    if (i < 0)
        return;
    memmove(&env->vars[i], &env->vars[i + 1], (env->count - (size_t)i - 1) * sizeof(env->vars[0]));
    env->count--;
    memset(&env->vars[env->count], 0, sizeof(env->vars[0]));
}

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

/* Drop the last variable not in keep; false when there is none. */
static bool drop_unknown(si_grubenv *env, const char *const *keep, size_t nkeep)
{
    for (size_t i = env->count; i-- > 0;) {
        if (!in_list(env->vars[i].key, keep, nkeep)) {
            char key[SI_GRUBENV_KEY_MAX];
            memcpy(key, env->vars[i].key, sizeof(key));
            si_grubenv_unset(env, key);
            return true;
        }
    }
    return false;
}

si_result si_grubenv_set_keeping(si_grubenv *env, const char *key, const char *value,
                                 const char *const *keep, size_t nkeep, size_t *dropped,
                                 si_err *err)
{
    size_t n = 0;
    si_result r;
    while ((r = si_grubenv_set(env, key, value, err)) == SI_ERR_TOO_LARGE &&
           env->count >= SI_GRUBENV_MAX_VARS && find(env, key) < 0 &&
           drop_unknown(env, keep, nkeep))
        n++;
    if (r == SI_OK) {
        char block[SI_GRUBENV_SIZE];
        si_err e;
        while ((r = si_grubenv_format(env, block, &e)) == SI_ERR_TOO_LARGE &&
               drop_unknown(env, keep, nkeep))
            n++;
        if (r != SI_OK)
            si_err_set(err, r, "%s", e.msg);
    }
    if (dropped)
        *dropped = n;
    return r;
}

si_result si_grubenv_read_dev(const char *path, si_grubenv *env, si_err *err)
{
    si_grubenv_init(env);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "grubenv: open %s: %s", path, strerror(errno));
    char block[SI_GRUBENV_SIZE];
    size_t got = 0;
    while (got < sizeof(block)) {
        ssize_t r = pread(fd, block + got, sizeof(block) - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return si_err_set(err, SI_ERR_IO, "grubenv: read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got < sizeof(block))
        return si_err_set(err, SI_ERR_PARSE, "grubenv: %s: only %zu bytes, expected %d", path, got,
                          SI_GRUBENV_SIZE);
    si_result r = si_grubenv_parse(block, sizeof(block), env, err);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

si_result si_grubenv_write_dev(const char *path, const si_grubenv *env, si_err *err)
{
    char block[SI_GRUBENV_SIZE];
    si_result r = si_grubenv_format(env, block, err);
    if (r != SI_OK)
        return r;
    /* No O_CREAT/O_TRUNC: the block is rewritten in place in an existing
     * partition (or file), so a power cut leaves the old or the new block. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return si_err_set(err, SI_ERR_IO, "grubenv: open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < sizeof(block)) {
        ssize_t w = pwrite(fd, block + done, sizeof(block) - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            return si_err_set(err, SI_ERR_IO, "grubenv: write %s: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return si_err_set(err, SI_ERR_IO, "grubenv: fsync %s: %s", path, strerror(e));
    }
    if (close(fd) != 0)
        return si_err_set(err, SI_ERR_IO, "grubenv: close %s: %s", path, strerror(errno));
    return SI_OK;
}
