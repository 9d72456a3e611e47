#!/bin/sh
# images/qemu-x86_64/debian-os.sh VERSION OUTDIR
#
# A Debian 12 normal OS for the qemu-x86_64 board (docs/board.md): debootstrap
# --variant=minbase with systemd and udev, Debian's cloud kernel in /boot with
# the board's initrd (images/qemu-x86_64/normal-initrd.sh), the read-only root
# and the board's layout in /etc/fstab, systemd-networkd (DHCP from QEMU's user
# network), and sysimage-stub installed as the Debian package `make deb` builds:
# its timer stages updates. Build 2 differs from build 1 in /etc/motd and
# /usr/share/doc/debian-device/CHANGES.
#
# Needs root (debootstrap, chroot) and the Debian mirror configured for apt
# (SI_DEBIAN_MIRROR overrides). The debootstrap tree is kept in
# $SI_DEBIAN_BASE (default build/debian/base) and reused.
# Environment: SI_KERNEL_DIR and SI_STUB_DEB (required); SI_SERVER_URL,
# SI_CA_FILE, SI_ARCHIVE_MASTER, SI_CHANNEL as for sample-os.sh;
# SI_TIMER_ON_BOOT (default 2min): when the timer first runs after boot.
set -eu
usage() { echo "usage: $0 1|2 OUTDIR" >&2; exit 1; }
[ $# -eq 2 ] || usage
v=$1
out=$2
case "$v" in 1|2) ;; *) usage ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/stub-config.sh"
ROOT=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "debian-os.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
: "${SI_KERNEL_DIR:?debian-os.sh: SI_KERNEL_DIR (the unpacked cloud kernel) is required}"
: "${SI_STUB_DEB:?debian-os.sh: SI_STUB_DEB (make deb) is required}"
BASE=${SI_DEBIAN_BASE:-$ROOT/build/debian/base}

mirror() {
    if [ -n "${SI_DEBIAN_MIRROR:-}" ]; then echo "$SI_DEBIAN_MIRROR"; return; fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u != "" {print u; exit}' "$f"
    done | head -n 1 | grep . && return
    sed -n 's/^deb \(http[^ ]*\) bookworm .*main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1
}

if [ ! -x "$BASE/usr/bin/systemctl" ]; then
    m=$(mirror)
    [ -n "$m" ] || { echo "debian-os.sh: no Debian bookworm mirror in apt's sources (set SI_DEBIAN_MIRROR)" >&2; exit 1; }
    echo "debian-os.sh: debootstrap bookworm from $m into $BASE"
    rm -rf "$BASE.tmp"
    mkdir -p "$(dirname "$BASE")"
    debootstrap --variant=minbase --include=systemd-sysv,udev,libcurl4,libmbedcrypto7 \
        bookworm "$BASE.tmp" "$m" > "$BASE.log" 2>&1 || { tail -20 "$BASE.log" >&2; exit 1; }
    rm -rf "$BASE.tmp/var/cache/apt/archives/"*.deb "$BASE.tmp/var/lib/apt/lists/"*_Packages
    mv "$BASE.tmp" "$BASE"
fi

rm -rf "$out"
cp -a "$BASE" "$out"
cd "$out"

# ---------------------------------------------------------------- the stub package
cp "$SI_STUB_DEB" tmp/sysimage-stub.deb
chroot . dpkg -i /tmp/sysimage-stub.deb > /dev/null
rm -f tmp/sysimage-stub.deb
[ -L etc/systemd/system/timers.target.wants/sysimage-stub.timer ] ||
    { echo "debian-os.sh: the package did not enable its timer" >&2; exit 1; }
# a read-only image: no apt, dpkg or fstrim housekeeping
rm -f etc/systemd/system/timers.target.wants/apt-daily.timer etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer \
    etc/systemd/system/timers.target.wants/dpkg-db-backup.timer etc/systemd/system/timers.target.wants/e2scrub_all.timer \
    etc/systemd/system/timers.target.wants/fstrim.timer
