#!/usr/bin/env python3
"""sysimage demo: a real device, from a blank disk to an update and a factory
reset, every step a real boot under QEMU (TCG).

    /usr/bin/python3 tests/demo/demo.py [--workdir DIR] [--keys DIR] [--firmware efi|bios] [--timeout S]

(`make demo` builds what it needs first and runs this.)

1. A demo CA (openssl) and a real nginx serving the update repo over HTTPS
   on the host's 127.0.0.1 (the device reaches it at 10.0.2.2 through QEMU
   user networking).
2. Two builds of the BusyBox sample OS for the qemu-x86_64 board
   (images/qemu-x86_64/sample-os.sh): Debian's cloud kernel and an initrd in
   /boot, an init that mounts the board's layout and confirms its boots to
   GRUB, and sysimage-stub configured for that nginx, with the demo CA and the
   archive-master in the image.
3. `sysimage publish` puts build 1 into the repo, signed with the dev keys.
4. A blank board disk (images/board.py reading images/qemu-x86_64/board.json):
   GPT, GRUB for UEFI and BIOS with the board's grub.cfg, the recovery image,
   an empty system partition. The factory stages build 1 for it (the host's
   sysimage-stub, --build 0) into its cache partition and sets the recovery
   request in misc.
5. Power on (OVMF by default): GRUB finds no system and boots the recovery,
   which installs build 1 and reboots; GRUB boots Normal; build 1 runs.
6. Build 2 is published (full + delta 1 -> 2). On the device's serial
   console: `sysimage-stub check`, `stage` (the delta, from nginx),
   `reboot-recovery`: GRUB boots the recovery, which patches the system and
   reboots into build 2; `sysimage-stub status` reports build 2 and the result.
7. `reboot`, and "Factory reset" is chosen on GRUB's menu with the key `f`
   over the serial console: userdata is wiped, build 2 comes back.
8. Checks read back from the disk image: the system partition equals build 2,
   misc and GRUB's counters are back to normal.
Everything the device prints is shown (prefixed `|`). Exit status 0 only when
every check passed.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import devloop  # noqa: E402
import sihw  # noqa: E402
import treecmp  # noqa: E402

BIN = os.path.join(ROOT, "build", "bin")
SYSIMAGE = os.path.join(BIN, "sysimage")
STUB = os.path.join(BIN, "sysimage-stub")
BOARD = devloop.BOARD
CHANNEL = devloop.CHANNEL


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


def short(text):
    """Long SHA-256 hex digests in file names shortened for reading."""
    return re.sub(r"([0-9a-f]{8})[0-9a-f]{56}", r"\1…", text)


def _kind(rec):
    return {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}.get(
        rec["type"], "special file")


def describe_changes(a, b):
    """What changed between two treecmp snapshots, one line per path, in words."""
    out = []
    for name, x, y in treecmp.changes(a, b):
        if y is None:
            out.append(f"removed   {name} ({_kind(x)})")
        elif x is None:
            out.append(f"added     {name} ({_kind(y)})")
        else:
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




# ---------------------------------------------------------------- the console
class Console:
    """Shows what the device prints, line by line, prefixed with `|`: escape
    sequences removed, GRUB's full-screen menu folded into its lines."""

    def __init__(self):
        self.partial = b""
        self.last = None

    def __call__(self, chunk):
        data = self.partial + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:
            self.partial = data
            return
        self.partial = data[cut + 1:]
        text = sihw.ANSI_RE.sub(b"", data[:cut + 1]).decode(errors="replace")
        for piece in re.split(r"[\r\n]+| {4,}", text):
            piece = piece.strip()
            if not piece or re.fullmatch(r"[+|-]+", piece) or piece == self.last or "@@" in piece:
                continue
            piece = re.sub(r"^\+-+\+\|*\+-+\+", "", piece).strip()
            if not piece:
                continue
            self.last = piece
            say("  | " + short(piece))


def publish(steps, server, tree, v):
    run([SYSIMAGE, "publish", "--repo", server.repo, "--keys", server.keys, "--channel", CHANNEL,
         "--device", BOARD, "--version", str(v), "--tree", tree, "--description", f"sample OS build {v}"])
    with open(os.path.join(server.repo, CHANNEL, BOARD, "index.json")) as f:
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


def shell(m, steps, command, timeout):
    say(f"  device# {command}")
    rc, out = m.shell(command, timeout)
    steps.check(rc == 0, f"`{command}` on the device exits 0 (got {rc})")
    return out


