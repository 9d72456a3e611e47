/* fuzz_ini.c - the INI parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    si_ini *ini = NULL;
    si_err err;
    if (si_ini_parse((const char *)data, size, "fuzz.ini", &ini, &err) == SI_OK) {
        for (size_t i = 0; i < ini->count; i++) {
            const char *v = si_ini_get(ini, ini->entries[i].section, ini->entries[i].key);
            if (!v)
                __builtin_trap();
            int64_t n;
            bool b;
            si_ini_get_int(ini, ini->entries[i].section, ini->entries[i].key, true, 0, 1000, &n,
                           &err);
            si_ini_get_bool(ini, ini->entries[i].section, ini->entries[i].key, true, &b, &err);
        }
        si_ini_free(ini);
    }
    return 0;
}
