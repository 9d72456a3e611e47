#!/usr/bin/env python3
"""Issue 13's benchmark (figures only, nothing asserted): the same delta
update installed in recovery mode (sysimage-recovery on the `system`
partition: the device is down meanwhile) and in A/B mode (`sysimage-stub
install` while the device runs: verify against the active slot, block copy
of it onto the inactive slot, apply there). Host run on ext4 image files of
the board's slot size (256 MiB) holding a tree of SI_BENCH_AB_MB (default 48)
MB, 10 % of it changed by the delta. Time is wall clock; I/O is the
children's getrusage block counts (512-byte units: reads that missed the
page cache, writes dirtied). Needs root (the engine loop-mounts the images).
Reboot-to-new-system times come from tests/qemu/test_ab.py (docs/ab.md)."""
import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import test_recovery_host as trh  # noqa: E402
from test_ab_host import AbDevice  # noqa: E402

MB = int(os.environ.get("SI_BENCH_AB_MB", "48"))


def tree(root, version):
    files = {"etc/hostname": f"device-v{version}\n".encode(), "lib": ("link", "usr/lib")}
    rnd = __import__("random").Random(1)
    for i in range(MB):
        data = rnd.randbytes(1 << 20)
        if version == 2 and i % 10 == 0:
            data = b"v2" + data[2:]
        files[f"usr/lib/blob{i:03}.bin"] = data
    trh.write_tree(root, files)


def measured(fn):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = fn()
    t = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, t, (r1.ru_inblock - r0.ru_inblock) * 512, (r1.ru_oublock - r0.ru_oublock) * 512, \
        r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime


def main():
    if os.geteuid() != 0:
        print("bench_ab: needs root (loop devices); skipped")
        return 0
    d = pathlib.Path(tempfile.mkdtemp(prefix="bench-ab-"))
    try:
        p = d / "payloads"
        p.mkdir()
        tree(p / "tree1", 1)
        tree(p / "tree2", 2)
        for name, cmd in {"full-1.tar.zst": ["build", "full", "--from", p / "tree1"],
                          "delta-1-2.tar.zst": ["build", "delta", "--from", p / "tree1", "--to", p / "tree2"]
                          }.items():
            trh.sysimage(*cmd, "--out", p / name, check=True)
            trh.sign(p / name)
        for n in (1, 2):
            trh.version_tarball(p / f"version-{n}.tar.xz", n)
            trh.sign(p / f"version-{n}.tar.xz")
        trh.make_index(p, [("full", 1, None, ["full-1.tar.zst", "version-1.tar.xz"]),
                           ("delta", 2, 1, ["delta-1-2.tar.zst", "version-2.tar.xz"])])
        payloads = {"dir": p}
        rows = []
        for mode in ("recovery", "ab"):
            w = d / mode
            w.mkdir()
            dev = AbDevice(w, payloads)
            for img in dev.slots.values():
                with open(img, "r+b") as f:
                    f.truncate(256 << 20)
            dev.install(1)
            dev.stage(trh.DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
            subprocess.run(["sync"])
            if mode == "recovery":
                proc, t, rd, wr, cpu = measured(lambda: dev.run())
                extra = ""
            else:
                proc, t, rd, wr, cpu = measured(lambda: dev.stub("install"))
                m = re.search(r"copied onto slot b: (\d+) MiB in ([\d.]+) s", proc.stderr)
                extra = f"block copy {m.group(1)} MiB in {m.group(2)} s" if m else ""
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr)
                return 1
            rows.append((mode, t, cpu, rd, wr, extra))
        delta = os.path.getsize(p / "delta-1-2.tar.zst")
        print(f"delta 1->2: {delta / 1e6:.1f} MB payload, tree {MB} MB, 256 MiB slots")
        print(f"{'mode':10} {'wall s':>7} {'cpu s':>6} {'read MB':>8} {'written MB':>11}  notes")
        for mode, t, cpu, rd, wr, extra in rows:
            what = "device down (recovery boot)" if mode == "recovery" else "device running; " + extra
            print(f"{mode:10} {t:7.2f} {cpu:6.2f} {rd / 1e6:8.1f} {wr / 1e6:11.1f}  {what}")
        return 0
    finally:
        subprocess.run(["sh", "-c", f"grep -o '{d}[^ ]*' /proc/mounts | xargs -r umount"])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
