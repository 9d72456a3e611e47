"""`sysimage image` output is a device (issue 9): the factory disk image of a
published build boots GRUB and the normal OS of that build under UEFI (OVMF)
and BIOS (SeaBIOS), with nothing else done to it, and then updates itself like
any device: the stub in the guest stages build 2 from nginx, GRUB boots the
recovery, which installs it, and build 2 comes up.

Boots: one UEFI run (build 1, update, build 2), one BIOS run (build 1) and one
BIOS run of the A/B board's image (build 1 from slot a)."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import devloop  # noqa: E402
import sihw  # noqa: E402

ROOT = sihw.ROOT
KEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))
BIN = os.path.join(ROOT, "build", "bin")
BOOT = 300

pytestmark = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not os.path.exists(sihw.OVMF_CODE), reason="ovmf not installed (make deps)"),
    pytest.mark.skipif(not os.path.isdir("/usr/lib/grub/i386-pc") or not os.path.isdir("/usr/lib/grub/x86_64-efi"),
                       reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KEYS, "archive-master.keyring")),
                       reason=f"{KEYS} has no key hierarchy: make keys"),
]


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    """nginx serving a repository with build 1, and its factory image."""
    d = tmp_path_factory.mktemp("image-boot")
    srv = devloop.Server(str(d), KEYS)
    try:
        trees = {v: devloop.device_tree(srv, v, str(d / f"os{v}")) for v in (1, 2)}
        devloop.publish(srv, trees[1], 1)
        img = str(d / "factory.img")
        proc = subprocess.run([os.path.join(BIN, "sysimage"), "image", "--board", "qemu-x86_64",
                               "--repo", srv.repo, "--channel", devloop.CHANNEL, "--build", "1",
                               "--archive-master", os.path.join(KEYS, "archive-master.keyring"),
                               "--recovery", sihw.RECOVERY_DIR, "--out", img],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield {"dir": d, "server": srv, "trees": trees, "image": img}
    finally:
        srv.stop()


def copy_image(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


def test_uefi_boots_the_build_then_updates(factory, tmp_path):
    disk = copy_image(factory["image"], str(tmp_path / "disk.img"))
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
    disk = copy_image(factory["image"], str(tmp_path / "disk.img"))
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
        m.expect(r"booting Normal \(system, normal_boots=0 system_new=0\)", BOOT)
        assert m.expect(devloop.UP, BOOT).group(1) == "1"
        st = devloop.guest_status(m)
        assert st["build"] == 1 and st["recovery_request"] == "0", st
        m.send("poweroff\n")
        m.wait(60)


def test_ab_image_boots_slot_a(tmp_path):
    """The A/B board's factory image (docs/ab.md): GRUB boots slot a, the
    good slot of the env_defaults, and build 1 comes up there (BIOS, one boot)."""
    srv = devloop.Server(str(tmp_path), KEYS)
    try:
        ab = {"SI_AB": "1", "SI_RECOVERY_BIN": os.path.join(BIN, "sysimage-recovery")}
        tree = devloop.device_tree(srv, 1, str(tmp_path / "os1"), ab)
        devloop.publish(srv, tree, 1)
        disk = str(tmp_path / "ab.img")
        proc = subprocess.run([os.path.join(BIN, "sysimage"), "image", "--board", "qemu-x86_64-ab",
                               "--device", "qemu-x86_64", "--repo", srv.repo, "--channel", devloop.CHANNEL,
                               "--build", "1", "--archive-master", os.path.join(KEYS, "archive-master.keyring"),
                               "--recovery", sihw.RECOVERY_DIR, "--timeout", "1", "--out", disk],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "serial.log")) as m:
            m.expect(r"booting slot a \(active a, on trial 0", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "1"
            rc, out = m.shell("sysimage-stub status")
            assert rc == 0 and "slot:             a (good slot a)" in out, out
            m.send("poweroff\n")
            m.wait(60)
    finally:
        srv.stop()
