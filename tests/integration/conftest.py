"""Shared pytest fixtures for sysimage integration tests.

Helpers every test module may use: paths to the built binaries, a runner that
captures output, and a freshly generated development key hierarchy."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")
SYSIMAGE = os.path.join(BIN, "sysimage")
RECOVERY = os.path.join(BIN, "sysimage-recovery")
STUB = os.path.join(BIN, "sysimage-stub")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))


def run(cmd, check=False, **kw):
    """Run cmd (list), capture text output; assert success when check=True."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check:
        assert proc.returncode == 0, f"{cmd} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def sysimage(*args, check=False, **kw):
    return run([SYSIMAGE, *args], check=check, **kw)


@pytest.fixture(scope="session")
def devkeys(tmp_path_factory):
    """A development key hierarchy (scripts/make-dev-keys.sh) in a temp dir."""
    d = tmp_path_factory.mktemp("keys")
    run([os.path.join(ROOT, "scripts", "make-dev-keys.sh"), SYSIMAGE, d], check=True)
    return d
