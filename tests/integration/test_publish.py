"""`sysimage publish`: a static server tree with signed channels, indexes,
keyrings and pool files; versions only grow; channel edits re-sign; the
published fulls and deltas apply to the expected trees."""
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import sysimage, run

CHANNEL = "stable"
DEVICE = "qemu-x86_64"   # the model of make-dev-keys.sh's device-signing keyring


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def make_tree(root, n):
    """OS tree of version n: changes, removals, a type change, links."""
    os.makedirs(root)
    write(f"{root}/etc/hostname", "box\n")
    write(f"{root}/etc/os-release", f"NAME=test\nVERSION_ID={n}\n")
    write(f"{root}/usr/bin/tool", b"#!/bin/sh\necho tool %d\n" % n + b"x" * 4000 * n, 0o755)
    write(f"{root}/usr/lib/libfoo.so.1.0", b"\x7fELF" + bytes(range(256)) * 20)
    os.symlink("libfoo.so.1.0", f"{root}/usr/lib/libfoo.so.1")
    if n == 1:
        write(f"{root}/old-only", "gone in v2\n")
    if n < 3:
        write(f"{root}/var/thing", "a file before v3\n")
    else:
        write(f"{root}/var/thing/inside", "a directory in v3\n")
        write(f"{root}/new/dir/file", "new in v3\n", 0o600)
        os.link(f"{root}/new/dir/file", f"{root}/new/hard")
    os.chmod(f"{root}/etc", 0o755)


def make_device_tarball(path, n):
    """Device tarball (xz) with a system/ member."""
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as t:
        data = f"board=qemu rev={n}\n".encode()
        info = tarfile.TarInfo("system/etc/device.conf")
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))


