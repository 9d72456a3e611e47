#!/usr/bin/env python3
"""sysimage demo: the product's main job, end to end, in plain words.

    /usr/bin/python3 tests/demo/demo.py [--workdir DIR] [--keys DIR] [--timeout S]

(`make demo` builds what it needs first and runs this.)

1. Two versions of a sample OS for the qemu-x86_64 board
   (images/qemu-x86_64/sample-os.sh) are built into WORKDIR/os/v1 and v2.
2. `sysimage publish` puts build 1, then build 2 (with a delta 1 -> 2) into
   WORKDIR/repo for channel `stable`, signed with the development keys.
3. A real nginx serves the repo over HTTPS on 127.0.0.1 with a demo CA
   made by openssl (tests/integration/nginx_server.py).
4. A device: a board disk image (tests/qemu/sihw.py) whose system partition
   is blank. Its normal OS is played by the host: `sysimage-stub` runs with a
   client.ini whose cache directory and boot control are host files standing
   for the device's cache partition (`/recovery/`) and misc block; the demo
   copies them into the disk image before each reboot and back after it, and
   the installed build comes from the system partition's
   /etc/sysimage/version.json.
   Round 1, first install: check, stage (full image of build 1), reboot into
   the recovery (QEMU, TCG); the system partition must equal build 1.
   Round 2, update: the stub sees build 1, stages the delta to build 2, the
   recovery patches the system in place; the system must equal build 2.
   Round 3, factory reset: userdata wiped, system partition untouched.
5. A summary with timings. Exit status 0 only when every check passed.
"""
import argparse
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import nginx_server  # noqa: E402
import sihw  # noqa: E402
import treecmp  # noqa: E402

BIN = os.path.join(ROOT, "build", "bin")
SYSIMAGE = os.path.join(BIN, "sysimage")
STUB = os.path.join(BIN, "sysimage-stub")
SAMPLE_OS = os.path.join(ROOT, "images", "qemu-x86_64", "sample-os.sh")
BOARD = "qemu-x86_64"
CHANNEL = "stable"
MACHINE_ID = "5d1e0c0ffee0d15ea5eba5eba11c0de5"


class DemoFailure(Exception):
    pass


# ---------------------------------------------------------------- output
def rel(p):
    p = os.fspath(p)
    if os.path.isabs(p) and (p == ROOT or p.startswith(ROOT + os.sep)):
        return os.path.relpath(p, ROOT)
    return p


def say(text=""):
    print(text, flush=True)


def indent(text, prefix="    ", limit=None):
    lines = [l for l in text.rstrip("\n").split("\n") if l.strip()] if text.strip() else []
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more lines)"]
    for l in lines:
        say(prefix + l)


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)


def run(cmd, show=True, check=True, **kw):
    """Run cmd, print it as `$ cmd` and (indented) what it printed; with
    check, a non-zero exit status fails the demo (its stderr is shown)."""
    cmd = [os.fspath(c) for c in cmd]
    line = " ".join(shlex.quote(rel(c)) for c in cmd)
    if show:
        say("  $ " + line)
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if show:
        indent(proc.stdout)
    if check and proc.returncode != 0:
        if not show:
            indent(proc.stdout)
        indent(proc.stderr, "    ! ")
        raise DemoFailure(f"`{line}` exited with {proc.returncode}")
    return proc


class Steps:
    """Named, timed steps; the summary lists them."""

    def __init__(self):
        self.done = []
        self.checks = 0
        self.boots = []
        self.current = None

    def step(self, title):
        return _Step(self, title)

    def check(self, ok, what):
        if not ok:
            say(f"  FAILED: expected {what}")
            raise DemoFailure(f"expected {what}")
        self.checks += 1
        say(f"  ok: {what}")


class _Step:
    def __init__(self, steps, title):
        self.steps, self.title = steps, title

    def __enter__(self):
        say()
        say(f"== {self.title}")
        self.steps.current = "step " + self.title.split(" ", 1)[0].rstrip(".")
        self.t0 = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        secs = time.monotonic() - self.t0
        self.steps.done.append((self.title, secs, exc_type is None))
        return False


