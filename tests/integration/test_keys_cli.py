"""The trust commands of `sysimage`: keygen, keyring create/check, sign, verify,
and interoperability with the OpenSSL command line (ECDSA P-256, RSA-PSS)."""
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import run, sysimage

# si_result codes (lib/result.h)
USAGE, MISSING_FILE, BAD_SIGNATURE, KEYRING_TYPE, EXPIRED, MODEL, BLACKLISTED, EXISTS = \
    1, 16, 7, 8, 9, 10, 11, 27

RINGS = ["image-master", "image-signing", "blacklist", "device-signing"]


def openssl(*args, check=True):
    return run(["openssl", *args], check=check)


def key_id_of_pub(pub):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def stanza(key_id, alg, sig_bytes):
    return ("sysimage-signature 1\nkey-id %s\nalgorithm %s\nsignature %s\n"
            % (key_id, alg, base64.b64encode(sig_bytes).decode()))


def parse_sig(path):
    """Stanzas of a .sig file as dicts."""
    out, cur = [], {}
    for line in open(path).read().splitlines():
        if not line:
            continue
        k, v = line.split(" ", 1)
        if k == "sysimage-signature":
            cur = {}
            out.append(cur)
        else:
            cur[k] = v
    return out


def check_cmd(keys, *rings, extra=()):
    return sysimage("keyring", "check", "--archive-master", keys / "archive-master.keyring",
                    *extra, *rings)


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "payload.bin"
    p.write_bytes(os.urandom(100000) + b"end")
    return p


def create_ring(out, typ, signer, *pubs, extra=()):
    """The keyring out of type typ holding the public keys pubs, signed with
    the private key signer (extra: more options of `keyring create`)."""
    sysimage("keyring", "create", "--type", typ, *extra, "--sign-with", signer, out, *pubs,
             check=True)
    return out


# ------------------------------------------------------------------ help / usage

@pytest.mark.parametrize("cmd", [["keygen"], ["keyring", "create"], ["keyring", "check"],
                                 ["keyring"], ["sign"], ["verify"]])
