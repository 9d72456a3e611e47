"""images/board.py: the board definition is checked, and the disk it builds
has the board's layout, GRUB for both firmwares and the rendered grub.cfg."""
import copy
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board  # noqa: E402

BOARD_JSON = os.path.join(ROOT, "images", "qemu-x86_64", "board.json")
HAVE_GRUB = os.path.isdir("/usr/lib/grub/i386-pc") and os.path.isdir("/usr/lib/grub/x86_64-efi")


def write_board(tmp_path, mutate):
    with open(BOARD_JSON) as f:
        doc = json.load(f)
    doc = copy.deepcopy(doc)
    mutate(doc)
    d = tmp_path / "b"
    d.mkdir(exist_ok=True)
    shutil.copy(os.path.join(ROOT, "images", "qemu-x86_64", "grub.cfg.in"), d)
    p = d / "board.json"
    p.write_text(json.dumps(doc))
    return str(p)


def test_reference_board_loads():
    b = board.Board("qemu-x86_64")
    assert [p["label"] for p in b.parts] == ["bios", "esp", "misc", "recovery", "system", "cache", "userdata"]
    assert b.number("esp") == 2 and b.number("misc") == 3
    layout = b.layout(disk_mib=1024)
    assert layout[-1][0] == "userdata" and layout[-1][1] == 1024 - 2 - sum(s for _, s, _, _ in layout[:-1])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["partitions"].append(dict(d["partitions"][1])), "label used twice"),
    (lambda d: d["partitions"][4].update(size="rest", min_mib=8), "only one partition"),
    (lambda d: d["partitions"][1].update(size_mib=8), "too small for vfat"),
    (lambda d: d["partitions"][3].update(type="linux"), "not a GPT type GUID"),
    (lambda d: d["partitions"][3].update(fs="btrfs"), "fs 'btrfs'"),
    (lambda d: d["partitions"].pop(2), "needs a partition 'misc'"),
    (lambda d: d["partitions"][0].update(label="Bad Label"), "bad label"),
    (lambda d: d["boot"].update(max_recovery_boots=0), "max_recovery_boots"),
    (lambda d: d.update(format=2), "format 1"),
])
def test_bad_board_definitions_are_refused(tmp_path, mutate, message):
    with pytest.raises(board.BoardError, match=re.escape(message)):
        board.Board(write_board(tmp_path, mutate))


def test_grub_cfg_is_rendered_with_the_layout():
    cfg = board.Board("qemu-x86_64").render_grub_cfg(timeout=2)
    assert "@" not in cfg.replace("@@", "")
    assert "set sys_misc=(hd0,gpt3)" in cfg and "set sys_system=(hd0,gpt5)" in cfg
    assert "load_env --file ${sys_misc}0+2 recovery_request system_incomplete" in cfg
    assert "set timeout=2" in cfg and "set max_recovery_boots=3" in cfg
    for key in ("--hotkey=n", "--hotkey=r", "--hotkey=f", "sysimage.mode=factory-reset"):
        assert key in cfg