def snapshot(root):
    """{relpath: (type, mode, content or link target)} of a tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
    return out


def publish(repo, keys, *args, check=True):
    return sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL, *args,
                    check=check)


def verify(keys, path):
    proc = sysimage("verify", "--keyring", os.path.join(keys, "image-signing.keyring"), path)
    assert proc.returncode == 0, f"{path}: {proc.stderr}"


def load(repo, rel):
    with open(os.path.join(repo, rel)) as f:
        text = f.read()
    doc = json.loads(text)
    # what the publisher writes: sorted keys, 4-space indent, trailing newline
    assert text == json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n" or \
        text == json.dumps(doc, indent=4, sort_keys=True) + "\n", rel
    return doc


def local(repo, server_path):
    assert server_path.startswith("/pool/") and ".." not in server_path
    return os.path.join(repo, server_path.lstrip("/"))


@pytest.fixture(scope="module")
def published(devkeys, tmp_path_factory):
    base = tmp_path_factory.mktemp("publish")
    repo = os.path.join(base, "repo")
    trees = {}
    for n in (1, 2, 3):
        trees[n] = os.path.join(base, f"tree{n}")
        make_tree(trees[n], n)
        dev = os.path.join(base, f"device{n}.tar.xz")
        make_device_tarball(dev, n)
        publish(repo, devkeys, "--device", DEVICE, "--version", str(n), "--tree", trees[n],
                "--device-tarball", dev, "--description", f"build {n}")
    return {"repo": repo, "keys": str(devkeys), "trees": trees, "base": str(base)}


def test_layout(published):
    repo = published["repo"]
    top = sorted(os.listdir(repo))
    assert [t for t in top if not t.startswith(".")] == \
        ["channels.json", "channels.json.sig", "keyrings", "pool", CHANNEL]
    assert sorted(os.listdir(os.path.join(repo, CHANNEL, DEVICE))) == \
        ["index.json", "index.json.sig"]
    kr = os.path.join(repo, "keyrings")
    assert sorted(os.listdir(kr)) == sorted([
        "blacklist.keyring", "blacklist.keyring.sig", "image-master.keyring",
        "image-master.keyring.sig", "image-signing.keyring", "image-signing.keyring.sig", DEVICE])
    assert sorted(os.listdir(os.path.join(kr, DEVICE))) == \
        ["device-signing.keyring", "device-signing.keyring.sig"]
    pool = [f for f in os.listdir(os.path.join(repo, "pool")) if not f.startswith(".")]
    data = [f for f in pool if not f.endswith(".sig")]
    assert data and all(f + ".sig" in pool for f in data)
    for f in data:
        assert f.endswith(".tar.zst") or f.endswith(".tar.xz"), f
        h = hashlib.sha256(open(os.path.join(repo, "pool", f), "rb").read()).hexdigest()
        assert f.rsplit(".tar.", 1)[0].endswith("-" + h), f
    # no leftovers of the atomic writes
    assert not [f for f in pool if ".tmp" in f]


def key_id(pub):
    """The key id (docs/design.md §3: hex SHA-256 of the DER SubjectPublicKeyInfo) of a PEM public key."""
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_signatures_verify(published):
    repo, keys = published["repo"], published["keys"]
    signer = key_id(os.path.join(keys, "image-signing.pub"))
    checked = []
    for dirpath, _, files in os.walk(repo):
        if "keyrings" in dirpath:
            continue
        for f in files:
            if f.endswith(".json") or (f.endswith((".tar.zst", ".tar.xz"))):
                path = os.path.join(dirpath, f)
                proc = sysimage("verify", "--keyring", os.path.join(keys, "image-signing.keyring"),
                                path)
                assert proc.returncode == 0, f"{path}: {proc.stderr}"
                # verified by the one image-signing key, and it says so
                assert f"verified {path}: key {signer} (image-signing)" in proc.stdout, proc.stdout
                checked.append(os.path.relpath(path, repo))
    pool = [f for f in os.listdir(os.path.join(repo, "pool"))
            if f.endswith((".tar.zst", ".tar.xz"))]
    # channels.json, the index and every pool file (3 builds: fulls, deltas, version and
    # device tarballs) were checked, none left out
    assert sorted(checked) == sorted(["channels.json", f"{CHANNEL}/{DEVICE}/index.json"] +
                                     [f"pool/{f}" for f in pool])
    assert len(pool) >= 3 * 3

    def refused(path, code, *words):
        proc = sysimage("verify", "--keyring", os.path.join(keys, "image-signing.keyring"), path)
        assert proc.returncode == code, (proc.returncode, proc.stderr)
        for w in words:
            assert w in proc.stderr, proc.stderr
        assert "verified" not in proc.stdout

    # a tampered file: SI_ERR_BAD_SIGNATURE (7), naming the file and the key that signed it
    with open(os.path.join(repo, "channels.json")) as f:
        text = f.read()
    bad = os.path.join(published["base"], "tampered.json")
    write(bad, text.replace(DEVICE, "other-device"))
    os.link(os.path.join(repo, "channels.json.sig"), bad + ".sig")
    refused(bad, 7, bad, "signature does not verify", signer[:16])
    # intact bytes signed by a key outside the image-signing keyring (image-master's)
    other = os.path.join(published["base"], "other-signer.json")
    write(other, text)
    sysimage("sign", "--key", os.path.join(keys, "image-master.key"), other, check=True)
    refused(other, 7, "no stanza is signed by a trusted key",
            key_id(os.path.join(keys, "image-master.pub"))[:16])
    # no signature at all: SI_ERR_MISSING_FILE (16), naming the .sig
    unsigned = os.path.join(published["base"], "unsigned.json")
    write(unsigned, text)
    refused(unsigned, 16, unsigned + ".sig")


def test_keyrings_chain(published):
    repo, keys = published["repo"], published["keys"]
    kr = os.path.join(repo, "keyrings")
    sysimage("keyring", "check", "--archive-master", os.path.join(keys, "archive-master.keyring"),
             "--device", DEVICE,
             os.path.join(kr, "image-master.keyring"), os.path.join(kr, "image-signing.keyring"),
             os.path.join(kr, "blacklist.keyring"),
             os.path.join(kr, DEVICE, "device-signing.keyring"), check=True)
    for name in ("image-master.keyring", "image-signing.keyring", "blacklist.keyring"):
        assert open(os.path.join(kr, name), "rb").read() == \
            open(os.path.join(keys, name), "rb").read()


def test_channels_json(published):
    ch = load(published["repo"], "channels.json")
    assert ch == {CHANNEL: {"devices": {DEVICE: {
        "index": f"/{CHANNEL}/{DEVICE}/index.json",
        "keyring": {"path": f"/keyrings/{DEVICE}/device-signing.keyring",
                    "signature": f"/keyrings/{DEVICE}/device-signing.keyring.sig"}}}}}


def test_index_json(published):
    repo = published["repo"]
    idx = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    assert "generated_at" in idx["global"]
    imgs = idx["images"]
    fulls = sorted(i["version"] for i in imgs if i["type"] == "full")
    assert fulls == [1, 2, 3]
    deltas = sorted((i["base"], i["version"]) for i in imgs if i["type"] == "delta")
    # deltas-back 2: v2 from v1; v3 from v2 and v1
    assert deltas == [(1, 2), (1, 3), (2, 3)]
    for img in imgs:
        assert img["description"] == f"build {img['version']}"
        assert "phased-percentage" not in img  # 100 is the default
        orders = [f["order"] for f in img["files"]]
        assert sorted(orders) == [0, 1, 2]
        for f in img["files"]:
            assert f["signature"] == f["path"] + ".sig"
            data = open(local(repo, f["path"]), "rb").read()
            assert len(data) == f["size"]
            assert hashlib.sha256(data).hexdigest() == f["checksum"]
            assert os.path.exists(local(repo, f["signature"]))
        names = {f["order"]: os.path.basename(f["path"]) for f in img["files"]}
        kind = "full" if img["type"] == "full" else "delta"
        assert names[0].startswith(f"{DEVICE}-rootfs-{kind}-")
        assert names[1].startswith(f"{DEVICE}-device-") and names[1].endswith(".tar.xz")
        assert names[2].startswith(f"version-{CHANNEL}-{img['version']}-")
    # full and deltas of one version share the version tarball
    v3 = {f["path"] for i in imgs if i["version"] == 3 for f in i["files"] if f["order"] == 2}
    assert len(v3) == 1


def test_refuses_overwrite_and_lower(published, tmp_path):
    repo, keys = published["repo"], published["keys"]
    before = open(os.path.join(repo, CHANNEL, DEVICE, "index.json"), "rb").read()
    for n, code in (("3", 27), ("2", 27), ("1", 27)):
        proc = publish(repo, keys, "--device", DEVICE, "--version", n, "--tree",
                       published["trees"][3], check=False)
        assert proc.returncode == code, proc.stderr
        assert "already published" in proc.stderr
    # a lower version never published (versions only grow)
    other = os.path.join(str(tmp_path), "repo")
    publish(other, keys, "--device", DEVICE, "--version", "10", "--tree", published["trees"][1],
            "--deltas-back", "0")
    proc = publish(other, keys, "--device", DEVICE, "--version", "5", "--tree",
                   published["trees"][2], check=False)
    assert proc.returncode == 14, proc.stderr
    assert "not greater" in proc.stderr
    assert open(os.path.join(repo, CHANNEL, DEVICE, "index.json"), "rb").read() == before
    # bad usage
    assert publish(repo, keys, "--device", DEVICE, "--version", "4", check=False).returncode == 1
    assert publish(repo, keys, "--device", "../x", "--version", "4", "--tree",
                   published["trees"][1], check=False).returncode == 1
    assert sysimage("publish", "--help").returncode == 0


def test_device_tarball_checked(published, tmp_path):
    keys = published["keys"]
    repo = os.path.join(str(tmp_path), "repo")
    bad = os.path.join(str(tmp_path), "bad.tar.xz")
    with tarfile.open(bad, "w:xz") as t:
        info = tarfile.TarInfo("etc/passwd")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    proc = publish(repo, keys, "--device", DEVICE, "--version", "1", "--tree",
                   published["trees"][1], "--device-tarball", bad, check=False)
    assert proc.returncode == 17, proc.stderr
    assert "etc/passwd" in proc.stderr
    assert not os.path.exists(os.path.join(repo, CHANNEL))


def test_alias_hidden_set_phase(published, tmp_path):
    import shutil
    repo = os.path.join(str(tmp_path), "repo")
    shutil.copytree(published["repo"], repo, symlinks=True)
    keys = published["keys"]
    old_sig = open(os.path.join(repo, "channels.json.sig")).read()
    sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily",
             "--alias", CHANNEL, check=True)
    sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily", "--hidden",
             check=True)
    ch = load(repo, "channels.json")
    assert ch["daily"]["alias"] == CHANNEL
    assert ch["daily"]["hidden"] is True
    assert ch["daily"]["devices"] == ch[CHANNEL]["devices"]
    assert "hidden" not in ch[CHANNEL]
    assert open(os.path.join(repo, "channels.json.sig")).read() != old_sig
    verify(keys, os.path.join(repo, "channels.json"))
    # an alias is not published to directly, and needs an existing target
    proc = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily",
                    "--device", DEVICE, "--version", "9", "--tree", published["trees"][3])
    assert proc.returncode == 1 and "alias" in proc.stderr
    proc = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "x",
                    "--alias", "nonexistent")
    assert proc.returncode == 28
    proc = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "nope", "--hidden")
    assert proc.returncode == 28
    sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily", "--visible",
             check=True)
    assert "hidden" not in load(repo, "channels.json")["daily"]

    # phasing of the newest version
    before = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    publish(repo, keys, "--device", DEVICE, "--set-phase", "30")
    idx = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    for img in idx["images"]:
        assert img.get("phased-percentage", 100) == (30 if img["version"] == 3 else 100)
    assert len(idx["images"]) == len(before["images"])
    verify(keys, os.path.join(repo, CHANNEL, DEVICE, "index.json"))
    assert publish(repo, keys, "--device", DEVICE, "--set-phase", "101",
                   check=False).returncode == 1
    assert publish(repo, keys, "--device", "nodev", "--set-phase", "5",
                   check=False).returncode == 28
    # a new version publishes at the given phase and the alias follows; the
    # temp dir of a crashed publish is cleaned up under the lock
    stale = os.path.join(repo, "pool", ".tmp-publish-crashed")
    write(os.path.join(stale, "rootfs-full"), "half written")
    pool = os.path.join(repo, "pool")
    old_pool = {f: open(os.path.join(pool, f), "rb").read()
                for f in os.listdir(pool) if not f.startswith(".")}
    publish(repo, keys, "--device", DEVICE, "--version", "4", "--tree", published["trees"][3],
            "--phased", "10", "--deltas-back", "1")
    idx = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    v4 = [i for i in idx["images"] if i["version"] == 4]
    assert sorted(i["type"] for i in v4) == ["delta", "full"]
    assert all(i["phased-percentage"] == 10 for i in v4)
    assert [i["base"] for i in v4 if i["type"] == "delta"] == [3]
    assert not os.path.exists(stale)
    # published pool files and their signatures never change (cacheable forever)
    for f, data in old_pool.items():
        assert open(os.path.join(pool, f), "rb").read() == data, f
    ch = load(repo, "channels.json")
    assert ch["daily"]["devices"] == ch[CHANNEL]["devices"]
    verify(keys, os.path.join(repo, "channels.json"))


def apply(target, files, fmt):
    args = ["apply", "--target", target] + (["--format"] if fmt else []) + files
    sysimage(*args, check=True)


def image_files(repo, img):
    return [local(repo, f["path"]) for f in sorted(img["files"], key=lambda f: f["order"])]


def expected_tree(published, n):
    snap = snapshot(published["trees"][n])
    snap["etc/sysimage/version.json"] = (
        "file", 0o644,
        json.dumps({"build": n, "channel": CHANNEL}, indent=4, sort_keys=True).encode() + b"\n")
    snap["etc/device.conf"] = ("file", 0o644, f"board=qemu rev={n}\n".encode())
    return snap


def applied(root):
    """Snapshot of an applied tree; etc/sysimage (made for the version file,
    its mode is the apply engine's choice) must be a directory."""
    snap = snapshot(root)
    assert snap.pop("etc/sysimage")[0] == "dir"
    return snap


def test_apply_full_and_delta(published, tmp_path):
    repo = published["repo"]
    idx = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    full = {i["version"]: i for i in idx["images"] if i["type"] == "full"}
    delta = {(i["base"], i["version"]): i for i in idx["images"] if i["type"] == "delta"}
    a = os.path.join(str(tmp_path), "a")
    b = os.path.join(str(tmp_path), "b")
    os.makedirs(a)
    os.makedirs(b)
    apply(a, image_files(repo, full[3]), True)
    apply(b, image_files(repo, full[2]), True)
    assert applied(b) == expected_tree(published, 2)
    apply(b, image_files(repo, delta[(2, 3)]), False)
    want = expected_tree(published, 3)
    assert applied(a) == want
    assert applied(b) == want
    # hard links survive
    for root in (a, b):
        assert os.stat(os.path.join(root, "new/hard")).st_ino == \
            os.stat(os.path.join(root, "new/dir/file")).st_ino
    v = json.load(open(os.path.join(b, "etc/sysimage/version.json")))
    assert v == {"build": 3, "channel": CHANNEL}


def test_served_by_static_server(published):
    """A plain static HTTP server serves the tree as-is: every path the
    documents name downloads with the size and sha256 of the index."""
    import functools
    import http.server
    import threading
    import urllib.request
    repo = published["repo"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=repo)
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"

    def get(path):
        assert path.startswith("/")
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.read()
    try:
        ch = json.loads(get("/channels.json"))
        assert get("/channels.json.sig").startswith(b"sysimage-signature 1")
        for c in ch.values():
            for d in c["devices"].values():
                idx = json.loads(get(d["index"]))
                get(d["index"] + ".sig")
                if "keyring" in d:
                    json.loads(get(d["keyring"]["path"]))
                    get(d["keyring"]["signature"])
                for img in idx["images"]:
                    for f in img["files"]:
                        data = get(f["path"])
                        assert len(data) == f["size"]
                        assert hashlib.sha256(data).hexdigest() == f["checksum"]
                        assert get(f["signature"]).startswith(b"sysimage-signature 1")
        for k in ("image-master", "image-signing", "blacklist"):
            get(f"/keyrings/{k}.keyring")
            get(f"/keyrings/{k}.keyring.sig")
    finally:
        srv.shutdown()
        srv.server_close()


def make_full_tarball(path, tree):
    """A full tarball (members system/...) of tree, xz-compressed."""
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(tree)):
            t.add(os.path.join(tree, name), arcname="system/" + name)


