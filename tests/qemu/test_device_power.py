"""Power cuts on the real device (issue 8 items 5 and 6), with a disk whose
write cache is volatile (volatile_disk.py): a cut kills QEMU and drops the
writes the guest had not flushed, all of them or a seeded random share of
their sectors (a disk that wrote back part of its cache in any order). Then
the device must still converge: the recovery finishes the install, GRUB
boots what the boot control says.

SI_CUT_SEED picks the seed of the sector lottery (default 8); it is printed."""
import os
import random
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import devloop  # noqa: E402
import sihw  # noqa: E402
from test_device import BOOT, KEYS, pytestmark  # noqa: E402,F401
from volatile_disk import VolatileDisk  # noqa: E402

SEED = int(os.environ.get("SI_CUT_SEED", "8"))


def session(disk, log, firmware="bios", net=False):
    vd = VolatileDisk(disk)
    m = sihw.Machine(disk, firmware=firmware, log=log, net=net, drive=vd.qemu_drive())
    return vd, m


def cut(vd, m, keep, seed):
    m.kill()
    kept, lost = vd.close(keep_cache=False, keep=keep, seed=seed)
    print(f"power cut at {m.seconds():.1f} s: {lost} unflushed sectors lost, {kept} reached the disk")
    return kept, lost


def cut_at_next_flush(vd, m, keep, seed, timeout=BOOT):
    """Arm the disk: the power fails when the guest next asks for a flush."""
    vd.arm_cut(keep, seed)
    if not vd.dead.wait(timeout):
        m.kill()
        vd.close(keep_cache=False)
        raise AssertionError("the guest never flushed")
    m.kill()
    vd.close(keep_cache=False)
    kept, lost = vd.cut_result
    print(f"power cut at a flush, {m.seconds():.1f} s: {lost} unflushed sectors lost, {kept} reached the disk")
    return kept, lost


def test_lossy_cuts_during_install_converge(tmp_path):
    """Build 1 staged on a blank disk; the recovery's install is cut three
    times losing the disk's write cache (mid-apply, all lost; later, half of
    it kept; right after the recovery reports its result, all lost); the
    fourth boot finishes, build 1 comes up and the system partition equals
    the build."""
    rng = random.Random(SEED)
    print(f"SI_CUT_SEED={SEED}")
    srv = devloop.Server(str(tmp_path), KEYS)
    try:
        tree = devloop.device_tree(srv, 1, str(tmp_path / "os1"))
        devloop.publish(srv, tree, 1)
        disk = str(tmp_path / "disk.img")
        devloop.blank_disk(disk)
        devloop.provision(disk, str(tmp_path / "factory"), srv)
    finally:
        srv.stop()
    losses = 0
    # (line, share of the cache kept): after the line, the power fails at the
    # guest's next flush, losing everything written since the previous one
    # (or keeping a random half of its sectors)
    plan = [(r"update 1/2: [3-5]\d%", 0.0), (r"update 1/2: [7-9]\d%", 0.5), (devloop.RECOVERY_DONE, 0.0)]
    for i, (line, keep) in enumerate(plan, 1):
        vd, m = session(disk, str(tmp_path / f"cut{i}.log"))
        try:
            m.expect(line, BOOT)
        except Exception:
            m.kill()
            vd.close(keep_cache=False)
            raise
        kept, lost = cut_at_next_flush(vd, m, keep, rng.randrange(1 << 30))
        losses += lost
    assert losses > 0, "no cut lost anything: the test did not test a volatile cache"
    vd, m = session(disk, str(tmp_path / "final.log"))
    try:
        m.expect(devloop.UP, BOOT * 2)
        rc, out = m.shell("sysimage-stub status --json")
        assert rc == 0 and '"build": 1' in out, out
        m.send("poweroff\n")
        m.wait(60)
    finally:
        m.kill()
        vd.close(keep_cache=True)
    problems, n = devloop.system_diff(disk, tree, 1)
    assert not problems, problems
    assert sihw.read_misc_env(disk)["recovery_request"] == "0"


def test_cuts_while_the_boot_control_is_written(tmp_path):
    """The OS rewrites misc in a loop (the stub alternates `factory-reset`
    and `reboot-recovery` requests, each an in-place write + fsync), and the
    power fails at one of its fsyncs with half of the unflushed sectors
    kept: misc is a valid block holding one of the two requests, and GRUB
    acts on it. Then GRUB's own write (the counters on the ESP, save_env just
    before it loads the recovery; firmware does not flush) is lost or torn
    the same way: GRUB comes up again and the recovery runs and finishes."""
    rng = random.Random(SEED)
    print(f"SI_CUT_SEED={SEED}")
    trees = tmp_path / "os"
    tree = sihw.device_os(1, str(trees))
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, trees={"system": tree}, recovery_image=sihw.RECOVERY_DIR)
    vd, m = session(disk, str(tmp_path / "writer.log"))
    try:
        m.expect(devloop.UP, BOOT)
        m.send("while :; do sysimage-stub factory-reset --no-reboot >/dev/null; "
               "sysimage-stub reboot-recovery --no-reboot >/dev/null; echo -n .; done\n")
        m.expect(r"\.{5}", 120)  # the writer loop is running
        time.sleep(rng.uniform(0.0, 2.0))
    except Exception:
        m.kill()
        vd.close(keep_cache=False)
        raise
    # the power fails at the writer's next fsync: its last writes (misc, or
    # the command file) are in the disk's cache, half of their sectors land
    cut_at_next_flush(vd, m, 0.5, rng.randrange(1 << 30))
    env = sihw.read_misc_env(disk)
    assert env is not None, "misc is not a GRUB environment block after the cut"
    assert env.get("recovery_request") in ("1", "factory-reset"), env
    block = tmp_path / "misc.env"
    with open(disk, "rb") as f:
        f.seek(sihw.partitions(disk)["misc"].start)
        block.write_bytes(f.read(1024))
    listed = sihw._run(["grub-editenv", str(block), "list"]).stdout.decode()
    assert f"recovery_request={env['recovery_request']}" in listed, listed
    mode = "factory-reset" if env["recovery_request"] == "factory-reset" else "update"
    # GRUB reads it: the recovery in the requested mode; cut while GRUB saves its counters
    vd, m = session(disk, str(tmp_path / "grub-cut.log"))
    try:
        m.expect(rf"booting Recovery \(mode {mode}, recovery_boots=1\)", BOOT)
    except Exception:
        m.kill()
        vd.close(keep_cache=False)
        raise
    # firmware and GRUB never flush: GRUB's save_env is still in the disk's
    # cache when the kernel first flushes, and the power fails right then
    cut_at_next_flush(vd, m, 0.5, rng.randrange(1 << 30))
    vd, m = session(disk, str(tmp_path / "after.log"))
    try:
        m.expect(rf"booting Recovery \(mode {mode}, recovery_boots=[12]\)", BOOT)
        assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
        m.expect(devloop.UP, BOOT)
        m.send("poweroff\n")
        m.wait(60)
    finally:
        m.kill()
        vd.close(keep_cache=True)
    assert sihw.read_misc_env(disk)["recovery_request"] == "0"
    assert sihw.read_bootcount(disk)["recovery_boots"] == "0"
