/* rec.h - the state of one recovery run, shared by its steps:
 *   run.c        the story: start -> load -> check -> execute -> report
 *   outcome.c    attempt counting, boot control, results, finishing
 *   check.c      everything verified before any partition is touched
 *   execute.c    the verbs' handlers (one per command-file verb)
 * Owned by recovery_run(); nothing here is global. */
#ifndef SI_RECOVERY_REC_H
#define SI_RECOVERY_REC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "attempts.h"
#include "command.h"
#include "grubenv.h"
#include "index.h"
#include "job.h"
#include "keyring.h"
#include "lastresult.h"
#include "manifest.h"
#include "partitions.h"
#include "recovery.h"
#include "rlog.h"
#include "trustrec.h"

#define REC_MAX_RAW_PARTS 8

struct rec {
    const recovery_opts *o;
    recovery_mode mode;         /* opts->mode, or factory reset by request */
    rlog log;
    char cache[PATH_MAX];
    char rdir[PATH_MAX];        /* <cache>/recovery */
    char sysmnt[PATH_MAX];
    char misc[SI_PART_PATH_MAX];
    char system[SI_PART_PATH_MAX];
    char userdata[SI_PART_PATH_MAX];
    bool cache_mounted, system_mounted;
    si_grubenv env;
    bool incomplete;            /* boot control: the system holds a partial install */
    char ab_slot;               /* A/B board: 'a' or 'b', the slot `system` is; 0 = not chosen */
    double point_saved_at;      /* when the attempt's point was last saved */
    /* the job */
    si_command_file *cf;
    bool wipe_cache;            /* format data: factory reset */
    char job[SI_ATTEMPTS_JOB_LEN + 1];
    si_attempts st;
    bool have_state;            /* st is this job's and may be saved */
    unsigned tries;
    /* what check established */
    si_trust trust;
    bool trust_init;
    si_index *idx;
    si_job_plan plan;
    si_job_installed installed;
    si_trust_record trec;       /* read from the system, raised by this job */
    /* per update line (command index): the manifest the index binds, when the
     * file is installed in one read (docs/recovery.md); else NULL */
    si_manifest *mf[SI_COMMAND_MAX_LINES];
    const si_index_file *entry[SI_COMMAND_MAX_LINES];
    bool check_version[SI_COMMAND_MAX_LINES]; /* its version record is checked once applied */
    size_t nraw;
    si_partition_map raw[REC_MAX_RAW_PARTS];
    char raw_paths[REC_MAX_RAW_PARTS][SI_PART_PATH_MAX];
    /* the report */
    si_result code;             /* the run's result once a step stopped it */
    si_last_result res;
    char step[SI_COMMAND_NAME_MAX + 64];
    char msg[SI_ERR_MSG_MAX + 128];
};

/* run.c helpers */
void rec_set_step(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rec_path(char *out, size_t outlen, const char *dir, const char *name);
si_result rec_part_path(struct rec *r, const char *label, char *out, size_t outlen, si_err *err);
void rec_unmount_system(struct rec *r);

/* abslot.c (A/B boards, docs/ab.md): with no partition labelled system, the
 * good slot of system_a/system_b (chosen once, from GRUB's counters); after a
 * job that wrote it, no trial of the other slot stays pending. */
si_result rec_ab_system(struct rec *r, char *out, size_t outlen, si_err *err);
void rec_ab_job_done(struct rec *r);

/* outcome.c: each returns the run's result code (also kept in r->code). */
si_result rec_bootctl_write(struct rec *r, const char *request, unsigned tries, si_err *err);
unsigned rec_env_tries(struct rec *r);
si_result rec_save_state(struct rec *r, si_err *err);
void rec_write_result(struct rec *r, si_result code, const char *msg);
si_result rec_give_up(struct rec *r, si_result code, const char *msg);
si_result rec_failed(struct rec *r, si_result code, const char *msg);
si_result rec_refused(struct rec *r, si_result code, const char *msg);
si_result rec_succeed(struct rec *r, const char *msg);
/* Stop the job on an incomplete system: reported, request and
 * system_incomplete kept, never tried again, /init told to stay. */
si_result rec_stop(struct rec *r, si_result code, const char *msg);
/* Before the first write to the system: system_incomplete=1 in the boot control. */
si_result rec_mark_incomplete(struct rec *r, si_err *err);
/* Does the job write the system partition (anything but `format data`)? */
bool rec_job_writes_system(const struct rec *r);
/* The attempt is at p: saved when it enters a new window, or every second. */
void rec_point(struct rec *r, si_point p);

/* check.c: SI_OK or the error; nothing written to any partition. */
si_result rec_check_update(struct rec *r, si_err *err);
void rec_find_raw_partitions(struct rec *r);

/* execute.c */
si_result rec_execute(struct rec *r, si_err *err);
void rec_describe(const si_command *c, char *out, size_t outlen);

#endif
