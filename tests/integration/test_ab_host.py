"""`sysimage-stub install` / `mark-good` / `status` (A/B mode, docs/ab.md) on
the host: the slots are ext4 image files, the engine is the real static
sysimage-recovery, GRUB's ESP env is a file behind a stand-in for
sysimage-bootcount, the booted slot comes from a stand-in /proc/cmdline.
The jobs are staged as the stub stages them (test_recovery_host's Device).
Needs root (the engine loop-mounts the slots)."""
import json
import os
import stat

import pytest

from conftest import RECOVERY, STUB, run
from test_recovery_host import (CHECKSUM, DELTA_COMMANDS, DEVICE, DOWNGRADE, OK, Device,  # noqa: F401
                                Mounted, expected_tree, full_commands, grubenv_block, payloads,
                                read_grubenv, sha256_file, snapshot)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mount"),
    pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="no loop devices"),
]

# A stand-in for sysimage-bootcount: the same get/set interface over a file.
BOOTCOUNT = """#!/bin/sh
f=%s
case "$1" in
  get) cat "$f" ;;
  set) shift
       for kv in "$@"; do
         grep -v "^${kv%%%%=*}=" "$f" > "$f.new"; echo "$kv" >> "$f.new"; mv "$f.new" "$f"
       done ;;
  *) exit 1 ;;
esac
"""


def flip_byte(path, offset):
    """a tampered staged file: one bit changed"""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))


class AbDevice(Device):
    def __init__(self, d, payloads):
        super().__init__(d, payloads)
        self.slots = {"a": self.system, "b": d / "system_b.img"}
        with open(self.slots["b"], "wb") as f:
            f.truncate(48 << 20)
        self.espenv = d / "bootcount.env"
        self.espenv.write_text("recovery_boots=0\nab_active=a\nab_try=\nab_tries=0\n")
        bc = d / "bootcount"
        bc.write_text(BOOTCOUNT % self.espenv)
        bc.chmod(0o755)
        self.cmdline = d / "cmdline"
        self.boot("a")
        self.state = d / "state"
        self.config = d / "client.ini"
        self.config.write_text(f"""[service]
base = https://updates.invalid/
channel = stable
device = qemu-x86_64

[system]
cache_dir = {self.rdir}
state_dir = {self.state}
machine_id = {d}/machine-id
version_file = {d}/version.json
boot_control = {self.misc}

[trust]
archive_master = {d}/archive-master.keyring
ca_file = {d}/ca.pem

[ab]
slot_a = {self.slots['a']}
slot_b = {self.slots['b']}
engine = {RECOVERY}
bootcount = {bc}
cmdline = {self.cmdline}
work_dir = {d}/work
""")

    def recovery(self):
        """The recovery booted by GRUB on this board: no `system`, the slots."""
        return run([RECOVERY, "run", "--mode", "update", "--device", DEVICE,
                    "--cache-dir", self.cache, "--mount-root", self.mnt,
                    "--partition", f"system_a={self.slots['a']}",
                    "--partition", f"system_b={self.slots['b']}",
                    "--partition", f"userdata={self.userdata}",
                    "--partition", f"misc={self.misc}",
                    "--bootcount", self.d / "bootcount"], timeout=300)

    def boot(self, slot):
        self.cmdline.write_text(f"root=PARTLABEL=system_{slot} ro quiet sysimage.slot={slot}\n")

    def stub(self, *args):
        return run([STUB, "--config", self.config, *args], timeout=300)

    def esp(self):
        return dict(line.split("=", 1) for line in self.espenv.read_text().split("\n") if "=" in line)

    def tree(self, slot):
        with Mounted(self.slots[slot], self.d / "check") as m:
            return snapshot(m)


@pytest.fixture
def ab(tmp_path, payloads):
    dev = AbDevice(tmp_path, payloads)
    dev.install(1)  # slot a: build 1, as the factory would leave it
    return dev


