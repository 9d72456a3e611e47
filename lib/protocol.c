/* protocol.c - names and staged-file access shared by the stub and the
 * recovery (protocol.h). */
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

/* Files the protocol itself owns in the staging directory. */
static const char *const owned[] = {
    SI_PROTO_COMMAND,          SI_PROTO_STATE,           SI_PROTO_RESULT,
    SI_PROTO_INDEX,            SI_PROTO_KR_IMAGE_MASTER, SI_PROTO_KR_IMAGE_SIGNING,
    SI_PROTO_KR_DEVICE_SIGNING, SI_PROTO_KR_BLACKLIST,
};

const char *const si_protocol_boot_keys[] = {SI_BOOT_REQUEST, SI_BOOT_TRIES};
const size_t si_protocol_boot_keys_count =
    sizeof(si_protocol_boot_keys) / sizeof(si_protocol_boot_keys[0]);

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t sl = strlen(suffix);
    return n >= sl && memcmp(s + n - sl, suffix, sl) == 0;
}

const char *si_protocol_reserved_why(const char *name)
{
    if (!name || !name[0])
        return "empty file name";
    size_t n = strnlen(name, SI_PROTO_NAME_MAX + 1);
    if (n > SI_PROTO_NAME_MAX)
        return "file name longer than 255 bytes";
    if (name[0] == '.')
        return "file name starts with '.'";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/')
            return "file name contains '/'";
        if (c < 0x20 || c == 0x7f)
            return "file name contains a control byte";
        if (c == ' ' || c == '#')
            return "file name contains ' ' or '#'";
    }
    if (ends_with(name, n, SI_PROTO_PART_SUFFIX))
        return "file name ends in .part (a download in progress)";
    /* The name without a ".sig" suffix must not be one the protocol owns. */
    size_t base = ends_with(name, n, SI_PROTO_SIG_SUFFIX) ? n - strlen(SI_PROTO_SIG_SUFFIX) : n;
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strlen(owned[i]) == base && memcmp(owned[i], name, base) == 0)
            return "file name is reserved by the recovery protocol";
    if (strncmp(name, SI_PROTO_LOG, strlen(SI_PROTO_LOG)) == 0)
        return "file name is reserved by the recovery protocol (log)";
    if (strncmp(name, SI_PROTO_STATE, strlen(SI_PROTO_STATE)) == 0 ||
        strncmp(name, SI_PROTO_COMMAND, strlen(SI_PROTO_COMMAND)) == 0 ||
        strncmp(name, SI_PROTO_RESULT, strlen(SI_PROTO_RESULT)) == 0)
        return "file name is reserved by the recovery protocol (temporary file)";
    return NULL;
}

si_result si_protocol_open_staged(int dirfd, const char *path, int *fd, struct stat *st,
                                  si_err *err)
{
    struct stat local;
    if (!st)
        st = &local;
    *fd = -1;
    int f = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        if (e == ENOENT)
            return si_err_set(err, SI_ERR_MISSING_FILE, "%s: no such file", path);
        if (e == ELOOP)
            return si_err_set(err, SI_ERR_MISSING_FILE,
                              "%s: not a regular file (a symbolic link)", path);
        if (e == ENXIO || e == EISDIR)
            return si_err_set(err, SI_ERR_MISSING_FILE, "%s: not a regular file", path);
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (fstat(f, st) < 0) {
        int e = errno;
        close(f);
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(f);
        return si_err_set(err, SI_ERR_MISSING_FILE, "%s: not a regular file (%s)", path,
                          S_ISFIFO(st->st_mode)  ? "a FIFO"
                          : S_ISDIR(st->st_mode) ? "a directory"
                          : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? "a device"
                          : S_ISSOCK(st->st_mode) ? "a socket"
                                                  : "not a file");
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    return SI_OK;
}

si_result si_protocol_read_staged(int dirfd, const char *path, size_t max_len, char **buf,
                                  size_t *len, si_err *err)
{
    int fd;
    *buf = NULL;
    si_result r = si_protocol_open_staged(dirfd, path, &fd, NULL, err);
    if (r != SI_OK)
        return r;
    int rc = si_read_fd(fd, max_len, buf, len);
    close(fd);
    if (rc == -EFBIG)
        return si_err_set(err, SI_ERR_TOO_LARGE, "%s: larger than %zu bytes", path, max_len);
    if (rc < 0)
        return si_err_set(err, SI_ERR_IO, "%s: %s", path, strerror(-rc));
    return SI_OK;
}