def test_help(cmd):
    p = sysimage(*cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: sysimage " + cmd[0])


def test_top_level_lists_commands():
    p = sysimage("--help")
    assert p.returncode == 0
    for name in ["keygen", "keyring create", "keyring check", "sign", "verify"]:
        assert name in p.stdout
    assert sysimage().returncode == USAGE
    assert sysimage("nonsense").returncode == USAGE
    assert sysimage("keyring").returncode == USAGE
    assert sysimage("keyring", "frobnicate").returncode == USAGE


@pytest.mark.parametrize("args", [
    ["keygen"],
    ["keygen", "a", "b"],
    ["keygen", "--rsa", "1024", "k"],
    ["keygen", "--rsa", "lots", "k"],
    ["keygen", "--bogus", "k"],
    ["keyring", "create", "out.keyring"],
    ["keyring", "create", "--type", "root", "out.keyring"],
    ["keyring", "create", "--type", "image-signing", "out.keyring"],
    ["keyring", "create", "--type", "archive-master", "--sign-with", "x.key", "out.keyring"],
    ["keyring", "create", "--type", "blacklist", "--expiry", "soon", "--sign-with", "x.key",
     "out.keyring"],
    ["keyring", "create", "--type", "blacklist", "--sign-with", "x.key"],
    ["sign", "file"],
    ["sign", "--key", "k.key"],
    ["verify", "file"],
    ["verify", "--keyring", "k.keyring"],
    ["keyring", "check", "x.keyring"],
    ["keyring", "check", "--archive-master", "am.keyring"],
    ["keyring", "check", "--archive-master", "am.keyring", "--now", "yesterday", "x.keyring"],
])
def test_bad_usage(args, tmp_path):
    p = sysimage(*args, cwd=tmp_path)
    assert p.returncode == USAGE, (args, p.stdout, p.stderr)
    assert p.stderr
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ keygen

def test_keygen_ecdsa(tmp_path):
    p = sysimage("keygen", tmp_path / "k", check=True)
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    kid = key_id_of_pub(pub)
    assert kid in p.stdout and "ecdsa-p256-sha256" in p.stdout
    text = openssl("pkey", "-in", key, "-noout", "-text").stdout
    assert "prime256v1" in text or "P-256" in text
    # never overwrite a private key
    before = key.read_bytes()
    assert sysimage("keygen", tmp_path / "k").returncode == EXISTS
    assert key.read_bytes() == before


def test_keygen_rsa(tmp_path):
    p = sysimage("keygen", "--rsa", "2048", tmp_path / "r", check=True)
    assert "rsa-pss-sha256" in p.stdout
    assert stat.S_IMODE((tmp_path / "r.key").stat().st_mode) == 0o600
    text = openssl("pkey", "-pubin", "-in", tmp_path / "r.pub", "-noout", "-text").stdout
    assert "2048 bit" in text
    assert key_id_of_pub(tmp_path / "r.pub") in p.stdout


def test_dev_hierarchy(devkeys):
    for k in ["archive-master"] + RINGS:
        for ext in (".key", ".pub", ".keyring"):
            assert (devkeys / (k + ext)).exists(), k + ext
        assert stat.S_IMODE((devkeys / (k + ".key")).stat().st_mode) == 0o600
    assert not (devkeys / "archive-master.keyring.sig").exists()
    for k in RINGS:
        assert (devkeys / (k + ".keyring.sig")).exists()
    p = check_cmd(devkeys, *[devkeys / (r + ".keyring") for r in RINGS],
                  extra=["--device", "qemu-x86_64"])
    assert p.returncode == 0, p.stderr
    for r in RINGS:
        assert "ok " + r in p.stdout


# ------------------------------------------------------------------ keyring create

def test_keyring_create_contents(devkeys, tmp_path):
    out = tmp_path / "device-signing.keyring"
    create_ring(out, "device-signing", devkeys / "image-signing.key",
                devkeys / "device-signing.pub", devkeys / "image-signing.pub",
                extra=["--expiry", "2000000000", "--model", "board-x"])
    doc = json.loads(out.read_text())
    assert doc["format"] == 1 and doc["type"] == "device-signing"
    assert doc["expiry"] == 2000000000 and doc["model"] == "board-x"
    assert len(doc["keys"]) == 2
    assert doc["keys"][0] == (devkeys / "device-signing.pub").read_text()
    # canonical output: sorted keys, 4-space indent
    assert out.read_text().startswith('{\n    "expiry": 2000000000,\n    "format": 1,')
    sig = parse_sig(str(out) + ".sig")
    assert len(sig) == 1 and sig[0]["key-id"] == key_id_of_pub(devkeys / "image-signing.pub")
    # a bad public key file is named
    (tmp_path / "bad.pub").write_text("not a key\n")
    p = sysimage("keyring", "create", "--type", "blacklist", "--sign-with",
                 devkeys / "image-master.key", tmp_path / "b.keyring", tmp_path / "bad.pub")
    assert p.returncode == 6 and "bad.pub: not a PEM public key" in p.stderr, p.stderr  # bad-key
    # a missing signing key is named
    p = sysimage("keyring", "create", "--type", "blacklist", "--sign-with",
                 tmp_path / "none.key", tmp_path / "b.keyring")
    assert p.returncode == 2 and "none.key: No such file" in p.stderr, p.stderr  # io
    # an encrypted private key is refused with a reason
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-aes-128-cbc", "-pass", "pass:secret", "-out", tmp_path / "enc.key")
    (tmp_path / "doc").write_text("doc\n")
    p = sysimage("sign", "--key", tmp_path / "enc.key", tmp_path / "doc")
    assert p.returncode == 6 and "encrypted" in p.stderr
    # archive-master needs a key
    p = sysimage("keyring", "create", "--type", "archive-master", tmp_path / "am.keyring")
    assert p.returncode == USAGE


def test_keyring_create_version_and_blacklist(devkeys, tmp_path):
    """Issue 10.3: keyrings carry a version; an image-signing keyring names its blacklist."""
    import hashlib
    bl = tmp_path / "blacklist.keyring"
    create_ring(bl, "blacklist", devkeys / "image-master.key", devkeys / "device-signing.pub",
                extra=["--version", "3"])
    assert json.loads(bl.read_text())["version"] == 3
    out = tmp_path / "image-signing.keyring"
    create_ring(out, "image-signing", devkeys / "image-master.key", devkeys / "image-signing.pub",
                extra=["--version", "2", "--blacklist", bl])
    doc = json.loads(out.read_text())
    assert doc["version"] == 2
    assert doc["blacklist"] == hashlib.sha256(bl.read_bytes()).hexdigest()
    # the chain still validates with them
    sysimage("keyring", "check", "--archive-master", devkeys / "archive-master.keyring",
             devkeys / "image-master.keyring", out, check=True)
    # version 0 is the default and is not written
    plain = tmp_path / "plain.keyring"
    create_ring(plain, "image-signing", devkeys / "image-master.key", devkeys / "image-signing.pub")
    assert "version" not in json.loads(plain.read_text())
    # errors: a negative version, --blacklist on another type, a file that is no blacklist
    for args in (["--type", "blacklist", "--version", "-1"],
                 ["--type", "blacklist", "--blacklist", str(bl)],
                 ["--type", "image-signing", "--blacklist", str(out)]):
        p = sysimage("keyring", "create", *args, "--sign-with", devkeys / "image-master.key",
                     tmp_path / "x.keyring")
        assert p.returncode != 0, args
    p = sysimage("keyring", "create", "--type", "image-signing", "--blacklist", out,
                 "--sign-with", devkeys / "image-master.key", tmp_path / "x.keyring")
    assert p.returncode == 8 and "not a blacklist" in p.stderr


# ------------------------------------------------------------------ sign / verify

def test_sign_verify(devkeys, data):
    sysimage("sign", "--key", devkeys / "image-signing.key", data, check=True)
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring", data)
    assert p.returncode == 0, p.stderr
    kid = key_id_of_pub(devkeys / "image-signing.pub")
    assert p.stdout == f"verified {data}: key {kid} (image-signing)\n"
    # with several keyrings, the right one is named
    p = sysimage("verify", "--keyring", devkeys / "device-signing.keyring",
                 "--keyring", devkeys / "image-signing.keyring",
                 "--blacklist", devkeys / "blacklist.keyring", data, check=True)
    assert "(image-signing)" in p.stdout
    # wrong keyring
    p = sysimage("verify", "--keyring", devkeys / "device-signing.keyring", data)
    assert p.returncode == BAD_SIGNATURE and str(data) in p.stderr and not p.stdout
    # --blacklist must be a blacklist
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring",
                 "--blacklist", devkeys / "image-master.keyring", data)
    assert p.returncode == KEYRING_TYPE
    # tampered data
    with open(data, "r+b") as f:
        f.seek(500)
        b = f.read(1)
        f.seek(500)
        f.write(bytes([b[0] ^ 1]))
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring", data)
    assert p.returncode == BAD_SIGNATURE and "does not verify" in p.stderr


