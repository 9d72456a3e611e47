"""`sysimage image --board qemu-x86_64-ab`: the factory image of an A/B
board (docs/ab.md). Checked from the outside as tests/integration/test_image.py
checks the recovery-mode board: the GPT against board.json, every ext4 with
e2fsck, slot a against the published tree, slot b an empty filesystem (the
first `sysimage-stub install` formats it), the ESP's grub.cfg rendered as
images/board.py renders it (@SLOT_A@, @SLOT_B@, ...) and its counters file
holding the board's boot.env_defaults. The recovery's flash mode
(`sysimage-recovery flash` on the host, media from `sysimage flash-media`)
provisions a blank disk of the same size that passes the same checks
(docs/flashing.md); booting such a disk is tests/qemu/test_flash.py."""
import os
import sys

import pytest

from conftest import RECOVERY, ROOT, run
import treecmp

sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
import provkit  # noqa: E402
import sihw  # noqa: E402

BOARD = boardlib.Board("qemu-x86_64-ab")
IMAGES = os.path.join(ROOT, "images")

pytestmark = provkit.IMAGE_MARKS


@pytest.fixture(scope="module")
def published(tmp_path_factory, devkeys):
    import test_payloads
    d = tmp_path_factory.mktemp("image-ab")
    tree = str(d / "tree")
    test_payloads.make_v1(tree)
    repo = provkit.publish(d / "repo", devkeys, tree, 1, BOARD.name)
    rec = provkit.fake_recovery(d / "recovery")
    return {"dir": d, "tree": tree, "repo": repo, "keys": str(devkeys), "recovery": rec}


@pytest.fixture(scope="module")
def factory_image(published):
    out = str(published["dir"] / "ab.img")
    proc = provkit.tool("image", BOARD.name, published["repo"], out, keys=published["keys"],
                        recovery=published["recovery"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _flashed(published, factory_image):
    """The same build through flash mode: keys/dev (the recovery's built-in
    archive-master) signs a second repository, the media holds it, and the
    recovery provisions a blank disk of the factory image's size."""
    d = published["dir"]
    repo = provkit.publish(d / "repo-dev", provkit.DEVKEYS, published["tree"], 1, BOARD.name)
    stick = str(d / "stick.img")
    proc = provkit.tool("flash-media", BOARD.name, repo, stick, recovery=published["recovery"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    media = provkit.read_media(stick, str(d / "media"))
    disk = provkit.blank(str(d / "flashed.img"), os.path.getsize(factory_image) >> 20)
    proc = run([RECOVERY, "flash", "--board", os.path.join(IMAGES, BOARD.name, "board.json"), "--media", media,
                "--target", disk])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "A/B, the build goes to slot system_a" in proc.stdout, proc.stdout
    return disk


@pytest.fixture(scope="module", params=["image", "flash"])
def image(request, published, factory_image):
    if request.param == "flash":
        if not os.path.exists(RECOVERY) or not os.path.exists(os.path.join(provkit.DEVKEYS, "archive-master.keyring")):
            pytest.skip("sysimage-recovery or keys/dev missing (make, make keys)")
        return _flashed(published, factory_image)
    return factory_image


def test_gpt_follows_the_board(image):
    assert "system" not in provkit.check_gpt(image, BOARD)


def test_every_ext4_is_clean(image):
    provkit.check_ext4(image, BOARD)


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
        treecmp.check_installed(mnt, published["tree"])


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


def test_recovery_image_of_another_board_is_refused(published, tmp_path):
    """The recovery image is a per-board product (`make recovery-image
    BOARD=...`, initramfs/build.sh leaves a copy of the board file it embeds
    next to it): `image` and `flash-media` for the A/B board refuse the
    recovery-mode board's image before writing anything, and take one that
    carries the A/B board file; images/board.py refuses it too."""
    import shutil
    other = provkit.fake_recovery(tmp_path / "recovery-qemu-x86_64")
    shutil.copy(os.path.join(IMAGES, "qemu-x86_64", "board.json"), other)
    for cmd in ("image", "flash-media"):
        out = str(tmp_path / f"{cmd}.img")
        proc = provkit.tool(cmd, BOARD.name, published["repo"], out, keys=published["keys"], recovery=other)
        assert proc.returncode == 18, proc.stdout + proc.stderr
        assert "is the recovery image of board 'qemu-x86_64'" in proc.stderr, proc.stderr
        assert "make recovery-image BOARD=qemu-x86_64-ab" in proc.stderr, proc.stderr
        assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    with pytest.raises(boardlib.BoardError, match="recovery image of board 'qemu-x86_64', not of 'qemu-x86_64-ab'"):
        boardlib.build_disk(str(tmp_path / "disk.img"), BOARD, recovery_image=other, grub=False)
    ours = provkit.fake_recovery(tmp_path / "recovery-ab")
    shutil.copy(BOARD.path, ours)
    out = str(tmp_path / "ok.img")
    proc = provkit.tool("image", BOARD.name, published["repo"], out, keys=published["keys"], recovery=ours)
    assert proc.returncode == 0, proc.stdout + proc.stderr
