#!/usr/bin/python3
"""Run every sysimage test suite and print one summary line
"N passed, N failed, N skipped".

Suites: unit (cmocka binaries in build/tests/unit), integration (pytest,
tests/integration), qemu (pytest, tests/qemu: real boots of the recovery).

Every skipped test is listed with its id (`tests/unit/test_mkfs.c::name`,
`tests/integration/test_stub.py::name[param]`) and its reason. A skip is
*allowed* when tests/allowed-skips.txt has a pattern that matches its id,
with the reason why it may skip. Under CI=true an unexpected skip fails the
run (it is counted as failed); elsewhere it is only reported.

Exit status is non-zero when anything failed, a suite could not run, nothing
passed, or (CI=true) a test skipped without being allowed to."""
import argparse
import fnmatch
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
ALLOWED_SKIPS = os.path.join(ROOT, "tests", "allowed-skips.txt")


class Counts:
    def __init__(self):
        self.passed = self.failed = 0
        self.skipped = []   # (test id, reason)

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped


def load_allowed_skips(path=None):
    """[(pattern, reason)] from lines `PATTERN  REASON`; `#` lines are comments.
    A pattern is an fnmatch pattern over test ids; every entry needs a reason."""
    path = path or ALLOWED_SKIPS
    allowed = []
    if not os.path.exists(path):
        return allowed
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                raise SystemExit(f"{path}:{n}: '{parts[0]}' has no reason: "
                                 "write `PATTERN  why it may skip`")
            allowed.append((parts[0], parts[1].strip()))
    return allowed


def allowed_reason(test_id, allowed):
    for pattern, reason in allowed:
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


def parse_cmocka(out):
    """(passed, failed, [skipped test names]) from a cmocka binary's output."""
    p = re.search(r"^\[  PASSED  \] (\d+) test", out, re.M)
    f = re.search(r"^\[  FAILED  \] (\d+) test", out, re.M)
    # Each skipped test prints "[  SKIPPED ] name" when it runs and again in
    # the closing list; the summary line itself is "[  SKIPPED ] N test(s), ...".
    names = []
    for m in re.finditer(r"^\[  SKIPPED \] (\S+)\s*$", out, re.M):
        if m.group(1) not in names:
            names.append(m.group(1))
    return (int(p.group(1)) if p else 0), (int(f.group(1)) if f else 0), names


def run_unit():
    c = Counts()
    bindir = os.path.join(BUILD, "tests", "unit")
    bins = sorted(f for f in os.listdir(bindir)) if os.path.isdir(bindir) else []
    env = dict(os.environ, SI_ROOT=ROOT,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    if not bins:
        print("unit: no test binaries in build/tests/unit (make unit-bins)")
        c.failed += 1
        return c
    for name in bins:
        path = os.path.join(bindir, name)
        if not os.access(path, os.X_OK) or name.endswith(".o"):
            continue
        proc = subprocess.run([path], cwd=ROOT, env=env, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        np_, nf, skipped = parse_cmocka(out)
        if proc.returncode != 0 and nf == 0:
            nf = 1  # crashed or sanitizer abort
        c.passed += np_
        c.failed += nf
        src = f"tests/unit/{name}.c"
        for test in skipped:
            # the test's own explanation, when it printed one naming itself
            why = re.search(rf"^{re.escape(test)}: (.*?)(?:: skipped)?$", out, re.M)
            c.skipped.append((f"{src}::{test}", why.group(1) if why else "skip() without a message"))
        status = "ok" if nf == 0 else "FAILED"
        print(f"unit {name}: {np_} passed, {nf} failed, {len(skipped)} skipped [{status}]")
        if nf:
            sys.stdout.write(out[-6000:])
    return c


def junit_test_id(classname, name):
    """tests.integration.test_stub[.Class] + name -> tests/integration/test_stub.py[::Class]::name"""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.exists(os.path.join(ROOT, path)):
            return "::".join([path] + parts[i:] + [name])
    return f"{classname}::{name}"


def run_pytest(suite, extra):
    c = Counts()
    tdir = os.path.join(ROOT, "tests", suite)
    if not os.path.isdir(tdir) or not any(f.startswith("test_") for f in os.listdir(tdir)):
        print(f"{suite}: no tests")
        return c
    os.makedirs(BUILD, exist_ok=True)
    xml = os.path.join(BUILD, f"pytest-{suite}.xml")
    if os.path.exists(xml):
        os.unlink(xml)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", f"--junitxml={xml}", tdir] + extra
    if suite == "qemu":
        # TCG boots are CPU-bound: one QEMU per core (SI_QEMU_JOBS overrides).
        jobs = os.environ.get("SI_QEMU_JOBS", str(os.cpu_count() or 1))
        try:
            import xdist  # noqa: F401
            if jobs != "1":
                cmd += ["-n", jobs]
        except ImportError:
            pass
        cmd += ["--durations=15"]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    # 0 all passed, 1 some failed, 5 nothing collected (e.g. -k matched nothing)
    if proc.returncode not in (0, 1, 5) or not os.path.exists(xml):
        print(f"{suite}: pytest exited {proc.returncode}")
        c.failed += 1
        return c
    for tc in ET.parse(xml).getroot().iter("testcase"):
        test_id = junit_test_id(tc.get("classname", ""), tc.get("name", ""))
        bad = tc.find("failure") is not None or tc.find("error") is not None
        skip = tc.find("skipped")
        if bad:
            c.failed += 1
        elif skip is not None:
            c.skipped.append((test_id, skip.get("message") or skip.text or "no reason given"))
        else:
            c.passed += 1
    print(f"{suite}: {c.passed} passed, {c.failed} failed, {len(c.skipped)} skipped")
    return c


def report_skips(skipped, allowed, ci):
    """Print every skip with its reason; return how many were not allowed."""
    unexpected = 0
    if not skipped:
        return 0
    print(f"skipped ({len(skipped)}):")
    for test_id, reason in skipped:
        ok = allowed_reason(test_id, allowed)
        if ok is not None:
            print(f"  {test_id}: {reason} [allowed: {ok}]")
        else:
            unexpected += 1
            print(f"  {test_id}: {reason} [NOT in tests/allowed-skips.txt"
                  f"{': fails the run under CI=true' if ci else ''}]")
    return unexpected


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["unit", "integration", "qemu"], action="append")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    allowed = load_allowed_skips()
    suites = args.only or ["unit", "integration", "qemu"]
    total = Counts()
    for s in suites:
        total.add(run_unit() if s == "unit" else run_pytest(s, args.pytest_args))
    unexpected = report_skips(total.skipped, allowed, ci)
    failed = total.failed + (unexpected if ci else 0)
    if ci and unexpected:
        print(f"CI=true: {unexpected} skip(s) not allowed by tests/allowed-skips.txt count as failed")
    print(f"{total.passed} passed, {failed} failed, {len(total.skipped)} skipped")
    return 0 if failed == 0 and total.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
