"""sihw - the sysimage QEMU harness: board disk images built on the host and
boots of the recovery image under QEMU.

Disk images are made without root, loop devices or mounts: sfdisk writes the
GPT (partition names = labels), mkfs.ext4 -E offset=… -d TREE fills ext4
partitions in place, mkfs.vfat --offset the ESP, and misc gets a GRUB
environment block. Files are put into and read back from ext4 partitions
with debugfs on "disk.img?offset=N".

A boot runs build/recovery/{vmlinuz,initrd.img} under TCG with one virtio
disk and isa-debug-exit; QEMU's status (code << 1) | 1 gives the recovery's
result code. A plain exit 0 means the guest powered off or rebooted without
reporting a result. A boot can be cut (SIGKILL of QEMU, like pulling the
power) after some seconds or when a line appears on the serial console.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
BUILD = os.path.join(ROOT, "build")
RECOVERY_DIR = os.path.join(BUILD, "recovery")


def recovery_dir(board="qemu-x86_64"):
    """The recovery image of a board (`make recovery-image BOARD=board`):
    build/recovery for qemu-x86_64, build/recovery-<board> for another."""
    return RECOVERY_DIR if board == "qemu-x86_64" else os.path.join(BUILD, f"recovery-{board}")


AB_RECOVERY_DIR = recovery_dir("qemu-x86_64-ab")
QEMU = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
MIB = 1024 * 1024

TYPE_BIOS = "21686148-6449-6E6F-744E-656564454649"
TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
TYPE_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

# The reference board (images/qemu-x86_64/board.json, DESIGN §8): every layout
# here comes from that file.
BOARD = boardlib.Board("qemu-x86_64")
_KIND = {"none": "raw", "vfat": "vfat", "grubenv": "misc", "ext4": "ext4"}
_FS = {v: k for k, v in _KIND.items()}
# label -> (size in MiB, content kind), "rest" resolved to its minimum.
DEFAULT_LAYOUT = [(label, size, _KIND[fs]) for label, size, fs, _ in BOARD.layout()]

GRUBENV_SIZE = boardlib.GRUBENV_SIZE
GRUBENV_SIG = boardlib.GRUBENV_SIG


class HarnessError(Exception):
    pass


def _run(cmd, env=None, **kw):
    """images/board.py's runner; its errors as HarnessError"""
    try:
        return boardlib._run(cmd, env=env, **kw)
    except boardlib.BoardError as e:
        raise HarnessError(str(e)) from None


# ---------------------------------------------------------------- grubenv
def grubenv_block(env):
    """Format a GRUB environment block (exactly 1024 bytes) from a dict."""
    try:
        return boardlib.grubenv_block(env)
    except boardlib.BoardError as e:
        raise HarnessError(str(e)) from None


def parse_grubenv(block):
    """Parse a GRUB environment block into a dict (None when it is not one)."""
    if len(block) < GRUBENV_SIZE or not block.startswith(GRUBENV_SIG):
        return None
    env = {}
    text = block[len(GRUBENV_SIG):GRUBENV_SIZE].decode("utf-8", errors="replace")
    i = 0
    while i < len(text):
        if text[i] == "#":
            nl = text.find("\n", i)
            if nl < 0:
                break
            i = nl + 1
            continue
        eq = text.find("=", i)
        if eq < 0:
            return None
        key = text[i:eq]
        j, val = eq + 1, []
        while j < len(text) and text[j] != "\n":
            if text[j] == "\\" and j + 1 < len(text):
                j += 1
            val.append(text[j])
            j += 1
        if j >= len(text):
            return None
        env[key] = "".join(val)
        i = j + 1
    return env


# ---------------------------------------------------------------- disk images
@dataclass
class Part:
    label: str
    number: int
    start: int  # bytes
    size: int   # bytes
    uuid: str = ""
    type: str = ""


def partitions(disk):
    """{label: Part} of a disk image, read with partx (libblkid)."""
    out = _run(["partx", "-g", "-b", "-P", "-o", "NR,START,SECTORS,NAME,UUID,TYPE", disk]).stdout.decode()
    parts = {}
    for line in out.splitlines():
        f = dict(re.findall(r'(\w+)="([^"]*)"', line))
        p = Part(f["NAME"], int(f["NR"]), int(f["START"]) * 512, int(f["SECTORS"]) * 512,
                 f.get("UUID", ""), f.get("TYPE", ""))
        if p.label in parts:
            raise HarnessError(f"{disk}: label {p.label!r} on partitions {parts[p.label].number} and {p.number}")
        parts[p.label] = p
    return parts


