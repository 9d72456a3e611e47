"""A/B device (issue 13, docs/ab.md): board qemu-x86_64-ab, two system
slots, one grub.cfg for both firmwares. `make test` runs one scenario per
firmware, each with the A -> B switch and a rollback (SI_DEVICE_FIRMWARE=bios
or efi runs one; SI_AB_SCENARIOS=full runs every step on each firmware):

BIOS: build 1 runs from slot a; a power cut (QEMU killed) during `install`
leaves slot a and GRUB's state as they were -> build 1 again, the stub in
the guest stages the delta to build 2 from nginx (the same `sysimage
publish` repo a recovery-mode device uses: device qemu-x86_64, channel
stable) and installs it into slot b in the background -> reboot: GRUB tries
b, build 2 marks itself good -> build 3 (its init exits: the kernel panics)
is installed into slot a -> GRUB tries it 3 times and falls back to b, where
`status` reports the rollback -> build 4 into slot a (B -> A) is kept.

UEFI: build 1 on slot a -> build 2 into slot b, marked good -> a repair
through the recovery (`stage --build 0`: the full of build 2, the installed
one; `reboot-recovery`): GRUB boots the recovery, which rewrites the good
slot b and withdraws nothing else; b boots again -> build 3 (broken) into a,
tried 3 times, back to b."""
import os
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import devloop  # noqa: E402
import sihw  # noqa: E402

ROOT = sihw.ROOT
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402

KEYS = sihw.KEYS
BIN = sihw.BIN
BOOT = 300
FIRMWARES = os.environ.get("SI_DEVICE_FIRMWARE", "bios,efi").split(",")
ALL_STEPS = os.environ.get("SI_AB_SCENARIOS") == "full"

pytestmark = sihw.device_skips(KEYS, stub=True, board="qemu-x86_64-ab")


def install(m, say):
    """stage + install in the guest; the install's own report."""
    rc, out = m.shell("sysimage-stub stage", BOOT)
    assert rc == 0, out
    rc, out = m.shell("time sysimage-stub install 2>&1", 900)
    say(out)
    assert rc == 0, out
    return out


def device(tmp_path, srv):
    """Trees of builds 1-4 (3: a broken init) and the disk: build 1 in slot a
    as the factory leaves it, slot b blank, the A/B board's recovery image
    (build/recovery-qemu-x86_64-ab) on `recovery`."""
    ab = {"SI_AB": "1", "SI_RECOVERY_BIN": os.path.join(BIN, "sysimage-recovery")}
    trees = {1: devloop.device_tree(srv, 1, str(tmp_path / "os1"), ab),
             2: devloop.device_tree(srv, 2, str(tmp_path / "os2"), ab),
             3: devloop.device_tree(srv, 2, str(tmp_path / "os3"), dict(ab, SI_BROKEN_INIT="1"))}
    trees[4] = trees[2]
    devloop.publish(srv, trees[1], 1)
    slot_a = str(tmp_path / "slot-a")
    shutil.copytree(trees[1], slot_a, symlinks=True)
    with open(os.path.join(slot_a, "etc", "sysimage", "version.json"), "w") as f:
        f.write('{"build": 1, "channel": "stable"}\n')
    disk = str(tmp_path / "disk.img")
    boardlib.build_disk(disk, boardlib.Board("qemu-x86_64-ab"), sizes={"system_a": 128, "system_b": 128},
                        trees={"system_a": slot_a}, kinds={"system_b": "none"},
                        recovery_image=sihw.AB_RECOVERY_DIR, timeout=1)
    return trees, disk


def up(m, build):
    assert m.expect(devloop.UP, BOOT).group(1) == str(build)


def good_slot_up(m, slot, build, t0, what, say):
    """build up on slot, the good one; how long since t0"""
    up(m, build)
    say(f"{what}: {m.seconds() - t0:.1f} s")
    rc, out = m.shell("sysimage-stub status")
    assert f"slot:             {slot} (good slot {slot})" in out, out


