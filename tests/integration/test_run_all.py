"""tests/run_all.py counts honestly: cmocka's passes, failures, crashes and
skips; every skip listed with its reason; under CI=true a skip that
tests/allowed-skips.txt does not allow fails the run."""
import importlib.util
import os
import stat

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("run_all", os.path.join(ROOT, "tests", "run_all.py"))
run_all = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_all)

# What a cmocka 1.1 binary prints (stdout and stderr together) with one skip.
CMOCKA_ONE_SKIP = """\
[==========] Running 3 test(s).
[ RUN      ] parses
[       OK ] parses
[ RUN      ] needs_fixture
needs_fixture: fixture dir absent: skipped
[  SKIPPED ] needs_fixture
[ RUN      ] refuses
[       OK ] refuses
[==========] 3 test(s) run.
[  PASSED  ] 2 test(s).
[  SKIPPED ] 1 test(s), listed below:
[  SKIPPED ] needs_fixture

 1 SKIPPED TEST(S)
"""


def fake_unit(bindir, name, output, status=0):
    """A stand-in test binary printing `output` and exiting with `status`."""
    os.makedirs(bindir, exist_ok=True)
    path = os.path.join(bindir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\ncat <<'EOF'\n" + output + "EOF\nexit %d\n" % status)
    os.chmod(path, stat.S_IRWXU)


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "BUILD", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    return os.path.join(str(tmp_path), "tests", "unit")


def allow(tmp_path, monkeypatch, text):
    path = tmp_path / "allowed-skips.txt"
    path.write_text(text)
    monkeypatch.setattr(run_all, "ALLOWED_SKIPS", str(path))


def run_unit(monkeypatch, capsys, ci=False):
    """run_all.py --only unit (CI=true when ci): (exit status, stdout)."""
    if ci:
        monkeypatch.setenv("CI", "true")
    monkeypatch.setattr("sys.argv", ["run_all.py", "--only", "unit"])
    rc = run_all.main()
    return rc, capsys.readouterr().out


def test_parse_cmocka_counts_skips_once():
    passed, failed, skipped = run_all.parse_cmocka(CMOCKA_ONE_SKIP)
    assert (passed, failed, skipped) == (2, 0, ["needs_fixture"])


@pytest.mark.parametrize("allowed, ci, status, said, closing", [
    # not CI: the skip is reported with the test's own reason, nothing fails
    ("", False, 0,
     "tests/unit/test_a.c::needs_fixture: fixture dir absent [NOT in tests/allowed-skips.txt]",
     "2 passed, 0 failed, 1 skipped"),
    # CI, the skip allowed for another test only: it counts as failed
    ("tests/unit/test_b.c::*  another test's reason\n", True, 1,
     "fails the run under CI=true", "2 passed, 1 failed, 1 skipped"),
    # CI, the skip allowed: passes, and the allow-list's reason is printed
    ("# comment\n\ntests/unit/test_a.c::needs_*   the fixture lives elsewhere\n", True, 0,
     "[allowed: the fixture lives elsewhere]", "2 passed, 0 failed, 1 skipped"),
], ids=["local", "ci-unexpected", "ci-allowed"])
def test_skips_listed_and_judged(fake_build, tmp_path, monkeypatch, capsys,
                                 allowed, ci, status, said, closing):
    fake_unit(fake_build, "test_a", CMOCKA_ONE_SKIP)
    allow(tmp_path, monkeypatch, allowed)
    rc, out = run_unit(monkeypatch, capsys, ci=ci)
    assert rc == status, out
    assert "unit test_a: 2 passed, 0 failed, 1 skipped [ok]" in out
    assert said in out, out
    assert out.rstrip().endswith(closing), out


def test_crash_counts_as_failure(fake_build, tmp_path, monkeypatch, capsys):
    # a sanitizer abort: some tests passed, then the binary died
    fake_unit(fake_build, "test_a", "[ RUN      ] one\n[       OK ] one\n==1==ERROR: AddressSanitizer\n",
              status=1)
    allow(tmp_path, monkeypatch, "")
    rc, out = run_unit(monkeypatch, capsys)
    assert rc == 1 and out.rstrip().endswith("0 passed, 1 failed, 0 skipped")


def test_no_unit_binaries_is_a_failure(fake_build, tmp_path, monkeypatch, capsys):
    allow(tmp_path, monkeypatch, "")
    rc, out = run_unit(monkeypatch, capsys)
    assert rc == 1 and "no test binaries" in out


def test_allow_list_entry_needs_a_reason(tmp_path):
    path = tmp_path / "allowed-skips.txt"
    path.write_text("tests/unit/test_a.c::x\n")
    with pytest.raises(SystemExit) as e:
        run_all.load_allowed_skips(str(path))
    assert "has no reason" in str(e.value) and ":1:" in str(e.value)


def test_the_project_allow_list_parses_and_gives_reasons():
    entries = run_all.load_allowed_skips()
    assert entries and all(reason for _, reason in entries)


def test_junit_ids_name_the_file():
    assert run_all.junit_test_id("tests.integration.test_run_all", "test_x[1-2]") == \
        "tests/integration/test_run_all.py::test_x[1-2]"
    assert run_all.junit_test_id("tests.integration.test_run_all.TestK", "test_y") == \
        "tests/integration/test_run_all.py::TestK::test_y"
