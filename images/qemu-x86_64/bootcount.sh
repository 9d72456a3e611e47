#!/bin/sh
# sysimage-bootcount - GRUB's boot counters of the qemu-x86_64 board
# (docs/board.md), for the recovery's /init and the normal OS.
#
#   sysimage-bootcount get            print the counters (KEY=VALUE lines)
#   sysimage-bootcount set KEY=VALUE  change counters (e.g. recovery_boots=0)
#
# GRUB keeps them in grub/bootcount.env on the ESP (a GRUB environment block,
# 1024 bytes: GRUB's save_env rewrites those bytes in place and never resizes
# the file). This script mounts the ESP (vfat, found by its GPT label `esp`
# in /sys/class/block/*/uevent: no udev needed), rewrites the same 1024 bytes
# in place (dd conv=notrunc,fsync: the file keeps its clusters, as GRUB
# expects), and unmounts it. Keys and values: [A-Za-z0-9_-] only.
set -u
PATH=/bin:/sbin:/usr/bin:/usr/sbin
LABEL=${SI_ESP_LABEL:-esp}
FILE=${SI_BOOTCOUNT_FILE:-grub/bootcount.env}
MNT=/run/sysimage-esp

die() { echo "sysimage-bootcount: $*" >&2; exit 1; }

find_part() {
    for u in /sys/class/block/*/uevent; do
        if grep -qx "PARTNAME=$1" "$u" 2>/dev/null; then
            sed -n 's/^DEVNAME=//p' "$u"
            return 0
        fi
    done
    return 1
}

mounted=
cleanup() {
    [ -z "$mounted" ] || umount "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

mount_esp() {
    dev=$(find_part "$LABEL") || die "no partition labelled '$LABEL'"
    mkdir -p "$MNT" || die "cannot create $MNT"
    mount -t vfat -o rw,noatime,nosuid,nodev,noexec "/dev/$dev" "$MNT" ||
        die "cannot mount /dev/$dev ($LABEL) as vfat"
    mounted=1
    [ -f "$MNT/$FILE" ] || die "$LABEL: no $FILE"
    [ "$(wc -c < "$MNT/$FILE")" -eq 1024 ] || die "$LABEL:$FILE is not a 1024-byte environment block"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    get)
        [ $# -eq 0 ] || die "get takes no arguments"
        mount_esp
        sed -n '/^[A-Za-z_][A-Za-z0-9_]*=/p' "$MNT/$FILE"
        ;;
    set)
        [ $# -gt 0 ] || die "set needs KEY=VALUE"
        for kv in "$@"; do
            case "$kv" in
                *=*) ;;
                *) die "'$kv' is not KEY=VALUE" ;;
            esac
            k=${kv%%=*}
            v=${kv#*=}
            echo "$k" | grep -qx '[A-Za-z_][A-Za-z0-9_]*' || die "bad key '$k'"
            echo "$v" | grep -qx '[A-Za-z0-9_-]*' || die "bad value '$v' for $k"
        done
        mount_esp
        new=/run/sysimage-bootcount.$$
        {
            echo "# GRUB Environment Block"
            sed -n '/^[A-Za-z_][A-Za-z0-9_]*=/p' "$MNT/$FILE" | while IFS= read -r line; do
                k=${line%%=*}
                keep=1
                for kv in "$@"; do
                    [ "${kv%%=*}" = "$k" ] && keep=
                done
                [ -z "$keep" ] || echo "$line"
            done
            for kv in "$@"; do
                echo "$kv"
            done
        } > "$new" || die "cannot write $new"
        size=$(wc -c < "$new")
        [ "$size" -le 1024 ] || { rm -f "$new"; die "the counters do not fit in 1024 bytes"; }
        head -c $((1024 - size)) /dev/zero | tr '\000' '#' >> "$new"
        dd if="$new" of="$MNT/$FILE" bs=1024 count=1 conv=notrunc,fsync 2>/dev/null ||
            { rm -f "$new"; die "cannot rewrite $LABEL:$FILE"; }
        rm -f "$new"
        sync
        ;;
    *)
        die "usage: sysimage-bootcount get | set KEY=VALUE..."
        ;;
esac
