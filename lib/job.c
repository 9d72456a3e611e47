/* job.c - a recovery job bound to its signed index (job.h). */
#include "job.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define WHAT "command file"

const char *si_job_basename(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : (path ? path : "");
}

/* The index image an `image` line names: the first of images[] with the same
 * type, version and base (docs/formats.md: repeated entries count as one). */
static const si_image *find_image(const si_index *idx, const si_command *c)
{
    for (size_t i = 0; i < idx->nimages; i++) {
        const si_image *img = &idx->images[i];
        if (img->version != c->version)
            continue;
        if (c->full && img->type == SI_IMAGE_FULL)
            return img;
        if (!c->full && img->type == SI_IMAGE_DELTA && img->has_base && img->base == c->base)
            return img;
    }
    return NULL;
}

static si_result describe_err(si_err *err, si_result code, const si_command *c, const char *why)
{
    char d[SI_COMMAND_NAME_MAX + 64];
    si_command_describe(c, d, sizeof(d));
    return si_err_set(err, code, WHAT " line %u: %s: %s", c->line, d, why);
}

/* The image lines, each found in the index, chaining from one to the next. */
static si_result collect_path(const si_index *idx, const si_command_file *cf, si_job_plan *plan,
                              si_err *err)
{
    bool bootme_seen = false;
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op != SI_CMD_IMAGE)
            continue;
        const si_image *img = find_image(idx, c);
        if (!img)
            return describe_err(err, SI_ERR_NOT_FOUND, c, "not offered by the signed index");
        if (bootme_seen)
            return describe_err(err, SI_ERR_COMMAND_FILE, c,
                                "the path ends at the first image with bootme");
        if (plan->nimages > 0) {
            const si_image *prev = plan->images[plan->nimages - 1];
            if (c->full)
                return describe_err(err, SI_ERR_COMMAND_FILE, c,
                                    "a full image can only start the path");
            if (c->base != prev->version)
                return describe_err(err, SI_ERR_COMMAND_FILE, c,
                                    "does not continue the previous image of the path");
        }
        bootme_seen = img->bootme;
        plan->images[plan->nimages++] = img;
    }
    if (plan->nimages == 0)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": no image line");
    return SI_OK;
}

static bool on_path(const si_job_plan *plan, int64_t build)
{
    const si_image *first = plan->images[0];
    if (first->type == SI_IMAGE_DELTA && first->base == build)
        return true;
    for (size_t i = 0; i < plan->nimages; i++)
        if (plan->images[i]->version == build)
            return true;
    return false;
}

/* Where the path starts against the installed build. */
static si_result check_start(const si_job_plan *plan, const si_job_installed *inst,
                             const si_command *first_line, si_err *err)
{
    const si_image *first = plan->images[0];
    bool has = inst && inst->has_build;
    int64_t I = has ? inst->build : 0;
    char why[160];
    if (has && plan->target < I) {
        snprintf(why, sizeof(why),
                 "target build %" PRId64 " is older than the installed build %" PRId64,
                 plan->target, I);
        return describe_err(err, SI_ERR_DOWNGRADE, first_line, why);
    }
    if (inst && inst->resuming && (!has || on_path(plan, I)))
        return SI_OK;
    if (first->type == SI_IMAGE_FULL) {
        if (first->minversion > I) {
            snprintf(why, sizeof(why),
                     "needs build %" PRId64 " or later installed (minversion), installed: %" PRId64,
                     first->minversion, I);
            return describe_err(err, SI_ERR_NOT_FOUND, first_line, why);
        }
        return SI_OK;
    }
    if (!has)
        return describe_err(err, SI_ERR_NOT_FOUND, first_line,
                            "the system records no build: the path must start with a full image");
    if (first->base != I) {
        snprintf(why, sizeof(why), "starts from build %" PRId64 ", but build %" PRId64
                                   " is installed", first->base, I);
        return describe_err(err, first->base < I ? SI_ERR_DOWNGRADE : SI_ERR_NOT_FOUND,
                            first_line, why);
    }
    return SI_OK;
}

