/* sysimage-stub - the small client of the normal OS (DESIGN §1): checks the
 * signed indexes, stages verified downloads on the cache partition, writes
 * the recovery's command file and asks the boot loader for the recovery. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "stub.h"

static const char usage_text[] =
    "usage: sysimage-stub [--config PATH] COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  check [--json] [--build N]      verify the server's keyrings, channels and index;\n"
    "                                  print the available update or \"up to date\"\n"
    "  stage [--json] [--build N]      download and verify the update into the cache dir,\n"
    "                                  then write the recovery's command file\n"
    "  reboot-recovery [--no-reboot]   request the recovery (staged update) and reboot\n"
    "  factory-reset [--no-reboot]     request a factory reset (wipe userdata) and reboot\n"
    "  status [--json]                 installed build, staged update, last recovery result\n"
    "  resolve --index FILE --build N [--channel C] [--machine-id ID] [--percentage P] [--json]\n"
    "                                  offline dry run of the upgrade-path resolution\n"
    "\n"
    "options:\n"
    "  --config PATH   configuration file (default " STUB_DEFAULT_CONFIG ")\n"
    "  --build N       installed build (default: from the configured version file)\n"
    "  --json          machine-readable output (JSON; one object per line for stage)\n";

void stub_print_json_line(cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    cJSON_Delete(obj);
}

int stub_fail(const si_err *err, bool json)
{
    const char *msg = err->msg[0] ? err->msg : si_result_message(err->code);
    fprintf(stderr, "sysimage-stub: %s\n", msg);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "error", si_result_name(err->code)) ||
                  !cJSON_AddNumberToObject(o, "code", (double)err->code) ||
                  !cJSON_AddStringToObject(o, "message", msg))) {
            cJSON_Delete(o);
            o = NULL;
        }
        stub_print_json_line(o);
    }
    return err->code ? (int)err->code : SI_ERR_INTERNAL;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    stub_opts o = {.config = STUB_DEFAULT_CONFIG};
    /* Global options before the command. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return SI_OK;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            o.config = argv[++i];
        } else {
            fprintf(stderr, "sysimage-stub: unknown option '%s'\n%s", argv[i], usage_text);
            return SI_ERR_USAGE;
        }
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return SI_ERR_USAGE;
    }
    const char *cmd = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;
    if (strcmp(cmd, "resolve") == 0)
        return stub_cmd_resolve(cargc, cargv);

    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"build", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},         {"no-reboot", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(cargc, cargv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config = optarg;
            break;
        case 'b':
            if (!parse_i64(optarg, &o.build)) {
                fprintf(stderr, "sysimage-stub: --build: not a build number: '%s'\n", optarg);
                return SI_ERR_USAGE;
            }
            o.has_build = true;
            break;
        case 'j':
            o.json = true;
            break;
        case 'n':
            o.no_reboot = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SI_OK;
        default:
            fputs(usage_text, stderr);
            return SI_ERR_USAGE;
        }
    }
    if (optind != cargc) {
        fprintf(stderr, "sysimage-stub: %s: unexpected argument '%s'\n", cmd, cargv[optind]);
        return SI_ERR_USAGE;
    }
    bool reboot_cmd = strcmp(cmd, "reboot-recovery") == 0 || strcmp(cmd, "factory-reset") == 0;
    if (o.no_reboot && !reboot_cmd) {
        fprintf(stderr, "sysimage-stub: %s: --no-reboot does not apply\n", cmd);
        return SI_ERR_USAGE;
    }
    if (strcmp(cmd, "status") == 0)
        return stub_cmd_status(&o);
    if (reboot_cmd)
        return stub_cmd_reboot_recovery(&o, strcmp(cmd, "factory-reset") == 0);
    if (strcmp(cmd, "check") != 0 && strcmp(cmd, "stage") != 0) {
        fprintf(stderr, "sysimage-stub: unknown command '%s'\n%s", cmd, usage_text);
        return SI_ERR_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sysimage-stub: curl_global_init failed\n");
        return SI_ERR_NETWORK;
    }
    int rc = strcmp(cmd, "check") == 0 ? stub_cmd_check(&o) : stub_cmd_stage(&o);
    curl_global_cleanup();
    return rc;
}
