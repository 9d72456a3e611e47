#!/bin/sh
# packaging/deb/build.sh OUTDIR - the Debian packages of sysimage (`make deb`):
#   sysimage-stub   the device's client, with a systemd service (`sysimage-stub
#                   stage`) and a timer that runs it periodically
#   sysimage-tools  the host tool `sysimage` (keys, signing, building, publishing)
# Built with dpkg-deb from build/bin (no debhelper); dependencies from
# dpkg-shlibdeps; checked with lintian when it is installed (errors fail).
set -eu
OUT=${1:-build/deb}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=${SI_DEB_VERSION:-0.1.0}
ARCH=$(dpkg --print-architecture)
MAINT=${SI_DEB_MAINTAINER:-"sysimage maintainers <maintainers@example.com>"}
DATE=$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 1700000000)}")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/si-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

common_doc() { # PKG DIR
    d=$2/usr/share/doc/$1
    install -d -m 0755 "$d"
    cat > "$d/copyright" <<EOT
sysimage: image-based system updates through a recovery image.

Copyright: the sysimage authors.
Source: the sysimage repository (this package is built from it by \`make deb\`).
Bundled code: none (cJSON is linked from the project's build of Debian's
source package, MIT license, Copyright (c) 2009-2017 Dave Gamble and cJSON
contributors).
EOT
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from the sysimage repository.\n\n -- %s  %s\n' \
        "$1" "$VERSION" "$MAINT" "$DATE" | gzip -9n > "$d/changelog.gz"
    chmod 0644 "$d/copyright" "$d/changelog.gz"
}

control() { # PKG DIR DESCRIPTION-LINES BINARIES...
    pkg=$1; dir=$2; desc=$3; shift 3
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: sysimage\n\nPackage: %s\nArchitecture: any\n' "$pkg" > "$WORK/shlibs/debian/control"
    deps=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "$@" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    size=$(du -k -s --exclude=DEBIAN "$dir" | cut -f1)
    {
        echo "Package: $pkg"
        echo "Source: sysimage"
        echo "Version: $VERSION"
        echo "Architecture: $ARCH"
        echo "Maintainer: $MAINT"
        echo "Installed-Size: $size"
        [ -z "$deps" ] || echo "Depends: $deps"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Homepage: https://example.com/sysimage"
        printf '%s\n' "$desc"
    } > "$dir/DEBIAN/control"
}

# ---------------------------------------------------------------- sysimage-stub
P=$WORK/sysimage-stub
install -d -m 0755 "$P/DEBIAN" "$P/usr/bin" "$P/lib/systemd/system" "$P/etc/sysimage"
install -m 0755 -s "$ROOT/build/bin/sysimage-stub" "$P/usr/bin/sysimage-stub"
install -m 0644 "$HERE/sysimage-stub.service" "$HERE/sysimage-stub.timer" "$P/lib/systemd/system/"
cat > "$P/etc/sysimage/client.ini" <<'EOT'
# sysimage-stub configuration (see /usr/share/doc/sysimage-stub/README).
# The image that ships this package replaces it with the device's own.
[service]
base = https://updates.example.com/sysimage
channel = stable
device = qemu-x86_64

[system]
cache_dir = /cache/recovery
state_dir = /var/lib/sysimage
boot_control = /dev/disk/by-partlabel/misc
EOT
chmod 0644 "$P/etc/sysimage/client.ini"
echo /etc/sysimage/client.ini > "$P/DEBIAN/conffiles"
common_doc sysimage-stub "$P"
cat > "$P/usr/share/doc/sysimage-stub/README" <<'EOT'
sysimage-stub checks the update server's signed indexes, downloads and
verifies an update into the cache partition and asks the boot loader for the
recovery, which installs it (sysimage-stub reboot-recovery).

sysimage-stub.timer runs sysimage-stub.service (sysimage-stub stage) two
minutes after boot and every six hours; the reboot into the recovery stays a
decision of the device (sysimage-stub reboot-recovery).
Configuration: /etc/sysimage/client.ini.
EOT
chmod 0644 "$P/usr/share/doc/sysimage-stub/README"
cat > "$P/DEBIAN/postinst" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = configure ]; then
    # enable the timer (also in an image built offline, without systemd running)
    mkdir -p /etc/systemd/system/timers.target.wants
    ln -sf /lib/systemd/system/sysimage-stub.timer /etc/systemd/system/timers.target.wants/sysimage-stub.timer
    if [ -d /run/systemd/system ]; then
        systemctl start sysimage-stub.timer >/dev/null || true
    fi
fi
EOT
cat > "$P/DEBIAN/postrm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    rm -f /etc/systemd/system/timers.target.wants/sysimage-stub.timer
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi
EOT
cat > "$P/DEBIAN/prerm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop sysimage-stub.timer >/dev/null || true
fi
EOT
chmod 0755 "$P/DEBIAN/postinst" "$P/DEBIAN/postrm" "$P/DEBIAN/prerm"
control sysimage-stub "$P" "Description: sysimage client: stages verified system updates
 The device side of sysimage: checks the signed channel and index of an
 update server, downloads and verifies the update files into the cache
 partition, writes the recovery's command file and requests the recovery.
 A systemd timer runs it periodically." "$P/usr/bin/sysimage-stub"

# ---------------------------------------------------------------- sysimage-tools
T=$WORK/sysimage-tools
install -d -m 0755 "$T/DEBIAN" "$T/usr/bin"
install -m 0755 -s "$ROOT/build/bin/sysimage" "$T/usr/bin/sysimage"
common_doc sysimage-tools "$T"
control sysimage-tools "$T" "Description: sysimage host tool: keys, signing, building and publishing updates
 The server side of sysimage: key hierarchy and keyrings, detached
 signatures, full and delta update images, and the static repository
 (channels, indexes, pool) that devices read." "$T/usr/bin/sysimage"

for p in sysimage-stub sysimage-tools; do
    find "$WORK/$p" -exec touch -h -d "$DATE" {} +
    dpkg-deb --root-owner-group -Zxz --build "$WORK/$p" "$OUT/${p}_${VERSION}_$ARCH.deb" >/dev/null
    echo "deb: $OUT/${p}_${VERSION}_$ARCH.deb"
done
if command -v lintian >/dev/null 2>&1; then
    # errors fail the build; warnings are printed
    lintian --fail-on error --suppress-tags no-manual-page "$OUT/sysimage-stub_${VERSION}_$ARCH.deb" \
        "$OUT/sysimage-tools_${VERSION}_$ARCH.deb"
    echo "deb: lintian: no errors"
fi
