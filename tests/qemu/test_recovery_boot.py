"""The real recovery image under QEMU (TCG, 96 MiB): a full install into a
blank system partition, a power cut in the middle of applying that converges
on the next boot, and a factory reset. Payloads are built and signed with the
`sysimage` tool and keys/dev, whose archive-master is built into the image."""
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

import artifacts
import sihw

ROOT = sihw.ROOT
KEYS = os.path.join(ROOT, "keys", "dev")
SYSIMAGE = os.path.join(ROOT, "build", "bin", "sysimage")
DEVICE = "qemu-x86_64"   # the model of keys/dev's device-signing keyring
SIZES = {"esp": 33, "recovery": 40, "system": 96, "cache": 64, "userdata": 16}

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU")


def tool(*args):
    p = subprocess.run([SYSIMAGE, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"sysimage {args}: {p.stderr}"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    # One build at a time when several test processes start together.
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", ".recovery-image.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-C", ROOT, "-s", "all", "recovery-image"], check=True)
    d = tmp_path_factory.mktemp("payload")
    tree = d / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("qemu-device\n")
    (tree / "usr" / "lib").mkdir(parents=True)
    # Incompressible, so that applying takes long enough under TCG to cut it.
    (tree / "usr" / "lib" / "big.bin").write_bytes(os.urandom(24 << 20))
    # Build 1 as the product publishes it: `sysimage publish` writes the full
    # image and the version tarball (lib/version's writer), signed with keys/dev.
    repo = d / "repo"
    tool("publish", "--repo", repo, "--keys", KEYS, "--channel", "stable", "--device", DEVICE,
         "--version", 1, "--tree", tree)
    index = json.loads((repo / "stable" / DEVICE / "index.json").read_text())
    (img,) = index["images"]
    assert (img["type"], img["version"]) == ("full", 1), img
    files, updates = {}, []
    for f in sorted(img["files"], key=lambda f: f["order"]):
        name = os.path.basename(f["path"])
        files[name] = repo / f["path"].lstrip("/")
        files[name + ".sig"] = repo / f["signature"].lstrip("/")
        updates.append(f"update {name} {name}.sig")
    # the rootfs first, then the version tarball
    assert len(updates) == 2 and "-rootfs-full-1-" in updates[0], updates
    assert updates[1].startswith("update version-stable-1-"), updates
    for kr in ("image-master", "image-signing"):
        for ext in (".keyring", ".keyring.sig"):
            files[kr + ext] = pathlib.Path(KEYS, kr + ext)  # a path, not text
    # the signed index the job is bound to (docs/formats.md): the publisher's own
    files["index.json"] = repo / "stable" / DEVICE / "index.json"
    files["index.json.sig"] = repo / "stable" / DEVICE / "index.json.sig"
    command = artifacts.command([u.split()[1] for u in updates], images=[("full", 1, None)])
    return {"files": files, "command": command, "tree": tree,
            "update_bytes": sum(os.path.getsize(files[u.split()[1]]) for u in updates)}


def staged_disk(tmp_path, image):
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, sizes=SIZES, recovery_image=sihw.RECOVERY_DIR,
                    env={"recovery_request": "1"})
    sihw.stage_recovery(disk, image["files"], image["command"])
    return disk


def check_installed(disk, tmp_path, image):
    last = sihw.read_last_result(disk)
    assert last["result"] == 0 and last["to_version"] == 1, last
    assert sihw.read_file(disk, "system", "/etc/hostname") == b"qemu-device\n"
    big = sihw.read_file(disk, "system", "/usr/lib/big.bin")
    assert big == (image["tree"] / "usr" / "lib" / "big.bin").read_bytes()
    assert json.loads(sihw.read_file(disk, "system", "/etc/sysimage/version.json"))["build"] == 1
    assert sihw.read_misc_env(disk) == {"recovery_request": "0", "recovery_tries": "0"}
    left = [n for n in sihw.list_dir(disk, "cache", "/recovery") if n not in (".", "..")]
    assert left and all(n.startswith("last_") for n in left), left  # consumed files removed


def test_full_install(tmp_path, image):
    disk = staged_disk(tmp_path, image)
    r = sihw.boot_recovery(disk, log=str(tmp_path / "serial.log"), timeout=300)
    assert (r.reason, r.result) == ("debug-exit", 0), r.log_text()
    check_progress(r.log_text(), image["update_bytes"])
    check_installed(disk, tmp_path, image)


PROGRESS = re.compile(r"update ([12])/2: (\d+)% \((\d+\.\d) of (\d+\.\d) MiB(, about \S+ left)?\)")


def check_progress(log, total_bytes):
    """Progress on the console, by bytes over both update files: the same total
    (the staged files' sizes), percentages that climb in small steps from the
    start of the big file to 100 %, and bytes that agree with them."""
    lines = PROGRESS.findall(log)
    assert lines, log
    total = f"{total_bytes / 1048576:.1f}"
    assert {t for _, _, _, t, _ in lines} == {total}, (total, lines)
    pcts = [int(p) for _, p, _, _, _ in lines]
    assert pcts == sorted(set(pcts)), pcts                 # climbs, never repeats
    assert pcts[0] <= 10 and pcts[-1] == 100, pcts
    assert max(b - a for a, b in zip(pcts, pcts[1:])) <= 10, pcts   # a line every few %
    assert len([1 for f, *_ in lines if f == "1"]) >= 8, lines     # the 24 MiB file shows progress
    for _, p, done, _, _ in lines:
        # the percentage is of the bytes read so far (rounded down, MiB to 0.1)
        assert -0.5 <= float(done) * 1048576 / total_bytes * 100 - int(p) < 1.5, (p, done)
    assert lines[-1][2] == total                           # all bytes at 100 %
    # the estimate of the time left (", about 12s left") starts after 2 s of
    # applying: this apply may be quicker, the regex above checks its form


def test_power_cut_while_applying_converges(tmp_path, image):
    disk = staged_disk(tmp_path, image)
    r = sihw.boot_recovery(disk, log=str(tmp_path / "cut.log"), timeout=300,
                           kill_on=r".*update 1/2: [3-6][0-9]% .*")
    assert r.reason == "killed", r.log_text()
    env = sihw.read_misc_env(disk)
    assert env["recovery_request"] == "1"  # a power cut comes back to the recovery
    r = sihw.boot_recovery(disk, log=str(tmp_path / "again.log"), timeout=300)
    assert (r.reason, r.result) == ("debug-exit", 0), r.log_text()
    log = r.log_text()
    # the cut is a death at one point, counted once, never a failure (docs/recovery.md)
    assert re.search(r"the previous attempt died at step \d+ \(working\), \d+ bytes: 1 time in a row", log), log
    assert "formatting system" not in log  # done before the cut, not redone
    check_installed(disk, tmp_path, image)


def test_factory_reset(tmp_path, image):
    disk = str(tmp_path / "disk.img")
    ud = tmp_path / "ud"
    (ud / "home").mkdir(parents=True)
    (ud / "home" / "secret").write_text("user data\n")
    sihw.build_disk(disk, sizes=SIZES, recovery_image=sihw.RECOVERY_DIR,
                    trees={"userdata": str(ud)}, env={"recovery_request": "0"})
    sihw.write_files(disk, "cache", "/recovery", {"junk.tar.zst": b"junk"})
    r = sihw.boot_recovery(disk, mode="factory-reset", log=str(tmp_path / "fr.log"), timeout=300)
    assert (r.reason, r.result) == ("debug-exit", 0), r.log_text()
    assert sihw.read_file(disk, "userdata", "/home/secret") is None
    assert "junk.tar.zst" not in sihw.list_dir(disk, "cache", "/recovery")
    assert sihw.read_last_result(disk)["mode"] == "factory-reset"
    assert sihw.read_misc_env(disk)["recovery_request"] == "0"
