#!/usr/bin/env python3
"""Delta sizes side by side (issue 11 item 5), on real Debian 12 minbase trees.

Two pairs, built from the configured Debian mirror and cached under
build/bench/ (bench_payloads.make_trees makes v1 and v2):

- security update: old = v1 with every package whose bookworm-security
  version differs from the installed one switched to that version (apt-get
  install --allow-downgrades in a chroot), new = v1. The mirrors offer no
  older point release, so the pair runs "backwards" from the
  bookworm-security builds to the current point release, which carries
  those fixes and later ones: the same kind of change (the same packages'
  rebuilt binaries, libraries and docs) as a security upgrade.
- package addition: old = v1, new = v2 (v1 + a few packages).

In both, apt's lists and caches are made those of v1: they change with every
`apt-get update`, not with the update measured.

For each pair: `sysimage build delta` with binary patches (default) and
with --whole-files (what it shipped before), zstd and xz; per-file bsdiff
(bsdiff for changed files, zstd -19 for added ones: what swupd ships);
xdelta3 -9 of the whole uncompressed tar; zstd -19 --long --patch-from of the
whole tar. Build time and peak RSS of each; and whether our delta applied
to a copy of old gives new exactly. Figures only, nothing asserted."""
import filecmp
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_payloads as bp  # noqa: E402
import treecmp  # noqa: E402  (bench_payloads put tests/integration on the path)

SYSIMAGE = bp.SYSIMAGE
CACHE = bp.CACHE
V1, V2 = bp.V1, bp.V2
VSEC = os.path.join(CACHE, "debian12-minbase-security")
WORK = os.path.join(CACHE, "deltas")


