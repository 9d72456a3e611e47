"""`sysimage image` output is a device (issue 9): the factory disk image of a
published build boots GRUB and the normal OS of that build under UEFI (OVMF)
and BIOS (SeaBIOS), with nothing else done to it, and then updates itself like
any device: the stub in the guest stages build 2 from nginx, GRUB boots the
recovery, which installs it, and build 2 comes up.

Boots: one UEFI run (build 1, update, build 2), one BIOS run (build 1) and one
BIOS run of the A/B board's image (build 1 from slot a)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import devloop  # noqa: E402
import provkit  # noqa: E402
import sihw  # noqa: E402
from provkit import copy_sparse  # noqa: E402

KEYS = provkit.DEVKEYS
BOOT = 300

pytestmark = provkit.QEMU_MARKS


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    """nginx serving a repository with build 1, and its factory image."""
    d = tmp_path_factory.mktemp("image-boot")
    srv = devloop.Server(str(d), KEYS)
    try:
        trees = {v: devloop.device_tree(srv, v, str(d / f"os{v}")) for v in (1, 2)}
        devloop.publish(srv, trees[1], 1)
        img = str(d / "factory.img")
        proc = provkit.tool("image", "qemu-x86_64", srv.repo, img, "--build", "1", keys=KEYS,
                            channel=devloop.CHANNEL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield {"dir": d, "server": srv, "trees": trees, "image": img}
    finally:
        srv.stop()


def test_uefi_boots_the_build_then_updates(factory, tmp_path):
    disk = copy_sparse(factory["image"], str(tmp_path / "disk.img"))
    srv, trees = factory["server"], factory["trees"]
    with sihw.Machine(disk, firmware="efi", log=str(tmp_path / "serial.log")) as m:
        m.expect(r"booting Normal \(system", BOOT)
        assert m.expect(devloop.UP, BOOT).group(1) == "1"
        st = devloop.guest_status(m)
        assert st["build"] == 1 and st["recovery_request"] == "0", st
        devloop.publish(srv, trees[2], 2)
        outs = devloop.guest_update(m)
        assert "delta 1 -> 2" in outs["sysimage-stub check"], outs
        m.expect(r"booting Recovery \(mode update", BOOT)
        assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
        assert m.expect(devloop.UP, BOOT).group(1) == "2"
        st = devloop.guest_status(m)
        assert st["build"] == 2 and st["last_result"]["to_version"] == 2, st
        m.send("poweroff\n")
        m.wait(60)
    problems, n = devloop.system_diff(disk, trees[2], 2)
    assert not problems, problems


def test_bios_boots_the_build(factory, tmp_path):
    disk = copy_sparse(factory["image"], str(tmp_path / "disk.img"))
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
        m.expect(r"booting Normal \(system, normal_boots=0 system_new=0\)", BOOT)
        assert m.expect(devloop.UP, BOOT).group(1) == "1"
        st = devloop.guest_status(m)
        assert st["build"] == 1 and st["recovery_request"] == "0", st
        m.send("poweroff\n")
        m.wait(60)


@provkit.AB_RECOVERY_MARK
def test_ab_image_boots_slot_a(tmp_path):
    """The A/B board's factory image (docs/ab.md), with the A/B board's
    recovery image (build/recovery-qemu-x86_64-ab): GRUB boots slot a, the
    good slot of the env_defaults, and build 1 comes up there (BIOS, one boot)."""
    srv = devloop.Server(str(tmp_path), KEYS)
    try:
        tree = devloop.device_tree(srv, 1, str(tmp_path / "os1"), provkit.AB_OS_ENV)
        devloop.publish(srv, tree, 1)
        disk = str(tmp_path / "ab.img")
        proc = provkit.tool("image", "qemu-x86_64-ab", srv.repo, disk, "--device", "qemu-x86_64", "--build", "1",
                            "--timeout", "1", keys=KEYS, channel=devloop.CHANNEL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
            provkit.expect_ab_slot_a(m, BOOT)
    finally:
        srv.stop()
