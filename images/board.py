"""board - a board definition (images/<board>/board.json) and the disk builder
that follows it.

The board file is data: partition labels, sizes (MiB, or "rest" for the one
partition that takes what is left), GPT types, filesystems, the boot-loader
recipe (GRUB formats, modules, the grub.cfg template, the counters file) and
the kernel's modules. Everything that lays out a disk for the board reads it:
tests/qemu/sihw.py (the QEMU harness), tests/demo/demo.py and images/mkdisk.

A disk is built without root, loop devices or mounts (docs/board.md):
sfdisk writes the GPT (partition names = labels), mkfs.ext4 -E offset= -d TREE
and mkfs.vfat --offset fill partitions in place, mtools copies the ESP's
files, and GRUB is installed by hand (grub-install and grub-bios-setup refuse
image files): grub-mkimage -O x86_64-efi gives EFI/BOOT/BOOTX64.EFI;
grub-mkimage -O i386-pc gives the core image written raw to `bios`, whose
LBA goes into boot.img (the MBR's first 440 bytes) and into the core image's
own block list.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

IMAGES = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024
SECTOR = 512
GRUBENV_SIZE = 1024
GRUBENV_SIG = b"# GRUB Environment Block\n"
FS_KINDS = ("none", "vfat", "grubenv", "ext4")
GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


class BoardError(Exception):
    pass


def _run(cmd, env=None, **kw):
    env = dict(env or os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, env=env, **kw)
    if proc.returncode != 0:
        raise BoardError(f"{' '.join(map(str, cmd))} -> {proc.returncode}\n"
                         f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}")
    return proc


def grubenv_block(env):
    """A GRUB environment block (exactly 1024 bytes) from a dict."""
    out = bytearray(GRUBENV_SIG)
    for k, v in env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise BoardError(f"grubenv: invalid name {k!r}")
        val = str(v).replace("\\", "\\\\").replace("\n", "\\\n")
        out += f"{k}={val}\n".encode()
    if len(out) > GRUBENV_SIZE:
        raise BoardError("grubenv: variables do not fit in 1024 bytes")
    out += b"#" * (GRUBENV_SIZE - len(out))
    return bytes(out)


class Board:
    """A parsed, checked board definition."""

    def __init__(self, name_or_path):
        path = name_or_path
        if not os.path.sep in path and not path.endswith(".json"):
            path = os.path.join(IMAGES, name_or_path, "board.json")
        self.path = os.path.abspath(path)
        self.dir = os.path.dirname(self.path)
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise BoardError(f"{self.path}: {e}") from None
        self.doc = doc
        self._check()

    def _err(self, what):
        return BoardError(f"{self.path}: {what}")

    def _check(self):
        d = self.doc
        if not isinstance(d, dict) or d.get("format") != 1:
            raise self._err("not a board definition of format 1")
        self.name = d.get("board")
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", self.name):
            raise self._err(f"board: bad name {self.name!r}")
        parts = d.get("partitions")
        if not isinstance(parts, list) or not parts:
            raise self._err("partitions: a non-empty list is needed")
        seen, rest = set(), 0
        self.parts = []
        for i, p in enumerate(parts, 1):
            label = p.get("label") if isinstance(p, dict) else None
            if not isinstance(label, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,35}", label):
                raise self._err(f"partition {i}: bad label {label!r}")
            if label in seen:
                raise self._err(f"partition {label}: label used twice")
            seen.add(label)
            if not GUID_RE.fullmatch(str(p.get("type", ""))):
                raise self._err(f"partition {label}: type {p.get('type')!r} is not a GPT type GUID")
            if p.get("fs") not in FS_KINDS:
                raise self._err(f"partition {label}: fs {p.get('fs')!r} is not one of {', '.join(FS_KINDS)}")
            if p.get("size") == "rest":
                rest += 1
                size = None
                if not isinstance(p.get("min_mib"), int) or p["min_mib"] < 1:
                    raise self._err(f"partition {label}: size \"rest\" needs min_mib >= 1")
            else:
                size = p.get("size_mib")
                if not isinstance(size, int) or size < 1:
                    raise self._err(f"partition {label}: size_mib must be an integer >= 1 (or size \"rest\")")
            minimum = {"vfat": 33, "ext4": 8, "grubenv": 1}.get(p["fs"], 1)
            if size is not None and size < minimum:
                raise self._err(f"partition {label}: {size} MiB is too small for {p['fs']} (>= {minimum} MiB)")
            self.parts.append(dict(p, number=i, size_mib=size))
        if rest > 1:
            raise self._err("only one partition may have size \"rest\"")
        # An A/B board (docs/ab.md) names its two system slots; the others
        # have the one `system` partition the recovery installs into.
        slots = d.get("slots")
        if slots is not None and (not isinstance(slots, list) or len(slots) != 2 or
                                  not all(isinstance(x, str) for x in slots) or slots[0] == slots[1]):
            raise self._err("slots: a list of two different partition labels is needed")
        self.slots = slots or []
        systems = [(x, "ext4") for x in (self.slots or ["system"])]
        for need, fs in [("esp", "vfat"), ("misc", "grubenv"), ("recovery", "ext4")] + systems + \
                        [("cache", "ext4"), ("userdata", "ext4"), ("bios", "none")]:
            p = self.part(need)
            if p is None or p["fs"] != fs:
                raise self._err(f"the board needs a partition {need!r} with fs {fs!r}")
        boot = d.get("boot")
        if not isinstance(boot, dict) or boot.get("loader") != "grub":
            raise self._err("boot.loader: only \"grub\" is known")
        for k in ("config", "env_file"):
            if not isinstance(boot.get(k), str):
                raise self._err(f"boot.{k} missing")
        for k in ("max_recovery_boots", "max_unconfirmed_boots"):
            if not isinstance(boot.get(k), int) or not 1 <= boot[k] <= 8:
                raise self._err(f"boot.{k}: an integer from 1 to 8 is needed")
        for k in ("efi", "bios"):
            if not isinstance(boot.get(k), dict) or not isinstance(boot[k].get("modules"), list):
                raise self._err(f"boot.{k}.modules missing")
        env0 = boot.get("env_defaults", {"recovery_boots": 0, "normal_boots": 0, "system_new": 0})
        if not isinstance(env0, dict):
            raise self._err("boot.env_defaults: an object of GRUB variables is needed")
        self.env_defaults = env0
        self.boot = boot
        self.kernel = d.get("kernel") or {}
        self.qemu = d.get("qemu") or {}

    def part(self, label):
        for p in self.parts:
            if p["label"] == label:
                return p
        return None

    def number(self, label):
        return self.part(label)["number"]

    def layout(self, sizes=None, disk_mib=None):
        """[(label, MiB, fs, type)] with "rest" resolved: from disk_mib when
        given, else the partition's min_mib; sizes={label: MiB} overrides."""
        sizes = sizes or {}
        fixed = sum(sizes.get(p["label"], p["size_mib"]) or 0 for p in self.parts if p["size_mib"] is not None)
        out = []
        for p in self.parts:
            size = sizes.get(p["label"], p["size_mib"])
            if size is None:
                size = sizes.get(p["label"]) or (disk_mib - 2 - fixed if disk_mib else p["min_mib"])
                if size < p["min_mib"]:
                    raise BoardError(f"{self.name}: a {disk_mib} MiB disk leaves {size} MiB for "
                                     f"{p['label']}, below its {p['min_mib']} MiB")
            out.append((p["label"], size, p["fs"], p["type"]))
        return out

    # ---------------------------------------------------------------- GRUB
    def render_grub_cfg(self, timeout=3):
        with open(os.path.join(self.dir, self.boot["config"])) as f:
            text = f.read()
        subst = {"PART_" + p["label"].upper(): p["number"] for p in self.parts}
        subst.update({"ESP": self.number("esp"), "MISC": self.number("misc"),
                      "RECOVERY": self.number("recovery")})
        if self.part("system"):
            subst["SYSTEM"] = self.number("system")
        for i, slot in enumerate(self.slots):
            subst["SLOT_" + "AB"[i]] = self.number(slot)
            subst["SLOT_" + "AB"[i] + "_LABEL"] = slot
        subst.update({"MAX_RECOVERY_BOOTS": self.boot["max_recovery_boots"],
                 "MAX_UNCONFIRMED_BOOTS": self.boot["max_unconfirmed_boots"], "TIMEOUT": timeout})
        text = re.sub(r"@([A-Z_]+)@", lambda m: str(subst[m.group(1)]), text)
        return text

    def grub_prefix(self):
        return f"(hd0,gpt{self.number('esp')})/grub"

    def make_grub_images(self, outdir):
        """BOOTX64.EFI and core.img (i386-pc) into outdir; returns their paths."""
        os.makedirs(outdir, exist_ok=True)
        efi = os.path.join(outdir, "BOOTX64.EFI")
        core = os.path.join(outdir, "core.img")
        _run(["grub-mkimage", "-O", self.boot["efi"]["format"], "-p", self.grub_prefix(), "-o", efi]
             + self.boot["efi"]["modules"])
        _run(["grub-mkimage", "-O", self.boot["bios"]["format"], "-p", self.grub_prefix(), "-o", core]
             + self.boot["bios"]["modules"])
        return efi, core


