/* cmd_build.c - `sysimage build full|delta`: update tarballs (docs/payloads.md). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "payload.h"
#include "result.h"

static const char full_usage[] =
    "usage: sysimage build full --from TREE|TARBALL --out FILE [--zstd|--xz] [--level N]\n\n"
    "Build a full update tarball: every path of the OS tree (or of a full tarball)\n"
    "as system/<path>, sorted, numeric owners, modes, mtimes, xattrs, hardlinks,\n"
    "device nodes and sparse files, pax format.\n\n"
    "  --from PATH   OS tree (directory), full tarball (members system/...) or\n"
    "                rootfs tarball (members etc/..., ./etc/...)\n"
    "  --out FILE    output tarball (written atomically)\n"
    "  --zstd        zstd compression (default; levels 1..19)\n"
    "  --xz          xz compression (levels 0..9; above 6 needs over 64 MiB to unpack)\n"
    "  --none        no compression\n"
    "  --level N     compression level (default: the compressor's)\n"
    "  --no-manifest no first member `manifest` (the per-member digests the\n"
    "                recovery checks in one read); for recoveries built before it\n";

static const char delta_usage[] =
    "usage: sysimage build delta --from OLD --to NEW --out FILE [--zstd|--xz] [--level N]\n"
    "                           [--whole-files]\n\n"
    "Build a delta update tarball from OLD to NEW (trees, full tarballs or rootfs\n"
    "tarballs): first `patched` (files shipped as binary patches, with the sha256\n"
    "of the old and new content), then `removed` (deleted and replaced paths), then\n"
    "every added or modified path; a modified regular file is a zstd patch against\n"
    "its old version (patch/<path>) when that beats the file compressed. A change is\n"
    "any difference of type, mode, owner, size, content, xattrs, link target,\n"
    "device number or hardlink grouping; mtime-only changes are not shipped.\n\n"
    "  --from OLD       base tree or tarball\n"
    "  --to NEW         new tree or tarball\n"
    "  --out FILE       output tarball (written atomically)\n"
    "  --whole-files    no patches: modified files are shipped whole\n"
    "  --zstd | --xz | --none, --level N, --no-manifest   as for `build full`\n";

static int parse(int argc, char **argv, bool delta, const char **from, const char **to,
                 const char **out, si_build_opts *o)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},  {"zstd", no_argument, NULL, 'z'},
        {"xz", no_argument, NULL, 'x'},         {"none", no_argument, NULL, 'n'},
        {"level", required_argument, NULL, 'l'}, {"whole-files", no_argument, NULL, 'w'},
        {"no-manifest", no_argument, NULL, 'm'}, {NULL, 0, NULL, 0},
    };
    o->compression = SI_COMP_ZSTD;
    o->level = 0;
    o->whole_files = false;
    o->no_manifest = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': *from = optarg; break;
        case 't':
            if (!delta) {
                fprintf(stderr, "sysimage build full: --to is for deltas\n");
                return SI_ERR_USAGE;
            }
            *to = optarg;
            break;
        case 'o': *out = optarg; break;
        case 'z': o->compression = SI_COMP_ZSTD; break;
        case 'x': o->compression = SI_COMP_XZ; break;
        case 'n': o->compression = SI_COMP_NONE; break;
        case 'm': o->no_manifest = true; break;
        case 'w':
            if (!delta) {
                fprintf(stderr, "sysimage build full: --whole-files is for deltas\n");
                return SI_ERR_USAGE;
            }
            o->whole_files = true;
            break;
        case 'l': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 22) {
                fprintf(stderr, "sysimage build: --level: '%s' is not a level\n", optarg);
                return SI_ERR_USAGE;
            }
            o->level = (int)v;
            break;
        }
        default:
            return SI_ERR_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sysimage build: unexpected argument '%s'\n", argv[optind]);
        return SI_ERR_USAGE;
    }
    if (!*from || !*out || (delta && !*to)) {
        fprintf(stderr, "sysimage build: missing %s\n",
                !*from ? "--from" : !*out ? "--out" : "--to");
        return SI_ERR_USAGE;
    }
    return SI_OK;
}

int si_cmd_build_full(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, full_usage))
        return SI_OK;
    const char *from = NULL, *to = NULL, *out = NULL;
    si_build_opts o;
    int rc = parse(argc, argv, false, &from, &to, &out, &o);
    if (rc != SI_OK) {
        fputs(full_usage, stderr);
        return rc;
    }
    si_err err = {0};
    if (si_build_full(from, out, &o, &err) != SI_OK)
        return si_tool_fail(&err);
    return SI_OK;
}

int si_cmd_build_delta(int argc, char **argv)
{
    if (si_tool_wants_help(argc, argv, delta_usage))
        return SI_OK;
    const char *from = NULL, *to = NULL, *out = NULL;
    si_build_opts o;
    int rc = parse(argc, argv, true, &from, &to, &out, &o);
    if (rc != SI_OK) {
        fputs(delta_usage, stderr);
        return rc;
    }
    si_err err = {0};
    if (si_build_delta(from, to, out, &o, &err) != SI_OK)
        return si_tool_fail(&err);
    return SI_OK;
}
