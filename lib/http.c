/* http.c - bounded HTTP(S) downloads with libcurl (http.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"

#include "fsutil.h"

#define URL_MAX 4096

struct si_http {
    CURL *curl;
    si_http_opts cfg;
    char errbuf[CURL_ERROR_SIZE];
};

si_result si_http_open(const si_http_opts *opts, si_http **out, si_err *err)
{
    si_http *n = calloc(1, sizeof(*n));
    if (!n)
        return si_err_set(err, SI_ERR_NOMEM, "network: out of memory");
    n->curl = curl_easy_init();
    if (!n->curl) {
        free(n);
        return si_err_set(err, SI_ERR_NETWORK, "network: curl_easy_init failed");
    }
    n->cfg = *opts;
    *out = n;
    return SI_OK;
}

void si_http_close(si_http *n)
{
    if (!n)
        return;
    curl_easy_cleanup(n->curl);
    free(n);
}

/* Paths come from signed documents, still: only plain absolute paths. */
static si_result make_url(const si_http *n, const char *path, char *url, si_err *err)
{
    if (path[0] != '/' || strstr(path, "/../") || strstr(path, "//") ||
        (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
        return si_err_set(err, SI_ERR_UNSAFE_PATH, "server path '%s': not a plain absolute path",
                          path);
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%' || c == '\\')
            return si_err_set(err, SI_ERR_UNSAFE_PATH,
                              "server path '%s': character 0x%02x not allowed", path, c);
    }
    size_t blen = strlen(n->cfg.base_url);
    while (blen > 0 && n->cfg.base_url[blen - 1] == '/')
        blen--;
    if (blen + strlen(path) + 1 > URL_MAX)
        return si_err_set(err, SI_ERR_TOO_LARGE, "server path '%s': URL too long", path);
    memcpy(url, n->cfg.base_url, blen);
    strcpy(url + blen, path);
    return SI_OK;
}

/* ---------------------------------------------------------------- parsing */
/* Up to 18 decimal digits (no sign, no overflow) at *p. */
static bool parse_digits(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 18)
            return false;
        v = v * 10 + (*s++ - '0');
    }
    if (digits == 0)
        return false;
    *p = s;
    *out = v;
    return true;
}

static bool skip_char(const char **p, const char *end, char c)
{
    if (*p == end || **p != c)
        return false;
    (*p)++;
    return true;
}

si_http_hdr si_http_parse_header(const char *line, size_t len, si_http_range *range)
{
    static const char name[] = "Content-Range:";
    const char *p = line, *end = line + len;
    if (len >= 5 && strncasecmp(line, "HTTP/", 5) == 0)
        return SI_HTTP_HDR_STATUS;
    if (len < sizeof(name) - 1 || strncasecmp(line, name, sizeof(name) - 1) != 0)
        return SI_HTTP_HDR_OTHER;
    p += sizeof(name) - 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p < 6 || strncasecmp(p, "bytes ", 6) != 0)
        return SI_HTTP_HDR_OTHER;
    p += 6;
    si_http_range r;
    if (!parse_digits(&p, end, &r.start) || !skip_char(&p, end, '-') ||
        !parse_digits(&p, end, &r.end) || !skip_char(&p, end, '/'))
        return SI_HTTP_HDR_OTHER;
    if (skip_char(&p, end, '*'))
        r.total = -1;
    else if (!parse_digits(&p, end, &r.total))
        return SI_HTTP_HDR_OTHER;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p != end || r.start > r.end || (r.total >= 0 && r.end >= r.total))
        return SI_HTTP_HDR_OTHER;
    *range = r;
    return SI_HTTP_HDR_RANGE;
}

