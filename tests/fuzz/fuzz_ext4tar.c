/* fuzz_ext4tar.c - full tarballs (any bytes) into a small ext4 image: the
 * scan and the fill agree on what they refuse, and a fill that succeeds
 * leaves a filesystem libext2fs opens again. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "ext4tar.h"
#include "mkfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tar[64], fs[64];
    snprintf(tar, sizeof(tar), "/tmp/fuzz-ext4tar-%d.tar", (int)getpid());
    snprintf(fs, sizeof(fs), "/tmp/fuzz-ext4tar-%d.img", (int)getpid());
    int fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    fd = open(fs, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    close(fd);
    si_mkfs_opts o;
    si_mkfs_opts_init(&o);
    o.size = SI_MKFS_MIN_BYTES;
    si_err err;
    if (si_mkfs_ext4(fs, &o, &err) != SI_OK)
        abort();
    const char *t[] = {tar};
    si_result scan = si_ext4tar_scan(t, 1, NULL, NULL, NULL, &err);
    si_result fill = si_ext4_from_tarballs(fs, t, 1, 1, NULL, &err);
    /* what the scan refuses by name (unsafe, delta, raw partitions), the fill refuses too */
    if ((scan == SI_ERR_UNSAFE_PATH || scan == SI_ERR_UNSUPPORTED) && fill == SI_OK)
        abort();
    if (fill == SI_OK) {
        ext2_filsys e = NULL;
        if (ext2fs_open(fs, 0, 0, 0, unix_io_manager, &e) != 0)
            abort();
        ext2fs_close_free(&e);
    }
    unlink(tar);
    unlink(fs);
    return 0;
}
