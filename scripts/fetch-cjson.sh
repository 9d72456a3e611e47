#!/bin/sh
# Fetch Debian's cJSON source package and place cJSON.c/cJSON.h in OUTDIR.
# The package comes through scripts/apt-source.sh (the machine's own mirror;
# nothing third-party is committed to the project).
set -eu
outdir=${1:?usage: fetch-cjson.sh OUTDIR}
[ -f "$outdir/cJSON.c" ] && [ -f "$outdir/cJSON.h" ] && exit 0

src_dir=$(mktemp -d)
trap 'rm -rf "$src_dir"' EXIT
"$(dirname "$0")/apt-source.sh" cjson "$src_dir"
src=$(find "$src_dir" -maxdepth 2 -name cJSON.c | head -n 1)
[ -n "$src" ] || { echo "fetch-cjson: cJSON.c not found in the source package" >&2; exit 1; }
mkdir -p "$outdir"
cp "$src" "$(dirname "$src")/cJSON.h" "$(dirname "$src")/LICENSE" "$outdir/"
echo "fetch-cjson: cJSON from $(basename "$(dirname "$src")") into $outdir" >&2
