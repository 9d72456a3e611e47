/* bootctl.c - boot control over the GRUB environment block (lib/grubenv). */
#include <stdlib.h>
#include <string.h>

#include "bootctl.h"
#include "grubenv.h"

const char *stub_boot_request_name(stub_boot_request req)
{
    switch (req) {
    case STUB_BOOT_UPDATE:
        return "1";
    case STUB_BOOT_FACTORY_RESET:
        return "factory-reset";
    default:
        return "0";
    }
}

si_result stub_bootctl_set(const char *device, stub_boot_request req, si_err *err)
{
    si_grubenv env;
    si_result rc = si_grubenv_read_dev(device, &env, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "boot control %s", device);
    if ((rc = si_grubenv_set(&env, "recovery_request", stub_boot_request_name(req), err)) != SI_OK)
        return si_err_prefix(err, "boot control %s", device);
    if (req != STUB_BOOT_NORMAL &&
        (rc = si_grubenv_set(&env, "recovery_tries", "0", err)) != SI_OK)
        return si_err_prefix(err, "boot control %s", device);
    if ((rc = si_grubenv_write_dev(device, &env, err)) != SI_OK)
        return si_err_prefix(err, "boot control %s", device);
    return SI_OK;
}

si_result stub_bootctl_get(const char *device, stub_boot_request *req, long *tries, si_err *err)
{
    si_grubenv env;
    si_result rc = si_grubenv_read_dev(device, &env, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "boot control %s", device);
    const char *v = si_grubenv_get(&env, "recovery_request");
    *req = STUB_BOOT_NORMAL;
    if (v && strcmp(v, "1") == 0)
        *req = STUB_BOOT_UPDATE;
    else if (v && strcmp(v, "factory-reset") == 0)
        *req = STUB_BOOT_FACTORY_RESET;
    else if (v && strcmp(v, "0") != 0 && v[0])
        return si_err_set(err, SI_ERR_PARSE, "boot control %s: recovery_request: unknown value '%s'",
                          device, v);
    const char *t = si_grubenv_get(&env, "recovery_tries");
    *tries = -1;
    if (t && t[0]) {
        char *end;
        long x = strtol(t, &end, 10);
        if (*end || x < 0)
            return si_err_set(err, SI_ERR_PARSE, "boot control %s: recovery_tries: not a count: '%s'",
                              device, t);
        *tries = x;
    }
    return SI_OK;
}
