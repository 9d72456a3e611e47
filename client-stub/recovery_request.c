/* recovery_request.c - `reboot-recovery`, `factory-reset` and `status`. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootctl.h"
#include "command.h"
#include "fsutil.h"
#include "jsonutil.h"
#include "stub.h"

#define RESULT_MAX_BYTES (64 * 1024)

static si_result do_reboot(si_err *err)
{
    sync();
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/systemctl", "systemctl", "reboot", (char *)NULL);
        execl("/usr/bin/systemctl", "systemctl", "reboot", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
        return SI_OK;
    /* No systemd (or it refused): ask the kernel directly. */
    sync();
    if (reboot(RB_AUTOBOOT) < 0)
        return si_err_set(err, SI_ERR_IO, "reboot: %s", strerror(errno));
    return SI_OK;
}

int stub_cmd_reboot_recovery(const stub_opts *o, bool factory_reset)
{
    stub_config cfg;
    si_err err = {0};
    si_result rc = stub_config_load(o->config, &cfg, &err);
    if (rc != SI_OK)
        return stub_fail(&err, o->json);
    char cmdpath[PATH_CAP], staged[PATH_CAP];
    snprintf(cmdpath, sizeof(cmdpath), "%s/%s", cfg.cache_dir, STUB_COMMAND_FILE);
    snprintf(staged, sizeof(staged), "%s/%s", cfg.cache_dir, STUB_STAGED_FILE);
    if (factory_reset) {
        si_command_file cf;
        memset(&cf, 0, sizeof(cf));
        rc = si_command_file_add(&cf, SI_CMD_FORMAT, SI_TARGET_DATA, NULL, NULL, &err);
        int r = rc == SI_OK ? si_mkdir_p(cfg.cache_dir, 0755) : 0;
        if (r < 0)
            rc = si_err_set(&err, SI_ERR_IO, "cache dir %s: %s", cfg.cache_dir, strerror(-r));
        if (rc == SI_OK && unlink(staged) < 0 && errno != ENOENT)
            rc = si_err_set(&err, SI_ERR_IO, "%s: %s", staged, strerror(errno));
        if (rc == SI_OK)
            rc = si_command_file_write(cmdpath, &cf, &err);
    } else {
        /* Only a command file the recovery can parse is worth a reboot. */
        si_command_file *cf = calloc(1, sizeof(*cf));
        if (!cf)
            rc = si_err_set(&err, SI_ERR_NOMEM, "out of memory");
        else if ((rc = si_command_file_load(cmdpath, cf, &err)) != SI_OK ||
                 (rc = si_command_file_check(cf, &err)) != SI_OK)
            si_err_prefix(&err, "nothing to do in recovery (run 'sysimage-stub stage' first)");
        free(cf);
    }
    if (rc == SI_OK)
        rc = stub_bootctl_set(cfg.boot_control,
                              factory_reset ? STUB_BOOT_FACTORY_RESET : STUB_BOOT_UPDATE, &err);
    if (rc == SI_OK) {
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            if (j && (!cJSON_AddStringToObject(j, "recovery_request",
                                               factory_reset ? SI_BOOT_REQUEST_FACTORY_RESET
                                                             : SI_BOOT_REQUEST_UPDATE) ||
                      !cJSON_AddBoolToObject(j, "reboot", !o->no_reboot))) {
                cJSON_Delete(j);
                j = NULL;
            }
            stub_print_json_line(j);
        } else
            printf("recovery requested (%s)%s\n", factory_reset ? "factory reset" : "update",
                   o->no_reboot ? "; reboot when ready" : "; rebooting");
        fflush(stdout);
        if (!o->no_reboot)
            rc = do_reboot(&err);
    }
    stub_config_free(&cfg);
    return rc == SI_OK ? SI_OK : stub_fail(&err, o->json);
}

/* Read a small JSON object file; NULL if absent or unreadable (reason in *why). */
static cJSON *read_json(const char *path, char *why, size_t whylen)
{
    char *buf = NULL;
    size_t len = 0;
    si_err err = {0};
    /* The recovery's files: never follow a symlink or block on a FIFO. */
    si_result rc = si_protocol_read_staged(AT_FDCWD, path, RESULT_MAX_BYTES, &buf, &len, &err);
    if (rc != SI_OK) {
        snprintf(why, whylen, "%s", access(path, F_OK) < 0 && errno == ENOENT ? "none" : err.msg);
        return NULL;
    }
    cJSON *root = NULL;
    rc = si_json_parse(buf, len, RESULT_MAX_BYTES, path, &root, &err);
    free(buf);
    if (rc != SI_OK) {
        snprintf(why, whylen, "%s", err.msg);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(why, whylen, "%s: not an object", path);
        return NULL;
    }
    return root;
}

/* What `status` reports. */
typedef struct status_info {
    int64_t build;               /* -1: unknown (why in berr) */
    si_err berr;
    bool has_cmd;
    char cmdpath[PATH_CAP];
    cJSON *staged;               /* staged.json, NULL if none */
    cJSON *result;               /* last_result.json, NULL if none */
    char why_r[SI_ERR_MSG_MAX];
    bool bc_ok;
    stub_boot_request req;
    si_err bcerr;
    cJSON *ab;                   /* A/B slots (install.c), NULL: not an A/B device */
} status_info;