# ---------------------------------------------------------------- the device
class Device:
    """The board disk plus the host-side files the stub uses in its place:
    cache/recovery (the cache partition's /recovery), misc.img (the misc
    block), version.json (the system's /etc/sysimage/version.json)."""

    def __init__(self, d, keys, url, ca):
        self.d = d
        self.disk = os.path.join(d, "disk.img")
        self.cache = os.path.join(d, "cache", "recovery")
        self.state = os.path.join(d, "state")
        self.misc = os.path.join(d, "misc.img")
        self.version = os.path.join(d, "version.json")
        self.config = os.path.join(d, "client.ini")
        self.logs = os.path.join(d, "logs")
        for p in (self.cache, self.state, self.logs):
            os.makedirs(p, exist_ok=True)
        with open(os.path.join(d, "machine-id"), "w") as f:
            f.write(MACHINE_ID + "\n")
        with open(self.config, "w") as f:
            f.write(f"""# sysimage-stub configuration of the demo device.
# cache_dir and boot_control are host files standing for the device's cache
# partition (/cache/recovery) and its misc partition; the demo copies them
# into the disk image before each reboot into the recovery and back after it.
[service]
base = {url}
channel = {CHANNEL}
device = {BOARD}

[system]
cache_dir = {self.cache}
state_dir = {self.state}
machine_id = {os.path.join(d, "machine-id")}
version_file = {self.version}
boot_control = {self.misc}

[trust]
archive_master = {os.path.join(keys, "archive-master.keyring")}
ca_file = {ca}

[network]
connect_timeout = 10
low_speed_time = 30
retries = 3
""")

    def stub(self, *args, **kw):
        return run([STUB, "--config", self.config, *args], **kw)

    # -- disk image <-> host files
    def _misc_offset(self):
        return sihw.partitions(self.disk)["misc"].start

    def pull(self):
        """The normal OS boots: host files := the disk's cache, misc and version."""
        for n in os.listdir(self.cache):
            os.unlink(os.path.join(self.cache, n))
        for n in sihw.list_dir(self.disk, "cache", "/recovery"):
            data = sihw.read_file(self.disk, "cache", f"/recovery/{n}")
            if data is not None:
                with open(os.path.join(self.cache, n), "wb") as f:
                    f.write(data)
        with open(self.disk, "rb") as f:
            f.seek(self._misc_offset())
            block = f.read(sihw.GRUBENV_SIZE)
        with open(self.misc, "wb") as f:
            f.write(block)
        v = self.system_file("/etc/sysimage/version.json")
        if v is None:
            if os.path.exists(self.version):
                os.unlink(self.version)
        else:
            with open(self.version, "wb") as f:
                f.write(v)

    def push(self):
        """The normal OS reboots: the disk's cache and misc := host files."""
        have = set(sihw.list_dir(self.disk, "cache", "/recovery"))
        want = sorted(os.listdir(self.cache))
        gone = [f"rm /recovery/{n}" for n in sorted(have - set(want))]
        if gone:
            subprocess.run(["debugfs", "-w", "-f", "-", f"{self.disk}?offset="
                            f"{sihw.partitions(self.disk)['cache'].start}"],
                           input="\n".join(gone) + "\n", text=True, capture_output=True, check=True)
        if want:
            sihw.write_files(self.disk, "cache", "/recovery",
                             {n: pathlib.Path(self.cache, n) for n in want})
        with open(self.misc, "rb") as f:
            block = f.read()
        if len(block) != sihw.GRUBENV_SIZE:
            raise DemoFailure(f"{rel(self.misc)}: {len(block)} bytes, not a GRUB environment block")
        with open(self.disk, "r+b") as f:
            f.seek(self._misc_offset())
            f.write(block)
            f.flush()
            os.fsync(f.fileno())

    def system_file(self, path):
        try:
            return sihw.read_file(self.disk, "system", path)
        except sihw.HarnessError:
            return None


def short(text):
    """Long SHA-256 hex digests in file names shortened for reading."""
    return re.sub(r"([0-9a-f]{8})[0-9a-f]{56}", r"\1…", text)


def _kind(rec):
    return {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}.get(
        rec["type"], "special file")


