"""scripts/check-funclen.py: no C function in lib/, recovery/, tools/,
client-stub/ over 80 lines. Small trees of its own: the limit is exact, the
reader is not fooled by braces in comments, strings or macros, and every
function over the limit is named as file:function:lines."""
import os
import subprocess

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "check-funclen.py")


def func(name, lines, head="static int"):
    """A function of exactly `lines` lines, from its name's line to its brace."""
    assert lines >= 3
    body = [f"    x += {i};" for i in range(lines - 4)]
    return "\n".join([f"{head} {name}(int x)", "{"] + body + ["    return x;", "}"]) + "\n"


def run(root, *args):
    return subprocess.run(["/usr/bin/python3", SCRIPT, "--root", str(root), *args],
                          capture_output=True, text=True)


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_limit_is_exact(tmp_path):
    write(tmp_path, "lib/a.c", func("eighty", 80) + "\n" + func("eighty_one", 81))
    write(tmp_path, "tools/t.c", func("fine", 10))
    p = run(tmp_path)
    assert p.returncode == 1, p.stderr
    assert p.stdout == "lib/a.c:eighty_one:81\n"
    assert "1 function(s) over 80 lines" in p.stderr
    assert run(tmp_path, "--max", "81").returncode == 0


def test_every_program_folder_and_longest_first(tmp_path):
    for d, n in (("lib", 90), ("recovery", 120), ("tools", 85), ("client-stub", 100)):
        write(tmp_path, f"{d}/x.c", func(f"f_{d.replace('-', '_')}", n))
    write(tmp_path, "tests/unit/test_x.c", func("a_test", 300))  # not checked
    p = run(tmp_path)
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["recovery/x.c:f_recovery:120", "client-stub/x.c:f_client_stub:100",
                                     "lib/x.c:f_lib:90", "tools/x.c:f_tools:85"]
    # folders or files given on the command line
    assert run(tmp_path, "tools").stdout == "tools/x.c:f_tools:85\n"
    assert run(tmp_path, "lib/x.c").stdout == "lib/x.c:f_lib:90\n"


def test_braces_in_comments_strings_and_macros_do_not_count(tmp_path):
    text = ('#define OPEN {\n'
            '#define BLOCK(x) \\\n    do { x; } while (0)\n'
            'static const char *s = "}{";\n'
            'static const struct { int a; } table[] = {{1}, {2}};\n'
            '/* } a comment { */\n'
            + func("multi_line_head", 82, head="static int\n__attribute__((unused))").replace(
                "    return x;", "    /* } */ (void)'}'; // }\n    return x;")
            + "int after(void) { return '{'; }\n")
    write(tmp_path, "lib/b.c", text)
    p = run(tmp_path)
    assert p.stdout == "lib/b.c:multi_line_head:83\n", p.stdout


def test_clean_tree_passes(tmp_path):
    write(tmp_path, "lib/c.c", func("small", 5))
    p = run(tmp_path)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
