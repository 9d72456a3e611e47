"""`make demo` keeps working: tests/demo/demo.py end to end (sysimage publish,
nginx over HTTPS, sysimage-stub, three boots of the real recovery image), in
a private work directory so it runs next to other tests and a user's demo.

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
    for needle in ("ok: the system partition equals build 1",
                   "ok: check: build 1 -> 2 by delta",
                   "ok: the system partition equals build 2",
                   "ok: userdata is empty again",
                   "ok: the system partition is byte for byte what it was"):
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
    assert "ok: the stub staged the update and wrote the command file" in out, out[-8000:]
    m = re.search(r"^demo: FAILED: (.*)$", out, re.M)
    assert m and m.group(1).startswith("step 5: expected the recovery reported success"), out[-8000:]
    assert re.search(r"FAIL +5\. Round 1", out), out[-4000:]
    assert_nginx_gone(out)
