/* sigfile.c - detached signature files (docs/design.md §3). */
#include "sigfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "fsutil.h"

#define SIG_MAGIC "sysimage-signature 1"
#define SIG_PATH_MAX 4096

/* Parser state: which line of a stanza comes next. */
enum want { WANT_MAGIC, WANT_KEY_ID, WANT_ALGORITHM, WANT_SIGNATURE };

static const char *want_name(enum want w)
{
    switch (w) {
    case WANT_MAGIC:
        return "'" SIG_MAGIC "'";
    case WANT_KEY_ID:
        return "'key-id'";
    case WANT_ALGORITHM:
        return "'algorithm'";
    case WANT_SIGNATURE:
        return "'signature'";
    }
    return "?";
}

/* If line (len n) is "<field> <value>", return the value and its length. */
static const char *field_value(const char *line, size_t n, const char *field, size_t *vlen)
{
    size_t fl = strlen(field);
    if (n <= fl + 1 || memcmp(line, field, fl) != 0 || line[fl] != ' ')
        return NULL;
    *vlen = n - fl - 1;
    return line + fl + 1;
}

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

/* "-----BEGIN SIGNATURE-----" (or a blank line between stanzas): a new stanza. */
static si_result parse_magic(const char *line, size_t n, size_t lineno, enum want *want,
                             si_sigfile *out, si_err *err)
{
    if (n == 0)
        return SI_OK; /* blank line between stanzas */
    if (n != strlen(SIG_MAGIC) || memcmp(line, SIG_MAGIC, n) != 0)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: expected '" SIG_MAGIC "'", lineno);
    if (out->count >= SI_SIGFILE_MAX_STANZAS)
        return si_err_set(err, SI_ERR_TOO_LARGE, "line %zu: more than %d signature stanzas",
                          lineno, SI_SIGFILE_MAX_STANZAS);
    memset(&out->stanzas[out->count], 0, sizeof(out->stanzas[0]));
    *want = WANT_KEY_ID;
    return SI_OK;
}

/* The key id (64 hex digits), kept in lowercase. */
static si_result parse_key_id(const char *v, size_t vlen, size_t lineno, si_sig_stanza *st,
                              si_err *err)
{
    if (vlen != SI_KEY_ID_LEN)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: key-id must be %d hex digits", lineno,
                          SI_KEY_ID_LEN);
    for (size_t i = 0; i < vlen; i++) {
        char c = v[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return si_err_set(err, SI_ERR_PARSE, "line %zu: key-id is not hexadecimal", lineno);
        st->key_id[i] = c;
    }
    st->key_id[vlen] = '\0';
    return SI_OK;
}

/* The algorithm's name. Names of algorithms this version does not know are
 * kept (such a stanza never verifies) so that a file signed during a
 * migration to a new algorithm still verifies through its other stanzas. */
static si_result parse_algorithm(const char *v, size_t vlen, size_t lineno, si_sig_stanza *st,
                                 si_err *err)
{
    if (vlen >= sizeof(st->algorithm))
        return si_err_set(err, SI_ERR_PARSE, "line %zu: algorithm name longer than %zu", lineno,
                          sizeof(st->algorithm) - 1);
    for (size_t i = 0; i < vlen; i++)
        if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
            return si_err_set(err, SI_ERR_PARSE,
                              "line %zu: algorithm name must be [a-z0-9-] (e.g. "
                              SI_ALG_ECDSA_P256 ", " SI_ALG_RSA_PSS ")",
                              lineno);
    memcpy(st->algorithm, v, vlen);
    st->algorithm[vlen] = '\0';
    return SI_OK;
}

/* The signature: canonical padded base64 only (whole quanta, '=' only at
 * the end), decoded. */
