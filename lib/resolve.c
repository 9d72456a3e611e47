/* resolve.c - candidate upgrade paths, WeightedScorer and phasing, with the
 * semantics of system-image 3.x's candidates.py and scores.py (docs/formats.md, resolution).
 *
 * The index parser guarantees that every delta has a base lower than its
 * version, so paths strictly climb and the search terminates; the number of
 * candidates is bounded by SI_RESOLVE_MAX_CANDIDATES. */
#include "resolve.h"

#include <stdlib.h>
#include <string.h>

#include "phasing.h"

typedef struct entry {
    const si_image *img;
    size_t pos;             /* position in images[] */
} entry;

static int64_t key_base(const si_image *im)
{
    return im->type == SI_IMAGE_DELTA ? im->base : -1;
}

/* (type, version, base, position): duplicates end up adjacent, first first. */
static int cmp_identity(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->img->type != y->img->type)
        return x->img->type < y->img->type ? -1 : 1;
    if (x->img->version != y->img->version)
        return x->img->version < y->img->version ? -1 : 1;
    int64_t bx = key_base(x->img), by = key_base(y->img);
    if (bx != by)
        return bx < by ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

static int cmp_pos(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

/* Deltas by (base, position) for finding the next steps of a path. */
static int cmp_base_pos(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->img->base != y->img->base)
        return x->img->base < y->img->base ? -1 : 1;
    return cmp_pos(a, b);
}

typedef struct range {
    size_t next, end;
} range;