mkdir -p etc/systemd/system/sysimage-stub.timer.d
cat > etc/systemd/system/sysimage-stub.timer.d/device.conf <<EOT
[Timer]
OnBootSec=${SI_TIMER_ON_BOOT:-2min}
RandomizedDelaySec=0
EOT
si_client_ini > etc/sysimage/client.ini
si_stub_files
install -m 0755 "$HERE/bootcount.sh" usr/sbin/sysimage-bootcount

# ---------------------------------------------------------------- layout
cat > etc/fstab <<'EOT'
# The system partition is read-only; updates come through the recovery.
PARTLABEL=system    /       ext4   ro                   0 1
PARTLABEL=userdata  /data   ext4   nosuid,nodev         0 2
PARTLABEL=cache     /cache  ext4   nosuid,nodev         0 2
/data/var           /var    none   bind,x-systemd.requires=sysimage-layout.service  0 0
/data/home          /home   none   bind,x-systemd.requires=sysimage-layout.service  0 0
tmpfs               /tmp    tmpfs  nosuid,nodev,mode=1777  0 0
EOT
mkdir -p data cache
cat > etc/systemd/system/sysimage-layout.service <<'EOT'
[Unit]
Description=sysimage: directories of the board's layout on userdata and cache
DefaultDependencies=no
RequiresMountsFor=/data /cache
Before=var.mount home.mount

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mkdir -p /data/var/lib /data/var/log /data/var/tmp /data/home /data/sysimage /cache/recovery
ExecStart=/bin/sh -c 'test -s /data/sysimage/machine-id || tr -d - < /proc/sys/kernel/random/uuid > /data/sysimage/machine-id'
EOT
mkdir -p usr/lib/sysimage
cat > usr/lib/sysimage/boot-ok <<'EOT'
#!/bin/sh
# Confirm this boot to the boot loader (docs/board.md) and say so on the console.
set -e
/usr/sbin/sysimage-bootcount set normal_boots=0 system_new=0
b=$(sed -n 's/.*"build": *\([0-9]*\).*/\1/p' /etc/sysimage/version.json 2>/dev/null || true)
echo "sample-os: build ${b:-unknown} is up" > /dev/console
EOT
chmod 0755 usr/lib/sysimage/boot-ok
cat > etc/systemd/system/sysimage-boot-ok.service <<'EOT'
[Unit]
Description=sysimage: confirm this boot to the boot loader
After=local-fs.target
Wants=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/sysimage/boot-ok

[Install]
WantedBy=multi-user.target
EOT
ln -sf /etc/systemd/system/sysimage-boot-ok.service etc/systemd/system/multi-user.target.wants/sysimage-boot-ok.service
mkdir -p etc/systemd/network etc/systemd/system/serial-getty@ttyS0.service.d
cat > etc/systemd/network/10-wired.network <<'EOT'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOT
ln -sf /lib/systemd/system/systemd-networkd.service etc/systemd/system/multi-user.target.wants/systemd-networkd.service
cat > etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf <<'EOT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I linux
EOT
echo debian-device > etc/hostname
: > etc/machine-id
rm -f var/lib/dbus/machine-id

# ---------------------------------------------------------------- build identity
mkdir -p usr/share/doc/debian-device
if [ "$v" = 1 ]; then
    echo "Debian device, build 1." > etc/motd
    echo "Build 1: first release." > usr/share/doc/debian-device/CHANGES
else
    printf 'Debian device, build 2.\nIt arrived as a delta from build 1.\n' > etc/motd
    printf 'Build 1: first release.\nBuild 2: a new motd.\n' > usr/share/doc/debian-device/CHANGES
fi

# ---------------------------------------------------------------- kernel
kver=$(ls "$SI_KERNEL_DIR/lib/modules")
install -m 0644 "$SI_KERNEL_DIR/boot/vmlinuz-$kver" boot/vmlinuz
"$HERE/normal-initrd.sh" "$SI_KERNEL_DIR" boot/initrd.img

# devtmpfs is mounted on /dev at boot: the tree ships no device nodes
rm -rf dev/* var/cache/apt/archives/*.deb var/lib/apt/lists/* var/log/* tmp/*
find . -xdev -exec touch -h -d "@$((1700000000 + v * 86400))" {} +