def describe_changes(a, b):
    """What changed between two treecmp snapshots, one line per path, in words."""
    out = []
    for p in sorted(set(a) | set(b)):
        name = os.fsdecode(p)
        if p not in b:
            out.append(f"removed   {name} ({_kind(a[p])})")
        elif p not in a:
            out.append(f"added     {name} ({_kind(b[p])})")
        elif a[p] != b[p]:
            x, y = a[p], b[p]
            if x["type"] != y["type"]:
                what = f"{_kind(x)} -> {_kind(y)}"
            else:
                what = []
                if x.get("sha256") != y.get("sha256"):
                    what.append("content")
                if x["mode"] != y["mode"]:
                    what.append(f"mode {x['mode']:04o} -> {y['mode']:04o}")
                if x.get("link") != y.get("link"):
                    what.append(f"target {os.fsdecode(x['link'])} -> {os.fsdecode(y['link'])}")
                if (x["uid"], x["gid"]) != (y["uid"], y["gid"]):
                    what.append("owner")
                what = ", ".join(what) or "metadata"
            out.append(f"changed   {name}: {what}")
    return out


def publish(steps, repo, keys, trees, v):
    run([SYSIMAGE, "publish", "--repo", repo, "--keys", keys, "--channel", CHANNEL,
         "--device", BOARD, "--version", str(v), "--tree", trees[v],
         "--description", f"sample OS build {v}"])
    with open(os.path.join(repo, CHANNEL, BOARD, "index.json")) as f:
        index = json.load(f)
    say(f"  /{CHANNEL}/{BOARD}/index.json (generated_at {index['global']['generated_at']}):")
    for img in index["images"]:
        what = (f"full {img['version']}" if img["type"] == "full"
                else f"delta {img.get('base')} -> {img['version']}")
        files = ", ".join(f"{short(os.path.basename(fl['path']))} {human(fl['size'])}"
                          for fl in sorted(img["files"], key=lambda x: x["order"]))
        say(f"    {what:12} {files}")
    kinds = {(i["type"], i["version"], i.get("base")) for i in index["images"]}
    want = {("full", 1, None)} if v == 1 else {("full", 1, None), ("full", 2, None), ("delta", 2, 1)}
    steps.check(want <= kinds, "the index offers " + ", ".join(
        f"{t} {b} -> {n}" if b else f"{t} {n}" for t, n, b in sorted(want, key=str)))


# ---------------------------------------------------------------- checks
def system_tree_diff(dev, tree, build):
    """Differences between the disk's system partition and tree, plus the
    version.json the published version tarball adds (build `build`).
    Returns (problems, number of paths compared, what was compared)."""
    version = dev.system_file("/etc/sysimage/version.json")
    problems = []
    if version is None:
        problems.append("etc/sysimage/version.json missing")
    else:
        try:
            doc = json.loads(version)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("build") != build or doc.get("channel") != CHANNEL:
            problems.append(f"etc/sysimage/version.json is {version!r}, not build {build} "
                            f"of {CHANNEL}")
    expected = treecmp.snapshot(tree)
    if sihw.can_mount():
        with sihw.mounted_ro(dev.disk, "system") as mnt:
            actual = treecmp.snapshot(mnt)
        how = "type, mode, owner, size, content, xattrs, link targets, hardlinks"
    else:  # debugfs rdump: owners need root, hardlinks come back as copies
        tmp = tempfile.mkdtemp(prefix="si-demo-system-")
        try:
            sihw.read_tree(dev.disk, "system", tmp)
            actual = treecmp.snapshot(tmp)
        finally:
            shutil.rmtree(tmp)
        for snap in (expected, actual):
            for r in snap.values():
                for k in ("uid", "gid", "links"):
                    r.pop(k, None)
                r["mode"] &= 0o777  # rdump drops setuid/setgid/sticky bits
        how = ("type, permission bits, size, content, link targets (without root: read with debugfs "
               "rdump, owners, special mode bits and hardlinks not compared)")
    for p in (b"lost+found", b"etc/sysimage/version.json"):
        actual.pop(p, None)
        for k in list(actual):
            if k.startswith(b"lost+found/"):
                actual.pop(k)
    problems += treecmp.diff(expected, actual)
    return problems, len(expected), how