static void gather_status(const stub_opts *o, const stub_config *cfg, status_info *st)
{
    char staged[PATH_CAP], result[PATH_CAP], why_s[SI_ERR_MSG_MAX];
    st->build = -1;
    if (o->has_build)
        st->build = o->build;
    else if (stub_read_build(cfg, &st->build, &st->berr) != SI_OK)
        st->build = -1;
    snprintf(st->cmdpath, sizeof(st->cmdpath), "%s/%s", cfg->cache_dir, STUB_COMMAND_FILE);
    snprintf(staged, sizeof(staged), "%s/%s", cfg->cache_dir, STUB_STAGED_FILE);
    snprintf(result, sizeof(result), "%s/%s", cfg->cache_dir, STUB_LAST_RESULT);
    st->has_cmd = access(st->cmdpath, F_OK) == 0;
    st->staged = st->has_cmd ? read_json(staged, why_s, sizeof(why_s)) : NULL;
    st->result = read_json(result, st->why_r, sizeof(st->why_r));
    long tries = -1;
    st->req = STUB_BOOT_NORMAL;
    st->bc_ok = stub_bootctl_get(cfg->boot_control, &st->req, &tries, &st->bcerr) == SI_OK;
    st->ab = stub_ab_state(cfg);
}

static cJSON *add_or_null(cJSON *obj, const char *key, cJSON *item)
{
    return item ? (cJSON_AddItemToObject(obj, key, item) ? item : NULL)
                : cJSON_AddNullToObject(obj, key);
}

static si_result print_status_json(const stub_config *cfg, const status_info *st, si_err *err)
{
    cJSON *out = cJSON_CreateObject();
    bool ok = out &&
              add_or_null(out, "build", st->build >= 0 ? cJSON_CreateNumber((double)st->build)
                                                       : NULL) &&
              cJSON_AddStringToObject(out, "channel", cfg->channel) &&
              cJSON_AddStringToObject(out, "device", cfg->device) &&
              cJSON_AddBoolToObject(out, "command_file", st->has_cmd) &&
              add_or_null(out, "staged", st->staged ? cJSON_Duplicate(st->staged, 1) : NULL) &&
              add_or_null(out, "last_result",
                          st->result ? cJSON_Duplicate(st->result, 1) : NULL) &&
              add_or_null(out, "recovery_request",
                          st->bc_ok ? cJSON_CreateString(stub_boot_request_name(st->req))
                                    : NULL) &&
              add_or_null(out, "ab", st->ab ? cJSON_Duplicate(st->ab, 1) : NULL);
    char *text = NULL;
    si_result rc = ok ? si_json_print_sorted(out, &text, err)
                      : si_err_set(err, SI_ERR_NOMEM, "out of memory");
    if (rc == SI_OK)
        fputs(text, stdout);
    free(text);
    cJSON_Delete(out);
    return rc;
}

static void print_status_text(const stub_config *cfg, const status_info *st)
{
    if (st->build >= 0)
        printf("build:            %" PRId64 "\n", st->build);
    else
        printf("build:            unknown (%s)\n", st->berr.msg);
    printf("channel:          %s\ndevice:           %s\n", cfg->channel, cfg->device);
    const cJSON *t = st->staged ? cJSON_GetObjectItemCaseSensitive(st->staged, "target") : NULL;
    if (st->has_cmd && cJSON_IsNumber(t))
        printf("staged update:    build %.0f (command file %s)\n", t->valuedouble, st->cmdpath);
    else if (st->has_cmd)
        printf("staged:           command file %s\n", st->cmdpath);
    else
        printf("staged update:    none\n");
    if (st->bc_ok)
        printf("recovery request: %s%s\n", stub_boot_request_name(st->req),
               st->req == STUB_BOOT_NORMAL ? " (none)" : "");
    else
        printf("recovery request: unknown (%s)\n", st->bcerr.msg);
    char *text = st->result ? cJSON_PrintUnformatted(st->result) : NULL;
    printf("last result:      %s\n", st->result ? (text ? text : "?") : st->why_r);
    free(text);
    stub_ab_status_text(st->ab);
}

int stub_cmd_status(const stub_opts *o)
{
    stub_config cfg;
    si_err err = {0};
    si_result rc = stub_config_load(o->config, &cfg, &err);
    if (rc != SI_OK)
        return stub_fail(&err, o->json);
    status_info st;
    memset(&st, 0, sizeof(st));
    gather_status(o, &cfg, &st);
    if (o->json)
        rc = print_status_json(&cfg, &st, &err);
    else
        print_status_text(&cfg, &st);
    cJSON_Delete(st.staged);
    cJSON_Delete(st.result);
    cJSON_Delete(st.ab);
    stub_config_free(&cfg);
    return rc == SI_OK ? SI_OK : stub_fail(&err, o->json);
}
