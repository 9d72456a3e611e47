/* sysimage-recovery - the upgrader of the recovery image (docs/recovery.md).
 * /init runs `sysimage-recovery run --mode update|factory-reset` and then
 * `sysimage-recovery debug-exit CODE`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debugexit.h"
#include "flash.h"
#include "fsutil.h"
#include "protocol.h"
#include "recovery.h"
#include "result.h"

#define DEVICE_FILE "/etc/sysimage/device"

static const char usage_text[] =
    "usage: sysimage-recovery run [--mode update|factory-reset] [--dry-run] [OPTIONS]\n"
    "       sysimage-recovery flash [--media DIR --target DISK] [--board FILE] [--device MODEL]\n"
    "       sysimage-recovery debug-exit CODE\n"
    "       sysimage-recovery --help\n"
    "\n"
    "run: execute /cache/recovery/" SI_PROTO_COMMAND " (mode update) or wipe userdata\n"
    "and the cache (mode factory-reset; also when the boot control's\n"
    SI_BOOT_REQUEST " is factory-reset). The job is bound to the signed index it\n"
    "names: the keyrings from the built-in archive-master, the index, the path of\n"
    "images from the installed build and every staged file are verified before\n"
    "any partition is touched. The result is in /cache/recovery/" SI_PROTO_RESULT "\n"
    "and " SI_PROTO_LOG "; the exit status is its code (below).\n"
    "\n"
    "  -m, --mode MODE            update (default) or factory-reset\n"
    "  -n, --dry-run              verify everything, change nothing (no partition, no\n"
    "                             boot control, no file on the cache; result on stdout)\n"
    "  -d, --device MODEL         device model for device-signing keyrings (default: the\n"
    "                             content of " DEVICE_FILE ", else no model check)\n"
    "  -s, --stay-file FILE       when the job is stopped and the system partition\n"
    "                             holds an incomplete install, write why and what can\n"
    "                             be done to FILE (/init then stays instead of\n"
    "                             rebooting)\n"
    "  -b, --bootcount PROGRAM    an A/B board's boot counters (docs/ab.md; default\n"
    "                             " REC_AB_BOOTCOUNT ")\n"
    "Overrides for tests on a host:\n"
    "  -p, --partition LABEL=PATH use PATH (block device or image file, attached to a\n"
    "                             loop device to mount it) for the partition LABEL\n"
    "                             (system, or system_a and system_b on an A/B board,\n"
    "                             userdata, cache, misc, or a raw one such as\n"
    "                             boot, recovery); once given, no partition is looked\n"
    "                             up by GPT label\n"
    "  -c, --cache-dir DIR        the cache partition is already mounted at DIR\n"
    "  -r, --mount-root DIR       mount the cache at DIR/cache and the system at\n"
    "                             DIR/system instead of /cache and /system\n"
    "  -h, --help                 this text\n"
    "\n"
    "flash: provision the internal disk from provisioning media (docs/flashing.md):\n"
    "the partition labelled `flash` holds a signed flash job, the build and the boot\n"
    "files; the one other disk is the target. Everything is verified before the\n"
    "first write; the result is in flash/flash-result.json on the media.\n"
    "  --board FILE   this recovery's board (default " FLASH_BOARD_FILE ")\n"
    "  --media DIR    host tests: the media's root instead of the `flash` partition\n"
    "  --target DISK  host tests: the disk or image file to provision\n"
    "\n"
    "debug-exit CODE: write CODE (0-255) to QEMU's isa-debug-exit port (0xf4).\n"
    "\n"
    "Exit status (the result code; docs/recovery.md explains each):\n";

static void usage(FILE *f)
{
    fputs(usage_text, f);
    for (int c = SI_OK; c <= SI_ERR_CRASHED; c++)
        fprintf(f, "  %2d %-16s %s\n", c, si_result_name((si_result)c),
                si_result_message((si_result)c));
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("sysimage-recovery: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(see sysimage-recovery --help)\n", stderr);
    return SI_ERR_USAGE;
}

static int cmd_debug_exit(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("debug-exit: %s", "expected exactly one CODE");
    char *end;
    errno = 0;
    unsigned long code = strtoul(argv[1], &end, 10);
    if (errno || *end || !argv[1][0] || argv[1][0] == '-' || code > 255)
        return usage_error("debug-exit: CODE must be 0-255, not '%s'", argv[1]);
    si_err err;
    si_err_clear(&err);
    si_result r = si_debug_exit((unsigned)code, &err);
    fprintf(stderr, "sysimage-recovery: debug-exit: %s\n",
            err.msg[0] ? err.msg : si_result_message(r));
    return r;
}

/* The model from DEVICE_FILE, trimmed; NULL when absent. */
static char *read_device_file(void)
{
    char *buf;
    size_t len;
    if (si_read_file(DEVICE_FILE, 256, &buf, &len) < 0)
        return NULL;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (!len) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* LABEL=PATH, split in place (argv is writable). */
static int add_partition(recovery_opts *o, char *v)
{
    char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1] || o->nparts >= RECOVERY_MAX_PART_OVERRIDES)
        return usage_error("run: --partition wants LABEL=PATH (at most 16), not '%s'", v);
    *eq = '\0';
    o->parts[o->nparts].label = v;
    o->parts[o->nparts].path = eq + 1;
    o->nparts++;
    return SI_OK;
}

