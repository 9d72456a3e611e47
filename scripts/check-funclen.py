#!/usr/bin/env python3
"""check-funclen.py [--max N] [--root DIR] [DIR|FILE...]: no C function longer than N lines.

The developers' guide asks for functions made of named steps; this check
holds the line at N lines (default 80) for every function defined in the .c
files under lib/, recovery/, tools/ and client-stub/ (or the folders given),
counted from the line that names the function to its closing brace, both
included. Each function over the limit is printed as `file:function:lines`,
longest first; the exit code is 1 when there is one, else 0.

The reader is a small C lexer, not a compiler: comments, string and
character literals and preprocessor lines are blanked first, then every `{`
at file level that follows a parameter list `)` opens a function whose name
is the identifier before that list's `(`.
"""
import argparse
import os
import re
import sys

DEFAULT_DIRS = ("lib", "recovery", "tools", "client-stub")
IDENT_END = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def blank(text):
    """The text with comments, literals and preprocessor lines replaced by
    spaces (newlines kept, so offsets and line numbers stay)."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#":
            # a preprocessor line, with its backslash continuations
            while i < n and not (text[i] == "\n" and text[i - 1] != "\\"):
                if text[i] != "\n":
                    out[i] = " "
                i += 1
            continue
        if c == "\n":
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            for k in range(i, min(j + 1, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def matching_open(src, close):
    """Offset of the `(` that the `)` at `close` ends, or -1."""
    depth = 0
    for i in range(close, -1, -1):
        if src[i] == ")":
            depth += 1
        elif src[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return -1


def functions(text):
    """(name, first line, last line) of each function defined in C text."""
    src = blank(text)
    found = []
    depth = 0
    start = None
    for i, c in enumerate(src):
        if c == "{":
            if depth == 0:
                start = function_head(src, i)
            depth += 1
        elif c == "}":
            depth = max(depth - 1, 0)
            if depth == 0 and start is not None:
                name, at = start
                found.append((name, src.count("\n", 0, at) + 1, src.count("\n", 0, i) + 1))
                start = None
    return found


def function_head(src, brace):
    """(name, offset of the name) when the `{` at `brace` opens a function
    body at file level, else None."""
    j = brace - 1
    while j >= 0 and src[j].isspace():
        j -= 1
    while j >= 0 and src[j] == ")":
        opening = matching_open(src, j)
        if opening < 0:
            return None
        m = IDENT_END.search(src, 0, opening)
        if not m:
            return None
        if m.group(1) != "__attribute__":
            return m.group(1), m.start(1)
        j = m.start(1) - 1  # an attribute after the parameter list: look further back
        while j >= 0 and src[j].isspace():
            j -= 1
    return None


def c_files(root, dirs):
    for d in dirs:
        if os.path.isfile(os.path.join(root, d)):
            yield os.path.join(root, d)
            continue
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".c"):
                    yield os.path.join(dirpath, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", type=int, default=80, help="longest allowed function, in lines")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("dirs", nargs="*", default=list(DEFAULT_DIRS))
    args = ap.parse_args()
    root = os.path.normpath(args.root)
    over = []
    for path in c_files(root, args.dirs):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for name, first, last in functions(text):
            lines = last - first + 1
            if lines > args.max:
                over.append((lines, os.path.relpath(path, root), name))
    for lines, path, name in sorted(over, key=lambda t: (-t[0], t[1], t[2])):
        print(f"{path}:{name}:{lines}")
    if over:
        print(f"check-funclen: {len(over)} function(s) over {args.max} lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
