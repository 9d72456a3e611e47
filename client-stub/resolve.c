/* resolve.c - `sysimage-stub resolve`: offline dry run of the upgrade-path
 * resolution (docs/formats.md, resolution) on an index file, printing every candidate path with
 * its score, the device percentage and the winning path; the text output also
 * shows where downloads stop (after the first bootme image). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "phasing.h"
#include "resolve.h"
#include "stub.h"

static const char usage_text[] =
    "usage: sysimage-stub resolve --index FILE --build N [--channel C] [--machine-id ID]\n"
    "                             [--percentage P] [--json]\n"
    "\n"
    "Resolve the upgrade path from build N on an index.json, offline. The device\n"
    "percentage comes from --percentage, else from the channel and machine id\n"
    "(default: the first line of /etc/machine-id).\n";

static void path_text(const si_image *const *images, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (images[i]->type == SI_IMAGE_FULL)
            printf("%sfull %" PRId64, i ? ", " : "", images[i]->version);
        else
            printf("%sdelta %" PRId64 "->%" PRId64, i ? ", " : "", images[i]->base,
                   images[i]->version);
        if (images[i]->bootme)
            fputs(" (bootme)", stdout);
    }
}

typedef struct resolve_args {
    const char *index_path, *channel, *machine_id;
    int64_t build;
    int percentage;     /* -1: from the channel and machine id */
    bool json;
} resolve_args;

static int resolve_usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "sysimage-stub: resolve: %s'%s' (see --help)\n", what, arg);
    return SI_ERR_USAGE;
}

/* One option into a; -1 to go on, else the exit code. */
static int resolve_option(int c, resolve_args *a)
{
    char *end;
    switch (c) {
    case 'i':
        a->index_path = optarg;
        return -1;
    case 'b':
        a->build = strtoll(optarg, &end, 10);
        return !*optarg || *end || a->build < 0
                   ? resolve_usage_error("--build: not a build number: ", optarg)
                   : -1;
    case 'c':
        a->channel = optarg;
        return -1;
    case 'm':
        a->machine_id = optarg;
        return -1;
    case 'p': {
        long p = strtol(optarg, &end, 10);
        if (!*optarg || *end || p < 0 || p > 100)
            return resolve_usage_error("--percentage: not in 0..100: ", optarg);
        a->percentage = (int)p;
        return -1;
    }
    case 'j':
        a->json = true;
        return -1;
    case 'h':
        fputs(usage_text, stdout);
        return SI_OK;
    default:
        fputs(usage_text, stderr);
        return SI_ERR_USAGE;
    }
}

static int parse_resolve_args(int argc, char **argv, resolve_args *a)
{
    static const struct option longopts[] = {
        {"index", required_argument, NULL, 'i'},      {"build", required_argument, NULL, 'b'},
        {"channel", required_argument, NULL, 'c'},    {"machine-id", required_argument, NULL, 'm'},
        {"percentage", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
        if ((rc = resolve_option(c, a)) >= 0)
            return rc;
    if (optind != argc || !a->index_path || a->build < 0) {
        fprintf(stderr, "sysimage-stub: resolve: --index and --build are required\n%s",
                usage_text);
        return SI_ERR_USAGE;
    }
    if (a->percentage < 0 && !a->channel) {
        fprintf(stderr, "sysimage-stub: resolve: --channel is needed to compute the device "
                        "percentage (or give --percentage)\n");
        return SI_ERR_USAGE;
    }
    return -1;
}

static void print_text(const si_resolution *res)
{
    if (res->has_device_percentage)
        printf("build %" PRId64 ", device percentage %d, %zu candidate path%s\n", res->build,
               res->device_percentage, res->cand.count, res->cand.count == 1 ? "" : "s");
    else
        printf("build %" PRId64 ", no candidate path\n", res->build);
    if (res->cand.count)
        printf("     score        bytes  path\n");
    for (size_t i = 0; i < res->cand.count; i++) {
        const si_path *p = &res->cand.paths[i];
        printf("%s %8" PRId64 " %12" PRIu64 "  ", res->winner == (long)i ? "=>" : "  ",
               p->score, p->download);
        path_text(p->images, p->nimages);
        const si_image *last = p->images[p->nimages - 1];
        if (last->phased_percentage < 100)
            printf("  [phased %d%%]", last->phased_percentage);
        putchar('\n');
    }
    if (res->winner < 0) {
        printf("up to date\n");
        return;
    }
    const si_path *w = &res->cand.paths[res->winner];
    size_t n = si_path_bootme_count(w);
    printf("winner: ");
    path_text(w->images, w->nimages);
    printf("\ndownload now: ");
    path_text(w->images, n);
    if (n < w->nimages)
        printf("  (stops after the first bootme image)");
    putchar('\n');
}

static si_result print_json(const si_resolution *res, si_err *err)
{
    cJSON *doc = NULL;
    char *text = NULL;
    si_result rc = si_resolution_to_json(res, &doc, err);
    if (rc == SI_OK && (rc = si_json_print_sorted(doc, &text, err)) == SI_OK)
        fputs(text, stdout);
    free(text);
    cJSON_Delete(doc);
    return rc;
}

int stub_cmd_resolve(int argc, char **argv)
{
    resolve_args a = {.build = -1, .percentage = -1};
    int ec = parse_resolve_args(argc, argv, &a);
    if (ec >= 0)
        return ec;
    si_err err = {0};
    char mid[SI_MACHINE_ID_MAX + 1];
    if (a.percentage < 0 && !a.machine_id) {
        if (si_machine_id_read(SI_MACHINE_ID_PATH, mid, sizeof(mid), &err) != SI_OK)
            return stub_fail(&err, a.json);
        a.machine_id = mid;
    }
    si_index *idx = NULL;
    si_result rc = si_index_load(a.index_path, &idx, &err);
    if (rc != SI_OK)
        return stub_fail(&err, a.json);
    si_resolve_opts ro = {.build = a.build, .build_override = true,
                          /* with --percentage the channel only names the run */
                          .channel = a.channel ? a.channel : "offline",
                          .machine_id = a.machine_id, .percentage_override = a.percentage >= 0,
                          .device_percentage = a.percentage};
    si_resolution res;
    rc = si_resolve(idx, &ro, &res, &err);
    if (rc == SI_OK) {
        if (a.json)
            rc = print_json(&res, &err);
        else
            print_text(&res);
        si_resolution_free(&res);
    }
    si_index_free(idx);
    return rc == SI_OK ? SI_OK : stub_fail(&err, a.json);
}