def sh(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def make_security_tree():
    """v1 with the bookworm-security versions of its packages."""
    if os.path.isdir(VSEC):
        return
    tmp = VSEC + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    sh(["cp", "-a", V1, tmp])
    shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc", "resolv.conf"))
    src = os.path.join(tmp, "etc", "apt", "sources.list.d", "bench-security.list")
    mirror = bp.mirror().rstrip("/")
    sec = mirror[:-len("/debian")] + "/debian-security" if mirror.endswith("/debian") \
        else "http://deb.debian.org/debian-security"
    with open(src, "w") as f:
        f.write(f"deb {sec} {bp.SUITE}-security main\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    sh(["chroot", tmp, "apt-get", "-q", "update"], env=env, stdout=subprocess.DEVNULL)
    inst = subprocess.run(["chroot", tmp, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n"],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    installed = dict(l.split(" ", 1) for l in inst if l)
    want = []
    for pkg, ver in sorted(installed.items()):
        out = subprocess.run(["chroot", tmp, "apt-cache", "madison", pkg], capture_output=True,
                             text=True, env=env).stdout
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and "-security" in parts[2] and parts[1] != ver:
                want.append(f"{pkg}={parts[1]}")
                break
    print(f"bench: security tree: {len(want)} packages at their bookworm-security version: "
          f"{' '.join(want)}", flush=True)
    if want:
        sh(["chroot", tmp, "apt-get", "-q", "-y", "--allow-downgrades", "--no-install-recommends",
            "install", *want], env=env, stdout=subprocess.DEVNULL)
    os.unlink(src)
    sh(["chroot", tmp, "apt-get", "clean"], env=env)
    same_apt_state(tmp)
    os.rename(tmp, VSEC)


def same_apt_state(tree):
    """apt's package lists and caches as in v1: they change with every
    `apt-get update`, not with the update being measured."""
    for rel in (("var", "lib", "apt", "lists"), ("var", "cache", "apt")):
        dst = os.path.join(tree, *rel)
        shutil.rmtree(dst, ignore_errors=True)
        sh(["cp", "-a", os.path.join(V1, *rel), dst])


def changed_files(old, new):
    """(changed regular files present in both, added or retyped regular files)."""
    changed, added = [], []
    for dp, _, fs in os.walk(new):
        for f in fs:
            n = os.path.join(dp, f)
            if os.path.islink(n) or not os.path.isfile(n):
                continue
            rel = os.path.relpath(n, new)
            o = os.path.join(old, rel)
            if os.path.isfile(o) and not os.path.islink(o):
                if not filecmp.cmp(o, n, shallow=False):
                    changed.append(rel)
            else:
                added.append(rel)
    return changed, added


def timed(cmd, shell=False):
    return bp.timed(cmd, shell=shell)


def per_file_bsdiff(old, new, work):
    changed, added = changed_files(old, new)
    os.makedirs(work, exist_ok=True)
    total, peak, t0 = 0, 0.0, time.monotonic()
    for i, rel in enumerate(changed):
        p = os.path.join(work, f"{i}.bsdiff")
        _, rss = timed(["bsdiff", os.path.join(old, rel), os.path.join(new, rel), p])
        peak = max(peak, rss)
        total += os.path.getsize(p)
        os.unlink(p)
    for rel in added:
        p = os.path.join(work, "added.zst")
        _, rss = timed(["zstd", "-q", "-f", "-19", os.path.join(new, rel), "-o", p])
        peak = max(peak, rss)
        total += os.path.getsize(p)
        os.unlink(p)
    return total, time.monotonic() - t0, peak, len(changed), len(added)


def kib(n):
    return n / 1024


def bench_pair(label, old, new):
    w = os.path.join(WORK, label.split()[0])
    bp.fresh(w)
    f = lambda n: os.path.join(w, n)
    rows = []
    for name, out, extra in (("sysimage, patches, zstd", "d.tar.zst", ["--zstd"]),
                             ("sysimage, patches, xz", "d.tar.xz", ["--xz"]),
                             ("sysimage --whole-files (before), zstd", "dw.tar.zst",
                              ["--whole-files", "--zstd"]),
                             ("sysimage --whole-files (before), xz", "dw.tar.xz",
                              ["--whole-files", "--xz"])):
        dt, rss = timed([SYSIMAGE, "build", "delta", "--from", old, "--to", new,
                         "--out", f(out), *extra])
        rows.append((name, os.path.getsize(f(out)), dt, rss))
    size, dt, rss, nch, nadd = per_file_bsdiff(old, new, f("bsdiff"))
    rows.append(("per-file bsdiff (+ zstd -19 of added files)", size, dt, rss))
    # whole uncompressed tars, as sysimage writes them (sorted, deterministic)
    sh([SYSIMAGE, "build", "full", "--none", "--from", old, "--out", f("old.tar")])
    sh([SYSIMAGE, "build", "full", "--none", "--from", new, "--out", f("new.tar")])
    src = os.path.getsize(f("old.tar"))
    blk = 1 << 20
    while blk < src:
        blk <<= 1
    dt, rss = timed(["xdelta3", "-e", "-9", "-f", "-B", str(blk), "-s", f("old.tar"),
                     f("new.tar"), f("x.vcdiff")])
    rows.append(("xdelta3 -9 of the whole tar", os.path.getsize(f("x.vcdiff")), dt, rss))
    wl = max(src, os.path.getsize(f("new.tar"))).bit_length() + 1
    dt, rss = timed(["zstd", "-q", "-f", "-19", f"--long={min(wl, 31)}",
                     f"--patch-from={f('old.tar')}", f("new.tar"), "-o", f("w.zst")])
    rows.append(("zstd -19 --long --patch-from of the whole tar", os.path.getsize(f("w.zst")),
                 dt, rss))
    ours = rows[0][1]
    print(f"\n### {label}: {nch} files changed, {nadd} added\n")
    print("| delta | size (KiB) | × ours (zstd) | build time (s) | build peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for name, size, dt, rss in rows:
        print(f"| {name} | {kib(size):.0f} | {size / ours:.2f} | {dt:.1f} | {rss:.0f} |")
    listing = subprocess.run(f"zstd -dc {f('d.tar.zst')} | tar -tvf - 2>/dev/null", shell=True,
                             capture_output=True, text=True, check=True).stdout
    frames = [int(l.split()[2]) - 96 for l in listing.splitlines()
              if len(l.split()) >= 6 and l.split()[5].startswith("patch/")]
    print(f"\nof ours (zstd): {len(frames)} patches whose zstd frames alone (no tar header, "
          f"owner, mode, mtime, xattrs or the two sha256 of each) total {kib(sum(frames)):.0f} KiB; "
          f"bsdiff's figure counts its patches alone")
    t = f("target")
    shutil.rmtree(t, ignore_errors=True)
    sh(["cp", "-a", old, t])
    dt, rss = timed([SYSIMAGE, "apply", "--quiet", "--target", t, f("d.tar.zst")])
    d = treecmp.diff(new, t)
    print(f"\nour delta applied to a copy of old: {dt:.2f} s, peak RSS {rss:.1f} MiB, "
          f"result vs new: {'identical' if not d else f'{len(d)} DIFFERENCES: ' + '; '.join(d[:5])}")
    shutil.rmtree(w, ignore_errors=True)


def main():
    if not os.access(SYSIMAGE, os.X_OK):
        sys.exit("bench: build/bin/sysimage is missing (run make)")
    for tool in ("bsdiff", "xdelta3", "zstd"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (make deps)")
    bp.make_trees()
    make_security_tree()
    same_apt_state(VSEC)
    same_apt_state(V2)
    bench_pair("security update (bookworm-security builds → point release)", VSEC, V1)
    bench_pair("package addition (minbase → + " + ", ".join(bp.V2_PACKAGES) + ")", V1, V2)


if __name__ == "__main__":
    main()