def _part(disk, label):
    parts = partitions(disk)
    if label not in parts:
        raise HarnessError(f"{disk}: no partition labelled {label!r}")
    return parts[label]


def _ext4_spec(disk, label):
    return f"{disk}?offset={_part(disk, label).start}"


def make_ext4(disk, label, tree=None, fs_label=None):
    """(Re)make the ext4 filesystem of partition `label` in place, filled from tree."""
    p = _part(disk, label)
    cmd = ["mkfs.ext4", "-q", "-F", "-L", fs_label or label, "-E", f"offset={p.start},nodiscard"]
    if tree:
        cmd += ["-d", tree]
    _run(cmd + [disk, f"{p.size // 1024}k"])


def make_vfat(disk, label, tree=None):
    p = _part(disk, label)
    _run(["mkfs.vfat", "-F", "32", "-s", "1", "-n", label.upper()[:11], f"--offset={p.start // 512}",
          disk, str(p.size // 1024)])
    if tree and os.listdir(tree):
        _run(["mcopy", "-s", "-i", f"{disk}@@{p.start}"] +
             [os.path.join(tree, n) for n in sorted(os.listdir(tree))] + ["::/"])


def write_misc_env(disk, env, label="misc"):
    """Write a GRUB environment block in place at offset 0 of `misc`."""
    p = _part(disk, label)
    with open(disk, "r+b") as f:
        f.seek(p.start)
        f.write(grubenv_block(env))
        f.flush()
        os.fsync(f.fileno())


def read_misc_env(disk, label="misc"):
    """The GRUB environment of `misc` as a dict (None if the block is not one)."""
    p = _part(disk, label)
    with open(disk, "rb") as f:
        f.seek(p.start)
        return parse_grubenv(f.read(GRUBENV_SIZE))


def build_disk(path, layout=None, sizes=None, trees=None, env=None, recovery_image=None, grub=True,
               bootcount=None, grub_timeout=3):
    """Build a board disk image (sparse) at path, from the board definition
    (images/board.py does the work).

    layout: list of (label, MiB, kind) with kind raw|vfat|misc|ext4 (default
    DEFAULT_LAYOUT: the board's); only the sizes and kinds may differ from the
    board's (e.g. "raw" for a blank system). sizes: {label: MiB} overrides;
    trees: {label: dir} to fill ext4/vfat partitions; env: misc's GRUB
    environment (default recovery_request=0); recovery_image: a dir with
    vmlinuz and initrd.img for the `recovery` partition (when trees has none
    for it); grub: install GRUB for UEFI and BIOS with the board's grub.cfg;
    bootcount: GRUB's counters file (default all zero); grub_timeout: seconds
    the menu waits (tests that press no key use 1)."""
    layout = layout or DEFAULT_LAYOUT
    labels = [l for l, _, _ in layout]
    if labels != [l for l, _, _ in DEFAULT_LAYOUT]:
        raise HarnessError(f"layout {labels} is not the board's {[l for l, _, _ in DEFAULT_LAYOUT]}")
    sz = {l: s for l, s, _ in layout}
    sz.update(sizes or {})
    kinds = {l: _FS[k] for l, _, k in layout}
    try:
        boardlib.build_disk(path, BOARD, sizes=sz, trees=trees, env=env, recovery_image=recovery_image,
                            kinds=kinds, grub=grub, bootcount=bootcount, timeout=grub_timeout)
    except boardlib.BoardError as e:
        raise HarnessError(str(e)) from None
    return partitions(path)


# ---------------------------------------------------------------- ext4 access
def _debugfs(disk, label, requests, write=False):
    cmd = ["debugfs"] + (["-w"] if write else []) + ["-f", "-", _ext4_spec(disk, label)]
    proc = _run(cmd, input=("\n".join(requests) + "\n").encode())
    err = proc.stderr.decode(errors="replace")
    # debugfs reports failures of single requests on stderr but exits 0
    bad = [l for l in err.splitlines() if l.strip() and not l.startswith("debugfs ")]
    if bad:
        raise HarnessError(f"debugfs {label}: " + "; ".join(bad))
    return proc.stdout


def read_tree(disk, label, dest):
    """Copy the whole tree of an ext4 partition into dest (debugfs rdump)."""
    os.makedirs(dest, exist_ok=True)
    _run(["debugfs", "-R", f"rdump / {dest}", _ext4_spec(disk, label)])
    return dest


def read_file(disk, label, path):
    """Bytes of one file of an ext4 partition, or None when it does not exist."""
    spec = _ext4_spec(disk, label)
    st = subprocess.run(["debugfs", "-R", f"stat {path}", spec], capture_output=True)
    if b"Inode:" not in st.stdout:
        return None
    return _run(["debugfs", "-R", f"cat {path}", spec]).stdout


def list_dir(disk, label, path):
    out = _run(["debugfs", "-R", f"ls -p {path}", _ext4_spec(disk, label)]).stdout.decode()
    names = []
    for line in out.splitlines():
        f = line.split("/")
        if len(f) >= 7 and f[5] not in (".", ".."):
            names.append(f[5])
    return sorted(names)


def write_files(disk, label, dirpath, files):
    """Write files into dirpath (created) of an ext4 partition: {name: content},
    content being bytes, str (text) or an os.PathLike naming a host file."""
    with tempfile.TemporaryDirectory(prefix="sihw-stage-") as tmp:
        reqs = []
        parts = [p for p in dirpath.strip("/").split("/") if p]
        for i in range(len(parts)):
            d = "/" + "/".join(parts[:i + 1])
            if read_file(disk, label, d) is None:
                reqs.append(f"mkdir {d}")
        if reqs:
            _debugfs(disk, label, reqs, write=True)
        reqs = [f"cd /{'/'.join(parts)}"]
        for name, content in sorted(files.items()):
            if "/" in name or name in (".", ".."):
                raise HarnessError(f"write_files: {name!r} is not a basename")
            if isinstance(content, (bytes, str)):
                src = os.path.join(tmp, name)
                with open(src, "wb") as f:
                    f.write(content.encode() if isinstance(content, str) else content)
            else:
                src = os.fspath(content)
            if read_file(disk, label, f"/{'/'.join(parts)}/{name}") is not None:
                reqs.append(f"rm {name}")
            reqs.append(f"write {src} {name}")
        _debugfs(disk, label, reqs, write=True)


def stage_recovery(disk, files=None, command=None, label="cache"):
    """Stage update files and the command file into /recovery/ of cache."""
    files = dict(files or {})
    if command is not None:
        files["sysimage_command"] = command
    write_files(disk, label, "/recovery", files)


def read_last_result(disk, label="cache"):
    """/recovery/last_result.json of cache as a dict (None when absent)."""
    data = read_file(disk, label, "/recovery/last_result.json")
    return None if data is None else json.loads(data)


# ---------------------------------------------------------------- boots
@dataclass
class BootResult:
    result: object          # the recovery's result code (int) or None
    status: int             # QEMU's exit status (negative: killed by signal)
    reason: str             # "debug-exit", "no-result", "timeout", "killed"
    seconds: float
    log: str                # path of the serial log
    stderr: str = ""
    matched: object = None  # the line that triggered kill_on, if any
    lines: list = field(default_factory=list)  # (host seconds since start, line) with timestamps=True

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def qemu_command(disk, mode="update", mem=96, kernel=None, initrd=None, log="serial.log",
                 extra_append="", extra_disks=(), smp=1):
    kernel = kernel or os.path.join(RECOVERY_DIR, "vmlinuz")
    initrd = initrd or os.path.join(RECOVERY_DIR, "initrd.img")
    append = f"console=ttyS0 panic=-1 no_timer_check sysimage.halt=poweroff sysimage.mode={mode}"
    if extra_append:
        append += " " + extra_append
    cmd = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", str(mem), "-nodefaults", "-no-reboot",
           "-display", "none", "-monitor", "none", "-serial", f"file:{log}",
           "-kernel", kernel, "-initrd", initrd, "-append", append,
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-drive", f"file={disk},if=virtio,format=raw,cache=writeback"]
    if smp > 1:
        cmd += ["-smp", str(smp)]
    for d in extra_disks:
        cmd += ["-drive", f"file={d},if=virtio,format=raw"]
    return cmd


def boot_recovery(disk, mode="update", mem=96, timeout=180, log=None, kill_after=None, kill_on=None,
                  kernel=None, initrd=None, extra_append="", extra_disks=(), kill_delay=0.0,
                  timestamps=False, smp=1):
    """Boot the recovery image on disk and return a BootResult.

    kill_after: seconds after start to SIGKILL QEMU (a power cut);
    kill_on: a regex; QEMU is killed as soon as a serial line matches it, or
    kill_delay seconds after that line; timestamps: record in BootResult.lines
    when each serial line appeared (host clock, polled every 50 ms)."""
    for p in (kernel or os.path.join(RECOVERY_DIR, "vmlinuz"), initrd or os.path.join(RECOVERY_DIR, "initrd.img")):
        if not os.path.exists(p):
            raise HarnessError(f"{p} missing: run `make recovery-image`")
    own_log = log is None
    if own_log:
        fd, log = tempfile.mkstemp(prefix="sihw-serial-", suffix=".log")
        os.close(fd)
    open(log, "w").close()
    cmd = qemu_command(disk, mode, mem, kernel, initrd, log, extra_append, extra_disks, smp)
    pattern = re.compile(kill_on) if isinstance(kill_on, str) else kill_on
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reason, matched, pos, partial = None, None, 0, ""
    kill_at = None
    timed = []
    try:
        while proc.poll() is None:
            now = time.monotonic() - start
            if kill_at is not None and now >= kill_at:
                reason = "killed"
                break
            if (pattern is not None and matched is None) or timestamps:
                with open(log, "rb") as f:
                    f.seek(pos)
                    chunk = f.read().decode(errors="replace")
                    pos = f.tell()
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                if timestamps:
                    timed.extend((now, line) for line in lines)
                for line in lines:  # complete lines only
                    if pattern is None or matched is not None:
                        break
                    if pattern.search(line):
                        matched = line
                        break
                if matched is not None:
                    kill_at = now + kill_delay
                    if kill_delay <= 0:
                        reason = "killed"
                        break
            if kill_after is not None and now >= kill_after:
                reason = "killed"
                break
            if now >= timeout:
                reason = "timeout"
                break
            time.sleep(0.01 if pattern is not None else 0.05)  # a cut comes soon after its line
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    seconds = time.monotonic() - start
    status = proc.returncode
    stderr = err.decode(errors="replace")
    result = None
    if reason is None:
        if status == 0:
            reason = "no-result"
        elif status > 0 and status & 1 and not re.search(r"^qemu-system-\S+: ", stderr, re.M):
            reason, result = "debug-exit", status >> 1
        else:
            raise HarnessError(f"QEMU failed with status {status}: {stderr.strip()}")
    if timestamps:  # what came after the last poll
        with open(log, "rb") as f:
            f.seek(pos)
            rest = (partial + f.read().decode(errors="replace")).split("\n")
        timed.extend((seconds, line) for line in rest if line)
    return BootResult(result, status, reason, seconds, log, stderr, matched, timed)


# ---------------------------------------------------------------- host read-back (root)
def partition_sha256(disk, label):
    """SHA-256 (hex) of every byte of a partition: proves it was not touched."""
    import hashlib
    p = _part(disk, label)
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(p.start)
        left = p.size
        while left:
            b = f.read(min(left, 4 * MIB))
            if not b:
                raise HarnessError(f"{disk}: short read in partition {label!r}")
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def can_mount():
    """True when partitions can be loop-mounted read-only (root, loop devices)."""
    return os.geteuid() == 0 and os.path.exists("/dev/loop-control") and shutil.which("losetup") is not None


class mounted_ro:
    """Context manager: the ext4 of partition `label` mounted read-only (a
    read-only loop device, `noload`: the journal is not replayed, nothing is
    written to the image) at a temporary directory, which it yields.
    Needs root (can_mount())."""

    def __init__(self, disk, label):
        self.disk, self.label = disk, label
        self.dev = self.mnt = None

    def __enter__(self):
        if not can_mount():
            raise HarnessError("mounted_ro needs root and loop devices")
        p = _part(self.disk, self.label)
        self.dev = _run(["losetup", "--find", "--show", "--read-only", "--offset", str(p.start),
                         "--sizelimit", str(p.size), self.disk]).stdout.decode().strip()
        self.mnt = tempfile.mkdtemp(prefix=f"sihw-{self.label}-")
        try:
            _run(["mount", "-t", "ext4", "-o", "ro,noload,nodev,nosuid,noexec", self.dev, self.mnt])
        except HarnessError:
            self._cleanup(mounted=False)
            raise
        return self.mnt

    def _cleanup(self, mounted=True):
        try:
            if mounted:
                _run(["umount", self.mnt])
        finally:
            if self.dev:
                subprocess.run(["losetup", "-d", self.dev], capture_output=True)
            os.rmdir(self.mnt)

    def __exit__(self, *exc):
        self._cleanup()
        return False


# ---------------------------------------------------------------- whole-device boots
OVMF_CODE = BOARD.qemu.get("firmware_efi", "/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = BOARD.qemu.get("firmware_efi_vars", "/usr/share/OVMF/OVMF_VARS_4M.fd")
ANSI_RE = re.compile(rb"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[=>()][0-9A-Za-z]?")


class Machine:
    """The whole device under QEMU: firmware (OVMF for "efi", SeaBIOS for
    "bios"), GRUB from the disk, then whatever GRUB boots; reboots stay in the
    same QEMU process, as on hardware. The serial console is QEMU's stdio:
    everything the device prints goes to `log` (raw) and to an in-memory
    buffer that expect() searches; send() types on it (GRUB menu keys, shell
    commands). With net=True a virtio NIC on QEMU user networking (the host's
    127.0.0.1 is 10.0.2.2 in the guest).

    kill() is a power cut that keeps every write QEMU made (cache=writeback:
    the host page cache holds them; a guest crash rather than a power loss).
    drive=VolatileDisk(...).qemu_drive() (volatile_disk.py) gives the guest a
    disk with a volatile write cache: a kill followed by its close(keep_cache=
    False) also loses what the guest had not flushed."""

    def __init__(self, disk, firmware="efi", log="serial.log", mem=None, net=True, disk_format="raw",
                 cache="writeback", extra_args=(), echo=None, drive=None):
        self.disk, self.firmware, self.log = disk, firmware, log
        self.echo = echo  # called with every chunk of console bytes (e.g. to show them)
        self.buf = bytearray()
        self.pos = 0
        self.lock = threading.Lock()
        mem = mem or BOARD.qemu.get("memory_mib", 192)
        cmd = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", str(mem), "-nodefaults",
               "-display", "none", "-monitor", "none",
               "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-drive", drive or f"file={disk},if=virtio,format={disk_format},cache={cache}"]
        self.vars = None
        if firmware == "efi":
            fd, self.vars = tempfile.mkstemp(prefix="sihw-ovmf-vars-", suffix=".fd")
            os.close(fd)
            shutil.copy(OVMF_VARS, self.vars)
            cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                    "-drive", f"if=pflash,format=raw,file={self.vars}"]
        elif firmware != "bios":
            raise HarnessError(f"firmware {firmware!r}: efi or bios")
        if net:
            cmd += ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]
        cmd += list(extra_args)
        self.cmd = cmd
        self.logf = open(log, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                b = os.read(fd, 4096)
            except OSError:
                break
            if not b:
                break
            self.logf.write(b)
            self.logf.flush()
            with self.lock:
                self.buf += b
            if self.echo:
                self.echo(b)

    def seconds(self):
        return time.monotonic() - self.start

    def text(self, since=0):
        with self.lock:
            raw = bytes(self.buf[since:])
        return ANSI_RE.sub(b"", raw).decode(errors="replace")

    def expect(self, pattern, timeout=120, fail=None):
        """Wait until pattern (regex, searched in the console output after
        the previous match, escape sequences removed) appears; returns the
        match. fail: a regex that, when it appears first, fails at once."""
        rx = re.compile(pattern)
        frx = re.compile(fail) if fail else None
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()  # the whole console, escape sequences removed
            m = rx.search(text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if frx and frx.search(text, self.pos):
                raise HarnessError(f"console: {fail!r} before {pattern!r}; last output:\n{text[-2000:]}")
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise HarnessError(f"QEMU exited ({self.proc.returncode}) before {pattern!r}; last output:\n"
                                   f"{self.text()[-2000:]}\n{self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise HarnessError(f"timeout ({timeout} s) waiting for {pattern!r}; last output:\n{text[-2000:]}")
            time.sleep(0.05)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def shell(self, command, timeout=120):
        """Run a command in the device's shell (the OS's console); returns
        (exit status, output)."""
        self.send(f"echo '@@'beg'@@'; {command}; echo \"@@rc=$?\"'@@'\n")
        m = self.expect(r"(?s)@@beg@@\r?\n(.*?)@@rc=(\d+)@@", timeout)
        return int(m.group(2)), m.group(1).replace("\r", "").strip("\n")

    def menu_key(self, key, timeout=180):
        """Wait for GRUB's menu and press a hotkey (n, r, f)."""
        self.expect(r"Factory reset", timeout)
        self.send(key)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.close()

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.close()
        return self.proc.returncode

    def close(self):
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(5)
        if not self.logf.closed:
            self.logf.close()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        if self.vars and os.path.exists(self.vars):
            os.unlink(self.vars)
            self.vars = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def kernel_dir():
    """The unpacked cloud kernel package in build/kernel (initramfs/build.sh
    fetches it with `make recovery-image`)."""
    kc = os.path.join(BUILD, "kernel")
    cands = sorted(d for d in os.listdir(kc) if d.startswith("linux-image-") and d.endswith("-cloud-amd64")) \
        if os.path.isdir(kc) else []
    if not cands:
        raise HarnessError("no cloud kernel in build/kernel: run `make recovery-image`")
    return os.path.join(kc, cands[-1])


def device_os(version, out, server_url=None, ca_file=None, archive_master=None, channel="stable", extra_env=None):
    """The bootable BusyBox sample OS (images/qemu-x86_64/sample-os.sh) of a
    build, with the cloud kernel, its initrd and the stub. extra_env: more
    of sample-os.sh's variables (SI_AB, SI_RECOVERY_BIN, SI_BROKEN_INIT)."""
    env = dict(os.environ, SI_KERNEL_DIR=kernel_dir(), SI_STUB=os.path.join(BUILD, "bin", "sysimage-stub"),
               SI_CHANNEL=channel, **(extra_env or {}))
    for k, v in (("SI_SERVER_URL", server_url), ("SI_CA_FILE", ca_file), ("SI_ARCHIVE_MASTER", archive_master)):
        if v:
            env[k] = v
    _run([os.path.join(ROOT, "images", "qemu-x86_64", "sample-os.sh"), str(version), out], env=env)
    return out


def read_bootcount(disk):
    """GRUB's counters file on the ESP as a dict (mtools)."""
    p = _part(disk, "esp")
    out = _run(["mtype", "-i", f"{disk}@@{p.start}", "::/" + BOARD.boot["env_file"]]).stdout
    return parse_grubenv(out)


# ---------------------------------------------------------------- test requirements
KEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))
BIN = os.path.join(BUILD, "bin")


def device_skips(keys=KEYS, grub=True, stub=False, board="qemu-x86_64"):
    """pytest's skip marks of a whole-device test (its `pytestmark`): QEMU,
    OVMF, GRUB for both firmwares (grub), the board's recovery image, the key
    hierarchy and the built sysimage-stub (stub)."""
    import pytest
    marks = [
        pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
        pytest.mark.skipif(not os.path.exists(OVMF_CODE), reason="ovmf not installed (make deps)"),
        pytest.mark.skipif(not os.path.exists(os.path.join(recovery_dir(board), "initrd.img")),
                           reason=f"{os.path.relpath(recovery_dir(board), ROOT)}/initrd.img missing: "
                                  f"make recovery-image BOARD={board}"),
        pytest.mark.skipif(not os.path.exists(os.path.join(keys, "archive-master.keyring")),
                           reason=f"{keys} has no key hierarchy: make keys"),
    ]
    if grub:
        marks.append(pytest.mark.skipif(
            not os.path.isdir("/usr/lib/grub/i386-pc") or not os.path.isdir("/usr/lib/grub/x86_64-efi"),
            reason="grub-pc-bin / grub-efi-amd64-bin not installed (make deps)"))
    if stub:
        marks.append(pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "sysimage-stub")),
                                        reason="sysimage-stub not built"))
    return marks
