"""`sysimage image`: a factory disk image of a published build.

The image is checked from the outside: the GPT (partx) against board.json,
every ext4 with e2fsck, the system partition against the published tree
(treecmp: type, mode, owner, size, content, xattrs, links, devices,
hardlinks), the recovery files, misc's boot-control block, the ESP's files
(mtools), the BIOS boot code; two builds are byte-identical; bmaptool copies
the image (raw and zstd) to the same bytes. Refusals (tampered repository,
other keys, unknown build, disk too small, URL) exit with their code, name
the problem and leave no output behind. Booting the image is
tests/qemu/test_image_boot.py."""
import hashlib
import os
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, run, sysimage
import treecmp

sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
import sihw  # noqa: E402

BOARD = boardlib.Board("qemu-x86_64")
IMAGES = os.path.join(ROOT, "images")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sample tree has device nodes and owners: needs root"),
    pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("mkfs.vfat"),
                       reason="mtools/dosfstools not installed (scripts/deps.sh)"),
    pytest.mark.skipif(not shutil.which("grub-mkimage"), reason="grub-common not installed"),
]


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory, devkeys):
    """A repository with build 1 (a tree with every kind of entry) and a
    stand-in recovery image."""
    import test_payloads
    d = tmp_path_factory.mktemp("image")
    tree = str(d / "tree")
    test_payloads.make_v1(tree)
    os.makedirs(os.path.join(tree, "boot"))
    with open(os.path.join(tree, "boot", "vmlinuz"), "wb") as f:
        f.write(b"kernel of build 1\n")
    repo = str(d / "repo")
    sysimage("publish", "--repo", repo, "--keys", devkeys, "--channel", "stable", "--device", "qemu-x86_64",
             "--version", "1", "--tree", tree, check=True)
    rec = d / "recovery"
    rec.mkdir()
    (rec / "vmlinuz").write_bytes(b"recovery kernel\n" * 1000)
    (rec / "initrd.img").write_bytes(os.urandom(64 * 1024))
    return {"dir": d, "tree": tree, "repo": repo, "keys": str(devkeys), "recovery": str(rec)}


def make_image(p, out, *extra, repo=None, am=None):
    return sysimage("image", "--board", "qemu-x86_64", "--images", IMAGES, "--repo", repo or p["repo"],
                    "--channel", "stable", "--archive-master", am or os.path.join(p["keys"], "archive-master.keyring"),
                    "--recovery", p["recovery"], "--out", out, *extra)


