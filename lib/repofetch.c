/* repofetch.c - mirror a URL repository into a cache as it is verified. */
#include "repofetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "http.h"

#define URL_CAP 4096

struct si_repofetch {
    si_http *http;
    char url[URL_CAP];
    char cache[URL_CAP];
    uint64_t bytes, files;
};

si_result si_repofetch_open(const char *url, const char *ca_file, const char *cache,
                            si_repofetch **out, si_err *err)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        return si_err_set(err, SI_ERR_USAGE, "%s: not an http:// or https:// URL", url);
    si_repofetch *f = calloc(1, sizeof(*f));
    if (!f)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory");
    snprintf(f->url, sizeof(f->url), "%s", url);
    snprintf(f->cache, sizeof(f->cache), "%s", cache);
    si_http_opts o = {.base_url = f->url, .ca_file = ca_file, .protocols = "http,https",
                      .user_agent = "sysimage/1", .log_name = "sysimage", .connect_timeout = 30,
                      .low_speed_limit = SI_HTTP_LOW_SPEED_LIMIT,
                      .low_speed_time = SI_HTTP_LOW_SPEED_TIME, .retries = 3,
                      .budget_rate = SI_HTTP_BUDGET_RATE,
                      .budget_allowance = SI_HTTP_BUDGET_ALLOWANCE};
    si_result rc = si_http_open(&o, &f->http, err);
    if (rc != SI_OK) {
        free(f);
        return rc;
    }
    *out = f;
    return SI_OK;
}

void si_repofetch_close(si_repofetch *f)
{
    if (!f)
        return;
    si_http_close(f->http);
    free(f);
}

void si_repofetch_stats(const si_repofetch *f, uint64_t *bytes, uint64_t *files)
{
    *bytes = f->bytes;
    *files = f->files;
}

static si_result parent_dir(const char *local, si_err *err)
{
    char dir[URL_CAP];
    snprintf(dir, sizeof(dir), "%s", local);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return SI_OK;
    *slash = '\0';
    if (si_mkdir_p(dir, 0755) < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", dir, strerror(errno));
    return SI_OK;
}

static si_result fetch(void *ctx, const char *path, const char *local, uint64_t size,
                       uint64_t max, si_err *err)
{
    si_repofetch *f = ctx;
    si_result rc = parent_dir(local, err);
    if (rc != SI_OK)
        return rc;
    uint64_t got = 0;
    if (size > 0) { /* an update file: streamed to disk, at most size bytes */
        rc = si_http_download(f->http, path, local, size, NULL, NULL, &got, err);
    } else {        /* a document, bounded by its format */
        char *buf = NULL;
        size_t len = 0;
        int r = 0;
        if ((rc = si_http_get(f->http, path, (size_t)max, &buf, &len, err)) == SI_OK &&
            (r = si_write_file_atomic(local, buf, len, 0644)) < 0)
            rc = si_err_set(err, SI_ERR_IO, "%s: %s", local, strerror(-r));
        got = len;
        free(buf);
    }
    if (rc == SI_OK) {
        f->bytes += got;
        f->files++;
    }
    return rc;
}

void si_repofetch_src(si_repofetch *f, si_repo_src *src)
{
    memset(src, 0, sizeof(*src));
    src->root = f->cache;
    src->name = f->url;
    src->fetch = fetch;
    src->ctx = f;
}
