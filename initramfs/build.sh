#!/bin/sh
# Build the recovery image of a board: OUTDIR/{vmlinuz,initrd.img,board.json}.
#
#   [SI_BOARD=B] [SI_DEVICE=D] initramfs/build.sh RECOVERY_BINARY OUTDIR
#
# (`make recovery-image [BOARD=B]`: build/recovery for qemu-x86_64,
# build/recovery-B for another board.)
#
# Kernel: Debian's cloud kernel, the package that linux-image-cloud-amd64
# depends on, fetched with `apt-get download` and unpacked with dpkg-deb into
# $KERNEL_CACHE (default build/kernel, kept between builds); nothing is
# installed on the host. KERNEL_PKG=linux-image-<abi>-cloud-amd64 overrides.
#
# initramfs (newc cpio, zstd): /init, BusyBox (busybox-static) with its applet
# links, the static recovery binary (stripped), and the board's modules (virtio, virtio_blk)
# with a modules.dep from `depmod -b`. Nothing else.
set -eu

usage() { echo "usage: $0 RECOVERY_BINARY OUTDIR" >&2; exit 1; }
[ $# -eq 2 ] || usage
BIN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/stage.sh"
KERNEL_CACHE=${KERNEL_CACHE:-$(dirname "$HERE")/build/kernel}
MODULES=${MODULES:-"virtio virtio_ring virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev virtio_blk fat vfat nls_cp437 nls_ascii"}
BUSYBOX=${BUSYBOX:-/bin/busybox}

[ -x "$BIN" ] || { echo "build.sh: $BIN: no such executable" >&2; exit 1; }
if ! file -L "$BIN" 2>/dev/null | grep -q 'statically linked' && ldd "$BIN" >/dev/null 2>&1; then
    echo "build.sh: $BIN is not statically linked" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build.sh: $BUSYBOX is not static (install busybox-static)" >&2
    exit 1
fi

# ---------------------------------------------------------------- kernel
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)
fi
if [ -z "$KERNEL_PKG" ]; then
    # No package lists: use the one kernel already in the cache, if any.
    KERNEL_PKG=$(ls "$KERNEL_CACHE" 2>/dev/null | sed -n 's/^\(linux-image-.*-cloud-amd64\)$/\1/p' | tail -n 1)
fi
[ -n "$KERNEL_PKG" ] || { echo "build.sh: cannot find the cloud kernel package (apt-get update?)" >&2; exit 1; }
KVER=${KERNEL_PKG#linux-image-}
KDIR=$KERNEL_CACHE/$KERNEL_PKG
if [ ! -f "$KDIR/boot/vmlinuz-$KVER" ]; then
    echo "build.sh: fetching $KERNEL_PKG"
    mkdir -p "$KERNEL_CACHE"
    dl=$(mktemp -d "$KERNEL_CACHE/dl.XXXXXX")
    chmod 755 "$dl" # apt-get download runs as _apt when it can
    (cd "$dl" && apt-get download -q "$KERNEL_PKG")
    dpkg-deb -x "$dl"/"$KERNEL_PKG"_*.deb "$dl/tree"
    # rename(2) is atomic and fails onto a non-empty directory: a parallel
    # build that got there first wins, and nobody sees a half-unpacked tree.
    mv -T "$dl/tree" "$KDIR" 2>/dev/null || [ -f "$KDIR/boot/vmlinuz-$KVER" ] ||
        { echo "build.sh: cannot place $KDIR" >&2; rm -rf "$dl"; exit 1; }
    rm -rf "$dl"
fi

# ---------------------------------------------------------------- staging
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/si-initramfs.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/dev" "$STAGE/proc" "$STAGE/sys" "$STAGE/run" "$STAGE/tmp" "$STAGE/mnt"
chmod 1777 "$STAGE/tmp"
install -m 0755 "$HERE/init" "$STAGE/init"
si_stage_busybox "$STAGE" "$BUSYBOX"
[ -L "$STAGE/bin/sh" ] || { echo "build.sh: busybox has no sh applet" >&2; exit 1; }
# Debug info stays in build/bin; the image gets a stripped copy.
if command -v strip >/dev/null 2>&1; then
    strip -o "$STAGE/bin/sysimage-recovery" "$BIN"
    chmod 0755 "$STAGE/bin/sysimage-recovery"
else
    install -m 0755 "$BIN" "$STAGE/bin/sysimage-recovery"
fi

# The board's device model: device-signing keyrings must name it (docs/design.md §3).
mkdir -p "$STAGE/etc/sysimage"
printf '%s\n' "${SI_DEVICE:-qemu-x86_64}" > "$STAGE/etc/sysimage/device"
# The board's boot counters (GRUB's, on the ESP): /init resets them when the
# recovery has started (docs/board.md). Boards without one have no script.
# SI_BOARD: the board directory when it is not named after the device model
# (the A/B board qemu-x86_64-ab runs device qemu-x86_64: docs/flashing.md).
BOARD_DIR=$(dirname "$HERE")/images/${SI_BOARD:-${SI_DEVICE:-qemu-x86_64}}
if [ -f "$BOARD_DIR/bootcount.sh" ]; then
    install -m 0755 "$BOARD_DIR/bootcount.sh" "$STAGE/bin/sysimage-bootcount"
fi
# The board definition: flash mode lays out the internal disk from it and
# refuses media made for another board (docs/flashing.md).
if [ -f "$BOARD_DIR/board.json" ]; then
    install -m 0644 "$BOARD_DIR/board.json" "$STAGE/etc/sysimage/board.json"
fi

si_stage_modules build.sh "$STAGE" "$KDIR" "$KVER" "$MODULES"

# ---------------------------------------------------------------- pack
mkdir -p "$OUT"
cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
si_pack_initrd "$STAGE" "$OUT/initrd.img" 0
# Which board this image is for: a copy of the board file it carries
# (`sysimage image`/`flash-media` refuse the image for another board).
rm -f "$OUT/board.json"
[ ! -f "$STAGE/etc/sysimage/board.json" ] || cp "$STAGE/etc/sysimage/board.json" "$OUT/board.json"
echo "build.sh: $OUT/vmlinuz ($KVER, $(wc -c < "$OUT/vmlinuz") bytes)"
echo "build.sh: $OUT/initrd.img ($(wc -c < "$OUT/initrd.img") bytes, zstd newc cpio)"
