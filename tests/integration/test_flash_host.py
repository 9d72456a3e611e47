"""The recovery's flash mode on the host (`sysimage-recovery flash --media DIR
--target FILE`): the same code as under sysimage.mode=flash, with the media's
`flash` partition read back from a `sysimage flash-media` stick and the
internal disk an image file. A blank disk becomes the board's disk (GPT,
every ext4 clean, system = the build); every refusal leaves the target byte
for byte as it was (sha256 before and after) and names what is wrong:
tampered file, tampered job, media for another board, disk too small, a disk
that is not blank without the job's consent. An interrupted flash (misc
still marked) is provisioned again without consent. The QEMU run of the same
mode is tests/qemu/test_flash.py."""
import json
import os
import shutil
import sys

import pytest

from conftest import ROOT, RECOVERY, run

sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
import nginx_server  # noqa: E402
import provkit  # noqa: E402
import sihw  # noqa: E402
from provkit import blank, read_media, sha  # noqa: E402

KEYS = os.path.join(ROOT, "keys", "dev")  # the recovery's built-in archive-master is keys/dev's
BOARD_FILE = os.path.join(ROOT, "images", "qemu-x86_64", "board.json")
IMAGES = os.path.join(ROOT, "images")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(os.path.join(KEYS, "archive-master.keyring")),
                       reason="keys/dev missing: make keys"),
    pytest.mark.skipif(not os.path.exists(RECOVERY), reason="sysimage-recovery not built"),
    pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("grub-mkimage"),
                       reason="mtools / grub-common not installed (scripts/deps.sh)"),
]


def make_media(d, repo, out, *extra, images=IMAGES, board="qemu-x86_64"):
    proc = provkit.tool("flash-media", board, repo, out, *extra, keys=KEYS, recovery=d / "recovery",
                        images=images)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("flash")
    tree = d / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("flashed\n")
    (tree / "boot").mkdir()
    (tree / "boot" / "vmlinuz").write_bytes(b"kernel\n" * 100)
    os.symlink("hostname", tree / "etc" / "name-link")
    repo = provkit.publish(d / "repo", KEYS, tree, 3)
    provkit.fake_recovery(d / "recovery", 500, 32 * 1024)
    stick = make_media(d, repo, str(d / "stick.img"))
    return {"dir": d, "repo": repo, "stick": stick, "root": read_media(stick, str(d / "m"))}


def flash(root, target, board_file=BOARD_FILE):
    return run([RECOVERY, "flash", "--board", board_file, "--media", root, "--target", target])


def result(root):
    with open(os.path.join(root, "flash", "flash-result.json")) as f:
        return json.load(f)


def test_flash_provisions_a_blank_disk(media, tmp_path):
    disk = blank(str(tmp_path / "disk.img"))
    proc = flash(media["root"], disk)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "target is blank" in proc.stdout
    parts = sihw.partitions(disk)
    want = boardlib.Board("qemu-x86_64").layout(disk_mib=600)
    assert [p.label for p in sorted(parts.values(), key=lambda p: p.number)] == [l for l, *_ in want]
    for label, _, fs, _ in want:
        if fs == "ext4":
            assert run(["e2fsck", "-fn", f"{disk}?offset={parts[label].start}"]).returncode == 0, label
    assert sihw.read_file(disk, "system", "/etc/hostname") == b"flashed\n"
    assert json.loads(sihw.read_file(disk, "system", "/etc/sysimage/version.json"))["build"] == 3
    assert sihw.read_file(disk, "recovery", "/vmlinuz") == (media["dir"] / "recovery" / "vmlinuz").read_bytes()
    assert sihw.read_misc_env(disk) == {"recovery_request": "0"}
    assert sihw.read_bootcount(disk) == {"recovery_boots": "0", "normal_boots": "0", "system_new": "0"}
    r = result(media["root"])
    assert r["result"] == 0 and r["build"] == 3, r


def refused(root, target, code, needle, board_file=BOARD_FILE):
    before = sha(target)
    proc = flash(root, target, board_file)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stdout, proc.stdout
    assert "writing" not in proc.stdout
    assert sha(target) == before, "the target was written"
    r = result(root)
    assert r["result"] == code and needle in r["message"], r


def copy_media(media, tmp_path):
    root = str(tmp_path / "media")
    shutil.copytree(media["root"], root, symlinks=True)
    return root


def test_refuses_a_disk_that_is_not_blank(media, tmp_path):
    disk = blank(str(tmp_path / "used.img"))
    with open(disk, "r+b") as f:
        f.seek(0)
        f.write(b"somebody's data")
    refused(copy_media(media, tmp_path), disk, 27, "is not blank and the flash job does not consent")