def test_tarball_xz_and_second_device(published, tmp_path):
    keys = published["keys"]
    repo = os.path.join(str(tmp_path), "repo")
    full = os.path.join(str(tmp_path), "full.tar.xz")
    make_full_tarball(full, published["trees"][1])
    publish(repo, keys, "--device", DEVICE, "--version", "1", "--tarball", full,
            "--compression", "xz")
    publish(repo, keys, "--device", DEVICE, "--version", "2", "--tree", published["trees"][2],
            "--compression", "xz", "--level", "1")
    # another model: no device keyring for it in KEYDIR (the dev keyring is for qemu-x86_64)
    publish(repo, keys, "--device", "other-board", "--version", "7", "--tree",
            published["trees"][3])
    ch = load(repo, "channels.json")
    assert sorted(ch[CHANNEL]["devices"]) == ["other-board", DEVICE]
    assert "keyring" not in ch[CHANNEL]["devices"]["other-board"]
    assert "keyring" in ch[CHANNEL]["devices"][DEVICE]
    assert not os.path.exists(os.path.join(repo, "keyrings", "other-board"))
    idx = load(repo, f"{CHANNEL}/{DEVICE}/index.json")
    assert sorted((i["type"], i["version"]) for i in idx["images"]) == \
        [("delta", 2), ("full", 1), ("full", 2)]
    for img in idx["images"]:
        for f in img["files"]:
            assert f["path"].endswith(".tar.xz"), f["path"]
            verify(keys, local(repo, f["path"]))
    other = load(repo, f"{CHANNEL}/other-board/index.json")
    assert [(i["type"], i["version"]) for i in other["images"]] == [("full", 7)]
    # the full built from the tarball applies to the tree it came from
    target = os.path.join(str(tmp_path), "t")
    os.makedirs(target)
    v1 = [i for i in idx["images"] if i["version"] == 1][0]
    apply(target, image_files(repo, v1), True)
    snap = applied(target)
    want = snapshot(published["trees"][1])
    want["etc/sysimage/version.json"] = (
        "file", 0o644, b'{\n    "build": 1,\n    "channel": "stable"\n}\n')
    assert snap == want