/* ---------------------------------------------------------------- budget */
long si_http_budget(const si_http_opts *opts, uint64_t bytes)
{
    if (opts->budget_rate <= 0)
        return 0;
    uint64_t rate = (uint64_t)opts->budget_rate;
    if (opts->max_rate > 0 && (uint64_t)opts->max_rate < rate) /* a cap of our own */
        rate = opts->max_rate / 2 > 0 ? (uint64_t)opts->max_rate / 2 : 1;
    uint64_t secs = bytes / rate + (bytes % rate != 0);
    if (opts->budget_allowance > 0)
        secs += (uint64_t)opts->budget_allowance;
    return secs > LONG_MAX / 1000 ? LONG_MAX / 1000 : (long)secs;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The budget of a file is spent: abandoned (its .part kept for a later run). */
static si_result budget_exceeded(const char *url, long secs, uint64_t missing, si_err *err)
{
    return si_err_set(err, SI_ERR_NETWORK,
                      "%s: not complete within its time budget of %ld s (%" PRIu64
                      " bytes still missing; slow retrieval): abandoned",
                      url, secs, missing);
}

static void setup(si_http *n, const char *url)
{
    CURL *c = n->curl;
    curl_easy_reset(c);
    n->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, n->errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, n->cfg.protocols ? n->cfg.protocols : "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (n->cfg.ca_file) { /* else libcurl's default, the system's CA store */
        curl_easy_setopt(c, CURLOPT_CAINFO, n->cfg.ca_file);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, n->cfg.connect_timeout);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, n->cfg.low_speed_limit);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, n->cfg.low_speed_time);
    if (n->cfg.max_rate > 0) /* bandwidth cap (metered links, background staging) */
        curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)n->cfg.max_rate);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, n->cfg.user_agent ? n->cfg.user_agent : "sysimage/1");
    /* Content-Encoding would make byte counts differ from the index. */
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, NULL);
}

static si_result curl_failed(si_http *n, CURLcode cc, const char *url, si_err *err)
{
    return si_err_set(err, SI_ERR_NETWORK, "%s: %s", url,
                      n->errbuf[0] ? n->errbuf : curl_easy_strerror(cc));
}

/* ---------------------------------------------------------------- memory */
struct membuf {
    CURL *curl;
    char *buf;
    size_t len, cap, max;
    bool too_large;
    bool discard;   /* non-200 body: drop it */
};

static size_t mem_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct membuf *m = ud;
    size_t n = sz * nm;
    long code = 0;
    curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200) {
        /* an error page: dropped, but bounded like the document */
        m->discard = true;
        if (n > m->max - m->len)
            return 0;
        m->len += n;
        return n;
    }
    if (n > m->max - m->len) {
        m->too_large = true;
        return 0;
    }
    if (m->len + n + 1 > m->cap) {
        size_t ncap = m->cap ? m->cap : 16384;
        while (ncap < m->len + n + 1)
            ncap *= 2;
        char *nb = realloc(m->buf, ncap);
        if (!nb)
            return 0;
        m->buf = nb;
        m->cap = ncap;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    m->buf[m->len] = '\0';
    return n;
}