def tree_bytes(tree):
    """Bytes the files of a tree take (sizes rounded up to 4 KiB blocks)."""
    total = 0
    for dp, dn, fn in os.walk(tree):
        for n in fn + dn:
            try:
                st = os.lstat(os.path.join(dp, n))
            except OSError:
                continue
            total += (st.st_size + 4095) // 4096 * 4096
    return total


def install_bios_boot(disk, bios_start, bios_size, core_img, boot_img):
    """The BIOS half of GRUB, by hand: core.img raw at the start of the `bios`
    partition, boot.img's code (first 440 bytes: the MBR's partition table
    and signature stay) at LBA 0 pointing at the core image, and the core
    image's first sector (diskboot.img) pointing at the rest of it."""
    with open(core_img, "rb") as f:
        core = bytearray(f.read())
    with open(boot_img, "rb") as f:
        boot = bytearray(f.read())
    if len(boot) != SECTOR:
        raise BoardError(f"{boot_img}: {len(boot)} bytes, not a boot sector")
    if len(core) > bios_size:
        raise BoardError(f"core image {len(core)} bytes > bios partition {bios_size} bytes")
    lba = bios_start // SECTOR
    sectors = (len(core) + SECTOR - 1) // SECTOR
    struct.pack_into("<Q", boot, 0x5C, lba)  # GRUB_BOOT_MACHINE_KERNEL_SECTOR
    # diskboot.img's block list (the last 12 bytes of its sector): start LBA,
    # number of sectors, load segment (kept as grub-mkimage wrote it).
    struct.pack_into("<QH", core, 500, lba + 1, sectors - 1)
    with open(disk, "r+b") as f:
        f.seek(0)
        mbr = f.read(SECTOR)
        f.seek(0)
        f.write(bytes(boot[:440]) + mbr[440:])
        f.seek(bios_start)
        f.write(bytes(core))