/* Deltas whose base is v: a contiguous run of the base-sorted array. */
static range next_steps(const entry *deltas, size_t n, int64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (deltas[mid].img->base < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < n && deltas[end].img->base == v)
        end++;
    return (range){lo, end};
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static si_result emit(si_candidates *out, const si_image **cur, size_t len, si_err *err)
{
    if (out->count >= SI_RESOLVE_MAX_CANDIDATES)
        return si_err_set(err, SI_ERR_TOO_LARGE, "index.json: more than %d upgrade paths",
                          SI_RESOLVE_MAX_CANDIDATES);
    if ((out->count & (out->count - 1)) == 0) { /* grow at powers of two */
        size_t cap = out->count ? out->count * 2 : 1;
        si_path *np = realloc(out->paths, cap * sizeof(*np));
        if (!np)
            return si_err_set(err, SI_ERR_NOMEM, "resolve: out of memory");
        out->paths = np;
    }
    si_path *p = &out->paths[out->count];
    memset(p, 0, sizeof(*p));
    p->images = malloc(len * sizeof(*p->images));
    if (!p->images)
        return si_err_set(err, SI_ERR_NOMEM, "resolve: out of memory");
    memcpy(p->images, cur, len * sizeof(*cur));
    p->nimages = len;
    for (size_t i = 0; i < len; i++) {
        for (size_t f = 0; f < cur[i]->nfiles; f++)
            p->size = sat_add(p->size, cur[i]->files[f].size);
        if (cur[i]->bootme)
            p->bootme++;
    }
    p->download = si_path_download_size(p, len);
    out->count++;
    return SI_OK;
}

/* Every maximal path from root, depth first, branches in images[] order. */
static si_result chase(const si_image *root, const entry *deltas, size_t nd, const si_image **cur,
                       range *frames, si_candidates *out, si_err *err)
{
    size_t len = 1;
    cur[0] = root;
    frames[0] = next_steps(deltas, nd, root->version);
    if (frames[0].next == frames[0].end)
        return emit(out, cur, 1, err);
    while (len > 0) {
        range *f = &frames[len - 1];
        if (f->next == f->end) {
            len--;
            continue;
        }
        const si_image *child = deltas[f->next++].img;
        cur[len] = child;
        frames[len] = next_steps(deltas, nd, child->version);
        len++;
        if (frames[len - 1].next == frames[len - 1].end) {
            si_result r = emit(out, cur, len, err);
            if (r != SI_OK)
                return r;
            len--;
        }
    }
    return SI_OK;
}

si_result si_find_candidates(const si_index *idx, int64_t build, si_candidates *out,
                             si_err *err)
{
    out->count = 0;
    out->paths = NULL;
    size_t n = idx->nimages;
    if (n == 0)
        return SI_OK;
    entry *all = malloc(n * sizeof(*all));
    entry *deltas = malloc(n * sizeof(*deltas));
    const si_image **cur = malloc((n + 1) * sizeof(*cur));
    range *frames = malloc((n + 1) * sizeof(*frames));
    si_result r = SI_OK;
    if (!all || !deltas || !cur || !frames) {
        r = si_err_set(err, SI_ERR_NOMEM, "resolve: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        all[i] = (entry){&idx->images[i], i};
    /* Deduplicate by identity, keeping the first of each, then restore
     * document order. */
    qsort(all, n, sizeof(*all), cmp_identity);
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        if (nu > 0) {
            const si_image *a = all[nu - 1].img, *b = all[i].img;
            if (a->type == b->type && a->version == b->version && key_base(a) == key_base(b))
                continue;
        }
        all[nu++] = all[i];
    }
    qsort(all, nu, sizeof(*all), cmp_pos);
    size_t nd = 0;
    for (size_t i = 0; i < nu; i++)
        if (all[i].img->type == SI_IMAGE_DELTA)
            deltas[nd++] = all[i];
    qsort(deltas, nd, sizeof(*deltas), cmp_base_pos);

    for (size_t i = 0; i < nu && r == SI_OK; i++) {
        const si_image *im = all[i].img;
        if (im->type == SI_IMAGE_FULL && im->version > build && im->minversion <= build)
            r = chase(im, deltas, nd, cur, frames, out, err);
    }
    for (size_t i = 0; i < nu && r == SI_OK; i++) {
        const si_image *im = all[i].img;
        if (im->type == SI_IMAGE_DELTA && im->base == build)
            r = chase(im, deltas, nd, cur, frames, out, err);
    }
out:
    free(all);
    free(deltas);
    free(cur);
    free(frames);
    if (r != SI_OK)
        si_candidates_free(out);
    return r;
}

int64_t si_candidates_target(const si_candidates *c)
{
    int64_t t = -1;
    for (size_t i = 0; i < c->count; i++) {
        const si_path *p = &c->paths[i];
        if (p->nimages && p->images[p->nimages - 1]->version > t)
            t = p->images[p->nimages - 1]->version;
    }
    return t;
}

void si_score_candidates(si_candidates *c)
{
    if (c->count == 0)
        return;
    int64_t max_build = si_candidates_target(c);
    uint64_t min_size = UINT64_MAX;
    for (size_t i = 0; i < c->count; i++)
        if (c->paths[i].size < min_size)
            min_size = c->paths[i].size;
    for (size_t i = 0; i < c->count; i++) {
        si_path *p = &c->paths[i];
        int64_t end = p->images[p->nimages - 1]->version;
        __int128 s = (__int128)100 * p->bootme + (__int128)((p->size - min_size) / SI_MIB) +
                     (__int128)9001 * (max_build - end);
        p->score = s > INT64_MAX ? INT64_MAX : (int64_t)s;
    }
}

typedef struct rank {
    int64_t score;
    uint64_t download;
    size_t nimages;
    size_t pos;
} rank;

static int cmp_rank(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    if (x->download != y->download)
        return x->download < y->download ? -1 : 1;
    if (x->nimages != y->nimages)
        return x->nimages < y->nimages ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

static rank path_rank(const si_candidates *c, size_t i)
{
    const si_path *p = &c->paths[i];
    return (rank){p->score, p->download, p->nimages, i};
}

long si_choose_winner(const si_candidates *c, int device_percentage)
{
    /* Walking the candidates in rank order and taking the first phased-in
     * one is the same as taking the lowest-ranked phased-in one. */
    long best = -1;
    for (size_t i = 0; i < c->count; i++) {
        const si_path *p = &c->paths[i];
        int pct = p->images[p->nimages - 1]->phased_percentage;
        if (pct <= 0 || device_percentage > pct)
            continue;
        rank ri = path_rank(c, i), rb = best >= 0 ? path_rank(c, (size_t)best) : ri;
        if (best < 0 || cmp_rank(&ri, &rb) < 0)
            best = (long)i;
    }
    return best;
}

uint64_t si_path_download_size(const si_path *p, size_t n)
{
    uint64_t total = 0;
    if (n > p->nimages)
        n = p->nimages;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p->images[i]->nfiles; j++) {
            const si_index_file *f = &p->images[i]->files[j];
            bool seen = false;
            for (size_t i2 = 0; i2 <= i && !seen; i2++)
                for (size_t j2 = 0; j2 < (i2 == i ? j : p->images[i2]->nfiles) && !seen; j2++)
                    seen = strcmp(p->images[i2]->files[j2].path, f->path) == 0;
            if (!seen)
                total = sat_add(total, f->size);
        }
    }
    return total;
}

void si_candidates_free(si_candidates *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++)
        free(c->paths[i].images);
    free(c->paths);
    c->paths = NULL;
    c->count = 0;
}