static si_result parse_signature(const char *v, size_t vlen, size_t lineno, si_sig_stanza *st,
                                 si_err *err)
{
    for (size_t i = 0; i < vlen; i++)
        if (!is_b64_char(v[i]))
            return si_err_set(err, SI_ERR_PARSE, "line %zu: signature is not base64", lineno);
    size_t pad = 0;
    while (pad < vlen && pad < 3 && v[vlen - 1 - pad] == '=')
        pad++;
    if (vlen % 4 != 0 || pad > 2 || memchr(v, '=', vlen - pad))
        return si_err_set(err, SI_ERR_PARSE, "line %zu: signature is not valid base64", lineno);
    size_t olen = 0;
    int rc = mbedtls_base64_decode(st->sig, sizeof(st->sig), &olen, (const unsigned char *)v,
                                   vlen);
    if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: signature longer than %d bytes", lineno,
                          SI_KEY_MAX_SIG_LEN);
    if (rc != 0)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: signature is not valid base64", lineno);
    if (olen == 0)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: empty signature", lineno);
    st->sig_len = olen;
    return SI_OK;
}

/* The fields of a stanza, in order after the magic line. */
static const struct {
    const char *name, *expected; /* "<name> <expected>" */
    si_result (*parse)(const char *v, size_t vlen, size_t lineno, si_sig_stanza *st, si_err *err);
} fields[] = {
    [WANT_KEY_ID] = {"key-id", "<64 hex digits>", parse_key_id},
    [WANT_ALGORITHM] = {"algorithm", "<name>", parse_algorithm},
    [WANT_SIGNATURE] = {"signature", "<base64>", parse_signature},
};

/* One line of a stanza: what *want says comes next, then the next want. */
static si_result parse_line(const char *line, size_t n, size_t lineno, enum want *want,
                            si_sigfile *out, si_err *err)
{
    if (*want == WANT_MAGIC)
        return parse_magic(line, n, lineno, want, out, err);
    size_t vlen = 0;
    const char *v = field_value(line, n, fields[*want].name, &vlen);
    if (!v)
        return si_err_set(err, SI_ERR_PARSE, "line %zu: expected '%s %s'", lineno,
                          fields[*want].name, fields[*want].expected);
    si_result r = fields[*want].parse(v, vlen, lineno, &out->stanzas[out->count], err);
    if (r != SI_OK)
        return r;
    if (*want == WANT_SIGNATURE)
        out->count++; /* the stanza is complete */
    *want = *want == WANT_SIGNATURE ? WANT_MAGIC : (enum want)(*want + 1);
    return SI_OK;
}

si_result si_sigfile_parse(const char *buf, size_t len, si_sigfile *out, si_err *err)
{
    out->count = 0;
    if (len > SI_SIGFILE_MAX_BYTES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "signature file larger than %d bytes",
                          SI_SIGFILE_MAX_BYTES);
    if (memchr(buf, '\0', len))
        return si_err_set(err, SI_ERR_PARSE, "signature file contains a NUL byte");
    enum want want = WANT_MAGIC;
    size_t lineno = 0, pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        si_result r = parse_line(line, n, lineno, &want, out, err);
        if (r != SI_OK) {
            out->count = 0;
            return r;
        }
    }
    if (want != WANT_MAGIC) {
        out->count = 0;
        return si_err_set(err, SI_ERR_PARSE, "line %zu: truncated stanza, expected %s", lineno + 1,
                          want_name(want));
    }
    if (out->count == 0)
        return si_err_set(err, SI_ERR_PARSE, "no signature stanza");
    return SI_OK;
}

si_result si_sigfile_read(const char *path, si_sigfile *out, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    out->count = 0;
    si_result rd = si_read_file_checked(path, SI_SIGFILE_MAX_BYTES, &buf, &len, err);
    if (rd != SI_OK)
        return rd;
    si_result r = si_sigfile_parse(buf, len, out, err);
    free(buf);
    if (r != SI_OK)
        si_err_prefix(err, "%s", path);
    return r;
}

