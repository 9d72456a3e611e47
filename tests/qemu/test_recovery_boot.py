"""The real recovery image under QEMU (TCG, 96 MiB): a full install into a
blank system partition, a power cut in the middle of applying that converges
on the next boot, and a factory reset. Payloads are built and signed with the
`sysimage` tool and keys/dev, whose archive-master is built into the image."""
import fcntl
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest

import artifacts
import sihw

ROOT = sihw.ROOT
KEYS = os.path.join(ROOT, "keys", "dev")
SYSIMAGE = os.path.join(ROOT, "build", "bin", "sysimage")
SIZES = {"esp": 33, "recovery": 40, "system": 96, "cache": 64, "userdata": 16}

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU")


def tool(*args):
    p = subprocess.run([SYSIMAGE, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"sysimage {args}: {p.stderr}"


def version_tarball(path, build):
    data = json.dumps({"build": build, "channel": "stable"}).encode()
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        for d in ("system", "system/etc", "system/etc/sysimage"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        ti = tarfile.TarInfo("system/etc/sysimage/version.json")
        ti.size, ti.mode = len(data), 0o644
        tar.addfile(ti, io.BytesIO(data))


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
    tool("build", "full", "--from", tree, "--out", d / "full-1.tar.zst")
    version_tarball(d / "version-1.tar.xz", 1)
    files = {}
    for n in ("full-1.tar.zst", "version-1.tar.xz"):
        tool("sign", "--key", os.path.join(KEYS, "image-signing.key"), d / n)
        files[n] = d / n
        files[n + ".sig"] = d / (n + ".sig")
    for kr in ("image-master", "image-signing"):
        for ext in (".keyring", ".keyring.sig"):
            files[kr + ext] = pathlib.Path(KEYS, kr + ext)  # a path, not text
    # the signed index the job is bound to (docs/formats.md)
    index = artifacts.make_index([("full", 1, None, {n: d / n for n in ("full-1.tar.zst",
                                                                       "version-1.tar.xz")})],
                                 keys=KEYS, out=str(d / "index.json"))
    files["index.json"] = pathlib.Path(index)
    files["index.json.sig"] = pathlib.Path(index + ".sig")
    command = artifacts.command(["full-1.tar.zst", "version-1.tar.xz"], images=[("full", 1, None)])
    return {"files": files, "command": command, "tree": tree}


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
    log = r.log_text()
    assert "update 1/2: 50%" in log or "update 1/2: 5" in log  # progress on the console
    check_installed(disk, tmp_path, image)


def test_power_cut_while_applying_converges(tmp_path, image):
    disk = staged_disk(tmp_path, image)
    r = sihw.boot_recovery(disk, log=str(tmp_path / "cut.log"), timeout=300,
                           kill_on=r".*update 1/2: [3-6][05]% .*")
    assert r.reason == "killed", r.log_text()
    env = sihw.read_misc_env(disk)
    assert env["recovery_request"] == "1"  # a power cut comes back to the recovery
    r = sihw.boot_recovery(disk, log=str(tmp_path / "again.log"), timeout=300)
    assert (r.reason, r.result) == ("debug-exit", 0), r.log_text()
    log = r.log_text()
    assert "interrupted after progress" in log, log
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
