"""Blob store, auth files, registry header parsing, layer decompression."""

import base64
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import compression
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.authfile import lookup
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import digest_of, parse_digest, verify_bytes
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.registry import parse_challenge, retry_after_seconds
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore


def desc(data):
    return {"digest": digest_of(data), "size": len(data)}


# --- digests -------------------------------------------------------------------

def test_digest_rules():
    assert parse_digest("sha256:" + "0" * 64) == ("sha256", "0" * 64)
    assert parse_digest("sha512:" + "f" * 128)[0] == "sha512"
    for bad in ("sha256:" + "0" * 63, "sha256:" + "G" * 64, "md5:" + "0" * 32, "blake3:" + "0" * 64, "", None):
        with pytest.raises(VerificationError):
            parse_digest(bad)
    data = b"hello"
    verify_bytes(data, desc(data), "x")
    with pytest.raises(VerificationError, match="size 5 does not match"):
        verify_bytes(data, dict(desc(data), size=6), "x")
    with pytest.raises(VerificationError, match="does not match the descriptor"):
        verify_bytes(b"hellp", desc(data), "x")


# --- store -----------------------------------------------------------------------

def test_writer_commits_only_verified_content(tmp_path):
    store = BlobStore(str(tmp_path))
    data = os.urandom(100000)
    with store.writer(desc(data)) as out:
        out.write(data[:50000])
        out.reset()  # a restart from zero
        out.write(data)
    assert store.has(digest_of(data), len(data))
    with open(store.path(digest_of(data)), "rb") as handle:
        assert handle.read() == data
    assert os.listdir(str(tmp_path / "tmp")) == []


@pytest.mark.parametrize("payload,fragment", [
    (b"short", "got 5 bytes"),
    (b"x" * 11, "content hashes to"),
])
def test_writer_rejects_and_keeps_nothing(tmp_path, payload, fragment):
    store = BlobStore(str(tmp_path))
    good = b"y" * 11
    with pytest.raises(VerificationError, match=fragment):
        with store.writer(dict(desc(good), size=11)) as out:
            out.write(payload)
    assert not store.has(digest_of(good))
    assert os.listdir(str(tmp_path / "tmp")) == []
    assert not os.path.exists(str(tmp_path / "corrupt"))


def test_keep_corrupt_moves_the_bad_file_aside(tmp_path):
    store = BlobStore(str(tmp_path))
    good = b"z" * 10
    with pytest.raises(VerificationError):
        with store.writer(desc(good), keep_corrupt=True) as out:
            out.write(b"q" * 10)
    kept = os.listdir(str(tmp_path / "corrupt"))
    assert len(kept) == 1 and kept[0].startswith("sha256-" + digest_of(good).split(":")[1])
    assert not store.has(digest_of(good))


def test_check_callback_can_refuse(tmp_path):
    store = BlobStore(str(tmp_path))
    data = b"layer"

    def refuse(writer):
        raise VerificationError("diff_id mismatch")

    with pytest.raises(VerificationError, match="diff_id mismatch"):
        with store.writer(desc(data), check=refuse) as out:
            out.write(data)
    assert not store.has(digest_of(data))


def test_prune_is_lru_and_keeps_pinned(tmp_path):
    store = BlobStore(str(tmp_path))
    blobs = [os.urandom(1000) for dummy in range(4)]
    now = time.time()
    for i, data in enumerate(blobs):
        store.put_bytes(desc(data), data)
        os.utime(store.path(digest_of(data)), (now - 100 + i, now - 100 + i))
    store.pin("img", {"blobs": [digest_of(blobs[0])]})  # the oldest, but pinned
    evicted = store.prune(max_bytes=2000)
    assert evicted == [digest_of(blobs[1]), digest_of(blobs[2])]
    assert store.has(digest_of(blobs[0])) and store.has(digest_of(blobs[3]))
    assert store.prune() == [digest_of(blobs[3])]
    assert store.total_bytes() == 1000


def test_stale_tmp_files_of_dead_processes_go(tmp_path):
    store = BlobStore(str(tmp_path))
    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = tmp_path / "tmp" / ("abcd-%d-xyz" % proc.pid)
    mine = tmp_path / "tmp" / ("abcd-%d-xyz" % os.getpid())
    dead.write_bytes(b"partial")
    mine.write_bytes(b"partial")
    store.remove_stale_tmp()
    assert not dead.exists() and mine.exists()


