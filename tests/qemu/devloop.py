"""devloop - the whole device update loop, shared by tests/qemu/test_device.py
and tests/demo/demo.py.

- Server: a demo CA, a real nginx serving a repo over HTTPS on the host's
  127.0.0.1 (10.0.2.2 for the guest, QEMU user networking).
- device_tree(): the bootable BusyBox sample OS of a build, configured for
  that server (its URL as the guest sees it, the demo CA, the archive-master).
- publish(): `sysimage publish` of a build into the repo.
- provision(): a blank board disk (GRUB, recovery, empty system) on which the
  factory staged build 1: the host's sysimage-stub stages the full image into
  files standing for the cache partition and misc, copied into the disk.
- guest_update(): in the running normal OS, `sysimage-stub check`, `stage`,
  `reboot-recovery` typed on its serial console.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import nginx_server  # noqa: E402
import sihw  # noqa: E402

BIN = os.path.join(ROOT, "build", "bin")
SYSIMAGE = os.path.join(BIN, "sysimage")
STUB = os.path.join(BIN, "sysimage-stub")
BOARD = "qemu-x86_64"
CHANNEL = "stable"
GUEST_HOST = "10.0.2.2"

# Console lines of the device (images/qemu-x86_64, initramfs/init, grub.cfg).
UP = r"sample-os: build (\S+) is up"
RECOVERY_DONE = r"init: recovery result (\d+)"
GRUB_MENU = r"Factory reset"


class Server:
    def __init__(self, work, keys):
        self.keys = keys
        self.repo = os.path.join(work, "repo")
        os.makedirs(self.repo, exist_ok=True)
        tls_dir = os.path.join(work, "tls")
        os.makedirs(tls_dir, exist_ok=True)
        self.tls = nginx_server.make_tls(tls_dir)
        self.ca = self.tls[0]
        ng_dir = os.path.join(work, "nginx")
        os.makedirs(ng_dir, exist_ok=True)
        self.nginx = nginx_server.Nginx(self.repo, ng_dir, self.tls)
        self.url = self.nginx.url
        self.guest_url = self.url.replace("127.0.0.1", GUEST_HOST)

    def stop(self):
        self.nginx.stop()


def device_tree(server, version, out, extra_env=None):
    return sihw.device_os(version, out, server_url=server.guest_url, ca_file=server.ca,
                          archive_master=os.path.join(server.keys, "archive-master.keyring"), channel=CHANNEL,
                          extra_env=extra_env)


def publish(server, tree, version, run=None):
    cmd = [SYSIMAGE, "publish", "--repo", server.repo, "--keys", server.keys, "--channel", CHANNEL,
           "--device", BOARD, "--version", str(version), "--tree", tree,
           "--description", f"sample OS build {version}"]
    if run:
        return run(cmd)
    subprocess.run(cmd, check=True, capture_output=True)


def host_stub_config(d, server):
    """A client.ini for the factory's host-side stub: cache and misc are host
    files copied into the disk afterwards."""
    cache = os.path.join(d, "cache", "recovery")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    with open(os.path.join(d, "machine-id"), "w") as f:
        f.write("5d1e0c0ffee0d15ea5eba5eba11c0de5\n")
    with open(os.path.join(d, "misc.img"), "wb") as f:
        f.write(sihw.grubenv_block({"recovery_request": "0"}))
    cfg = os.path.join(d, "client.ini")
    with open(cfg, "w") as f:
        f.write(f"""# The factory's sysimage-stub: it stages build 1 for a blank device.
[service]
base = {server.url}
channel = {CHANNEL}
device = {BOARD}

[system]
cache_dir = {cache}
state_dir = {os.path.join(d, "state")}
machine_id = {os.path.join(d, "machine-id")}
version_file = {os.path.join(d, "no-version.json")}
boot_control = {os.path.join(d, "misc.img")}

[trust]
archive_master = {os.path.join(server.keys, "archive-master.keyring")}
ca_file = {server.ca}
""")
    return cfg, cache


def blank_disk(disk):
    """A board disk as it leaves the factory line before provisioning: GRUB
    (UEFI + BIOS), the recovery image, misc clean, system without a
    filesystem, empty cache and userdata."""
    layout = [(l, s, "raw" if l == "system" else k) for l, s, k in sihw.DEFAULT_LAYOUT]
    return sihw.build_disk(disk, layout=layout, recovery_image=sihw.RECOVERY_DIR)


def provision(disk, factory_dir, server, run=None):
    """Stage build 1 (full) for a blank disk with the host's stub (--build 0),
    then copy the staged files into the disk's cache partition and the
    request into its misc."""
    cfg, cache = host_stub_config(factory_dir, server)
    runner = run or (lambda cmd: subprocess.run(cmd, check=True, capture_output=True, text=True))
    runner([STUB, "--config", cfg, "stage", "--build", "0"])
    runner([STUB, "--config", cfg, "reboot-recovery", "--no-reboot"])
    names = sorted(os.listdir(cache))
    sihw.write_files(disk, "cache", "/recovery", {n: pathlib.Path(cache, n) for n in names})
    with open(os.path.join(factory_dir, "misc.img"), "rb") as f:
        block = f.read()
    env = sihw.parse_grubenv(block)
    sihw.write_misc_env(disk, env)
    return names, env


def guest_update(m, timeout=300, say=None, show_output=True):
    """In the running normal OS: check, stage, reboot-recovery. Returns the
    outputs of check and stage. say: prints the commands (and with
    show_output what they printed)."""
    outs = {}
    for cmd in ("sysimage-stub check", "sysimage-stub stage"):
        if say:
            say(f"  device# {cmd}")
        rc, out = m.shell(cmd, timeout)
        if say and show_output:
            for line in out.splitlines():
                say(f"    {line}")
        if rc != 0:
            raise sihw.HarnessError(f"{cmd} in the guest exited {rc}: {out}")
        outs[cmd] = out
    if say:
        say("  device# sysimage-stub reboot-recovery")
    m.send("sysimage-stub reboot-recovery\n")
    return outs


def guest_status(m):
    rc, out = m.shell("sysimage-stub status --json")
    if rc != 0:
        raise sihw.HarnessError(f"sysimage-stub status exited {rc}: {out}")
    return json.loads(out[out.index("{"):])


def system_diff(disk, tree, build, label="system"):
    """Differences between the disk's system partition (label: e.g. an A/B
    slot, system_a) and tree (plus the
    version.json of build `build` that the published version tarball adds),
    read with debugfs rdump (no root: owners, special mode bits and hardlinks
    are not compared). Returns (problems, number of paths compared)."""
    import tempfile
    import treecmp
    problems = []
    v = sihw.read_file(disk, label, "/etc/sysimage/version.json")
    doc = json.loads(v) if v else None
    if not isinstance(doc, dict) or doc.get("build") != build or doc.get("channel") != CHANNEL:
        problems.append(f"etc/sysimage/version.json is {v!r}, not build {build} of {CHANNEL}")
    expected = treecmp.snapshot(tree)
    tmp = tempfile.mkdtemp(prefix="devloop-system-")
    try:
        sihw.read_tree(disk, label, tmp)
        actual = treecmp.snapshot(tmp)
    finally:
        shutil.rmtree(tmp)
    for snap in (expected, actual):
        for r in snap.values():
            for k in ("uid", "gid", "links"):
                r.pop(k, None)
            r["mode"] &= 0o777
    for k in list(actual):
        if k in (b"lost+found", b"etc/sysimage/version.json") or k.startswith(b"lost+found/"):
            actual.pop(k)
    problems += treecmp.diff(expected, actual)
    return problems, len(expected)