def test_verify_bad_signature_files(devkeys, data):
    sig = str(data) + ".sig"
    ring = devkeys / "image-signing.keyring"
    p = sysimage("verify", "--keyring", ring, data)
    assert p.returncode == MISSING_FILE and ".sig" in p.stderr
    sysimage("sign", "--key", devkeys / "image-signing.key", data, check=True)
    good = open(sig).read()
    # truncated
    open(sig, "w").write(good[: len(good) // 2])
    p = sysimage("verify", "--keyring", ring, data)
    assert p.returncode == 4 and "line" in p.stderr
    # garbage base64
    open(sig, "w").write(re.sub(r"(?m)^signature .*", "signature ***", good))
    p = sysimage("verify", "--keyring", ring, data)
    assert p.returncode == 4 and "line 4" in p.stderr
    # valid base64 of garbage bytes
    open(sig, "w").write(re.sub(r"(?m)^signature .*", "signature " +
                                base64.b64encode(os.urandom(70)).decode(), good))
    assert sysimage("verify", "--keyring", ring, data).returncode == BAD_SIGNATURE
    # algorithm that does not fit the key
    open(sig, "w").write(good.replace("ecdsa-p256-sha256", "rsa-pss-sha256"))
    assert sysimage("verify", "--keyring", ring, data).returncode == BAD_SIGNATURE
    # oversized
    open(sig, "w").write(good + "\n" * 70000)
    p = sysimage("verify", "--keyring", ring, data)
    assert p.returncode == 5


def test_append_rotation_and_blacklist(devkeys, tmp_path, data):
    # a second image-signing key joins during rotation
    sysimage("keygen", tmp_path / "new", check=True)
    sysimage("sign", "--key", devkeys / "image-signing.key", data, check=True)
    sysimage("sign", "--append", "--key", tmp_path / "new.key", data, check=True)
    sysimage("sign", "--append", "--key", devkeys / "image-signing.key", data, check=True)
    stanzas = parse_sig(str(data) + ".sig")
    ids = [s["key-id"] for s in stanzas]
    old_id = key_id_of_pub(devkeys / "image-signing.pub")
    new_id = key_id_of_pub(tmp_path / "new.pub")
    assert sorted(ids) == sorted([old_id, new_id])
    new_ring = tmp_path / "image-signing.keyring"
    create_ring(new_ring, "image-signing", devkeys / "image-master.key", tmp_path / "new.pub")
    p = sysimage("verify", "--keyring", new_ring, data, check=True)
    assert new_id in p.stdout
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring", data, check=True)
    assert old_id in p.stdout
    # blacklist the old key: only the new one is accepted
    bl = tmp_path / "blacklist.keyring"
    create_ring(bl, "blacklist", devkeys / "image-master.key", devkeys / "image-signing.pub")
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring", "--blacklist", bl, data)
    assert p.returncode == BLACKLISTED and old_id in p.stderr
    p = sysimage("verify", "--keyring", devkeys / "image-signing.keyring", "--keyring", new_ring,
                 "--blacklist", bl, data, check=True)
    assert new_id in p.stdout
    # without --append the old stanzas go away
    sysimage("sign", "--key", tmp_path / "new.key", data, check=True)
    assert [s["key-id"] for s in parse_sig(str(data) + ".sig")] == [new_id]


# ------------------------------------------------------------------ OpenSSL interop

def make_ring_for(devkeys, tmp_path, pub, name="image-signing"):
    return create_ring(tmp_path / f"{name}.keyring", name, devkeys / "image-master.key", pub)


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_openssl_signs_sysimage_verifies(devkeys, tmp_path, data, kind):
    key, pub = tmp_path / "o.pem", tmp_path / "o.pub"
    if kind == "ecdsa":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        alg, sigopts = "ecdsa-p256-sha256", []
    else:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
        alg = "rsa-pss-sha256"
        sigopts = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
    openssl("pkey", "-in", key, "-pubout", "-out", pub)
    kid = key_id_of_pub(pub)
    ring = make_ring_for(devkeys, tmp_path, pub)
    raw = tmp_path / "raw.sig"
    openssl("dgst", "-sha256", "-sign", key, *sigopts, "-out", raw, data)
    sig = str(data) + ".sig"
    open(sig, "w").write(stanza(kid, alg, raw.read_bytes()))
    p = sysimage("verify", "--keyring", ring, data)
    assert p.returncode == 0, p.stderr
    assert kid in p.stdout
    for i in range(6):
        f = tmp_path / f"d{i}"
        f.write_bytes(os.urandom(64))
        openssl("dgst", "-sha256", "-sign", key, *sigopts, "-out", raw, f)
        open(str(f) + ".sig", "w").write(stanza(kid, alg, raw.read_bytes()))
        sysimage("verify", "--keyring", ring, f, check=True)
    if kind == "rsa":
        # any salt length is accepted when verifying
        openssl("dgst", "-sha256", "-sign", key, "-sigopt", "rsa_padding_mode:pss",
                "-sigopt", "rsa_pss_saltlen:20", "-out", raw, data)
        open(sig, "w").write(stanza(kid, alg, raw.read_bytes()))
        sysimage("verify", "--keyring", ring, data, check=True)
        # PKCS#1 v1.5 is not PSS
        openssl("dgst", "-sha256", "-sign", key, "-out", raw, data)
        open(sig, "w").write(stanza(kid, alg, raw.read_bytes()))
        assert sysimage("verify", "--keyring", ring, data).returncode == BAD_SIGNATURE
    # the OpenSSL (PKCS#8) private key also signs through sysimage
    sysimage("sign", "--key", key, data, check=True)
    assert parse_sig(sig)[0]["key-id"] == kid
    sysimage("verify", "--keyring", ring, data, check=True)


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_sysimage_signs_openssl_verifies(tmp_path, data, kind):
    args = ["--rsa", "2048"] if kind == "rsa" else []
    sysimage("keygen", *args, tmp_path / "k", check=True)
    sysimage("sign", "--key", tmp_path / "k.key", data, check=True)
    st = parse_sig(str(data) + ".sig")[0]
    assert st["key-id"] == key_id_of_pub(tmp_path / "k.pub")
    raw = tmp_path / "raw.sig"
    raw.write_bytes(base64.b64decode(st["signature"]))
    sigopts = []
    if kind == "rsa":
        assert st["algorithm"] == "rsa-pss-sha256"
        sigopts = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
    else:
        assert st["algorithm"] == "ecdsa-p256-sha256"
    p = openssl("dgst", "-sha256", "-verify", tmp_path / "k.pub", *sigopts, "-signature", raw,
                data, check=False)
    assert p.returncode == 0 and "Verified OK" in p.stdout, p.stdout + p.stderr
    # several signatures: DER integers with and without a leading zero byte
    for i in range(6):
        f = tmp_path / f"d{i}"
        f.write_bytes(os.urandom(64))
        sysimage("sign", "--key", tmp_path / "k.key", f, check=True)
        raw.write_bytes(base64.b64decode(parse_sig(str(f) + ".sig")[0]["signature"]))
        p = openssl("dgst", "-sha256", "-verify", tmp_path / "k.pub", *sigopts, "-signature",
                    raw, f, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
    # and OpenSSL rejects it for other data
    (tmp_path / "other").write_bytes(b"other")
    p = openssl("dgst", "-sha256", "-verify", tmp_path / "k.pub", *sigopts, "-signature", raw,
                tmp_path / "other", check=False)
    assert p.returncode == 1 and "Verification failure" in p.stdout, p.stdout + p.stderr


# ------------------------------------------------------------------ keyring check

def copy_keys(devkeys, tmp_path):
    d = tmp_path / "keys"
    shutil.copytree(devkeys, d)
    return d


def test_keyring_check_any_order(devkeys):
    rings = [devkeys / (r + ".keyring") for r in reversed(RINGS)]
    p = check_cmd(devkeys, *rings)
    assert p.returncode == 0, p.stderr
    p = check_cmd(devkeys, devkeys / "device-signing.keyring", devkeys / "image-signing.keyring",
                  devkeys / "image-master.keyring",
                  extra=["--blacklist", devkeys / "blacklist.keyring",
                         "--device", "qemu-x86_64", "--now", str(int(time.time()))])
    assert p.returncode == 0, p.stderr


def test_keyring_check_expired(devkeys):
    later = int(time.time()) + 40 * 86400  # device-signing lasts 31 days
    p = check_cmd(devkeys, *[devkeys / (r + ".keyring") for r in RINGS],
                  extra=["--now", str(later)])
    assert p.returncode == EXPIRED
    assert "device-signing.keyring" in p.stderr and "expired" in p.stderr
    much_later = int(time.time()) + 3 * 365 * 86400
    p = check_cmd(devkeys, devkeys / "image-master.keyring", devkeys / "image-signing.keyring",
                  extra=["--now", str(much_later)])
    assert p.returncode == EXPIRED and "image-signing.keyring" in p.stderr


def test_keyring_check_model(devkeys):
    p = check_cmd(devkeys, *[devkeys / (r + ".keyring") for r in RINGS],
                  extra=["--device", "another-board"])
    assert p.returncode == MODEL
    assert "device-signing.keyring" in p.stderr and "another-board" in p.stderr


def test_keyring_check_wrong_type(devkeys, tmp_path):
    # a validly signed blacklist served under the name image-signing.keyring
    d = tmp_path / "w"
    d.mkdir()
    fake = d / "image-signing.keyring"
    create_ring(fake, "blacklist", devkeys / "image-master.key", devkeys / "image-signing.pub")
    p = check_cmd(devkeys, devkeys / "image-master.keyring", fake)
    assert p.returncode == KEYRING_TYPE and str(fake) in p.stderr
    # the archive-master keyring is never a chain member
    p = check_cmd(devkeys, devkeys / "archive-master.keyring")
    assert p.returncode == KEYRING_TYPE
    # --blacklist must be one
    p = check_cmd(devkeys, devkeys / "image-master.keyring",
                  extra=["--blacklist", devkeys / "image-signing.keyring"])
    assert p.returncode == KEYRING_TYPE and "image-signing.keyring" in p.stderr
    # --archive-master must be one
    p = sysimage("keyring", "check", "--archive-master", devkeys / "image-master.keyring",
                 devkeys / "image-signing.keyring")
    assert p.returncode == KEYRING_TYPE and "image-master.keyring" in p.stderr


def test_keyring_check_wrong_signer_and_missing_parent(devkeys, tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    # device-signing signed by image-master instead of image-signing
    ds = d / "device-signing.keyring"
    create_ring(ds, "device-signing", devkeys / "image-master.key", devkeys / "device-signing.pub")
    p = check_cmd(devkeys, devkeys / "image-master.keyring", devkeys / "image-signing.keyring", ds)
    assert p.returncode == BAD_SIGNATURE and str(ds) in p.stderr
    # no image-signing keyring given: the parent is missing
    p = check_cmd(devkeys, devkeys / "image-master.keyring", devkeys / "device-signing.keyring")
    assert p.returncode == MISSING_FILE and "device-signing.keyring" in p.stderr
    # two keyrings of one type
    p = check_cmd(devkeys, devkeys / "image-master.keyring", devkeys / "image-master.keyring")
    assert p.returncode == EXISTS


def test_keyring_check_blacklisted_signer(devkeys, tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    bl = d / "blacklist.keyring"
    # the image-signing key is compromised: device-signing (signed by it) fails
    create_ring(bl, "blacklist", devkeys / "image-master.key", devkeys / "image-signing.pub")
    p = check_cmd(devkeys, devkeys / "device-signing.keyring", devkeys / "image-signing.keyring",
                  devkeys / "image-master.keyring", extra=["--blacklist", bl])
    assert p.returncode == BLACKLISTED
    assert "device-signing.keyring" in p.stderr
    # without that keyring the rest of the chain is fine
    p = check_cmd(devkeys, devkeys / "image-signing.keyring", devkeys / "image-master.keyring",
                  extra=["--blacklist", bl])
    assert p.returncode == 0, p.stderr


def test_keyring_check_blacklist_applies_to_image_master(devkeys, tmp_path):
    """DESIGN §3: a keyring any of whose signing keys is blacklisted is refused,
    image-master (signed by archive-master) included, though the blacklist is
    itself signed by image-master."""
    d = tmp_path / "b"
    d.mkdir()
    bl = d / "blacklist.keyring"
    create_ring(bl, "blacklist", devkeys / "image-master.key", devkeys / "archive-master.pub")
    p = check_cmd(devkeys, devkeys / "image-master.keyring", devkeys / "image-signing.keyring",
                  extra=["--blacklist", bl])
    assert p.returncode == BLACKLISTED, p.stderr
    assert "image-master.keyring" in p.stderr and "archive-master key" in p.stderr


def test_keyring_check_tampered(devkeys, tmp_path):
    d = copy_keys(devkeys, tmp_path)
    ring = d / "image-signing.keyring"
    text = ring.read_text()
    ring.write_text(text.replace('"format": 1', '"format": 1 '))  # whitespace only
    rings = [d / (r + ".keyring") for r in RINGS]
    p = check_cmd(d, *rings)
    assert p.returncode == BAD_SIGNATURE and "image-signing.keyring" in p.stderr
    # a key swapped in: same signature file, different content
    ring.write_text(text.replace((d / "image-signing.pub").read_text().replace("\n", "\\n"),
                                 (d / "device-signing.pub").read_text().replace("\n", "\\n")))
    assert ring.read_text() != text
    p = check_cmd(d, *rings)
    assert p.returncode == BAD_SIGNATURE
    # the signature file removed
    ring.write_text(text)
    assert check_cmd(d, *rings).returncode == 0
    os.unlink(str(ring) + ".sig")
    p = check_cmd(d, *rings)
    assert p.returncode == MISSING_FILE and "image-signing.keyring.sig" in p.stderr
    # corrupt JSON names the file
    ring.write_text("{ nope")
    p = check_cmd(d, *rings)
    assert p.returncode == 4 and "image-signing.keyring" in p.stderr
