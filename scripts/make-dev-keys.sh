#!/bin/sh
# make-dev-keys.sh SYSIMAGE OUTDIR: a development key hierarchy (docs/design.md §3).
# Never for production: a vendor keeps archive-master offline (keys/README.md).
set -eu
tool=$1 out=$2
device=${DEVICE:-qemu-x86_64}
mkdir -p "$out"
chmod 700 "$out"
now=$(date +%s)
two_years=$((now + 2 * 365 * 86400))
month=$((now + 31 * 86400))
for k in archive-master image-master image-signing blacklist device-signing; do
    [ -f "$out/$k.key" ] || "$tool" keygen "$out/$k"
done
"$tool" keyring create --type archive-master "$out/archive-master.keyring" "$out/archive-master.pub"
"$tool" keyring create --type image-master --sign-with "$out/archive-master.key" \
    "$out/image-master.keyring" "$out/image-master.pub"
"$tool" keyring create --type image-signing --expiry "$two_years" --sign-with "$out/image-master.key" \
    "$out/image-signing.keyring" "$out/image-signing.pub"
# The blacklist starts empty; its key pair only exists to keep the layout uniform.
"$tool" keyring create --type blacklist --sign-with "$out/image-master.key" \
    "$out/blacklist.keyring"
"$tool" keyring create --type device-signing --expiry "$month" --model "$device" \
    --sign-with "$out/image-signing.key" "$out/device-signing.keyring" "$out/device-signing.pub"
echo "keys: development hierarchy in $out (device $device)"
