"""Binary deltas on real files: a kernel update and a libc update.

Two versions of Debian's cloud kernel and of libc6 are fetched with
`apt-get download` (cached in build/debs; skipped when the configured
mirrors do not offer two versions). The old tree is kernel N + libc6 M, the
new tree kernel N' + libc6 M', with the kernel's versioned names
(vmlinuz-<abi>, lib/modules/<abi>) made stable the way an image-based system
ships them, so that the kernel, its modules and libc are patched in place.

Checked: the delta carries patch members for vmlinuz, modules and libc and is
much smaller than shipping the files whole; applied to the old tree it gives
the new one exactly (also from rootfs tarballs); re-applying changes nothing;
apply killed with SIGKILL at several points and run again still ends exactly
at the new tree; a modified system is refused with nothing written."""
import glob
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import ROOT, SYSIMAGE, sysimage
import treecmp

CACHE = os.path.join(ROOT, "build", "debs")


def apt_versions(pkg):
    out = subprocess.run(["apt-cache", "madison", pkg], capture_output=True, text=True).stdout
    vs = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] == pkg and parts[1] not in vs:
            vs.append(parts[1])
    return vs


def newest_two(vs):
    """The two highest versions (dpkg order)."""
    def gt(a, b):
        return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
    vs = list(vs)
    for i in range(len(vs)):
        for j in range(len(vs) - 1 - i):
            if gt(vs[j], vs[j + 1]):
                vs[j], vs[j + 1] = vs[j + 1], vs[j]
    return vs[-2:]


def download(pkg, version):
    os.makedirs(CACHE, exist_ok=True)
    pat = os.path.join(CACHE, f"{pkg}_{version.replace(':', '%3a')}_*.deb")
    found = glob.glob(pat)
    if not found:
        r = subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=CACHE,
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"apt-get download {pkg}={version} failed: {r.stderr.strip()[:200]}")
        found = glob.glob(pat)
    assert found, pat
    return found[0]


def kernels():
    out = subprocess.run(["apt-cache", "search", "--names-only",
                          r"^linux-image-[0-9.]+-[0-9]+-cloud-amd64$"],
                         capture_output=True, text=True).stdout
    names = sorted({l.split()[0] for l in out.splitlines() if l.strip()},
                   key=lambda n: [int(x) for x in re.findall(r"\d+", n)])
    return names[-2:]


def unpack_kernel(deb, dest):
    tmp = dest + ".deb"
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    (abi,) = os.listdir(os.path.join(tmp, "lib", "modules"))
    os.makedirs(os.path.join(dest, "boot"), exist_ok=True)
    for name in ("vmlinuz", "config", "System.map"):
        shutil.copy2(os.path.join(tmp, "boot", f"{name}-{abi}"), os.path.join(dest, "boot", name))
    mods = os.path.join(dest, "lib", "modules", "current", "kernel")
    os.makedirs(mods)
    # a part of the modules keeps the test short: every filesystem
    shutil.copytree(os.path.join(tmp, "lib", "modules", abi, "kernel", "fs"),
                    os.path.join(mods, "fs"), symlinks=True)
    shutil.rmtree(tmp)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    libc = newest_two(apt_versions("libc6"))
    ks = kernels()
    if len(libc) < 2 or len(ks) < 2:
        pytest.skip("the configured mirrors do not offer two versions of libc6 and of the "
                    "cloud kernel")
    d = str(tmp_path_factory.mktemp("real-delta"))
    old, new = os.path.join(d, "old"), os.path.join(d, "new")
    for tree, kpkg, lver in ((old, ks[0], libc[0]), (new, ks[1], libc[1])):
        kver = apt_versions(kpkg)[0]
        unpack_kernel(download(kpkg, kver), tree)
        subprocess.run(["dpkg-deb", "-x", download("libc6", lver), tree], check=True)
    delta = os.path.join(d, "delta.tar.zst")
    sysimage("build", "delta", "--from", old, "--to", new, "--out", delta, check=True)
    yield {"dir": d, "old": old, "new": new, "delta": delta, "libc": libc, "kernels": ks}
    shutil.rmtree(d, ignore_errors=True)