def power_cut_during_install(disk, firmware, srv, trees, log):
    a_before = sihw.partition_sha256(disk, "system_a")
    with sihw.Machine(disk, firmware=firmware, log=log) as m:
        m.expect(r"booting slot a \(active a, on trial 0", BOOT)
        up(m, 1)
        devloop.publish(srv, trees[2], 2)
        rc, out = m.shell("sysimage-stub stage", BOOT)
        assert rc == 0, out
        m.send("sysimage-stub install\n")
        m.expect(r"copy active slot: \d+/\d+ MiB", BOOT)
        m.kill()
    assert sihw.partition_sha256(disk, "system_a") == a_before  # the running slot untouched
    env = sihw.read_bootcount(disk)
    assert (env["ab_active"], env["ab_try"]) == ("a", ""), env


def a_to_b(m, srv, trees, say):
    """build 2 installed into b in the background, tried, marked good"""
    out = install(m, say)
    assert "install build 2 (delta) into slot b; running slot a" in out
    assert re.search(r"slot a copied onto slot b: \d+ of 128 MiB \(the used blocks\) in [\d.]+ s", out), out
    m.send("reboot\n")
    t0 = m.seconds()
    m.expect(r"booting slot b \(active a, on trial 1, tries 1\)", BOOT)
    m.expect(r"slot b marked good \(build 2\)", BOOT)
    good_slot_up(m, "b", 2, t0, "reboot to build 2 up on slot b", say)


def rollback(m, srv, trees, say):
    """build 3 cannot boot: tried 3 times, then back to b"""
    devloop.publish(srv, trees[3], 3)
    out = install(m, say)
    assert "into slot a; running slot b" in out
    m.send("reboot\n")
    for n in (1, 2, 3):
        m.expect(rf"booting slot a \(active b, on trial 1, tries {n}\)", BOOT)
        m.expect(r"broken init of build", BOOT)
    m.expect(r"slot a \(build 3\) did not confirm 3 boots: back to slot b", BOOT)
    up(m, 2)
    rc, out = m.shell("sysimage-stub status")
    assert "rollback:         build 3 in slot a did not come up; back on slot b" in out, out


def b_to_a(m, srv, trees, say):
    devloop.publish(srv, trees[4], 4)
    out = install(m, say)
    assert "install build 4" in out and "into slot a; running slot b" in out
    m.send("reboot\n")
    m.expect(r"booting slot a \(active b, on trial 1, tries 1\)", BOOT)
    m.expect(r"slot a marked good \(build 4\)", BOOT)
    up(m, 4)


def repair_good_slot(m, say):
    """the recovery rewrites the good slot b with the full of its build 2"""
    rc, out = m.shell("sysimage-stub stage --build 0", BOOT)
    assert rc == 0, out
    m.send("sysimage-stub reboot-recovery\n")
    t0 = m.seconds()
    m.expect(r"sysimage: booting Recovery \(recovery_boots=1\)", BOOT)
    m.expect(r"A/B board: the job is for slot b", BOOT)
    m.expect(r"A/B board: slot b repaired", BOOT)
    m.expect(r"booting slot b \(active b, on trial 0", BOOT)
    good_slot_up(m, "b", 2, t0, "repair of slot b through the recovery, until build 2 is up again", say)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_ab_update_rollback(tmp_path, firmware):
    log = []
    say = log.append
    srv = devloop.Server(str(tmp_path), KEYS)
    bios_steps = firmware == "bios" or ALL_STEPS
    efi_steps = firmware == "efi" or ALL_STEPS
    try:
        trees, disk = device(tmp_path, srv)
        if bios_steps:
            power_cut_during_install(disk, firmware, srv, trees, str(tmp_path / "serial-cut.log"))
        else:
            devloop.publish(srv, trees[2], 2)
        with sihw.Machine(disk, firmware=firmware, log=str(tmp_path / "serial.log")) as m:
            m.expect(r"booting slot a \(active a, on trial 0", BOOT)
            up(m, 1)
            a_to_b(m, srv, trees, say)
            if efi_steps:
                repair_good_slot(m, say)
            rollback(m, srv, trees, say)
            if bios_steps:
                b_to_a(m, srv, trees, say)
            m.send("poweroff\n")
            m.wait(60)
        env = sihw.read_bootcount(disk)
        good = "a" if bios_steps else "b"
        assert (env["ab_active"], env["ab_try"]) == (good, ""), env
    finally:
        srv.stop()
        with open(tmp_path / "ab-report.txt", "w") as f:
            f.write("\n".join(log))
