/* unpack.c - a decompressing, hashing reader thread (unpack.h). */
#include "unpack.h"
#include "sha256.h"
#include "tarformat.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (128 * 1024)

struct slot {
    size_t len;
    uint64_t in_done;
};

struct si_unpack {
    int fd;
    const char *what;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf;             /* SI_UNPACK_SLOTS * SI_UNPACK_SLOT */
    struct slot slot[SI_UNPACK_SLOTS];
    size_t head, count;             /* oldest full slot, full slots */
    bool held;                      /* the consumer holds slot head */
    bool eof, stop;                 /* producer done; consumer wants it to stop */
    si_result rc;                   /* producer's error */
    si_err err;
    bool threaded;                  /* else the consumer produces each piece itself */
    /* producer only */
    struct archive *a;
    bool opened;
    unsigned char *inbuf;
    si_sha256 h;
    uint64_t in_done;
    uint8_t sha[32];
};

static la_ssize_t file_read(struct archive *a, void *cd, const void **buf)
{
    si_unpack *u = cd;
    for (;;) {
        ssize_t r = read(u->fd, u->inbuf, READ_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            archive_set_error(a, errno, "read: %s", strerror(errno));
            return -1;
        }
        si_sha256_update(&u->h, u->inbuf, (size_t)r);
        u->in_done += (uint64_t)r;
        *buf = u->inbuf;
        return r;
    }
}

/* Wait for a free slot; NULL when the consumer stopped. */
static unsigned char *slot_get(si_unpack *u, size_t *idx)
{
    pthread_mutex_lock(&u->mu);
    while (!u->stop && u->count == SI_UNPACK_SLOTS)
        pthread_cond_wait(&u->cv, &u->mu);
    bool stop = u->stop;
    *idx = (u->head + u->count) % SI_UNPACK_SLOTS;
    pthread_mutex_unlock(&u->mu);
    return stop ? NULL : u->buf + *idx * SI_UNPACK_SLOT;
}