def test_a_disk_too_small_for_its_tree_is_refused(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(b"\0" * (30 * 1024 * 1024))
    with pytest.raises(board.BoardError, match="system: 30 MiB of files"):
        board.build_disk(str(tmp_path / "d.img"), "qemu-x86_64", sizes={"system": 32},
                         trees={"system": str(tree)}, grub=False)


@pytest.mark.skipif(not HAVE_GRUB, reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)")
def test_disk_has_the_layout_and_both_boot_loaders(tmp_path):
    disk = str(tmp_path / "d.img")
    starts = board.build_disk(disk, "qemu-x86_64", kinds={"system": "none"})
    out = subprocess.run(["partx", "-g", "-b", "-P", "-o", "NR,START,NAME,TYPE", disk],
                         capture_output=True, text=True, check=True).stdout
    names = re.findall(r'NAME="([^"]*)"', out)
    assert names == [p["label"] for p in board.Board("qemu-x86_64").parts]
    with open(disk, "rb") as f:
        mbr = f.read(512)
        bios_start = starts["bios"][0]
        f.seek(bios_start)
        core = f.read(512)
    boot_img = open("/usr/lib/grub/i386-pc/boot.img", "rb").read()
    assert mbr[:0x5C] == boot_img[:0x5C] and mbr[510:] == b"\x55\xaa"
    assert struct.unpack_from("<Q", mbr, 0x5C)[0] == bios_start // 512
    assert struct.unpack_from("<Q", core, 500)[0] == bios_start // 512 + 1
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    esp = f"{disk}@@{starts['esp'][0]}"
    efi = subprocess.run(["mtype", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI"], capture_output=True, env=env, check=True)
    assert efi.stdout[:2] == b"MZ"
    cfg = subprocess.run(["mtype", "-i", esp, "::/grub/grub.cfg"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert cfg == board.Board("qemu-x86_64").render_grub_cfg()
    count = subprocess.run(["mtype", "-i", esp, "::/grub/bootcount.env"], capture_output=True, env=env,
                           check=True).stdout
    assert len(count) == 1024 and b"recovery_boots=0\nnormal_boots=0\nsystem_new=0\n" in count
    with open(disk, "rb") as f:
        f.seek(starts["misc"][0])
        assert f.read(1024) == board.grubenv_block({"recovery_request": "0"})


# ------------------------------------------------------------ the A/B board (docs/ab.md)

def test_ab_board_has_two_slots_and_its_grub_cfg():
    b = board.Board("qemu-x86_64-ab")
    assert b.slots == ["system_a", "system_b"] and b.part("system") is None
    assert [p["label"] for p in b.parts] == ["bios", "esp", "misc", "recovery", "system_a", "system_b",
                                             "cache", "userdata"]
    cfg = b.render_grub_cfg(timeout=2)
    assert "@" not in cfg.replace("@@", "")
    assert "set slot_a=(hd0,gpt5)" in cfg and "set slot_b=(hd0,gpt6)" in cfg
    assert "load_env --file $bootcount recovery_boots ab_active ab_try ab_tries" in cfg
    assert "root=PARTLABEL=system_$boot_slot" in cfg and "set max_unconfirmed_boots=3" in cfg
    # the try counter is saved before the trial slot's kernel is loaded
    normal = cfg[cfg.index('menuentry "Normal"'):]
    assert normal.index("count_trial") < normal.index("linux ")
    if shutil.which("grub-script-check"):
        subprocess.run(["grub-script-check"], input=cfg, text=True, check=True)


def test_a_board_with_one_slot_or_without_its_slots_is_refused(tmp_path):
    def one_slot(d):
        d["slots"] = ["system"]
    with pytest.raises(board.BoardError, match="slots: a list of two"):
        board.Board(write_board(tmp_path, one_slot))

    def missing(d):
        d["slots"] = ["system_a", "system_b"]
    with pytest.raises(board.BoardError, match="needs a partition 'system_a'"):
        board.Board(write_board(tmp_path, missing))


@pytest.mark.skipif(not HAVE_GRUB, reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)")
def test_ab_disk_has_both_slots_and_the_ab_counters(tmp_path):
    disk = str(tmp_path / "ab.img")
    b = board.Board("qemu-x86_64-ab")
    starts = board.build_disk(disk, b, kinds={"system_a": "none", "system_b": "none"})
    out = subprocess.run(["partx", "-g", "-b", "-P", "-o", "NR,START,NAME,TYPE", disk],
                         capture_output=True, text=True, check=True).stdout
    assert re.findall(r'NAME="([^"]*)"', out) == [p["label"] for p in b.parts]
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    esp = f"{disk}@@{starts['esp'][0]}"
    cfg = subprocess.run(["mtype", "-i", esp, "::/grub/grub.cfg"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert cfg == b.render_grub_cfg()
    count = subprocess.run(["mtype", "-i", esp, "::/grub/bootcount.env"], capture_output=True, env=env,
                           check=True).stdout
    assert len(count) == 1024 and b"ab_active=a\nab_try=\nab_tries=0\n" in count
