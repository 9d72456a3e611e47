#!/bin/sh
# apt-source.sh SPEC DESTDIR: download and unpack Debian's source package SPEC
# ("cjson", "util-linux=2.38.1-5") into DESTDIR (created if needed), for the
# third-party code the build takes from Debian (scripts/fetch-cjson.sh,
# scripts/build-libfdisk.sh).
# Uses a private apt configuration whose deb-src line reuses the mirror that
# the machine's own apt sources already name; no host is hard-coded here and
# nothing third-party is committed to the project.
set -eu
spec=${1:?usage: apt-source.sh SPEC DESTDIR}
dest=${2:?usage: apt-source.sh SPEC DESTDIR}

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
[ -n "$uri" ] || { echo "apt-source: no apt mirror found in the machine's apt sources" >&2; exit 1; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
if [ -n "$keyring" ]; then opt="[signed-by=$keyring] "; else opt=""; fi
echo "deb-src ${opt}${uri} ${suite} main" > "$apt_dir/sources.list"
set -- -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts" \
       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root" -q
apt-get "$@" update >&2
(cd "$dest" && apt-get "$@" source --only-source "$spec" >&2)