# ------------------------------------------------------------------ freshness (issue 10.2)
def index_times(repo, channel=CHANNEL, device=DEVICE):
    import calendar
    import time as _time
    idx = load(repo, f"{channel}/{device}/index.json")
    g = idx["global"]
    parse = lambda s: calendar.timegm(_time.strptime(s, "%a %b %d %H:%M:%S UTC %Y"))  # noqa: E731
    return idx, parse(g["generated_at"]), parse(g["expires"])


def test_index_expires_a_week_after_generation(published):
    idx, gen, exp = index_times(published["repo"])
    assert exp - gen == 7 * 86400


def test_expires_option_and_refresh(published, tmp_path):
    import shutil
    import time as _time
    repo = os.path.join(str(tmp_path), "repo")
    shutil.copytree(published["repo"], repo, symlinks=True)
    keys = published["keys"]
    before, gen0, exp0 = index_times(repo)
    _time.sleep(1.1)
    p = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL, "--refresh",
                 "--expires", "2d", check=True)
    assert f"{CHANNEL}/{DEVICE}: index re-signed" in p.stdout
    after, gen1, exp1 = index_times(repo)
    assert after["images"] == before["images"]          # unchanged content
    assert gen1 > gen0 and exp1 - gen1 == 2 * 86400
    verify(keys, os.path.join(repo, CHANNEL, DEVICE, "index.json"))
    # hours and seconds; a bad duration is a usage error
    sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL, "--device", DEVICE,
             "--refresh", "--expires", "36h", check=True)
    _, gen2, exp2 = index_times(repo)
    assert exp2 - gen2 == 36 * 3600
    for bad in ("0", "-1d", "3651d", "7w", ""):
        p = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL,
                     "--refresh", "--expires", bad)
        assert p.returncode == 1, (bad, p.stderr)
    # nothing to refresh / not with --version / an alias
    p = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL, "--device",
                 "other-board", "--refresh")
    assert p.returncode == 28 and "no device" in p.stderr
    p = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL, "--device",
                 DEVICE, "--version", "9", "--tree", published["trees"][1], "--refresh")
    assert p.returncode == 1
    sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily", "--alias", CHANNEL,
             check=True)
    p = sysimage("publish", "--repo", repo, "--keys", keys, "--channel", "daily", "--refresh")
    assert p.returncode == 1 and "alias" in p.stderr
    # a new version takes --expires too
    p = publish(repo, keys, "--device", DEVICE, "--version", "4", "--tree", published["trees"][3],
                "--deltas-back", "0", "--expires", "3d")
    _, gen4, exp4 = index_times(repo)
    assert exp4 - gen4 == 3 * 86400


