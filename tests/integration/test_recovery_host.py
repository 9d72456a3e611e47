"""sysimage-recovery on the host: the real static binary against image files.

Partitions are image files (--partition LABEL=FILE; the recovery attaches
loop devices to mount them), the cache is a directory (--cache-dir). Needs
root (loop devices, mount). Payloads are built with the `sysimage` tool and
signed with the development hierarchy keys/dev, whose archive-master is the
one built into the recovery binary."""
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import io
import time

import pytest

from conftest import RECOVERY, ROOT, run, sysimage

KEYS = os.path.join(ROOT, "keys", "dev")
DEVICE = "qemu-x86_64"
ENV_SIG = b"# GRUB Environment Block\n"

# Result codes (lib/result.h).
OK, BAD_SIGNATURE, BLACKLISTED = 0, 7, 11
DOWNGRADE, COMMAND_FILE, MISSING_FILE = 14, 15, 16
UNSAFE_PATH, NOT_FOUND, TRIES_EXHAUSTED = 17, 28, 26
KEYRING_MODEL, CHECKSUM, SIZE, STALE_INDEX = 10, 12, 13, 25
NO_SPACE = 24

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mount"),
    pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="no loop devices"),
]


# ------------------------------------------------------------------ helpers

def grubenv_block(**kv):
    body = ENV_SIG + b"".join(f"{k}={v}\n".encode() for k, v in kv.items())
    return body + b"#" * (1024 - len(body))


def read_grubenv(path):
    with open(path, "rb") as f:
        block = f.read(1024)
    assert block.startswith(ENV_SIG), block[:64]
    env = {}
    for line in block[len(ENV_SIG):].split(b"\n"):
        if line and not line.startswith(b"#") and b"=" in line:
            k, v = line.decode().split("=", 1)
            env[k] = v
    return env


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_tree(root, files):
    """files: {relpath: bytes | ("link", target) | ("mode", bytes, mode)}"""
    for rel, spec in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(spec, tuple) and spec[0] == "link":
            os.symlink(spec[1], p)
        elif isinstance(spec, tuple):
            with open(p, "wb") as f:
                f.write(spec[1])
            os.chmod(p, spec[2])
        else:
            with open(p, "wb") as f:
                f.write(spec)
            os.chmod(p, 0o644)


def snapshot(root, skip=("lost+found",)):
    """{relpath: (type, mode, content-or-target)} of a tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if not (rel_dir == "." and d in skip)]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", 0, os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777, None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_mode & 0o7777, hashlib.sha256(f.read()).hexdigest())
    return out


class Mounted:
    """Read-only loop mount of an ext4 image for checking its contents."""

    def __init__(self, image, where):
        self.image, self.where = image, where

    def __enter__(self):
        os.makedirs(self.where, exist_ok=True)
        run(["mount", "-o", "ro,loop", self.image, self.where], check=True)
        return self.where

    def __exit__(self, *exc):
        run(["umount", self.where], check=True)


def version_tarball(path, build, channel="stable"):
    data = json.dumps({"build": build, "channel": channel}).encode()
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        for d in ("system", "system/etc", "system/etc/sysimage"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        ti = tarfile.TarInfo("system/etc/sysimage/version.json")
        ti.size, ti.mode = len(data), 0o644
        tar.addfile(ti, io.BytesIO(data))


def sign(path, key=os.path.join(KEYS, "image-signing.key")):
    sysimage("sign", "--key", key, path, check=True)


TREE1 = {
    "etc/hostname": b"device-v1\n",
    "bin/tool": ("mode", b"#!/bin/sh\necho v1\n", 0o755),
    "usr/share/doc/a.txt": b"old documentation\n" * 100,
    "usr/lib/libx.so.1": os.urandom(200_000),
    "lib": ("link", "usr/lib"),
}
TREE2 = {
    "etc/hostname": b"device-v2\n",
    "bin/tool": ("mode", b"#!/bin/sh\necho v2\n", 0o750),
    "usr/lib/libx.so.1": TREE1["usr/lib/libx.so.1"],
    "usr/lib/liby.so.2": os.urandom(100_000),
    "lib": ("link", "usr/lib"),
    "etc/new.conf": b"added in v2\n",
}


def first_member(path):
    """(name, bytes) of a tarball's first member."""
    if str(path).endswith(".zst"):
        data = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
        tf = tarfile.open(fileobj=io.BytesIO(data))
    else:
        tf = tarfile.open(path)
    with tf:
        m = tf.next()
        return m.name, tf.extractfile(m).read() if m.isreg() else None


def manifest_field(path):
    """The index's "manifest" field for an update file, or None (none in it)."""
    name, data = first_member(path)
    if name != "manifest":
        return None
    return {"checksum": hashlib.sha256(data).hexdigest(), "size": len(data)}


def file_entry(d, n, i, manifests):
    e = {"path": f"/pool/{n}", "signature": f"/pool/{n}.sig", "checksum": sha256_file(d / n),
         "size": os.path.getsize(d / n), "order": i}
    m = manifest_field(d / n) if manifests else None
    if m:
        e["manifest"] = m
    return e


def index_time(t):
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(t))


def make_index(d, images, name="index.json", generated=None, expires=7 * 86400,
               key=os.path.join(KEYS, "image-signing.key"), manifests=True, dated=True):
    """Write and sign d/name: images = [(type, version, base, [file names in d],
    extra fields)]. generated: epoch (default: a minute ago); expires: seconds
    after it, or None for no expiry. manifests: list each file's manifest
    (one-read install); False: the old index format (verify, then apply).
    dated=False leaves global.generated_at out (an index the recovery refuses)."""
    gen = int(time.time()) - 60 if generated is None else generated
    g = {"generated_at": index_time(gen)} if dated else {}
    if expires is not None:
        g["expires"] = index_time(gen + expires)
    imgs = []
    for typ, version, base, names, *extra in images:
        img = {"type": typ, "version": version, "description": f"{typ} {version}", "files": [
            file_entry(d, n, i, manifests) for i, n in enumerate(names)]}
        if base is not None:
            img["base"] = base
        if extra:
            img.update(extra[0])
        imgs.append(img)
    (d / name).write_text(json.dumps({"global": g, "images": imgs}, indent=4, sort_keys=True))
    sign(d / name, key=key)
    return d / name