def test_refuses_tampered_media(media, tmp_path):
    disk = blank(str(tmp_path / "disk.img"))
    root = copy_media(media, tmp_path)
    provkit.flip_byte(provkit.full_tarball(os.path.join(root, "repo")), 64, 0x10)
    refused(root, disk, 12, "sha256")
    root2 = copy_media(media, tmp_path / "2")
    with open(os.path.join(root2, "flash", "flash.json"), "r+") as f:
        text = f.read().replace('"blank-only"', '"erase"')
        f.seek(0)
        f.write(text)
        f.truncate()
    refused(root2, disk, 7, "flash.json")
    root3 = copy_media(media, tmp_path / "3")
    with open(os.path.join(root3, "flash", "esp.img"), "r+b") as f:
        f.seek(4096)
        f.write(b"x")
    refused(root3, disk, 12, "esp.img")


def test_refuses_a_disk_too_small(media, tmp_path):
    disk = blank(str(tmp_path / "small.img"), 300)
    refused(copy_media(media, tmp_path), disk, 24, "needs a disk of at least 580 MiB")


def test_refuses_media_for_another_board(media, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(os.path.join(IMAGES, "qemu-x86_64"), images / "other-board")
    bj = images / "other-board" / "board.json"
    bj.write_text(bj.read_text().replace('"board": "qemu-x86_64"', '"board": "other-board"'))
    # the same device model's build, laid out for another board
    stick = make_media(media["dir"], media["repo"], str(tmp_path / "other.img"), "--device", "qemu-x86_64",
                       images=str(images), board="other-board")
    root = read_media(stick, str(tmp_path / "m"))
    disk = blank(str(tmp_path / "disk.img"))
    refused(root, disk, 18, "made for board 'other-board'")


def test_an_ab_recovery_refuses_media_of_the_other_board(media, tmp_path):
    """A recovery whose board is the A/B one refuses media made for the
    recovery-mode board (the layouts differ), before the target is touched.
    Flashing A/B media: tests/integration/test_image_ab.py."""
    disk = blank(str(tmp_path / "disk.img"), 900)
    refused(copy_media(media, tmp_path), disk, 18, "this recovery is for board 'qemu-x86_64-ab'",
            board_file=os.path.join(IMAGES, "qemu-x86_64-ab", "board.json"))


def test_consent_erases_and_an_interrupted_flash_is_redone(media, tmp_path):
    disk = blank(str(tmp_path / "disk.img"))
    assert flash(media["root"], disk).returncode == 0
    # an interrupted flash: misc still says so (the marker is written right
    # after the partition table and cleared last)
    env = sihw.read_misc_env(disk)
    sihw.write_misc_env(disk, dict(env, sysimage_flash="incomplete", system_incomplete="1"))
    proc = flash(media["root"], disk)
    assert proc.returncode == 0, proc.stdout
    assert "interrupted flash" in proc.stdout
    assert sihw.read_misc_env(disk) == {"recovery_request": "0"}
    # consent: a stick made with --erase provisions a used disk
    stick = make_media(media["dir"], media["repo"], str(tmp_path / "erase.img"), "--erase")
    root = read_media(stick, str(tmp_path / "m"))
    with open(disk, "r+b") as f:
        f.seek(0)
        f.write(b"used")
    proc = flash(root, disk)
    assert proc.returncode == 0, proc.stdout
    assert "consents to erasing it" in proc.stdout
    assert sihw.read_file(disk, "system", "/etc/hostname") == b"flashed\n"


def test_an_expired_index_on_the_media_is_refused(media, tmp_path):
    """The index on the media re-signed to expire (as a stick kept in a
    drawer): refused with the clock rule before the target is touched."""
    root = copy_media(media, tmp_path)
    provkit.expire(os.path.join(root, "repo"), KEYS)
    refused(root, blank(str(tmp_path / "disk.img")), 25, "index.json: expired on")


def test_media_from_a_url_repository(media, tmp_path):
    """flash-media --repo URL (nginx): the stick holds the same repository
    subset as one made from the directory, and it provisions a blank disk."""
    tls = nginx_server.make_tls(tmp_path)
    (tmp_path / "nginx").mkdir()
    ng = nginx_server.Nginx(media["repo"], tmp_path / "nginx", tls)
    try:
        stick = make_media(media["dir"], ng.url, str(tmp_path / "url.img"), "--ca", tls[0])
    finally:
        ng.stop()
    root = read_media(stick, str(tmp_path / "m"))
    for dirpath, _, files in os.walk(os.path.join(media["root"], "repo")):
        for n in files:
            rel = os.path.relpath(os.path.join(dirpath, n), media["root"])
            assert sha(os.path.join(root, rel)) == sha(os.path.join(media["root"], rel)), rel
    disk = blank(str(tmp_path / "disk.img"))
    proc = flash(root, disk)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sihw.read_file(disk, "system", "/etc/hostname") == b"flashed\n"
