"""Local sources as hostile input: what a layout directory or an archive can make a pull read or write.

* a blob costs at most its descriptor's size + 1 byte, in what is read and in what reaches the cache.
"""

import contextlib
import os
import signal
import stat
import tarfile

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.sources import (
    DirReader, DockerArchiveSource, LayoutSource, TarReader)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore
from lxcri_testbed.oci_build import (
    Layer, classic_docker_archive, gnu_tar, image_blobs, layer_path, sparse_layer, write_image)

SECRET = b"outside the layout: must never reach the cache\n"


@contextlib.contextmanager
def deadline(seconds):
    """Turn a hang (a blocking open of a FIFO) into a test failure."""
    def expired(signum, frame):
        raise AssertionError("still blocked after %d s" % seconds)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pull(image, cache, **params):
    return ImageManager(dict(params, image=image, cache_dir=str(cache))).run()


def cache_files(cache):
    """Every file under the cache, with its size (blobs, tmp, corrupt)."""
    found = {}
    for top, dummy, files in os.walk(str(cache)):
        for name in files:
            path = os.path.join(top, name)
            found[os.path.relpath(path, str(cache))] = os.path.getsize(path)
    return found


def cache_holds(cache, data):
    for rel in cache_files(cache):
        with open(os.path.join(str(cache), rel), "rb") as handle:
            if data in handle.read():
                return True
    return False


@pytest.fixture
def layout(tmp_path):
    """An image with two layers in a layout directory: (layout path, reference, manifest)."""
    path = str(tmp_path / "layout")
    ref = write_image(path, "t", [Layer().dir("bin").file("bin/a", b"a" * 5000),
                                  Layer().file("b", b"b" * 3000)], {"Cmd": ["/bin/a"]})
    return path, ref, image_blobs(path, "t")[0]


# --- at most the descriptor's size + 1 -------------------------------------------------------------

def test_store_writer_refuses_a_byte_past_the_descriptor_before_it_reaches_the_disk(tmp_path):
    store = BlobStore(str(tmp_path))
    data = b"x" * 1000
    descriptor = {"digest": "sha256:" + "0" * 64, "size": len(data)}
    with pytest.raises(VerificationError, match="more than the 1000 bytes the descriptor says"):
        with store.writer(descriptor, keep_corrupt=True) as out:
            out.write(data)
            out.write(b"y" * 5000)
    kept = os.listdir(str(tmp_path / "corrupt"))
    assert [os.path.getsize(str(tmp_path / "corrupt" / name)) for name in kept] == [1000]


class CountingReader:
    """A file object counting what is read from it."""

    def __init__(self, handle):
        self.handle = handle
        self.read_bytes = 0

    def read(self, size=-1):
        data = self.handle.read(size)
        self.read_bytes += len(data)
        return data

    def close(self):
        self.handle.close()


@pytest.mark.parametrize("kind", ["dir", "archive"])
def test_a_local_blob_longer_than_its_descriptor_costs_at_most_size_plus_one(layout, tmp_path, kind):
    path, dummy, manifest = layout
    layer = manifest["layers"][-1]
    with open(layer_path(path, "t"), "ab") as handle:
        handle.write(os.urandom(4 << 20))  # 4 MiB more than the descriptor says
    reader = DirReader(path) if kind == "dir" else TarReader(gnu_tar(path, str(tmp_path / "image.tar")))
    counted = []

    def counting_open(name, _open=reader.open):
        counted.append(CountingReader(_open(name)))
        return counted[-1]

    reader.open = counting_open
    store = BlobStore(str(tmp_path / "cache"))
    with pytest.raises(VerificationError, match="more than the %d bytes the descriptor says" % layer["size"]):
        with store.writer(layer, keep_corrupt=True) as out:
            LayoutSource(reader, "test").copy_blob(layer, out)
    assert counted[0].read_bytes <= layer["size"] + 1
    kept = cache_files(tmp_path / "cache")
    assert [size for name, size in kept.items() if name.startswith("corrupt")] == [layer["size"]]


@pytest.mark.parametrize("kind", ["dir", "archive"])
def test_a_config_longer_than_its_descriptor_is_read_to_size_plus_one(layout, tmp_path, kind):
    path, dummy, manifest = layout
    config = manifest["config"]
    blob = image_blobs(path, "t")[1](config["digest"])
    with open(blob, "ab") as handle:
        handle.write(b" " * (1 << 20))
    reader = DirReader(path) if kind == "dir" else TarReader(gnu_tar(path, str(tmp_path / "image.tar")))
    with pytest.raises(VerificationError, match="more than the %d bytes the descriptor says" % config["size"]):
        LayoutSource(reader, "test").blob_bytes(config, 8 << 20)