def status(m, steps, timeout):
    out = shell(m, steps, "sysimage-stub status --json", timeout)
    return json.loads(out[out.index("{"):])


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "demo"),
                    help="where trees, repo, TLS files, nginx and the device go (default build/demo; emptied first)")
    ap.add_argument("--keys", default=os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"),
                    help="key hierarchy (default keys/dev, the one built into the recovery)")
    ap.add_argument("--firmware", choices=("efi", "bios"), default="efi",
                    help="efi: OVMF (default); bios: SeaBIOS; the same disk boots both")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per boot step (default 300)")
    a = ap.parse_args()
    work = os.path.abspath(a.workdir)
    keys = os.path.abspath(a.keys)
    T = a.timeout

    def on_term(signum, frame):
        raise KeyboardInterrupt  # unwinds: QEMU killed, nginx stopped, summary
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    t_start = time.monotonic()
    steps = Steps()
    server = None
    machine = None
    failed = None
    marks = []
    say("sysimage demo: a QEMU device from a blank disk to build 2 and a factory reset, through GRUB and its recovery")
    say(f"  work dir {rel(work)}, keys {rel(keys)}, board {BOARD}, channel {CHANNEL}, firmware {a.firmware}")
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

        with steps.step("1. Serve the update repo over HTTPS: a demo CA and a real nginx"):
            server = devloop.Server(work, keys)
            say(f"  demo CA {rel(server.ca)}; certificate for 127.0.0.1 and 10.0.2.2")
            say(f"  nginx (pid {server.nginx.proc.pid}) serves {rel(server.repo)} at {server.url}/")
            say(f"  the device reaches it at {server.guest_url}/ (QEMU user networking)")

        trees = {v: os.path.join(work, "os", f"v{v}") for v in (1, 2)}
        with steps.step("2. Two builds of the BusyBox sample OS, bootable, with the stub configured for that server"):
            for v in (1, 2):
                devloop.device_tree(server, v, trees[v])
            snap1 = treecmp.snapshot(trees[1])
            size = sum(r.get("size", 0) for r in snap1.values())
            say(f"  build 1: {len(snap1)} paths, {human(size)}: /boot/vmlinuz (Debian cloud kernel) + "
                "/boot/initrd.img, BusyBox, /usr/bin/sysimage-stub and its libraries,")
            say("    /etc/sysimage/{client.ini,archive-master.keyring,server-ca.pem}, /etc/init.d/rcS")
            say("  build 2 differs from build 1 in:")
            indent("\n".join(describe_changes(treecmp.snapshot(trees[1]), treecmp.snapshot(trees[2]))), "    ")

        with steps.step("3. Publish build 1, signed with the development keys"):
            publish(steps, server, trees[1], 1)

        disk = os.path.join(work, "device", "disk.img")
        os.makedirs(os.path.dirname(disk))
        with steps.step("4. A blank device; the factory stages build 1 on it"):
            parts = devloop.blank_disk(disk)
            say(f"  {rel(disk)}: GPT " + ", ".join(
                f"{l} {p.size // sihw.MIB} MiB" for l, p in sorted(parts.items(), key=lambda x: x[1].start)))
            say("  esp: EFI/BOOT/BOOTX64.EFI, grub/grub.cfg, grub/bootcount.env; bios: GRUB's core image "
                "(boot.img in the MBR); recovery: vmlinuz + initrd.img; system: no file system yet")
            names, env = devloop.provision(disk, os.path.join(work, "factory"), server, run=lambda c: run(c))
            say(f"  staged into the disk's cache partition (/recovery/): {len(names)} files; misc: {env}")
            steps.check(env.get("recovery_request") == "1", "the factory requested the recovery in misc")

        console = Console()
        with steps.step(f"5. Power on ({'OVMF' if a.firmware == 'efi' else 'SeaBIOS'}): GRUB -> recovery "
                        "installs build 1 -> GRUB -> build 1"):
            log = os.path.join(work, "device", "serial.log")
            say(f"  $ qemu-system-x86_64 -accel tcg ... (console below, also in {rel(log)})")
            machine = m = sihw.Machine(disk, firmware=a.firmware, log=log, echo=console)
            m.expect(devloop.GRUB_MENU, T)
            marks.append(("GRUB menu", m.seconds()))
            rc = m.expect(devloop.RECOVERY_DONE, T).group(1)
            marks.append(("recovery done (build 1 installed)", m.seconds()))
            steps.check(rc == "0", "the recovery installed build 1 (result 0)")
            b = m.expect(devloop.UP, T).group(1)
            marks.append(("build 1 up", m.seconds()))
            steps.check(b == "1", "GRUB booted Normal: build 1 is up")
            st = status(m, steps, T)
            steps.check(st.get("build") == 1 and (st.get("last_result") or {}).get("to_version") == 1,
                        "sysimage-stub status on the device: build 1, last result: installed build 1")
            shell(m, steps, "echo 'Things the user keeps.' > /home/notes.txt && sync", T)

        with steps.step("6. Build 2 is published; the device stages the delta from nginx and updates"):
            publish(steps, server, trees[2], 2)
            t0 = m.seconds()
            # what the commands print is on the device's console (shown with |)
            outs = devloop.guest_update(m, T, say=lambda line: say(line), show_output=False)
            steps.check("delta 1 -> 2" in outs["sysimage-stub check"], "the stub on the device chose the delta 1 -> 2")
            rc = m.expect(devloop.RECOVERY_DONE, T).group(1)
            marks.append(("recovery done (delta applied)", m.seconds()))
            steps.check(rc == "0", "GRUB booted the recovery, which applied the delta (result 0)")
            b = m.expect(devloop.UP, T).group(1)
            marks.append(("build 2 up", m.seconds()))
            steps.check(b == "2", f"GRUB booted Normal: build 2 is up ({m.seconds() - t0:.0f} s after the reboot)")
            st = status(m, steps, T)
            lr = st.get("last_result") or {}
            steps.check(st.get("build") == 2 and lr.get("from_version") == 1 and lr.get("to_version") == 2,
                        "sysimage-stub status: build 2, last result: 1 -> 2")
            out = shell(m, steps, "cat /home/notes.txt", T)
            steps.check(out.strip() == "Things the user keeps.", "the user's data survived the update")

        with steps.step("7. Factory reset chosen on GRUB's menu (key `f` on the serial console)"):
            say("  device# reboot")
            m.send("reboot\n")
            m.menu_key("f", T)
            say("  (pressed f)")
            m.expect(r"booting Recovery \(mode factory-reset", T)
            rc = m.expect(devloop.RECOVERY_DONE, T).group(1)
            marks.append(("factory reset done", m.seconds()))
            steps.check(rc == "0", "the recovery ran the factory reset (result 0)")
            b = m.expect(devloop.UP, T).group(1)
            marks.append(("build 2 up after the reset", m.seconds()))
            steps.check(b == "2", "build 2 is up again")
            rc, _ = m.shell("test -e /home/notes.txt")
            steps.check(rc != 0, "the user's data is gone (userdata was formatted)")
            st = status(m, steps, T)
            steps.check((st.get("last_result") or {}).get("mode") == "factory-reset",
                        "sysimage-stub status: last result is the factory reset")
            say("  device# poweroff")
            m.send("poweroff\n")
            m.wait(T)
            machine = None

        with steps.step("8. Checks read back from the disk image"):
            problems, n = devloop.system_diff(disk, trees[2], 2)
            indent("\n".join(problems[:20]), "    ! ")
            steps.check(not problems, f"the system partition equals build 2: {n} paths compared "
                        "(type, permission bits, size, content, link targets; read with debugfs)")
            env = sihw.read_misc_env(disk)
            steps.check(env is not None and env.get("recovery_request") == "0", f"misc: normal boot ({env})")
            count = sihw.read_bootcount(disk)
            steps.check(count == {"recovery_boots": "0", "normal_boots": "0", "system_new": "0"},
                        f"GRUB's counters on the ESP are back to 0 ({count})")
    except DemoFailure as e:
        failed = str(e)
        if steps.current:
            failed = f"{steps.current}: {failed}"
    except sihw.HarnessError as e:
        failed = f"device: {e}"
    except (OSError, RuntimeError, subprocess.CalledProcessError, ValueError, KeyError) as e:
        failed = f"{type(e).__name__}: {e}"
    except KeyboardInterrupt:
        failed = "interrupted (nothing is left running)"
    finally:
        if machine is not None:
            machine.kill()
        if server is not None:
            server.stop()
            say()
            say("nginx stopped")

    total = time.monotonic() - t_start
    say()
    say("== Summary")
    for title, secs, ok in steps.done:
        say(f"  {secs:6.1f} s  {'ok  ' if ok else 'FAIL'}  {title}")
    say(f"  {total:6.1f} s  total")
    if marks:
        say("  device clock (seconds since power on): " + ", ".join(f"{w} {s:.0f}" for w, s in marks))
    if failed:
        say(f"demo: FAILED: {failed}")
        return 1
    say(f"demo: all {steps.checks} checks passed in {total:.0f} s "
        f"(logs and the device's disk image in {rel(work)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
