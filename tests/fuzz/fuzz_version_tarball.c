/* fuzz_version_tarball.c - si_version_from_tarball on arbitrary bytes (any
 * tar/zstd/xz/gzip the recovery may be handed): bounded, no crash, and a
 * record found is a valid one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsutil.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_version_tarball", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (si_write_all(fd, data, size) != 0)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    si_version v;
    bool found = false;
    si_err err;
    si_result r = si_version_from_tarball(path, &v, &found, &err);
    if (r == SI_OK && found && (v.build < 0 || !memchr(v.channel, '\0', sizeof(v.channel))))
        abort();
    if (r != SI_OK && found)
        abort();
    close(fd);
    return 0;
}
