"""The scenario trees are deterministic and their delta exercises every kind
of change (no QEMU needed)."""
import os
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import ostree  # noqa: E402
import treecmp  # noqa: E402


def test_same_seed_same_tree_other_seed_other_tree(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        ostree.generate(str(tmp_path / name), seed=seed, build=4, size_mb=3, small_files=150)
    a, b, c = (treecmp.snapshot(str(tmp_path / n)) for n in "abc")
    assert treecmp.diff(a, b) == []
    assert treecmp.diff(a, c) != []
    kinds = {stat.S_IFMT(r["type"]) for r in a.values()}
    assert {stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO} <= kinds
    assert any(r["links"] for r in a.values()), "no hardlinks"
    assert any(r["xattrs"] for r in a.values()), "no xattrs"
    assert sum(r.get("size", 0) for r in a.values()) >= 3 * ostree.MIB
    assert open(tmp_path / "a" / "etc/sysimage/version.json").read() == '{"build": 4, "channel": "stable"}\n'


def test_mutation_changes_every_kind(tmp_path):
    ostree.generate(str(tmp_path / "v1"), seed=3, size_mb=3, small_files=300)
    ostree.mutate(str(tmp_path / "v1"), str(tmp_path / "v2"), seed=4, build=9)
    ostree.mutate(str(tmp_path / "v1"), str(tmp_path / "v2b"), seed=4, build=9)
    assert treecmp.diff(str(tmp_path / "v2"), str(tmp_path / "v2b")) == []
    lines = treecmp.diff(str(tmp_path / "v1"), str(tmp_path / "v2"))
    text = "\n".join(lines)
    for what in ("only in first", "only in second", "sha256", "mode", "type", "xattrs", "links", "link "):
        assert what in text, what