/* The update lines are exactly the chosen images' files, in order. */
static si_result match_files(const si_command_file *cf, si_job_plan *plan, si_err *err)
{
    size_t next = 0; /* next command to look at */
    for (size_t k = 0; k < plan->nimages; k++) {
        const si_index_file **files = NULL;
        si_result r = si_image_sorted_files(plan->images[k], &files, err);
        if (r != SI_OK)
            return r;
        for (size_t f = 0; f < plan->images[k]->nfiles && r == SI_OK; f++) {
            const si_index_file *e = files[f];
            while (next < cf->count && cf->cmds[next].op != SI_CMD_UPDATE)
                next++;
            const char *name = si_job_basename(e->path);
            const char *sig = si_job_basename(e->signature);
            const char *why = si_protocol_reserved_why(name);
            if (!why)
                why = si_protocol_reserved_why(sig);
            if (why) {
                r = si_err_set(err, SI_ERR_UNSAFE_PATH,
                               "index.json: image %" PRId64 ": file '%.100s': %s",
                               plan->images[k]->version, e->path, why);
            } else if (next >= cf->count) {
                r = si_err_set(err, SI_ERR_COMMAND_FILE,
                               WHAT ": no update line for %s of image %" PRId64, name,
                               plan->images[k]->version);
            } else if (strcmp(cf->cmds[next].file, name) != 0 ||
                       strcmp(cf->cmds[next].sig, sig) != 0) {
                char want[600];
                snprintf(want, sizeof(want), "expected update %s %s (image %" PRId64 ")", name,
                         sig, plan->images[k]->version);
                r = describe_err(err, SI_ERR_COMMAND_FILE, &cf->cmds[next], want);
            } else {
                plan->files[plan->nfiles++] = (si_job_file){next, k, e};
                next++;
            }
        }
        free(files);
        if (r != SI_OK)
            return r;
    }
    while (next < cf->count && cf->cmds[next].op != SI_CMD_UPDATE)
        next++;
    if (next < cf->count)
        return describe_err(err, SI_ERR_COMMAND_FILE, &cf->cmds[next],
                            "not a file of the chosen images");
    return SI_OK;
}

si_result si_job_bind(const si_index *idx, const si_command_file *cf,
                      const si_job_installed *inst, si_job_plan *plan, si_err *err)
{
    memset(plan, 0, sizeof(*plan));
    si_result r = si_command_file_check(cf, err);
    if (r != SI_OK)
        return r;
    if (si_command_file_count(cf, SI_CMD_INDEX) != 1)
        return si_err_set(err, SI_ERR_COMMAND_FILE, WHAT ": the job needs exactly one index line");
    if ((r = collect_path(idx, cf, plan, err)) != SI_OK)
        return r;
    plan->starts_full = plan->images[0]->type == SI_IMAGE_FULL;
    plan->target = plan->images[plan->nimages - 1]->version;
    const si_command *first_line = NULL, *format_line = NULL;
    for (size_t i = 0; i < cf->count; i++) {
        const si_command *c = &cf->cmds[i];
        if (c->op == SI_CMD_IMAGE && !first_line)
            first_line = c;
        if (c->op == SI_CMD_FORMAT && c->target == SI_TARGET_SYSTEM)
            format_line = c;
    }
    if (plan->starts_full && !format_line)
        return describe_err(err, SI_ERR_COMMAND_FILE, first_line,
                            "a path that starts with a full image needs 'format system'");
    if (!plan->starts_full && format_line)
        return describe_err(err, SI_ERR_COMMAND_FILE, format_line,
                            "only a path that starts with a full image formats the system");
    if ((r = check_start(plan, inst, first_line, err)) != SI_OK)
        return r;
    return match_files(cf, plan, err);
}