def boot_recovery(dev, steps, label, mode="update", timeout=300):
    log = os.path.join(dev.logs, f"{label}-serial.log")
    say(f"  the device reboots into the recovery: QEMU (TCG), 96 MiB, one virtio disk "
        f"(sysimage.mode={mode})")
    say(f"  $ tests/qemu/boot-recovery {rel(dev.disk)} --mode {mode} --log {rel(log)}")
    r = sihw.boot_recovery(dev.disk, mode=mode, timeout=timeout, log=log)
    say(f"  QEMU stopped after {r.seconds:.1f} s: {r.reason}"
        + (f", result code {r.result}" if r.result is not None else ""))
    if r.reason != "debug-exit":
        tail = r.log_text().strip().split("\n")[-15:]
        indent("\n".join(tail), "    | ")
    res = sihw.read_last_result(dev.disk)
    if res is not None:
        say("  /cache/recovery/last_result.json: " + json.dumps(res, sort_keys=True))
    last_log = sihw.read_file(dev.disk, "cache", "/recovery/last_log")
    if last_log:
        say("  /cache/recovery/last_log:")
        indent(short(last_log.decode(errors="replace")), "    | ", limit=30)
    steps.check(r.reason == "debug-exit" and r.result == 0,
                f"the recovery reported success (exit code {r.result}, {r.reason}; serial log {rel(log)})")
    steps.check(res is not None and res.get("result") == 0,
                "last_result.json on the cache partition says result 0")
    env = sihw.read_misc_env(dev.disk)
    steps.check(env is not None and env.get("recovery_request") == "0",
                f"the boot control is back to normal boot (misc: {env})")
    steps.boots.append((label, r.seconds))
    return res


