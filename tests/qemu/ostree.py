"""ostree - deterministic OS trees for the QEMU scenarios and the benchmark.

generate(dest, seed, build, size_mb) writes an OS-like tree: nested
directories, a few thousand small files (text-like, compressible, and
random), a few large files (random: incompressible, so zstd stays fast and
the payload stays honest), symlinks (relative, absolute, dangling),
hardlink groups, xattrs (user.* and security.capability), numeric owners,
special modes (setuid, sticky), a FIFO and device nodes (as root), empty
files and directories, and etc/sysimage/version.json = {"build": B}.

mutate(src, dest, seed, build) makes the next version from a copy of src:
about a third of the content changes (files rewritten, big files replaced or
binary-updated (shipped as patches),
files, directories and links removed and added, type changes, mode, owner,
xattr and hardlink-grouping changes), so that a delta between the two is a
real one.

Everything is derived from random.Random(seed): the same arguments give the
same bytes, modes and names on every machine. Owners, device nodes and
security.* xattrs need root; without it they are left out (the tree stays
deterministic for a given uid)."""
import json
import os
import random
import shutil
import stat
import struct
import subprocess

MIB = 1024 * 1024
ROOT_USER = os.geteuid() == 0
# security.capability: VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW
CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)

WORDS = ("system image update recovery kernel module config daemon service socket "
         "library binary locale share doc manual firmware driver network storage "
         "partition signature keyring channel index delta full version build").split()


def _text(rng, n):
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def _content(rng, n):
    """Half text-like (compressible), half random (incompressible)."""
    return _text(rng, n) if rng.random() < 0.5 else rng.randbytes(n)


def _write(path, data, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)
    if ROOT_USER:
        os.chown(path, uid, gid)
    os.chmod(path, mode)


def _owner(rng):
    if rng.random() < 0.85:
        return 0, 0
    return rng.choice([(1, 1), (100, 101), (1000, 1000), (65534, 65534), (4242, 0)])


def _version(root, build):
    d = os.path.join(root, "etc", "sysimage")
    os.makedirs(d, exist_ok=True)
    _write(os.path.join(d, "version.json"),
           (json.dumps({"build": build, "channel": "stable"}, sort_keys=True) + "\n").encode())


