/* config.c - /etc/sysimage/client.ini, the installed build and the machine id.
 *
 *   [service]  base (https URL), channel, device, channel_target, percentage (optional)
 *   [system]   cache_dir, state_dir, machine_id, version_file, boot_control, system_root
 *   [trust]    archive_master, ca_file
 *   [network]  connect_timeout, low_speed_limit, low_speed_time, retries, max_rate,
 *              budget_rate, budget_allowance
 * Unknown keys are refused (a typo must not silently fall back to a default). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "jsonutil.h"
#include "stub.h"

static const char *const known[][2] = {
    {"service", "base"},          {"service", "channel"},        {"service", "device"},
    {"service", "channel_target"}, {"system", "cache_dir"},      {"system", "state_dir"},
    {"system", "machine_id"},     {"system", "version_file"},    {"system", "boot_control"},
    {"system", "system_root"},
    {"trust", "archive_master"},  {"trust", "ca_file"},          {"network", "connect_timeout"},
    {"network", "low_speed_limit"}, {"network", "low_speed_time"}, {"network", "retries"},
    {"network", "max_rate"},      {"network", "budget_rate"},    {"network", "budget_allowance"},
    {"service", "percentage"},
    {"ab", "slot_a"},             {"ab", "slot_b"},              {"ab", "engine"},
    {"ab", "bootcount"},          {"ab", "cmdline"},             {"ab", "work_dir"},
};

void stub_config_free(stub_config *cfg)
{
    si_ini_free(cfg->ini);
    memset(cfg, 0, sizeof(*cfg));
}

static si_result get_long(const stub_config *cfg, const char *section, const char *key,
                          int64_t min, int64_t max, long *out, si_err *err)
{
    int64_t v = *out;
    si_result rc = si_ini_get_int(cfg->ini, section, key, false, min, max, &v, err);
    *out = (long)v;
    return rc;
}

/* Unknown keys are refused: a typo must not silently fall back to a default. */
static si_result check_known_keys(const si_ini *ini, const char *path, si_err *err)
{
    for (size_t i = 0; i < ini->count; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]) && !ok; k++)
            ok = strcmp(ini->entries[i].section, known[k][0]) == 0 &&
                 strcmp(ini->entries[i].key, known[k][1]) == 0;
        if (!ok)
            return si_err_set(err, SI_ERR_PARSE, "%s: line %u: [%s] %s: unknown key", path,
                              ini->entries[i].line, ini->entries[i].section, ini->entries[i].key);
    }
    return SI_OK;
}

static void set_defaults(stub_config *cfg)
{
    cfg->cache_dir = "/cache/recovery";
    cfg->state_dir = "/var/lib/sysimage";
    cfg->machine_id = "/etc/machine-id";
    cfg->version_file = "/etc/sysimage/version.json";
    cfg->boot_control = "/dev/disk/by-partlabel/misc";
    cfg->system_root = "/";
    cfg->archive_master = "/usr/share/sysimage/archive-master.keyring";
    cfg->ca_file = "/etc/ssl/certs/ca-certificates.crt";
    cfg->connect_timeout = 30;
    cfg->low_speed_limit = SI_HTTP_LOW_SPEED_LIMIT;
    cfg->low_speed_time = SI_HTTP_LOW_SPEED_TIME;
    cfg->retries = 3;
    cfg->max_rate = 0;
    cfg->budget_rate = SI_HTTP_BUDGET_RATE;
    cfg->budget_allowance = SI_HTTP_BUDGET_ALLOWANCE;
    cfg->percentage = -1;
}

