#!/bin/sh
# check-deps.sh [--root DIR] [--table]: the one direction of dependencies
# (docs/architecture.md) in the checkout DIR (default: this script's).
#
#   programs (tools/, recovery/, client-stub/)  ->  lib/ modules  ->  lower lib/ modules
#
# Checks, from the sources' #include lines and the built objects' symbols:
#  1. no lib/ file includes a program's header;
#  2. no program includes another program's header;
#  3. the lib/ modules' includes have no cycle (tsort), counting a module's
#     .c and .h as one;
#  4. within each program nothing calls back into the file that holds main():
#     no other object of the program uses a symbol main's object defines
#     (needs `make`: reads build/obj/rel/<program>/*.o with nm).
# --table prints, as Markdown, each program's lib modules and each module's
# lib dependencies (what docs/architecture.md shows). Exit 1 on a violation.
set -eu
root="$(dirname "$0")/.."
if [ "${1:-}" = --root ]; then root=$2; shift 2; fi
cd "$root"

PROGRAMS="tools recovery client-stub"
bad=0
fail() { echo "check-deps: $*" >&2; bad=1; }

# "file included" lines of one source file, local includes only
includes() { sed -n 's/^#include "\([^"]*\)".*/\1/p' "$1"; }
module_of() { b=$(basename "$1"); b=${b%.[ch]}; echo "$b"; }

# 1 and 2
for f in lib/*.c lib/*.h; do
    for inc in $(includes "$f"); do
        for p in $PROGRAMS; do
            [ -f "$p/$inc" ] && fail "$f includes $p/$inc: lib/ must not depend on a program"
        done
        [ -f "lib/$inc" ] || [ "$inc" = cJSON.h ] || fail "$f includes $inc, which is not in lib/"
    done
done
for p in $PROGRAMS; do
    for f in "$p"/*.c "$p"/*.h; do
        [ -f "$f" ] || continue
        for inc in $(includes "$f"); do
            [ -f "$p/$inc" ] || [ -f "lib/$inc" ] || [ "$inc" = cJSON.h ] || \
                [ "$inc" = builtin_archive_master.h ] || [ -f "build/gen/$inc" ] || \
                fail "$f includes $inc: neither its own program's nor lib/'s"
        done
    done
done

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# 3: module graph "a b" = a uses b
edges=$(for f in lib/*.c lib/*.h; do
    m=$(module_of "$f")
    for inc in $(includes "$f"); do
        [ -f "lib/$inc" ] || continue
        d=$(module_of "$inc")
        [ "$d" = "$m" ] || echo "$m $d"
    done
done | sort -u)
if ! order=$(printf '%s\n' "$edges" | tsort 2>"$tmp"); then
    fail "lib/ modules include each other in a cycle: $(cat "$tmp")"
fi

# 4: nothing calls back into main's object
for p in $PROGRAMS; do
    objdir=build/obj/rel/$p
    [ -d "$objdir" ] || { echo "check-deps: $objdir not built: step 4 skipped for $p (run make)" >&2; continue; }
    mainobj=$(grep -l '^int main(' "$p"/*.c | head -1)
    mainobj=$objdir/$(basename "${mainobj%.c}").o
    defined=$(nm --defined-only -g "$mainobj" | awk '{print $3}' | grep -v '^main$' || true)
    [ -n "$defined" ] || continue
    for o in "$objdir"/*.o; do
        [ "$o" = "$mainobj" ] && continue
        for s in $(nm -u "$o" | awk '{print $2}'); do
            if printf '%s\n' "$defined" | grep -qx "$s"; then
                fail "$p: $(basename "$o" .o).c calls $s, defined in $(basename "$mainobj" .o).c (the program's main): move it to a module of its own"
            fi
        done
    done
done

if [ "${1:-}" = --table ]; then
    echo "| program | lib modules it uses directly |"
    echo "|---|---|"
    for p in $PROGRAMS; do
        mods=$(for f in "$p"/*.c "$p"/*.h; do [ -f "$f" ] && includes "$f"; done | \
               while read -r inc; do [ -f "lib/$inc" ] && module_of "$inc"; done | sort -u | tr '\n' ' ')
        echo "| \`$p/\` | ${mods% } |"
    done
    echo
    echo "| lib module | lib modules it uses |"
    echo "|---|---|"
    # modules from the ground up (tsort prints users before what they use)
    seen=""
    for m in $(printf '%s\n' "$order" | tac) $(for f in lib/*.c; do module_of "$f"; done | sort -u); do
        case " $seen " in *" $m "*) continue ;; esac
        seen="$seen $m"
        deps=$(printf '%s\n' "$edges" | awk -v m="$m" '$1 == m {print $2}' | tr '\n' ' ')
        echo "| \`$m\` | ${deps% } |"
    done
fi

[ $bad -eq 0 ] && echo "check-deps: programs -> lib -> lower lib only; no cycle; nothing calls back into a main"
exit $bad
