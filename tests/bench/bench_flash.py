#!/usr/bin/env python3
"""Benchmark of factory images and flash mode (docs/flashing.md); prints
figures only (no assertions).

- `sysimage image`: time to write the factory disk image of the BusyBox
  sample OS build (raw + .bmap, then with --compress zstd), image and
  mapped sizes, the .zst size, `bmaptool copy` time; the same image from
  the repository served by nginx over HTTPS (`--repo URL`: fetch, verify,
  write), with what the tool reports for the fetch;
- `sysimage flash-media`: time and stick size;
- flash mode under QEMU/TCG: a blank 600 MiB virtio disk provisioned from
  the stick (boot of the recovery to its result), and what the recovery
  reported for the flash itself;
- flash mode on the host for the A/B board (`sysimage-recovery flash
  --target FILE`, a 900 MiB file): media and flash times;
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
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import nginx_server  # noqa: E402
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


def bench_url(work, repo, common, dir_img):
    """`sysimage image --repo https://...` against nginx: time, fetch, same bytes."""
    if not os.path.exists(nginx_server.NGINX):
        print("sysimage image --repo URL: skipped (nginx not installed)")
        return
    tls = nginx_server.make_tls(work)
    os.makedirs(os.path.join(work, "nginx"))
    ng = nginx_server.Nginx(repo, os.path.join(work, "nginx"), tls)
    try:
        args = [a if a != repo else ng.url for a in common]
        out = os.path.join(work, "url.img")
        dt, stdout = timed([os.path.join(BIN, "sysimage"), "image", *args, "--ca", tls[0], "--out", out])
    finally:
        ng.stop()
    m = re.search(r"fetched (\d+) files, (\d+) KiB from \S+ in ([\d.]+) s", stdout)
    same = subprocess.run(["cmp", "-s", out, dir_img]).returncode == 0
    print(f"sysimage image --repo URL (nginx, HTTPS, loopback): {dt:.2f} s, of which fetch + verify "
          f"{m.group(3) if m else '?'} s for {m.group(1) if m else '?'} files, "
          f"{int(m.group(2)) / 1024 if m else 0:.1f} MiB; same bytes as from the directory: {same}")


def bench_ab_flash(work, tree, common):
    """flash-media for the A/B board and the recovery's flash code on the host."""
    if not os.path.exists(os.path.join(sihw.AB_RECOVERY_DIR, "initrd.img")):
        print("A/B board: skipped (make recovery-image BOARD=qemu-x86_64-ab)")
        return
    stick = os.path.join(work, "ab-stick.img")
    swap = {"qemu-x86_64": "qemu-x86_64-ab", sihw.RECOVERY_DIR: sihw.AB_RECOVERY_DIR}
    args = [swap.get(a, a) for a in common]
    dt_media, _ = timed([os.path.join(BIN, "sysimage"), "flash-media", *args, "--device", "qemu-x86_64",
                         "--keys", KEYS, "--out", stick])
    media = os.path.join(work, "ab-media")
    p = sihw.partitions(stick)["flash"]
    os.makedirs(media)
    subprocess.run(["debugfs", "-R", f"rdump / {media}", f"{stick}?offset={p.start}"], check=True,
                   capture_output=True)
    disk = os.path.join(work, "ab.img")
    with open(disk, "wb") as f:
        f.truncate(900 * MIB)
    dt, out = timed([os.path.join(BIN, "sysimage-recovery"), "flash", "--board",
                     os.path.join(ROOT, "images", "qemu-x86_64-ab", "board.json"), "--device", "qemu-x86_64",
                     "--media", media, "--target", disk])
    print(f"A/B board: sysimage flash-media {dt_media:.2f} s; flash mode on the host "
          f"(900 MiB file) {dt:.2f} s")


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
        bench_url(work, repo, common, img)
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
        bench_ab_flash(work, tree, common)
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