STANDARD_IMAGES = [
    ("full", 1, None, ["full-1.tar.zst", "version-1.tar.xz"]),
    ("full", 2, None, ["full-2.tar.zst", "version-2.tar.xz"]),
    ("delta", 2, 1, ["delta-1-2.tar.zst", "version-2.tar.xz"]),
]


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """Signed full 1, full 2, delta 1->2, version tarballs 1 and 2, and the
    signed index.json that offers them."""
    d = tmp_path_factory.mktemp("payloads")
    t1, t2 = d / "tree1", d / "tree2"
    write_tree(t1, TREE1)
    write_tree(t2, TREE2)
    files = {
        "full-1.tar.zst": ["build", "full", "--from", t1, "--out", d / "full-1.tar.zst"],
        "full-2.tar.zst": ["build", "full", "--from", t2, "--out", d / "full-2.tar.zst"],
        "delta-1-2.tar.zst": ["build", "delta", "--from", t1, "--to", t2,
                              "--out", d / "delta-1-2.tar.zst"],
    }
    for name, cmd in files.items():
        sysimage(*cmd, check=True)
        sign(d / name)
    for n in (1, 2):
        version_tarball(d / f"version-{n}.tar.xz", n)
        sign(d / f"version-{n}.tar.xz")
    make_index(d, STANDARD_IMAGES)
    return {"dir": d, "tree1": t1, "tree2": t2}


KEYRING_LINES = [
    "load_keyring image-master.keyring image-master.keyring.sig",
    "load_keyring image-signing.keyring image-signing.keyring.sig",
]
INDEX_LINE = "index index.json index.json.sig"
PREAMBLE = KEYRING_LINES + [INDEX_LINE]


def full_commands(n, files=None):
    files = files or [f"full-{n}.tar.zst", f"version-{n}.tar.xz"]
    return PREAMBLE + [f"image full {n}", "format system", "mount system"] + [
        f"update {f} {f}.sig" for f in files] + ["unmount system"]


DELTA_COMMANDS = PREAMBLE + [
    "image delta 2 1",
    "mount system",
    "update delta-1-2.tar.zst delta-1-2.tar.zst.sig",
    "update version-2.tar.xz version-2.tar.xz.sig",
    "unmount system",
]


class Device:
    """Partition image files, a cache directory and the recovery's options."""

    def __init__(self, d, payloads):
        self.d = d
        self.payloads = payloads
        self.system = d / "system.img"
        self.userdata = d / "userdata.img"
        self.misc = d / "misc.img"
        self.cache = d / "cache"
        self.rdir = self.cache / "recovery"
        self.mnt = d / "mnt"
        self.rdir.mkdir(parents=True)
        with open(self.system, "wb") as f:
            f.truncate(48 << 20)
        with open(self.misc, "wb") as f:
            f.write(grubenv_block(recovery_request=1, recovery_tries=0))
            f.truncate(1 << 20)
        ud = d / "ud-tree"
        write_tree(ud, {"home/user/secret.txt": b"user data\n"})
        run(["mkfs.ext4", "-q", "-F", "-L", "userdata", "-d", ud, self.userdata, "16M"], check=True)

    def stage(self, commands, *names, keys=KEYS, extra_keyrings=(), index=None):
        """Stage the keyrings, the signed index (index: a path, default the
        payloads' one), the files `names` and their .sig, and the commands."""
        for kr in ("image-master", "image-signing") + tuple(extra_keyrings):
            for ext in (".keyring", ".keyring.sig"):
                shutil.copy(os.path.join(keys, kr + ext), self.rdir / (kr + ext))
        index = index or self.payloads["dir"] / "index.json"
        shutil.copy(index, self.rdir / "index.json")
        shutil.copy(str(index) + ".sig", self.rdir / "index.json.sig")
        for n in names:
            for ext in ("", ".sig"):
                shutil.copy(self.payloads["dir"] / (n + ext), self.rdir / (n + ext))
        (self.rdir / "sysimage_command").write_text("\n".join(commands) + "\n")


    def stage_full(self, version, files, index_name, with_standard=True):
        """Stage a full job of build `version` installing `files` (in the
        payloads' directory) under a new signed index `index_name` that lists
        it (after the standard images unless with_standard is false)."""
        images = (STANDARD_IMAGES if with_standard else []) + [("full", version, None, files)]
        idx = make_index(self.payloads["dir"], images, name=index_name)
        self.stage(full_commands(version, files), *files, index=idx)
    def run(self, *extra, mode="update"):
        cmd = [RECOVERY, "run", "--mode", mode, "--device", DEVICE,
               "--cache-dir", self.cache, "--mount-root", self.mnt,
               "--partition", f"system={self.system}",
               "--partition", f"userdata={self.userdata}",
               "--partition", f"misc={self.misc}", *extra]
        return run(cmd, timeout=300)

    def result(self):
        return json.loads((self.rdir / "last_result.json").read_text())

    def env(self):
        return read_grubenv(self.misc)

    def system_tree(self):
        with Mounted(self.system, self.d / "check") as m:
            return snapshot(m)

    def digests(self):
        return {p.name: sha256_file(p) for p in (self.system, self.userdata, self.misc)}

    def install(self, n):
        self.stage(full_commands(n), f"full-{n}.tar.zst", f"version-{n}.tar.xz")
        p = self.run()
        assert p.returncode == OK, p.stderr
        self.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=0)
                              + b"\0" * ((1 << 20) - 1024))


@pytest.fixture
def device(tmp_path, payloads):
    return Device(tmp_path, payloads)


def expected_tree(tree_dir, build):
    snap = snapshot(tree_dir)
    data = json.dumps({"build": build, "channel": "stable"}).encode()
    snap["etc/sysimage"] = ("d", 0o755, None)
    snap["etc/sysimage/version.json"] = ("f", 0o644, hashlib.sha256(data).hexdigest())
    return snap


# ------------------------------------------------------------------ tests

def test_help():
    p = run([RECOVERY, "--help"])
    assert p.returncode == 0
    for opt in ("--mode", "--dry-run", "--partition", "--cache-dir", "--mount-root", "debug-exit"):
        assert opt in p.stdout
    assert run([RECOVERY, "run", "--bogus"]).returncode == 1
    assert run([RECOVERY, "debug-exit", "300"]).returncode == 1