static si_result read_values(stub_config *cfg, si_err *err)
{
    const si_ini *ini = cfg->ini;
    si_result rc;
    if ((rc = si_ini_get_string(ini, "service", "base", true, &cfg->base_url, err)) ||
        (rc = si_ini_get_string(ini, "service", "channel", true, &cfg->channel, err)) ||
        (rc = si_ini_get_string(ini, "service", "device", true, &cfg->device, err)) ||
        (rc = si_ini_get_string(ini, "service", "channel_target", false, &cfg->channel_target,
                                err)) ||
        (rc = si_ini_get_string(ini, "system", "cache_dir", false, &cfg->cache_dir, err)) ||
        (rc = si_ini_get_string(ini, "system", "state_dir", false, &cfg->state_dir, err)) ||
        (rc = si_ini_get_string(ini, "system", "machine_id", false, &cfg->machine_id, err)) ||
        (rc = si_ini_get_string(ini, "system", "version_file", false, &cfg->version_file,
                                err)) ||
        (rc = si_ini_get_string(ini, "system", "boot_control", false, &cfg->boot_control,
                                err)) ||
        (rc = si_ini_get_string(ini, "system", "system_root", false, &cfg->system_root, err)) ||
        (rc = si_ini_get_string(ini, "trust", "archive_master", false, &cfg->archive_master,
                                err)) ||
        (rc = si_ini_get_string(ini, "trust", "ca_file", false, &cfg->ca_file, err)) ||
        (rc = get_long(cfg, "network", "connect_timeout", 1, 3600, &cfg->connect_timeout,
                       err)) ||
        (rc = get_long(cfg, "network", "low_speed_limit", 1, 1 << 30, &cfg->low_speed_limit,
                       err)) ||
        (rc = get_long(cfg, "network", "low_speed_time", 1, 3600, &cfg->low_speed_time, err)) ||
        (rc = get_long(cfg, "network", "retries", 0, 100, &cfg->retries, err)) ||
        (rc = get_long(cfg, "network", "max_rate", 0, INT64_C(1) << 40, &cfg->max_rate, err)) ||
        (rc = get_long(cfg, "network", "budget_rate", 1, INT64_C(1) << 40, &cfg->budget_rate,
                       err)) ||
        (rc = get_long(cfg, "network", "budget_allowance", 0, 86400, &cfg->budget_allowance,
                       err)) ||
        (rc = get_long(cfg, "service", "percentage", 0, 100, &cfg->percentage, err)))
        return rc;
    if (!cfg->channel_target || !cfg->channel_target[0])
        cfg->channel_target = cfg->channel;
    return SI_OK;
}

/* https only, absolute paths of bounded length, a plain device name. */
static si_result check_values(const stub_config *cfg, const char *path, si_err *err)
{
    if (strncmp(cfg->base_url, "https://", 8) != 0)
        return si_err_set(err, SI_ERR_PARSE, "%s: [service] base: must be an https:// URL, not '%s'",
                          path, cfg->base_url);
    const char *paths[][2] = {{"cache_dir", cfg->cache_dir},   {"state_dir", cfg->state_dir},
                              {"machine_id", cfg->machine_id}, {"version_file", cfg->version_file},
                              {"boot_control", cfg->boot_control},
                              {"system_root", cfg->system_root},
                              {"archive_master", cfg->archive_master}, {"ca_file", cfg->ca_file}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strlen(paths[i][1]) > 1024)
            return si_err_set(err, SI_ERR_PARSE, "%s: %s: path longer than 1024 bytes", path,
                              paths[i][0]);
        if (paths[i][1][0] != '/')
            return si_err_set(err, SI_ERR_PARSE, "%s: %s: must be an absolute path, not '%s'",
                              path, paths[i][0], paths[i][1]);
    }
    for (const char *p = cfg->device; *p; p++)
        if (*p == '/' || (*p == '.' && p == cfg->device))
            return si_err_set(err, SI_ERR_PARSE, "%s: [service] device: invalid name '%s'", path,
                              cfg->device);
    return SI_OK;
}

si_result stub_config_load(const char *path, stub_config *cfg, si_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = path;
    si_result rc = si_ini_load(path, &cfg->ini, err);
    if (rc != SI_OK)
        return si_err_prefix(err, "config");
    set_defaults(cfg);
    if ((rc = check_known_keys(cfg->ini, path, err)) != SI_OK ||
        (rc = read_values(cfg, err)) != SI_OK || (rc = check_values(cfg, path, err)) != SI_OK)
        stub_config_free(cfg);
    return rc;
}

si_result stub_read_build(const stub_config *cfg, int64_t *build, si_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r = si_read_file(cfg->version_file, 4096, &buf, &len);
    if (r < 0)
        return si_err_set(err, r == -ENOENT ? SI_ERR_NOT_FOUND : SI_ERR_IO,
                          "version file %s: %s (use --build N to override)", cfg->version_file,
                          strerror(-r));
    cJSON *root = NULL;
    si_result rc = si_json_parse(buf, len, 4096, cfg->version_file, &root, err);
    free(buf);
    if (rc != SI_OK)
        return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_PARSE, "%s: expected an object", cfg->version_file);
    }
    rc = si_json_get_int(root, "", "build", true, 0, INT64_C(1) << 53, build, NULL, err);
    cJSON_Delete(root);
    if (rc != SI_OK)
        return si_err_prefix(err, "%s", cfg->version_file);
    return SI_OK;
}
