#!/usr/bin/env python3
"""Run every sysimage test suite and print one summary line "N passed, N failed".

Suites: unit (cmocka binaries in build/tests/unit), integration (pytest,
tests/integration), qemu (pytest, tests/qemu: real boots of the recovery).
Exit status is non-zero when anything failed or a suite could not run."""
import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")


def run_unit():
    passed = failed = 0
    bindir = os.path.join(BUILD, "tests", "unit")
    bins = sorted(f for f in os.listdir(bindir)) if os.path.isdir(bindir) else []
    env = dict(os.environ, SI_ROOT=ROOT,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    for name in bins:
        path = os.path.join(bindir, name)
        if not os.access(path, os.X_OK) or name.endswith(".o"):
            continue
        proc = subprocess.run([path], cwd=ROOT, env=env, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        p = re.search(r"\[  PASSED  \] (\d+) test", out)
        f = re.search(r"\[  FAILED  \] (\d+) test", out)
        np_ = int(p.group(1)) if p else 0
        nf = int(f.group(1)) if f else 0
        if proc.returncode != 0 and nf == 0:
            nf = 1  # crashed or sanitizer abort
        passed += np_
        failed += nf
        status = "ok" if nf == 0 else "FAILED"
        print(f"unit {name}: {np_} passed, {nf} failed [{status}]")
        if nf:
            sys.stdout.write(out[-6000:])
    return passed, failed


def run_pytest(suite, extra):
    tdir = os.path.join(ROOT, "tests", suite)
    if not os.path.isdir(tdir) or not any(f.startswith("test_") for f in os.listdir(tdir)):
        print(f"{suite}: no tests")
        return 0, 0
    xml = os.path.join(BUILD, f"pytest-{suite}.xml")
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
    if proc.returncode not in (0, 1) or not os.path.exists(xml):
        print(f"{suite}: pytest exited {proc.returncode}")
        return 0, 1
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    fails = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    print(f"{suite}: {total - fails - skipped} passed, {fails} failed, {skipped} skipped")
    return total - fails - skipped, fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["unit", "integration", "qemu"], action="append")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    suites = args.only or ["unit", "integration", "qemu"]
    passed = failed = 0
    for s in suites:
        if s == "unit":
            p, f = run_unit()
        else:
            p, f = run_pytest(s, args.pytest_args)
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
