# initramfs/stage.sh - shell functions shared by the two initramfs builds:
# the recovery's (initramfs/build.sh) and the normal OS's
# (images/qemu-x86_64/normal-initrd.sh). Sourced, not run; sh (dash, BusyBox:
# POSIX plus `local`) with set -eu.
# Each function names its caller ($1 = the script's name) in errors.

# si_stage_busybox STAGE BUSYBOX: the static BusyBox in STAGE/bin with a link
# per applet.
si_stage_busybox() {
    local a
    install -m 0755 "$2" "$1/bin/busybox"
    for a in $("$2" --list); do
        [ "$a" = busybox ] || ln -s busybox "$1/bin/$a"
    done
}

# si_stage_modules WHO STAGE KERNEL_DIR KVER MODULES: the kernel modules
# MODULES (names, .ko plain or compressed) of the unpacked kernel package
# KERNEL_DIR into STAGE/lib/modules/KVER with a modules.dep from `depmod -b`,
# only the index files modprobe reads, and every dependency staged too.
si_stage_modules() {
    local who=$1 stage=$2 src=$3/lib/modules/$4 kver=$4 mods=$5
    local dst=$stage/lib/modules/$kver m f rel missing
    mkdir -p "$dst"
    for m in $mods; do
        f=$(find "$src/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
        [ -n "$f" ] || { echo "$who: module $m not in $3" >&2; exit 1; }
        rel=${f#"$src"/}
        mkdir -p "$dst/$(dirname "$rel")"
        cp "$f" "$dst/$rel"
    done
    for f in modules.builtin modules.builtin.modinfo modules.order; do
        [ ! -f "$src/$f" ] || cp "$src/$f" "$dst/$f"
    done
    depmod -b "$stage" "$kver"
    # Keep only what modprobe reads.
    find "$dst" -maxdepth 1 -type f -name 'modules.*' ! -name modules.dep ! -name modules.alias \
        ! -name modules.builtin ! -name modules.symbols ! -name modules.softdep -delete
    # Every staged module must have its dependencies staged too.
    missing=$(sed -n 's/^[^:]*: *//p' "$dst/modules.dep" | tr ' ' '\n' | while read -r d; do
        [ -z "$d" ] || [ -f "$dst/$d" ] || echo "$d"; done)
    [ -z "$missing" ] || { echo "$who: staged modules need: $missing" >&2; exit 1; }
}

# si_pack_initrd STAGE OUT ZSTD_THREADS: STAGE as a reproducible zstd newc
# cpio (times, owners and order fixed) written to OUT through OUT.tmp.
si_pack_initrd() {
    find "$1" -exec touch -h -d @1 {} +
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
        zstd -q -19 -T"$3" > "$2.tmp"
    mv "$2.tmp" "$2"
}
