#!/bin/sh
# images/qemu-x86_64/sample-os.sh VERSION OUTDIR
#
# A small BusyBox-based OS tree for the qemu-x86_64 board, in two versions
# (1 and 2), for `make demo` and tests. Nothing third-party is committed: the
# static BusyBox comes from the host's busybox-static package ($BUSYBOX).
#
# What changes from 1 to 2 (so a delta has every kind of change to carry):
#   changed content   usr/lib/os-release, usr/lib/issue
#   added             etc/motd, usr/bin/uptime-report, bin/vi (symlink)
#   removed           usr/share/doc/sample-os/CHANGES-1.txt, bin/ed (symlink)
#   mode              usr/bin/hello 0644 -> 0755 (its hardlink usr/bin/hi too)
#   symlink target    etc/localtime -> zoneinfo/UTC, then zoneinfo/Europe/Paris
#   type              etc/issue: a file, then a symlink to ../usr/lib/issue
#   unchanged         bin/busybox, lib/firmware/sample-wifi.bin (2 MiB that do
#                     not compress: the full image is then clearly bigger than
#                     the delta and the client picks the delta, DESIGN §6)
# File times are fixed, owners are root when run as root: the same VERSION
# (and the same inputs below) gives the same tree.
#
# A bootable device OS (docs/board.md) when these are set (all optional: without
# them the tree is the plain sample used by tests that only need files):
#   SI_KERNEL_DIR   Debian's cloud kernel package unpacked (build/kernel/linux-image-*):
#                   /boot/vmlinuz and /boot/initrd.img (BusyBox /init that loads the
#                   board's modules and mounts the system partition read-only by label)
#   SI_STUB         the sysimage-stub binary: /usr/bin/sysimage-stub with the shared
#                   libraries it needs (ldd), run by the device, and the board's
#                   sysimage-bootcount (GRUB's counters: the OS confirms its boots)
#   SI_SERVER_URL   the update server (default https://updates.example.com/sysimage)
#   SI_CA_FILE      a CA certificate the stub trusts for that server (e.g. a demo CA)
#   SI_ARCHIVE_MASTER  the archive-master keyring shipped read-only in the OS
#   SI_CHANNEL      the channel (default stable)
#   SI_AB           set: an A/B device (board qemu-x86_64-ab, docs/ab.md): [ab] in
#                   client.ini and SI_RECOVERY_BIN (the static sysimage-recovery, the
#                   install engine) as /usr/lib/sysimage/sysimage-recovery
#   SI_BROKEN_INIT  set: /sbin/init exits at once (the kernel panics): a build that
#                   never comes up, for the rollback tests
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/stub-config.sh"

usage() { echo "usage: $0 1|2 OUTDIR" >&2; exit 1; }
[ $# -eq 2 ] || usage
v=$1
out=$2
case "$v" in 1|2) ;; *) usage ;; esac
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "sample-os.sh: $BUSYBOX missing (install busybox-static)" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "sample-os.sh: $BUSYBOX is not static (install busybox-static)" >&2
    exit 1
fi

umask 022
rm -rf "$out"
mkdir -p "$out"
cd "$out"

mkdir -p bin sbin etc/init.d etc/sysimage lib/firmware usr/bin usr/lib \
    usr/share/doc/sample-os usr/share/zoneinfo/Europe var/log home root tmp \
    proc sys dev run boot cache data
chmod 1777 tmp
chmod 0700 root

