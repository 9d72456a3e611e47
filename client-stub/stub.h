/* stub.h - internals shared by the modules of sysimage-stub, the small client
 * of the normal OS (docs/architecture.md, docs/formats.md): configuration (config.c), HTTPS
 * downloads (net.c), check/stage (update.c), recovery requests and status
 * (recovery_request.c over the boot-control backend bootctl.c), the offline
 * resolver (resolve.c over lib/resolve). */
#ifndef SI_STUB_H
#define SI_STUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "channels.h"
#include "http.h"
#include "index.h"
#include "ini.h"
#include "keyring.h"
#include "phasing.h"
#include "protocol.h"
#include "resolve.h"
#include "result.h"
#include "trustrec.h"

#define STUB_DEFAULT_CONFIG "/etc/sysimage/client.ini"
#define STUB_STATE_FILE "state.json"        /* in state_dir */
#define STUB_STATE_MAX_BYTES 4096
#define STUB_COMMAND_FILE SI_PROTO_COMMAND
#define STUB_LAST_RESULT SI_PROTO_RESULT
#define STUB_STAGED_FILE "staged.json"      /* what stage left in cache_dir */
#define PATH_CAP 4096

/* ------------------------------------------------------------ config.c */
typedef struct stub_config {
    si_ini *ini;                 /* owns every string below */
    const char *path;            /* the config file */
    const char *base_url;        /* [service] base */
    const char *channel;         /* [service] channel */
    const char *device;          /* [service] device */
    const char *channel_target;  /* [service] channel_target (default: channel) */
    const char *cache_dir;       /* [system] cache_dir */
    const char *state_dir;       /* [system] state_dir */
    const char *machine_id;      /* [system] machine_id (a path) */
    const char *version_file;    /* [system] version_file */
    const char *boot_control;    /* [system] boot_control */
    const char *system_root;     /* [system] system_root: holds the recovery's trust record */
    const char *archive_master;  /* [trust] archive_master */
    const char *ca_file;         /* [trust] ca_file */
    long connect_timeout;        /* [network] connect_timeout, seconds */
    long low_speed_limit;        /* [network] low_speed_limit, bytes/s */
    long low_speed_time;         /* [network] low_speed_time, seconds */
    long retries;                /* [network] retries per file */
    long max_rate;               /* [network] max_rate, bytes/s of downloads; 0 = no cap */
    long budget_rate;            /* [network] budget_rate, bytes/s (time budget per file) */
    long budget_allowance;       /* [network] budget_allowance, seconds added to it */
    long percentage;             /* [service] percentage, the device's phasing; -1: seeded */
} stub_config;

si_result stub_config_load(const char *path, stub_config *cfg, si_err *err);
void stub_config_free(stub_config *cfg);
/* The installed build from cfg->version_file ({"build": N, "channel": "..."}). */
si_result stub_read_build(const stub_config *cfg, int64_t *build, si_err *err);

/* ------------------------------------------------------------ net.c */
/* The stub's downloads are lib/http's (si_http_get, si_http_download), opened
 * with the [service] and [network] settings: HTTPS only, cfg->ca_file. */
si_result stub_net_open(const stub_config *cfg, si_http **out, si_err *err);

/* ------------------------------------------------------------ state.c */
/* What this device verified before (<state_dir>/state.json, a lib/trustrec
 * record); an absent file is a first run (nothing seen). */
si_result stub_state_read(const stub_config *cfg, si_trust_record *rec, si_err *err);
/* Raise rec to the recovery's trust record on cfg->system_root (the xattr
 * SI_TRUSTREC_XATTR, which a factory reset does not wipe), floor by floor.
 * Never fails: when the record cannot be read (no privilege, no xattrs,
 * unparsable) rec stays as it is and a note goes to stderr. */
void stub_state_merge_system(const stub_config *cfg, si_trust_record *rec);
si_result stub_state_write(const stub_config *cfg, const si_trust_record *rec, si_err *err);

/* ------------------------------------------------------------ discover.c */
typedef struct stub_opts {
    const char *config;
    bool json;
    bool has_build;
    int64_t build;
    bool no_reboot;
    int percentage;               /* --percentage (check, stage); -1: none */
} stub_opts;

/* Everything `check` learnt, owned by one run (discover.c). */
typedef struct stub_discovery {
    stub_config cfg;
    si_http *net;
    si_trust trust;
    bool trust_ready;
    char tmpdir[PATH_CAP / 2];    /* downloaded keyrings/documents */
    int lock_fd;                  /* flock on <state_dir>/lock */
    bool locked;
    bool has_blacklist;
    bool has_device_keyring;
    si_trust_record seen;         /* state.json raised to the system's trust record */
    si_trust_record stored;       /* state.json as read */
    int64_t now;                  /* the clock rule: clock, build time, newest index seen */
    char blacklist_sha256[65];    /* of the blacklist served, "" when none */
    int64_t build;                /* installed build */
    char machine_id[SI_MACHINE_ID_MAX + 1];
    si_channels *channels;
    si_index *index;
    si_resolution res;
    bool res_ready;
} stub_discovery;

/* Keyrings (in command-file order) as downloaded into tmpdir and staged. */
extern const si_keyring_type stub_ring_order[4];

/* The verified chain keyrings -> channels.json -> index.json, revocation and
 * freshness checks, the resolved path; dc is always to be freed. */
si_result stub_discover(const stub_opts *o, stub_discovery *dc, si_err *err);
void stub_discovery_free(stub_discovery *dc);

/* Exit status of `check` when there is nothing to install (client-stub/README.md). */
#define STUB_EXIT_UP_TO_DATE 100

/* The update `check` found (or "up to date"), as text or one JSON line. */
void stub_print_update(const stub_discovery *dc, bool json);
int stub_cmd_check(const stub_opts *o);

/* ------------------------------------------------------------ stage.c */
int stub_cmd_stage(const stub_opts *o);
/* Remove the command file; a pending update request pointing at it is withdrawn. */
si_result stub_drop_command_file(const stub_config *cfg, si_err *err);

/* ------------------------------------------------------------ recovery_request.c */
int stub_cmd_reboot_recovery(const stub_opts *o, bool factory_reset);
int stub_cmd_status(const stub_opts *o);

/* ------------------------------------------------------------ install.c (A/B, docs/ab.md) */
int stub_cmd_install(const stub_opts *o);
int stub_cmd_mark_good(const stub_opts *o);
/* `status` of an A/B device: booted/good/trial slot, the last rollback
 * ({"error": ...} when unreadable); NULL on a device without [ab]. */
cJSON *stub_ab_state(const stub_config *cfg);
void stub_ab_status_text(const cJSON *ab);

/* ------------------------------------------------------------ resolve.c */
int stub_cmd_resolve(int argc, char **argv);

/* ------------------------------------------------------------ main.c */
/* Print "sysimage-stub: <msg>" (and a JSON error line when json) and return the code. */
int stub_fail(const si_err *err, bool json);
/* Print obj as one line of JSON on stdout (flushed) and free it; NULL (out of
 * memory while building it) prints nothing. */
void stub_print_json_line(cJSON *obj);

#endif
