/* phasing.h - the device's phased-update percentage (docs/formats.md, resolution).
 *
 * Bit-exact with system-image 3.x, which does
 *     r = random.Random(); r.seed("<channel>.<target>.<machine-id>")
 *     return r.randint(0, 100)
 * in CPython: the seed string's UTF-8 bytes followed by their SHA-512 digest,
 * read as one big-endian integer, split into 32-bit words least significant
 * first, feed MT19937's init_by_array; randint(0, 100) takes
 * genrand_uint32() >> 25 until the value is below 101. */
#ifndef SI_PHASING_H
#define SI_PHASING_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_PHASING_SEED_MAX 4096       /* bytes of the seed string */
#define SI_MACHINE_ID_MAX 256          /* bytes of a stripped machine-id */
#define SI_MACHINE_ID_PATH "/etc/machine-id"

/* MT19937 as CPython's _random module runs it. */
typedef struct si_mt19937 {
    uint32_t mt[624];
    int mti;
} si_mt19937;

/* CPython random.Random.seed(<str>) for `len` bytes of UTF-8. */
si_result si_mt_seed_string(si_mt19937 *mt, const char *seed, size_t len, si_err *err);
uint32_t si_mt_genrand_uint32(si_mt19937 *mt);
/* CPython random.Random.randint(0, 100) on a seeded generator: 0..100. */
int si_mt_randint_0_100(si_mt19937 *mt);

/* The device percentage for (channel, target build, machine-id): the first
 * randint(0, 100) of random.Random("<channel>.<target>.<machine_id>").
 * Known values: ("ubuntu", 11, "0123456789abcdef") -> 51. */
si_result si_phased_percentage(const char *channel, int64_t target, const char *machine_id,
                               int *out, si_err *err);

/* Read a machine-id file (e.g. SI_MACHINE_ID_PATH), strip surrounding
 * whitespace like system-image does; out holds at least SI_MACHINE_ID_MAX+1
 * bytes. Errors name the path (missing, empty, too long, control bytes). */
si_result si_machine_id_read(const char *path, char *out, size_t outlen, si_err *err);

#endif
