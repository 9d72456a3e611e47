"""Helpers the provisioning tests share (issue 9): `sysimage image`,
`sysimage flash-media` and the recovery's flash mode, on the host
(tests/integration/test_image*.py, test_flash_host.py) and under QEMU
(tests/qemu/test_flash.py, test_image_boot.py).

- sha(path), blank(path, mib), copy_sparse(src, dst), flip_byte(path),
  full_tarball(repo): files and disks;
- fake_recovery(dir): a stand-in recovery image (vmlinuz, initrd.img) for
  images that are checked, not booted;
- publish(repo, keys, tree, version, device): `sysimage publish` of a tree;
- expire(repo, keys): the repository's index re-signed to expire in 1 s,
  returned once it has expired (the clock rule of docs/security.md);
- tool(cmd, board, repo, out, *extra, ...): `sysimage image|flash-media`
  with the usual options;
- read_media(stick, dest), media_result(stick): a stick's `flash` partition
  copied out, the flash result it holds;
- expect_ab_slot_a(machine, timeout): an A/B disk boots slot a (build 1);
- check_gpt(image, board), check_ext4(image, board): a disk's GPT is the
  board's layout, its ext4 filesystems are clean and labelled;
- AB_OS_ENV: the environment that makes sihw.device_os / devloop.device_tree
  build an A/B device's OS;
- IMAGE_MARKS, QEMU_MARKS: the skip marks of tests that build images on the
  host (root, mtools, GRUB) and of those that boot them under QEMU;
  AB_RECOVERY_MARK: of those that need the A/B board's recovery image.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

import sihw

ROOT = sihw.ROOT
BIN = os.path.join(ROOT, "build", "bin")
SYSIMAGE = os.path.join(BIN, "sysimage")
IMAGES = os.path.join(ROOT, "images")
DEVKEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))

# the device OS of an A/B board (sihw.device_os extra_env)
AB_OS_ENV = {"SI_AB": "1", "SI_RECOVERY_BIN": os.path.join(BIN, "sysimage-recovery")}

IMAGE_MARKS = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sample tree has device nodes and owners: needs root"),
    pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("mkfs.vfat"),
                       reason="mtools/dosfstools not installed (scripts/deps.sh)"),
    pytest.mark.skipif(not shutil.which("grub-mkimage"), reason="grub-common not installed"),
]

AB_RECOVERY_MARK = pytest.mark.skipif(not os.path.exists(os.path.join(sihw.AB_RECOVERY_DIR, "initrd.img")),
                                      reason="build/recovery-qemu-x86_64-ab/initrd.img missing: "
                                             "make recovery-image BOARD=qemu-x86_64-ab")

QEMU_MARKS = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not os.path.exists(sihw.OVMF_CODE), reason="ovmf not installed (make deps)"),
    pytest.mark.skipif(not os.path.isdir("/usr/lib/grub/i386-pc") or not os.path.isdir("/usr/lib/grub/x86_64-efi"),
                       reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
    pytest.mark.skipif(not os.path.exists(os.path.join(DEVKEYS, "archive-master.keyring")),
                       reason=f"{DEVKEYS} has no key hierarchy: make keys"),
]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def flip_byte(path, offset=100, bit=1):
    """Flip one bit of a file in place (a tampered file); flipping again restores it."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ bit]))


def full_tarball(repo):
    """The path of the (first) full image tarball in repo/pool."""
    pool = os.path.join(str(repo), "pool")
    return os.path.join(pool, [n for n in sorted(os.listdir(pool)) if "rootfs-full" in n and not n.endswith(".sig")][0])


def expect_ab_slot_a(m, boot_timeout):
    """A Machine booting an A/B disk: GRUB picks slot a, build 1 comes up
    there and says so; then it powers off."""
    import devloop
    m.expect(r"booting slot a \(active a, on trial 0", boot_timeout)
    assert m.expect(devloop.UP, boot_timeout).group(1) == "1"
    rc, out = m.shell("sysimage-stub status")
    assert rc == 0 and "slot:             a (good slot a)" in out, out
    m.send("poweroff\n")
    m.wait(60)