def test_full_into_blank_system_then_delta(device, payloads):
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr
    res = device.result()
    assert res["result"] == OK and res["result_name"] == "ok"
    assert res["from_version"] is None and res["to_version"] == 1
    assert res["mode"] == "update" and res["step"] == "done"
    assert "apply" in res["durations"] and "verify" in res["durations"]
    assert device.system_tree() == expected_tree(payloads["tree1"], 1)
    assert device.env()["recovery_request"] == "0"
    assert device.env()["recovery_tries"] == "0"
    left = sorted(os.listdir(device.rdir))
    assert left == ["last_log", "last_result.json"], left
    assert "%" in p.stderr  # progress on the console
    log = (device.rdir / "last_log").read_text()
    assert "verified full-1.tar.zst" in log

    device.misc.write_bytes(grubenv_block(recovery_request=1) + b"\0" * ((1 << 20) - 1024))
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr
    res = device.result()
    assert (res["from_version"], res["to_version"]) == (1, 2)
    assert device.system_tree() == expected_tree(payloads["tree2"], 2)
    assert os.path.exists(device.rdir / "last_log.1")  # log history kept


def test_same_build_again_is_a_repair(device, payloads):
    device.install(1)
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert (device.result()["from_version"], device.result()["to_version"]) == (1, 1)
    assert device.system_tree() == expected_tree(payloads["tree1"], 1)


def test_factory_reset(device, payloads):
    device.install(1)
    system_before = sha256_file(device.system)
    (device.cache / "junk").mkdir()
    (device.cache / "junk" / "f").write_text("x")
    (device.rdir / "stale.tar.zst").write_text("x")
    device.misc.write_bytes(grubenv_block(recovery_request="factory-reset")
                            + b"\0" * ((1 << 20) - 1024))
    p = device.run()  # --mode update: the boot control asks for the reset
    assert p.returncode == OK, p.stderr
    res = device.result()
    assert res["mode"] == "factory-reset" and res["result"] == OK
    assert sha256_file(device.system) == system_before
    assert sorted(os.listdir(device.cache)) == ["recovery"]
    assert sorted(os.listdir(device.rdir)) == ["last_log", "last_log.1", "last_result.json"]
    label = run(["e2label", device.userdata], check=True).stdout.strip()
    assert label == "userdata"
    with Mounted(device.userdata, device.d / "ud") as m:
        assert sorted(os.listdir(m)) == ["lost+found"]
    assert device.env()["recovery_request"] == "0"


def test_factory_reset_mode_option(device):
    p = device.run(mode="factory-reset")
    assert p.returncode == OK, p.stderr
    with Mounted(device.userdata, device.d / "ud") as m:
        assert not os.path.exists(os.path.join(m, "home"))


def blacklist_keyring(dest, listed="image-signing"):
    out = dest / "blacklist.keyring"
    sysimage("keyring", "create", "--type", "blacklist", "--sign-with",
             os.path.join(KEYS, "image-master.key"), out,
             os.path.join(KEYS, listed + ".pub"), check=True)
    return out


def key_id(pub):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def refusal_setups():
    def bad_signature(dev, devkeys):
        dev.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
        shutil.copy(dev.payloads["dir"] / "full-1.tar.zst", dev.rdir / "full-1.tar.zst")
        sign(dev.rdir / "full-1.tar.zst", key=os.path.join(devkeys, "image-signing.key"))
        return BAD_SIGNATURE, "full-1.tar.zst"

    def tampered(dev, devkeys):
        dev.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
        with open(dev.rdir / "full-1.tar.zst", "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        return CHECKSUM, "full-1.tar.zst"

    def wrong_chain(dev, devkeys):
        dev.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz", keys=devkeys)
        return BAD_SIGNATURE, "image-master"

    def blacklisted(dev, devkeys):
        dev.stage(full_commands(1)[:2] + ["load_keyring blacklist.keyring blacklist.keyring.sig"]
                  + full_commands(1)[2:], "full-1.tar.zst", "version-1.tar.xz")
        bl = blacklist_keyring(dev.d)
        shutil.copy(bl, dev.rdir / "blacklist.keyring")
        shutil.copy(str(bl) + ".sig", dev.rdir / "blacklist.keyring.sig")
        return BLACKLISTED, "blacklisted"

    def blacklisted_archive_master(dev, devkeys):
        """DESIGN §3: the blacklist applies to image-master too (its signer)."""
        dev.stage(full_commands(1)[:2] + ["load_keyring blacklist.keyring blacklist.keyring.sig"]
                  + full_commands(1)[2:], "full-1.tar.zst", "version-1.tar.xz")
        bl = blacklist_keyring(dev.d, listed="archive-master")
        shutil.copy(bl, dev.rdir / "blacklist.keyring")
        shutil.copy(str(bl) + ".sig", dev.rdir / "blacklist.keyring.sig")
        return BLACKLISTED, ("image-master.keyring: image-master keyring: signed by blacklisted "
                             "archive-master key " + key_id(os.path.join(KEYS, "archive-master.pub")))

    def malformed(dev, devkeys):
        dev.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
        lines = full_commands(1)
        lines.insert(4, "frobnicate system")
        (dev.rdir / "sysimage_command").write_text("\n".join(lines) + "\n")
        return COMMAND_FILE, "line 5"

    def bad_sequence(dev, devkeys):
        dev.stage(PREAMBLE + ["image full 1", "update full-1.tar.zst full-1.tar.zst.sig"],
                  "full-1.tar.zst")
        return COMMAND_FILE, "line 5"

    def missing(dev, devkeys):
        dev.stage(full_commands(1), "full-1.tar.zst")
        return MISSING_FILE, "version-1.tar.xz"

    def wrong_model(dev, devkeys):
        dev.stage(KEYRING_LINES + ["load_keyring device-signing.keyring device-signing.keyring.sig"]
                  + full_commands(1)[2:], "full-1.tar.zst", "version-1.tar.xz",
                  extra_keyrings=("device-signing",))
        return KEYRING_MODEL, "device-signing", ("--device", "another-board")

    return {f.__name__: f for f in (bad_signature, tampered, wrong_chain, blacklisted,
                                    blacklisted_archive_master, malformed, bad_sequence, missing,
                                    wrong_model)}


@pytest.mark.parametrize("case", sorted(refusal_setups()))
def test_refusals_leave_everything_intact(device, devkeys, case):
    device.install(1)
    setup = refusal_setups()[case](device, devkeys)
    code, needle = setup[0], setup[1]
    extra = setup[2] if len(setup) > 2 else ()
    before = device.digests()
    staged = sorted(os.listdir(device.rdir))
    p = device.run(*extra)
    assert p.returncode == code, p.stderr
    res = device.result()
    assert res["result"] == code
    assert needle in res["message"], res["message"]
    after = device.digests()
    assert after["system.img"] == before["system.img"]
    assert after["userdata.img"] == before["userdata.img"]
    # Refused before touching anything: boot the intact system.
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}
    assert set(staged) <= set(os.listdir(device.rdir))  # staged files kept for diagnosis


