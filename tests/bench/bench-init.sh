#!/bin/sh
# /init of the benchmark initrd (tests/bench/bench_recovery.py): the recovery
# image's own initrd with this file as /init. Same kernel setup as
# initramfs/init, then the kernel command line's bench= says what to run:
#   bench=recovery  sysimage-recovery run --mode update under BusyBox
#                   `time -v` (its peak RSS), result through isa-debug-exit
#   bench=tar       BusyBox tar -x of /bench/full.tar on the cache partition
#                   into the (empty, ext4) system partition, then sync; prints
#                   "bench: tar -x + sync: S s"
# Never part of the shipped recovery image.
PATH=/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs run /run
exec </dev/console >/dev/console 2>&1

kver=$(uname -r)
for ko in $(sed -n 's|^\([^:]*\)\.ko:.*|\1|p' "/lib/modules/$kver/modules.dep"); do
    modprobe "${ko##*/}"
done
n=0
while [ $n -lt 50 ] && ! ls /sys/class/block/*/partition >/dev/null 2>&1; do
    sleep 0.1
    n=$((n + 1))
done

bench=
for w in $(cat /proc/cmdline); do
    case "$w" in bench=*) bench=${w#bench=} ;; esac
done

# /dev node of the partition whose GPT name is $1
part() {
    for u in /sys/class/block/*/uevent; do
        if grep -qx "PARTNAME=$1" "$u"; then
            echo "/dev/$(sed -n 's/^DEVNAME=//p' "$u")"
            return 0
        fi
    done
    return 1
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

rc=29
case "$bench" in
recovery)
    time -v /bin/sysimage-recovery run --mode update
    rc=$?
    ;;
tar)
    mkdir -p /mnt/cache /mnt/system
    if mount -t ext4 -o ro "$(part cache)" /mnt/cache && mount -t ext4 "$(part system)" /mnt/system; then
        t0=$(uptime_s)
        tar -x -f /mnt/cache/bench/full.tar -C /mnt/system && sync
        rc=$?
        t1=$(uptime_s)
        echo "bench: tar -x + sync: $(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}') s (status $rc)"
        du -s /mnt/system
        umount /mnt/system
        umount /mnt/cache
    fi
    ;;
*)
    echo "bench: unknown bench=$bench"
    ;;
esac
sync
/bin/sysimage-recovery debug-exit "$rc"
poweroff -f
