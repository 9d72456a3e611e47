"""Proves the QEMU harness (sihw): board disks built without root, partitions
found by label with libblkid (partx), trees and staged files read back, the
misc environment block interoperable with grub-editenv, and boots of the
recovery image whose results come back through isa-debug-exit."""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sihw  # noqa: E402

ROOT = sihw.ROOT
REAL_RECOVERY = os.path.join(ROOT, "build", "bin", "sysimage-recovery")
LABELS = ["bios", "esp", "misc", "recovery", "system", "cache", "userdata"]
SMALL = {"esp": 40, "recovery": 8, "system": 32, "cache": 16, "userdata": 8}


def blkid_probe(disk, part):
    """blkid's view of the filesystem inside a partition of an image file."""
    out = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(part.start), "-S", str(part.size), disk],
                         capture_output=True, text=True, check=True).stdout
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


@pytest.fixture
def tree(tmp_path):
    t = tmp_path / "system-tree"
    (t / "etc" / "sysimage").mkdir(parents=True)
    (t / "etc" / "sysimage" / "version.json").write_text('{"build": 3, "channel": "stable"}\n')
    (t / "bin").mkdir()
    (t / "bin" / "tool").write_bytes(os.urandom(70000))
    os.chmod(t / "bin" / "tool", 0o755)
    os.symlink("tool", t / "bin" / "alias")
    return t


