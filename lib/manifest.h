/* manifest.h - the member manifest of an update tarball (docs/formats.md,
 * "Manifest"): the first member, `manifest`, lists every other member in tar
 * order, one line each, with its type, metadata and the sha256 of its data.
 * The signed index lists the manifest's size and sha256 next to the tarball,
 * so the recovery can check each member while it writes it (one read of the
 * file, lib/apply) instead of hashing the whole file before applying it.
 *
 *   sysimage-manifest 1
 *   <type> <mode> <uid> <gid> <mtime> <size> <rdev> <data> <xattrs> <name>
 *
 * type: f (regular) d l (symlink) h (hardlink) c b p (fifo); mode: 4 octal
 * digits (permission bits); mtime: seconds.nanoseconds (9 digits); size:
 * bytes of data; rdev: decimal (c, b) or '-'; data: sha256 hex of the content
 * (f), of the link target (l, h), else '-'; xattrs: sha256 hex of the xattrs
 * (sorted by name, each once: name NUL, 8-byte big-endian length, value) or
 * '-' when none;
 * name: the member name, to the end of the line. The publisher and the applier
 * derive a line from a member header with the same function, so a member
 * matches its line iff the two strings are equal. */
#ifndef SI_MANIFEST_H
#define SI_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "result.h"

struct archive_entry;

#define SI_MANIFEST_MEMBER SI_LAYOUT_MANIFEST
#define SI_MANIFEST_MAGIC "sysimage-manifest 1"
#define SI_MANIFEST_MAX_BYTES (64u * 1024 * 1024)
#define SI_MANIFEST_LINE_MAX 4400

typedef struct si_manifest {
    size_t n;                 /* member lines */
    uint8_t (*line_sha)[32];  /* sha256 of each line (no newline): all the applier keeps */
    size_t cap;               /* allocated line_sha entries */
    size_t nparts;            /* partitions/<label>.img members */
    char parts[SI_LAYOUT_SCAN_MAX_PARTS][SI_LAYOUT_LABEL_MAX + 1];
    bool has_version;         /* a line names SI_VERSION_MEMBER */
} si_manifest;

/* The line for a member (no newline). data_sha: the sha256 of a regular
 * file's content (NULL for other types: a link's target is hashed here). */
si_result si_manifest_line(struct archive_entry *ae, const uint8_t data_sha[32], char *out,
                           size_t outsz, si_err *err);

/* Parse (and check every field of) a manifest; errors name the line. */
si_result si_manifest_parse(const char *buf, size_t len, si_manifest **out, si_err *err);
void si_manifest_free(si_manifest *m);

/* Member i (0-based, after `manifest`) has the line `line`?
 * SI_ERR_CHECKSUM naming `what` and the member otherwise; SI_ERR_PARSE when
 * the tarball has more members than the manifest. */
si_result si_manifest_check(const si_manifest *m, size_t i, const char *line, const char *what,
                            si_err *err);



/* The first member of the update file at path, when it is `manifest`:
 * *present, its sha256 and size, and (text != NULL) its bytes (malloc'd,
 * NUL-terminated). Not present is SI_OK with *present = false. */
si_result si_manifest_read_first(const char *path, bool *present, uint8_t sha[32],
                                 uint64_t *size, char **text, si_err *err);
/* Read, check against the signed size/sha256 and parse the manifest of path. */
si_result si_manifest_load_bound(const char *path, uint64_t size, const uint8_t sha[32],
                                 si_manifest **out, si_err *err);
#endif
