"""`sysimage image --board qemu-x86_64-ab`: the factory image of an A/B
board (docs/ab.md). Checked from the outside as tests/integration/test_image.py
checks the recovery-mode board: the GPT against board.json, every ext4 with
e2fsck, slot a against the published tree, slot b an empty filesystem (the
first `sysimage-stub install` formats it), the ESP's grub.cfg rendered as
images/board.py renders it (@SLOT_A@, @SLOT_B@, ...) and its counters file
holding the board's boot.env_defaults. `flash-media` refuses the board with
a clear error (docs/flashing.md)."""
import os
import shutil
import sys

import pytest

from conftest import ROOT, run, sysimage
import treecmp

sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
import sihw  # noqa: E402

BOARD = boardlib.Board("qemu-x86_64-ab")
IMAGES = os.path.join(ROOT, "images")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sample tree has device nodes and owners: needs root"),
    pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("mkfs.vfat"),
                       reason="mtools/dosfstools not installed (scripts/deps.sh)"),
    pytest.mark.skipif(not shutil.which("grub-mkimage"), reason="grub-common not installed"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory, devkeys):
    import test_payloads
    d = tmp_path_factory.mktemp("image-ab")
    tree = str(d / "tree")
    test_payloads.make_v1(tree)
    repo = str(d / "repo")
    sysimage("publish", "--repo", repo, "--keys", devkeys, "--channel", "stable", "--device", BOARD.name,
             "--version", "1", "--tree", tree, check=True)
    rec = d / "recovery"
    rec.mkdir()
    (rec / "vmlinuz").write_bytes(b"recovery kernel\n" * 1000)
    (rec / "initrd.img").write_bytes(os.urandom(64 * 1024))
    return {"dir": d, "tree": tree, "repo": repo, "keys": str(devkeys), "recovery": str(rec)}


def _args(p, out):
    return ["--board", BOARD.name, "--images", IMAGES, "--repo", p["repo"], "--channel", "stable",
            "--archive-master", os.path.join(p["keys"], "archive-master.keyring"), "--recovery", p["recovery"],
            "--out", out]


@pytest.fixture(scope="module")
def image(published):
    out = str(published["dir"] / "ab.img")
    proc = sysimage("image", *_args(published, out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_gpt_follows_the_board(image):
    parts = sihw.partitions(image)
    layout = BOARD.layout()
    assert [p.label for p in sorted(parts.values(), key=lambda p: p.number)] == [l for l, *_ in layout]
    assert "system" not in parts
    off = sihw.MIB
    for label, mib, fs, ptype in layout:
        assert (parts[label].start, parts[label].size) == (off, mib * sihw.MIB), label
        assert parts[label].type.upper() == ptype.upper(), label
        off += mib * sihw.MIB
    assert os.path.getsize(image) == off + sihw.MIB


def test_every_ext4_is_clean(image):
    for label, _, fs, _ in BOARD.layout():
        if fs != "ext4":
            continue
        p = sihw.partitions(image)[label]
        proc = run(["e2fsck", "-fn", f"{image}?offset={p.start}"])
        assert proc.returncode == 0, f"{label}: {proc.stdout}{proc.stderr}"
        assert f"Filesystem volume name:   {label}" in run(["dumpe2fs", "-h", f"{image}?offset={p.start}"]).stdout


def test_slot_b_is_empty(image):
    assert sihw.read_file(image, "system_a", "/etc/sysimage/version.json") is not None
    assert sihw.read_file(image, "system_b", "/etc/sysimage/version.json") is None
    p = sihw.partitions(image)["system_b"]
    ls = run(["debugfs", "-R", "ls -p /", f"{image}?offset={p.start}"], check=True).stdout
    names = {line.split("/")[5] for line in ls.splitlines() if line.count("/") >= 6}
    assert names <= {".", "..", "lost+found"}, names


@pytest.mark.skipif(not sihw.can_mount(), reason="reading slot a back needs a loop mount")
def test_slot_a_is_the_published_tree(image, published):
    with sihw.mounted_ro(image, "system_a") as mnt:
        got = treecmp.snapshot(mnt)
    want = treecmp.snapshot(published["tree"])
    got.pop(b"lost+found", None)
    extra = sorted(k for k in got if k not in want)
    assert all(k in (b"etc/sysimage", b"etc/sysimage/version.json") for k in extra), extra
    problems = treecmp.diff(want, {k: v for k, v in got.items() if k in want})
    assert not problems, "\n".join(problems[:40])


def test_esp_grub_cfg_and_env_defaults(image):
    esp = sihw.partitions(image)["esp"]
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    cfg = run(["mtype", "-i", f"{image}@@{esp.start}", "::/grub/grub.cfg"], env=env, check=True).stdout
    assert cfg == BOARD.render_grub_cfg(3)
    assert f"set slot_a=(hd0,gpt{BOARD.number('system_a')})" in cfg
    assert f"set slot_b=(hd0,gpt{BOARD.number('system_b')})" in cfg
    want = {k: str(v) for k, v in BOARD.env_defaults.items()}
    assert want["ab_active"] == "a"
    assert sihw.read_bootcount(image) == want
    # the counters file is the block images/board.py writes, byte for byte
    raw = run(["mtype", "-i", f"{image}@@{esp.start}", "::/" + BOARD.boot["env_file"]], env=env,
              check=True).stdout.encode()
    assert raw == boardlib.grubenv_block(BOARD.env_defaults)
    assert sihw.read_misc_env(image) == {"recovery_request": "0"}


def test_flash_media_refuses_the_ab_board(published, tmp_path):
    out = str(tmp_path / "stick.img")
    proc = sysimage("flash-media", *_args(published, out), "--keys", published["keys"])
    assert proc.returncode == 18, proc.stdout + proc.stderr
    assert "A/B board" in proc.stderr and "sysimage image" in proc.stderr, proc.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")
