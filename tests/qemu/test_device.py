"""The real device (issue 8): a board disk booting GRUB under UEFI (OVMF) and
BIOS (SeaBIOS), the normal OS running the stub against nginx, the recovery
booted by GRUB from its partition, the boot menu driven over the serial
console, and GRUB's boot-loop counters.

Every test is whole-device boots in one QEMU process (reboots included) with
the console read and typed through tests/qemu/sihw.py's Machine."""
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
KEYS = sihw.KEYS
BIN = sihw.BIN

pytestmark = sihw.device_skips(KEYS, stub=True)

BOOT = 300  # seconds for one boot step under TCG, with room for a busy machine


@pytest.fixture(scope="module")
def os_trees(tmp_path_factory):
    """Builds 1 and 2 of the bootable sample OS, without a server (tests that
    do not update)."""
    d = tmp_path_factory.mktemp("device-os")
    return {v: sihw.device_os(v, str(d / f"v{v}")) for v in (1, 2)}


# UEFI: test_demo.py runs the same loop under OVMF (make demo), with the menu's
# factory reset; here BIOS. SI_DEVICE_FIRMWARE=efi,bios runs both here.
@pytest.mark.parametrize("firmware", os.environ.get("SI_DEVICE_FIRMWARE", "bios").split(","))
def test_update_loop(tmp_path, firmware):
    """Blank disk + build 1 staged by the factory -> GRUB boots the recovery,
    which installs build 1 -> GRUB boots Normal -> the stub in the guest
    stages the delta to build 2 from nginx and reboots into the recovery ->
    build 2 runs and reports itself -> the menu's Factory reset chosen by a
    key on the serial console wipes userdata -> so does `sysimage-stub
    factory-reset` on the device."""
    srv = devloop.Server(str(tmp_path), KEYS)
    try:
        trees = {v: devloop.device_tree(srv, v, str(tmp_path / f"os{v}")) for v in (1, 2)}
        devloop.publish(srv, trees[1], 1)
        disk = str(tmp_path / "disk.img")
        devloop.blank_disk(disk)
        devloop.provision(disk, str(tmp_path / "factory"), srv)
        with sihw.Machine(disk, firmware=firmware, log=str(tmp_path / "serial.log")) as m:
            m.expect(r"booting Recovery \(mode update, recovery_boots=1\)", BOOT)
            assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
            assert m.expect(devloop.UP, BOOT).group(1) == "1"
            st = devloop.guest_status(m)
            assert st["build"] == 1 and st["last_result"]["to_version"] == 1, st
            rc, _ = m.shell("echo 'kept by the user' > /home/note && sync")
            assert rc == 0
            devloop.publish(srv, trees[2], 2)
            outs = devloop.guest_update(m)
            assert "delta 1 -> 2" in outs["sysimage-stub check"]
            m.expect(r"booting Recovery \(mode update", BOOT)
            assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            st = devloop.guest_status(m)
            assert st["build"] == 2 and st["recovery_request"] == "0", st
            assert st["last_result"]["from_version"] == 1 and st["last_result"]["to_version"] == 2, st
            assert m.shell("cat /home/note")[1] == "kept by the user"
            # the menu key: serial input on BIOS, the console (OVMF polls the UART) on EFI
            m.send("reboot\n")
            m.menu_key("f", BOOT)
            m.expect(r"booting Recovery \(mode factory-reset", 60)
            assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            st = devloop.guest_status(m)
            assert st["last_result"]["mode"] == "factory-reset", st
            assert m.shell("test -e /home/note")[0] != 0
            # and the same from the OS: `sysimage-stub factory-reset` requests it in misc
            assert m.shell("echo 'kept again' > /home/note && sync")[0] == 0
            m.send("sysimage-stub factory-reset\n")
            m.expect(r"booting Recovery \(mode factory-reset", BOOT)
            assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            assert m.shell("test -e /home/note")[0] != 0
            m.send("poweroff\n")
            m.wait(60)
        problems, n = devloop.system_diff(disk, trees[2], 2)
        assert not problems, problems
        assert sihw.read_misc_env(disk)["recovery_request"] == "0"
        count = sihw.read_bootcount(disk)
        assert count == {"recovery_boots": "0", "normal_boots": "0", "system_new": "0"}, count
    finally:
        srv.stop()


def test_broken_recovery_falls_back_to_normal(tmp_path, os_trees):
    """A recovery that never starts (its initrd is garbage: the kernel panics
    and panic=-1 reboots): after 3 such boots GRUB boots Normal, and the
    normal OS says why."""
    rec = tmp_path / "rec"
    rec.mkdir()
    shutil.copy(os.path.join(sihw.RECOVERY_DIR, "vmlinuz"), rec)
    (rec / "initrd.img").write_bytes(b"not an initramfs\n" * 1000)
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, trees={"system": os_trees[1], "recovery": str(rec)}, env={"recovery_request": "1"},
                    grub_timeout=1)
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
        for n in (1, 2, 3):
            m.expect(rf"booting Recovery \(mode update, recovery_boots={n}\)", BOOT)
        m.expect(r"3 boots of the recovery never reached it: Normal", BOOT)
        m.expect(r"the boot loader fell back to this system: recovery-failed", BOOT)
        m.expect(devloop.UP, BOOT)
        assert "init: running sysimage-recovery" not in m.text()
    assert sihw.read_bootcount(disk)["recovery_boots"] == "3"


def test_unconfirmed_system_goes_to_recovery(tmp_path, os_trees):
    """A newly installed system that never marks itself booted (here it has
    no /sbin/init: its initrd gives up, the kernel panics, panic=-1 reboots):
    after 3 such boots GRUB boots the recovery, which says why and stays."""
    tree = tmp_path / "broken"
    shutil.copytree(os_trees[2], tree, symlinks=True)
    os.unlink(tree / "sbin" / "init")
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, trees={"system": str(tree)}, recovery_image=sihw.RECOVERY_DIR,
                    bootcount={"recovery_boots": 0, "normal_boots": 0, "system_new": 1}, grub_timeout=1)
    with sihw.Machine(disk, firmware="efi", net=False, log=str(tmp_path / "serial.log")) as m:
        for n in (1, 2, 3):
            m.expect(rf"booting Normal \(system, normal_boots={n} system_new=1\)", BOOT)
            m.expect(r"initrd: system has no /sbin/init", BOOT)
        m.expect(r"did not confirm 3 boots: Recovery", BOOT)
        m.expect(r"the boot loader chose the recovery because: system-failed", BOOT)
        m.expect(r"the recovery stays here", BOOT)
    count = sihw.read_bootcount(disk)
    assert count["normal_boots"] == "3" and count["recovery_boots"] == "0", count


def test_incomplete_system_never_boots_normal(tmp_path, os_trees):
    """misc says system_incomplete=1 (the recovery was cut while writing the
    system, issue 15): GRUB boots the recovery even though nothing is
    requested and a system is there."""
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, trees={"system": os_trees[1]}, recovery_image=sihw.RECOVERY_DIR,
                    env={"recovery_request": "0", "system_incomplete": "1"}, grub_timeout=1)
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
        m.expect(r"the system is incomplete .*: Recovery", BOOT)
        m.expect(r"init: running sysimage-recovery", BOOT)
        m.kill()
    assert not re.search(r"booting Normal", m.text())
