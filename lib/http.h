/* http.h - bounded HTTP(S) downloads with libcurl, shared by the stub and
 * the host tool (`sysimage image --repo URL`): small documents into memory,
 * update files onto disk through <file>.part, resumed with Range requests,
 * never more bytes than a signed document announced.
 *
 * libcurl is linked dynamically into the stub and the host tool only: the
 * static recovery never references this module (docs/architecture.md). */
#ifndef SI_HTTP_H
#define SI_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

typedef struct si_http si_http;

/* The strings must outlive the si_http. */
typedef struct si_http_opts {
    const char *base_url;    /* "https://host/path"; server paths are appended */
    const char *ca_file;     /* CA bundle; NULL: libcurl's default (the system's store) */
    const char *protocols;   /* CURLOPT_PROTOCOLS_STR; NULL: "https" only */
    const char *user_agent;  /* NULL: "sysimage/1" */
    const char *log_name;    /* prefix of the "resuming" notes on stderr */
    long connect_timeout;    /* seconds */
    long low_speed_limit;    /* bytes/s ... */
    long low_speed_time;     /* ... during this many seconds aborts a transfer */
    long retries;            /* resumed attempts per file after a transfer error */
    long max_rate;           /* bytes/s of downloads; 0 = no cap */
    /* Time budget of one file (slow retrieval, a server trickling just above
     * low_speed_limit): budget_allowance seconds plus its size at budget_rate
     * bytes/s (at max_rate / 2 when a cap lower than budget_rate is set), over
     * all its resumed attempts; 0 = no budget. */
    long budget_rate;        /* bytes/s */
    long budget_allowance;   /* seconds */
} si_http_opts;

/* Defaults shared by the stub (client.ini) and the host tool: a transfer
 * slower than 1 KiB/s for a minute is cut; a file has 120 s plus its size at
 * 4 KiB/s (client-stub/README.md, "Slow retrieval"). */
#define SI_HTTP_LOW_SPEED_LIMIT 1024
#define SI_HTTP_LOW_SPEED_TIME 60
#define SI_HTTP_BUDGET_RATE 4096
#define SI_HTTP_BUDGET_ALLOWANCE 120

/* One response header line as libcurl hands it over (not NUL-terminated,
 * CRLF included or not): the start of a response ("HTTP/..."), a
 * well-formed "Content-Range: bytes A-B/T" (T may be "*", then total is -1;
 * A <= B, B < T, numbers of at most 18 digits), or anything else (a malformed
 * Content-Range included: the caller then sees no range). */
typedef enum { SI_HTTP_HDR_OTHER, SI_HTTP_HDR_STATUS, SI_HTTP_HDR_RANGE } si_http_hdr;
typedef struct si_http_range {
    int64_t start, end, total;
} si_http_range;
si_http_hdr si_http_parse_header(const char *line, size_t len, si_http_range *range);
/* The time budget in seconds of a transfer of `bytes` under opts (see
 * budget_rate); 0 = none. */
long si_http_budget(const si_http_opts *opts, uint64_t bytes);

typedef void (*si_http_progress_fn)(void *ctx, const char *name, uint64_t done, uint64_t total);

si_result si_http_open(const si_http_opts *opts, si_http **out, si_err *err);
void si_http_close(si_http *n);
/* GET base_url + path into a malloc'd NUL-terminated buffer of at most max
 * bytes. A 404 is SI_ERR_NOT_FOUND; more than max bytes is SI_ERR_TOO_LARGE.
 * path must be a plain absolute path (no "..", "//", '?', '#', '%', controls). */
si_result si_http_get(si_http *n, const char *path, size_t max, char **buf, size_t *len,
                      si_err *err);
/* Download base_url + path into dest (which must end up exactly `size` bytes),
 * through dest.part: an existing .part is resumed with a Range request; the
 * server is never allowed to send more than `size` bytes in all. Transfer
 * errors are retried (resuming) opts->retries times, all within the file's
 * time budget (si_http_budget of the bytes missing at the start): past it the
 * download is abandoned (SI_ERR_NETWORK naming the file; the .part is kept for
 * a later run). *fetched (may be NULL) gets the bytes received over the
 * network. */
si_result si_http_download(si_http *n, const char *path, const char *dest, uint64_t size,
                           si_http_progress_fn progress, void *pctx, uint64_t *fetched,
                           si_err *err);

#endif