def test_delta_into_the_inactive_slot_then_back(ab, payloads):
    a_before = sha256_file(ab.slots["a"])
    misc_before = ab.misc.read_bytes()
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = ab.stub("install", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "verified" and "copied" in kinds and kinds[-1] == "done", kinds
    assert any(e["event"] == "progress" and e["file"] == "copy active slot" for e in events)
    assert events[-1]["build"] == 2 and events[-1]["slot"] == "b"
    assert sha256_file(ab.slots["a"]) == a_before  # the running slot is never written
    assert ab.tree("b") == expected_tree(payloads["tree2"], 2)
    env = ab.esp()
    assert (env["ab_active"], env["ab_try"], env["ab_tries"], env["ab_try_build"]) == ("a", "b", "0", "2")
    assert ab.misc.read_bytes() == misc_before  # the device's boot control is not the engine's
    assert "slot %s" % "b" in p.stderr and "copied onto slot b" in p.stderr

    # GRUB boots b on trial; the new system confirms itself
    ab.boot("b")
    p = ab.stub("mark-good")
    assert p.returncode == 0 and "slot b marked good (build 2)" in p.stdout, p.stdout + p.stderr
    env = ab.esp()
    assert (env["ab_active"], env["ab_try"]) == ("b", "")
    assert "already the good slot" in ab.stub("mark-good").stdout

    # back into a: a full (same build again) formats slot a; b is untouched
    b_before = sha256_file(ab.slots["b"])
    ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
    p = ab.stub("install")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "copied" not in p.stderr
    assert sha256_file(ab.slots["b"]) == b_before
    assert ab.tree("a") == expected_tree(payloads["tree2"], 2)
    assert ab.esp()["ab_try"] == "a"


def test_rollback_is_reported_by_status(ab):
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    assert ab.stub("install").returncode == 0
    # GRUB gave up on b after its tries (images/qemu-x86_64-ab/grub.cfg.in)
    env = ab.esp()
    ab.espenv.write_text("".join(f"{k}={v}\n" for k, v in dict(
        env, ab_try="", ab_tries="0", ab_failed="b", ab_failed_build=env["ab_try_build"]).items()))
    p = ab.stub("status")
    assert "rollback:         build 2 in slot b did not come up; back on slot a" in p.stdout, p.stdout
    p = ab.stub("status", "--json")
    last = json.loads(p.stdout)["ab"]
    assert last["rolled_back_build"] == "2" and last["good_slot"] == "a" and last["booted_slot"] == "a"
    # still the good slot: mark-good keeps the report
    assert "already the good slot" in ab.stub("mark-good").stdout
    assert ab.esp()["ab_failed"] == "b"


@pytest.mark.parametrize("case", ["tampered", "downgrade"])
def test_refused_before_the_inactive_slot_is_touched(ab, case):
    b_before = sha256_file(ab.slots["b"])
    a_before = sha256_file(ab.slots["a"])
    ab.esp_before = ab.espenv.read_text()
    if case == "tampered":
        ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
        flip_byte(ab.rdir / "delta-1-2.tar.zst", 200)
        code, needle = CHECKSUM, "delta-1-2.tar.zst"
    else:
        # slot a now runs build 2; build 1 is offered again
        ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
        assert ab.run().returncode == 0
        a_before = sha256_file(ab.slots["a"])
        ab.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
        code, needle = DOWNGRADE, "refused"
    p = ab.stub("install")
    assert p.returncode == code, p.stdout + p.stderr
    assert needle in p.stderr and "slot b untouched" in p.stderr, p.stderr
    assert sha256_file(ab.slots["b"]) == b_before
    assert sha256_file(ab.slots["a"]) == a_before
    assert ab.espenv.read_text() == ab.esp_before  # no trial, nothing withdrawn


def test_interrupted_install_converges_on_the_next(ab, payloads):
    """What a power cut during the background install leaves: slot b half
    written, the engine's resume state on the cache, no trial set. The next
    install starts over (copy, then the whole job) and converges."""
    a_before = sha256_file(ab.slots["a"])
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    with open(ab.slots["b"], "r+b") as f:  # a torn copy
        f.write(os.urandom(4 << 20))
    (ab.rdir / "recovery_state.json").write_text('{"format": 1, "completed": 4}\n')
    p = ab.stub("install")
    assert p.returncode == 0, p.stdout + p.stderr
    assert ab.tree("b") == expected_tree(payloads["tree2"], 2)
    assert sha256_file(ab.slots["a"]) == a_before
    assert ab.esp()["ab_try"] == "b"


def test_not_an_ab_device_and_not_booted_from_a_slot(ab):
    ab.cmdline.write_text("root=PARTLABEL=system ro\n")
    p = ab.stub("install")
    assert p.returncode == 1 and "not booted from an A/B slot" in p.stderr
    text = ab.config.read_text()
    ab.config.write_text(text[:text.index("[ab]")])
    p = ab.stub("mark-good")
    assert p.returncode == 1 and "not an A/B device" in p.stderr
    assert not stat.S_ISDIR(os.stat(ab.config).st_mode)


def test_the_same_staged_job_serves_a_recovery_mode_device_too(ab, payloads, tmp_path):
    """One staged job (what `stage` fetched from one published repo): the
    recovery installs it on a recovery-mode device's `system`, `install` on
    an A/B device's inactive slot; both end up with the same tree."""
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    rec = Device(tmp_path / "recovery-mode", payloads)
    rec.install(1)
    for name in os.listdir(ab.rdir):
        (rec.rdir / name).write_bytes((ab.rdir / name).read_bytes())
    p = rec.run()
    assert p.returncode == 0, p.stderr
    p = ab.stub("install")
    assert p.returncode == 0, p.stdout + p.stderr
    assert rec.result()["to_version"] == 2
    assert ab.tree("b") == rec.system_tree() == expected_tree(payloads["tree2"], 2)


def test_one_install_or_stage_at_a_time(ab):
    import fcntl
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    b_before = sha256_file(ab.slots["b"])
    ab.state.mkdir(exist_ok=True)
    with open(ab.state / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # a `stage` running
        p = ab.stub("install")
    assert p.returncode == 27 and "another sysimage-stub check/stage/install" in p.stderr, p.stderr
    assert sha256_file(ab.slots["b"]) == b_before


def test_no_install_from_a_slot_on_trial(ab):
    """Booted into the trial slot b, not yet marked good: installing would
    overwrite a, the only slot known to work."""
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    assert ab.stub("install").returncode == 0
    ab.boot("b")
    a_before = sha256_file(ab.slots["a"])
    ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
    p = ab.stub("install")
    assert p.returncode == 1 and "slot b runs on trial" in p.stderr, p.stderr
    assert sha256_file(ab.slots["a"]) == a_before
    assert ab.stub("mark-good").returncode == 0
    assert ab.stub("install").returncode == 0


def test_delta_base_is_the_active_filesystem_from_its_used_blocks(ab, payloads):
    """The copy of step 3 alone (an engine that stops after verifying): slot b
    first full of random bytes, then only the blocks slot a's filesystem uses
    are written; b is then the same filesystem as a (e2fsck clean, same
    superblock, same tree) and far fewer bytes than the slot were written."""
    with open(ab.slots["b"], "wb") as f:
        f.write(os.urandom(48 << 20))
    stop = ab.d / "engine-stops"
    stop.write_text(f'#!/bin/sh\ncase " $* " in *" --dry-run "*) exec {RECOVERY} "$@";; esac\nexit 22\n')
    stop.chmod(0o755)
    ab.config.write_text(ab.config.read_text().replace(f"engine = {RECOVERY}", f"engine = {stop}"))
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    p = ab.stub("install", "--json")
    assert p.returncode == 22 and "no trial boot is set" in p.stderr, p.stdout + p.stderr
    copied = [json.loads(line) for line in p.stdout.splitlines() if '"copied"' in line][0]
    assert copied["fs_bytes"] == os.path.getsize(ab.slots["a"])
    assert 0 < copied["bytes"] < copied["fs_bytes"] / 2, copied
    fsck = run(["e2fsck", "-fn", ab.slots["b"]])
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    head = [run(["dumpe2fs", "-h", ab.slots[s]]).stdout for s in "ab"]
    assert head[0] == head[1]
    assert ab.tree("b") == ab.tree("a") == expected_tree(payloads["tree1"], 1)
    assert ab.esp()["ab_try"] == ""


@pytest.fixture
def ab_b_good_a_on_trial(ab):
    """Build 2 in slot b, marked good; build 2 again installed into a, on trial."""
    ab.stage(DELTA_COMMANDS, "delta-1-2.tar.zst", "version-2.tar.xz")
    assert ab.stub("install").returncode == 0
    ab.boot("b")
    assert ab.stub("mark-good").returncode == 0
    ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
    assert ab.stub("install").returncode == 0
    env = ab.esp()
    assert (env["ab_active"], env["ab_try"]) == ("b", "a"), env
    return ab


def test_recovery_repairs_the_good_slot(ab_b_good_a_on_trial, payloads):
    """The recovery on the A/B board (no `system`): a repair (the installed
    build's full image) rewrites the good slot b; slot a, on trial, is not
    touched and its trial is withdrawn: the next boot is the repaired slot."""
    ab = ab_b_good_a_on_trial
    # the good slot damaged
    assert run(["debugfs", "-w", "-R", "rm /etc/hostname", ab.slots["b"]]).returncode == 0
    assert ab.tree("b") != expected_tree(payloads["tree2"], 2)
    a_before = sha256_file(ab.slots["a"])
    ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
    ab.misc.write_bytes(grubenv_block(recovery_request=1) + b"\0" * ((1 << 20) - 1024))
    p = ab.recovery()
    assert p.returncode == OK, p.stdout + p.stderr
    assert "the job is for slot b" in p.stderr and "slot b repaired" in p.stderr, p.stderr
    res = ab.result()
    assert (res["from_version"], res["to_version"]) == (2, 2)
    assert ab.tree("b") == expected_tree(payloads["tree2"], 2)
    assert sha256_file(ab.slots["a"]) == a_before
    env = ab.esp()
    assert (env["ab_active"], env["ab_try"], env["ab_tries"], env["ab_try_build"]) == ("b", "", "0", "")
    assert read_grubenv(ab.misc)["recovery_request"] == "0"


@pytest.mark.parametrize("case", ["downgrade", "tampered"])
def test_recovery_refuses_before_the_good_slot_is_touched(ab_b_good_a_on_trial, case):
    ab = ab_b_good_a_on_trial
    before = {s: sha256_file(ab.slots[s]) for s in "ab"}
    esp_before = ab.espenv.read_text()
    if case == "downgrade":
        ab.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
        code = DOWNGRADE
    else:
        ab.stage(full_commands(2), "full-2.tar.zst", "version-2.tar.xz")
        flip_byte(ab.rdir / "full-2.tar.zst", 300)
        code = CHECKSUM
    p = ab.recovery()
    assert p.returncode == code, p.stdout + p.stderr
    assert {s: sha256_file(ab.slots[s]) for s in "ab"} == before
    assert ab.espenv.read_text() == esp_before  # the trial of a still pending


def test_recovery_without_system_or_slots_says_so(ab):
    ab.stage(full_commands(1), "full-1.tar.zst", "version-1.tar.xz")
    p = run([RECOVERY, "run", "--mode", "update", "--device", DEVICE, "--cache-dir", ab.cache,
             "--mount-root", ab.mnt, "--partition", f"system_a={ab.slots['a']}",
             "--partition", f"misc={ab.misc}", "--partition", f"userdata={ab.userdata}"])
    assert p.returncode != OK
    assert "no partition labelled 'system' (nor 'system_a' and 'system_b'" in p.stdout + p.stderr