si_result si_http_get(si_http *n, const char *path, size_t max, char **buf, size_t *len,
                       si_err *err)
{
    char url[URL_MAX];
    si_result rc = make_url(n, path, url, err);
    if (rc != SI_OK)
        return rc;
    struct membuf m = {.curl = n->curl, .max = max};
    setup(n, url);
    curl_easy_setopt(n->curl, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(n->curl, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(n->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    long budget = si_http_budget(&n->cfg, max);
    if (budget > 0)
        curl_easy_setopt(n->curl, CURLOPT_TIMEOUT_MS, budget * 1000L);
    int64_t t0 = now_ms();
    CURLcode cc = curl_easy_perform(n->curl);
    long code = 0;
    curl_easy_getinfo(n->curl, CURLINFO_RESPONSE_CODE, &code);
    if (m.discard && code != 200) {
        free(m.buf);
        return si_err_set(err, code == 404 ? SI_ERR_NOT_FOUND : SI_ERR_NETWORK,
                          "%s: HTTP status %ld", url, code);
    }
    if (m.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        free(m.buf);
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %zu bytes", url, max);
    }
    if (cc != CURLE_OK) {
        free(m.buf);
        if (cc == CURLE_OPERATION_TIMEDOUT && budget > 0 && now_ms() - t0 >= budget * 1000)
            return si_err_set(err, SI_ERR_NETWORK,
                              "%s: not received within its time budget of %ld s "
                              "(slow retrieval): abandoned", url, budget);
        return curl_failed(n, cc, url, err);
    }
    if (code != 200) {
        free(m.buf);
        return si_err_set(err, code == 404 ? SI_ERR_NOT_FOUND : SI_ERR_NETWORK,
                          "%s: HTTP status %ld", url, code);
    }
    if (!m.buf) {
        m.buf = malloc(1);
        if (!m.buf)
            return si_err_set(err, SI_ERR_NOMEM, "%s: out of memory", url);
        m.buf[0] = '\0';
    }
    *buf = m.buf;
    *len = m.len;
    return SI_OK;
}

/* ---------------------------------------------------------------- files */
struct filedl {
    CURL *curl;
    int fd;
    uint64_t size;          /* what the index says */
    uint64_t have;          /* bytes in .part before this request */
    uint64_t got;           /* bytes written by this request */
    bool checked;           /* status/Content-Range checked */
    bool restart;           /* server ignored Range: started over from 0 */
    si_result fail;         /* set by the callbacks */
    char why[256];
    si_http_range cr;       /* Content-Range; start -1 = none */
    si_http_progress_fn progress;
    void *pctx;
    const char *name;
};

static size_t file_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct filedl *d = ud;
    size_t n = sz * nm;
    si_http_range r;
    switch (si_http_parse_header(p, n, &r)) {
    case SI_HTTP_HDR_STATUS: /* a new response */
        d->cr.start = d->cr.end = d->cr.total = -1;
        break;
    case SI_HTTP_HDR_RANGE:
        d->cr = r;
        break;
    case SI_HTTP_HDR_OTHER:
        break;
    }
    return n;
}

static size_t file_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct filedl *d = ud;
    size_t n = sz * nm;
    if (!d->checked) {
        long code = 0;
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && d->have > 0) {
            /* Range ignored: the whole file follows; start over. */
            if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
                d->fail = SI_ERR_IO;
                snprintf(d->why, sizeof(d->why), "truncate: %s", strerror(errno));
                return 0;
            }
            d->have = 0;
            d->restart = true;
        } else if (code == 206) {
            if (d->cr.start != (int64_t)d->have) {
                d->fail = SI_ERR_NETWORK;
                snprintf(d->why, sizeof(d->why),
                         "server answered the range from %" PRIu64 " with one from %" PRId64,
                         d->have, d->cr.start);
                return 0;
            }
            if (d->cr.total >= 0 && (uint64_t)d->cr.total != d->size) {
                d->fail = SI_ERR_SIZE;
                snprintf(d->why, sizeof(d->why),
                         "server has %" PRId64 " bytes, the index says %" PRIu64, d->cr.total,
                         d->size);
                return 0;
            }
        } else if (code == 416) {
            d->fail = SI_ERR_SIZE;
            snprintf(d->why, sizeof(d->why),
                     "server refuses the range from %" PRIu64
                     " (file smaller than the %" PRIu64 " bytes the index says)",
                     d->have, d->size);
            return 0;
        } else if (code != 200) {
            d->fail = code == 404 ? SI_ERR_NOT_FOUND : SI_ERR_NETWORK;
            snprintf(d->why, sizeof(d->why), "HTTP status %ld", code);
            return 0;
        }
        d->checked = true;
    }
    if (n > d->size - d->have - d->got) {
        d->fail = SI_ERR_SIZE;
        snprintf(d->why, sizeof(d->why), "server sends more than the %" PRIu64
                 " bytes the index says", d->size);
        return 0;
    }
    if (si_write_all(d->fd, p, n) < 0) {
        d->fail = errno == ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO;
        snprintf(d->why, sizeof(d->why), "write: %s", strerror(errno));
        return 0;
    }
    d->got += n;
    if (d->progress)
        d->progress(d->pctx, d->name, d->have + d->got, d->size);
    return n;
}

