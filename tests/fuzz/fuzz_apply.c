/* fuzz_apply.c - apply arbitrary bytes as an update tarball into a fresh
 * directory (si_apply_opts.fresh by the input's size: odd) and check that
 * nothing appeared outside it. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"

/* Number of entries in dir (not . and ..). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char arena[] = "/tmp/si-fuzz-apply-XXXXXX";
    if (!mkdtemp(arena))
        abort();
    char target[64], input[64], outside[64], part[64];
    snprintf(target, sizeof(target), "%s/target", arena);
    snprintf(input, sizeof(input), "%s/input", arena);
    snprintf(outside, sizeof(outside), "%s/outside", arena);
    snprintf(part, sizeof(part), "%s/outside/boot.img", arena);
    if (mkdir(target, 0755) < 0 || mkdir(outside, 0755) < 0)
        abort();
    int fd = open(input, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    si_partition_map map[] = {{"boot", part}};
    /* the target was just made: both ways of placing members are fuzzed
     * (final names directly, or temporary name + rename) */
    si_apply_opts o = {.target_dir = target, .fresh = size & 1, .partitions = map,
                       .npartitions = 1};
    const char *files[] = {input};
    si_err err = {0};
    si_apply_files(&o, files, 1, &err);
    /* only target/, input and outside/ (with at most the mapped partition) */
    if (count_entries(arena) != 3)
        abort();
    int n = count_entries(outside);
    struct stat st;
    if (n > 1 || (n == 1 && stat(part, &st) < 0))
        abort();
    si_empty_dir(arena, NULL);
    rmdir(arena);
    return 0;
}
