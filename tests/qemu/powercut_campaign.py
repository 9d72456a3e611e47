#!/usr/bin/python3
"""Issue 15's power-cut campaign (`make powercut-campaign`, not in make test).

Rounds alternate a full install (blank system, full-m1: build 11) and a delta
(system holding m1, delta-m1-m2: 11 -> 12). In each round the recovery is
booted 3 to 8 times (seeded) with the power cut (QEMU SIGKILLed) at a random
moment of the boot, uniform between 0.5 s and 1.2 times what an uncut install
of that kind took (measured once at the start); then the power stays on for
one boot, which must complete the install, and the partition is compared with
the source tree exactly. A boot that finishes before its cut ends the round. Between boots the
invariants are checked:

  - no boot reports tries-exhausted or stops the job (a cut never counts);
  - whenever the boot control says "boot the system" (request 0 and no
    system_incomplete) the install is complete: last_result says ok;
  - once the system partition was written, system_incomplete=1 until then.

SEED= (default: random, printed) replays a campaign; CUTS= (default 100) is
the number of cuts; the summary (seed, cuts, boots, seconds) is printed and
written to build/powercut-campaign.txt."""
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import artifacts  # noqa: E402
import sihw  # noqa: E402
import treecmp  # noqa: E402

SI_OK, SI_ERR_TRIES_EXHAUSTED = 0, 26
SIZES = {"esp": 40, "recovery": 8, "system": 64, "cache": 64, "userdata": 16}
MEM, TIMEOUT = 96, 600


def make_disk(d, kind, art):
    disk = str(d / "disk.img")
    if kind == "full":
        layout = [(l, s, "raw" if l == "system" else k) for l, s, k in sihw.DEFAULT_LAYOUT]
        sihw.build_disk(disk, layout=layout, sizes=SIZES, env={"recovery_request": "1"})
        payloads = {"full-m1.tar.zst": art / "full-m1.tar.zst"}
        fmt = True
    else:
        sihw.build_disk(disk, sizes=SIZES, trees={"system": str(art / "m1")},
                        env={"recovery_request": "1"})
        payloads = {"delta-m1-m2.tar.zst": art / "delta-m1-m2.tar.zst"}
        fmt = False
    files = artifacts.keyring_files()
    for name, src in payloads.items():
        files[name] = pathlib.Path(src)
        files[name + ".sig"] = pathlib.Path(str(src) + ".sig")
    typ, version, base = artifacts.image_of(next(iter(payloads.values())))
    index = artifacts.make_index([(typ, version, base, payloads)])
    files["index.json"] = pathlib.Path(index)
    files["index.json.sig"] = pathlib.Path(index + ".sig")
    command = artifacts.command(list(payloads), images=[(typ, version, base)], format_system=fmt)
    sihw.stage_recovery(disk, files, command=command)
    return disk


def last_result_replayed(disk, work):
    """last_result.json as the kernel would see the cache after a cut: on a
    copy of the partition whose ext4 journal is replayed first (debugfs alone
    reads the file system without the journal's committed transactions)."""
    p = sihw.partitions(disk)["cache"]
    copy = os.path.join(work, "cache-copy.img")
    with open(disk, "rb") as src, open(copy, "wb") as dst:
        src.seek(p.start)
        left = p.size
        while left:
            buf = src.read(min(left, 1 << 20))
            if not buf:
                break
            dst.write(buf)
            left -= len(buf)
    subprocess.run(["e2fsck", "-fy", copy], capture_output=True)  # 0/1: clean/fixed
    r = subprocess.run(["debugfs", "-R", "cat /recovery/last_result.json", copy],
                       capture_output=True, text=True)
    os.unlink(copy)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def check_tree(disk, snap):
    with sihw.mounted_ro(disk, "system") as mnt:
        got = treecmp.snapshot(mnt)
    if b"lost+found" not in snap:
        got.pop(b"lost+found", None)
    diff = treecmp.diff(snap, got)
    if diff:
        raise AssertionError(f"{len(diff)} differences:\n" + "\n".join(diff[:20]))


