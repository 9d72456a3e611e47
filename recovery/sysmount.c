/* sysmount.c - ext4 mounts, through a loop device for regular files. */
#include "sysmount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int sysmount_mkdir_p(const char *dir, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Attach file to a free loop device (autoclear); returns an open fd of the
 * loop device (the caller closes it after mounting) and its path. */
static si_result loop_attach(const char *file, bool ro, char *path, size_t pathlen, int *fd_out,
                             si_err *err)
{
    int ffd = open(file, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (ffd < 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: %s", file, strerror(errno));
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        int e = errno;
        close(ffd);
        return si_err_set(err, SI_ERR_MOUNT, "/dev/loop-control: %s", strerror(e));
    }
    si_result r = SI_ERR_MOUNT;
    for (int tries = 0; tries < 16; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            r = si_err_set(err, SI_ERR_MOUNT, "no free loop device: %s", strerror(errno));
            break;
        }
        snprintf(path, pathlen, "/dev/loop%d", n);
        int lfd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (lfd < 0) {
            r = si_err_set(err, SI_ERR_MOUNT, "%s: %s", path, strerror(errno));
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.fd = (unsigned)ffd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (ro ? LO_FLAGS_READ_ONLY : 0);
        snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", file);
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
            *fd_out = lfd;
            r = SI_OK;
            break;
        }
        int e = errno;
        close(lfd);
        if (e == EBUSY)
            continue; /* another process took it first */
        r = si_err_set(err, SI_ERR_MOUNT, "%s: attach %s: %s", path, file, strerror(e));
        break;
    }
    close(ctl);
    close(ffd);
    return r;
}

si_result sysmount_ext4(const char *dev, const char *dir, bool ro, bool ro_dev, si_err *err)
{
    int rc = sysmount_mkdir_p(dir, 0755);
    if (rc < 0)
        return si_err_set(err, SI_ERR_MOUNT, "%s: %s", dir, strerror(-rc));
    struct stat st;
    if (stat(dev, &st) < 0)
        return si_err_set(err, SI_ERR_PARTITION, "%s: %s", dev, strerror(errno));
    char loop[64];
    const char *src = dev;
    int lfd = -1;
    if (S_ISREG(st.st_mode)) {
        si_result r = loop_attach(dev, ro_dev, loop, sizeof(loop), &lfd, err);
        if (r != SI_OK)
            return r;
        src = loop;
    } else if (!S_ISBLK(st.st_mode)) {
        return si_err_set(err, SI_ERR_PARTITION, "%s: not a block device or file", dev);
    }
    si_result r = SI_OK;
    if (mount(src, dir, "ext4", MS_NOATIME | (ro ? MS_RDONLY : 0), NULL) < 0)
        r = si_err_set(err, SI_ERR_MOUNT, "mount %s on %s: %s", dev, dir, strerror(errno));
    if (lfd >= 0)
        close(lfd); /* autoclear: detached on unmount, or now if the mount failed */
    return r;
}

si_result sysmount_umount(const char *dir, si_err *err)
{
    sync();
    for (int i = 0; i < 20; i++) {
        if (umount2(dir, 0) == 0)
            return SI_OK;
        if (errno != EBUSY)
            break;
        usleep(100 * 1000);
    }
    return si_err_set(err, SI_ERR_MOUNT, "unmount %s: %s", dir, strerror(errno));
}