def test_downgrade_refused(device):
    device.install(2)
    before = device.digests()
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == DOWNGRADE, p.stderr
    res = device.result()
    assert (res["from_version"], res["to_version"]) == (2, 1)
    assert "older than the installed build 2" in res["message"]
    assert device.digests()["system.img"] == before["system.img"]


def test_update_without_version_record_refused_when_system_has_one(device):
    device.install(1)
    before = device.digests()
    device.stage_full(3, ["full-2.tar.zst"], "index-noversion.json")
    p = device.run()
    assert p.returncode == DOWNGRADE, p.stderr
    assert "no version record" in device.result()["message"]
    assert device.digests()["system.img"] == before["system.img"]


def test_no_command_file(device):
    p = device.run()
    assert p.returncode == NOT_FOUND
    assert device.env()["recovery_request"] == "0"


def test_dry_run_changes_nothing(device):
    device.install(1)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    before = device.digests()
    cache_before = snapshot(device.cache)
    p = device.run("--dry-run")
    assert p.returncode == OK, p.stderr
    out = json.loads(p.stdout)
    assert out["dry_run"] is True and out["to_version"] == 2 and out["from_version"] == 1
    assert device.digests() == before
    assert snapshot(device.cache) == cache_before

    # A refusal in a dry run: reported, still nothing changed.
    with open(device.rdir / "delta-1-2.tar.zst", "ab") as f:
        f.write(b"x")
    cache_before = snapshot(device.cache)
    p = device.run("--dry-run")
    assert p.returncode == SIZE
    assert "the index says" in p.stderr
    assert device.digests() == before
    assert snapshot(device.cache) == cache_before


def one_member_payload(path, member, data):
    """A signed xz tarball at path holding one member with data."""
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo(member)
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    sign(path)
    return path


def hostile_payload(d):
    return one_member_payload(d / "evil.tar.xz", "system/../../escaped", b"bad")


def test_failures_are_counted_then_stopped(device):
    """A job that fails after `format system` (issue 15): the system is marked
    incomplete before the format; after 3 failures the job is stopped, the
    request and the mark stay (never the half system booted), /init is told to
    stay, and a later run reports the stop again without trying."""
    d = device.payloads["dir"]
    hostile_payload(d)
    version_tarball(d / "version-3.tar.xz", 3)
    sign(d / "version-3.tar.xz")
    device.stage_full(3, ["evil.tar.xz", "version-3.tar.xz"], "index-evil.json",
                      with_standard=False)
    stay = device.d / "stay"
    for attempt in (1, 2):
        p = device.run("--stay-file", stay)
        assert p.returncode == UNSAFE_PATH, p.stderr
        assert device.result()["result"] == UNSAFE_PATH
        # Kept requested so that the next boot tries again.
        assert device.env() == {"recovery_request": "1", "recovery_tries": str(attempt),
                                "system_incomplete": "1"}
        assert not stay.exists()
    p = device.run("--stay-file", stay)
    assert p.returncode == TRIES_EXHAUSTED, p.stderr
    res = device.result()
    assert res["result_name"] == "tries-exhausted" and "unsafe-path" in res["message"]
    assert device.env() == {"recovery_request": "1", "recovery_tries": "3",
                            "system_incomplete": "1"}
    text = stay.read_text()
    assert "incomplete install" in text and "unsafe-path" in text and "full image" in text
    assert "STOPPED: " in p.stderr
    state = json.loads((device.rdir / "recovery_state.json").read_text())
    assert state["stopped"] and state["stop_result"] == TRIES_EXHAUSTED
    # Power cycled: the stopped job is reported again, nothing is touched.
    before = device.digests()
    stay.unlink()
    p = device.run("--stay-file", stay)
    assert p.returncode == TRIES_EXHAUSTED, p.stderr
    assert "not tried again" in p.stderr
    assert device.digests() == before
    assert device.result()["message"] == res["message"]
    assert stay.exists()


def write_state(dev, **kw):
    job = hashlib.sha256((dev.rdir / "sysimage_command").read_bytes()).hexdigest()
    st = {"format": 1, "job": job, "open": True, "touched": True, "completed": 0,
          "best": {"step": 0, "bytes": 0}}
    st.update(kw)
    (dev.rdir / "recovery_state.json").write_text(json.dumps(st))


def test_died_at_the_same_point_three_times_is_given_up(device):
    """Two deaths at step 3, bytes 1 MiB + 500 recorded; the third (the open
    attempt died in the same 1 MiB window) stops the job. The system is not
    marked incomplete (nothing written to it yet): given up, request cleared."""
    device.install(1)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    point = {"step": 3, "bytes": (1 << 20) + 500, "verify": False}
    write_state(device, best={"step": 3, "bytes": (1 << 20) + 700}, completed=3,
                at=dict(point, bytes=(1 << 20) + 700), death=point, deaths=2)
    p = device.run()
    assert p.returncode == TRIES_EXHAUSTED, p.stderr
    assert "same point" in device.result()["message"]
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}


def test_died_at_the_same_point_on_an_incomplete_system_is_stopped(device):
    device.install(1)
    before = device.digests()["system.img"]
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    point = {"step": 3, "bytes": 5, "verify": False}
    write_state(device, best={"step": 3, "bytes": 9}, completed=3, at=point, death=point,
                deaths=2)
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=0,
                                          system_incomplete=1) + b"\0" * ((1 << 20) - 1024))
    p = device.run()
    assert p.returncode == TRIES_EXHAUSTED, p.stderr
    assert device.env() == {"recovery_request": "1", "recovery_tries": "0",
                            "system_incomplete": "1"}
    assert device.digests()["system.img"] == before


def test_issue_15_cuts_before_the_furthest_point_do_not_count(device, payloads):
    """The previous attempt died earlier than an earlier one got (best is
    further than its point), with recovery_tries=2 from failures: it resumes
    and finishes; the mark set for it is removed at the end."""
    device.install(1)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    write_state(device, completed=3, best={"step": 3, "bytes": 26083328},
                at={"step": 3, "bytes": 4096, "verify": False},
                death={"step": 3, "bytes": 9 << 20, "verify": False}, deaths=1)
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=2,
                                          system_incomplete=1) + b"\0" * ((1 << 20) - 1024))
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "1 time in a row" in p.stderr
    assert device.system_tree() == expected_tree(payloads["tree2"], 2)
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}


