#!/bin/sh
# embed-file.sh SYMBOL FILE: C source defining SYMBOL[] and SYMBOL_len.
set -eu
sym=$1 file=$2
echo "/* generated from $file by scripts/embed-file.sh */"
echo "#include <stddef.h>"
echo "const unsigned char ${sym}[] = {"
od -An -v -tx1 "$file" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g; s/^/    /'
echo "};"
echo "const size_t ${sym}_len = sizeof(${sym});"