def main():
    seed = int(os.environ.get("SEED") or random.SystemRandom().randrange(1 << 32))
    cuts_wanted = int(os.environ.get("CUTS") or 100)
    print(f"powercut-campaign: seed {seed}, {cuts_wanted} cuts (SEED={seed} replays)", flush=True)
    if not sihw.can_mount():
        sys.exit("powercut-campaign: needs root and loop devices (trees are compared exactly)")
    rng = random.Random(seed)
    art = pathlib.Path(artifacts.get())
    snaps = {"full": treecmp.snapshot(str(art / "m1")), "delta": treecmp.snapshot(str(art / "m2"))}
    work = pathlib.Path(tempfile.mkdtemp(prefix="si-powercut-"))
    t0 = time.monotonic()
    boots = cuts = rounds = resets = 0
    per_kind = {"full": [0, 0], "delta": [0, 0]}  # rounds, cuts
    uncut = {}
    log = []

    def say(msg):
        print(msg, flush=True)
        log.append(msg)

    try:
        # Calibration: one uncut install of each kind (also a round each).
        for kind in ("full", "delta"):
            d = work / f"cal-{kind}"
            d.mkdir()
            disk = make_disk(d, kind, art)
            r = sihw.boot_recovery(disk, mem=MEM, timeout=TIMEOUT, log=str(d / "boot.log"))
            boots += 1
            assert (r.reason, r.result) == ("debug-exit", SI_OK), r.log_text()[-3000:]
            check_tree(disk, snaps[kind])
            uncut[kind] = r.seconds
            say(f"calibration: uncut {kind} install {r.seconds:.1f} s")
            shutil.rmtree(d)
        while cuts < cuts_wanted:
            kind = ("full", "delta")[rounds % 2]
            rounds += 1
            d = work / f"round{rounds:03d}-{kind}"
            d.mkdir()
            disk = make_disk(d, kind, art)
            planned = min(rng.randint(3, 8), cuts_wanted - cuts)
            round_cuts, k, done, k_extra = 0, 0, False, 0
            while not done:
                k += 1
                at = rng.uniform(0.5, 1.2 * uncut[kind]) if k - k_extra <= planned else None
                r = sihw.boot_recovery(disk, mem=MEM, timeout=TIMEOUT, log=str(d / f"boot{k:02d}.log"),
                                       kill_after=at)
                boots += 1
                text = r.log_text()
                env = sihw.read_misc_env(disk)
                last = sihw.read_last_result(disk)
                where = f"round {rounds} ({kind}) boot {k}" + (f" cut at {at:.2f} s" if at else "")
                if "STOPPED" in text or (last and last["result"] == SI_ERR_TRIES_EXHAUSTED):
                    raise AssertionError(f"{where}: the job was stopped:\n{text[-3000:]}")
                bootable = env.get("recovery_request") == "0" and env.get("system_incomplete") != "1"
                if bootable and not (last and last["result"] == SI_OK):
                    last = last_result_replayed(disk, str(d))
                if bootable and not (last and last["result"] == SI_OK):
                    raise AssertionError(f"{where}: the boot control would boot the system "
                                         f"but the install did not complete: {env} {last}")
                if (r.reason == "no-result" and "Kernel panic" in text
                        and "running sysimage-recovery" not in text):
                    # The guest kernel panicked while booting (under TCG on a
                    # loaded host: "IO-APIC + timer doesn't work"): a reset
                    # before the recovery ran, like a cut; boot again.
                    resets += 1
                    say(f"{where}: the kernel panicked before the recovery ran (host load); booting again")
                    k_extra += 1
                    continue
                if r.reason == "killed":
                    cuts += 1
                    round_cuts += 1
                    done = bootable  # the cut came after the install finished
                else:
                    if (r.reason, r.result) != ("debug-exit", SI_OK):
                        raise AssertionError(f"{where}: {r.reason} {r.result} (QEMU status {r.status}, "
                                             f"stderr {r.stderr.strip()!r})\n{text[-3000:]}")
                    done = True
            check_tree(disk, snaps[kind])
            per_kind[kind][0] += 1
            per_kind[kind][1] += round_cuts
            say(f"round {rounds} ({kind}): {round_cuts} cuts, {k} boots, converged to the exact tree "
                f"[total {cuts} cuts, {boots} boots, {time.monotonic() - t0:.0f} s]")
            shutil.rmtree(d)
    except AssertionError as e:
        say(f"powercut-campaign: FAILED (seed {seed}): {e}")
        say(f"work directory kept: {work}")
        sys.exit(1)
    secs = time.monotonic() - t0
    summary = (f"powercut-campaign: seed {seed}: {cuts} cuts in {rounds} rounds "
               f"({per_kind['full'][0]} full with {per_kind['full'][1]} cuts, "
               f"{per_kind['delta'][0]} delta with {per_kind['delta'][1]} cuts), {boots} boots "
               f"({resets} guest kernel panics before the recovery, booted again), "
               f"{secs:.0f} s; every round converged to the exact tree; no job stopped")
    say(summary)
    out = os.path.join(sihw.ROOT, "build", "powercut-campaign.txt")
    with open(out, "w") as f:
        f.write("\n".join(log) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