def test_incomplete_system_takes_only_a_full_image(device, payloads):
    """Another job's partial install is on the system: a delta is refused
    (and the device stays in the recovery); a full image repairs it."""
    device.install(1)
    before = device.digests()["system.img"]
    device.misc.write_bytes(grubenv_block(recovery_request=1, system_incomplete=1)
                            + b"\0" * ((1 << 20) - 1024))
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = device.run()
    assert p.returncode == COMMAND_FILE, p.stderr
    assert "incomplete install" in device.result()["message"]
    assert device.digests()["system.img"] == before
    assert device.env()["recovery_request"] == "1"
    assert device.env()["system_incomplete"] == "1"
    # A factory reset does not make the system complete.
    p = device.run(mode="factory-reset")
    assert p.returncode == OK, p.stderr
    assert device.env()["recovery_request"] == "1"
    assert device.env()["system_incomplete"] == "1"
    # Nothing staged now (the reset wiped the cache): stays, request kept.
    p = device.run()
    assert p.returncode == NOT_FOUND, p.stderr
    assert device.env()["system_incomplete"] == "1"
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}
    assert device.system_tree() == expected_tree(payloads["tree1"], 1)


def test_interrupted_with_progress_resumes_without_formatting(device, payloads):
    device.install(1)
    # Something only an unformatted system keeps.
    run(["debugfs", "-w", "-R", "write /dev/null marker", device.system], check=True)
    # The previous attempt formatted, mounted, installed full 1 and version 1,
    # and was cut during the delta after getting further than it started.
    cmds = full_commands(1)[:-1] + ["update delta-1-2.tar.zst delta-1-2.tar.zst.sig",
                                    "update version-2.tar.xz version-2.tar.xz.sig",
                                    "unmount system"]
    cmds.insert(cmds.index("image full 1") + 1, "image delta 2 1")
    device.stage(cmds, "full-1.tar.zst", "version-1.tar.xz", "delta-1-2.tar.zst",
                 "version-2.tar.xz")
    done = cmds.index("update version-1.tar.xz version-1.tar.xz.sig") + 1
    write_state(device, completed=done, best={"step": done, "bytes": 4096},
                at={"step": done, "bytes": 4096, "verify": False})
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=2)
                            + b"\0" * ((1 << 20) - 1024))
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "resuming" in p.stderr
    tree = device.system_tree()
    assert "marker" in tree  # format system was not run again
    del tree["marker"]
    assert tree == expected_tree(payloads["tree2"], 2)
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}


def test_cut_while_finishing_only_finishes(device):
    device.install(1)
    before = device.digests()["system.img"]
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    n = len(DELTA_COMMANDS)
    write_state(device, completed=n, best={"step": n, "bytes": 0})
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "finishing" in p.stderr
    # Nothing applied again, nothing verified: the files are only cleaned up.
    assert device.digests()["system.img"] == before
    assert sorted(os.listdir(device.rdir)) == ["last_log", "last_log.1", "last_result.json"]
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}


def test_dry_run_after_touch_changes_nothing(device):
    device.install(1)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    write_state(device, completed=3, best={"step": 3, "bytes": 9})
    before = device.digests()
    cache_before = snapshot(device.cache)
    p = device.run("--dry-run")
    assert p.returncode == OK, p.stderr
    assert device.digests() == before
    assert snapshot(device.cache) == cache_before


def test_cache_partition_mounted_by_the_recovery(device, payloads):
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    cache_img = device.d / "cache.img"
    run(["mkfs.ext4", "-q", "-F", "-L", "cache", "-d", device.cache, cache_img, "32M"], check=True)
    p = run([RECOVERY, "run", "--device", DEVICE, "--mount-root", device.mnt,
             "--partition", f"cache={cache_img}", "--partition", f"system={device.system}",
             "--partition", f"misc={device.misc}"], timeout=300)
    assert p.returncode == OK, p.stderr
    assert not os.path.ismount(device.mnt / "cache")  # unmounted again
    with Mounted(cache_img, device.d / "c") as m:
        res = json.loads(open(os.path.join(m, "recovery", "last_result.json")).read())
        assert res["to_version"] == 1
        assert sorted(os.listdir(os.path.join(m, "recovery"))) == ["last_log", "last_result.json"]
    assert device.system_tree() == expected_tree(payloads["tree1"], 1)


# ------------------------------------------------------------------ issue 10: the job is bound
# to the signed index. Each test fails on the recovery before it (which ran
# any signed file it was given) and passes now.

def assert_refused_intact(device, before, p, code, needle):
    assert p.returncode == code, p.stderr
    res = device.result()
    assert res["result"] == code and needle in res["message"], res["message"]
    assert device.digests()["system.img"] == before["system.img"]
    assert device.digests()["userdata.img"] == before["userdata.img"]
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}


def test_forged_attempt_state_cannot_switch_off_the_downgrade_check(device):
    """Finding 1: a planted recovery_state.json with "from_version": null."""
    device.install(2)
    before = device.digests()
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    for touched in (False, True):
        write_state(device, touched=touched, open=False, from_version=None)
        p = device.run()
        assert p.returncode == DOWNGRADE, p.stderr
        assert "older than the installed build 2" in device.result()["message"]
        assert device.digests()["system.img"] == before["system.img"]


def test_mix_and_match_refused(device, payloads):
    """Finding 2: the full of build 1 with the version tarball of build 2."""
    device.install(1)
    before = device.digests()
    # named in the command file: not the files of the chosen image
    device.stage(full_commands(1, ["full-1.tar.zst", "version-2.tar.xz"]), "full-1.tar.zst",
                 "version-2.tar.xz")
    p = device.run()
    assert_refused_intact(device, before, p, COMMAND_FILE, "expected update version-1.tar.xz")
    # staged under the right name: its bytes are not the index's
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    shutil.copy(payloads["dir"] / "version-2.tar.xz", device.rdir / "version-1.tar.xz")
    shutil.copy(payloads["dir"] / "version-2.tar.xz.sig", device.rdir / "version-1.tar.xz.sig")
    p = device.run()
    assert p.returncode in (CHECKSUM, SIZE), p.stderr
    assert "the index" in device.result()["message"]
    assert device.digests()["system.img"] == before["system.img"]
    # a version tarball the index does not offer with the image (another channel's)
    d = payloads["dir"]
    version_tarball(d / "version-9.tar.xz", 9, channel="other")
    sign(d / "version-9.tar.xz")
    device.stage(full_commands(1, ["full-1.tar.zst", "version-9.tar.xz"]), "full-1.tar.zst",
                 "version-9.tar.xz")
    p = device.run()
    assert p.returncode == COMMAND_FILE, p.stderr
    assert device.digests()["system.img"] == before["system.img"]


