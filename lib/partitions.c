/* partitions.c - partitions found by GPT label, without udev. */
#include "partitions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <blkid/blkid.h>

#include "fsutil.h"

#define UEVENT_MAX 4096

typedef struct uevent {
    char devname[SI_PART_NAME_MAX];
    char devtype[32];
    char partname[SI_PART_LABEL_MAX];
    int has_partname;
    int has_major, has_minor;
    unsigned major, minor;
    int partn;
} uevent;

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    if (!*s)
        return -1;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* A kernel device name usable under dev_root: no '/', not "." or "..". */
static int safe_devname(const char *n)
{
    if (!*n || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
        return 0;
    for (; *n; n++)
        if (*n == '/' || (unsigned char)*n < 0x21 || (unsigned char)*n > 0x7e)
            return 0;
    return 1;
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* Parse the KEY=VALUE lines of a sysfs uevent file. */
static int parse_uevent(char *buf, uevent *u)
{
    memset(u, 0, sizeof(*u));
    u->partn = -1;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "DEVNAME") == 0)
            copy_field(u->devname, sizeof(u->devname), v);
        else if (strcmp(k, "DEVTYPE") == 0)
            copy_field(u->devtype, sizeof(u->devtype), v);
        else if (strcmp(k, "PARTNAME") == 0) {
            copy_field(u->partname, sizeof(u->partname), v);
            u->has_partname = 1;
        } else if (strcmp(k, "MAJOR") == 0)
            u->has_major = parse_uint(v, 0xfff, &u->major) == 0;
        else if (strcmp(k, "MINOR") == 0)
            u->has_minor = parse_uint(v, 0xfffff, &u->minor) == 0;
        else if (strcmp(k, "PARTN") == 0) {
            unsigned n;
            if (parse_uint(v, 1 << 20, &n) == 0)
                u->partn = (int)n;
        }
    }
    return 0;
}

/* Make sure dev_root/devname is the block device major:minor (mknod when absent). */
static si_result ensure_node(const char *path, unsigned major, unsigned minor, si_err *err)
{
    struct stat st;
    dev_t want = makedev(major, minor);
    if (lstat(path, &st) == 0) {
        if (!S_ISBLK(st.st_mode) || st.st_rdev != want)
            return si_err_set(err, SI_ERR_PARTITION, "partition: %s exists but is not block device %u:%u",
                              path, major, minor);
        return SI_OK;
    }
    if (errno != ENOENT)
        return si_err_set(err, SI_ERR_IO, "partition: stat %s: %s", path, strerror(errno));
    if (mknod(path, S_IFBLK | 0600, want) != 0 && errno != EEXIST)
        return si_err_set(err, SI_ERR_PARTITION, "partition: mknod %s (%u:%u): %s", path, major, minor,
                          strerror(errno));
    return SI_OK;
}

/* The GPT name of a partition device, probed with libblkid. 1 found, 0 none, <0 error. */
static int probe_partname(const char *devpath, char *out, size_t cap)
{
    blkid_probe pr = blkid_new_probe_from_filename(devpath);
    if (!pr)
        return -1;
    blkid_probe_enable_superblocks(pr, 0);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
    int found = 0;
    if (blkid_do_safeprobe(pr) == 0) {
        const char *v = NULL;
        if (blkid_probe_lookup_value(pr, "PART_ENTRY_NAME", &v, NULL) == 0 && v) {
            snprintf(out, cap, "%s", v);
            found = 1;
        }
    }
    blkid_free_probe(pr);
    return found;
}

si_result si_partition_find(const char *sysfs_root, const char *dev_root, const char *label,
                            si_partition *out, si_err *err)
{
    if (!sysfs_root)
        sysfs_root = "/sys";
    if (!dev_root)
        dev_root = "/dev";
    memset(out, 0, sizeof(*out));
    if (!label || !*label)
        return si_err_set(err, SI_ERR_USAGE, "partition: empty label");
    char dirpath[SI_PART_PATH_MAX];
    snprintf(dirpath, sizeof(dirpath), "%s/class/block", sysfs_root);
    DIR *d = opendir(dirpath);
    if (!d)
        return si_err_set(err, SI_ERR_PARTITION, "partition: cannot list %s: %s", dirpath, strerror(errno));
    int matches = 0;
    si_result r = SI_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char upath[SI_PART_PATH_MAX + 300];
        snprintf(upath, sizeof(upath), "%s/%s/uevent", dirpath, de->d_name);
        char *buf = NULL;
        size_t len = 0;
        if (si_read_file(upath, UEVENT_MAX, &buf, &len) != 0)
            continue; /* vanished or unreadable entry: not ours */
        uevent u;
        parse_uevent(buf, &u);
        free(buf);
        if (strcmp(u.devtype, "partition") != 0 || !u.has_major || !u.has_minor)
            continue;
        if (!safe_devname(u.devname))
            continue;
        char node[SI_PART_PATH_MAX];
        if ((size_t)snprintf(node, sizeof(node), "%s/%s", dev_root, u.devname) >= sizeof(node))
            continue;
        char name[SI_PART_LABEL_MAX];
        if (u.has_partname) {
            copy_field(name, sizeof(name), u.partname);
        } else {
            /* Older kernels or MBR: ask libblkid for the GPT entry name. */
            si_err nerr;
            if (ensure_node(node, u.major, u.minor, &nerr) != SI_OK)
                continue;
            if (probe_partname(node, name, sizeof(name)) != 1)
                continue;
        }
        if (strcmp(name, label) != 0)
            continue;
        if (++matches > 1) {
            r = si_err_set(err, SI_ERR_PARTITION, "partition: label '%s' is on both %s and %s", label,
                           out->name, u.devname);
            break;
        }
        copy_field(out->label, sizeof(out->label), name);
        copy_field(out->name, sizeof(out->name), u.devname);
        copy_field(out->path, sizeof(out->path), node);
        out->major = u.major;
        out->minor = u.minor;
        out->partno = u.partn;
    }
    closedir(d);
    if (r != SI_OK) {
        memset(out, 0, sizeof(*out));
        return r;
    }
    if (matches == 0)
        return si_err_set(err, SI_ERR_PARTITION, "partition: no partition labelled '%s' (looked in %s)",
                          label, dirpath);
    r = ensure_node(out->path, out->major, out->minor, err);
    if (r != SI_OK)
        memset(out, 0, sizeof(*out));
    return r;
}

