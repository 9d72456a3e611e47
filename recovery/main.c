/* sysimage-recovery - the upgrader of the recovery image (DESIGN §7).
 * /init runs `sysimage-recovery run --mode update|factory-reset` and then
 * `sysimage-recovery debug-exit CODE`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debugexit.h"
#include "fsutil.h"
#include "recovery.h"
#include "result.h"

#define DEVICE_FILE "/etc/sysimage/device"

static const char usage_text[] =
    "usage: sysimage-recovery run [--mode update|factory-reset] [--dry-run] [OPTIONS]\n"
    "       sysimage-recovery debug-exit CODE\n"
    "       sysimage-recovery --help\n"
    "\n"
    "run: execute /cache/recovery/sysimage_command (mode update) or wipe userdata\n"
    "and the cache (mode factory-reset; also when the boot control's\n"
    "recovery_request is factory-reset). Everything is verified from the built-in\n"
    "archive-master keyring before any partition is touched. The result is in\n"
    "/cache/recovery/last_result.json and last_log; the exit status is its code.\n"
    "\n"
    "  --mode MODE            update (default) or factory-reset\n"
    "  --dry-run              verify everything, change nothing (no partition, no\n"
    "                         boot control, no file on the cache; result on stdout)\n"
    "  --device MODEL         device model for device-signing keyrings (default: the\n"
    "                         content of " DEVICE_FILE ", else no model check)\n"
    "Overrides for tests on a host:\n"
    "  --partition LABEL=PATH use PATH (block device or image file, attached to a\n"
    "                         loop device to mount it) for the partition LABEL\n"
    "                         (system, userdata, cache, misc, or a raw one such as\n"
    "                         boot, recovery); once given, no partition is looked\n"
    "                         up by GPT label\n"
    "  --cache-dir DIR        the cache partition is already mounted at DIR\n"
    "  --mount-root DIR       mount the cache at DIR/cache and the system at\n"
    "                         DIR/system instead of /cache and /system\n"
    "\n"
    "debug-exit CODE: write CODE (0-255) to QEMU's isa-debug-exit port (0xf4).\n";

static int cmd_debug_exit(int argc, char **argv)
{
    if (argc != 3) {
        fputs(usage_text, stderr);
        return SI_ERR_USAGE;
    }
    char *end;
    errno = 0;
    unsigned long code = strtoul(argv[2], &end, 10);
    if (errno || *end || !argv[2][0] || argv[2][0] == '-' || code > 255) {
        fprintf(stderr, "sysimage-recovery: debug-exit: CODE must be 0-255, not '%s'\n", argv[2]);
        return SI_ERR_USAGE;
    }
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

static int cmd_run(int argc, char **argv)
{
    recovery_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = MODE_UPDATE;
    o.mount_root = "";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dry-run") == 0) {
            o.dry_run = true;
            continue;
        }
        if (strcmp(a, "--mode") && strcmp(a, "--device") && strcmp(a, "--partition") &&
            strcmp(a, "--cache-dir") && strcmp(a, "--mount-root")) {
            fprintf(stderr, "sysimage-recovery: run: unknown option '%s'\n", a);
            return SI_ERR_USAGE;
        }
        if (!v || !v[0]) {
            fprintf(stderr, "sysimage-recovery: run: %s needs a value\n", a);
            return SI_ERR_USAGE;
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "update") == 0)
                o.mode = MODE_UPDATE;
            else if (strcmp(v, "factory-reset") == 0)
                o.mode = MODE_FACTORY_RESET;
            else {
                fprintf(stderr, "sysimage-recovery: run: unknown mode '%s'\n", v);
                return SI_ERR_USAGE;
            }
        } else if (strcmp(a, "--device") == 0) {
            o.device = v;
        } else if (strcmp(a, "--cache-dir") == 0) {
            o.cache_dir = v;
        } else if (strcmp(a, "--mount-root") == 0) {
            o.mount_root = v;
        } else {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1] || o.nparts >= RECOVERY_MAX_PART_OVERRIDES) {
                fprintf(stderr, "sysimage-recovery: run: --partition wants LABEL=PATH "
                                "(at most %d), not '%s'\n", RECOVERY_MAX_PART_OVERRIDES, v);
                return SI_ERR_USAGE;
            }
            /* argv is writable: split LABEL=PATH in place. */
            argv[i][eq - v] = '\0';
            o.parts[o.nparts].label = argv[i];
            o.parts[o.nparts].path = argv[i] + (eq - v) + 1;
            o.nparts++;
        }
    }
    char *device = NULL;
    if (!o.device)
        o.device = device = read_device_file();
    si_result r = recovery_run(&o);
    free(device);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return SI_ERR_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            strcmp(argv[i], "help") == 0) {
            fputs(usage_text, stdout);
            return SI_OK;
        }
    }
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc, argv);
    if (strcmp(argv[1], "debug-exit") == 0)
        return cmd_debug_exit(argc, argv);
    fprintf(stderr, "sysimage-recovery: unknown command '%s'\n", argv[1]);
    fputs(usage_text, stderr);
    return SI_ERR_USAGE;
}