def test_version_record_comes_from_the_last_image(device, payloads):
    """Finding 2: an image whose version tarball names another build."""
    device.install(1)
    before = device.digests()
    device.stage_full(5, ["full-2.tar.zst", "version-2.tar.xz"], "index-liar.json")
    p = device.run()
    assert_refused_intact(device, before, p, DOWNGRADE, "the version record says build 2")


def test_format_only_refused(device):
    """Finding 3: `format system` alone wiped the system and reported ok."""
    device.install(1)
    before = device.digests()
    (device.rdir / "sysimage_command").write_text("format system\n")
    p = device.run()
    assert_refused_intact(device, before, p, COMMAND_FILE, "without an update")
    (device.rdir / "sysimage_command").write_text("\n".join(PREAMBLE + ["image full 1",
                                                                       "format system"]) + "\n")
    p = device.run()
    assert_refused_intact(device, before, p, COMMAND_FILE, "installs nothing")


def test_delta_path_must_start_at_the_installed_build(device):
    device.install(2)
    before = device.digests()
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = device.run()
    assert_refused_intact(device, before, p, DOWNGRADE, "starts from build 1")


def test_index_signature_and_binding_checked(device, devkeys, payloads):
    device.install(1)
    before = device.digests()
    # index signed by a key outside the chain
    d = payloads["dir"]
    idx = make_index(d, STANDARD_IMAGES, name="index-foreign.json",
                     key=os.path.join(devkeys, "image-signing.key"))
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz", index=idx)
    p = device.run()
    assert_refused_intact(device, before, p, BAD_SIGNATURE, "index.json")
    # an image the index does not offer
    device.stage(PREAMBLE + ["image delta 3 1", "mount system",
                             "update delta-1-2.tar.zst delta-1-2.tar.zst.sig"],
                 "delta-1-2.tar.zst")
    p = device.run()
    assert_refused_intact(device, before, p, NOT_FOUND, "not offered by the signed index")


def versioned_keyring(dest, src, version, sign_key, **extra):
    """A copy of keyring src with "version" (and extra fields), signed."""
    kr = json.loads(open(src).read())
    kr["version"] = version
    kr.update(extra)
    dest.write_text(json.dumps(kr, indent=4, sort_keys=True) + "\n")
    sign(dest, key=sign_key)
    return dest


def test_revocation_cannot_be_stripped(device, devkeys, payloads, tmp_path):
    """Finding 4: once a blacklist and a keyring version were verified, a job
    without the blacklist, with an older keyring, or with a blacklist other
    than the one image-signing names is refused."""
    im_key = os.path.join(KEYS, "image-master.key")
    # a blacklist revoking a key outside this hierarchy, and image-signing v2
    bl = tmp_path / "blacklist.keyring"
    sysimage("keyring", "create", "--type", "blacklist", "--sign-with", im_key, bl,
             os.path.join(devkeys, "image-signing.pub"), check=True)
    bl_v = versioned_keyring(tmp_path / "bl.keyring", bl, 1, im_key)
    is_v2 = versioned_keyring(tmp_path / "is.keyring", os.path.join(KEYS, "image-signing.keyring"),
                              2, im_key, blacklist=sha256_file(bl_v))
    lines = KEYRING_LINES + ["load_keyring blacklist.keyring blacklist.keyring.sig"]
    cmds = lines + full_commands(1)[2:]
    device.stage(cmds, "full-1.tar.zst", "version-1.tar.xz")
    for src, name in ((bl_v, "blacklist.keyring"), (is_v2, "image-signing.keyring")):
        shutil.copy(src, device.rdir / name)
        shutil.copy(str(src) + ".sig", device.rdir / (name + ".sig"))
    p = device.run()
    assert p.returncode == OK, p.stderr

    before = device.digests()
    # the mirror stops serving the blacklist (and the image-signing v2 with it)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = device.run()
    assert_refused_intact(device, before, p, BLACKLISTED, "image-signing.keyring: version 0 is "
                                                         "older than version 2")
    # image-signing v2 but no blacklist
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    shutil.copy(is_v2, device.rdir / "image-signing.keyring")
    shutil.copy(str(is_v2) + ".sig", device.rdir / "image-signing.keyring.sig")
    p = device.run()
    assert_refused_intact(device, before, p, BLACKLISTED, "blacklist")
    # image-signing v2 with an older, different blacklist
    device.stage(lines + DELTA_COMMANDS[2:], "delta-1-2.tar.zst", "version-2.tar.xz")
    shutil.copy(is_v2, device.rdir / "image-signing.keyring")
    shutil.copy(str(is_v2) + ".sig", device.rdir / "image-signing.keyring.sig")
    shutil.copy(bl, device.rdir / "blacklist.keyring")
    shutil.copy(str(bl) + ".sig", device.rdir / "blacklist.keyring.sig")
    p = device.run()
    assert_refused_intact(device, before, p, BLACKLISTED, "blacklist.keyring: version 0")
    # the same keyrings again: accepted
    device.stage(lines + DELTA_COMMANDS[2:], "delta-1-2.tar.zst", "version-2.tar.xz")
    for src, name in ((bl_v, "blacklist.keyring"), (is_v2, "image-signing.keyring")):
        shutil.copy(src, device.rdir / name)
        shutil.copy(str(src) + ".sig", device.rdir / (name + ".sig"))
    p = device.run()
    assert p.returncode == OK, p.stderr