def generate(dest, seed=1, build=1, size_mb=104, small_files=2500):
    """Write the tree at dest (must not exist). Returns the bytes of file data."""
    rng = random.Random(f"ostree-{seed}")
    os.makedirs(dest)
    total = 0
    tops = ["usr/bin", "usr/lib", "usr/share/doc", "usr/share/locale", "etc", "var/lib",
            "lib/modules", "lib/firmware", "opt/app"]
    dirs = []
    for t in tops:
        for i in range(rng.randint(3, 8)):
            sub = os.path.join(t, f"d{i:02d}", *([f"n{i}"] if rng.random() < 0.3 else []))
            dirs.append(sub)
            os.makedirs(os.path.join(dest, sub), exist_ok=True)
    files = []
    for i in range(small_files):
        d = rng.choice(dirs)
        # mostly small, some medium: 0 B .. 256 KiB, log-uniform-ish
        n = 0 if rng.random() < 0.02 else int(2 ** rng.uniform(4, 18))
        path = os.path.join(d, f"f{i:05d}" + rng.choice(["", ".so", ".conf", ".txt", ".bin"]))
        mode = rng.choice([0o644, 0o644, 0o644, 0o755, 0o600, 0o444])
        if i % 500 == 7:
            mode = 0o4755
        uid, gid = _owner(rng)
        _write(os.path.join(dest, path), _content(rng, n), mode, uid, gid)
        files.append(path)
        total += n
    # large files: random, up to size_mb in total
    big = 0
    k = 0
    while total + big < size_mb * MIB:
        n = min(rng.choice([6, 9, 13, 17]) * MIB + rng.randint(0, MIB), size_mb * MIB - total - big + 4096)
        path = os.path.join("usr/lib/big", f"blob{k:02d}.bin")
        _write(os.path.join(dest, path), rng.randbytes(n), 0o644)
        files.append(path)
        big += n
        k += 1
    total += big
    # a compressible large file
    _write(os.path.join(dest, "usr/share/doc/manual.txt"), _text(rng, 3 * MIB))
    total += 3 * MIB
    # hardlink groups
    for i in range(40):
        src = rng.choice([f for f in files if "big" not in f])
        for j in range(rng.randint(1, 3)):
            link = os.path.join(os.path.dirname(src), f"hl{i:02d}-{j}")
            if not os.path.lexists(os.path.join(dest, link)):
                os.link(os.path.join(dest, src), os.path.join(dest, link))
    # symlinks
    for i in range(150):
        d = rng.choice(dirs)
        target = rng.choice(files)
        kind = rng.random()
        if kind < 0.5:
            tgt = os.path.relpath(target, d)
        elif kind < 0.85:
            tgt = "/" + target
        else:
            tgt = f"/nonexistent/dangling{i}"
        os.symlink(tgt, os.path.join(dest, d, f"ln{i:03d}"))
    # xattrs
    for path in rng.sample(files, 80):
        p = os.path.join(dest, path)
        os.setxattr(p, "user.sysimage.tag", _text(rng, rng.randint(1, 60)))
        if rng.random() < 0.3:
            os.setxattr(p, "user.sysimage.bin", rng.randbytes(rng.randint(1, 200)))
    os.setxattr(os.path.join(dest, "etc"), "user.dir", b"xattr on a directory")
    if ROOT_USER:
        ping = os.path.join(dest, "usr/bin/ping")
        _write(ping, b"\x7fELF" + rng.randbytes(20000), 0o755)
        os.setxattr(ping, "security.capability", CAP_NET_RAW)
        os.makedirs(os.path.join(dest, "dev"))
        os.mknod(os.path.join(dest, "dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(os.path.join(dest, "dev/vda"), 0o660 | stat.S_IFBLK, os.makedev(254, 0))
        os.chown(os.path.join(dest, "dev/vda"), 0, 6)
    os.makedirs(os.path.join(dest, "run"), exist_ok=True)
    os.mkfifo(os.path.join(dest, "run/initctl"), 0o600)
    for d, m in (("tmp", 0o1777), ("var/empty", 0o700), ("var/cache/empty", 0o755)):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
        os.chmod(os.path.join(dest, d), m)
    _version(dest, build)
    return total


def _all(root):
    out = []
    for dp, dns, fns in os.walk(root):
        for n in sorted(dns) + sorted(fns):
            out.append(os.path.relpath(os.path.join(dp, n), root))
    return sorted(out)


def mutate(src, dest, seed=2, build=2):
    """dest = a changed copy of src. Returns the number of changes made."""
    subprocess.run(["cp", "-a", src, dest], check=True)
    rng = random.Random(f"mutate-{seed}")
    paths = _all(dest)
    P = lambda p: os.path.join(dest, p)  # noqa: E731
    regular = [p for p in paths if os.path.isfile(P(p)) and not os.path.islink(P(p))
               and "etc/sysimage" not in p]
    small = [p for p in regular if "big/" not in p]
    bigs = [p for p in regular if "big/" in p]
    changes = 0
    # rewrite ~25% of the small files (some grow, some shrink)
    for p in rng.sample(small, len(small) // 4):
        if not os.path.lexists(P(p)):
            continue
        st = os.lstat(P(p))
        n = max(0, int(st.st_size * rng.uniform(0.5, 1.6)) + rng.randint(0, 100))
        with open(P(p), "wb") as f:  # in place: hardlinked names follow
            f.write(_content(rng, n))
        changes += 1
    # replace two big files, remove one, add one
    for p in bigs[:2]:
        _write(P(p), rng.randbytes(os.path.getsize(P(p)) + rng.randint(-MIB, MIB)))
        changes += 1
    if len(bigs) > 5:
        os.unlink(P(bigs[5]))
        changes += 1
    _write(P("usr/lib/big/new-blob.bin"), rng.randbytes(7 * MIB + 12345))
    # two big files get a binary update (a few bytes changed here and there,
    # like a rebuilt library): the delta ships them as patches, which the
    # recovery applies in 96 MiB (docs/payloads.md)
    for p in bigs[2:4]:
        with open(P(p), "r+b") as f:
            size = os.path.getsize(P(p))
            for _ in range(20):
                f.seek(rng.randrange(0, size - 64))
                f.write(rng.randbytes(rng.randint(1, 64)))
        changes += 1
    # remove ~5% of the small files and a whole directory
    for p in rng.sample(small, len(small) // 20):
        if os.path.lexists(P(p)):
            os.unlink(P(p))
            changes += 1
    victim = sorted(d for d in paths if os.path.isdir(P(d)) and d.startswith("usr/share/locale/"))[0]
    shutil.rmtree(P(victim))
    changes += 1
    # add files in new and existing directories
    for i in range(200):
        d = rng.choice(["opt/new/a", "opt/new/b/c", "usr/lib/d01", "etc/d00"])
        _write(P(os.path.join(d, f"new{i:03d}")), _content(rng, int(2 ** rng.uniform(4, 16))),
               rng.choice([0o644, 0o755]))
        changes += 1
    # metadata-only changes
    left = [p for p in small if os.path.isfile(P(p)) and not os.path.islink(P(p))]
    for p in rng.sample(left, 40):
        os.chmod(P(p), rng.choice([0o600, 0o640, 0o755, 0o700]))
        changes += 1
    if ROOT_USER:
        for p in rng.sample(left, 30):
            os.chown(P(p), rng.choice([0, 1000, 2000]), rng.choice([0, 100, 1000]))
            changes += 1
    for p in rng.sample(left, 30):
        os.setxattr(P(p), "user.sysimage.tag", b"changed " + _text(rng, 20))
        changes += 1
    # type changes: file -> symlink, file -> directory, symlink -> file, dir -> file
    tc = rng.sample([p for p in left if os.path.lexists(P(p))], 3)
    os.unlink(P(tc[0]))
    os.symlink("/usr/share/doc/manual.txt", P(tc[0]))
    os.unlink(P(tc[1]))
    _write(P(os.path.join(tc[1], "inside")), b"a file became a directory\n")
    links = [p for p in paths if os.path.islink(P(p))]
    for p in rng.sample(links, 10):
        if os.path.lexists(P(p)):
            os.unlink(P(p))
            if rng.random() < 0.5:
                _write(P(p), b"a symlink became a file\n")
            else:
                os.symlink("/retargeted/" + os.path.basename(p), P(p))
            changes += 1
    shutil.rmtree(P("var/cache/empty"))
    _write(P("var/cache/empty"), b"a directory became a file\n", 0o600)
    # hardlink grouping: split one group, join two files
    hl = [p for p in regular if os.path.basename(p).startswith("hl") and os.path.lexists(P(p))]
    if hl:
        p = hl[0]
        data = open(P(p), "rb").read()
        os.unlink(P(p))
        _write(P(p), data)  # same bytes, no longer a link
        changes += 1
    a, b = rng.sample([p for p in left if os.path.isfile(P(p)) and not os.path.islink(P(p))], 2)
    os.unlink(P(b))
    os.link(P(a), P(b))
    changes += 1
    _version(dest, build)
    return changes + 4
