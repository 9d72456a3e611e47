#!/usr/bin/env python3
"""Payload benchmark on a real Debian 12 minbase tree.

v1: `debootstrap --variant=minbase bookworm` from the machine's configured
Debian mirror (read from /etc/apt/sources.list.d/*.sources or
/etc/apt/sources.list), cached under build/bench/. v2: a copy of v1 with a few
packages installed by apt-get in a chroot (also cached). Prints the sizes and
build times of full and delta images, the apply throughput and peak RSS of
`sysimage apply` next to `zstd -dc | tar -x` and `xz -dc | tar -x` of the same
tarballs, and whether the delta applied to v1 reproduces v2 exactly; a verified
full install (`sysimage verify` + `sysimage apply --format`) into a fresh ext4
against `zstd -dc | tar -x` + sync, Ubuntu's `xz -dc | tar -x` + sync and
`mkfs.ext4 -d`, as time ratios. bench_deltas.py compares delta sizes."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import treecmp  # noqa: E402

SYSIMAGE = os.path.join(ROOT, "build", "bin", "sysimage")
CACHE = os.path.join(ROOT, "build", "bench")
V1 = os.path.join(CACHE, "debian12-minbase")
V2 = os.path.join(CACHE, "debian12-minbase-v2")
WORK = os.path.join(CACHE, "payloads")
SUITE = "bookworm"
V2_PACKAGES = ["less", "procps", "nano", "psmisc", "zstd"]


def mirror():
    """The first configured Debian mirror that serves SUITE."""
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in open(f).read().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and \
                    SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    if os.path.exists("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                args = [p for p in parts[1:] if not p.startswith("[")]
                if len(args) >= 2 and args[1] == SUITE:
                    return args[0]
    sys.exit("bench: no Debian mirror for %s in /etc/apt sources" % SUITE)


def sh(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def make_trees():
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.isdir(V1):
        tmp = V1 + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"bench: debootstrap {SUITE} minbase from {mirror()} (cached in {V1})", flush=True)
        sh(["debootstrap", "--variant=minbase", SUITE, tmp, mirror()],
           stdout=subprocess.DEVNULL)
        os.rename(tmp, V1)
    if not os.path.isdir(V2):
        tmp = V2 + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        sh(["cp", "-a", V1, tmp])
        shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc", "resolv.conf"))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
        print(f"bench: v2 = v1 + apt-get install {' '.join(V2_PACKAGES)}", flush=True)
        sh(["chroot", tmp, "apt-get", "-q", "update"], env=env, stdout=subprocess.DEVNULL)
        sh(["chroot", tmp, "apt-get", "-q", "-y", "--no-install-recommends", "install"] +
           V2_PACKAGES, env=env, stdout=subprocess.DEVNULL)
        sh(["chroot", tmp, "apt-get", "clean"], env=env)
        os.rename(tmp, V2)


def timed(cmd, shell=False):
    """Run cmd under GNU time; return (seconds, peak RSS in MiB of the
    command and its children). A pipeline (shell=True) runs in sh -c."""
    rss_file = os.path.join(CACHE, "rss.txt")
    argv = ["sh", "-c", cmd] if shell else list(cmd)
    t0 = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv,
                          stdout=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"bench: {cmd} failed with status {proc.returncode}")
    with open(rss_file) as f:
        kib = int(f.read().split()[-1])
    os.unlink(rss_file)
    return dt, kib / 1024


def write_index(path, files):
    """An index.json listing files with their size, sha256 and manifest (the
    first member, as `sysimage publish` lists it)."""
    import hashlib
    import io
    import json
    import tarfile
    entries = []
    for i, p in enumerate(files):
        data = open(p, "rb").read()
        raw = subprocess.run(["zstd" if p.endswith(".zst") else "xz", "-dc", p],
                             capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            m = tf.next()
            body = tf.extractfile(m).read()
        assert m.name == "manifest"
        entries.append({"path": "/" + os.path.basename(p), "signature": "/x.sig",
                        "checksum": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "order": i, "manifest": {"checksum": hashlib.sha256(body).hexdigest(),
                                                 "size": len(body)}})
    with open(path, "w") as f:
        json.dump({"global": {}, "images": [{"type": "full", "version": 1, "files": entries}]}, f)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def tree_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            total += st.st_size if not os.path.islink(os.path.join(dirpath, f)) else 0
    return total


def mib(n):
    return n / (1 << 20)


def main():
    if not os.access(SYSIMAGE, os.X_OK):
        sys.exit("bench: build/bin/sysimage is missing (run make)")
    make_trees()
    fresh(WORK)
    f = lambda n: os.path.join(WORK, n)
    raw = tree_bytes(V1)
    print(f"\nDebian 12 minbase: v1 {mib(raw):.1f} MiB of file data, "
          f"v2 {mib(tree_bytes(V2)):.1f} MiB (v1 + {', '.join(V2_PACKAGES)})\n")

    print("| image | compression | size (MiB) | build time (s) | build peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    builds = [("full v1", "full1.tar.zst", ["full", "--from", V1], "--zstd"),
              ("full v1", "full1.tar.xz", ["full", "--from", V1], "--xz"),
              ("full v2", "full2.tar.zst", ["full", "--from", V2], "--zstd"),
              ("delta v1→v2", "delta.tar.zst", ["delta", "--from", V1, "--to", V2], "--zstd"),
              ("delta v1→v2", "delta.tar.xz", ["delta", "--from", V1, "--to", V2], "--xz"),
              ("delta v1→v2 from full tarballs", "delta-t.tar.zst",
               ["delta", "--from", f("full1.tar.zst"), "--to", f("full2.tar.zst")], "--zstd")]
    for label, out, args, comp in builds:
        dt, rss = timed([SYSIMAGE, "build", *args, "--out", f(out), comp])
        print(f"| {label} | {comp[2:]} | {mib(os.path.getsize(f(out))):.2f} | {dt:.2f} | {rss:.1f} |")

    # A verified full install into a freshly made ext4 (loop device) against
    # the unverified pipelines and mkfs.ext4 -d: time ratios (< 1: ours faster).
    sh([SYSIMAGE, "keygen", f("bench")], stdout=subprocess.DEVNULL)
    sh([SYSIMAGE, "keygen", f("bench-master")], stdout=subprocess.DEVNULL)
    sh([SYSIMAGE, "keyring", "create", "--type", "image-signing", "--sign-with",
        f("bench-master.key"), f("bench.keyring"), f("bench.pub")], stdout=subprocess.DEVNULL)
    for t in ("full1.tar.zst", "full1.tar.xz"):
        sh([SYSIMAGE, "sign", "--key", f("bench.key"), f(t)])
    write_index(f("index.json"), [f("full1.tar.zst"), f("full1.tar.xz")])
    sh([SYSIMAGE, "sign", "--key", f("bench.key"), f("index.json")])
    img, mnt = f("ext4.img"), f("mnt")
    os.makedirs(mnt, exist_ok=True)
    img_mib = int(mib(raw) * 2) + 256

    def fresh_ext4():
        subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
        if os.path.exists(img):
            os.unlink(img)
        sh(["truncate", "-s", f"{img_mib}M", img])
        sh(["mkfs.ext4", "-q", "-F", img])
        sh(["mount", "-o", "loop", img, mnt])

    tar_x = "tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C {d} && sync -f {d}"
    verify = f"{SYSIMAGE} verify --keyring {f('bench.keyring')} {{t}} >/dev/null"
    one_read = verify.format(t=f("index.json")) + f" && {SYSIMAGE} apply --quiet --format " \
        f"--index {f('index.json')} --target {{d}} "
    runs = [("verified, one read: verify index.json + apply --index --format (zstd)",
             one_read + f("full1.tar.zst")),
            ("verified, one read: verify index.json + apply --index --format (xz)",
             one_read + f("full1.tar.xz")),
            ("verified, two reads: sysimage verify + apply --format (zstd)",
             verify.format(t=f("full1.tar.zst")) + f" && {SYSIMAGE} apply --quiet --format "
             "--target {d} " + f("full1.tar.zst")),
            ("verified, two reads: sysimage verify + apply --format (xz)",
             verify.format(t=f("full1.tar.xz")) + f" && {SYSIMAGE} apply --quiet --format "
             "--target {d} " + f("full1.tar.xz")),
            ("unverified: zstd -dc | tar -x + sync", "zstd -dc " + f("full1.tar.zst") + " | " + tar_x),
            ("Ubuntu's pipeline: xz -dc | tar -x + sync", "xz -dc " + f("full1.tar.xz") + " | " + tar_x)]
    times = {}
    print("\n| full install of v1 into a fresh ext4 | time (s) | MiB/s of tree data | peak RSS (MiB) |")
    print("|---|---|---|---|")
    try:
        for label, cmd in runs:
            fresh_ext4()
            dt, rss = timed(cmd.format(d=mnt), shell=True)
            times[label] = dt
            print(f"| {label} | {dt:.2f} | {mib(raw) / dt:.0f} | {rss:.1f} |")
            if label.startswith("verified, one read") and "zstd" in label:
                d = treecmp.diff(V1, mnt)
                ok = "identical" if not d else f"{len(d)} DIFFERENCES"
        subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
        os.unlink(img)
        sh(["truncate", "-s", f"{img_mib}M", img])
        dt, rss = timed(f"mkfs.ext4 -q -F -d {V1} {img} && sync -f {img}", shell=True)
        times["mkfs.ext4 -d (+ sync)"] = dt
        print(f"| mkfs.ext4 -d v1 (+ sync) | {dt:.2f} | {mib(raw) / dt:.0f} | {rss:.1f} |")
    finally:
        subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
    ours = times[runs[0][0]]
    print(f"\nverified one-read install (zstd) result vs v1: {ok}")
    print("verified one-read full install (zstd) time as a ratio of (target in brackets):")
    print(f"- unverified zstd -dc | tar -x + sync: {ours / times[runs[4][0]]:.2f}× (≤ 1.0)")
    print(f"- Ubuntu's xz -dc | tar -x + sync: {ours / times[runs[5][0]]:.2f}× (≤ 0.33)")
    print(f"- the two-read install (verify, then apply): {ours / times[runs[2][0]]:.2f}×")
    print(f"- mkfs.ext4 -d: {ours / times['mkfs.ext4 -d (+ sync)']:.2f}×")

    d = f("delta-target")
    shutil.rmtree(d, ignore_errors=True)
    sh(["cp", "-a", V1, d])
    dt, rss = timed([SYSIMAGE, "apply", "--quiet", "--target", d, f("delta.tar.zst")])
    print(f"\ndelta v1→v2 applied to a copy of v1: {dt:.2f} s, peak RSS {rss:.1f} MiB")
    diffs = treecmp.diff(V2, d)
    if diffs:
        print(f"delta result vs v2: {len(diffs)} DIFFERENCES")
        for line in diffs[:20]:
            print("   ", line)
    else:
        print("delta result vs v2: identical (type, mode, owner, size, content, xattrs, "
              "links, devices, hardlinks of every path)")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