def test_stale_index_refused(device, payloads):
    """Finding 5: an index 600 days old, one without an expiry, and one older
    than the index the device last installed from."""
    device.install(1)
    before = device.digests()
    d = payloads["dir"]
    old = make_index(d, STANDARD_IMAGES, name="index-old.json",
                     generated=int(time.time()) - 600 * 86400)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz", index=old)
    p = device.run()
    assert_refused_intact(device, before, p, STALE_INDEX, "expired")
    noexp = make_index(d, STANDARD_IMAGES, name="index-noexp.json", expires=None)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz", index=noexp)
    p = device.run()
    assert_refused_intact(device, before, p, STALE_INDEX, "expires")
    # replay: older than the one build 1 was installed from, still unexpired
    replay = make_index(d, STANDARD_IMAGES, name="index-replay.json",
                        generated=int(time.time()) - 3600)
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz", index=replay)
    p = device.run()
    assert_refused_intact(device, before, p, STALE_INDEX, "older than the index")


def test_undated_index_refused_on_first_install(device, payloads):
    """An index without global.generated_at is refused even when the trust
    record is empty (blank system), as the stub refuses it."""
    undated = make_index(payloads["dir"], STANDARD_IMAGES, name="index-undated.json", dated=False)
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz", index=undated)
    before = device.digests()
    p = device.run()
    assert_refused_intact(device, before, p, STALE_INDEX, "global.generated_at missing")
    # the same job under a dated index installs
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=0)
                            + b"\0" * ((1 << 20) - 1024))
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr


def test_fifos_and_symlinks_never_hang_or_redirect(device, payloads):
    """Finding 6: a FIFO as the command file, the state file or a staged file."""
    device.install(1)
    before = device.digests()
    os.mkfifo(device.rdir / "sysimage_command")
    p = device.run()  # run() has a timeout: a hang fails the test
    assert_refused_intact(device, before, p, COMMAND_FILE, "not a regular file")
    os.unlink(device.rdir / "sysimage_command")

    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    os.unlink(device.rdir / "version-2.tar.xz")
    os.mkfifo(device.rdir / "version-2.tar.xz")
    p = device.run()
    assert_refused_intact(device, before, p, MISSING_FILE, "not a regular file")
    os.unlink(device.rdir / "version-2.tar.xz")
    os.symlink(payloads["dir"] / "version-2.tar.xz", device.rdir / "version-2.tar.xz")
    p = device.run()
    assert_refused_intact(device, before, p, MISSING_FILE, "not a regular file")
    os.unlink(device.rdir / "version-2.tar.xz")

    # a FIFO as the state file: ignored (with a warning), the job runs
    device.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    os.mkfifo(device.rdir / "recovery_state.json")
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "not a regular file" in p.stderr
    # ... and for a factory reset
    if os.path.exists(device.rdir / "recovery_state.json"):
        os.unlink(device.rdir / "recovery_state.json")
    os.mkfifo(device.rdir / "recovery_state.json")
    p = device.run(mode="factory-reset")
    assert p.returncode == OK, p.stderr


def test_full_boot_control_block_is_cleared(device):
    """Finding 8: 32 variables in the block; the request is still cleared."""
    junk = {f"v{i}": "x" for i in range(30)}
    device.misc.write_bytes(grubenv_block(**junk, recovery_request=1, recovery_tries=0)
                            + b"\0" * ((1 << 20) - 1024))
    p = device.run()  # no command file: nothing to do, clear the request
    assert p.returncode == NOT_FOUND, p.stderr
    assert device.env()["recovery_request"] == "0"
    junk = {f"v{i}": "y" * 40 for i in range(22)}  # full by bytes, not by count
    device.misc.write_bytes(grubenv_block(**junk, recovery_request=1)
                            + b"\0" * ((1 << 20) - 1024))
    p = device.run()
    assert device.env()["recovery_request"] == "0"


def test_raw_misc_image_refused_before_anything_is_touched(device, payloads, tmp_path):
    """Issue 12.2: partitions/misc.img failed only after format system ran."""
    device.install(1)
    before = device.digests()
    d = payloads["dir"]
    one_member_payload(d / "misc-img.tar.xz", "partitions/misc.img", b"evil")
    version_tarball(d / "version-4.tar.xz", 4)
    sign(d / "version-4.tar.xz")
    device.stage_full(4, ["misc-img.tar.xz", "version-4.tar.xz"], "index-misc.json",
                      with_standard=False)
    p = device.run()
    assert_refused_intact(device, before, p, UNSAFE_PATH, "partitions/misc.img")


@pytest.fixture
def boot_loop(tmp_path):
    """A 1 MiB block device (loop) standing for a raw `boot` partition."""
    backing = tmp_path / "boot.img"
    backing.write_bytes(b"\xa5" * (1 << 20))
    p = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"no loop device: {p.stderr.strip()}")
    dev = p.stdout.strip()
    yield dev, backing
    subprocess.run(["losetup", "-d", dev])


def test_raw_image_larger_than_its_partition_refused_before_anything_is_touched(
        device, payloads, boot_loop):
    """A partitions/boot.img larger than the boot partition is refused while
    the job is verified: system, userdata and the partition stay as they were
    (it used to fail with ENOSPC halfway through writing the partition)."""
    dev, backing = boot_loop
    device.install(1)
    before = device.digests()
    boot_before = sha256_file(backing)
    d = payloads["dir"]
    one_member_payload(d / "big-boot.tar.xz", "partitions/boot.img", b"\x5a" * ((1 << 20) + 512))
    version_tarball(d / "version-4.tar.xz", 4)
    sign(d / "version-4.tar.xz")
    device.stage_full(4, ["big-boot.tar.xz", "version-4.tar.xz"], "index-bigboot.json",
                      with_standard=False)
    p = device.run("--partition", f"boot={dev}")
    assert_refused_intact(device, before, p, NO_SPACE, "partitions/boot.img is 1049088 bytes")
    assert sha256_file(backing) == boot_before
    # the same image at the partition's size is written
    one_member_payload(d / "fit-boot.tar.xz", "partitions/boot.img", b"\x5a" * (1 << 20))
    device.stage_full(4, ["fit-boot.tar.xz", "version-4.tar.xz"], "index-fitboot.json",
                      with_standard=False)
    p = device.run("--partition", f"boot={dev}")
    assert p.returncode == OK, p.stderr
    assert backing.read_bytes() == b"\x5a" * (1 << 20)


