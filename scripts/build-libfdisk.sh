#!/bin/sh
# Build a static libfdisk (libfdisk.a + headers) into OUTDIR from Debian's
# util-linux source package: Debian 12's libfdisk-dev ships only the shared
# library, and the recovery links statically (docs/flashing.md). Only the
# library is configured and built (no programs); libblkid.a and libuuid.a
# come from Debian's packages of the same util-linux version.
# The source comes through scripts/apt-source.sh (the machine's own mirror;
# nothing third-party is committed to the project).
set -eu
outdir=${1:?usage: build-libfdisk.sh OUTDIR}
[ -f "$outdir/lib/libfdisk.a" ] && [ -f "$outdir/include/libfdisk/libfdisk.h" ] && exit 0

src_dir=$(mktemp -d)
trap 'rm -rf "$src_dir"' EXIT
# the version of the installed libblkid, so that the two libraries match
ver=$(dpkg-query -W -f='${source:Version}' libblkid-dev 2>/dev/null || true)
if [ -n "$ver" ]; then spec="util-linux=$ver"; else spec=util-linux; fi
"$(dirname "$0")/apt-source.sh" "$spec" "$src_dir"
src=$(find "$src_dir" -maxdepth 1 -type d -name 'util-linux-*' | head -n 1)
[ -n "$src" ] || { echo "build-libfdisk: util-linux source not found" >&2; exit 1; }
# Debian's patches leave configure.ac newer than configure: keep make from
# regenerating the build system (autotools are not needed).
(cd "$src" && touch aclocal.m4 configure Makefile.in config.h.in && ./configure -q --disable-all-programs --enable-libfdisk --enable-libblkid --enable-libuuid \
    --enable-static --disable-shared --disable-nls --without-python --without-systemd \
    --without-udev --without-readline --without-ncurses --without-ncursesw --without-tinfo \
    --without-cryptsetup --disable-bash-completion CFLAGS="-O2 -fPIC" >&2 &&
 make -s -j"${JOBS:-2}" ACLOCAL=true AUTOCONF=true AUTOMAKE=true AUTOHEADER=true libfdisk.la >&2)
mkdir -p "$outdir/lib" "$outdir/include/libfdisk"
cp "$src/.libs/libfdisk.a" "$outdir/lib/"
cp "$src/libfdisk/src/libfdisk.h" "$outdir/include/libfdisk/"
cp "$src/Documentation/licenses/COPYING.LGPL-2.1-or-later" "$outdir/" 2>/dev/null || true
echo "build-libfdisk: $(basename "$src") -> $outdir/lib/libfdisk.a" >&2
