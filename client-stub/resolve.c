/* resolve.c - `sysimage-stub resolve`: offline dry run of the upgrade-path
 * resolution (DESIGN §6) on an index file, printing every candidate path with
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

int stub_cmd_resolve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"index", required_argument, NULL, 'i'},      {"build", required_argument, NULL, 'b'},
        {"channel", required_argument, NULL, 'c'},    {"machine-id", required_argument, NULL, 'm'},
        {"percentage", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    const char *index_path = NULL, *channel = NULL, *machine_id = NULL;
    int64_t build = -1;
    int percentage = -1;
    bool json = false;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            index_path = optarg;
            break;
        case 'b':
            build = strtoll(optarg, &end, 10);
            if (!*optarg || *end || build < 0) {
                fprintf(stderr, "sysimage-stub: resolve: --build: not a build number: '%s'\n",
                        optarg);
                return SI_ERR_USAGE;
            }
            break;
        case 'c':
            channel = optarg;
            break;
        case 'm':
            machine_id = optarg;
            break;
        case 'p': {
            long p = strtol(optarg, &end, 10);
            if (!*optarg || *end || p < 0 || p > 100) {
                fprintf(stderr, "sysimage-stub: resolve: --percentage: not in 0..100: '%s'\n",
                        optarg);
                return SI_ERR_USAGE;
            }
            percentage = (int)p;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SI_OK;
        default:
            fputs(usage_text, stderr);
            return SI_ERR_USAGE;
        }
    }
    if (optind != argc || !index_path || build < 0) {
        fprintf(stderr, "sysimage-stub: resolve: --index and --build are required\n%s",
                usage_text);
        return SI_ERR_USAGE;
    }
    si_err err = {0};
    char mid[SI_MACHINE_ID_MAX + 1];
    if (percentage < 0) {
        if (!channel) {
            fprintf(stderr, "sysimage-stub: resolve: --channel is needed to compute the device "
                            "percentage (or give --percentage)\n");
            return SI_ERR_USAGE;
        }
        if (!machine_id) {
            if (si_machine_id_read(SI_MACHINE_ID_PATH, mid, sizeof(mid), &err) != SI_OK)
                return stub_fail(&err, json);
            machine_id = mid;
        }
    }
    si_index *idx = NULL;
    si_result rc = si_index_load(index_path, &idx, &err);
    if (rc != SI_OK)
        return stub_fail(&err, json);
    si_resolve_opts ro = {.build = build, .build_override = true,
                          /* with --percentage the channel only names the run */
                          .channel = channel ? channel : "offline", .machine_id = machine_id,
                          .percentage_override = percentage >= 0,
                          .device_percentage = percentage};
    si_resolution res;
    rc = si_resolve(idx, &ro, &res, &err);
    if (rc != SI_OK) {
        si_index_free(idx);
        return stub_fail(&err, json);
    }
    if (json) {
        cJSON *doc = NULL;
        char *text = NULL;
        if ((rc = si_resolution_to_json(&res, &doc, &err)) == SI_OK &&
            (rc = si_json_print_sorted(doc, &text, &err)) == SI_OK)
            fputs(text, stdout);
        free(text);
        cJSON_Delete(doc);
    } else {
        if (res.has_device_percentage)
            printf("build %" PRId64 ", device percentage %d, %zu candidate path%s\n", res.build,
                   res.device_percentage, res.cand.count, res.cand.count == 1 ? "" : "s");
        else
            printf("build %" PRId64 ", no candidate path\n", res.build);
        if (res.cand.count)
            printf("     score        bytes  path\n");
        for (size_t i = 0; i < res.cand.count; i++) {
            const si_path *p = &res.cand.paths[i];
            printf("%s %8" PRId64 " %12" PRIu64 "  ", res.winner == (long)i ? "=>" : "  ",
                   p->score, p->download);
            path_text(p->images, p->nimages);
            const si_image *last = p->images[p->nimages - 1];
            if (last->phased_percentage < 100)
                printf("  [phased %d%%]", last->phased_percentage);
            putchar('\n');
        }
        if (res.winner >= 0) {
            const si_path *w = &res.cand.paths[res.winner];
            size_t n = si_path_bootme_count(w);
            printf("winner: ");
            path_text(w->images, w->nimages);
            putchar('\n');
            printf("download now: ");
            path_text(w->images, n);
            if (n < w->nimages)
                printf("  (stops after the first bootme image)");
            putchar('\n');
        } else {
            printf("up to date\n");
        }
    }
    si_resolution_free(&res);
    si_index_free(idx);
    return rc == SI_OK ? SI_OK : stub_fail(&err, json);
}