si_result si_sigfile_format(const si_sigfile *sf, char **out, size_t *len, si_err *err)
{
    if (sf->count == 0 || sf->count > SI_SIGFILE_MAX_STANZAS)
        return si_err_set(err, SI_ERR_INTERNAL, "signature file with %zu stanzas", sf->count);
    /* Per stanza: fixed text, 64 hex, algorithm, base64 of <= 1024 bytes. */
    size_t per = 128 + SI_KEY_ID_LEN + 32 + 4 * ((SI_KEY_MAX_SIG_LEN + 2) / 3) + 4;
    size_t cap = per * sf->count + 1;
    char *buf = malloc(cap);
    if (!buf)
        return si_err_set(err, SI_ERR_NOMEM, "signature file: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < sf->count; i++) {
        const si_sig_stanza *st = &sf->stanzas[i];
        if (st->sig_len == 0 || st->sig_len > SI_KEY_MAX_SIG_LEN) {
            free(buf);
            return si_err_set(err, SI_ERR_INTERNAL, "signature stanza %zu: length %zu", i + 1,
                              st->sig_len);
        }
        n += (size_t)snprintf(buf + n, cap - n, "%s" SIG_MAGIC "\nkey-id %s\nalgorithm %s\nsignature ",
                              i ? "\n" : "", st->key_id, st->algorithm);
        size_t olen = 0;
        if (mbedtls_base64_encode((unsigned char *)buf + n, cap - n, &olen, st->sig, st->sig_len) !=
            0) {
            free(buf);
            return si_err_set(err, SI_ERR_INTERNAL, "signature stanza %zu: base64", i + 1);
        }
        n += olen;
        buf[n++] = '\n';
        buf[n] = '\0';
    }
    *out = buf;
    if (len)
        *len = n;
    return SI_OK;
}

si_result si_sigfile_write(const char *path, const si_sigfile *sf, si_err *err)
{
    char *text = NULL;
    size_t len = 0;
    si_result r = si_sigfile_format(sf, &text, &len, err);
    if (r != SI_OK) {
        si_err_prefix(err, "%s", path);
        return r;
    }
    int rc = si_write_file_atomic(path, text, len, 0644);
    free(text);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    return SI_OK;
}

si_result si_sigfile_add(si_sigfile *sf, const si_key *priv, const uint8_t digest[SI_SHA256_LEN],
                         si_err *err)
{
    if (sf->count >= SI_SIGFILE_MAX_STANZAS)
        return si_err_set(err, SI_ERR_TOO_LARGE, "signature file already has %d stanzas",
                          SI_SIGFILE_MAX_STANZAS);
    si_sig_stanza *st = &sf->stanzas[sf->count];
    memset(st, 0, sizeof(*st));
    si_result r = si_key_sign_digest(priv, digest, st->sig, sizeof(st->sig), &st->sig_len, err);
    if (r != SI_OK)
        return r;
    snprintf(st->key_id, sizeof(st->key_id), "%s", si_key_id(priv));
    snprintf(st->algorithm, sizeof(st->algorithm), "%s", si_key_algorithm(priv));
    sf->count++;
    return SI_OK;
}

si_result si_sign_file(const char *path, const si_key *priv, bool append, si_err *err)
{
    char sigpath[SIG_PATH_MAX];
    if ((size_t)snprintf(sigpath, sizeof(sigpath), "%s.sig", path) >= sizeof(sigpath))
        return si_err_set(err, SI_ERR_USAGE, "%s: path too long", path);
    uint8_t digest[SI_SHA256_LEN];
    int rc = si_sha256_file(path, digest, NULL);
    if (rc == -ENOENT)
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: no such file", path);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    si_sigfile *sf = calloc(1, sizeof(*sf));
    if (!sf)
        return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", sigpath);
    si_result r = SI_OK;
    if (append) {
        si_err e2 = {0};
        r = si_sigfile_read(sigpath, sf, &e2);
        if (r == SI_ERR_MISSING_FILE) {
            sf->count = 0;
            r = SI_OK;
        } else if (r != SI_OK) {
            if (err)
                *err = e2;
            free(sf);
            return r;
        }
        /* Replace a stanza by the same key. */
        size_t w = 0;
        for (size_t i = 0; i < sf->count; i++)
            if (strcmp(sf->stanzas[i].key_id, si_key_id(priv)) != 0)
                sf->stanzas[w++] = sf->stanzas[i];
        sf->count = w;
    }
    r = si_sigfile_add(sf, priv, digest, err);
    if (r == SI_OK)
        r = si_sigfile_write(sigpath, sf, err);
    else
        si_err_prefix(err, "%s", sigpath);
    free(sf);
    return r;
}