static const struct option run_options[] = {
    {"mode", required_argument, NULL, 'm'},      {"dry-run", no_argument, NULL, 'n'},
    {"device", required_argument, NULL, 'd'},    {"partition", required_argument, NULL, 'p'},
    {"cache-dir", required_argument, NULL, 'c'}, {"mount-root", required_argument, NULL, 'r'},
    {"stay-file", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
    {"bootcount", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0},
};

static int parse_run(int argc, char **argv, recovery_opts *o)
{
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:nd:p:c:r:s:b:h", run_options, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "update") == 0)
                o->mode = MODE_UPDATE;
            else if (strcmp(optarg, "factory-reset") == 0)
                o->mode = MODE_FACTORY_RESET;
            else
                return usage_error("run: unknown mode '%s'", optarg);
            break;
        case 'n': o->dry_run = true; break;
        case 'd': o->device = optarg; break;
        case 'c': o->cache_dir = optarg; break;
        case 'r': o->mount_root = optarg; break;
        case 's': o->stay_file = optarg; break;
        case 'b': o->bootcount = optarg; break;
        case 'p':
            if (add_partition(o, optarg) != SI_OK)
                return SI_ERR_USAGE;
            break;
        case 'h': usage(stdout); return -1;
        case ':': return usage_error("run: %s needs a value", argv[optind - 1]);
        default: return usage_error("run: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("run: unexpected argument '%s'", argv[optind]);
    return SI_OK;
}

#ifdef SI_TEST_FAULTS
/* Test builds only (make recovery-image-faults): `sysimage.fault=apply:N` on
 * the kernel command line makes the recovery abort once an update step has
 * read N bytes of its file, on every attempt (a deterministic crash). A
 * production build has no such code: the Makefile defines SI_TEST_FAULTS
 * only for build/faults/. */
static void read_fault(recovery_opts *o)
{
    char buf[4096];
    FILE *f = fopen("/proc/cmdline", "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "sysimage.fault=apply:");
    if (p) {
        o->fault_apply_bytes = strtoull(p + strlen("sysimage.fault=apply:"), NULL, 10);
        fprintf(stderr, "sysimage-recovery: TEST BUILD: will crash after %llu bytes of an update\n",
                (unsigned long long)o->fault_apply_bytes);
    }
}
#endif

static int cmd_run(int argc, char **argv)
{
    recovery_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = MODE_UPDATE;
    o.mount_root = "";
    o.bootcount = REC_AB_BOOTCOUNT;
    int rc = parse_run(argc, argv, &o);
    if (rc != SI_OK)
        return rc < 0 ? SI_OK : rc;
    char *device = NULL;
    if (!o.device)
        o.device = device = read_device_file();
#ifdef SI_TEST_FAULTS
    read_fault(&o);
#endif
    si_result r = recovery_run(&o);
    free(device);
    return r;
}

static int cmd_flash(int argc, char **argv)
{
    static const struct option opts[] = {
        {"board", required_argument, NULL, 'b'}, {"media", required_argument, NULL, 'M'},
        {"target", required_argument, NULL, 't'}, {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    flash_opts o = {.board_file = FLASH_BOARD_FILE};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:M:t:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': o.board_file = optarg; break;
        case 'M': o.media_dir = optarg; break;
        case 't': o.target = optarg; break;
        case 'd': o.device = optarg; break;
        case 'h': usage(stdout); return SI_OK;
        case ':': return usage_error("flash: %s needs a value", argv[optind - 1]);
        default: return usage_error("flash: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("flash: unexpected argument '%s'", argv[optind]);
    if (!o.media_dir != !o.target)
        return usage_error("flash: %s", "--media and --target go together");
    char *device = NULL;
    if (!o.device)
        o.device = device = read_device_file();
    si_result r = recovery_flash(&o);
    free(device);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SI_ERR_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return SI_OK;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "flash") == 0)
        return cmd_flash(argc - 1, argv + 1);
    if (strcmp(cmd, "debug-exit") == 0)
        return cmd_debug_exit(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
