"""artifacts - the shared inputs of the QEMU scenarios and the benchmark,
built once and cached under build/qemu-cache/<key>/ (key = digest of the
generators, the sysimage tool and the signing keys, so a change of any of
them rebuilds). A file lock makes concurrent pytest-xdist workers build them
once.

Signing uses the development hierarchy the recovery was built with
(keys/dev, `make keys`; SI_KEYS overrides, as KEYS= does for make)."""
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import ostree
import sihw

ROOT = sihw.ROOT
SYSIMAGE = os.path.join(ROOT, "build", "bin", "sysimage")
KEYS = os.path.abspath(os.path.join(ROOT, os.environ.get("SI_KEYS", "keys/dev")))
CACHE = os.path.join(ROOT, "build", "qemu-cache")
HERE = os.path.dirname(os.path.abspath(__file__))
KEYRING_FILES = ["image-master.keyring", "image-master.keyring.sig",
                 "image-signing.keyring", "image-signing.keyring.sig"]
VERSION = 5  # bump to force a rebuild when the recipe below changes


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def sign(path, key="image-signing", keys=KEYS):
    run([SYSIMAGE, "sign", "--key", os.path.join(keys, f"{key}.key"), path])
    return path


def _key():
    h = hashlib.sha256(f"v{VERSION} uid0={os.geteuid() == 0}".encode())
    for p in (os.path.join(HERE, "ostree.py"), os.path.abspath(__file__), SYSIMAGE,
              os.path.join(KEYS, "archive-master.keyring"), os.path.join(KEYS, "image-signing.pub")):
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def _hostile_tarball(out):
    """A zstd tarball (of build 9) whose third member escapes the system tree."""
    buf = io.BytesIO()
    version = json.dumps({"build": 9, "channel": "stable"}).encode()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in (("system/etc/sysimage/version.json", version),
                           ("system/etc/ok", b"fine\n"), ("system/../../escape", b"outside\n")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1
            t.addfile(ti, io.BytesIO(data))
    raw = out + ".tar"
    with open(raw, "wb") as f:
        f.write(buf.getvalue())
    run(["zstd", "-q", "-f", "--rm", raw, "-o", out])


def _small_tree(dest, build, seed):
    os.makedirs(dest)
    with open(os.path.join(dest, "hello.txt"), "w") as f:
        f.write(f"small tree {seed}, build {build}\n")
    os.makedirs(os.path.join(dest, "bin"))
    with open(os.path.join(dest, "bin", "tool"), "wb") as f:
        f.write(hashlib.sha256(f"{seed}".encode()).digest() * 2000)
    os.chmod(os.path.join(dest, "bin", "tool"), 0o755)
    os.symlink("tool", os.path.join(dest, "bin", "alias"))
    os.makedirs(os.path.join(dest, "etc", "sysimage"))
    with open(os.path.join(dest, "etc", "sysimage", "version.json"), "w") as f:
        json.dump({"build": build, "channel": "stable"}, f)
        f.write("\n")


def _build(d):
    """Everything, into the fresh directory d."""
    log = []
    ostree.generate(os.path.join(d, "v1"), seed=1, build=1)
    ostree.mutate(os.path.join(d, "v1"), os.path.join(d, "v2"), seed=2, build=2)
    for name, args in (("full-v1", ["full", "--from", "v1"]),
                       ("full-v2", ["full", "--from", "v2"]),
                       ("delta-v1-v2", ["delta", "--from", "v1", "--to", "v2"])):
        run([SYSIMAGE, "build", *args, "--out", f"{name}.tar.zst"], cwd=d)
        sign(os.path.join(d, f"{name}.tar.zst"))
        log.append(name)
    # medium trees (issue 15's power-cut tests and campaign): m1 -> m2, builds 11 and 12
    ostree.generate(os.path.join(d, "m1"), seed=11, build=11, size_mb=12, small_files=600)
    ostree.mutate(os.path.join(d, "m1"), os.path.join(d, "m2"), seed=12, build=12)
    for name, args in (("full-m1", ["full", "--from", "m1"]),
                       ("delta-m1-m2", ["delta", "--from", "m1", "--to", "m2"])):
        run([SYSIMAGE, "build", *args, "--out", f"{name}.tar.zst"], cwd=d)
        sign(os.path.join(d, f"{name}.tar.zst"))
    # an uncompressed tar of v1 for the benchmark's busybox baseline (same members)
    run(["zstd", "-q", "-d", "-f", "full-v1.tar.zst", "-o", "full-v1.tar"], cwd=d)
    # small trees and payloads for the refusal and try-limit scenarios
    for name, build in (("small-b1", 1), ("small-b3", 3), ("small-b5", 5)):
        _small_tree(os.path.join(d, name), build, name)
        run([SYSIMAGE, "build", "full", "--from", name, "--out", f"full-{name}.tar.zst"], cwd=d)
        sign(os.path.join(d, f"full-{name}.tar.zst"))
    _hostile_tarball(os.path.join(d, "hostile.tar.zst"))
    sign(os.path.join(d, "hostile.tar.zst"))
    # a second, unrelated hierarchy (its archive-master is not the recovery's)
    run([os.path.join(ROOT, "scripts", "make-dev-keys.sh"), SYSIMAGE, os.path.join(d, "keys-other")])
    shutil.copy(os.path.join(d, "full-small-b5.tar.zst"), os.path.join(d, "other-signed.tar.zst"))
    sign(os.path.join(d, "other-signed.tar.zst"), keys=os.path.join(d, "keys-other"))
    # a blacklist (signed by our image-master) naming our image-signing key
    run([SYSIMAGE, "keyring", "create", "--type", "blacklist", "--sign-with",
         os.path.join(KEYS, "image-master.key"), os.path.join(d, "blacklist.keyring"),
         os.path.join(KEYS, "image-signing.pub")])
    return log


def get():
    """The cache directory, built if needed (safe under concurrent workers)."""
    if not os.path.exists(SYSIMAGE):
        raise RuntimeError(f"{SYSIMAGE} missing: run make")
    if not os.path.exists(os.path.join(KEYS, "image-signing.key")):
        raise RuntimeError(f"{KEYS}: no development keys: run `make keys`")
    os.makedirs(CACHE, exist_ok=True)
    d = os.path.join(CACHE, _key())
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(d, ".done")):
            # keep only the newest cache: the trees are large
            for old in os.listdir(CACHE):
                if not old.startswith("."):
                    shutil.rmtree(os.path.join(CACHE, old), ignore_errors=True)
            tmp = d + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            _build(tmp)
            os.rename(tmp, d)
            open(os.path.join(d, ".done"), "w").close()
    return d