def test_apply_refuses_a_raw_image_larger_than_its_block_device(payloads, boot_loop, tmp_path):
    """`sysimage apply --partition` checks the size before it writes."""
    dev, backing = boot_loop
    boot_before = sha256_file(backing)
    big = one_member_payload(tmp_path / "big.tar.xz", "partitions/boot.img", b"\x5a" * (2 << 20))
    target = tmp_path / "t"
    target.mkdir()
    p = sysimage("apply", "--quiet", "--target", str(target), "--partition", f"boot={dev}", str(big))
    assert p.returncode == NO_SPACE, p.stderr
    assert "2097152 bytes, partition 'boot'" in p.stderr
    assert sha256_file(backing) == boot_before


def test_unusable_cache_on_an_incomplete_system_stops(device):
    """Issue 15: with no usable cache the attempts are counted in the boot
    control only; at the limit an intact system is booted (request cleared),
    an incomplete one never: the request stays and /init is told to stay."""
    bad = device.d / "not-a-dir"
    bad.write_text("x")
    stay = device.d / "stay"
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=2,
                                          system_incomplete=1) + b"\0" * ((1 << 20) - 1024))
    p = run([RECOVERY, "run", "--device", DEVICE, "--cache-dir", bad, "--mount-root", device.mnt,
             "--partition", f"misc={device.misc}", "--stay-file", stay], timeout=60)
    assert p.returncode != OK, p.stderr
    assert device.env() == {"recovery_request": "1", "recovery_tries": "3", "system_incomplete": "1"}
    assert "cache partition cannot be used" in stay.read_text()
    device.misc.write_bytes(grubenv_block(recovery_request=1, recovery_tries=2)
                            + b"\0" * ((1 << 20) - 1024))
    stay.unlink()
    p = run([RECOVERY, "run", "--device", DEVICE, "--cache-dir", bad, "--mount-root", device.mnt,
             "--partition", f"misc={device.misc}", "--stay-file", stay], timeout=60)
    assert p.returncode != OK, p.stderr
    assert device.env() == {"recovery_request": "0", "recovery_tries": "0"}
    assert not stay.exists()


# ------------------------------------------------------------------ one read (issue 11)

def tar_bytes(path):
    return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout


def write_zst(data, path):
    subprocess.run(["zstd", "-q", "-f", "-o", str(path)], input=data, check=True)


def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def end_of_members(data):
    last = tar_members(data)[-1]
    return last.offset_data + (last.size + 511) // 512 * 512


def tampered_member(data):
    """etc/hostname's content changed, same size."""
    m = next(m for m in tar_members(data) if m.name == "system/etc/hostname")
    b = bytearray(data)
    b[m.offset_data] ^= 0x20
    return bytes(b)


def extra_member(data):
    buf = io.BytesIO()
    tf = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    ti = tarfile.TarInfo("system/etc/planted")
    ti.size = 3
    tf.addfile(ti, io.BytesIO(b"x=1"))
    extra = buf.getvalue()          # the member, before close() adds the end blocks
    end = end_of_members(data)
    return data[:end] + extra + b"\0" * 1024


def missing_member(data):
    last = tar_members(data)[-1]
    return data[:last.offset] + b"\0" * 1024


def stage_variant(device, tmp_path, name, data, manifest_from=None):
    """Stage full 1 with full-1.tar.zst replaced by data (signed, listed in an
    index with its size and sha256; its manifest field from manifest_from,
    default its own)."""
    d = tmp_path / ("v-" + name)
    d.mkdir()
    write_zst(data, d / "full-1.tar.zst")
    shutil.copy(device.payloads["dir"] / "version-1.tar.xz", d / "version-1.tar.xz")
    for n in ("full-1.tar.zst", "version-1.tar.xz"):
        sign(d / n)
    idx = make_index(d, [("full", 1, None, ["full-1.tar.zst", "version-1.tar.xz"])])
    if manifest_from is not None:
        doc = json.loads(idx.read_text())
        doc["images"][0]["files"][0]["manifest"] = manifest_field(manifest_from)
        idx.write_text(json.dumps(doc, indent=4, sort_keys=True))
        sign(idx)
    device.stage(full_commands(1), index=idx)
    for n in ("full-1.tar.zst", "version-1.tar.xz"):
        for ext in ("", ".sig"):
            shutil.copy(d / (n + ext), device.rdir / (n + ext))


def test_one_read_install_checks_members_while_applying(device):
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "full-1.tar.zst: manifest of" in p.stderr and "checked while applied" in p.stderr
    assert "version-1.tar.xz: manifest of" not in p.stderr   # none in it: verified first
    # the full right after `format system`: no temporary names; the version file after it: yes
    assert "update 1/2: onto the system formatted just before" in p.stderr, p.stderr
    assert "update 2/2: onto the system formatted" not in p.stderr
    assert device.system_tree() == expected_tree(device.payloads["tree1"], 1)


@pytest.mark.parametrize("variant,code,needle", [
    ("tampered", CHECKSUM, "member 4 (system/etc/hostname) differs from the manifest"),
    ("extra", 4, "system/etc/planted is not in the manifest"),
    ("missing", 4, "the tarball ends after"),
])
def test_one_read_refuses_members_not_as_the_manifest_says(device, tmp_path, variant, code,
                                                           needle):
    data = tar_bytes(device.payloads["dir"] / "full-1.tar.zst")
    bad = {"tampered": tampered_member, "extra": extra_member, "missing": missing_member}[variant]
    stage_variant(device, tmp_path, variant, bad(data))
    p = device.run()
    assert p.returncode == code, p.stderr
    assert needle in device.result()["message"], device.result()["message"]
    # a full install onto a fresh system: still marked incomplete
    assert device.env().get("system_incomplete") == "1"
    if variant == "tampered":
        with Mounted(device.system, device.d / "check") as m:
            assert not os.path.exists(os.path.join(m, "etc/hostname"))


def test_one_read_refuses_a_manifest_other_than_the_index_says(device, tmp_path):
    before = device.digests()
    data = tar_bytes(device.payloads["dir"] / "full-1.tar.zst")
    stage_variant(device, tmp_path, "othermanifest", data,
                  manifest_from=device.payloads["dir"] / "full-2.tar.zst")
    p = device.run()
    assert_refused_intact(device, before, p, CHECKSUM, "the manifest differs from the index's")


def test_old_index_without_manifests_verifies_then_applies(device, tmp_path):
    d = device.payloads["dir"]
    idx = make_index(d, STANDARD_IMAGES, name="index-old.json", manifests=False)
    device.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz", index=idx)
    p = device.run()
    assert p.returncode == OK, p.stderr
    assert "checked while applied" not in p.stderr
    assert device.system_tree() == expected_tree(device.payloads["tree1"], 1)