def test_disk_layout_labels_and_filesystems(tmp_path, tree):
    disk = str(tmp_path / "disk.img")
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    (esp / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(b"MZ" + os.urandom(1000))
    parts = sihw.build_disk(disk, sizes=SMALL, trees={"system": str(tree), "esp": str(esp)},
                            env={"recovery_request": "1", "recovery_tries": "0"})
    assert list(parts) == LABELS
    # sparse: far less allocated than the 120 MiB of partitions
    assert os.stat(disk).st_blocks * 512 < 40 * sihw.MIB
    assert parts["bios"].type.lower() == sihw.TYPE_BIOS.lower()
    assert parts["esp"].type.lower() == sihw.TYPE_ESP.lower()
    assert parts["misc"].size == sihw.MIB and parts["system"].size == 32 * sihw.MIB
    for label in ("recovery", "system", "cache", "userdata"):
        info = blkid_probe(disk, parts[label])
        assert info["TYPE"] == "ext4" and info["LABEL"] == label, info
    assert blkid_probe(disk, parts["esp"])["TYPE"] == "vfat"
    out = subprocess.run(["mdir", "-b", "-i", f"{disk}@@{parts['esp'].start}", "::/EFI/BOOT"],
                         capture_output=True, text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert "BOOTX64.EFI" in out.stdout, out.stderr
    # every ext4 partition is clean
    for label in ("system", "cache"):
        p = parts[label]
        r = subprocess.run(["e2fsck", "-fn", f"{disk}?offset={p.start}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_tree_reads_back(tmp_path, tree):
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, sizes=SMALL, trees={"system": str(tree)})
    out = sihw.read_tree(disk, "system", str(tmp_path / "back"))
    assert (tmp_path / "back" / "bin" / "tool").read_bytes() == (tree / "bin" / "tool").read_bytes()
    assert os.readlink(tmp_path / "back" / "bin" / "alias") == "tool"
    assert os.stat(os.path.join(out, "bin", "tool")).st_mode & 0o777 == 0o755
    assert json.loads(sihw.read_file(disk, "system", "/etc/sysimage/version.json")) == {
        "build": 3, "channel": "stable"}
    assert sihw.read_file(disk, "system", "/etc/missing") is None
    assert sihw.read_file(disk, "userdata", "/lost+found") is not None
    with pytest.raises(sihw.HarnessError, match="no partition labelled 'nope'"):
        sihw.read_file(disk, "nope", "/x")


def test_stage_and_results(tmp_path):
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, sizes=SMALL)
    assert sihw.read_last_result(disk) is None
    payload = tmp_path / "full.tar.zst"
    payload.write_bytes(os.urandom(300000))
    cmd = "format system\nmount system\nupdate full.tar.zst full.tar.zst.sig\nunmount system\n"
    sihw.stage_recovery(disk, {"full.tar.zst": payload, "full.tar.zst.sig": "sysimage-signature 1\n"},
                        command=cmd)
    assert sihw.list_dir(disk, "cache", "/recovery") == ["full.tar.zst", "full.tar.zst.sig", "sysimage_command"]
    assert sihw.read_file(disk, "cache", "/recovery/sysimage_command") == cmd.encode()
    assert sihw.read_file(disk, "cache", "/recovery/full.tar.zst") == payload.read_bytes()
    # staging again replaces files
    sihw.stage_recovery(disk, command="format data\n")
    assert sihw.read_file(disk, "cache", "/recovery/sysimage_command") == b"format data\n"
    sihw.write_files(disk, "cache", "/recovery", {"last_result.json": '{"result": 0, "name": "ok"}'})
    assert sihw.read_last_result(disk) == {"result": 0, "name": "ok"}
    with pytest.raises(sihw.HarnessError):
        sihw.write_files(disk, "cache", "/recovery", {"../escape": b"x"})


def test_misc_env_interop_with_grub_editenv(tmp_path):
    disk = str(tmp_path / "disk.img")
    parts = sihw.build_disk(disk, sizes=SMALL, env={"recovery_request": "factory-reset", "recovery_tries": "2"})
    assert sihw.read_misc_env(disk) == {"recovery_request": "factory-reset", "recovery_tries": "2"}
    blk = tmp_path / "grubenv"
    with open(disk, "rb") as f:
        f.seek(parts["misc"].start)
        blk.write_bytes(f.read(1024))
    listed = subprocess.run(["grub-editenv", str(blk), "list"], capture_output=True, text=True, check=True)
    assert listed.stdout == "recovery_request=factory-reset\nrecovery_tries=2\n"
    subprocess.run(["grub-editenv", str(blk), "set", "recovery_request=0"], check=True)
    assert sihw.parse_grubenv(blk.read_bytes()) == {"recovery_request": "0", "recovery_tries": "2"}
    sihw.write_misc_env(disk, {"recovery_request": "1"})
    assert sihw.read_misc_env(disk) == {"recovery_request": "1"}
    with open(disk, "r+b") as f:
        f.seek(parts["misc"].start)
        f.write(b"\0" * 1024)
    assert sihw.read_misc_env(disk) is None


# ---------------------------------------------------------------- boots
FAKE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "debugexit.h"
#include "grubenv.h"
#include "mkfs.h"
#include "partitions.h"
/* Stands in for sysimage-recovery to test the harness, /init and the board
 * libraries on the real kernel: `run --mode update` finds userdata by label
 * (making its node under /tmp/devtest with mknod), re-makes it keeping its
 * label, updates misc's environment and exits 7; `run --mode factory-reset …`
 * aborts (a crash). */
static int fail(const si_err *e)
{
    printf("harness-recovery: FAILED: %s\n", e->msg);
    return e->code;
}

int main(int argc, char **argv)
{
    si_err e;
    si_err_clear(&e);
    if (argc == 3 && strcmp(argv[1], "debug-exit") == 0) {
        si_debug_exit((unsigned)atoi(argv[2]), &e);
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("harness-recovery:");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "factory-reset") == 0)
            abort();
    si_partition p;
    mkdir("/tmp/devtest", 0755);
    if (si_partition_find("/sys", "/tmp/devtest", "userdata", &p, &e) != SI_OK)
        return fail(&e);
    printf("harness-recovery: userdata is %s (%u:%u)\n", p.path, p.major, p.minor);
    if (si_mkfs_ext4_keep_label(p.path, "fallback", NULL, &e) != SI_OK)
        return fail(&e);
    char sys[SI_PART_PATH_MAX];
    si_mkfs_opts mo;
    si_mkfs_opts_init(&mo);
    mo.label = "system";
    mo.discard = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (si_partition_find_path("system", sys, sizeof(sys), &e) != SI_OK || si_mkfs_ext4(sys, &mo, &e) != SI_OK)
        return fail(&e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("harness-recovery: mkfs %s took %ld ms\n", sys,
           (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    char misc[SI_PART_PATH_MAX];
    si_grubenv env;
    if (si_partition_find_path("misc", misc, sizeof(misc), &e) != SI_OK ||
        si_grubenv_read_dev(misc, &env, &e) != SI_OK ||
        si_grubenv_set(&env, "recovery_request", "0", &e) != SI_OK ||
        si_grubenv_set(&env, "recovery_tries", "1", &e) != SI_OK ||
        si_grubenv_write_dev(misc, &env, &e) != SI_OK)
        return fail(&e);
    printf("harness-recovery: done\n");
    fflush(stdout);
    return 7;
}
"""


def _need_qemu():
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")


@pytest.fixture(scope="module")
def harness_image(tmp_path_factory):
    """A recovery image around a small static test program (not the real recovery)."""
    _need_qemu()
    d = tmp_path_factory.mktemp("harness-image")
    lib = os.path.join(ROOT, "build", "lib", "libsysimage.a")
    if not os.path.exists(lib):  # normally built by `make all` before the tests
        with open(os.path.join(ROOT, "build", ".harness-make.lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            subprocess.run(["make", "-C", ROOT, "-s", "build/lib/libsysimage.a"], check=True)
    (d / "fake.c").write_text(FAKE_C)
    subprocess.run(["gcc", "-static", "-O2", "-I", os.path.join(ROOT, "lib"), "-o", str(d / "sysimage-recovery"),
                    str(d / "fake.c"), lib, "-lext2fs", "-le2p", "-lcom_err", "-lblkid", "-luuid"], check=True)
    subprocess.run([os.path.join(ROOT, "initramfs", "build.sh"), str(d / "sysimage-recovery"), str(d / "out")],
                   check=True, env=dict(os.environ, KERNEL_CACHE=os.path.join(ROOT, "build", "kernel")))
    return d / "out"


def _boot(image, disk, **kw):
    return sihw.boot_recovery(disk, kernel=str(image / "vmlinuz"), initrd=str(image / "initrd.img"),
                              timeout=120, **kw)


def test_boot_result_code_and_crash(harness_image, tmp_path, tree):
    """Also runs partitions, mkfs and grubenv on the real kernel's devices."""
    disk = str(tmp_path / "disk.img")
    parts = sihw.build_disk(disk, sizes=dict(SMALL, system=512), env={"recovery_request": "1", "other": "kept"},
                            trees={"system": str(tree)})
    sihw.make_ext4(disk, "userdata", fs_label="precious")
    sihw.write_files(disk, "userdata", "/home", {"secret": "user data\n"})
    r = _boot(harness_image, disk, log=str(tmp_path / "update.log"))
    log = r.log_text()
    assert (r.reason, r.result, r.status) == ("debug-exit", 7, 15), log
    assert "harness-recovery: run --mode update" in log
    assert "vda: vda1 vda2 vda3 vda4 vda5 vda6 vda7" in log  # modules loaded, GPT scanned
    assert "harness-recovery: userdata is /tmp/devtest/vda7 (254:7)" in log
    assert "harness-recovery: done" in log
    # userdata re-made in the guest: clean, label kept, old files gone
    assert sihw.read_file(disk, "userdata", "/home/secret") is None
    info = blkid_probe(disk, parts["userdata"])
    assert info["TYPE"] == "ext4" and info["LABEL"] == "precious", info
    fsck = subprocess.run(["e2fsck", "-fn", f"{disk}?offset={parts['userdata'].start}"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert sihw.read_misc_env(disk) == {"recovery_request": "0", "other": "kept", "recovery_tries": "1"}
    # system (512 MiB) formatted in the guest: empty, clean, labelled
    assert re.search(r"harness-recovery: mkfs /dev/vda5 took \d+ ms", log), log
    assert sihw.read_file(disk, "system", "/etc/sysimage/version.json") is None
    assert blkid_probe(disk, parts["system"])["LABEL"] == "system"
    fsck = subprocess.run(["e2fsck", "-fn", f"{disk}?offset={parts['system'].start}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    r = _boot(harness_image, disk, mode="factory-reset", log=str(tmp_path / "reset.log"))
    assert (r.reason, r.result) == ("debug-exit", 30), r.log_text()
    assert "sysimage-recovery CRASHED (killed by signal 6)" in r.log_text()


def test_boot_power_cut(harness_image, tmp_path):
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, sizes=SMALL)
    r = _boot(harness_image, disk, kill_on=r"init: running sysimage-recovery", log=str(tmp_path / "cut1.log"))
    assert r.reason == "killed" and r.result is None and r.status < 0
    assert "init: running sysimage-recovery (mode update)" in r.matched
    r = _boot(harness_image, disk, kill_after=0.5, log=str(tmp_path / "cut2.log"))
    assert r.reason == "killed" and r.result is None and r.seconds < 10
    assert "init: recovery result" not in r.log_text()


def test_boot_without_result_is_reported(harness_image, tmp_path):
    """An initrd whose /init just powers off: QEMU exits 0, which is no result."""
    disk = str(tmp_path / "disk.img")
    sihw.build_disk(disk, sizes=SMALL)
    stage = tmp_path / "stage"
    (stage / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", stage / "bin" / "busybox")
    for a in ("sh", "poweroff", "mount", "echo"):
        os.symlink("busybox", stage / "bin" / a)
    (stage / "init").write_text("#!/bin/sh\n/bin/echo plain poweroff\n/bin/poweroff -f\n")
    os.chmod(stage / "init", 0o755)
    initrd = tmp_path / "plain.img"
    subprocess.run(f"cd {stage} && find . | cpio -o -H newc -R 0:0 --quiet | gzip > {initrd}",
                   shell=True, check=True)
    r = sihw.boot_recovery(disk, kernel=str(harness_image / "vmlinuz"), initrd=str(initrd), timeout=120,
                           log=str(tmp_path / "plain.log"))
    assert (r.reason, r.result, r.status) == ("no-result", None, 0), r.log_text()


@pytest.mark.skipif(not os.path.exists(REAL_RECOVERY), reason="build/bin/sysimage-recovery not built yet")
def test_boot_real_recovery_returns_a_result(tmp_path):
    """The real image (make recovery-image) on a board disk without a command
    file, the boot control asking for recovery: the recovery has nothing to do
    and must say so, not-found (28), through isa-debug-exit and
    last_result.json, and clear the request (no crash, no other code)."""
    _need_qemu()
    subprocess.run(["make", "-C", ROOT, "-s", "recovery-image"], check=True)
    disk = str(tmp_path / "disk.img")
    # The recovery partition holds the real kernel (14 MB) and initrd.
    sihw.build_disk(disk, sizes=dict(SMALL, recovery=40), recovery_image=sihw.RECOVERY_DIR,
                    env={"recovery_request": "1", "recovery_tries": "0"})
    r = sihw.boot_recovery(disk, log=str(tmp_path / "serial.log"), timeout=150)
    assert (r.reason, r.result) == ("debug-exit", 28), r.log_text()
    last = sihw.read_last_result(disk)
    assert last is not None, r.log_text()
    assert (last["result"], last["result_name"], last["mode"]) == (28, "not-found", "update"), last
    assert "no /cache/recovery/sysimage_command" in last["message"], last
    assert sihw.read_misc_env(disk) == {"recovery_request": "0", "recovery_tries": "0"}
