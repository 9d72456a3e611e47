/* phasing.c - CPython-compatible MT19937 seeding and the device percentage
 * of phased updates (see phasing.h and docs/formats.md, resolution). */
#include "phasing.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha512.h>

#include "fsutil.h"

#define MT_N 624
#define MT_M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER_MASK 0x80000000U
#define LOWER_MASK 0x7fffffffU

static void init_genrand(si_mt19937 *m, uint32_t s)
{
    m->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        m->mt[i] = 1812433253U * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->mti = MT_N;
}

static void init_by_array(si_mt19937 *m, const uint32_t *key, size_t keylen)
{
    uint32_t *mt = m->mt;
    init_genrand(m, 19650218U);
    size_t i = 1, j = 0;
    size_t k = MT_N > keylen ? MT_N : keylen;
    for (; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            mt[0] = mt[MT_N - 1];
            i = 1;
        }
        if (j >= keylen)
            j = 0;
    }
    for (k = MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            mt[0] = mt[MT_N - 1];
            i = 1;
        }
    }
    mt[0] = 0x80000000U;
}

uint32_t si_mt_genrand_uint32(si_mt19937 *m)
{
    static const uint32_t mag01[2] = {0x0U, MATRIX_A};
    uint32_t *mt = m->mt;
    uint32_t y;
    if (m->mti >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (mt[MT_N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        m->mti = 0;
    }
    y = mt[m->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

si_result si_mt_seed_string(si_mt19937 *m, const char *seed, size_t len, si_err *err)
{
    if (len > SI_PHASING_SEED_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "phasing seed: longer than %d bytes",
                          SI_PHASING_SEED_MAX);
    size_t nbytes = len + 64;
    unsigned char *bytes = malloc(nbytes);
    uint32_t *key = calloc(nbytes / 4 + 1, sizeof(*key));
    if (!bytes || !key) {
        free(bytes);
        free(key);
        return si_err_set(err, SI_ERR_NOMEM, "phasing seed: out of memory");
    }
    memcpy(bytes, seed, len);
    if (mbedtls_sha512_ret((const unsigned char *)seed, len, bytes + len, 0) != 0) {
        free(bytes);
        free(key);
        return si_err_set(err, SI_ERR_INTERNAL, "phasing seed: SHA-512 failed");
    }
    /* The bytes are one big-endian integer: drop its leading zero bytes, then
     * cut 32-bit words from the least significant end. */
    size_t start = 0;
    while (start < nbytes && bytes[start] == 0)
        start++;
    size_t sig = nbytes - start;
    size_t nkey = sig ? (sig + 3) / 4 : 1;
    for (size_t w = 0; w < nkey; w++) {
        uint32_t v = 0;
        for (size_t b = 0; b < 4; b++) {
            size_t off = w * 4 + b; /* byte position from the least significant end */
            if (off < sig)
                v |= (uint32_t)bytes[nbytes - 1 - off] << (8 * b);
        }
        key[w] = v;
    }
    init_by_array(m, key, nkey);
    free(bytes);
    free(key);
    return SI_OK;
}

int si_mt_randint_0_100(si_mt19937 *m)
{
    /* randrange(101): getrandbits(7) until below 101. */
    for (;;) {
        uint32_t r = si_mt_genrand_uint32(m) >> 25;
        if (r < 101)
            return (int)r;
    }
}

si_result si_phased_percentage(const char *channel, int64_t target, const char *machine_id,
                               int *out, si_err *err)
{
    if (!channel || !machine_id)
        return si_err_set(err, SI_ERR_USAGE, "phasing: channel and machine-id are required");
    size_t cl = strlen(channel), ml = strlen(machine_id);
    if (cl > SI_PHASING_SEED_MAX || ml > SI_PHASING_SEED_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "phasing seed: longer than %d bytes",
                          SI_PHASING_SEED_MAX);
    size_t cap = cl + ml + 32;
    char *seed = malloc(cap);
    if (!seed)
        return si_err_set(err, SI_ERR_NOMEM, "phasing seed: out of memory");
    int n = snprintf(seed, cap, "%s.%" PRId64 ".%s", channel, target, machine_id);
    si_mt19937 m;
    si_result r = si_mt_seed_string(&m, seed, (size_t)n, err);
    free(seed);
    if (r != SI_OK)
        return r;
    *out = si_mt_randint_0_100(&m);
    return SI_OK;
}

si_result si_machine_id_read(const char *path, char *out, size_t outlen, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = si_read_file(path, 4096, &buf, &len);
    if (rc == -EFBIG)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than 4096 bytes", path);
    if (rc < 0)
        return si_err_set(err, rc == -ENOENT ? SI_ERR_MISSING_FILE : SI_ERR_IO, "%s: %s", path,
                          strerror(-rc));
    size_t a = 0, b = len;
    while (a < b && isspace((unsigned char)buf[a]))
        a++;
    while (b > a && isspace((unsigned char)buf[b - 1]))
        b--;
    si_result r = SI_OK;
    if (a == b)
        r = si_err_set(err, SI_ERR_PARSE, "%s: empty machine-id", path);
    else if (b - a > SI_MACHINE_ID_MAX || b - a >= outlen)
        r = si_err_set(err, SI_ERR_PARSE, "%s: machine-id longer than %zu bytes", path,
                       (size_t)(outlen - 1 < SI_MACHINE_ID_MAX ? outlen - 1
                                                               : SI_MACHINE_ID_MAX));
    for (size_t i = a; r == SI_OK && i < b; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            r = si_err_set(err, SI_ERR_PARSE, "%s: machine-id has a control byte", path);
    if (r == SI_OK) {
        memcpy(out, buf + a, b - a);
        out[b - a] = '\0';
    }
    free(buf);
    return r;
}
