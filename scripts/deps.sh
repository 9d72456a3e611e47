#!/bin/sh
# Install exactly the Debian packages sysimage needs; quick when present.
set -eu
PKGS="build-essential pkg-config clang
 libarchive-dev libmbedtls-dev libext2fs-dev libblkid-dev libfdisk-dev
 libcurl4-openssl-dev libzstd-dev liblzma-dev zlib1g-dev libbz2-dev liblz4-dev
 libacl1-dev nettle-dev libcmocka-dev
 python3 python3-pytest python3-pytest-xdist nginx-light openssl ca-certificates
 qemu-system-x86 busybox-static cpio kmod zstd xz-utils
 e2fsprogs mtools dosfstools fdisk grub-common debootstrap dpkg-dev attr time
 grub-efi-amd64-bin grub-pc-bin ovmf seabios lintian bmap-tools
 bsdiff xdelta3"
missing=
for p in $PKGS; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$s" in *" installed") ;; *) missing="$missing $p" ;; esac
done
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# apt-get download/source (kernel, cJSON) need package lists.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 && \
   ! ls /var/lib/apt/lists/*_Packages.lz4 >/dev/null 2>&1; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
fi
echo "deps: all packages present"
