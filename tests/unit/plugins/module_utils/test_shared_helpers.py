"""The helpers the OCI engine and the Proxmox VE client share: hashing, the temp-file sweep, the requests guard."""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

from ansible_collections.lxcri.proxmox.plugins.module_utils import requests_import
from ansible_collections.lxcri.proxmox.plugins.module_utils.hashing import HashingWriter, sha256_file
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import registry, template
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import compressor
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import (
    _BLOB_TMP, BlobStore, BlobWriter, pid_alive, sweep_tmp)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import client


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_sha256_file_reads_past_one_chunk(tmp_path):
    data = os.urandom((1 << 20) + 12345)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()
    assert client.sha256_file is sha256_file  # the upload checksum uses the same helper


def test_hashing_writer_passes_on_hashes_and_counts(tmp_path):
    with open(tmp_path / "out", "wb") as raw:
        out = HashingWriter(raw)
        assert out.write(b"abc") == 3
        out.write(b"def")
        out.flush()  # a no-op: the target flushes when its owner says so
    assert (tmp_path / "out").read_bytes() == b"abcdef"
    assert (out.size, out.complete) == (6, True)
    assert out.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    assert out.digest() == "sha256:" + hashlib.sha256(b"abcdef").hexdigest()
    out.restart()
    assert (out.size, out.hexdigest()) == (0, hashlib.sha256(b"").hexdigest())


@pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd command")
def test_a_writer_that_takes_the_descriptor_makes_the_hash_incomplete(tmp_path):
    """The zstd command writes into the file itself: the hash cannot cover it, and says so."""
    path = str(tmp_path / "t.zst")
    with open(path, "wb") as raw:
        out = HashingWriter(raw)
        stream = compressor(out, "zstd")
        stream.write(b"x" * 100000)
        stream.close()
        raw.flush()
    assert out.complete is False
    assert subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout == b"x" * 100000


def test_gzip_output_is_hashed_as_it_is_written(tmp_path):
    path = str(tmp_path / "t.gz")
    with open(path, "wb") as raw:
        out = HashingWriter(raw)
        stream = compressor(out, "gzip")
        stream.write(b"y" * 100000)
        stream.close()
    assert out.complete is True
    assert out.hexdigest() == sha256_file(path) and out.size == os.path.getsize(path)
    assert gzip.decompress(open(path, "rb").read()) == b"y" * 100000


def test_blob_writer_feeds_its_observer_and_starts_over(tmp_path):
    seen = []

    class Observer:
        def update(self, data):
            seen.append(data)

        def reset(self):
            seen.append("reset")

    with open(tmp_path / "blob", "w+b") as handle:
        writer = BlobWriter(handle, str(tmp_path / "blob"), "sha256", Observer())
        writer.write(b"partial")
        writer.reset()
        writer.write(b"whole")
        handle.flush()
    assert (tmp_path / "blob").read_bytes() == b"whole"
    assert writer.digest() == "sha256:" + hashlib.sha256(b"whole").hexdigest() and writer.size == 5
    assert seen == [b"partial", "reset", b"whole"]


def test_pid_alive():
    assert pid_alive(os.getpid()) and pid_alive(1)  # pid 1: another user's process counts too
    assert not pid_alive(dead_pid())


def test_template_sweep_touches_only_temp_files_of_dead_runs(tmp_path):
    dead = dead_pid()
    names = {
        ".lxcri-tmp-%d-abc-img.tar.zst" % dead: False,       # a killed build
        ".lxcri-tmp-%d-layer-abc" % dead: False,             # its squashed layer
        ".lxcri-tmp-%d-abc-img.tar.zst" % os.getpid(): True,  # a build still running
        "img.tar.zst": True, "img.tar.zst.json": True, ".lxcri-img.lock": True,  # published files
        ".lxcri-tmp-notapid": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 10 * 24 * 3600
    os.utime(tmp_path / (".lxcri-tmp-%d-abc-img.tar.zst" % os.getpid()), (old, old))  # age alone is no reason
    sweep_tmp(str(tmp_path), template._TMP_NAME)  # pylint: disable=protected-access
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, kept in names.items() if kept)


def test_blob_sweep_also_drops_old_and_pid_less_files(tmp_path):
    store = BlobStore(str(tmp_path))
    base = tmp_path / "tmp"
    live_young = base / ("abcd-%d-young" % os.getpid())
    live_old = base / ("abcd-%d-old" % os.getpid())
    no_pid = base / "leftover"
    bad_pid = base / "abcd-12x-z"
    for path in (live_young, live_old, no_pid, bad_pid):
        path.write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(live_old, (old, old))
    store.remove_stale_tmp()
    assert sorted(os.listdir(base)) == [live_young.name]
    assert _BLOB_TMP.match("0123456789abcdef-%d-x" % os.getpid()).group("pid") == str(os.getpid())


def test_one_requests_guard():
    assert requests_import.HAS_REQUESTS and requests_import.REQUESTS_IMPORT_ERROR is None
    for module in (client, registry):
        assert module.requests is requests and module.require_requests is requests_import.require_requests
        assert module.SSLError is requests.exceptions.SSLError
        assert module.Timeout is requests.exceptions.Timeout
        assert module.RequestsConnectionError is requests.exceptions.ConnectionError
    assert registry.ChunkedEncodingError is requests.exceptions.ChunkedEncodingError
    requests_import.require_requests(AssertionError)  # requests imports here: no error


def test_without_requests_the_clients_still_import_and_say_so():
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import registry\n"
        "from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import client\n"
        "from ansible_collections.lxcri.proxmox.plugins.module_utils import requests_import\n"
        "assert requests_import.HAS_REQUESTS is False\n"
        "assert isinstance(requests_import.REQUESTS_IMPORT_ERROR, ImportError)\n"
        "said = []\n"
        "for make, error in ((registry.RegistryClient, registry.RegistryError),\n"
        "                    (lambda: client.PveClient('pve.example', password='x'), client.PveConfigError)):\n"
        "    try:\n"
        "        make()\n"
        "    except error as exc:\n"
        "        assert exc.kind == 'missing_library', exc.kind\n"
        "        said.append(str(exc))\n"
        "assert len(said) == 2 and said[0] == said[1], said\n"
        "assert \"'requests' is required\" in said[0] and 'python3-requests' in said[0], said[0]\n"
        "try:\n"
        "    raise ValueError('x')\n"
        "except (client.SSLError, client.Timeout, registry.ChunkedEncodingError):\n"
        "    raise SystemExit('caught by a stand-in')\n"
        "except ValueError:\n"
        "    print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
