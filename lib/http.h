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
} si_http_opts;

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
 * errors are retried (resuming) opts->retries times. *fetched (may be NULL)
 * gets the bytes received over the network. */
si_result si_http_download(si_http *n, const char *path, const char *dest, uint64_t size,
                           si_http_progress_fn progress, void *pctx, uint64_t *fetched,
                           si_err *err);

#endif
