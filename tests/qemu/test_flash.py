"""The recovery's flash mode under QEMU (issue 9): the recovery image booted
with sysimage.mode=flash, a blank virtio disk (the internal one, vda) and a
`sysimage flash-media` stick as a second virtio disk (vdb). A power cut in
the middle of writing the system, then a new flash from the same media
converges, the stick booting by itself (its own GRUB under OVMF, the stick as
the first disk); the device then boots alone (the stick removed) through GRUB
to the normal OS of the build. A disk too small for the board is refused
before any write (its bytes unchanged). The cut and the refusal boot the
recovery directly (-kernel/-initrd), the stick as the second disk.

Boots: three of the recovery (cut, flash from the stick, refusal) and one of
the device."""
import hashlib
import json
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
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KEYS, "archive-master.keyring")),
                       reason=f"{KEYS} has no key hierarchy: make keys"),
]


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


@pytest.fixture(scope="module")
def stick(tmp_path_factory):
    d = tmp_path_factory.mktemp("flash-media")
    tree = sihw.device_os(1, str(d / "os1"))
    repo = str(d / "repo")
    subprocess.run([os.path.join(BIN, "sysimage"), "publish", "--repo", repo, "--keys", KEYS, "--channel",
                    "stable", "--device", "qemu-x86_64", "--version", "1", "--tree", tree],
                   check=True, capture_output=True)
    out = str(d / "stick.img")
    proc = subprocess.run([os.path.join(BIN, "sysimage"), "flash-media", "--board", "qemu-x86_64", "--repo", repo,
                           "--channel", "stable", "--keys", KEYS,
                           "--archive-master", os.path.join(KEYS, "archive-master.keyring"),
                           "--recovery", sihw.RECOVERY_DIR, "--out", out], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"stick": out, "tree": tree}


def blank(path, mib=600):
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    return path


def media_result(stick):
    p = sihw.partitions(stick)["flash"]
    out = subprocess.run(["debugfs", "-R", "cat /flash/flash-result.json", f"{stick}?offset={p.start}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def copy(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


def test_flash_after_a_power_cut_converges_and_the_device_boots_alone(stick, tmp_path):
    media = copy(stick["stick"], str(tmp_path / "stick.img"))
    disk = blank(str(tmp_path / "internal.img"))
    # cut while the system partition is being written
    r = sihw.boot_recovery(disk, mode="flash", extra_disks=[media], timeout=BOOT, kill_on=r"flash: writing system",
                           kill_delay=1.0, log=str(tmp_path / "cut.log"))
    assert r.reason == "killed", r.log_text()
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
    media = copy(stick["stick"], str(tmp_path / "stick.img"))
    disk = blank(str(tmp_path / "small.img"), 400)
    before = sha(disk)
    r = sihw.boot_recovery(disk, mode="flash", extra_disks=[media], timeout=BOOT, log=str(tmp_path / "small.log"))
    assert (r.reason, r.result) == ("debug-exit", 24), r.log_text()
    assert "needs a disk of at least 580 MiB" in r.log_text()
    assert sha(disk) == before
    assert media_result(media)["result"] == 24