static bool retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Open (or create) the .part file for writing, never through a symlink and
 * never blocking on a FIFO: anything but a regular file there (planted on
 * the cache partition) is removed and the download starts afresh. */
static si_result open_part(const char *part, int *out, si_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(part, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0)
                (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            *out = fd;
            return SI_OK;
        }
        int e = fd >= 0 ? EINVAL : errno;
        if (fd >= 0)
            close(fd);
        if (e == ENOSPC)
            return si_err_set(err, SI_ERR_NO_SPACE, "%s: %s", part, strerror(e));
        if (e != ELOOP && e != ENXIO && e != EINVAL && e != EISDIR && e != EWOULDBLOCK)
            return si_err_set(err, SI_ERR_IO, "%s: %s", part, strerror(e));
        if (unlink(part) < 0 && errno != ENOENT)
            return si_err_set(err, SI_ERR_IO, "%s: not a regular file and cannot be removed: %s",
                              part, strerror(errno));
    }
    return si_err_set(err, SI_ERR_IO, "%s: not a regular file", part);
}

/* Where the .part stands: its size, truncated when longer than the file
 * (not ours), and the write offset at its end. */
static si_result part_position(int fd, const char *part, uint64_t size, uint64_t *have,
                               si_err *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", part, strerror(errno));
    *have = (uint64_t)st.st_size;
    if (*have > size) { /* not ours: start over */
        if (ftruncate(fd, 0) < 0)
            return si_err_set(err, SI_ERR_IO, "%s: %s", part, strerror(errno));
        *have = 0;
    }
    if (lseek(fd, (off_t)*have, SEEK_SET) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", part, strerror(errno));
    return SI_OK;
}

/* The outcome of one request: SI_OK with *retry set when the transfer may
 * be resumed, else SI_OK (file complete) or the error. */
static si_result judge_attempt(si_http *n, struct filedl *d, CURLcode cc, const char *url,
                               uint64_t size, bool *retry, si_err *err)
{
    *retry = false;
    if (d->fail != SI_OK)
        return si_err_set(err, d->fail, "%s: %s", url, d->why);
    long code = 0;
    curl_easy_getinfo(n->curl, CURLINFO_RESPONSE_CODE, &code);
    if (cc == CURLE_OK && code == 416)
        return si_err_set(err, SI_ERR_SIZE,
                          "%s: server refuses the range from %" PRIu64
                          " (file smaller than the %" PRIu64 " bytes the index says)",
                          url, d->have, size);
    if (cc == CURLE_OK && code != 200 && code != 206)
        return si_err_set(err, code == 404 ? SI_ERR_NOT_FOUND : SI_ERR_NETWORK,
                          "%s: HTTP status %ld", url, code);
    if (cc == CURLE_OK && d->have + d->got != size)
        return si_err_set(err, SI_ERR_SIZE,
                          "%s: server sent %" PRIu64 " bytes, the index says %" PRIu64, url,
                          d->have + d->got, size);
    if (cc == CURLE_OK)
        return SI_OK;
    if (!retryable(cc))
        return curl_failed(n, cc, url, err);
    *retry = true;
    return SI_OK;
}

/* One GET of url from *have on into fd, for at most timeout_ms (0: no limit). */
static CURLcode request_range(si_http *n, const char *url, struct filedl *d, int64_t timeout_ms)
{
    setup(n, url);
    if (timeout_ms > 0)
        curl_easy_setopt(n->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(n->curl, CURLOPT_WRITEFUNCTION, file_write);
    curl_easy_setopt(n->curl, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(n->curl, CURLOPT_HEADERFUNCTION, file_header);
    curl_easy_setopt(n->curl, CURLOPT_HEADERDATA, d);
    char range[64];
    if (d->have > 0) {
        snprintf(range, sizeof(range), "%" PRIu64 "-", d->have);
        curl_easy_setopt(n->curl, CURLOPT_RANGE, range);
    }
    if (d->progress)
        d->progress(d->pctx, d->name, d->have, d->size);
    return curl_easy_perform(n->curl);
}

/* Sync, close and rename the .part into place; drop a wrong .part. */
static si_result finish_part(int fd, const char *part, const char *dest, si_result rc,
                             si_err *err)
{
    if (rc == SI_OK && fsync(fd) < 0)
        rc = si_err_set(err, errno == ENOSPC ? SI_ERR_NO_SPACE : SI_ERR_IO, "%s: fsync: %s",
                        part, strerror(errno));
    if (close(fd) < 0 && rc == SI_OK)
        rc = si_err_set(err, SI_ERR_IO, "%s: close: %s", part, strerror(errno));
    if (rc == SI_OK && rename(part, dest) < 0)
        rc = si_err_set(err, SI_ERR_IO, "%s: rename: %s", dest, strerror(errno));
    /* Keep a .part that may resume later; drop one that is wrong. */
    if (rc == SI_ERR_SIZE || rc == SI_ERR_NOT_FOUND)
        unlink(part);
    return rc;
}

si_result si_http_download(si_http *n, const char *path, const char *dest, uint64_t size,
                            si_http_progress_fn progress, void *pctx, uint64_t *fetched, si_err *err)
{
    char url[URL_MAX], part[4096];
    si_result rc = make_url(n, path, url, err);
    if (rc != SI_OK)
        return rc;
    if (snprintf(part, sizeof(part), "%s.part", dest) >= (int)sizeof(part))
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: path too long", dest);
    const char *name = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
    uint64_t total_fetched = 0;
    int fd = -1;
    if ((rc = open_part(part, &fd, err)) != SI_OK)
        return rc;
    long budget = 0;
    int64_t deadline = 0;
    for (long attempt = 0;; attempt++) {
        uint64_t have = 0;
        if ((rc = part_position(fd, part, size, &have, err)) != SI_OK || have == size)
            break;
        if (attempt == 0) { /* the budget of what is missing */
            budget = si_http_budget(&n->cfg, size - have);
            deadline = now_ms() + (int64_t)budget * 1000;
        }
        int64_t left = deadline - now_ms();
        if (budget > 0 && left <= 0) {
            rc = budget_exceeded(url, budget, size - have, err);
            break;
        }
        struct filedl d = {.curl = n->curl, .fd = fd, .size = size, .have = have,
                           .cr = {-1, -1, -1}, .progress = progress, .pctx = pctx, .name = name};
        CURLcode cc = request_range(n, url, &d, budget > 0 ? left : 0);
        total_fetched += d.got;
        bool retry = false;
        if ((rc = judge_attempt(n, &d, cc, url, size, &retry, err)) != SI_OK || !retry)
            break;
        if (budget > 0 && now_ms() >= deadline) {
            rc = budget_exceeded(url, budget, size - d.have - d.got, err);
            break;
        }
        if (attempt >= n->cfg.retries) {
            rc = curl_failed(n, cc, url, err);
            break;
        }
        fprintf(stderr, "%s: %s: %s; resuming (attempt %ld of %ld)\n",
                n->cfg.log_name ? n->cfg.log_name : "sysimage", name,
                n->errbuf[0] ? n->errbuf : curl_easy_strerror(cc), attempt + 2,
                n->cfg.retries + 1);
        if (d.got == 0)
            sleep(1);
    }
    if (fetched)
        *fetched = total_fetched;
    return finish_part(fd, part, dest, rc, err);
}
