/* lastresult.h - the recovery's report, /cache/recovery/last_result.json
 * (docs/design.md §7), read by the stub after the reboot and by tests:
 *
 *   {"result": 0, "result_name": "ok", "message": "...", "mode": "update",
 *    "from_version": 10, "to_version": 12, "step": "update full.tar.zst",
 *    "durations": {"verify": 1250, "apply": 30500, "total": 33012},
 *    "dry_run": false}
 *
 * from_version/to_version are null when unknown; durations are whole
 * milliseconds (given in seconds to si_last_result_add_duration). */
#ifndef SI_LASTRESULT_H
#define SI_LASTRESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_LAST_RESULT_MAX_DURATIONS 8

typedef struct si_last_result {
    si_result result;
    const char *message;        /* NULL or "": the code's generic message */
    const char *mode;           /* "update" | "factory-reset" */
    bool has_from;
    int64_t from_version;
    bool has_to;
    int64_t to_version;
    const char *step;           /* last step reached; NULL = "" */
    bool dry_run;
    size_t ndurations;
    struct {
        const char *name;
        double seconds;
    } durations[SI_LAST_RESULT_MAX_DURATIONS];
} si_last_result;

/* Add (or add to) a named duration; silently ignores more than the maximum. */
void si_last_result_add_duration(si_last_result *r, const char *name, double seconds);
/* malloc'd canonical JSON (sorted keys, 4-space indent, trailing newline). */
si_result si_last_result_format(const si_last_result *r, char **out, si_err *err);
/* Atomic write of the JSON to path. */
si_result si_last_result_write(const char *path, const si_last_result *r, si_err *err);

#endif