def test_pins_round_trip(tmp_path):
    store = BlobStore(str(tmp_path))
    assert store.get_pin("k") is None
    store.pin("k", {"manifest_digest": "sha256:" + "1" * 64, "blobs": []})
    assert store.get_pin("k")["manifest_digest"] == "sha256:" + "1" * 64
    assert [p["key"] for p in store.pins()] == ["k"]
    assert store.unpin("k") is True and store.unpin("k") is False


# --- auth files ------------------------------------------------------------------

def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_auth_file_lookup():
    config = {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
        "registry.example.com": {"auth": b64("u:p:with:colons")},
        "registry.example.com/team/app": {"username": "narrow", "password": "np"},
        "token.example.com": {"identitytoken": "refresh-me"},
    }}
    creds = lookup(config, "docker.io", "library/nginx")
    assert (creds.username, creds.password) == ("hubuser", "hubpass")
    creds = lookup(config, "registry.example.com", "other/img")
    assert (creds.username, creds.password) == ("u", "p:with:colons")
    creds = lookup(config, "registry.example.com", "team/app")
    assert creds.username == "narrow"
    assert lookup(config, "token.example.com").identity_token == "refresh-me"
    assert not lookup(config, "unknown.example.com")
    assert "***" in repr(lookup(config, "docker.io")) and "hubpass" not in repr(lookup(config, "docker.io"))


def test_auth_file_errors():
    with pytest.raises(OciError, match="not base64"):
        lookup({"auths": {"r.io": {"auth": "%%%"}}}, "r.io")
    with pytest.raises(OciError, match="credential helper"):
        lookup({"credHelpers": {"r.io": "ecr-login"}}, "r.io")


# --- registry header parsing --------------------------------------------------------

def test_parse_challenge():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull",error="invalid_token"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                      "scope": "repository:a/b:pull", "error": "invalid_token"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert parse_challenge(None) == (None, {})


def test_retry_after():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412485) == pytest.approx(5.0)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412485) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# --- decompression -------------------------------------------------------------------

def test_gzip_multi_member_and_padding():
    raw = os.urandom(300000)
    data = gzip.compress(raw[:100000]) + gzip.compress(raw[100000:]) + b"\0" * 512
    hasher = compression.DiffIdHasher("gzip")
    for i in range(0, len(data), 7777):
        hasher.update(data[i:i + 7777])
    assert hasher.result() == ("sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))


def test_gzip_truncated_and_corrupt():
    data = gzip.compress(os.urandom(10000))
    hasher = compression.DiffIdHasher("gzip")
    hasher.update(data[:-20])
    with pytest.raises(VerificationError, match="ends in the middle"):
        hasher.result()
    hasher = compression.DiffIdHasher("gzip")
    hasher.update(b"\x1f\x8b\x08\x00" + b"\xff" * 100)  # the error waits for result()
    with pytest.raises(VerificationError, match="corrupt"):
        hasher.result()


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command not installed")
def test_zstd_through_the_cli_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(compression, "HAS_ZSTANDARD", False)
    raw = os.urandom(50000) * 3
    plain = tmp_path / "layer.tar"
    plain.write_bytes(raw)
    subprocess.run(["zstd", "-q", "-f", str(plain), "-o", str(tmp_path / "layer.tar.zst")], check=True)
    got = compression.diff_id_of_file(str(tmp_path / "layer.tar.zst"), "zstd")
    assert got == ("sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))
    (tmp_path / "bad.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 40)
    with pytest.raises(VerificationError, match="zstd layer is corrupt"):
        compression.diff_id_of_file(str(tmp_path / "bad.zst"), "zstd")


def test_uncompressed_layer_diff_id_is_its_digest(tmp_path):
    raw = os.urandom(4096)
    path = tmp_path / "l"
    path.write_bytes(raw)
    assert compression.diff_id_of_file(str(path), None) == (digest_of(raw), 4096)
    stream = io.BytesIO(raw)
    assert stream.read() == raw
