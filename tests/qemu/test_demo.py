"""`make demo` keeps working: tests/demo/demo.py end to end (sysimage publish,
nginx over HTTPS, a blank board disk booting GRUB under OVMF, the recovery
installing build 1, the stub inside the guest staging the delta to build 2,
the menu's Factory reset chosen by a key), in a private work directory so it
runs next to other tests and a user's demo. This is also the UEFI run of the
device loop (test_device.py runs it on BIOS).

Also: the demo fails (exit 1, naming the failed check) when the device cannot
trust what it is given: published with another key hierarchy, the stub
(configured with that hierarchy's archive-master) stages the update, and the
recovery, whose archive-master is built in, refuses it. Either way the demo's
nginx is gone when it exits."""
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import sihw  # noqa: E402

DEMO = os.path.join(ROOT, "tests", "demo", "demo.py")
BIN = os.path.join(ROOT, "build", "bin")
KEYS = os.path.abspath(os.environ.get("SI_KEYS") or os.path.join(ROOT, "keys", "dev"))


def _publish_built():
    tool = os.path.join(BIN, "sysimage")
    return os.path.exists(tool) and subprocess.run(
        [tool, "publish", "--help"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"),
                       reason="nginx not installed"),
    pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "sysimage-recovery")),
                       reason="build/bin/sysimage-recovery not built yet"),
    pytest.mark.skipif(not os.path.exists(os.path.join(sihw.RECOVERY_DIR, "initrd.img")),
                       reason="build/recovery/initrd.img missing: make recovery-image"),
    pytest.mark.skipif(not _publish_built(), reason="`sysimage publish` not built yet"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KEYS, "archive-master.keyring")),
                       reason=f"{KEYS} has no key hierarchy: make keys"),
]


def run_demo(workdir, keys):
    proc = subprocess.run([sys.executable, DEMO, "--workdir", str(workdir), "--keys", str(keys)],
                          capture_output=True, text=True, timeout=1500)
    return proc, proc.stdout + proc.stderr


def assert_nginx_gone(out):
    m = re.search(r"nginx \(pid (\d+)\)", out)
    assert m, "the demo did not report its nginx:\n" + out
    pid = int(m.group(1))
    # the demo's child: reaped when the demo exited, so no /proc entry is left
    assert not os.path.exists(f"/proc/{pid}"), f"nginx {pid} still running after the demo"


def test_demo_end_to_end(tmp_path):
    proc, out = run_demo(tmp_path / "demo", KEYS)
    assert proc.returncode == 0, out[-8000:]
    assert re.search(r"^demo: all \d+ checks passed in \d+ s", out, re.M), out[-4000:]
    # the three rounds really happened, in order, with the expected outcomes
    for needle in ("ok: the recovery installed build 1 (result 0)",
                   "ok: GRUB booted Normal: build 1 is up",
                   "ok: the stub on the device chose the delta 1 -> 2",
                   "ok: GRUB booted Normal: build 2 is up",
                   "ok: sysimage-stub status: build 2, last result: 1 -> 2",
                   "ok: the user's data is gone (userdata was formatted)",
                   "ok: the system partition equals build 2",
                   "ok: GRUB's counters on the ESP are back to 0"):
        assert needle in out, f"missing {needle!r}:\n{out[-8000:]}"
    assert "FAIL" not in out
    assert_nginx_gone(out)


def test_demo_fails_when_the_recovery_does_not_trust_the_keys(tmp_path):
    other = tmp_path / "other-keys"
    subprocess.run([os.path.join(ROOT, "scripts", "make-dev-keys.sh"),
                    os.path.join(BIN, "sysimage"), str(other)], check=True, capture_output=True)
    proc, out = run_demo(tmp_path / "demo", other)
    assert proc.returncode == 1, out[-8000:]
    # the stub trusted its (other) archive-master and staged; the recovery refused
    assert "ok: the factory requested the recovery in misc" in out, out[-8000:]
    m = re.search(r"^demo: FAILED: (.*)$", out, re.M)
    assert m and m.group(1).startswith("step 5: expected the recovery installed build 1"), out[-8000:]
    assert re.search(r"FAIL +5\. Power on", out), out[-4000:]
    assert_nginx_gone(out)