@pytest.fixture(scope="module")
def image(published):
    out = str(published["dir"] / "disk.img")
    proc = make_image(published, out, "--build", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "build 1 of stable" in proc.stdout
    return out


def test_gpt_follows_the_board(image):
    parts = sihw.partitions(image)
    layout = BOARD.layout()
    assert [p.label for p in sorted(parts.values(), key=lambda p: p.number)] == [l for l, *_ in layout]
    off = 1 * sihw.MIB
    for label, mib, fs, ptype in layout:
        p = parts[label]
        assert (p.start, p.size) == (off, mib * sihw.MIB), label
        assert p.type.upper() == ptype.upper(), label
        off += p.size
    assert os.path.getsize(image) == off + sihw.MIB
    # sparse: far less is allocated than the disk's size
    assert os.stat(image).st_blocks * 512 < os.path.getsize(image) // 4


def test_every_ext4_is_clean(image):
    for label, _, fs, _ in BOARD.layout():
        if fs != "ext4":
            continue
        p = sihw.partitions(image)[label]
        proc = run(["e2fsck", "-fn", f"{image}?offset={p.start}"])
        assert proc.returncode == 0, f"{label}: {proc.stdout}{proc.stderr}"
        out = run(["dumpe2fs", "-h", f"{image}?offset={p.start}"]).stdout
        assert f"Filesystem volume name:   {label}" in out


@pytest.mark.skipif(not sihw.can_mount(), reason="reading the system partition back needs a loop mount")
def test_system_is_the_published_tree(image, published):
    with sihw.mounted_ro(image, "system") as mnt:
        got = treecmp.snapshot(mnt)
    want = treecmp.snapshot(published["tree"])
    got.pop(b"lost+found", None)
    # the version tarball adds etc/sysimage/version.json; the rest is the tree
    extra = sorted(k for k in got if k not in want)
    assert all(k in (b"etc/sysimage", b"etc/sysimage/version.json") for k in extra), extra
    assert b"etc/sysimage/version.json" in got
    problems = treecmp.diff(want, {k: v for k, v in got.items() if k in want})
    assert not problems, "\n".join(problems[:40])


def test_recovery_misc_esp_and_bios(image, published):
    for name in ("vmlinuz", "initrd.img"):
        with open(os.path.join(published["recovery"], name), "rb") as f:
            assert sihw.read_file(image, "recovery", "/" + name) == f.read(), name
    assert sihw.read_misc_env(image) == {"recovery_request": "0"}
    esp = sihw.partitions(image)["esp"]
    mt = lambda path: run(["mtype", "-i", f"{image}@@{esp.start}", "::/" + path],
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True).stdout
    assert mt("grub/grub.cfg") == BOARD.render_grub_cfg(3)
    assert sihw.read_bootcount(image) == {"recovery_boots": "0", "normal_boots": "0", "system_new": "0"}
    efi = run(["mdir", "-b", "-i", f"{image}@@{esp.start}", "::/EFI/BOOT"],
              env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True).stdout
    assert "BOOTX64.EFI" in efi
    # BIOS: boot.img's code in the MBR pointing at the core image in `bios`
    bios = sihw.partitions(image)["bios"]
    with open(image, "rb") as f:
        mbr = f.read(512)
        f.seek(bios.start)
        core = f.read(512)
    with open(BOARD.boot["bios"]["boot_img"], "rb") as f:
        boot = f.read(512)
    assert mbr[:0x5c] == boot[:0x5c] and mbr[0x64:440] == boot[0x64:440]
    assert struct.unpack_from("<Q", mbr, 0x5c)[0] == bios.start // 512
    assert struct.unpack_from("<Q", core, 500)[0] == bios.start // 512 + 1
    assert mbr[510:512] == b"\x55\xaa" and mbr[450] == 0xee  # protective MBR kept


def test_same_inputs_same_bytes(image, published, tmp_path):
    again = str(tmp_path / "again.img")
    proc = make_image(published, again, "--build", "1")
    assert proc.returncode == 0, proc.stderr
    assert sha(again) == sha(image)
    with open(again + ".bmap") as a, open(image + ".bmap") as b:
        assert a.read() == b.read()


def test_bmaptool_copies_raw_and_zstd(image, published, tmp_path):
    copy = str(tmp_path / "copy.img")
    proc = run(["bmaptool", "copy", "--bmap", image + ".bmap", image, copy])
    assert proc.returncode == 0, proc.stderr
    assert sha(copy) == sha(image)
    z = str(tmp_path / "z.img")
    proc = make_image(published, z, "--compress", "zstd")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(z) and os.path.exists(z + ".zst")
    copy2 = str(tmp_path / "copy2.img")
    proc = run(["bmaptool", "copy", "--bmap", z + ".bmap", z + ".zst", copy2])
    assert proc.returncode == 0, proc.stderr
    assert sha(copy2) == sha(image)  # newest build is build 1: same image


def test_bigger_disk_grows_userdata(published, tmp_path):
    out = str(tmp_path / "big.img")
    proc = make_image(published, out, "--size", "700")
    assert proc.returncode == 0, proc.stderr
    parts = sihw.partitions(out)
    assert parts["userdata"].size == (700 - 1 - 1 - 514) * sihw.MIB
    assert run(["e2fsck", "-fn", f"{out}?offset={parts['userdata'].start}"]).returncode == 0


def _refused(proc, out, code, needle):
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    assert not os.path.exists(out + ".bmap")


def test_refuses_a_tampered_file(published, tmp_path):
    repo = str(tmp_path / "repo")
    shutil.copytree(published["repo"], repo)
    pool = os.path.join(repo, "pool")
    full = [n for n in os.listdir(pool) if "rootfs-full" in n and not n.endswith(".sig")][0]
    with open(os.path.join(pool, full), "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    out = str(tmp_path / "t.img")
    _refused(make_image(published, out, repo=repo), out, 12, "sha256")


def test_refuses_other_keys(published, tmp_path):
    other = tmp_path / "other"
    run([os.path.join(ROOT, "scripts", "make-dev-keys.sh"), os.path.join(ROOT, "build", "bin", "sysimage"),
         other], check=True)
    out = str(tmp_path / "k.img")
    _refused(make_image(published, out, am=str(other / "archive-master.keyring")), out, 7, "image-master")


def test_refuses_unknown_build_small_disk_url(published, tmp_path):
    out = str(tmp_path / "u.img")
    _refused(make_image(published, out, "--build", "7"), out, 28, "no full image of build 7")
    _refused(make_image(published, out, "--size", "579"), out, 24, "at least 580 MiB")
    _refused(make_image(published, out, repo="https://example.org/repo"), out, 18, "mirror")
    proc = sysimage("image", "--board", "nope", "--images", IMAGES, "--repo", published["repo"], "--channel",
                    "stable", "--archive-master", "x", "--out", out)
    _refused(proc, out, 28, "board 'nope'")
