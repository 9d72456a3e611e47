/* sysimage-stub - the small client of the normal OS (docs/architecture.md): checks the
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
    "  check [--json] [--build N] [--percentage P]\n"
    "                                  verify the server's keyrings, channels and index;\n"
    "                                  print the available update or \"up to date\"\n"
    "  stage [--json] [--build N] [--percentage P]\n"
    "                                  download and verify the update into the cache dir,\n"
    "                                  then write the recovery's command file\n"
    "  reboot-recovery [--no-reboot]   request the recovery (staged update) and reboot\n"
    "  factory-reset [--no-reboot]     request a factory reset (wipe userdata) and reboot\n"
    "  status [--json]                 installed build, staged update, last recovery result;\n"
    "                                  on an A/B device also the slots and a rollback\n"
    "  install [--json]                A/B devices: apply the staged job to the inactive slot\n"
    "                                  in the background, then a trial boot of it (docs/ab.md)\n"
    "  mark-good                       A/B devices: the booted slot came up; keep it\n"
    "  resolve --index FILE --build N [--channel C] [--machine-id ID] [--percentage P] [--json]\n"
    "                                  offline dry run of the upgrade-path resolution\n"
    "\n"
    "options:\n"
    "  --config PATH   configuration file (default " STUB_DEFAULT_CONFIG ")\n"
    "  --build N       installed build (default: from the configured version file)\n"
    "  --percentage P  this device's phasing percentage, 0..100 (default: [service]\n"
    "                  percentage, else seeded by the channel and machine id)\n"
    "  --json          machine-readable output (JSON; one object per line for stage)\n"
    "  --help          this text (COMMAND --help: the same)\n"
    "\n"
    "exit status (client-stub/README.md):\n"
    "  0     success; for check: an update is available\n"
    "  100   check: up to date, nothing to install\n"
    "  1-30  an error: the si_result code (1 usage, 7 bad signature, 9 keyring expired,\n"
    "        11 blacklisted, 12 checksum, 23 network, 24 no space, 25 stale index, ...)\n";

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

static int usage_error(const char *fmt, const char *arg)
{
    fputs("sysimage-stub: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see --help)\n", stderr);
    return SI_ERR_USAGE;
}

/* Global options, up to the command (getopt_long, "+": stop at the first
 * non-option). Returns the index of the command in argv, or -1 - exit code. */
static int parse_global(int argc, char **argv, stub_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c == 'c') {
            o->config = optarg;
        } else if (c == 'h') {
            fputs(usage_text, stdout);
            return -1 - SI_OK;
        } else {
            return -1 - usage_error("unknown option or missing argument '%s'",
                                    argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return -1 - SI_ERR_USAGE;
    }
    return optind;
}

/* A command's options (all commands but resolve share them). -1 to go on. */
static int parse_command(int argc, char **argv, stub_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"build", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},         {"no-reboot", no_argument, NULL, 'n'},
        {"percentage", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    int64_t pct;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'b':
            if (!parse_i64(optarg, &o->build))
                return usage_error("--build: not a build number: '%s'", optarg);
            o->has_build = true;
            break;
        case 'p':
            if (!parse_i64(optarg, &pct) || pct > 100)
                return usage_error("--percentage: not a percentage in 0..100: '%s'", optarg);
            o->percentage = (int)pct;
            break;
        case 'j':
            o->json = true;
            break;
        case 'n':
            o->no_reboot = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SI_OK;
        default:
            return usage_error("unknown option or missing argument '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

/* check and stage: the network commands. */
static int run_network(int (*fn)(const stub_opts *), const stub_opts *o)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sysimage-stub: curl_global_init failed\n");
        return SI_ERR_NETWORK;
    }
    int rc = fn(o);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    stub_opts o = {.config = STUB_DEFAULT_CONFIG, .percentage = -1};
    int i = parse_global(argc, argv, &o);
    if (i < 0)
        return -1 - i;
    const char *cmd = argv[i];
    if (strcmp(cmd, "resolve") == 0)
        return stub_cmd_resolve(argc - i, argv + i);
    int rc = parse_command(argc - i, argv + i, &o);
    if (rc >= 0)
        return rc;
    bool reboot_cmd = strcmp(cmd, "reboot-recovery") == 0 || strcmp(cmd, "factory-reset") == 0;
    if (o.no_reboot && !reboot_cmd)
        return usage_error("%s: --no-reboot does not apply", cmd);
    bool network_cmd = strcmp(cmd, "check") == 0 || strcmp(cmd, "stage") == 0;
    if (o.percentage >= 0 && !network_cmd)
        return usage_error("%s: --percentage does not apply", cmd);
    if (strcmp(cmd, "status") == 0)
        return stub_cmd_status(&o);
    if (strcmp(cmd, "install") == 0)
        return stub_cmd_install(&o);
    if (strcmp(cmd, "mark-good") == 0)
        return stub_cmd_mark_good(&o);
    if (reboot_cmd)
        return stub_cmd_reboot_recovery(&o, strcmp(cmd, "factory-reset") == 0);
    if (strcmp(cmd, "check") == 0)
        return run_network(stub_cmd_check, &o);
    if (strcmp(cmd, "stage") == 0)
        return run_network(stub_cmd_stage, &o);
    fprintf(stderr, "sysimage-stub: unknown command '%s'\n%s", cmd, usage_text);
    return SI_ERR_USAGE;
}
