"""`sysimage image`: a factory disk image of a published build.

The image is checked from the outside: the GPT (partx) against board.json,
every ext4 with e2fsck, the system partition against the published tree
(treecmp: type, mode, owner, size, content, xattrs, links, devices,
hardlinks), the recovery files, misc's boot-control block, the ESP's files
(mtools), the BIOS boot code; two builds are byte-identical; bmaptool copies
the image (raw and zstd) to the same bytes. Refusals (tampered repository,
other keys, unknown build, disk too small, an expired index) exit with their
code, name the problem and leave no output behind. A repository served by
nginx (--repo URL) gives the same bytes as the directory; a tampered file on
the server and an unreachable server are refused. Booting the image is
tests/qemu/test_image_boot.py."""
import os
import shutil
import struct
import sys

import pytest

from conftest import ROOT, run, sysimage
import treecmp

sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))
sys.path.insert(0, os.path.join(ROOT, "images"))
import board as boardlib  # noqa: E402
import nginx_server  # noqa: E402
import provkit  # noqa: E402
import sihw  # noqa: E402
from provkit import sha  # noqa: E402

BOARD = boardlib.Board("qemu-x86_64")
IMAGES = os.path.join(ROOT, "images")

pytestmark = provkit.IMAGE_MARKS


@pytest.fixture(scope="module")
def published(tmp_path_factory, devkeys):
    """A repository with build 1 (a tree with every kind of entry) and a
    stand-in recovery image."""
    import test_payloads
    d = tmp_path_factory.mktemp("image")
    tree = str(d / "tree")
    test_payloads.make_v1(tree)
    os.makedirs(os.path.join(tree, "boot"))
    with open(os.path.join(tree, "boot", "vmlinuz"), "wb") as f:
        f.write(b"kernel of build 1\n")
    repo = provkit.publish(d / "repo", devkeys, tree, 1)
    rec = provkit.fake_recovery(d / "recovery")
    return {"dir": d, "tree": tree, "repo": repo, "keys": str(devkeys), "recovery": rec}


def make_image(p, out, *extra, repo=None, keys=None):
    return provkit.tool("image", "qemu-x86_64", repo or p["repo"], out, *extra, keys=keys or p["keys"],
                        recovery=p["recovery"])