def keyring_files(keys=KEYS):
    """{name: path} of the keyrings a command file loads."""
    import pathlib
    return {n: pathlib.Path(keys, n) for n in KEYRING_FILES}


# The image each payload is in the index: (type, version, base).
IMAGES = {
    "full-v1.tar.zst": ("full", 1, None), "full-v2.tar.zst": ("full", 2, None),
    "delta-v1-v2.tar.zst": ("delta", 2, 1), "full-small-b1.tar.zst": ("full", 1, None),
    "full-small-b3.tar.zst": ("full", 3, None), "full-small-b5.tar.zst": ("full", 5, None),
    "other-signed.tar.zst": ("full", 5, None), "hostile.tar.zst": ("full", 9, None),
    "full-m1.tar.zst": ("full", 11, None), "delta-m1-m2.tar.zst": ("delta", 12, 11),
}


def image_of(src):
    """(type, version, base) of a payload; copies of small-b5 made by tests
    (tampered, re-signed) are build 5."""
    return IMAGES.get(os.path.basename(str(src)), ("full", 5, None))


def index_time(t):
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(t))


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_field(path):
    """The index's "manifest" field for an update file whose first member is
    `manifest` (sysimage build), else None: the recovery then installs the
    file in one read (docs/recovery.md)."""
    dec = {".zst": ["zstd", "-dc"], ".xz": ["xz", "-dc"]}.get(os.path.splitext(str(path))[1])
    if not dec:
        return None
    with open(path, "rb") as f:
        proc = subprocess.Popen(dec, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
                m = tf.next()
                if not m or m.name != "manifest" or not m.isreg():
                    return None
                body = tf.extractfile(m).read()
        finally:
            proc.kill()
            proc.wait()
    return {"checksum": hashlib.sha256(body).hexdigest(), "size": len(body)}


def make_index(images, keys=KEYS, out=None, generated=None, expires=7 * 86400):
    """A signed index.json (docs/formats.md) offering `images`: a list of
    (type, version, base, {staged name: source path, or None for an entry
    whose file is not staged}). Returns its path (in a new temp dir unless
    out is given); index.json.sig beside it."""
    gen = int(time.time()) - 60 if generated is None else generated
    g = {"generated_at": index_time(gen)}
    if expires is not None:
        g["expires"] = index_time(gen + expires)
    imgs = []
    for typ, version, base, files in images:
        entries = []
        for order, (name, src) in enumerate(files.items()):
            entries.append({"path": f"/pool/{name}", "signature": f"/pool/{name}.sig",
                            "checksum": _sha256(src) if src else "0" * 64,
                            "size": os.path.getsize(src) if src else 0, "order": order})
            m = manifest_field(src) if src else None
            if m:
                entries[-1]["manifest"] = m
        img = {"type": typ, "version": version, "files": entries}
        if base is not None:
            img["base"] = base
        imgs.append(img)
    out = out or os.path.join(tempfile.mkdtemp(prefix="si-index-"), "index.json")
    with open(out, "w") as f:
        json.dump({"global": g, "images": imgs}, f, indent=4, sort_keys=True)
    sign(out, keys=keys)
    return out


def command(updates, format_system=None, blacklist=False, extra="", images=(("full", 5, None),)):
    """A command file as the stub writes it (docs/formats.md): keyrings, the
    signed index, the images chosen from it, format system iff the path
    starts with a full, then the updates."""
    lines = ["load_keyring image-master.keyring image-master.keyring.sig",
             "load_keyring image-signing.keyring image-signing.keyring.sig"]
    if blacklist:
        lines.append("load_keyring blacklist.keyring blacklist.keyring.sig")
    lines.append("index index.json index.json.sig")
    for typ, version, base in images:
        lines.append(f"image full {version}" if typ == "full" else f"image delta {version} {base}")
    if format_system is None:
        format_system = images[0][0] == "full"
    if format_system:
        lines.append("format system")
    lines.append("mount system")
    lines += [f"update {u} {u}.sig" for u in updates]
    lines.append("unmount system")
    return "\n".join(lines) + "\n" + extra
