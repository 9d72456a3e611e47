#!/bin/sh
# Build a static libfdisk (libfdisk.a + headers) into OUTDIR from Debian's
# util-linux source package: Debian 12's libfdisk-dev ships only the shared
# library, and the recovery links statically (docs/flashing.md). Only the
# library is configured and built (no programs); libblkid.a and libuuid.a
# come from Debian's packages of the same util-linux version.
# Uses a private apt configuration whose deb-src line reuses the mirror that
# the machine's own apt sources already name; no host is hard-coded here and
# nothing third-party is committed to the project.
set -eu
outdir=${1:?usage: build-libfdisk.sh OUTDIR}
[ -f "$outdir/lib/libfdisk.a" ] && [ -f "$outdir/include/libfdisk/libfdisk.h" ] && exit 0

# First non-security mirror URI and its keyring from deb822 or one-line sources.
uri= ; keyring=
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(awk '/^URIs:/{print $2; exit}' "$f")
    case "$u" in ""|*security*) continue ;; esac
    uri=$u
    keyring=$(awk '/^Signed-By:/{print $2; exit}' "$f")
    break
done
if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
          sed -n 's/\[[^]]*\]//; s/^deb[ \t]\+\([^ \t]\+\).*/\1/p' | grep -v security | head -n 1)
fi
[ -n "$uri" ] || { echo "build-libfdisk: no apt mirror found in the machine's apt sources" >&2; exit 1; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
if [ -n "$keyring" ]; then opt="[signed-by=$keyring] "; else opt=""; fi
echo "deb-src ${opt}${uri} ${suite} main" > "$apt_dir/sources.list"
set -- -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts" \
       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root" -q
# the version of the installed libblkid, so that the two libraries match
ver=$(dpkg-query -W -f='${source:Version}' libblkid-dev 2>/dev/null || true)
apt-get "$@" update >&2
if [ -n "$ver" ]; then spec="util-linux=$ver"; else spec=util-linux; fi
(cd "$apt_dir/src" && apt-get "$@" source --only-source "$spec" >&2)
src=$(find "$apt_dir/src" -maxdepth 1 -type d -name 'util-linux-*' | head -n 1)
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