# ------------------------------------------------------------------ layout (issue 12.2)
@pytest.mark.parametrize("member", ["partitions/misc.img", "partitions/system.img",
                                    "partitions/userdata.img", "partitions/cache.img",
                                    "partitions/.hidden.img", "removed"])
def test_device_tarball_refuses_what_the_device_refuses(published, tmp_path, member):
    keys = published["keys"]
    repo = os.path.join(str(tmp_path), "repo")
    bad = os.path.join(str(tmp_path), "bad.tar.xz")
    with tarfile.open(bad, "w:xz") as t:
        info = tarfile.TarInfo(member)
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    proc = publish(repo, keys, "--device", DEVICE, "--version", "1", "--tree",
                   published["trees"][1], "--device-tarball", bad, check=False)
    assert proc.returncode == 17, proc.stderr
    assert member.split("/")[-1] in proc.stderr
    assert not os.path.exists(os.path.join(repo, CHANNEL))


def test_device_tarball_raw_partition_allowed(published, tmp_path):
    keys = published["keys"]
    repo = os.path.join(str(tmp_path), "repo")
    ok = os.path.join(str(tmp_path), "ok.tar.xz")
    with tarfile.open(ok, "w:xz") as t:
        d = tarfile.TarInfo("partitions")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        info = tarfile.TarInfo("partitions/bios.img")
        info.size = 4
        t.addfile(info, io.BytesIO(b"boot"))
    publish(repo, keys, "--device", DEVICE, "--version", "1", "--tree", published["trees"][1],
            "--device-tarball", ok)
