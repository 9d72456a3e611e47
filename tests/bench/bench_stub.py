#!/usr/bin/env python3
"""Benchmark of sysimage-stub; prints figures only (no assertions).

- resolve time on the captured real index (real-2013-daily-grouper, 55 images)
  from build 0 and from an intermediate build (SI_SHARED or <repo>/../shared);
- binary size (as built, and stripped) and its dynamic libraries;
- peak RSS of `sysimage-stub stage` while it downloads and verifies a 100 MB
  update from a local nginx over HTTPS (the file is streamed, never held in
  memory), and the download throughput.
Usage: bench_stub.py [--size-mb N]"""
import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import nginx_server  # noqa: E402
import test_stub  # noqa: E402

STUB = os.path.join(ROOT, "build", "bin", "sysimage-stub")


def bench_resolve():
    shared = os.environ.get("SI_SHARED") or os.path.join(ROOT, "..", "shared")
    idx = os.path.join(shared, "conformance", "system-image", "index",
                       "real-2013-daily-grouper.index.json")
    if not os.path.exists(idx):
        print("resolve: skipped (no conformance data; set SI_SHARED)")
        return
    for build in (0, 20130500):
        cmd = [STUB, "resolve", "--index", idx, "--build", str(build), "--channel", "daily",
               "--machine-id", "0123456789abcdef", "--json"]
        runs = 50
        best, total = float("inf"), 0.0
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            dt = time.perf_counter() - t0
            best, total = min(best, dt), total + dt
        print(f"resolve real-2013-daily-grouper from build {build}: "
              f"mean {total / runs * 1000:.2f} ms, best {best * 1000:.2f} ms "
              f"(whole process: parse 55 images + resolve + print, {runs} runs)")


def bench_size():
    size = os.path.getsize(STUB)
    with tempfile.TemporaryDirectory() as d:
        stripped = os.path.join(d, "stub")
        shutil.copy(STUB, stripped)
        subprocess.run(["strip", stripped], check=True)
        ssize = os.path.getsize(stripped)
    libs = subprocess.run(["ldd", STUB], capture_output=True, text=True).stdout.split("\n")
    libs = sorted(line.split()[0] for line in libs if "=>" in line)
    print(f"binary: {size} bytes as built (with debug info), {ssize} bytes stripped")
    print(f"dynamic libraries: {', '.join(libs)}")
    print(f"links libarchive: {'yes' if any('archive' in x for x in libs) else 'no'}")


def bench_download(size_mb):
    with tempfile.TemporaryDirectory() as d:
        keys = {n: test_stub.Key(d, n) for n in ("archive-master", "image-master",
                                                 "image-signing", "device-signing")}
        os.makedirs(os.path.join(d, "tls"))
        tls = nginx_server.make_tls(os.path.join(d, "tls"))
        tree = test_stub.Tree(os.path.join(d, "www"), keys)
        tree.add_image("full", 100, sizes=(size_mb * 1024 * 1024,))
        tree.write()
        for img in tree.images:        # the payload is on disk; free it here
            for f in img["files"]:
                f["_data"] = None
        gc.collect()
        os.makedirs(os.path.join(d, "nginx"))
        ng = nginx_server.Nginx(tree.root, os.path.join(d, "nginx"), tls)
        try:
            dev = test_stub.Device(os.path.join(d, "dev"), test_stub.archive_master_json(keys), ng.url, tls[0], build=0)
            t0 = time.perf_counter()
            proc = subprocess.Popen([STUB, "--config", dev.config, "stage"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # VmHWM of the stub's own address space (rusage would also count
            # the forking Python's pages before exec).
            hwm = 0
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/status") as st:
                        for line in st:
                            if line.startswith("VmHWM:"):
                                hwm = max(hwm, int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.01)
            dt = time.perf_counter() - t0
            err = proc.stderr.read().decode()
            if proc.returncode != 0:
                print(f"download: stage failed ({proc.returncode}): {err.strip()}")
                return
            print(f"stage {size_mb} MB over HTTPS from local nginx: {dt:.2f} s "
                  f"({size_mb / dt:.1f} MB/s incl. sha256 + signature check), "
                  f"peak RSS {hwm / 1024:.1f} MiB (VmHWM sampled every 10 ms)")
        finally:
            ng.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=100)
    args = ap.parse_args()
    if not os.path.exists(STUB):
        sys.exit("build/bin/sysimage-stub missing: run make first")
    bench_size()
    bench_resolve()
    bench_download(args.size_mb)


if __name__ == "__main__":
    main()
