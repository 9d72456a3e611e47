"""Issue 4's scenarios: each a real boot of the real recovery image
(build/recovery, `make recovery-image`) under QEMU/TCG on a board disk, with
the results read back on the host.

- full update of a >= 100 MB OS tree into a blank system partition in a
  96 MiB guest, then a delta on top: the partition equals the source tree
  exactly (type, mode, owner, size, content, xattrs, link targets, device
  numbers, hardlink grouping; read through a read-only loop mount);
- factory reset, by mode and by the command `format data`;
- refusals (bad signature, tampered file, wrong keyring chain, blacklisted
  key, malformed command file, missing file, downgrade): the right result
  code and the system partition byte-identical;
- power cuts at >= 10 seeded random moments of a full and of a delta apply:
  converges to the target tree, success reported once;
- the try limit: a command that always fails, and a recovery that always
  dies at the same point, each stop after 3 attempts with
  SI_ERR_TRIES_EXHAUSTED and the boot control cleared.

The shared inputs (trees, payloads, keys) come from artifacts.get(), built
once per session and cached in build/qemu-cache. Seeds: SI_CUT_SEED
overrides the power-cut seed (printed in every cut plan)."""
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import artifacts  # noqa: E402
import sihw  # noqa: E402
import treecmp  # noqa: E402

# lib/result.h
SI_OK = 0
SI_ERR_BAD_SIGNATURE = 7
SI_ERR_BLACKLISTED = 11
SI_ERR_DOWNGRADE = 14
SI_ERR_COMMAND_FILE = 15
SI_ERR_MISSING_FILE = 16
SI_ERR_TRIES_EXHAUSTED = 26

MEM = 96          # the board's RAM (MiB): every scenario runs in it
TIMEOUT = 400     # per boot; TCG with two guests on two cores
CUT_SEED = int(os.environ.get("SI_CUT_SEED", "20261122"))

pytestmark = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
]

SIZES = {"esp": 40, "recovery": 8, "system": 256, "cache": 256, "userdata": 32}
SMALL_SIZES = {"esp": 40, "recovery": 8, "system": 32, "cache": 32, "userdata": 16}


@pytest.fixture(scope="session")
def art():
    return pathlib.Path(artifacts.get())


@pytest.fixture(scope="session")
def snapshots(art):
    """Snapshots (treecmp) of the source trees, taken once."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = treecmp.snapshot(str(art / name))
        return cache[name]
    return get


def need_mount():
    if not sihw.can_mount():
        pytest.skip("comparing partition trees needs root and loop devices (read-only loop mount)")


def make_disk(tmp_path, system_tree=None, blank_system=False, sizes=SIZES, env=None):
    disk = str(tmp_path / "disk.img")
    layout = [(l, s, "raw" if (l == "system" and blank_system) else k) for l, s, k in sihw.DEFAULT_LAYOUT]
    sihw.build_disk(disk, layout=layout, sizes=sizes,
                    trees={"system": str(system_tree)} if system_tree else None,
                    env=env if env is not None else {"recovery_request": "1"})
    return disk


def boot(disk, tmp_path, name, **kw):
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("mem", MEM)
    return sihw.boot_recovery(disk, log=str(tmp_path / f"{name}.log"), **kw)


def tail(r, n=60):
    return "\n".join(r.log_text().splitlines()[-n:])


def assert_ok(r, disk):
    assert (r.reason, r.result) == ("debug-exit", SI_OK), tail(r)
    last = sihw.read_last_result(disk)
    assert last and last["result"] == SI_OK, last
    env = sihw.read_misc_env(disk)
    assert env.get("recovery_request") == "0", env
    return last


def assert_system_equals(disk, expected):
    """The system partition's tree equals the snapshot `expected` exactly."""
    with sihw.mounted_ro(disk, "system") as mnt:
        got = treecmp.snapshot(mnt)
    if b"lost+found" not in expected:
        got.pop(b"lost+found", None)
    diff = treecmp.diff(expected, got)
    assert not diff, f"{len(diff)} differences:\n" + "\n".join(diff[:40])