def stage_and_boot(dev, steps, round_label, build_arg):
    extra = ["--build", str(build_arg)] if build_arg is not None else []
    dev.stub("check", *extra)
    dev.stub("stage", *extra)
    cmdfile = os.path.join(dev.cache, "sysimage_command")
    steps.check(os.path.exists(cmdfile), "the stub staged the update and wrote the command file")
    staged = sorted(os.listdir(dev.cache))
    keyrings = [n for n in staged if n.endswith(".keyring")]
    updates = [n for n in staged if n.endswith((".tar.zst", ".tar.xz"))]
    others = [n for n in staged if n not in keyrings and n not in updates and not n.endswith(".sig")]
    say(f"  now in the cache ({rel(dev.cache)}), each download verified by the stub:")
    say(f"    keyrings: {', '.join(keyrings)} (+ .sig)")
    for n in updates:
        say(f"    update:   {short(n)} {human(os.path.getsize(os.path.join(dev.cache, n)))} (+ .sig)")
    say(f"    also:     {', '.join(others)}")
    with open(cmdfile) as f:
        command = f.read()
    say("  the command file for the recovery (/cache/recovery/sysimage_command):")
    indent(short(command), "    > ")
    dev.stub("reboot-recovery", "--no-reboot")
    env = sihw.parse_grubenv(open(dev.misc, "rb").read())
    steps.check(env is not None and env.get("recovery_request") == "1",
                f"the stub set recovery_request=1 in the boot control ({env})")
    say("  copying the cache files and the misc block into the disk image (what the device's "
        "own partitions would hold)")
    dev.push()
    res = boot_recovery(dev, steps, round_label)
    dev.pull()
    return command, res


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "demo"),
                    help="where trees, repo, TLS files, nginx and the device go (default build/demo; "
                         "emptied first)")
    ap.add_argument("--keys", default=os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"),
                    help="key hierarchy (default keys/dev, the one built into the recovery)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per recovery boot (default 300)")
    a = ap.parse_args()
    work = os.path.abspath(a.workdir)
    keys = os.path.abspath(a.keys)

    def on_term(signum, frame):
        raise KeyboardInterrupt  # unwinds: QEMU killed, nginx stopped, summary
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    t_start = time.monotonic()
    steps = Steps()
    ng = None
    failed = None
    say("sysimage demo: build, publish, serve, then update a device three times through its recovery")
    say(f"  work dir {rel(work)}, keys {rel(keys)}, board {BOARD}, channel {CHANNEL}")
    try:
        for need in (SYSIMAGE, STUB, os.path.join(keys, "archive-master.keyring"),
                     os.path.join(keys, "image-signing.key"),
                     os.path.join(sihw.RECOVERY_DIR, "vmlinuz"), os.path.join(sihw.RECOVERY_DIR, "initrd.img")):
            if not os.path.exists(need):
                raise DemoFailure(f"{rel(need)} missing: run `make demo` (it builds the programs, "
                                  "the keys and the recovery image first)")
        if os.path.isdir(work):
            shutil.rmtree(work)
        os.makedirs(work)
        trees = {v: os.path.join(work, "os", f"v{v}") for v in (1, 2)}
        repo = os.path.join(work, "repo")

        # ------------------------------------------------------------ 1
        with steps.step("1. Two builds of a small sample OS (BusyBox) for the qemu-x86_64 board"):
            for v in (1, 2):
                run([SAMPLE_OS, str(v), trees[v]])
            snap1 = treecmp.snapshot(trees[1])
            size = sum(r.get("size", 0) for r in snap1.values())
            say(f"  build 1: {len(snap1)} paths, {human(size)} "
                "(busybox, /etc/os-release, users, a 2 MiB firmware blob, symlinks, a hardlink)")
            say("  build 2 differs from build 1 in:")
            indent("\n".join(describe_changes(treecmp.snapshot(trees[1]), treecmp.snapshot(trees[2]))),
                   "    ")

        # ------------------------------------------------------------ 2
        with steps.step("2. Publish build 1, signed with the development keys"):
            publish(steps, repo, keys, trees, 1)
            say("  every file has a detached signature (.sig); the tree is plain static files:")
            for dp, dn, fn in sorted(os.walk(repo)):
                dn.sort()
                shown = [n for n in sorted(fn) if not n.startswith(".")]
                if shown and not dp[len(repo):].startswith("/pool"):
                    say(f"    {dp[len(repo):] or '/'}: {', '.join(shown)}")
            pool = [n for n in os.listdir(os.path.join(repo, "pool"))
                    if not n.endswith(".sig") and not n.startswith(".")]
            say(f"    /pool: {len(pool)} update files, each with its .sig")

        # ------------------------------------------------------------ 3
        with steps.step("3. Serve the repo over HTTPS: a demo CA (openssl) and a real nginx on 127.0.0.1"):
            tls_dir = os.path.join(work, "tls")
            os.makedirs(tls_dir)
            tls = nginx_server.make_tls(tls_dir)
            say(f"  demo CA {rel(tls[0])}, server certificate for 127.0.0.1 {rel(tls[1])}")
            ng_dir = os.path.join(work, "nginx")
            os.makedirs(ng_dir)
            ng = nginx_server.Nginx(repo, ng_dir, tls)
            say(f"  nginx (pid {ng.proc.pid}) serves {rel(repo)} at {ng.url}/ "
                f"(config {rel(os.path.join(ng_dir, 'nginx.conf'))})")

        # ------------------------------------------------------------ 4
        with steps.step("4. A blank device: a board disk image with an empty system partition"):
            dev = Device(os.path.join(work, "device"), keys, ng.url, tls[0])
            layout = [(l, s, "raw" if l == "system" else k) for l, s, k in sihw.DEFAULT_LAYOUT]
            parts = sihw.build_disk(dev.disk, layout=layout, recovery_image=sihw.RECOVERY_DIR)
            say(f"  {rel(dev.disk)}: GPT " + ", ".join(
                f"{l} {p.size // sihw.MIB} MiB" for l, p in sorted(parts.items(), key=lambda x: x[1].start)))
            say("  recovery partition: build/recovery/{vmlinuz,initrd.img}; system partition: zeros "
                "(no file system); misc: recovery_request=0")
            sihw.write_files(dev.disk, "userdata", "/user",
                             {"notes.txt": "Things the user keeps: updates must not touch them.\n"})
            say("  the user's data: /data/user/notes.txt on the userdata partition")
            dev.pull()
            say(f"  the device's client.ini: {rel(dev.config)} (server {ng.url}, archive-master "
                f"{rel(os.path.join(keys, 'archive-master.keyring'))}, CA {rel(tls[0])})")
            steps.check(not os.path.exists(dev.version), "no build is installed yet")

        # ------------------------------------------------------------ 5
        with steps.step("5. Round 1, first install: the stub stages the full image of build 1"):
            say("  (a blank device has no /etc/sysimage/version.json: the stub is told --build 0)")
            command, res = stage_and_boot(dev, steps, "round1", 0)
            steps.check("format system" in command, "the command file formats the system partition (full image)")
            steps.check(res.get("to_version") == 1, f"the recovery installed build 1 ({res.get('message')})")
            problems, n, how = system_tree_diff(dev, trees[1], 1)
            indent("\n".join(problems[:20]), "    ! ")
            steps.check(not problems, f"the system partition equals build 1: {n} paths compared ({how}) "
                        "+ etc/sysimage/version.json = build 1")
            steps.check(sihw.read_file(dev.disk, "userdata", "/user/notes.txt") is not None,
                        "the user's data is untouched")

        # ------------------------------------------------------------ 6
        with steps.step("6. Publish build 2: a full image and a delta 1 -> 2 (nginx keeps serving)"):
            publish(steps, repo, keys, trees, 2)

        # ------------------------------------------------------------ 7
        with steps.step("7. Round 2, update: the stub sees build 1 and stages the delta to build 2"):
            p = dev.stub("check", "--json", show=False)
            info = json.loads(p.stdout)
            steps.check(info.get("update_available") and info.get("target") == 2
                        and [i.get("type") for i in info.get("path", [])] == ["delta"],
                        f"check: build {info.get('build')} -> {info.get('target')} by "
                        + " + ".join(f"{i.get('type')}" for i in info.get("path", [])))
            command, res = stage_and_boot(dev, steps, "round2", None)
            steps.check("format system" not in command, "the command file patches the system in place (no format)")
            steps.check(res.get("from_version") == 1 and res.get("to_version") == 2,
                        f"the recovery updated build 1 to build 2 ({res.get('message')})")
            problems, n, how = system_tree_diff(dev, trees[2], 2)
            indent("\n".join(problems[:20]), "    ! ")
            steps.check(not problems, f"the system partition equals build 2: {n} paths compared ({how}) "
                        "+ etc/sysimage/version.json = build 2")
            steps.check(sihw.read_file(dev.disk, "userdata", "/user/notes.txt") is not None,
                        "the user's data is untouched")
            dev.stub("status")
            p = dev.stub("check", show=False, check=False)
            say("  $ sysimage-stub check  ->  " + p.stdout.strip().replace("\n", "; "))
            steps.check(p.returncode == 100, f"check: up to date (exit {p.returncode}, 100 = nothing to install)")

        # ------------------------------------------------------------ 8
        with steps.step("8. Round 3, factory reset: userdata wiped, system untouched"):
            steps.check(sihw.read_file(dev.disk, "userdata", "/user/notes.txt") is not None,
                        "before: the user's data is on userdata")
            before = sihw.partition_sha256(dev.disk, "system")
            dev.stub("factory-reset", "--no-reboot")
            env = sihw.parse_grubenv(open(dev.misc, "rb").read())
            steps.check(env is not None and env.get("recovery_request") == "factory-reset",
                        f"the stub set recovery_request=factory-reset ({env})")
            dev.push()
            say("  (the recovery boots in its default mode and finds recovery_request=factory-reset in the "
                "boot control; GRUB's \"Factory reset\" entry passes sysimage.mode=factory-reset instead)")
            res = boot_recovery(dev, steps, "round3")
            dev.pull()
            steps.check(res.get("mode") == "factory-reset", "the recovery ran a factory reset")
            left = [n for n in sihw.list_dir(dev.disk, "userdata", "/") if n != "lost+found"]
            steps.check(not left, f"userdata is empty again (left: {left or 'nothing'})")
            steps.check(sihw.partition_sha256(dev.disk, "system") == before,
                        "the system partition is byte for byte what it was (still build 2)")
            dev.stub("status")
    except DemoFailure as e:
        failed = str(e)
        if steps.current:
            failed = f"{steps.current}: {failed}"
    except sihw.HarnessError as e:
        failed = f"board harness: {e}"
    except (OSError, RuntimeError, subprocess.CalledProcessError, ValueError, KeyError) as e:
        failed = f"{type(e).__name__}: {e}"
    except KeyboardInterrupt:
        failed = "interrupted (nothing is left running)"
    finally:
        if ng is not None:
            ng.stop()
            say()
            say("nginx stopped")

    total = time.monotonic() - t_start
    say()
    say("== Summary")
    for title, secs, ok in steps.done:
        say(f"  {secs:6.1f} s  {'ok  ' if ok else 'FAIL'}  {title}")
    say(f"  {total:6.1f} s  total")
    if steps.boots:
        say("  recovery boots (QEMU start to power-off): " +
            ", ".join(f"{label} {secs:.1f} s" for label, secs in steps.boots))
    if failed:
        say(f"demo: FAILED: {failed}")
        return 1
    say(f"demo: all {steps.checks} checks passed in {total:.0f} s "
        f"(logs and the device's disk image in {rel(work)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
