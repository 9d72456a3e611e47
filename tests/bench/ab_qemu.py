"""bench_ab.py's QEMU part (not a bench_*.py of its own): the same published
update (sample OS build 1 -> 2, a delta) on an A/B device and on a
recovery-mode device, BIOS, one machine each. A/B: `sysimage-stub install`
while the device runs (guest wall time, the disk's sectors read and written
from /proc/diskstats), then the reboot until build 2 is up and marked good.
Recovery mode: `reboot-recovery` until build 2 is up (recovery boot, install,
normal boot: the device is down all along). Times are host seconds of the
serial lines."""
import os
import re
import sys
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "qemu"))
import devloop  # noqa: E402
import sihw  # noqa: E402
import test_ab  # noqa: E402

BOOT = 600


def diskstats(m):
    """(sectors read, sectors written) of the guest's vda"""
    rc, out = m.shell("grep ' vda ' /proc/diskstats")
    f = out.split()
    return int(f[5]), int(f[9])


def ab_device(work):
    srv = devloop.Server(work, sihw.KEYS)
    try:
        trees, disk = test_ab.device(__import__("pathlib").Path(work), srv)
        devloop.publish(srv, trees[2], 2)
        with sihw.Machine(disk, firmware="bios", log=os.path.join(work, "serial.log")) as m:
            m.expect(devloop.UP, BOOT)
            rc, out = m.shell("sysimage-stub stage", BOOT)
            assert rc == 0, out
            r0, w0 = diskstats(m)
            t0 = m.seconds()
            rc, out = m.shell("sysimage-stub install 2>&1", BOOT)
            t_install = m.seconds() - t0
            assert rc == 0, out
            r1, w1 = diskstats(m)
            copied = re.search(r"copied onto slot b: (\d+) of (\d+) MiB \(the used blocks\) in ([\d.]+) s", out)
            m.send("reboot\n")
            t0 = m.seconds()
            m.expect(r"slot b marked good \(build 2\)", BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            t_reboot = m.seconds() - t0
            m.send("poweroff\n")
            m.wait(60)
        return t_install, (r1 - r0) * 512, (w1 - w0) * 512, copied, t_reboot
    finally:
        srv.stop()


def recovery_device(work):
    srv = devloop.Server(work, sihw.KEYS)
    try:
        trees = {v: devloop.device_tree(srv, v, os.path.join(work, f"os{v}")) for v in (1, 2)}
        devloop.publish(srv, trees[1], 1)
        disk = os.path.join(work, "disk.img")
        devloop.blank_disk(disk)
        devloop.provision(disk, os.path.join(work, "factory"), srv)
        with sihw.Machine(disk, firmware="bios", log=os.path.join(work, "serial.log")) as m:
            m.expect(devloop.RECOVERY_DONE, BOOT)
            assert m.expect(devloop.UP, BOOT).group(1) == "1"
            devloop.publish(srv, trees[2], 2)
            rc, out = m.shell("sysimage-stub stage", BOOT)
            assert rc == 0, out
            m.send("sysimage-stub reboot-recovery\n")
            t0 = m.seconds()
            m.expect(r"booting Recovery \(mode update", BOOT)
            assert m.expect(devloop.RECOVERY_DONE, BOOT).group(1) == "0"
            t_recovery = m.seconds() - t0
            assert m.expect(devloop.UP, BOOT).group(1) == "2"
            t_up = m.seconds() - t0
            m.send("poweroff\n")
            m.wait(60)
        return t_recovery, t_up
    finally:
        srv.stop()


def main():
    d = tempfile.mkdtemp(prefix="bench-ab-qemu-")
    try:
        os.makedirs(os.path.join(d, "ab"))
        os.makedirs(os.path.join(d, "rec"))
        t_install, rd, wr, copied, t_reboot = ab_device(os.path.join(d, "ab"))
        t_recovery, t_up = recovery_device(os.path.join(d, "rec"))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("\nQEMU (TCG, BIOS), sample OS build 1 -> 2 (delta), 128 MiB slots")
    print(f"{'mode':10} {'install s':>10} {'read MB':>8} {'written MB':>11} {'reboot->up s':>13}  device down")
    note = f"; copy {copied.group(1)} of {copied.group(2)} MiB in {copied.group(3)} s" if copied else ""
    print(f"{'A/B':10} {t_install:10.1f} {rd / 1e6:8.1f} {wr / 1e6:11.1f} {t_reboot:13.1f}  "
          f"the reboot only (install while running{note})")
    print(f"{'recovery':10} {t_recovery:10.1f} {'':>8} {'':>11} {t_up:13.1f}  "
          f"all along (install = reboot into the recovery until its result)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