def fsck_clean(disk, label):
    p = sihw.partitions(disk)[label]
    r = subprocess.run(["e2fsck", "-fn", f"{disk}?offset={p.start}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def stage_update(disk, art, payloads, keys=None, command=None, extra_files=None, **cmdkw):
    """Stage payloads ({staged name: source}) as one image of a signed index
    (the image of the first payload, artifacts.image_of), the keyrings, and
    the command file naming them."""
    keys = keys or artifacts.KEYS
    files = artifacts.keyring_files(keys)
    for name, src in payloads.items():
        files[name] = pathlib.Path(src)
        files[name + ".sig"] = pathlib.Path(str(src) + ".sig")
    typ, version, base = artifacts.image_of(next(iter(payloads.values())))
    index = artifacts.make_index([(typ, version, base, payloads)], keys=keys)
    files["index.json"] = pathlib.Path(index)
    files["index.json.sig"] = pathlib.Path(index + ".sig")
    files.update(extra_files or {})
    if command is None:
        command = artifacts.command(list(payloads), images=[(typ, version, base)], **cmdkw)
    sihw.stage_recovery(disk, files, command=command)


# ---------------------------------------------------------------- full, delta, small RAM
def test_full_update_in_96mib_then_delta(art, snapshots, tmp_path):
    """A >= 100 MB tree into a blank system partition, in the board's 96 MiB,
    then the delta to the next version on top."""
    need_mount()
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(art / "v1") for f in fs
               if not os.path.islink(os.path.join(dp, f)))
    assert size >= 100 * 10**6, size
    disk = make_disk(tmp_path, blank_system=True)
    stage_update(disk, art, {"full-v1.tar.zst": art / "full-v1.tar.zst"})
    r = boot(disk, tmp_path, "full", mem=96)
    last = assert_ok(r, disk)
    assert last["to_version"] == 1 and last["from_version"] is None, last
    print(f"full update of {size / 1e6:.0f} MB: {r.seconds:.1f} s, {last.get('durations')}")
    fsck_clean(disk, "system")
    assert_system_equals(disk, snapshots("v1"))
    # consumed files removed, command file gone
    assert sihw.list_dir(disk, "cache", "/recovery").count("full-v1.tar.zst") == 0

    stage_update(disk, art, {"delta-v1-v2.tar.zst": art / "delta-v1-v2.tar.zst"}, format_system=False)
    sihw.write_misc_env(disk, {"recovery_request": "1"})
    r = boot(disk, tmp_path, "delta", mem=96)
    last = assert_ok(r, disk)
    assert (last["from_version"], last["to_version"]) == (1, 2), last
    print(f"delta update: {r.seconds:.1f} s, {last.get('durations')}")
    fsck_clean(disk, "system")
    assert_system_equals(disk, snapshots("v2"))


# ---------------------------------------------------------------- factory reset
def _reset_disk(art, tmp_path, env):
    disk = make_disk(tmp_path, system_tree=art / "small-b3", sizes=SMALL_SIZES, env=env)
    sihw.write_files(disk, "userdata", "/home/user", {"secret": "user data\n", "photo": os.urandom(50000)})
    sihw.write_files(disk, "cache", "/", {"junk": "left over\n"})
    return disk


def _assert_reset(disk, r, system_before):
    assert_ok(r, disk)
    assert sihw.list_dir(disk, "userdata", "/") == ["lost+found"]
    assert sihw.read_file(disk, "userdata", "/home/user/secret") is None
    fsck_clean(disk, "userdata")
    info = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(sihw.partitions(disk)["userdata"].start),
                           disk], capture_output=True, text=True).stdout
    assert "TYPE=ext4" in info and "LABEL=userdata" in info, info
    assert sihw.read_file(disk, "cache", "/junk") is None
    assert sihw.partition_sha256(disk, "system") == system_before


def test_factory_reset_mode(art, tmp_path):
    disk = _reset_disk(art, tmp_path, {"recovery_request": "0"})
    before = sihw.partition_sha256(disk, "system")
    r = boot(disk, tmp_path, "reset", mode="factory-reset")
    _assert_reset(disk, r, before)
    assert sihw.read_last_result(disk)["mode"] == "factory-reset"


def test_factory_reset_by_command_format_data(art, tmp_path):
    disk = _reset_disk(art, tmp_path, {"recovery_request": "1"})
    sihw.stage_recovery(disk, command="format data\n")
    before = sihw.partition_sha256(disk, "system")
    r = boot(disk, tmp_path, "format-data")
    _assert_reset(disk, r, before)
    assert sihw.read_file(disk, "cache", "/recovery/sysimage_command") is None


# ---------------------------------------------------------------- refusals
def _tampered(art, tmp_path):
    src = (art / "full-small-b5.tar.zst").read_bytes()
    i = len(src) // 2
    p = tmp_path / "tampered.tar.zst"
    p.write_bytes(src[:i] + bytes([src[i] ^ 0x01]) + src[i + 1:])
    shutil.copy(str(art / "full-small-b5.tar.zst.sig"), str(p) + ".sig")
    return p


