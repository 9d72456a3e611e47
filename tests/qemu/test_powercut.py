"""Issue 15: power cuts never exhaust the recovery's count and never leave a
half-installed system bootable; a recovery that crashes at the same byte on
every attempt stops, reports it and stays in the recovery.

Real boots of the real recovery image (build/recovery) on a board disk; the
crash uses the test build of make recovery-image-faults (build/faults/recovery),
whose recovery honours `sysimage.fault=apply:N` on the kernel command line.
The production binary has no such code (checked below).

The payloads are the medium trees of artifacts.py (m1: 12 MiB of large files
and 600 small ones, build 11; its full image is 11 MiB)."""
import os
import pathlib
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import artifacts  # noqa: E402
import sihw  # noqa: E402
import treecmp  # noqa: E402
from test_scenarios import (assert_system_equals, boot, fsck_clean, make_disk,  # noqa: E402
                            need_mount, stage_update, tail, _progress_regex)

SI_OK, SI_ERR_CRASHED, SI_ERR_TRIES_EXHAUSTED = 0, 30, 26
FAULTS_DIR = os.path.join(sihw.ROOT, "build", "faults", "recovery")
MEDIUM = {"esp": 40, "recovery": 8, "system": 64, "cache": 64, "userdata": 16}

pytestmark = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
]


@pytest.fixture(scope="module")
def art():
    return pathlib.Path(artifacts.get())


def test_issue_15_decreasing_cuts_converge(art, tmp_path):
    """The issue's sequence: a full install cut again and again, each cut
    earlier than the furthest point an earlier attempt reached (all after the
    format). The recovery of the issue counted every one of them and gave up;
    now none counts, the system stays marked incomplete (never booted), and the
    next uncut boot installs the exact tree."""
    need_mount()
    disk = make_disk(tmp_path, blank_system=True, sizes=MEDIUM)
    stage_update(disk, art, {"full-m1.tar.zst": art / "full-m1.tar.zst"})
    record = []
    for k, pct in enumerate((80, 60, 50, 40, 30, 20, 10)):
        r = boot(disk, tmp_path, f"cut{k}", kill_on=_progress_regex(pct))
        record.append(f"cut {k} at >= {pct}%: {r.reason} after {r.seconds:.1f} s ({r.matched!r})")
        print(record[-1])
        assert r.reason == "killed", "\n".join(record) + "\n" + tail(r)
        text = r.log_text()
        assert "counted" not in text and "STOPPED" not in text, tail(r)
        env = sihw.read_misc_env(disk)
        # After the format the system is incomplete: the boot loader boots the
        # recovery (docs/board.md), and the request is kept for one that
        # knows only the request.
        assert env.get("system_incomplete") == "1", env
        assert env.get("recovery_request") == "1", env
        assert env.get("recovery_tries", "0") == "0", env
        if k:
            assert "time in a row" in text, tail(r)  # it saw the death, did not count it
    r = boot(disk, tmp_path, "final")
    assert (r.reason, r.result) == ("debug-exit", SI_OK), "\n".join(record) + "\n" + tail(r)
    assert "resuming" in r.log_text()  # not formatted again
    env = sihw.read_misc_env(disk)
    assert env.get("recovery_request") == "0" and "system_incomplete" not in env, env
    assert sihw.read_last_result(disk)["to_version"] == 11
    fsck_clean(disk, "system")
    assert_system_equals(disk, treecmp.snapshot(str(art / "m1")))


def test_crash_at_the_same_byte_stops_without_booting_the_half_system(art, tmp_path):
    """A recovery that aborts after 3 MiB of the update on every attempt:
    three crashes at the same point, then the job is stopped (tries-exhausted,
    the point named), request and system_incomplete kept, the recovery stays.
    A later boot reports it again without trying; a newly staged job is
    picked up and completes the system."""
    with open(os.path.join(sihw.ROOT, "build", "bin", "sysimage-recovery"), "rb") as f:
        assert b"sysimage.fault" not in f.read(), "the production recovery has the fault knob"
    if not os.path.exists(os.path.join(FAULTS_DIR, "initrd.img")):
        pytest.skip("build/faults/recovery missing: make recovery-image-faults")
    faults = {"kernel": os.path.join(FAULTS_DIR, "vmlinuz"),
              "initrd": os.path.join(FAULTS_DIR, "initrd.img"),
              "extra_append": f"sysimage.fault=apply:{3 * 1048576 + 12345}"}
    disk = make_disk(tmp_path, blank_system=True, sizes=MEDIUM)
    stage_update(disk, art, {"full-m1.tar.zst": art / "full-m1.tar.zst"})
    for k in range(1, 4):
        r = boot(disk, tmp_path, f"crash{k}", **faults)
        assert (r.reason, r.result) == ("debug-exit", SI_ERR_CRASHED), tail(r)
        assert "TEST FAULT: crashing" in r.log_text(), tail(r)
        env = sihw.read_misc_env(disk)
        assert env.get("system_incomplete") == "1" and env.get("recovery_request") == "1", env
        if k > 1:
            assert f"{k - 1} time{'s' if k > 2 else ''} in a row" in r.log_text(), tail(r)
    r = boot(disk, tmp_path, "stopped", **faults)
    text = r.log_text()
    assert (r.reason, r.result) == ("debug-exit", SI_ERR_TRIES_EXHAUSTED), tail(r)
    assert "TEST FAULT" not in text  # not tried a fourth time
    assert re.search(r"died 3 times at the same point \(step \d+, working, bytes 3145728\.\.4194304\)",
                     text), tail(r)
    # the error and the options on the console, from the recovery and /init
    assert "STOPPED: the system partition holds an incomplete install" in text, tail(r)
    assert "init: what can be done: stage a new job" in text, tail(r)
    last = sihw.read_last_result(disk)
    assert last["result"] == SI_ERR_TRIES_EXHAUSTED and "same point" in last["message"], last
    env = sihw.read_misc_env(disk)
    assert env == {"recovery_request": "1", "recovery_tries": "0", "system_incomplete": "1"}, env
    before = sihw.partition_sha256(disk, "system")

    # Powered on again, production image: the stopped job is not tried again.
    r = boot(disk, tmp_path, "again")
    assert (r.reason, r.result) == ("debug-exit", SI_ERR_TRIES_EXHAUSTED), tail(r)
    assert "not tried again" in r.log_text(), tail(r)
    assert sihw.partition_sha256(disk, "system") == before
    assert sihw.read_misc_env(disk).get("system_incomplete") == "1"

    # A newly staged job (another command file: the full image under another
    # name) is picked up and completes the system.
    stage_update(disk, art, {"m1-again.tar.zst": art / "full-m1.tar.zst"})
    r = boot(disk, tmp_path, "new-job")
    assert (r.reason, r.result) == ("debug-exit", SI_OK), tail(r)
    env = sihw.read_misc_env(disk)
    assert env.get("recovery_request") == "0" and "system_incomplete" not in env, env
    if sihw.can_mount():
        assert_system_equals(disk, treecmp.snapshot(str(art / "m1")))
