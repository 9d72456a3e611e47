#!/usr/bin/env python3
"""Issue 13's benchmark (figures only, nothing asserted).

1. Host: the same delta update installed in recovery mode (sysimage-recovery
   on the `system` partition: the device is down meanwhile) and in A/B mode
   (`sysimage-stub install` while the device runs: verify against the active
   slot, copy of its used blocks onto the inactive slot, apply there), on
   ext4 image files of the board's slot size (256 MiB) holding a tree of
   SI_BENCH_AB_MB (default 48) MB, 10 % of it changed by the delta. Time is
   wall clock; I/O is getrusage's block counts (reads that missed the page
   cache, writes dirtied). Needs root (the engine loop-mounts the images).
2. Host: the delta base, before and after issue 13's last change: the whole
   slot copied (1 MiB reads and writes, synced every 64 MiB: what `install`
   did) against the used blocks only (what it does, from its `copied` event).
3. QEMU (skipped without qemu or with SI_BENCH_AB_QEMU=0): the same published
   update of the sample OS on an A/B device (install while it runs, then the
   reboot until the new build is up) and on a recovery-mode device (reboot
   into the recovery, install, reboot until the new build is up)."""
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))

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


def whole_copy(src, dst):
    """The delta base as `install` made it before: every byte of the slot."""
    chunk, n = 1 << 20, 0
    fi, fo = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY)
    try:
        size = os.fstat(fi).st_size
        while n < size:
            buf = os.pread(fi, chunk, n)
            os.pwrite(fo, buf, n)
            n += len(buf)
            if n % (64 << 20) == 0:
                os.fdatasync(fo)
                os.posix_fadvise(fo, 0, 0, os.POSIX_FADV_DONTNEED)
        os.fsync(fo)
    finally:
        os.close(fi)
        os.close(fo)
    return n


def self_measured(fn):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    out = fn()
    t = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return out, t, (r1.ru_oublock - r0.ru_oublock) * 512


def payloads_for_bench(d):
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
    return {"dir": p}


def one_mode(d, payloads, mode):
    """(wall, cpu, read, written, copied event or None) of one install"""
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
        copied = None
    else:
        proc, t, rd, wr, cpu = measured(lambda: dev.stub("install", "--json"))
        copied = [json.loads(x) for x in proc.stdout.splitlines() if '"copied"' in x][0]
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return (t, cpu, rd, wr, copied), dev


def host_tables(d):
    payloads = payloads_for_bench(d)
    rows = {}
    for mode in ("recovery", "ab"):
        rows[mode], dev = one_mode(d, payloads, mode)
    delta = os.path.getsize(payloads["dir"] / "delta-1-2.tar.zst")
    print(f"delta 1->2: {delta / 1e3:.0f} kB payload, tree {MB} MB, 256 MiB slots")
    print(f"{'mode':10} {'wall s':>7} {'cpu s':>6} {'read MB':>8} {'written MB':>11}  notes")
    for mode, (t, cpu, rd, wr, copied) in rows.items():
        what = ("device down (recovery boot)" if mode == "recovery" else
                f"device running; copy of the used blocks {copied['bytes'] / 1e6:.1f} MB in "
                f"{copied['seconds']:.2f} s")
        print(f"{mode:10} {t:7.2f} {cpu:6.2f} {rd / 1e6:8.1f} {wr / 1e6:11.1f}  {what}")
    copied = rows["ab"][4]
    subprocess.run(["sync"])
    n, t, wr = self_measured(lambda: whole_copy(dev.slots["a"], dev.slots["b"]))
    print("\ndelta base (slot a onto slot b, 256 MiB slot)")
    print(f"{'copy':22} {'wall s':>7} {'written MB':>11}")
    print(f"{'whole slot (before)':22} {t:7.2f} {max(wr, n) / 1e6:11.1f}")
    print(f"{'used blocks (after)':22} {copied['seconds']:7.2f} {copied['bytes'] / 1e6:11.1f}"
          f"  (of a {copied['fs_bytes'] / 1e6:.0f} MB filesystem)")


def main():
    if os.geteuid() != 0:
        print("bench_ab: needs root (loop devices); skipped")
        return 0
    d = pathlib.Path(tempfile.mkdtemp(prefix="bench-ab-"))
    try:
        host_tables(d)
    except RuntimeError as e:
        print(e)
        return 1
    finally:
        subprocess.run(["sh", "-c", f"grep -o '{d}[^ ]*' /proc/mounts | xargs -r umount"])
        shutil.rmtree(d, ignore_errors=True)
    if os.environ.get("SI_BENCH_AB_QEMU", "1") == "0" or not shutil.which("qemu-system-x86_64"):
        print("\nQEMU part skipped (SI_BENCH_AB_QEMU=0 or no qemu-system-x86_64)")
        return 0
    import ab_qemu
    return ab_qemu.main()


if __name__ == "__main__":
    sys.exit(main())