si_result si_partition_find_path(const char *label, char *path, size_t pathlen, si_err *err)
{
    si_partition p;
    si_result r = si_partition_find(NULL, NULL, label, &p, err);
    if (r != SI_OK)
        return r;
    if ((size_t)snprintf(path, pathlen, "%s", p.path) >= pathlen)
        return si_err_set(err, SI_ERR_TOO_LARGE, "partition: path %s too long", p.path);
    return SI_OK;
}

si_result si_partition_list(const char *disk, si_partition *parts, size_t max, size_t *count,
                            char *table_type, si_err *err)
{
    *count = 0;
    if (table_type)
        table_type[0] = '\0';
    blkid_probe pr = blkid_new_probe_from_filename(disk);
    if (!pr)
        return si_err_set(err, SI_ERR_IO, "partition: cannot open %s for probing: %s", disk,
                          strerror(errno ? errno : EIO));
    si_result r = SI_OK;
    blkid_probe_enable_superblocks(pr, 0);
    blkid_probe_enable_partitions(pr, 1);
    blkid_partlist pl = blkid_probe_get_partitions(pr);
    blkid_parttable tab = pl ? blkid_partlist_get_table(pl) : NULL;
    if (!pl || !tab) {
        r = si_err_set(err, SI_ERR_PARTITION, "partition: %s has no partition table", disk);
        goto out;
    }
    if (table_type)
        snprintf(table_type, 8, "%s", blkid_parttable_get_type(tab) ? blkid_parttable_get_type(tab) : "");
    int n = blkid_partlist_numof_partitions(pl);
    if (n < 0) {
        r = si_err_set(err, SI_ERR_PARTITION, "partition: %s: cannot read the partition list", disk);
        goto out;
    }
    if ((size_t)n > max) {
        r = si_err_set(err, SI_ERR_TOO_LARGE, "partition: %s has %d partitions, room for %zu", disk, n, max);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        blkid_partition p = blkid_partlist_get_partition(pl, i);
        si_partition *o = &parts[i];
        memset(o, 0, sizeof(*o));
        const char *s;
        if ((s = blkid_partition_get_name(p)))
            copy_field(o->label, sizeof(o->label), s);
        if ((s = blkid_partition_get_uuid(p)))
            copy_field(o->uuid, sizeof(o->uuid), s);
        if ((s = blkid_partition_get_type_string(p)))
            copy_field(o->type, sizeof(o->type), s);
        else
            snprintf(o->type, sizeof(o->type), "0x%x", (unsigned)blkid_partition_get_type(p));
        o->partno = blkid_partition_get_partno(p);
        o->start = (uint64_t)blkid_partition_get_start(p) * 512;
        o->size = (uint64_t)blkid_partition_get_size(p) * 512;
    }
    *count = (size_t)n;
out:
    blkid_free_probe(pr);
    return r;
}

si_result si_partition_find_in_disk(const char *disk, const char *label, si_partition *out, si_err *err)
{
    const size_t max = 128;
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    si_partition *parts = calloc(max, sizeof(*parts));
    if (!parts)
        return si_err_set(err, SI_ERR_NOMEM, "partition: out of memory listing %s", disk);
    si_result r = si_partition_list(disk, parts, max, &n, NULL, err);
    if (r != SI_OK) {
        free(parts);
        return r;
    }
    int found = -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].label, label) != 0)
            continue;
        if (found >= 0) {
            r = si_err_set(err, SI_ERR_PARTITION, "partition: label '%s' is on partitions %d and %d of %s",
                           label, parts[found].partno, parts[i].partno, disk);
            free(parts);
            return r;
        }
        found = (int)i;
    }
    if (found < 0)
        r = si_err_set(err, SI_ERR_PARTITION, "partition: %s has no partition labelled '%s'", disk, label);
    else
        *out = parts[found];
    free(parts);
    return r;
}