def check_recovery_image(recovery_image, board):
    """The recovery image is a per-board product (`make recovery-image
    BOARD=...`): its board.json, when the directory has one, names this board."""
    theirs = os.path.join(recovery_image, "board.json")
    if not os.path.exists(theirs):
        return
    with open(theirs) as f:
        name = json.load(f).get("board")
    if name != board.name:
        raise BoardError(f"{recovery_image} is the recovery image of board '{name}', not of '{board.name}' "
                         f"(make recovery-image BOARD={board.name})")


def build_disk(path, board, sizes=None, trees=None, env=None, recovery_image=None, disk_mib=None,
               kinds=None, grub=True, timeout=3, bootcount=None):
    """Write a board disk image (sparse) at path.

    sizes: {label: MiB} overrides; trees: {label: dir} fills ext4 and vfat
    partitions; env: misc's boot control (default recovery_request=0);
    recovery_image: a dir with vmlinuz and initrd.img for `recovery` (the
    board's: check_recovery_image);
    kinds: {label: fs} overrides (e.g. {"system": "none"}: a blank system);
    grub: install GRUB (UEFI + BIOS) and the rendered grub.cfg; bootcount:
    GRUB's counters file content (default all zero)."""
    if isinstance(board, str):
        board = Board(board)
    layout = board.layout(sizes, disk_mib)
    kinds = kinds or {}
    trees = dict(trees or {})
    total = 2 + sum(s for _, s, _, _ in layout)  # 1 MiB before, GPT backup after
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(total * MIB)
    script = "label: gpt\n"
    for label, size, fs, ptype in layout:
        script += f"size={size}MiB, name={label}, type={ptype}\n"
    _run(["sfdisk", "-q", path], input=script.encode())
    starts = {}
    off = MIB
    for label, size, fs, ptype in layout:
        starts[label] = (off, size * MIB)
        off += size * MIB
    tmp = tempfile.mkdtemp(prefix="board-")
    try:
        if recovery_image and "recovery" not in trees:
            check_recovery_image(recovery_image, board)
            rec = os.path.join(tmp, "recovery")
            os.makedirs(rec)
            for n in ("vmlinuz", "initrd.img"):
                shutil.copy(os.path.join(recovery_image, n), rec)
            trees["recovery"] = rec
        if grub:
            esp = trees.get("esp")
            staged = os.path.join(tmp, "esp")
            if esp:
                shutil.copytree(esp, staged)
            os.makedirs(os.path.join(staged, "EFI", "BOOT"), exist_ok=True)
            os.makedirs(os.path.join(staged, "grub"), exist_ok=True)
            efi, core = board.make_grub_images(os.path.join(tmp, "grub-img"))
            shutil.copy(efi, os.path.join(staged, *board.boot["efi"]["path"].split("/")))
            with open(os.path.join(staged, "grub", "grub.cfg"), "w") as f:
                f.write(board.render_grub_cfg(timeout))
            with open(os.path.join(staged, *board.boot["env_file"].split("/")), "wb") as f:
                f.write(grubenv_block(bootcount or board.env_defaults))
            trees["esp"] = staged
        for label, size, fs, ptype in layout:
            tree = trees.get(label)
            if tree and kinds.get(label, fs) in ("ext4", "vfat"):
                need = tree_bytes(tree)
                # ext4: journal (4 MiB and more), inode tables, metadata
                room = need + need // 10 + 8 * MIB
                if room > size * MIB:
                    raise BoardError(f"{label}: {need // MIB} MiB of files ({tree}) need a partition of "
                                     f"{(room + MIB - 1) // MIB} MiB or more, the layout gives {size} MiB")
        for label, size, fs, ptype in layout:
            fs = kinds.get(label, fs)
            start, nbytes = starts[label]
            if fs == "ext4":
                cmd = ["mkfs.ext4", "-q", "-F", "-L", label, "-E", f"offset={start},nodiscard"]
                if trees.get(label):
                    cmd += ["-d", trees[label]]
                _run(cmd + [path, f"{nbytes // 1024}k"])
            elif fs == "vfat":
                _run(["mkfs.vfat", "-F", "32", "-s", "1", "-i", "5157e5a1", "-n", label.upper()[:11],
                      f"--offset={start // SECTOR}", path, str(nbytes // 1024)])
                tree = trees.get(label)
                if tree and os.listdir(tree):
                    _run(["mcopy", "-s", "-i", f"{path}@@{start}"] +
                         [os.path.join(tree, n) for n in sorted(os.listdir(tree))] + ["::/"])
            elif fs == "grubenv":
                with open(path, "r+b") as f:
                    f.seek(start)
                    f.write(grubenv_block(env if env is not None else {"recovery_request": "0"}))
        if grub:
            b = board.boot["bios"]
            start, nbytes = starts[b["partition"]]
            install_bios_boot(path, start, nbytes, core, b.get("boot_img", "/usr/lib/grub/i386-pc/boot.img"))
    finally:
        shutil.rmtree(tmp)
    with open(path, "r+b") as f:
        os.fsync(f.fileno())
    return starts
