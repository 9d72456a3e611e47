/* version.h - the build record of an installed system:
 * system/etc/sysimage/version.json = {"build": N, "channel": "..."}
 * written by the small `version` tarball every published image carries. */
#ifndef SI_VERSION_H
#define SI_VERSION_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "result.h"

#define SI_VERSION_MEMBER SI_LAYOUT_VERSION_MEMBER
#define SI_VERSION_MAX_BYTES 4096

typedef struct si_version {
    int64_t build;
    char channel[128];
} si_version;

si_result si_version_parse(const char *json, size_t len, si_version *out, si_err *err);
/* Read <root>/etc/sysimage/version.json; SI_ERR_NOT_FOUND if absent. */
si_result si_version_read_tree(const char *root, si_version *out, si_err *err);
si_result si_version_format(const si_version *v, char **json_out, si_err *err);
/* The version tarball is written by lib/version_tar.h. */
/* Stream an update tarball looking for SI_VERSION_MEMBER (bounded read);
 * *found = false if the tarball has none. */
si_result si_version_from_tarball(const char *path, si_version *out, bool *found, si_err *err);

#endif
