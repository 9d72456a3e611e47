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

/* outcome.c: each returns the run's result code (also kept in r->code). */
si_result rec_bootctl_write(struct rec *r, const char *request, unsigned tries, si_err *err);
unsigned rec_env_tries(struct rec *r);
si_result rec_save_state(struct rec *r, si_err *err);
void rec_write_result(struct rec *r, si_result code, const char *msg);
si_result rec_give_up(struct rec *r, si_result code, const char *msg);
si_result rec_failed(struct rec *r, si_result code, const char *msg);
si_result rec_refused(struct rec *r, si_result code, const char *msg);
si_result rec_succeed(struct rec *r, const char *msg);

/* check.c: SI_OK or the error; nothing written to any partition. */
si_result rec_check_update(struct rec *r, si_err *err);
void rec_find_raw_partitions(struct rec *r);

/* execute.c */
si_result rec_execute(struct rec *r, si_err *err);
void rec_describe(const si_command *c, char *out, size_t outlen);

#endif