def _other_digest(art, tmp_path):
    p = tmp_path / "resigned.tar.zst"
    shutil.copy(art / "full-small-b5.tar.zst", p)
    # a valid stanza by the right key, over other bytes
    shutil.copy(str(art / "full-small-b1.tar.zst.sig"), str(p) + ".sig")
    return p


REFUSALS = {
    # name: (expected result, setup(art, tmp_path, disk) staging everything)
    "bad-signature": (SI_ERR_BAD_SIGNATURE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": _other_digest(a, t)})),
    "tampered-file": (SI_ERR_BAD_SIGNATURE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": _tampered(a, t)})),
    "wrong-keyring-chain": (SI_ERR_BAD_SIGNATURE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": a / "other-signed.tar.zst"}, keys=a / "keys-other")),
    "blacklisted-key": (SI_ERR_BLACKLISTED, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": a / "full-small-b5.tar.zst"}, blacklist=True,
        extra_files={"blacklist.keyring": a / "blacklist.keyring",
                     "blacklist.keyring.sig": pathlib.Path(str(a / "blacklist.keyring") + ".sig")})),
    "malformed-command-file": (SI_ERR_COMMAND_FILE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": a / "full-small-b5.tar.zst"},
        command=artifacts.command(["full.tar.zst"]) + "frobnicate system now\n")),
    "missing-file": (SI_ERR_MISSING_FILE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": a / "full-small-b5.tar.zst"},
        command=artifacts.command(["full.tar.zst", "absent.tar.zst"]))),
    "downgrade": (SI_ERR_DOWNGRADE, lambda a, t, d: stage_update(
        d, a, {"full.tar.zst": a / "full-small-b1.tar.zst"})),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_and_system_untouched(art, tmp_path, case):
    """Installed build 3; a full (format system first) that must be refused
    before any partition is touched."""
    code, setup = REFUSALS[case]
    disk = make_disk(tmp_path, system_tree=art / "small-b3", sizes=SMALL_SIZES)
    setup(art, tmp_path, disk)
    before = sihw.partition_sha256(disk, "system")
    user_before = sihw.partition_sha256(disk, "userdata")
    r = boot(disk, tmp_path, case)
    assert (r.reason, r.result) == ("debug-exit", code), tail(r)
    last = sihw.read_last_result(disk)
    assert last["result"] == code and last["message"], last
    assert sihw.partition_sha256(disk, "system") == before
    assert sihw.partition_sha256(disk, "userdata") == user_before
    # refused: not retried, the device boots its intact system
    assert sihw.read_misc_env(disk).get("recovery_request") == "0"


# ---------------------------------------------------------------- power cuts
def _cut_plan(seed, cuts):
    """`cuts` increasing progress points (percent of the apply): distinct
    multiples of 5, as the console prints progress every 5 %."""
    rng = random.Random(seed)
    return sorted(5 * b for b in rng.sample(range(1, 19), cuts))


PROGRESS = re.compile(r"sysimage-recovery: update \d+/\d+: (\d+)% ")


def _progress_regex(pct):
    return r"sysimage-recovery: update \d+/\d+: (%s)%% " % "|".join(str(v) for v in range(pct, 101))


def _power_cut_chain(disk, tmp_path, name, seed, cuts=10):
    """Cut the power (SIGKILL QEMU) as soon as the apply prints the planned
    percentage, or the line after the furthest one the previous attempt
    printed: every attempt gets further than the one before, so the install
    keeps progressing and the try counter must not run out."""
    plan = _cut_plan(seed, cuts)
    record = [f"{name}: seed {seed}, cuts at percent {plan}"]
    print(record[0])
    seen = -5
    for k, pct in enumerate(plan):
        at = max(pct, seen + 5)
        r = boot(disk, tmp_path, f"{name}-cut{k:02d}", kill_on=_progress_regex(at))
        printed = [int(m.group(1)) for m in PROGRESS.finditer(r.log_text())]
        seen = max(printed, default=seen)
        record.append(f"cut {k}: at >= {at}% -> {r.reason} after {r.seconds:.1f} s "
                      f"(line {r.matched!r}, furthest printed {seen}%)")
        print(record[-1])
        assert r.reason == "killed", "\n".join(record) + "\n" + tail(r)
        env = sihw.read_misc_env(disk)
        assert env.get("recovery_request") == "1", f"{env}\n" + "\n".join(record) + "\n" + tail(r)
        last = sihw.read_last_result(disk)  # no success reported by a cut attempt
        assert last is None or last["result"] != SI_OK, f"{last}\n" + "\n".join(record)
    r = boot(disk, tmp_path, f"{name}-final")
    record.append(f"final boot: {r.reason} {r.result} after {r.seconds:.1f} s")
    print(record[-1])
    (tmp_path / f"{name}-cuts.txt").write_text("\n".join(record) + "\n")
    assert (r.reason, r.result) == ("debug-exit", SI_OK), "\n".join(record) + "\n" + tail(r)
    return r


def test_power_cuts_during_full(art, snapshots, tmp_path):
    need_mount()
    disk = make_disk(tmp_path, blank_system=True)
    stage_update(disk, art, {"full-v1.tar.zst": art / "full-v1.tar.zst"})
    r = _power_cut_chain(disk, tmp_path, "full", CUT_SEED)
    assert_ok(r, disk)
    # success reported once: only the last boot printed a result
    assert r.log_text().count("sysimage-recovery: result: ok") == 1
    fsck_clean(disk, "system")
    assert_system_equals(disk, snapshots("v1"))


def test_power_cuts_during_delta(art, snapshots, tmp_path):
    need_mount()
    disk = make_disk(tmp_path, system_tree=art / "v1")
    assert_system_equals(disk, snapshots("v1"))  # the base is exact
    stage_update(disk, art, {"delta-v1-v2.tar.zst": art / "delta-v1-v2.tar.zst"}, format_system=False)
    r = _power_cut_chain(disk, tmp_path, "delta", CUT_SEED + 1)
    last = assert_ok(r, disk)
    # from_version: what the system partition recorded when the last attempt
    # started (the interrupted delta may already have removed or rewritten
    # the record; nothing unsigned on the cache is trusted for it).
    assert last["to_version"] == 2 and last["from_version"] in (None, 1, 2), last
    fsck_clean(disk, "system")
    assert_system_equals(disk, snapshots("v2"))


# ---------------------------------------------------------------- try limit
def test_try_limit_command_always_fails(art, tmp_path):
    """A signed update with a member escaping the tree fails on every
    attempt: the third gives up with SI_ERR_TRIES_EXHAUSTED."""
    disk = make_disk(tmp_path, blank_system=True, sizes=SMALL_SIZES)
    stage_update(disk, art, {"hostile.tar.zst": art / "hostile.tar.zst"})
    results = []
    for k in range(1, 4):
        r = boot(disk, tmp_path, f"attempt{k}")
        assert r.reason == "debug-exit", tail(r)
        results.append(r.result)
        env = sihw.read_misc_env(disk)
        last = sihw.read_last_result(disk)
        assert last["result"] == r.result, last
        if k < 3:
            assert r.result not in (SI_OK, SI_ERR_TRIES_EXHAUSTED), tail(r)
            assert env == {"recovery_request": "1", "recovery_tries": str(k)}, env
    assert results[2] == SI_ERR_TRIES_EXHAUSTED, (results, tail(r))
    assert results[0] == results[1], results
    assert sihw.read_misc_env(disk).get("recovery_request") == "0"
    assert "3" in last["message"], last


def test_try_limit_recovery_always_dies(art, tmp_path):
    """Power cut at the same log line (after the attempt is recorded, before
    any partition is touched) on every boot: three attempts without progress,
    then the recovery stops with SI_ERR_TRIES_EXHAUSTED and clears the
    boot control."""
    disk = make_disk(tmp_path, system_tree=art / "small-b3", sizes=SMALL_SIZES)
    stage_update(disk, art, {"full.tar.zst": art / "full-small-b5.tar.zst"})
    before = sihw.partition_sha256(disk, "system")
    killed = 0
    for k in range(6):
        r = boot(disk, tmp_path, f"boot{k}", kill_on=r"sysimage-recovery: verified full\.tar\.zst")
        if r.reason != "killed":
            break
        killed += 1
        assert sihw.read_misc_env(disk).get("recovery_request") == "1"
    assert (r.reason, r.result) == ("debug-exit", SI_ERR_TRIES_EXHAUSTED), tail(r)
    assert killed == 3, killed
    assert sihw.read_last_result(disk)["result"] == SI_ERR_TRIES_EXHAUSTED
    env = sihw.read_misc_env(disk)
    assert env.get("recovery_request") == "0", env
    assert sihw.partition_sha256(disk, "system") == before