def check_gpt(image, board):
    """The disk's GPT is board's layout: the partitions in order, each where
    and as large as the layout says (1 MiB free at each end), of its type.
    Returns the partitions."""
    parts = sihw.partitions(image)
    layout = board.layout()
    assert [p.label for p in sorted(parts.values(), key=lambda p: p.number)] == [l for l, *_ in layout]
    off = sihw.MIB
    for label, mib, fs, ptype in layout:
        p = parts[label]
        assert (p.start, p.size) == (off, mib * sihw.MIB), label
        assert p.type.upper() == ptype.upper(), label
        off += p.size
    assert os.path.getsize(image) == off + sihw.MIB
    return parts


def check_ext4(image, board):
    """Every ext4 partition of board's layout in the disk passes e2fsck and
    carries its label as the volume name."""
    parts = sihw.partitions(image)
    for label, _, fs, _ in board.layout():
        if fs != "ext4":
            continue
        where = f"{image}?offset={parts[label].start}"
        proc = subprocess.run(["e2fsck", "-fn", where], capture_output=True, text=True)
        assert proc.returncode == 0, f"{label}: {proc.stdout}{proc.stderr}"
        out = subprocess.run(["dumpe2fs", "-h", where], capture_output=True, text=True).stdout
        assert f"Filesystem volume name:   {label}" in out, label


def blank(path, mib=600):
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    return str(path)


def copy_sparse(src, dst):
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    return str(dst)


def fake_recovery(d, kernel_lines=1000, initrd_bytes=64 * 1024):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vmlinuz"), "wb") as f:
        f.write(b"recovery kernel\n" * kernel_lines)
    with open(os.path.join(d, "initrd.img"), "wb") as f:
        f.write(os.urandom(initrd_bytes))
    return str(d)


def publish(repo, keys, tree, version, device="qemu-x86_64", channel="stable", *extra):
    subprocess.run([SYSIMAGE, "publish", "--repo", str(repo), "--keys", str(keys), "--channel", channel,
                    "--device", device, "--version", str(version), "--tree", str(tree), *extra],
                   check=True, capture_output=True)
    return str(repo)


def expire(repo, keys, channel="stable"):
    """Re-sign the channel's indexes to expire 1 s from now; wait until they have."""
    subprocess.run([SYSIMAGE, "publish", "--repo", str(repo), "--keys", str(keys), "--channel", channel,
                    "--refresh", "--expires", "1s"], check=True, capture_output=True)
    time.sleep(2.1)
    return str(repo)


def tool(cmd, board, repo, out, *extra, keys=DEVKEYS, recovery=None, images=IMAGES, channel="stable"):
    """`sysimage image` or `sysimage flash-media` (the latter signs with keys);
    recovery: default the board's recovery image (sihw.recovery_dir)."""
    args = [SYSIMAGE, cmd, "--board", board, "--images", images, "--repo", str(repo), "--channel", channel,
            "--archive-master", os.path.join(str(keys), "archive-master.keyring"),
            "--recovery", str(recovery or sihw.recovery_dir(board)), "--out", str(out)]
    if cmd == "flash-media":
        args += ["--keys", str(keys)]
    return subprocess.run(args + list(extra), capture_output=True, text=True)


def read_media(stick, dest):
    """The `flash` partition of a stick, copied out with debugfs."""
    p = sihw.partitions(stick)["flash"]
    os.makedirs(dest)
    subprocess.run(["debugfs", "-R", f"rdump / {dest}", f"{stick}?offset={p.start}"], check=True,
                   capture_output=True)
    return str(dest)


def media_result(stick):
    p = sihw.partitions(stick)["flash"]
    out = subprocess.run(["debugfs", "-R", "cat /flash/flash-result.json", f"{stick}?offset={p.start}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)
