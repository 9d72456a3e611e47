/* cmd_apply.c - `sysimage apply`: unpack update tarballs into a directory. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "commands.h"
#include "progress.h"
#include "result.h"

static const char usage[] =
    "usage: sysimage apply --target DIR [--format] [--partition NAME=PATH]... FILE...\n\n"
    "Apply update tarballs (full or delta) in order to the tree in DIR, the way the\n"
    "recovery does: `removed` first, files replaced atomically, hostile members\n"
    "refused, DIR synced once at the end. Progress goes to stderr: one updating\n"
    "line on a terminal, otherwise a line every 10 percent or 5 seconds.\n\n"
    "  --target DIR          the system tree to update\n"
    "  --format              empty DIR first (full images)\n"
    "  --partition NAME=PATH write member partitions/NAME.img raw to PATH\n"
    "  --quiet               no progress output\n";

static void on_progress(uint64_t done, uint64_t total, void *ctx)
{
    si_progress_update(ctx, done, total);
}

int si_cmd_apply(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, usage))
        return SI_OK;
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'}, {"format", no_argument, NULL, 'f'},
        {"partition", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    si_apply_opts o = {0};
    si_partition_map *parts = calloc((size_t)argc, sizeof(*parts));
    if (!parts)
        return SI_ERR_NOMEM;
    bool quiet = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': o.target_dir = optarg; break;
        case 'f': o.format = true; break;
        case 'q': quiet = true; break;
        case 'p': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1]) {
                fprintf(stderr, "sysimage apply: --partition '%s' is not NAME=PATH\n", optarg);
                free(parts);
                return SI_ERR_USAGE;
            }
            *eq = '\0';
            parts[o.npartitions].name = optarg;
            parts[o.npartitions].path = eq + 1;
            o.npartitions++;
            break;
        }
        default:
            fputs(usage, stderr);
            free(parts);
            return SI_ERR_USAGE;
        }
    }
    if (!o.target_dir || optind >= argc) {
        fprintf(stderr, "sysimage apply: %s\n", !o.target_dir ? "missing --target" : "no FILE");
        fputs(usage, stderr);
        free(parts);
        return SI_ERR_USAGE;
    }
    o.partitions = parts;
    si_progress p;
    si_progress_init(&p, stderr, "apply", -1);
    if (!quiet) {
        o.progress = on_progress;
        o.progress_ctx = &p;
    }
    si_err err = {0};
    si_result rc = si_apply_files(&o, (const char *const *)argv + optind, (size_t)(argc - optind),
                                  &err);
    free(parts);
    si_progress_end(&p);
    if (rc != SI_OK)
        return si_tool_fail(&err);
    return SI_OK;
}
