#!/usr/bin/env python3
"""Benchmark of factory images and flash mode (docs/flashing.md); prints
figures only (no assertions).

- `sysimage image`: time to write the factory disk image of the BusyBox
  sample OS build (raw + .bmap, then with --compress zstd), image and
  mapped sizes, the .zst size, `bmaptool copy` time;
- `sysimage flash-media`: time and stick size;
- flash mode under QEMU/TCG: a blank 600 MiB virtio disk provisioned from
  the stick (boot of the recovery to its result), and what the recovery
  reported for the flash itself;
- the recovery image: static binary and initramfs sizes (libfdisk linked in).
Usage: bench_flash.py [--runs N]"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
import sihw  # noqa: E402

BIN = os.path.join(ROOT, "build", "bin")
KEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))
MIB = 1 << 20


def timed(cmd):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return dt, proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args, _ = ap.parse_known_args()
    for need in (os.path.join(sihw.RECOVERY_DIR, "initrd.img"), os.path.join(KEYS, "archive-master.keyring")):
        if not os.path.exists(need):
            print(f"flash bench: skipped ({need} missing: make recovery-image keys)")
            return 0
    work = tempfile.mkdtemp(prefix="si-bench-flash-")
    try:
        tree = sihw.device_os(1, os.path.join(work, "os1"))
        repo = os.path.join(work, "repo")
        timed([os.path.join(BIN, "sysimage"), "publish", "--repo", repo, "--keys", KEYS, "--channel", "stable",
               "--device", "qemu-x86_64", "--version", "1", "--tree", tree])
        common = ["--board", "qemu-x86_64", "--repo", repo, "--channel", "stable",
                  "--archive-master", os.path.join(KEYS, "archive-master.keyring"), "--recovery", sihw.RECOVERY_DIR]
        img = os.path.join(work, "disk.img")
        times = []
        for _ in range(args.runs):
            for p in (img, img + ".bmap"):
                if os.path.exists(p):
                    os.unlink(p)
            dt, _ = timed([os.path.join(BIN, "sysimage"), "image", *common, "--out", img])
            times.append(dt)
        st = os.stat(img)
        print(f"sysimage image (BusyBox sample OS, 580 MiB disk): best {min(times):.2f} s, "
              f"mean {sum(times) / len(times):.2f} s over {len(times)} runs; "
              f"allocated {st.st_blocks * 512 / MIB:.1f} MiB of {st.st_size / MIB:.0f} MiB")
        zimg = os.path.join(work, "z.img")
        dt, _ = timed([os.path.join(BIN, "sysimage"), "image", *common, "--out", zimg, "--compress", "zstd"])
        print(f"sysimage image --compress zstd: {dt:.2f} s, {os.path.getsize(zimg + '.zst') / MIB:.1f} MiB .zst")
        if shutil.which("bmaptool"):
            dt, _ = timed(["bmaptool", "copy", "--bmap", img + ".bmap", img, os.path.join(work, "copy.img")])
            print(f"bmaptool copy (raw image to a file): {dt:.2f} s")
        stick = os.path.join(work, "stick.img")
        dt, _ = timed([os.path.join(BIN, "sysimage"), "flash-media", *common, "--keys", KEYS, "--out", stick])
        print(f"sysimage flash-media: {dt:.2f} s, stick {os.path.getsize(stick) / MIB:.0f} MiB "
              f"({os.stat(stick).st_blocks * 512 / MIB:.1f} MiB allocated)")
        if shutil.which("qemu-system-x86_64"):
            disk = os.path.join(work, "internal.img")
            with open(disk, "wb") as f:
                f.truncate(600 * MIB)
            r = sihw.boot_recovery(disk, mode="flash", extra_disks=[stick], timeout=600,
                                   log=os.path.join(work, "flash.log"))
            m = re.search(r"provisioned with build \d+ in ([\d.]+) s", r.log_text())
            print(f"flash mode under QEMU/TCG (600 MiB virtio disk): result {r.result}, "
                  f"{r.seconds:.1f} s from QEMU start to power-off, "
                  f"flash itself {m.group(1) if m else '?'} s (the recovery's own figure)")
        rec = os.path.join(BIN, "sysimage-recovery")
        stripped = os.path.join(work, "rec.stripped")
        subprocess.run(["strip", "-o", stripped, rec], check=True)
        print(f"recovery binary (static, with libfdisk): {os.path.getsize(rec) / 1024:.0f} KiB, "
              f"stripped {os.path.getsize(stripped) / 1024:.0f} KiB; initramfs "
              f"{os.path.getsize(os.path.join(sihw.RECOVERY_DIR, 'initrd.img')) / 1024:.0f} KiB (zstd cpio)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