size_t si_path_bootme_count(const si_path *p)
{
    for (size_t i = 0; i < p->nimages; i++)
        if (p->images[i]->bootme)
            return i + 1;
    return p->nimages;
}

si_result si_resolve(const si_index *idx, const si_resolve_opts *o, si_resolution *out,
                     si_err *err)
{
    memset(out, 0, sizeof(*out));
    out->winner = -1;
    out->target = -1;
    if (!o->channel || !o->channel[0])
        return si_err_set(err, SI_ERR_USAGE, "resolve: no channel configured");
    if (o->build < 0)
        return si_err_set(err, SI_ERR_USAGE, "resolve: build %lld is negative",
                          (long long)o->build);
    out->channel_switch = o->alias && strcmp(o->alias, o->channel) != 0;
    out->build = out->channel_switch && !o->build_override ? 0 : o->build;
    out->phase_channel = o->alias ? o->alias : o->channel;
    si_result r = si_find_candidates(idx, out->build, &out->cand, err);
    if (r != SI_OK)
        return r;
    si_score_candidates(&out->cand);
    out->target = si_candidates_target(&out->cand);
    if (o->percentage_override) {
        out->device_percentage = o->device_percentage;
        out->has_device_percentage = true;
    } else if (out->cand.count > 0) {
        if (!o->machine_id) {
            si_candidates_free(&out->cand);
            return si_err_set(err, SI_ERR_USAGE, "resolve: no machine-id for phasing");
        }
        r = si_phased_percentage(out->phase_channel, out->target, o->machine_id,
                                 &out->device_percentage, err);
        if (r != SI_OK) {
            si_candidates_free(&out->cand);
            return r;
        }
        out->has_device_percentage = true;
    }
    out->winner = si_choose_winner(&out->cand, out->device_percentage);
    return SI_OK;
}

void si_resolution_free(si_resolution *r)
{
    if (r)
        si_candidates_free(&r->cand);
}

static cJSON *path_images_json(const si_path *p)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < p->nimages; i++) {
        const si_image *im = p->images[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        bool ok = cJSON_AddStringToObject(o, "type",
                                          im->type == SI_IMAGE_FULL ? "full" : "delta") &&
                  cJSON_AddNumberToObject(o, "version", (double)im->version) &&
                  (im->type == SI_IMAGE_DELTA
                       ? cJSON_AddNumberToObject(o, "base", (double)im->base) != NULL
                       : cJSON_AddNullToObject(o, "base") != NULL);
        if (!ok) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

si_result si_resolution_to_json(const si_resolution *r, cJSON **out, si_err *err)
{
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddNumberToObject(root, "build", (double)r->build) &&
              (r->has_device_percentage
                   ? cJSON_AddNumberToObject(root, "device_percentage",
                                             r->device_percentage) != NULL
                   : cJSON_AddNullToObject(root, "device_percentage") != NULL);
    cJSON *cands = ok ? cJSON_AddArrayToObject(root, "candidates") : NULL;
    ok = ok && cands;
    for (size_t i = 0; ok && i < r->cand.count; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON *imgs = path_images_json(&r->cand.paths[i]);
        ok = c && imgs && cJSON_AddItemToArray(cands, c);
        if (!ok) {
            cJSON_Delete(c);
            cJSON_Delete(imgs);
            break;
        }
        cJSON_AddItemToObject(c, "images", imgs);
        ok = cJSON_AddNumberToObject(c, "score", (double)r->cand.paths[i].score) != NULL &&
             cJSON_AddNumberToObject(c, "bytes", (double)r->cand.paths[i].download) != NULL;
    }
    if (ok) {
        cJSON *w = r->winner >= 0 ? path_images_json(&r->cand.paths[r->winner])
                                  : cJSON_CreateArray();
        ok = w && cJSON_AddItemToObject(root, "winner", w);
        if (!ok)
            cJSON_Delete(w);
    }
    if (!ok) {
        cJSON_Delete(root);
        return si_err_set(err, SI_ERR_NOMEM, "resolve: out of memory");
    }
    *out = root;
    return SI_OK;
}
