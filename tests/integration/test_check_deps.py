"""scripts/check-deps.sh: programs -> lib -> lower lib only. Each rule is
broken once in a small tree of its own and must be reported, naming the files."""
import os
import subprocess

import pytest

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "check-deps.sh")


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def tree(tmp_path):
    """A clean little project: lib/low, lib/high (uses low), one program per dir."""
    r = str(tmp_path)
    write(r, "lib/low.h", "int low(void);\n")
    write(r, "lib/low.c", '#include "low.h"\nint low(void) { return 1; }\n')
    write(r, "lib/high.h", '#include "low.h"\nint high(void);\n')
    write(r, "lib/high.c", '#include "high.h"\nint high(void) { return low() + 1; }\n')
    for prog in ("tools", "recovery", "client-stub"):
        write(r, f"{prog}/main.c",
              '#include "high.h"\n#include "cmd.h"\nint main(void) { return high() + cmd(); }\n')
        write(r, f"{prog}/cmd.h", "int cmd(void);\n")
        write(r, f"{prog}/cmd.c", '#include "cmd.h"\n#include "low.h"\nint cmd(void) { return low(); }\n')
    return r


def check(root, *args):
    return subprocess.run([SCRIPT, "--root", root, *args], capture_output=True, text=True)


def build_objects(root):
    """build/obj/rel/<program>/*.o as make would place them."""
    for prog in ("tools", "recovery", "client-stub"):
        out = os.path.join(root, "build", "obj", "rel", prog)
        os.makedirs(out, exist_ok=True)
        for src in ("main", "cmd"):
            subprocess.run(["cc", "-c", "-I", os.path.join(root, "lib"), "-I", os.path.join(root, prog),
                            os.path.join(root, prog, src + ".c"), "-o", os.path.join(out, src + ".o")],
                           check=True)


def test_clean_tree_passes_and_prints_the_tables(tree):
    build_objects(tree)
    p = check(tree, "--table")
    assert p.returncode == 0, p.stderr
    assert "| `tools/` | high low |" in p.stdout
    assert "| `high` | low |" in p.stdout and "| `low` |  |" in p.stdout


@pytest.mark.parametrize("files, message", [
    # a lib/ file including a program's header
    ({"lib/low.c": '#include "low.h"\n#include "cmd.h"\nint low(void) { return 1; }\n'},
     "lib/low.c includes tools/cmd.h: lib/ must not depend on a program"),
    # a program including another program's header
    ({"tools/extra.h": "int extra(void);\n",
      "recovery/cmd.c": '#include "cmd.h"\n#include "extra.h"\nint cmd(void) { return 0; }\n'},
     "recovery/cmd.c includes extra.h: neither its own program's nor lib/'s"),
    # two modules including each other
    ({"lib/low.h": '#include "high.h"\nint low(void);\n'},
     "lib/ modules include each other in a cycle"),
], ids=["lib-includes-program", "program-includes-program", "module-cycle"])
def test_include_breaches_are_named(tree, files, message):
    for rel, text in files.items():
        write(tree, rel, text)
    p = check(tree)
    assert p.returncode == 1
    assert message in p.stderr, p.stderr


def test_command_calling_back_into_main(tree):
    write(tree, "client-stub/main.c",
          '#include "cmd.h"\nvoid fail_helper(void) {}\nint main(void) { return cmd(); }\n')
    write(tree, "client-stub/cmd.c",
          '#include "cmd.h"\nvoid fail_helper(void);\nint cmd(void) { fail_helper(); return 0; }\n')
    build_objects(tree)
    p = check(tree)
    assert p.returncode == 1
    assert "client-stub: cmd.c calls fail_helper, defined in main.c (the program's main)" in p.stderr


def test_unbuilt_program_is_said_not_passed_silently(tree):
    p = check(tree)
    assert p.returncode == 0
    assert "build/obj/rel/tools not built: step 4 skipped for tools" in p.stderr


def test_project_report_names_only_known_breaches():
    """The project itself: whatever the script reports must be one of its rules'
    messages (a crash of the script is not a report)."""
    p = subprocess.run([SCRIPT], capture_output=True, text=True)
    assert p.returncode in (0, 1), p.stderr
    for line in p.stderr.splitlines():
        assert line.startswith("check-deps: ") or line.startswith("tsort: "), line
