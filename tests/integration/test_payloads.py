"""Full and delta payloads: build with `sysimage build`, apply with
`sysimage apply`, compare trees (type, mode, owner, size, content, xattrs,
link target, device number, hardlink grouping of every path)."""
import io
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile

import pytest

from conftest import ROOT, sysimage
import treecmp

# security.capability: VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW
CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
LONG = "l" * 200
NONUTF8 = b"caf\xe9-\xff\xfe"


def w(path, data=b"", mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def make_v1(root):
    os.makedirs(root)
    r = lambda *p: os.path.join(root, *p)
    w(r("etc", "passwd"), b"root:x:0:0:root:/root:/bin/sh\n")
    w(r("etc", "perm"), b"permission only\n", 0o644)
    w(r("etc", "owner"), b"owner only\n", uid=1000, gid=1000)
    w(r("etc", "mtime-only"), b"same bytes\n")
    w(r("etc", "xattr"), b"xattr file\n")
    os.setxattr(r("etc", "xattr"), "user.color", b"blue")
    w(r("etc", "empty"), b"")
    w(r("usr", "bin", "ping"), b"\x7fELF" + bytes(range(256)) * 40, 0o4755)
    os.setxattr(r("usr", "bin", "ping"), "security.capability", CAP_NET_RAW)
    w(r("usr", "bin", "a"), b"hardlinked content\n" * 100, 0o755)
    os.link(r("usr", "bin", "a"), r("usr", "bin", "b"))
    os.link(r("usr", "bin", "a"), r("usr", "bin", "c"))
    w(r("usr", "lib", "big"), os.urandom(300 * 1024))
    with open(r("usr", "lib", "sparse"), "wb") as f:
        f.truncate(8 << 20)
        f.seek(1 << 20)
        f.write(b"data in the middle" * 1000)
    os.symlink("../bin/ping", r("usr", "lib", "rel-link"))
    os.symlink("/usr/bin/ping", r("etc", "abs-link"))
    os.symlink("/nonexistent/target", r("etc", "dangling"))
    os.makedirs(r("dev"))
    os.mknod(r("dev", "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(r("dev", "sda"), 0o660 | stat.S_IFBLK, os.makedev(8, 0))
    os.mkfifo(r("dev", "fifo"), 0o600)
    os.makedirs(r("var", "empty"))
    os.chmod(r("var", "empty"), 0o700)
    os.chown(r("var", "empty"), 1234, 5678)
    os.setxattr(r("var"), "user.dir", b"on a directory")
    deep = r("deep", *(["d" * 50] * 6))
    w(os.path.join(deep, LONG), b"long path and name\n")
    w(os.path.join(os.fsencode(root), b"names", NONUTF8), b"not utf-8\n")
    w(r("tc", "file2dir"), b"file first\n")
    w(r("tc", "dir2link", "inside"), b"inside a dir\n")
    os.symlink("somewhere", r("tc", "link2file"))
    w(r("tc", "dir2file", "x"), b"x\n")
    w(r("gone", "sub", "file"), b"to be deleted\n")
    w(r("etc", "deleted"), b"bye\n")


def make_v2(v1, root):
    subprocess.run(["cp", "-a", "--sparse=always", v1, root], check=True)
    r = lambda *p: os.path.join(root, *p)
    st = os.stat(r("etc", "passwd"))
    w(r("etc", "passwd"), b"root:x:0:0:root:/root:/bin/bash\n")
    os.utime(r("etc", "passwd"), ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(r("etc", "perm"), 0o600)
    os.chown(r("etc", "owner"), 1001, 1000)
    os.utime(r("etc", "mtime-only"), (1_000_000_000, 1_000_000_000))
    os.setxattr(r("etc", "xattr"), "user.color", b"red")
    os.setxattr(r("etc", "empty"), "user.new", b"")
    os.unlink(r("etc", "deleted"))
    shutil.rmtree(r("gone"))
    w(r("new", "dir", "file"), b"added\n", 0o640, 7, 8)
    # hardlinks: c leaves the group, d joins it
    os.unlink(r("usr", "bin", "c"))
    w(r("usr", "bin", "c"), b"hardlinked content\n" * 100, 0o755)
    os.link(r("usr", "bin", "a"), r("usr", "bin", "d"))
    # type changes
    os.unlink(r("tc", "file2dir"))
    w(r("tc", "file2dir", "now-a-file-inside"), b"dir now\n")
    shutil.rmtree(r("tc", "dir2link"))
    os.symlink("../etc", r("tc", "dir2link"))
    os.unlink(r("tc", "link2file"))
    w(r("tc", "link2file"), b"a file now\n")
    shutil.rmtree(r("tc", "dir2file"))
    w(r("tc", "dir2file"), b"was a dir\n")
    os.unlink(r("dev", "sda"))
    os.mknod(r("dev", "sda"), 0o660 | stat.S_IFBLK, os.makedev(8, 16))
    os.chmod(r("var", "empty"), 0o755)


def make_v3(v2, root):
    subprocess.run(["cp", "-a", "--sparse=always", v2, root], check=True)
    r = lambda *p: os.path.join(root, *p)
    w(r("usr", "lib", "big"), os.urandom(200 * 1024))
    os.removexattr(r("usr", "bin", "ping"), "security.capability")
    shutil.rmtree(r("deep"))
    w(r("etc", "v3"), b"three\n")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    d = tmp_path_factory.mktemp("payload-trees")
    v1, v2, v3 = str(d / "v1"), str(d / "v2"), str(d / "v3")
    make_v1(v1)
    make_v2(v1, v2)
    make_v3(v2, v3)
    yield {"v1": v1, "v2": v2, "v3": v3, "dir": d}
    shutil.rmtree(d, ignore_errors=True)


def build(*args):
    sysimage("build", *args, check=True)


def apply(target, *files, format=False, extra=()):
    args = ["apply", "--quiet", "--target", target, *extra]
    if format:
        args.append("--format")
    return sysimage(*args, *files)


def copytree(src, dst):
    subprocess.run(["cp", "-a", "--sparse=always", src, dst], check=True)


def assert_delta_gives(base, delta, target, want):
    """delta applied to a fresh copy of the tree base at target gives the tree want."""
    if os.path.lexists(target):
        shutil.rmtree(target)
    copytree(base, target)
    assert apply(target, delta).returncode == 0
    assert_same(want, target)


def all_members(path):
    data = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        out = []
        for m in tf.getmembers():
            content = tf.extractfile(m).read() if m.isreg() else None
            out.append((m, content))
        return out


def members(path):
    """The members after the first one, `manifest`, which lists them in order."""
    ms = all_members(path)
    assert ms[0][0].name == "manifest"
    lines = ms[0][1].decode("utf-8", "surrogateescape").splitlines()
    assert lines[0] == "sysimage-manifest 1"
    assert [ln.split(" ", 9)[9] for ln in lines[1:]] == [m.name + ("/" if m.isdir() else "")
                                                         for m, _ in ms[1:]]
    return ms[1:]


def assert_same(a, b):
    d = treecmp.diff(a, b)
    assert not d, "\n".join(d[:40])


def test_full_roundtrip_and_reapply(trees, tmp_path):
    out = str(tmp_path / "full.tar.zst")
    build("full", "--from", trees["v1"], "--out", out)
    target = str(tmp_path / "t")
    os.mkdir(target)
    assert apply(target, out, format=True).returncode == 0
    assert_same(trees["v1"], target)
    # mtimes of files and directories are kept
    for rel in ("etc/passwd", "usr/lib/big", "var/empty", "usr/bin"):
        assert os.lstat(os.path.join(target, rel)).st_mtime_ns == \
            os.lstat(os.path.join(trees["v1"], rel)).st_mtime_ns, rel
    # the sparse file stays sparse
    st = os.stat(os.path.join(target, "usr/lib/sparse"))
    assert st.st_blocks * 512 < 1 << 20
    snap = treecmp.snapshot(target)
    assert apply(target, out).returncode == 0          # again, without format
    assert not treecmp.diff(snap, target)
    assert apply(target, out, format=True).returncode == 0
    assert not treecmp.diff(snap, target)
    # no temporary names left behind
    assert not [p for p in snap if b".sysimage-tmp" in p]


def test_full_members_are_sorted_prefixed_numeric(trees, tmp_path):
    out = str(tmp_path / "full.tar.zst")
    build("full", "--from", trees["v1"], "--out", out)
    ms = members(out)
    names = [m.name for m, _ in ms]
    assert all(n.startswith("system/") for n in names)
    assert all(m.uname == "" and m.gname == "" for m, _ in ms)
    key = lambda n: os.fsencode(n).replace(b"/", b"\x00")
    assert names == sorted(names, key=key)
    links = {m.name: m.linkname for m, _ in ms if m.islnk()}
    assert links == {"system/usr/bin/b": "system/usr/bin/a", "system/usr/bin/c": "system/usr/bin/a"}
    # deterministic: building again gives the same bytes
    out2 = str(tmp_path / "again.tar.zst")
    build("full", "--from", trees["v1"], "--out", out2)
    assert open(out, "rb").read() == open(out2, "rb").read()


def test_delta_applies_exactly_and_twice(trees, tmp_path):
    out = str(tmp_path / "delta.tar.zst")
    build("delta", "--from", trees["v1"], "--to", trees["v2"], "--out", out)
    target = str(tmp_path / "t")
    assert_delta_gives(trees["v1"], out, target, trees["v2"])
    assert apply(target, out).returncode == 0
    assert_same(trees["v2"], target)


def test_delta_contents(trees, tmp_path):
    out = str(tmp_path / "delta.tar.zst")
    build("delta", "--from", trees["v1"], "--to", trees["v2"], "--out", out)
    ms = members(out)
    first, removed = ms[0]
    assert first.name == "removed"
    removed = removed.decode("utf-8", "surrogateescape").splitlines()
    names = {m.name for m, _ in ms[1:]}
    assert "system/etc/mtime-only" not in names        # mtime-only change not shipped
    assert "system/etc/mtime-only" not in removed
    assert "system/usr/lib/big" not in names           # unchanged
    for p in ("etc/passwd", "etc/perm", "etc/owner", "etc/xattr", "etc/empty", "usr/bin/c",
              "usr/bin/d", "tc/file2dir", "tc/dir2link", "tc/link2file", "tc/dir2file",
              "dev/sda", "var/empty", "new/dir/file"):
        assert "system/" + p in names, p
    for p in ("etc/deleted", "gone", "gone/sub", "gone/sub/file", "etc/passwd", "tc/dir2link",
              "tc/dir2link/inside", "tc/dir2file", "tc/dir2file/x", "usr/bin/c"):
        assert "system/" + p in removed, p
    assert "system/var/empty" not in removed  # a directory keeps its contents
    assert removed == sorted(removed, key=lambda n: n.encode("utf-8", "surrogateescape").replace(b"/", b"\0"))


def test_chain_of_deltas_equals_last_full(trees, tmp_path):
    f1, d12, d23, f3 = (str(tmp_path / n) for n in ("f1", "d12", "d23", "f3"))
    build("full", "--from", trees["v1"], "--out", f1)
    build("delta", "--from", trees["v1"], "--to", trees["v2"], "--out", d12, "--xz")
    build("delta", "--from", trees["v2"], "--to", trees["v3"], "--out", d23, "--zstd", "--level", "19")
    build("full", "--from", trees["v3"], "--out", f3)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.mkdir(a)
    os.mkdir(b)
    assert apply(a, f1, d12, d23, format=True).returncode == 0
    assert apply(b, f3, format=True).returncode == 0
    assert_same(b, a)
    assert_same(trees["v3"], a)


def test_build_from_tarball_equals_from_tree(trees, tmp_path):
    t1, t2, t1b, t2b = (str(tmp_path / n) for n in ("t1", "t2", "t1b", "t2b"))
    build("full", "--from", trees["v1"], "--out", t1, "--xz", "--level", "1")
    build("full", "--from", trees["v2"], "--out", t2)
    build("full", "--from", t1, "--out", t1b)
    build("full", "--from", t2, "--out", t2b)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.mkdir(a)
    os.mkdir(b)
    assert apply(a, t1b, format=True).returncode == 0
    assert_same(trees["v1"], a)
    # deltas from tarballs and from a mix of tree and tarball
    for old, new in ((t1, t2), (trees["v1"], t2), (t1, trees["v2"])):
        d = str(tmp_path / "d")
        build("delta", "--from", old, "--to", new, "--out", d)
        assert_delta_gives(trees["v1"], d, b, trees["v2"])


def test_unchanged_delta_is_empty(trees, tmp_path):
    out = str(tmp_path / "d")
    build("delta", "--from", trees["v1"], "--to", trees["v1"], "--out", out)
    ms = members(out)
    assert [m.name for m, _ in ms] == ["removed"] and ms[0][1] == b""
    # a tree and its own full tarball have identical manifests, both ways
    full = str(tmp_path / "f")
    build("full", "--from", trees["v1"], "--out", full)
    for old, new in ((full, trees["v1"]), (trees["v1"], full), (full, full)):
        build("delta", "--from", old, "--to", new, "--out", out)
        ms = members(out)
        assert [m.name for m, _ in ms] == ["removed"] and ms[0][1] == b"", (old, new)


def test_bad_usage_and_missing_input(tmp_path):
    assert sysimage("build", "full", "--out", str(tmp_path / "x")).returncode == 1
    r = sysimage("build", "full", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "x"))
    assert r.returncode == 16 and "nope" in r.stderr
    r = sysimage("build", "full", "--from", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--level", "21")
    assert r.returncode == 1
    assert sysimage("apply", "--target", str(tmp_path)).returncode == 1
    for cmd in (("build", "full"), ("build", "delta"), ("apply",)):
        r = sysimage(*cmd, "--help")
        assert r.returncode == 0 and "usage: sysimage" in r.stdout


# ------------------------------------------------------------------ hostile input

def tarball(path, entries):
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink|chr."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = payload
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = payload
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)


@pytest.fixture
def arena(tmp_path):
    """A target dir, an outside dir with a sentinel, and a checker."""
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"untouched")
    before = sorted(os.listdir(tmp_path))

    def check():
        assert (outside / "sentinel").read_bytes() == b"untouched"
        assert sorted(os.listdir(outside)) == ["sentinel"]
        assert sorted(os.listdir(tmp_path)) == before
    return tmp_path, target, outside, check


HOSTILE = {
    "absolute": [("/outside/pwned", "file", b"x")],
    "dotdot": [("../outside/pwned", "file", b"x")],
    "dotdot-inside-system": [("system/../outside/pwned", "file", b"x")],
    "dotdot-deep": [("system/a/../../outside/pwned", "file", b"x")],
    "outside-system": [("etc/passwd", "file", b"x")],
    "write-through-symlink": [("system/evil", "symlink", "{outside}"),
                              ("system/evil/pwned", "file", b"x")],
    "write-through-relative-symlink-dir": [("system/d", "dir", None),
                                           ("system/d/up", "symlink", ".."),
                                           ("system/d/up/d/x", "file", b"x")],
    "escaping-relative-symlink": [("system/l", "symlink", "../../outside/sentinel")],
    "hardlink-absolute": [("system/h", "hardlink", "{outside}/sentinel")],
    "hardlink-dotdot": [("system/h", "hardlink", "system/../outside/sentinel")],
    "hardlink-outside-system": [("system/h", "hardlink", "outside/sentinel")],
    "hardlink-through-symlink": [("system/s", "symlink", "{outside}"),
                                 ("system/h", "hardlink", "system/s/sentinel")],
    "device-outside-system": [("partitions/boot.img", "chr", None)],
    "device-in-removed": [("removed", "chr", None)],
    "removed-dotdot": [("removed", "file", b"system/../outside/sentinel\n")],
    "removed-absolute": [("removed", "file", b"{outside}/sentinel\n")],
    "removed-outside-system": [("removed", "file", b"outside/sentinel\n")],
    "partition-system": [("partitions/system.img", "file", b"x")],
    "partition-userdata": [("partitions/userdata.img", "file", b"x")],
    "partition-dotdot": [("partitions/../outside/pwned.img", "file", b"x")],
    "empty-component": [("system//pwned", "file", b"x")],
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_tarball_refused(arena, attack):
    tmp, target, outside, check = arena
    entries = []
    for name, kind, payload in HOSTILE[attack]:
        name = name.replace("{outside}", str(outside))
        if isinstance(payload, str):
            payload = payload.replace("{outside}", str(outside))
        elif isinstance(payload, bytes):
            payload = payload.replace(b"{outside}", os.fsencode(str(outside)))
        entries.append((name, kind, payload))
    bad = str(tmp / "bad.tar")
    tarball(bad, entries)
    r = apply(str(target), bad, extra=("--partition", f"boot={outside}/boot.img"))
    os.unlink(bad)
    assert r.returncode == 17, f"{attack}: rc {r.returncode}: {r.stderr}"
    assert "sysimage:" in r.stderr
    check()


def test_removed_through_symlink_removes_nothing(arena):
    tmp, target, outside, check = arena
    os.symlink(str(outside), target / "link")
    bad = str(tmp / "bad.tar")
    tarball(bad, [("removed", "file", b"system/link/sentinel\n")])
    r = apply(str(target), bad)
    os.unlink(bad)
    assert r.returncode == 0, r.stderr
    check()


def test_removed_must_come_first(arena):
    tmp, target, outside, check = arena
    bad = str(tmp / "bad.tar")
    tarball(bad, [("system/a", "file", b"a"), ("removed", "file", b"system/a\n")])
    r = apply(str(target), bad)
    os.unlink(bad)
    assert r.returncode == 4 and "removed" in r.stderr
    check()


def test_partitions(arena):
    tmp, target, outside, check = arena
    img = os.urandom(5000)
    good = str(tmp / "p.tar")
    tarball(good, [("partitions/boot.img", "file", img), ("system/etc/x", "file", b"x")])
    dest = tmp / "boot.raw"
    dest.write_bytes(b"\xff" * 9000)
    r = apply(str(target), good, extra=("--partition", f"boot={dest}"))
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == img
    assert (target / "etc" / "x").read_bytes() == b"x"
    r = apply(str(target), good)          # unmapped: an error, never skipped
    assert r.returncode == 19 and "boot" in r.stderr
    os.unlink(good)
    os.unlink(dest)
    check()


def test_corrupt_tarball_is_an_error(trees, tmp_path):
    out = str(tmp_path / "full.tar.zst")
    build("full", "--from", trees["v1"], "--out", out)
    data = bytearray(open(out, "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad = str(tmp_path / "bad.tar.zst")
    open(bad, "wb").write(data[: len(data) - 100])
    target = str(tmp_path / "t")
    os.mkdir(target)
    r = apply(target, bad, format=True)
    assert r.returncode == 4, r.stderr


def test_rebuild_from_tarball_is_byte_identical_without_root(trees):
    """A full tarball rebuilt from itself is the same bytes, even by an
    unprivileged user: owners come from the tarball, nothing is extracted."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="si-payload-nobody-"))
    os.chmod(tmp_path, 0o777)
    try:
        _rebuild_as_nobody(trees, tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _rebuild_as_nobody(trees, tmp_path):
    t1, t2 = str(tmp_path / "t1.tar"), str(tmp_path / "t2.tar")
    build("full", "--from", trees["v1"], "--out", t1, "--none")
    os.chmod(t1, 0o644)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        os.path.join(ROOT, "build", "bin", "sysimage"),
                        "build", "full", "--from", t1, "--out", t2, "--none"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert os.stat(t2).st_uid == 65534
    assert open(t1, "rb").read() == open(t2, "rb").read()


def test_progress_on_stderr(trees, tmp_path):
    out = str(tmp_path / "full.tar.zst")
    build("full", "--from", trees["v1"], "--out", out)
    target = tmp_path / "t"
    target.mkdir()
    r = sysimage("apply", "--format", "--target", str(target), out)
    assert r.returncode == 0, r.stderr
    size = os.path.getsize(out) / (1 << 20)
    # not a terminal: plain lines (every 10 % or 5 s), no carriage returns
    assert "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert 1 <= len(lines) <= 12, lines
    assert lines[-1] == f"apply: 100% ({size:.1f} of {size:.1f} MiB)"
    assert all(l.startswith("apply: ") and "%" in l for l in lines)


# ------------------------------------------------------------------ one read (issue 11)

def index_for(path, manifest=True):
    import hashlib
    import json
    data = open(path, "rb").read()
    e = {"path": "/pool/" + os.path.basename(path), "signature": "/pool/x.sig",
         "checksum": hashlib.sha256(data).hexdigest(), "size": len(data), "order": 0}
    m, body = all_members(path)[0]
    if manifest:
        e["manifest"] = {"checksum": hashlib.sha256(body).hexdigest(), "size": len(body)}
    idx = str(path) + ".index.json"
    with open(idx, "w") as f:
        json.dump({"global": {}, "images": [{"type": "full", "version": 1, "files": [e]}]}, f)
    return idx


def test_apply_index_one_read_refuses_a_tampered_member_before_it_lands(trees, tmp_path):
    out = str(tmp_path / "full.tar.zst")
    build("full", "--from", trees["v1"], "--out", out)
    target = str(tmp_path / "t")
    os.makedirs(target)
    for manifest in (True, False):
        assert apply(target, out, format=True, extra=["--index", index_for(out, manifest)]) \
            .returncode == 0
        assert_same(trees["v1"], target)
    # same size, one byte of etc/passwd changed; the index lists the tampered
    # file's sha256 (so only the member check can catch it) and the manifest
    raw = subprocess.run(["zstd", "-dc", out], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        m = next(m for m in tf.getmembers() if m.name == "system/etc/passwd")
    bad = bytearray(raw)
    bad[m.offset_data] ^= 1
    badf = str(tmp_path / "bad.tar.zst")
    subprocess.run(["zstd", "-q", "-o", badf], input=bytes(bad), check=True)
    fresh = str(tmp_path / "t2")
    os.makedirs(fresh)
    p = apply(fresh, badf, format=True, extra=["--index", index_for(badf)])
    assert p.returncode == 12 and "(system/etc/passwd) differs from the manifest" in p.stderr, \
        p.stderr
    # --format: members created at their final names; the bad one is removed
    assert not os.path.exists(os.path.join(fresh, "etc/passwd"))
    assert not [f for f in os.listdir(os.path.join(fresh, "etc")) if "sysimage-tmp" in f]
    # onto a tree already there (no --format): temporary name + rename, the
    # installed etc/passwd is never replaced by the bad one
    p = apply(target, badf, extra=["--index", index_for(badf)])
    assert p.returncode == 12 and "(system/etc/passwd) differs from the manifest" in p.stderr, \
        p.stderr
    assert_same(trees["v1"], target)
    assert not [f for f in os.listdir(os.path.join(target, "etc")) if "sysimage-tmp" in f]
    # a file the index does not list, or whose manifest is another: refused before writing
    p = apply(fresh, out, extra=["--index", index_for(badf)])
    assert p.returncode == 28 and "not a file of the index" in p.stderr, p.stderr
