#!/bin/sh
# images/qemu-x86_64/normal-initrd.sh KERNEL_DIR OUT
#
# The normal OS's initramfs (zstd newc cpio, reproducible): BusyBox, the
# board's system modules of board.json (kernel.system_modules) from the
# unpacked cloud kernel package KERNEL_DIR with a modules.dep from depmod, and
# an /init that loads them, finds root=PARTLABEL=<label> through
# /sys/class/block/*/uevent (no udev), mounts it read-only and switch_roots
# into its /sbin/init. If the root cannot be mounted, /init exits: the kernel
# panics, panic=-1 reboots, and the boot loader counts a boot the system never
# confirmed (docs/board.md).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 KERNEL_DIR OUT" >&2; exit 1; }
KDIR=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../initramfs/stage.sh"
BUSYBOX=${BUSYBOX:-/bin/busybox}
kver=$(ls "$KDIR/lib/modules")
MODULES=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["kernel"]["system_modules"]))' "$HERE/board.json")

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/si-normal-initrd.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/dev" "$STAGE/proc" "$STAGE/sys" "$STAGE/newroot"
si_stage_busybox "$STAGE" "$BUSYBOX"
cat > "$STAGE/init" <<'EOT'
#!/bin/sh
# /init of the normal OS's initramfs (images/qemu-x86_64/normal-initrd.sh)
PATH=/bin
export PATH
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1
kver=$(uname -r)
for ko in $(sed -n 's|^\([^:]*\)\.ko:.*|\1|p' "/lib/modules/$kver/modules.dep"); do
    modprobe "${ko##*/}" || echo "initrd: modprobe ${ko##*/} failed"
done
root=
set -f
for w in $(cat /proc/cmdline); do
    case "$w" in
        root=PARTLABEL=*) root=${w#root=PARTLABEL=} ;;
    esac
done
set +f
[ -n "$root" ] || { echo "initrd: no root=PARTLABEL=<label> on the command line"; exit 1; }
dev=
n=0
while [ -z "$dev" ] && [ $n -lt 50 ]; do
    for u in /sys/class/block/*/uevent; do
        if grep -qx "PARTNAME=$root" "$u" 2>/dev/null; then
            dev=$(sed -n 's/^DEVNAME=//p' "$u")
            break
        fi
    done
    [ -n "$dev" ] || { sleep 0.1; n=$((n + 1)); }
done
[ -n "$dev" ] || { echo "initrd: no partition labelled $root"; exit 1; }
mount -t ext4 -o ro "/dev/$dev" /newroot || { echo "initrd: cannot mount /dev/$dev ($root)"; exit 1; }
[ -e /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || { echo "initrd: $root has no /sbin/init"; exit 1; }
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /sbin/init
EOT
chmod 0755 "$STAGE/init"

si_stage_modules normal-initrd.sh "$STAGE" "$KDIR" "$kver" "$MODULES"
si_pack_initrd "$STAGE" "$OUT" 1