# ---------------------------------------------------------------- BusyBox
install -m 0755 "$BUSYBOX" bin/busybox
applets="sh ash cat cp date df dmesg echo grep ls mkdir mount mv ps rm sleep sync umount uname
 head tail tr wc sed dd ln sort cut id ip modprobe mountpoint hostname find chmod stty setsid cttyhack
 poweroff reboot true false test [ printf expr seq"
[ "$v" = 1 ] && applets="$applets ed"
[ "$v" = 2 ] && applets="$applets vi"
for a in $applets; do ln -s busybox "bin/$a"; done
for a in init halt; do ln -s ../bin/busybox "sbin/$a"; done

# ---------------------------------------------------------------- identity
cat > usr/lib/os-release <<EOT
NAME="sysimage sample OS"
ID=sysimage-sample
VERSION_ID=$v
PRETTY_NAME="sysimage sample OS, build $v"
HOME_URL="https://example.com/sysimage"
EOT
ln -s ../usr/lib/os-release etc/os-release
echo "sample" > etc/hostname
printf 'sysimage sample OS, build %s \\n \\l\n\n' "$v" > usr/lib/issue
if [ "$v" = 1 ]; then
    cp usr/lib/issue etc/issue
else
    ln -s ../usr/lib/issue etc/issue
    printf 'Welcome to build 2 of the sysimage sample OS.\nIt arrived as a delta from build 1.\n' > etc/motd
fi

# ---------------------------------------------------------------- users
cat > etc/passwd <<'EOT'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:Device user:/data/user:/bin/sh
EOT
cat > etc/group <<'EOT'
root:x:0:
user:x:1000:
EOT
cat > etc/shadow <<'EOT'
root:*:19000:0:99999:7:::
user:*:19000:0:99999:7:::
EOT
chmod 0640 etc/shadow

# ---------------------------------------------------------------- boot
# Layout (docs/board.md): / is the system partition, read-only; userdata at
# /data (read-write) with /var and /home bind-mounted from /data/var and
# /data/home; cache at /cache; misc at /dev/disk/by-partlabel/misc (links made
# by rcS from /sys/class/block/*/uevent: there is no udev); /run and /tmp tmpfs.
cat > etc/fstab <<'EOT'
# The system partition is read-only; updates come through the recovery.
# (rcS mounts these by partition label; this table documents them.)
PARTLABEL=system    /       ext4  ro                 0 1
PARTLABEL=cache     /cache  ext4  nosuid,nodev       0 2
PARTLABEL=userdata  /data   ext4  nosuid,nodev       0 2
/data/var           /var    none  bind               0 0
/data/home          /home   none  bind               0 0
EOT
cat > etc/inittab <<'EOT'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
EOT
cat > etc/profile <<'EOT'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='device# '
stty -echo 2>/dev/null
EOT
cat > etc/init.d/rcS <<'EOT'
#!/bin/sh
# Bring the device up: mounts, network, confirm the boot to the boot loader.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
log() { echo "sample-os: $*"; }
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mountpoint -q /dev || mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t tmpfs -o nosuid,nodev,mode=0755 run /run
mount -t tmpfs -o nosuid,nodev,mode=1777 tmp /tmp
mkdir -p /dev/disk/by-partlabel
for u in /sys/class/block/*/uevent; do
    name=$(sed -n 's/^PARTNAME=//p' "$u")
    dev=$(sed -n 's/^DEVNAME=//p' "$u")
    [ -z "$name" ] || ln -sf "../../$dev" "/dev/disk/by-partlabel/$name"
done
ok=1
mount -t ext4 -o rw,nosuid,nodev /dev/disk/by-partlabel/userdata /data || { log "userdata: cannot mount"; ok=; }
mount -t ext4 -o rw,nosuid,nodev /dev/disk/by-partlabel/cache /cache || { log "cache: cannot mount"; ok=; }
mkdir -p /data/var/log /data/home /data/sysimage /cache/recovery
mount --bind /data/var /var
mount --bind /data/home /home
[ -s /data/sysimage/machine-id ] || tr -d '-' < /proc/sys/kernel/random/uuid > /data/sysimage/machine-id
hostname -F /etc/hostname
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
    # QEMU user networking: the host is 10.0.2.2
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
fi
build=$(sed -n 's/.*"build": *\([0-9]*\).*/\1/p' /etc/sysimage/version.json 2>/dev/null)
fallback=$(sed -n 's/.*sysimage\.fallback=\([a-z-]*\).*/\1/p' /proc/cmdline)
if [ -n "$fallback" ]; then
    log "the boot loader fell back to this system: $fallback"
    echo "$fallback" > /run/sysimage-boot-fallback
fi
# Mark this boot good: the boot loader stops counting it (docs/board.md).
# An A/B device (docs/ab.md; GRUB put sysimage.slot= on the command line)
# keeps the slot it booted from: `sysimage-stub mark-good`.
if [ -n "$ok" ] && grep -q 'sysimage\.slot=' /proc/cmdline; then
    sysimage-stub mark-good && log "slot marked good"
elif [ -n "$ok" ] && [ -x /usr/sbin/sysimage-bootcount ]; then
    sysimage-bootcount set normal_boots=0 system_new=0 && log "boot confirmed to the boot loader"
fi
cat /etc/issue
log "build ${build:-unknown} is up"
EOT
chmod 0755 etc/init.d/rcS
cat > etc/init.d/rcK <<'EOT'
#!/bin/sh
sync
umount /home /var 2>/dev/null
umount -r /cache /data 2>/dev/null
sync
EOT
chmod 0755 etc/init.d/rcK

# The stub's configuration, as a device built from this tree ships it.
{
    si_client_ini
    if [ -n "${SI_AB:-}" ]; then
        # an A/B device (board qemu-x86_64-ab, docs/ab.md): `sysimage-stub install`
        echo
        echo "[ab]"
        echo "slot_a = /dev/disk/by-partlabel/system_a"
        echo "slot_b = /dev/disk/by-partlabel/system_b"
    fi
    echo
    echo "[network]"
    echo "connect_timeout = 10"
    echo "low_speed_time = 30"
    echo "retries = 3"
} > etc/sysimage/client.ini
si_stub_files

# ---------------------------------------------------------------- stub
if [ -n "${SI_STUB:-}" ]; then
    mkdir -p usr/sbin lib64
    install -m 0755 "$SI_STUB" usr/bin/sysimage-stub
    install -m 0755 "$HERE/bootcount.sh" usr/sbin/sysimage-bootcount
    for lib in $(ldd "$SI_STUB" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^\t*\(\/[^ ]*\) .*/\1/p'); do
        d=.$(dirname "$lib")
        mkdir -p "$d"
        cp -L "$lib" "$d/"
        chmod 0644 "$d/$(basename "$lib")"
    done
    chmod 0755 lib64/ld-linux-x86-64.so.2 2>/dev/null || true
fi
# A/B: the install engine is the recovery's own static program (docs/ab.md).
if [ -n "${SI_AB:-}" ]; then
    [ -n "${SI_RECOVERY_BIN:-}" ] || { echo "sample-os.sh: SI_AB needs SI_RECOVERY_BIN" >&2; exit 1; }
    mkdir -p usr/lib/sysimage
    install -m 0755 "$SI_RECOVERY_BIN" usr/lib/sysimage/sysimage-recovery
fi
# A build that cannot come up (tests of the rollback): its init exits, the
# kernel panics, panic=-1 reboots.
if [ -n "${SI_BROKEN_INIT:-}" ]; then
    rm -f sbin/init
    printf '#!/bin/sh\necho "sample-os: broken init of build %s"\nexit 1\n' "$v" > sbin/init
    chmod 0755 sbin/init
fi

# ---------------------------------------------------------------- kernel
if [ -n "${SI_KERNEL_DIR:-}" ]; then
    kver=$(ls "$SI_KERNEL_DIR/lib/modules")
    [ -f "$SI_KERNEL_DIR/boot/vmlinuz-$kver" ] || { echo "sample-os.sh: no kernel in $SI_KERNEL_DIR" >&2; exit 1; }
    install -m 0644 "$SI_KERNEL_DIR/boot/vmlinuz-$kver" boot/vmlinuz
    "$HERE/normal-initrd.sh" "$SI_KERNEL_DIR" boot/initrd.img
fi

# ---------------------------------------------------------------- programs
cat > usr/bin/hello <<'EOT'
#!/bin/sh
. /etc/os-release
echo "Hello from $PRETTY_NAME"
EOT
# build 1 shipped hello without its execute bits; build 2 fixes the mode
if [ "$v" = 1 ]; then chmod 0644 usr/bin/hello; else chmod 0755 usr/bin/hello; fi
ln usr/bin/hello usr/bin/hi
if [ "$v" = 2 ]; then
    cat > usr/bin/uptime-report <<'EOT'
#!/bin/sh
echo "up $(cut -d' ' -f1 /proc/uptime) s on $(cat /etc/hostname)"
EOT
    chmod 0755 usr/bin/uptime-report
fi

# ---------------------------------------------------------------- data
echo "UTC0" > usr/share/zoneinfo/UTC
echo "CET-1CEST,M3.5.0,M10.5.0/3" > usr/share/zoneinfo/Europe/Paris
if [ "$v" = 1 ]; then
    ln -s ../usr/share/zoneinfo/UTC etc/localtime
else
    ln -s ../usr/share/zoneinfo/Europe/Paris etc/localtime
fi
printf 'The sysimage sample OS: a BusyBox system for the qemu-x86_64 board.\n' \
    > usr/share/doc/sample-os/README
[ "$v" = 1 ] && printf 'Build 1: first release.\n' > usr/share/doc/sample-os/CHANGES-1.txt
[ "$v" = 2 ] && printf 'Build 2: motd, uptime-report, vi, Paris time, hello is executable.\n' \
    > usr/share/doc/sample-os/CHANGES-2.txt
# A firmware blob: deterministic bytes that do not compress.
head -c 2097152 /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K 737973696d6167652073616d706c6521 \
        -iv 00000000000000000000000000000000 > lib/firmware/sample-wifi.bin
chmod 0644 lib/firmware/sample-wifi.bin

# ---------------------------------------------------------------- times
find . -exec touch -h -d "@$((1700000000 + v * 86400))" {} +
