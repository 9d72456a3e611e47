"""Tree comparison for payload tests and benchmarks.

snapshot(root) records, for every path below root (not root itself): type,
mode, owner, size, content digest, xattrs, symlink target, device number and
hardlink grouping (the sorted list of paths sharing its inode). mtimes are
not compared. diff(a, b) lists the differences as readable lines;
check_installed(root, tree) asserts a mounted system is tree plus the
version file."""
import hashlib
import os
import stat


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def snapshot(root):
    root = os.fsencode(root)
    out = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            try:
                xattrs = {n: os.getxattr(full, n, follow_symlinks=False)
                          for n in os.listxattr(full, follow_symlinks=False)}
            except OSError:
                xattrs = {}
            rec = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                   "gid": st.st_gid, "xattrs": xattrs}
            if stat.S_ISREG(kind):
                rec["size"] = st.st_size
                rec["sha256"] = _digest(full)
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
                    rec["ino"] = (st.st_dev, st.st_ino)
            elif stat.S_ISLNK(kind):
                rec["link"] = os.readlink(full)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                rec["rdev"] = st.st_rdev
            out[rel] = rec
    for rec in out.values():
        ino = rec.pop("ino", None)
        if ino is not None:
            group = sorted(inodes[ino])
            rec["links"] = group if len(group) > 1 else None
    for rec in out.values():
        rec.setdefault("links", None)
    return out


def changes(a, b):
    """(name, record in a, record in b) for every path whose record differs
    between the snapshots a and b, in path order; a record is None where the
    path is missing."""
    for p in sorted(set(a) | set(b)):
        x, y = a.get(p), b.get(p)
        if x != y:
            yield os.fsdecode(p), x, y


def diff(a, b):
    """Differences between two snapshots (or tree paths)."""
    if not isinstance(a, dict):
        a = snapshot(a)
    if not isinstance(b, dict):
        b = snapshot(b)
    lines = []
    for name, x, y in changes(a, b):
        if y is None:
            lines.append(f"only in first: {name}")
        elif x is None:
            lines.append(f"only in second: {name}")
        else:
            keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            lines.append(f"differs: {name}: " +
                         ", ".join(f"{k} {x.get(k)!r} != {y.get(k)!r}" for k in keys))
    return lines


def check_installed(root, tree):
    """The filesystem at root (a system installed from a published tree) is
    tree, plus etc/sysimage/version.json the version tarball adds (and
    lost+found)."""
    got = snapshot(root)
    want = snapshot(tree)
    got.pop(b"lost+found", None)
    extra = sorted(k for k in got if k not in want)
    assert all(k in (b"etc/sysimage", b"etc/sysimage/version.json") for k in extra), extra
    assert b"etc/sysimage/version.json" in got
    problems = diff(want, {k: v for k, v in got.items() if k in want})
    assert not problems, "\n".join(problems[:40])