static void slot_put(si_unpack *u, size_t len)
{
    pthread_mutex_lock(&u->mu);
    size_t idx = (u->head + u->count) % SI_UNPACK_SLOTS;
    u->slot[idx] = (struct slot){len, u->in_done};
    u->count++;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

static void finish(si_unpack *u, si_result rc)
{
    pthread_mutex_lock(&u->mu);
    u->rc = rc;
    u->eof = true;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

/* After the stream: the rest of the file, hashed. */
static si_result drain(si_unpack *u)
{
    for (;;) {
        ssize_t r = read(u->fd, u->inbuf, READ_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return si_err_set(&u->err, SI_ERR_IO, "%s: read: %s", u->what, strerror(errno));
        if (r == 0)
            return SI_OK;
        si_sha256_update(&u->h, u->inbuf, (size_t)r);
        u->in_done += (uint64_t)r;
    }
}

/* Fill dst (SI_UNPACK_SLOT bytes) with the next decompressed bytes; *got 0
 * at the end of the stream (the rest of the file then read and hashed). */
static si_result fill(si_unpack *u, unsigned char *dst, size_t *got)
{
    struct archive_entry *ae;
    *got = 0;
    if (!u->opened) {
        u->opened = true;
        if (archive_read_open(u->a, u, NULL, file_read, NULL) != ARCHIVE_OK ||
            archive_read_next_header(u->a, &ae) != ARCHIVE_OK)
            return si_err_set(&u->err, SI_ERR_PARSE, "%s: %s", u->what,
                              archive_error_string(u->a));
    }
    while (*got < SI_UNPACK_SLOT) {
        la_ssize_t r = archive_read_data(u->a, dst + *got, SI_UNPACK_SLOT - *got);
        if (r < 0)
            return si_err_set(&u->err, SI_ERR_PARSE, "%s: %s", u->what,
                              archive_error_string(u->a));
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return *got ? SI_OK : drain(u);
}

static void *thread_main(void *arg)
{
    si_unpack *u = arg;
    si_result rc = SI_OK;
    for (;;) {
        size_t idx, got;
        unsigned char *dst = slot_get(u, &idx);
        if (!dst || (rc = fill(u, dst, &got)) != SI_OK || !got)
            break;
        slot_put(u, got);
    }
    si_sha256_final(&u->h, u->sha);
    finish(u, rc);
    return NULL;
}

/* One CPU: the piece is produced by the caller, no thread, no lock. */
static si_result next_inline(si_unpack *u, const void **buf, size_t *len, uint64_t *in_done,
                             si_err *err)
{
    *len = 0;
    *in_done = u->in_done;
    if (u->eof)
        return SI_OK;
    si_result rc = fill(u, u->buf, len);
    *buf = u->buf;
    *in_done = u->in_done;
    if (rc != SI_OK || !*len) {
        u->eof = true;
        u->rc = rc;
        si_sha256_final(&u->h, u->sha);
        if (rc != SI_OK && err)
            *err = u->err;
    }
    return rc;
}

/* A thread pays on two or more CPUs only (docs/payloads.md, measured). */
static bool use_thread(void)
{
    cpu_set_t cs;
    if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
        return CPU_COUNT(&cs) > 1;
    return sysconf(_SC_NPROCESSORS_ONLN) > 1;
}

si_result si_unpack_start(int fd, const char *what, si_unpack **out, si_err *err)
{
    si_unpack *u = calloc(1, sizeof(*u));
    if (!u)
        return si_err_set(err, SI_ERR_NOMEM, "out of memory (unpack)");
    u->fd = fd;
    u->what = what;
    u->threaded = use_thread();
    si_sha256_init(&u->h);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->buf = malloc((size_t)(u->threaded ? SI_UNPACK_SLOTS : 1) * SI_UNPACK_SLOT);
    u->inbuf = malloc(READ_CHUNK);
    u->a = si_raw_reader_new();
    bool threaded = u->threaded;
    u->threaded = false;  /* no thread to stop yet */
    si_result rc = u->buf && u->inbuf && u->a ? SI_OK
                   : si_err_set(err, SI_ERR_NOMEM, "out of memory (unpack buffers)");
    int e = rc == SI_OK && threaded ? pthread_create(&u->th, NULL, thread_main, u) : 0;
    if (e)
        rc = si_err_set(err, SI_ERR_INTERNAL, "%s: thread: %s", what, strerror(e));
    if (rc != SI_OK) {
        si_unpack_end(u, NULL, NULL, NULL);
        return rc;
    }
    u->threaded = threaded;
    *out = u;
    return SI_OK;
}

si_result si_unpack_next(si_unpack *u, const void **buf, size_t *len, uint64_t *in_done,
                         si_err *err)
{
    if (!u->threaded)
        return next_inline(u, buf, len, in_done, err);
    pthread_mutex_lock(&u->mu);
    if (u->held) {               /* the previous piece is consumed */
        u->held = false;
        u->head = (u->head + 1) % SI_UNPACK_SLOTS;
        u->count--;
        pthread_cond_broadcast(&u->cv);
    }
    while (u->count == 0 && !u->eof)
        pthread_cond_wait(&u->cv, &u->mu);
    si_result rc = SI_OK;
    if (u->count) {
        u->held = true;
        *buf = u->buf + u->head * SI_UNPACK_SLOT;
        *len = u->slot[u->head].len;
        *in_done = u->slot[u->head].in_done;
    } else {
        *len = 0;
        *in_done = u->in_done;
        if ((rc = u->rc) != SI_OK && err)
            *err = u->err;
    }
    pthread_mutex_unlock(&u->mu);
    return rc;
}

si_result si_unpack_end(si_unpack *u, uint8_t sha[32], uint64_t *size, si_err *err)
{
    pthread_mutex_lock(&u->mu);
    bool complete = u->eof && u->count == 0 && u->rc == SI_OK;
    u->stop = true;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    if (u->threaded)
        pthread_join(u->th, NULL);
    else if (!u->eof)
        si_sha256_final(&u->h, u->sha); /* release the context */
    if (u->a)
        archive_read_free(u->a);
    si_result rc = u->rc;
    if (rc != SI_OK && err)
        *err = u->err;
    else if (!complete)
        rc = si_err_set(err, SI_ERR_INTERNAL, "%s: the stream was not read to its end", u->what);
    if (rc == SI_OK && sha)
        memcpy(sha, u->sha, 32);
    if (rc == SI_OK && size)
        *size = u->in_done;
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u->inbuf);
    free(u->buf);
    free(u);
    return rc;
}
