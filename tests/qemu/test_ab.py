"""A/B device (issue 13, docs/ab.md): board qemu-x86_64-ab, two system
slots. Two QEMU processes (BIOS; the grub.cfg is the same file under UEFI):
build 1 runs from slot a; a power cut (QEMU killed) while `install` copies
into slot b leaves slot a and GRUB's state as they were -> build 1 again, the
stub in the guest stages the delta to build 2
from nginx (the same `sysimage publish` repo a recovery-mode device uses:
device qemu-x86_64, channel stable) and installs it into slot b in the
background -> reboot: GRUB tries b, build 2 marks itself good -> build 3
(its init exits: the kernel panics) is installed into slot a -> GRUB tries it
3 times and falls back to b, where `status` reports the rollback -> build 4
into slot a (B -> A) comes up and is kept."""
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

KEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))
BIN = os.path.join(ROOT, "build", "bin")
BOOT = 300

pytestmark = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not os.path.isdir("/usr/lib/grub/i386-pc") or not os.path.isdir("/usr/lib/grub/x86_64-efi"),
                       reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)"),
    pytest.mark.skipif(not os.path.exists(sihw.OVMF_CODE), reason="ovmf not installed (make deps)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
    pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "sysimage-stub")), reason="sysimage-stub not built"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KEYS, "archive-master.keyring")),
                       reason=f"{KEYS} has no key hierarchy: make keys"),
]


def install(m, say):
    """stage + install in the guest; the install's own report."""
    rc, out = m.shell("sysimage-stub stage", BOOT)
    assert rc == 0, out
    rc, out = m.shell("time sysimage-stub install 2>&1", 900)
    say(out)
    assert rc == 0, out
    return out


# BIOS by default (one whole-device run in `make test`); SI_DEVICE_FIRMWARE=efi,bios
# runs both: the grub.cfg and the ESP env are the same under OVMF.
@pytest.mark.parametrize("firmware", os.environ.get("SI_DEVICE_FIRMWARE", "bios").split(","))
def test_ab_update_rollback_and_back(tmp_path, firmware):
    log = []
    say = log.append
    srv = devloop.Server(str(tmp_path), KEYS)
    try:
        ab = {"SI_AB": "1", "SI_RECOVERY_BIN": os.path.join(BIN, "sysimage-recovery")}
        trees = {1: devloop.device_tree(srv, 1, str(tmp_path / "os1"), ab),
                 2: devloop.device_tree(srv, 2, str(tmp_path / "os2"), ab),
                 3: devloop.device_tree(srv, 2, str(tmp_path / "os3"), dict(ab, SI_BROKEN_INIT="1"))}
        trees[4] = trees[2]
        devloop.publish(srv, trees[1], 1)
        # the factory writes build 1 into slot a (the recovery serves one
        # `system`; an A/B disk leaves the factory with a slot filled)
        slot_a = str(tmp_path / "slot-a")
        shutil.copytree(trees[1], slot_a, symlinks=True)
        with open(os.path.join(slot_a, "etc", "sysimage", "version.json"), "w") as f:
            f.write('{"build": 1, "channel": "stable"}\n')
        disk = str(tmp_path / "disk.img")
        board = boardlib.Board("qemu-x86_64-ab")
        boardlib.build_disk(disk, board, sizes={"system_a": 128, "system_b": 128},
                            trees={"system_a": slot_a}, kinds={"system_b": "none"},
                            recovery_image=sihw.RECOVERY_DIR, timeout=1)
        a_before = sihw.partition_sha256(disk, "system_a")
        with sihw.Machine(disk, firmware=firmware, log=str(tmp_path / "serial-cut.log")) as m:
            m.expect(r"booting slot a \(active a, on trial 0", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "1"
            # power cut while the background install writes slot b
            devloop.publish(srv, trees[2], 2)
            rc, out = m.shell("sysimage-stub stage", BOOT)
            assert rc == 0, out
            m.send("sysimage-stub install\n")
            m.expect(r"copy active slot: \d+/128 MiB", BOOT)
            m.kill()
        assert sihw.partition_sha256(disk, "system_a") == a_before  # the running slot untouched
        env = sihw.read_bootcount(disk)
        assert (env["ab_active"], env["ab_try"]) == ("a", ""), env
        with sihw.Machine(disk, firmware=firmware, log=str(tmp_path / "serial.log")) as m:
            m.expect(r"booting slot a \(active a, on trial 0", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "1"
            # A -> B: the next install converges
            out = install(m, say)
            assert "install build 2 (delta) into slot b; running slot a" in out
            assert re.search(r"slot a copied onto slot b: 128 MiB in [\d.]+ s", out), out
            m.send("reboot\n")
            t0 = m.seconds()
            m.expect(r"booting slot b \(active a, on trial 1, tries 1\)", BOOT)
            m.expect(r"slot b marked good \(build 2\)", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            say(f"reboot to build 2 up on slot b: {m.seconds() - t0:.1f} s")
            rc, out = m.shell("sysimage-stub status")
            assert "slot:             b (good slot b)" in out, out
            # a build that cannot boot: tried 3 times, then back to b
            devloop.publish(srv, trees[3], 3)
            out = install(m, say)
            assert "into slot a; running slot b" in out
            m.send("reboot\n")
            for n in (1, 2, 3):
                m.expect(rf"booting slot a \(active b, on trial 1, tries {n}\)", BOOT)
                m.expect(r"broken init of build", BOOT)
            m.expect(r"slot a \(build 3\) did not confirm 3 boots: back to slot b", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            rc, out = m.shell("sysimage-stub status")
            assert "rollback:         build 3 in slot a did not come up; back on slot b" in out, out
            # B -> A
            devloop.publish(srv, trees[4], 4)
            out = install(m, say)
            assert "install build 4" in out and "into slot a; running slot b" in out
            m.send("reboot\n")
            m.expect(r"booting slot a \(active b, on trial 1, tries 1\)", BOOT)
            m.expect(r"slot a marked good \(build 4\)", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "4"
            m.send("poweroff\n")
            m.wait(60)
        env = sihw.read_bootcount(disk)
        assert (env["ab_active"], env["ab_try"], env["ab_failed"]) == ("a", "", ""), env
    finally:
        srv.stop()
        with open(tmp_path / "ab-report.txt", "w") as f:
            f.write("\n".join(log))