def members(path):
    out = subprocess.run(["tar", "--zstd", "-tf", path], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "manifest"
    return out[1:]


def fresh_copy(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["cp", "-a", src, dst], check=True)


def test_kernel_and_libc_are_patched(pair):
    names = members(pair["delta"])
    assert names[:2] == ["patched", "removed"]
    for p in ("boot/vmlinuz", "lib/x86_64-linux-gnu/libc.so.6",
              "lib/modules/current/kernel/fs/btrfs/btrfs.ko"):
        assert "patch/" + p in names, p
    whole = os.path.join(pair["dir"], "whole.tar.zst")
    sysimage("build", "delta", "--whole-files", "--from", pair["old"], "--to", pair["new"],
             "--out", whole, check=True)
    assert not [n for n in members(whole) if n.startswith("patch/")]
    # vmlinuz is itself compressed (a patch gains little there); the rest
    # shrinks by far more than half
    assert os.path.getsize(pair["delta"]) < 0.5 * os.path.getsize(whole)


def test_round_trip_exact_and_reapply(pair):
    target = os.path.join(pair["dir"], "t")
    fresh_copy(pair["old"], target)
    r = sysimage("apply", "--quiet", "--target", target, pair["delta"])
    assert r.returncode == 0, r.stderr
    assert not treecmp.diff(pair["new"], target)
    r = sysimage("apply", "--quiet", "--target", target, pair["delta"])
    assert r.returncode == 0, r.stderr
    assert not treecmp.diff(pair["new"], target)


def test_rootfs_tarballs_give_the_same_delta_result(pair):
    d = pair["dir"]
    t_old, t_new = os.path.join(d, "old.tar.gz"), os.path.join(d, "new.tar")
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-czf", t_old, "-C", pair["old"], "."],
                   check=True)
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-cf", t_new, "-C", pair["new"],
                    *sorted(os.listdir(pair["new"]))], check=True)
    delta = os.path.join(d, "delta-from-tarballs.tar.zst")
    sysimage("build", "delta", "--from", t_old, "--to", t_new, "--out", delta, check=True)
    assert "patch/boot/vmlinuz" in members(delta)
    target = os.path.join(d, "t-tar")
    fresh_copy(pair["old"], target)
    r = sysimage("apply", "--quiet", "--target", target, delta)
    assert r.returncode == 0, r.stderr
    assert not treecmp.diff(pair["new"], target)


def test_power_cuts_during_apply(pair):
    """SIGKILL at increasing delays (each run continues from what the last
    one left), then one complete run: exactly the new tree."""
    target = os.path.join(pair["dir"], "t-cut")
    fresh_copy(pair["old"], target)
    for delay in (0.01, 0.03, 0.08, 0.15, 0.3, 0.6):
        p = subprocess.Popen([SYSIMAGE, "apply", "--quiet", "--target", target, pair["delta"]],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        assert p.returncode in (0, -signal.SIGKILL), err
    r = sysimage("apply", "--quiet", "--target", target, pair["delta"])
    assert r.returncode == 0, r.stderr
    assert not treecmp.diff(pair["new"], target)
    left = subprocess.run(["find", target, "-name", ".sysimage-tmp"], capture_output=True,
                          text=True).stdout
    assert left == ""


def test_modified_system_refused_untouched(pair):
    target = os.path.join(pair["dir"], "t-mod")
    fresh_copy(pair["old"], target)
    libc = os.path.join(target, "lib", "x86_64-linux-gnu", "libc.so.6")
    with open(libc, "r+b") as f:
        f.seek(4096)
        f.write(b"locally patched")
    before = treecmp.snapshot(target)
    r = sysimage("apply", "--quiet", "--target", target, pair["delta"])
    assert r.returncode == 12, r.stderr  # SI_ERR_CHECKSUM
    assert "system/lib/x86_64-linux-gnu/libc.so.6" in r.stderr
    assert "install a full image" in r.stderr
    assert not treecmp.diff(before, target)
