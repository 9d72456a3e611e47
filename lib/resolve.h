/* resolve.h - upgrade-path resolution, system-image 3.x semantics (docs/formats.md, resolution).
 *
 *   si_resolution res;
 *   si_resolve_opts o = {.build = installed, .channel = configured_target,
 *                        .alias = channel->alias, .machine_id = id};
 *   si_resolve(idx, &o, &res, &err);     // candidates, scores, phasing, winner
 *   if (res.winner >= 0) {
 *       const si_path *w = &res.candidates[res.winner];
 *       size_t n = si_path_bootme_count(w);   // images to download/apply now
 *       ...
 *   }
 *   si_resolution_free(&res);
 *
 * Paths point into the index: keep it alive while the resolution is used. */
#ifndef SI_RESOLVE_H
#define SI_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "index.h"
#include "result.h"

/* A fork-heavy index could describe exponentially many paths. */
#define SI_RESOLVE_MAX_CANDIDATES 4096
#define SI_MIB (1024 * 1024)

typedef struct si_path {
    size_t nimages;
    const si_image **images;   /* in application order; point into the index */
    uint64_t size;             /* bytes of every file of every image (saturating) */
    uint64_t download;         /* bytes to download: a file (by path) shared by several
                                  images counts once (saturating); breaks score ties */
    unsigned bootme;           /* images with bootme */
    int64_t score;             /* set by si_score_candidates (saturating) */
} si_path;

typedef struct si_candidates {
    size_t count;
    si_path *paths;
} si_candidates;

/* Candidate paths from `build`: images deduplicated by (type, version, base),
 * first kept; every full with version > build and minversion <= build, and
 * every delta with base == build, starts a path; paths extend with each delta
 * whose base is their last version (a fork gives one path per branch, in
 * images[] order) until none does. Full-rooted paths first, then
 * delta-rooted ones, each in images[] order. Scores are not computed. */
si_result si_find_candidates(const si_index *idx, int64_t build, si_candidates *out,
                             si_err *err);
/* WeightedScorer: 100 x bootme images + floor((size - min size) / MiB)
 * + 9001 x (max end version - end version). Lowest wins. */
void si_score_candidates(si_candidates *c);
/* Highest end version over all candidates; -1 when there are none. */
int64_t si_candidates_target(const si_candidates *c);
/* Index of the winner: walk the candidates by score, equal scores by the
 * smaller download (bytes), then by fewer images, then the earlier candidate
 * (docs/resolution.md: the tie-break is ours, system-image's is arbitrary),
 * and take the first whose last image has phased-percentage > 0 and
 * device_percentage <= it; -1 when none (up to date). Needs scores. */
long si_choose_winner(const si_candidates *c, int device_percentage);
void si_candidates_free(si_candidates *c);

/* Bytes to download for the first n images of p; a file (by path) shared by
 * several images counts once. n >= p->nimages gives p->download. */
uint64_t si_path_download_size(const si_path *p, size_t n);

/* Images to download and apply in this round: up to and including the first
 * image with bootme (all of them when none has it). */
size_t si_path_bootme_count(const si_path *p);

typedef struct si_resolve_opts {
    int64_t build;              /* installed build (0: nothing installed) */
    bool build_override;        /* build given explicitly: no squash on a channel switch */
    const char *channel;        /* configured channel target (required) */
    const char *alias;          /* the channel's alias in channels.json, NULL if none */
    const char *machine_id;     /* stripped /etc/machine-id; unused with an override */
    bool percentage_override;   /* use device_percentage instead of the seeded one */
    int device_percentage;
} si_resolve_opts;

typedef struct si_resolution {
    int64_t build;              /* build resolved from (0 after a channel switch) */
    bool channel_switch;        /* alias set and different from the configured target */
    const char *phase_channel;  /* alias if any, else the configured channel (borrowed) */
    bool has_device_percentage; /* false only when there was no candidate (no target) */
    int device_percentage;
    int64_t target;             /* highest end version; -1 without candidates */
    si_candidates cand;         /* scored */
    long winner;                /* index into cand.paths, -1 when up to date */
} si_resolution;

si_result si_resolve(const si_index *idx, const si_resolve_opts *opts, si_resolution *out,
                     si_err *err);
void si_resolution_free(si_resolution *r);

/* {"build": N, "device_percentage": P|null,
 *  "candidates": [{"images": [{"type": "full", "version": 1300, "base": null}, ...],
 *                  "score": S, "bytes": B}, ...],      B = the path's download
 *  "winner": [images of the winning path] ([] when up to date)}
 * Print it with si_json_print_sorted. */
si_result si_resolution_to_json(const si_resolution *r, cJSON **out, si_err *err);

#endif
