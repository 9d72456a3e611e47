/* version_tar.h - write the small version tarball every published image
 * carries (the build record, lib/version.h). A module of its own so that
 * programs that only read versions (the static recovery) do not link
 * libarchive's writer, whose format table pulls every write format (xar
 * needs libxml2). */
#ifndef SI_VERSION_TAR_H
#define SI_VERSION_TAR_H

#include "payload.h"
#include "result.h"
#include "version.h"

/* Write out with exactly the member SI_VERSION_MEMBER holding
 * si_version_format(v): mtime 0, uid/gid 0, mode 0644, so the same record
 * and options always give the same bytes. opts NULL: zstd at the library's
 * default level. A temp file beside out is synced and renamed; on failure
 * out is untouched. SI_ERR_USAGE for a bad compression or level, SI_ERR_IO
 * when out cannot be written. */
si_result si_version_build_tarball(const si_version *v, const char *out,
                                   const si_build_opts *opts, si_err *err);

#endif