@pytest.fixture(scope="module")
def image(published):
    out = str(published["dir"] / "disk.img")
    proc = make_image(published, out, "--build", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "build 1 of stable" in proc.stdout
    return out


def test_gpt_follows_the_board(image):
    provkit.check_gpt(image, BOARD)
    # sparse: far less is allocated than the disk's size
    assert os.stat(image).st_blocks * 512 < os.path.getsize(image) // 4


def test_every_ext4_is_clean(image):
    provkit.check_ext4(image, BOARD)


@pytest.mark.skipif(not sihw.can_mount(), reason="reading the system partition back needs a loop mount")
def test_system_is_the_published_tree(image, published):
    with sihw.mounted_ro(image, "system") as mnt:
        treecmp.check_installed(mnt, published["tree"])


def test_recovery_misc_esp_and_bios(image, published):
    for name in ("vmlinuz", "initrd.img"):
        with open(os.path.join(published["recovery"], name), "rb") as f:
            assert sihw.read_file(image, "recovery", "/" + name) == f.read(), name
    assert sihw.read_misc_env(image) == {"recovery_request": "0"}
    esp = sihw.partitions(image)["esp"]
    mt = lambda path: run(["mtype", "-i", f"{image}@@{esp.start}", "::/" + path],
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True).stdout
    assert mt("grub/grub.cfg") == BOARD.render_grub_cfg(3)
    assert sihw.read_bootcount(image) == {"recovery_boots": "0", "normal_boots": "0", "system_new": "0"}
    efi = run(["mdir", "-b", "-i", f"{image}@@{esp.start}", "::/EFI/BOOT"],
              env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True).stdout
    assert "BOOTX64.EFI" in efi
    # BIOS: boot.img's code in the MBR pointing at the core image in `bios`
    bios = sihw.partitions(image)["bios"]
    with open(image, "rb") as f:
        mbr = f.read(512)
        f.seek(bios.start)
        core = f.read(512)
    with open(BOARD.boot["bios"]["boot_img"], "rb") as f:
        boot = f.read(512)
    assert mbr[:0x5c] == boot[:0x5c] and mbr[0x64:440] == boot[0x64:440]
    assert struct.unpack_from("<Q", mbr, 0x5c)[0] == bios.start // 512
    assert struct.unpack_from("<Q", core, 500)[0] == bios.start // 512 + 1
    assert mbr[510:512] == b"\x55\xaa" and mbr[450] == 0xee  # protective MBR kept


def test_same_inputs_same_bytes(image, published, tmp_path):
    again = str(tmp_path / "again.img")
    proc = make_image(published, again, "--build", "1")
    assert proc.returncode == 0, proc.stderr
    assert sha(again) == sha(image)
    with open(again + ".bmap") as a, open(image + ".bmap") as b:
        assert a.read() == b.read()


def test_bmaptool_copies_raw_and_zstd(image, published, tmp_path):
    copy = str(tmp_path / "copy.img")
    proc = run(["bmaptool", "copy", "--bmap", image + ".bmap", image, copy])
    assert proc.returncode == 0, proc.stderr
    assert sha(copy) == sha(image)
    z = str(tmp_path / "z.img")
    proc = make_image(published, z, "--compress", "zstd")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(z) and os.path.exists(z + ".zst")
    copy2 = str(tmp_path / "copy2.img")
    proc = run(["bmaptool", "copy", "--bmap", z + ".bmap", z + ".zst", copy2])
    assert proc.returncode == 0, proc.stderr
    assert sha(copy2) == sha(image)  # newest build is build 1: same image


def test_bigger_disk_grows_userdata(published, tmp_path):
    out = str(tmp_path / "big.img")
    proc = make_image(published, out, "--size", "700")
    assert proc.returncode == 0, proc.stderr
    parts = sihw.partitions(out)
    assert parts["userdata"].size == (700 - 1 - 1 - 514) * sihw.MIB
    assert run(["e2fsck", "-fn", f"{out}?offset={parts['userdata'].start}"]).returncode == 0


def _refused(proc, out, code, needle):
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    assert not os.path.exists(out + ".bmap")


def test_refuses_a_tampered_file(published, tmp_path):
    repo = shutil.copytree(published["repo"], str(tmp_path / "repo"))
    provkit.flip_byte(provkit.full_tarball(repo))
    out = str(tmp_path / "t.img")
    _refused(make_image(published, out, repo=repo), out, 12, "sha256")


def test_refuses_other_keys(published, tmp_path):
    other = tmp_path / "other"
    run([os.path.join(ROOT, "scripts", "make-dev-keys.sh"), os.path.join(ROOT, "build", "bin", "sysimage"),
         other], check=True)
    out = str(tmp_path / "k.img")
    _refused(make_image(published, out, keys=str(other)), out, 7, "image-master")


def test_refuses_unknown_build_small_disk(published, tmp_path):
    out = str(tmp_path / "u.img")
    _refused(make_image(published, out, "--build", "7"), out, 28, "no full image of build 7")
    _refused(make_image(published, out, "--size", "579"), out, 24, "at least 580 MiB")
    proc = sysimage("image", "--board", "nope", "--images", IMAGES, "--repo", published["repo"], "--channel",
                    "stable", "--archive-master", "x", "--out", out)
    _refused(proc, out, 28, "board 'nope'")


@pytest.fixture(scope="module")
def served(published, tmp_path_factory):
    """nginx (HTTPS, a throw-away CA) serving a copy of the published repository."""
    d = tmp_path_factory.mktemp("served")
    root = str(d / "www")
    shutil.copytree(published["repo"], root)
    tls = nginx_server.make_tls(d)
    (d / "nginx").mkdir()
    ng = nginx_server.Nginx(root, d / "nginx", tls)
    yield {"root": root, "url": ng.url + "/", "ca": tls[0], "nginx": ng}
    ng.stop()


def test_url_repository_gives_the_same_bytes(image, published, served, tmp_path):
    out = str(tmp_path / "url.img")
    proc = make_image(published, out, "--build", "1", repo=served["url"], *("--ca", served["ca"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fetched" in proc.stdout and served["url"] in proc.stdout, proc.stdout
    assert sha(out) == sha(image)
    with open(out + ".bmap") as a, open(image + ".bmap") as b:
        assert a.read() == b.read()
    # every file came from nginx, the update files in one whole GET each
    log = served["nginx"].access_log()
    assert any("rootfs-full" in uri and status == 200 and not rng for uri, status, _, rng in log), log


def test_url_repository_refusals(published, served, tmp_path):
    out = str(tmp_path / "u.img")
    # a tampered update file on the server
    full = provkit.full_tarball(served["root"])
    provkit.flip_byte(full)
    try:
        _refused(make_image(published, out, repo=served["url"], *("--ca", served["ca"])), out, 12, "sha256")
    finally:
        provkit.flip_byte(full)
    # nobody listening
    dead = f"https://127.0.0.1:{nginx_server.free_port()}/"
    proc = make_image(published, out, repo=dead)
    _refused(proc, out, 23, dead.rstrip("/") + "/keyrings/image-master.keyring")
    # the server's CA is not trusted (the system's store)
    _refused(make_image(published, out, repo=served["url"]), out, 23, "certificate")
    # not a URL nor a directory we know
    _refused(make_image(published, out, repo="ftp://example.org/repo"), out, 1, "not an http")


def test_expired_index_is_refused_unless_overridden(published, tmp_path):
    repo = provkit.expire(shutil.copytree(published["repo"], str(tmp_path / "repo")), published["keys"])
    out = str(tmp_path / "e.img")
    _refused(make_image(published, out, repo=repo), out, 25, "index.json: expired on")
    _refused(provkit.tool("flash-media", "qemu-x86_64", repo, out, keys=published["keys"],
                          recovery=published["recovery"]), out, 25, "index.json: expired on")
    # the factory's explicit override, said in the output
    proc = make_image(published, out, "--allow-expired-index", repo=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING: index.json expired on" in proc.stdout and "--allow-expired-index" in proc.stdout
    proc = provkit.tool("flash-media", "qemu-x86_64", repo, out + "2", "--allow-expired-index",
                        keys=published["keys"], recovery=published["recovery"])
    assert proc.returncode == 1 and "publish --refresh" in proc.stderr, proc.stderr
