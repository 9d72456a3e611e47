"""The recovery's flash mode under QEMU (issue 9): the recovery image booted
with sysimage.mode=flash, a blank virtio disk (the internal one, vda) and a
`sysimage flash-media` stick as a second virtio disk (vdb). A power cut in
the middle of writing the system, then a new flash from the same media
converges (the cut on a disk whose volatile write cache loses what was not
flushed: volatile_disk.py), the stick booting by itself (its own GRUB under OVMF, the stick as
the first disk); the device then boots alone (the stick removed) through GRUB
to the normal OS of the build. A disk too small for the board is refused
before any write (its bytes unchanged). The cut and the refusal boot the
recovery directly (-kernel/-initrd), the stick as the second disk.

The A/B board's recovery image (`make recovery-image BOARD=qemu-x86_64-ab`)
on an A/B stick, booted by itself (OVMF), provisions a blank disk, which then
boots slot a alone (BIOS).

Boots: four of the recovery (cut, flash from the stick, refusal, A/B flash
from the stick) and two of the device (after each flash from a stick)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import devloop  # noqa: E402
import provkit  # noqa: E402
import sihw  # noqa: E402
from volatile_disk import VolatileDisk  # noqa: E402
from provkit import blank, media_result, sha  # noqa: E402

KEYS = provkit.DEVKEYS
BOOT = 300

pytestmark = provkit.QEMU_MARKS


@pytest.fixture(scope="module")
def stick(tmp_path_factory):
    d = tmp_path_factory.mktemp("flash-media")
    tree = sihw.device_os(1, str(d / "os1"))
    repo = provkit.publish(d / "repo", KEYS, tree, 1)
    out = str(d / "stick.img")
    proc = provkit.tool("flash-media", "qemu-x86_64", repo, out, keys=KEYS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"stick": out, "tree": tree}


def cut_during_flash(disk, media, log):
    """The recovery booted directly (-kernel) in flash mode, disk (vda) behind
    a VolatileDisk, media as vdb; the power fails at the first flush after
    the system partition's writing began that has unflushed writes (the host
    may see the serial line late, after a flush). Returns the sectors lost."""
    vd = VolatileDisk(disk)
    append = "console=ttyS0 panic=-1 no_timer_check sysimage.halt=poweroff sysimage.mode=flash"
    m = sihw.Machine(disk, firmware="bios", net=False, log=log, drive=vd.qemu_drive(),
                     extra_args=["-kernel", os.path.join(sihw.RECOVERY_DIR, "vmlinuz"), "-initrd",
                                 os.path.join(sihw.RECOVERY_DIR, "initrd.img"), "-append", append, "-no-reboot",
                                 "-drive", f"file={media},if=virtio,format=raw"])
    try:
        m.expect(r"flash: writing system", BOOT)
        vd.arm_cut(0.0, 0, min_pending=1)
        if not vd.dead.wait(BOOT):
            raise AssertionError("the guest never flushed")
    finally:
        m.kill()
        vd.close(keep_cache=False)
    kept, lost = vd.cut_result
    print(f"power cut during flash at {m.seconds():.1f} s: {lost} unflushed sectors lost")
    return lost


def test_flash_after_a_power_cut_converges_and_the_device_boots_alone(stick, tmp_path):
    media = provkit.copy_sparse(stick["stick"], str(tmp_path / "stick.img"))
    disk = blank(str(tmp_path / "internal.img"))
    # the power fails while the system partition is being written, at the
    # guest's next flush: the internal disk (a volatile write cache, served
    # over NBD) loses every write since the previous flush
    lost = cut_during_flash(disk, media, str(tmp_path / "cut.log"))
    assert lost > 0, "the cut lost nothing: the test did not test a volatile cache"
    assert sihw.read_misc_env(disk).get("sysimage_flash") == "incomplete"
    # a new flash from the same media (blank-only consent) finishes the job:
    # the stick boots by itself (its GRUB under OVMF, the stick first)
    with sihw.Machine(media, firmware="efi", net=False, log=str(tmp_path / "flash.log"),
                      extra_args=["-drive", f"file={disk},if=virtio,format=raw,cache=writeback"]) as m:
        m.expect(r"sysimage: booting the recovery from the media \(mode flash", BOOT)
        m.expect(r"verified: keyrings, flash.json", BOOT)
        m.expect(r"flash: target holds an interrupted flash", 30)
        assert m.expect(r"init: recovery result (\d+)", BOOT).group(1) == "0"
        assert m.wait(60) == 1  # isa-debug-exit: (0 << 1) | 1
    res = media_result(media)
    assert res["result"] == 0 and res["build"] == 1 and res["target"] == "/dev/vdb", res
    assert sihw.read_misc_env(disk) == {"recovery_request": "0"}
    problems, n = devloop.system_diff(disk, stick["tree"], 1)
    assert not problems, problems
    # the device alone (BIOS this time): GRUB, the normal OS of build 1
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "device.log")) as m:
        m.expect(r"booting Normal \(system", BOOT)
        assert m.expect(devloop.UP, BOOT).group(1) == "1"
        m.send("poweroff\n")
        m.wait(60)


def test_flash_refuses_a_disk_too_small(stick, tmp_path):
    media = provkit.copy_sparse(stick["stick"], str(tmp_path / "stick.img"))
    disk = blank(str(tmp_path / "small.img"), 400)
    before = sha(disk)
    r = sihw.boot_recovery(disk, mode="flash", extra_disks=[media], timeout=BOOT, log=str(tmp_path / "small.log"))
    assert (r.reason, r.result) == ("debug-exit", 24), r.log_text()
    assert "needs a disk of at least 580 MiB" in r.log_text()
    assert sha(disk) == before
    assert media_result(media)["result"] == 24


@provkit.AB_RECOVERY_MARK
def test_ab_recovery_from_media_provisions_a_blank_disk_that_boots_slot_a(tmp_path):
    """The A/B board's own recovery image (build/recovery-qemu-x86_64-ab: the
    A/B board.json, the shared sysimage-bootcount) on a `flash-media --board
    qemu-x86_64-ab` stick, booted by itself (its GRUB under OVMF, the stick
    first) in flash mode against a blank internal disk: it provisions the disk
    (the build in slot a, slot b an empty ext4, the A/B counters on the ESP,
    its own image on `recovery`) and powers off; the disk then boots alone
    (BIOS) through GRUB into slot a's normal OS."""
    tree = sihw.device_os(1, str(tmp_path / "os1"), extra_env=provkit.AB_OS_ENV)
    repo = provkit.publish(tmp_path / "repo", KEYS, tree, 1)
    stick = str(tmp_path / "stick.img")
    proc = provkit.tool("flash-media", "qemu-x86_64-ab", repo, stick, "--device", "qemu-x86_64", "--timeout", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    disk = blank(str(tmp_path / "ab.img"), 900)
    with sihw.Machine(stick, firmware="efi", net=False, log=str(tmp_path / "flash.log"),
                      extra_args=["-drive", f"file={disk},if=virtio,format=raw,cache=writeback"]) as m:
        m.expect(r"sysimage: booting the recovery from the media \(mode flash, qemu-x86_64-ab", BOOT)
        m.expect(r"flash job: board qemu-x86_64-ab, qemu-x86_64 build 1", BOOT)
        m.expect(r"target is blank", BOOT)
        assert m.expect(r"init: recovery result (\d+)", BOOT).group(1) == "0"
        assert m.wait(60) == 1  # isa-debug-exit: (0 << 1) | 1
        print(f"A/B flash from the stick (OVMF): powered off {m.seconds():.1f} s after QEMU started")
    res = media_result(stick)
    assert res["result"] == 0 and res["build"] == 1 and res["target"] == "/dev/vdb", res
    assert sihw.read_misc_env(disk) == {"recovery_request": "0"}
    problems, n = devloop.system_diff(disk, tree, 1, label="system_a")
    assert not problems, problems
    assert sihw.read_file(disk, "system_b", "/etc/sysimage/version.json") is None
    with open(os.path.join(sihw.AB_RECOVERY_DIR, "initrd.img"), "rb") as f:
        assert sihw.read_file(disk, "recovery", "/initrd.img") == f.read()
    with sihw.Machine(disk, firmware="bios", net=False, log=str(tmp_path / "device.log")) as m:
        provkit.expect_ab_slot_a(m, BOOT)
