/* cmd_apply.c - `sysimage apply`: unpack update tarballs into a directory. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "commands.h"
#include "index.h"
#include "manifest.h"
#include "sha256.h"
#include "progress.h"
#include "result.h"

static const char usage[] =
    "usage: sysimage apply --target DIR [--format] [--partition NAME=PATH]... FILE...\n\n"
    "Apply update tarballs (full or delta) in order to the tree in DIR, the way the\n"
    "recovery does: `removed` first, files replaced atomically, hostile members\n"
    "refused, DIR synced once at the end. Progress goes to stderr: one updating\n"
    "line on a terminal, otherwise a line every 10 percent or 5 seconds.\n\n"
    "  --target DIR          the system tree to update\n"
    "  --format              empty DIR first (full images); the first FILE's members are\n"
    "                        then written at their final names (no temporary name)\n"
    "  --partition NAME=PATH write member partitions/NAME.img raw to PATH\n"
    "  --index INDEX.json    check each FILE against the entry of this index with its\n"
    "                        basename (size, sha256, manifest): one read of a file\n"
    "                        with a manifest, its members checked before they land;\n"
    "                        others hashed first. Verify INDEX.json's signature first\n"
    "                        (sysimage verify): only then is this a verified install.\n"
    "  --quiet               no progress output\n";

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const si_index_file *find_entry(const si_index *idx, const char *file)
{
    for (size_t i = 0; i < idx->nimages; i++)
        for (size_t j = 0; j < idx->images[i].nfiles; j++)
            if (strcmp(base_name(idx->images[i].files[j].path), base_name(file)) == 0)
                return &idx->images[i].files[j];
    return NULL;
}

/* ex for one FILE: with a manifest, its parsed manifest (*mf) for the one
 * read; without, the file is hashed now and ex->manifest stays NULL. */
static si_result bind_file(const si_index *idx, const char *file, si_apply_expect *ex,
                           si_manifest **mf, si_err *err)
{
    const si_index_file *e = find_entry(idx, file);
    if (!e)
        return si_err_set(err, SI_ERR_NOT_FOUND, "%s: not a file of the index", file);
    ex->size = e->size;
    if (strlen(e->checksum) != SI_SHA256_HEX_LEN ||
        si_hex_decode(e->checksum, ex->sha256, sizeof(ex->sha256)) < 0)
        return si_err_set(err, SI_ERR_PARSE, "%s: the index's checksum is not a sha256", file);
    if (e->has_manifest) {
        uint8_t md[SI_SHA256_LEN];
        si_hex_decode(e->manifest_checksum, md, sizeof(md));
        si_result rc = si_manifest_load_bound(file, e->manifest_size, md, mf, err);
        ex->manifest = *mf;
        return rc;
    }
    uint8_t d[SI_SHA256_LEN];
    uint64_t size = 0;
    int r = si_sha256_file(file, d, &size);
    if (r < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", file, strerror(-r));
    if (size != ex->size || memcmp(d, ex->sha256, sizeof(d)) != 0)
        return si_err_set(err, size != ex->size ? SI_ERR_SIZE : SI_ERR_CHECKSUM,
                          "%s: differs from the index (size or sha256)", file);
    return SI_OK;
}

static si_result bind_files(const char *index, char *const *files, size_t n,
                            si_apply_expect *ex, si_manifest **mf, si_err *err)
{
    si_index *idx = NULL;
    si_result rc = si_index_load(index, &idx, err);
    for (size_t i = 0; rc == SI_OK && i < n; i++)
        rc = bind_file(idx, files[i], &ex[i], &mf[i], err);
    si_index_free(idx);
    return rc;
}

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
        {"index", required_argument, NULL, 'i'}, {NULL, 0, NULL, 0},
    };
    si_apply_opts o = {0};
    si_partition_map *parts = calloc((size_t)argc, sizeof(*parts));
    if (!parts)
        return SI_ERR_NOMEM;
    bool quiet = false;
    const char *index = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': o.target_dir = optarg; break;
        case 'f': o.format = true; break;
        case 'q': quiet = true; break;
        case 'i': index = optarg; break;
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
    size_t n = (size_t)(argc - optind);
    si_apply_expect *ex = calloc(n, sizeof(*ex));
    si_manifest **mf = calloc(n, sizeof(*mf));
    si_result rc = ex && mf ? SI_OK : si_err_set(&err, SI_ERR_NOMEM, "out of memory");
    if (rc == SI_OK && index) {
        rc = bind_files(index, argv + optind, n, ex, mf, &err);
        o.expect = ex;
    }
    if (rc == SI_OK)
        rc = si_apply_files(&o, (const char *const *)argv + optind, n, &err);
    for (size_t i = 0; mf && i < n; i++)
        si_manifest_free(mf[i]);
    free(mf);
    free(ex);
    free(parts);
    si_progress_end(&p);
    if (rc != SI_OK)
        return si_tool_fail(&err);
    return SI_OK;
}
