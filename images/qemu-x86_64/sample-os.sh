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
# gives the same tree.
set -eu

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
applets="sh ash cat cp date df dmesg echo grep ls mkdir mount mv ps rm sleep sync umount uname"
[ "$v" = 1 ] && applets="$applets ed"
[ "$v" = 2 ] && applets="$applets vi"
for a in $applets; do ln -s busybox "bin/$a"; done
for a in init halt poweroff reboot; do ln -s ../bin/busybox "sbin/$a"; done

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
cat > etc/fstab <<'EOT'
# The system partition is read-only; updates come through the recovery.
PARTLABEL=system    /       ext4  ro                 0 1
PARTLABEL=cache     /cache  ext4  nosuid,nodev       0 2
PARTLABEL=userdata  /data   ext4  nosuid,nodev       0 2
EOT
cat > etc/inittab <<'EOT'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/sh
::shutdown:/bin/umount -a -r
EOT
cat > etc/init.d/rcS <<'EOT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -a
cat /etc/issue
EOT
chmod 0755 etc/init.d/rcS

# The stub's configuration, as a device built from this tree would ship it.
cat > etc/sysimage/client.ini <<'EOT'
[service]
base = https://updates.example.com/sysimage
channel = stable
device = qemu-x86_64

[system]
cache_dir = /cache/recovery
state_dir = /data/sysimage
boot_control = /dev/disk/by-partlabel/misc
EOT
echo "qemu-x86_64" > etc/sysimage/device

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
