"""Local sources as hostile input: what a layout directory or an archive can make a pull read or write.

* a blob costs at most its descriptor's size + 1 byte, in what is read and in what reaches the cache;
* a sparse archive member counts as what the archive stores for it;
* a FIFO, a device, or a link leading out of the layout is refused from its metadata, before it is
  opened or read, and nothing from outside the layout reaches the cache, ``keep_corrupt`` included.
"""

import contextlib
import io
import os
import signal
import stat
import subprocess
import tarfile
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import LimitError, OciError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.sources import (
    DirReader, DockerArchiveSource, LayoutSource, TarReader)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore
from lxcri_testbed.oci_build import (
    Layer, classic_docker_archive, gnu_tar, gzip_archive_bomb, image_blobs, layer_path, sparse_layer, write_image)

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


# --- sparse archive members ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_a_sparse_blob_member_counts_as_what_the_archive_stores(layout, tmp_path, fmt):
    path, ref, dummy = layout
    blob = sparse_layer(path, "t", 64 << 20)
    archive = gnu_tar(path, str(tmp_path / "image.tar"), sparse=True, fmt=fmt)
    assert os.path.getsize(archive) < (1 << 20)
    reader = TarReader(archive)
    name = "blobs/sha256/" + os.path.basename(blob)
    assert reader.members[name].issparse()
    with pytest.raises(OciError, match=r"is sparse: it stores \d+ bytes but expands to %d" % os.path.getsize(blob)):
        reader.open(name)
    # through a pull: refused, and the cache got nothing near 64 MiB (it took all of it before)
    cache = tmp_path / "cache"
    with pytest.raises(OciError, match="is sparse"):
        pull("oci-archive:%s:t" % archive, cache)
    assert sum(cache_files(cache).values()) < (1 << 20)


def test_a_sparse_layer_of_a_classic_docker_archive_is_not_expanded_to_be_hashed(tmp_path):
    layer = str(tmp_path / "layer.tar")
    info = tarfile.TarInfo("big")
    info.size = 256 << 20
    with open(layer, "wb") as handle:
        handle.write(info.tobuf(tarfile.PAX_FORMAT) + b"data")
        handle.truncate(512 + (256 << 20) + 1024)
    archive = classic_docker_archive(str(tmp_path), str(tmp_path / "save.tar"), [layer],
                                     {"architecture": "amd64", "os": "linux"}, sparse=True)
    assert os.path.getsize(archive) < (1 << 20)
    source = DockerArchiveSource(archive)
    with pytest.raises(OciError, match=r"0/layer.tar is sparse: it stores \d+ bytes but expands to %d"
                       % (512 + (256 << 20) + 1024)):
        source.root()  # it hashed all the holes before, and the pull then copied them into the cache


# --- FIFOs, devices and links leaving the layout ----------------------------------------------------

def test_a_fifo_blob_is_refused_without_opening_it(layout, tmp_path):
    path, ref, dummy = layout
    blob = layer_path(path, "t")
    os.unlink(blob)
    os.mkfifo(blob)
    with deadline(5):
        with pytest.raises(OciError, match="is a FIFO, not a regular file: refused without reading it"):
            pull(ref, tmp_path / "cache", keep_corrupt=True)
    assert not os.path.exists(str(tmp_path / "cache" / "corrupt"))


def test_a_fifo_index_is_refused_without_opening_it(layout, tmp_path):
    path, ref, dummy = layout
    os.unlink(os.path.join(path, "index.json"))
    os.mkfifo(os.path.join(path, "index.json"))
    with deadline(5):
        with pytest.raises(OciError, match="index.json is a FIFO"):
            pull(ref, tmp_path / "cache")


@pytest.mark.parametrize("how", ["symlink", "node"])
def test_a_device_blob_is_refused(layout, tmp_path, how):
    path, ref, dummy = layout
    blob = layer_path(path, "t")
    os.unlink(blob)
    if how == "symlink":
        os.symlink("/dev/zero", blob)
        message = "leading out of the layout"
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(blob, 0o600 | stat.S_IFCHR, os.stat("/dev/zero").st_rdev)
        message = "is a character device, not a regular file"
    cache = tmp_path / "cache"
    with deadline(5):
        with pytest.raises(OciError, match=message):
            pull(ref, cache, keep_corrupt=True)
    assert sum(cache_files(cache).values()) < (1 << 20) and not os.path.exists(str(cache / "corrupt"))


@pytest.mark.parametrize("link", ["absolute", "relative", "directory"])
def test_a_link_leading_out_of_the_layout_is_never_read_not_even_for_keep_corrupt(layout, tmp_path, link):
    path, ref, manifest = layout
    outside = tmp_path / "outside"
    outside.mkdir()
    blob = layer_path(path, "t")
    if link == "directory":  # blobs/sha256 itself points out, to a copy whose layer is the secret
        sha = os.path.join(path, "blobs", "sha256")
        os.rename(sha, str(outside / "sha256"))
        (outside / "sha256" / os.path.basename(blob)).write_bytes(SECRET)
        os.symlink(str(outside / "sha256"), sha)
    else:
        (outside / os.path.basename(blob)).write_bytes(SECRET)
        os.unlink(blob)
        target = str(outside / os.path.basename(blob))
        os.symlink(target if link == "absolute" else os.path.relpath(target, os.path.dirname(blob)), blob)
    cache = tmp_path / "cache"
    with pytest.raises(OciError, match="leading out of the layout"):
        pull(ref, cache, keep_corrupt=True)
    assert not cache_holds(cache, SECRET)
    assert not os.path.exists(str(cache / "corrupt"))


def test_links_inside_the_layout_are_followed(layout, tmp_path):
    path, ref, manifest = layout
    blob = layer_path(path, "t")
    os.rename(blob, os.path.join(path, "elsewhere"))
    os.symlink("../../elsewhere", blob)
    assert pull(ref, tmp_path / "cache")["changed"]


def archive_with(tmp_path, layout_path, replace):
    """An oci-archive of ``layout_path`` in which the members named in ``replace`` are swapped for the
    given TarInfo (type, link name)."""
    archive = str(tmp_path / "hostile.tar")
    with tarfile.open(archive, "w") as tar:
        for top, dirs, files in os.walk(layout_path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(top, name)
                arcname = os.path.relpath(full, layout_path)
                if arcname not in replace:
                    tar.add(full, arcname)
        for arcname, info in sorted(replace.items()):
            info.name = arcname
            tar.addfile(info)
    return archive


def member(kind, linkname=""):
    info = tarfile.TarInfo()
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("replacement,message", [
    (member(tarfile.FIFOTYPE), "is a FIFO, not a regular file"),
    (member(tarfile.CHRTYPE), "is a character device, not a regular file"),
    (member(tarfile.SYMTYPE, "/etc/passwd"), "leading out of the archive"),
    (member(tarfile.SYMTYPE, "../../../etc/passwd"), "leading out of the archive"),
    (member(tarfile.LNKTYPE, "../etc/passwd"), "leading out of the archive"),
    (member(tarfile.SYMTYPE, "missing"), "which the archive does not hold"),
])
def test_archive_blob_members_that_are_not_files_are_refused(layout, tmp_path, replacement, message):
    path, dummy, manifest = layout
    name = "blobs/sha256/" + os.path.basename(layer_path(path, "t"))
    archive = archive_with(tmp_path, path, {name: replacement})
    cache = tmp_path / "cache"
    with pytest.raises(OciError, match=message):
        pull("oci-archive:%s:t" % archive, cache, keep_corrupt=True)
    assert not os.path.exists(str(cache / "corrupt"))


def test_archive_links_inside_the_archive_are_followed_a_bounded_number_of_times(layout, tmp_path):
    path, dummy, manifest = layout
    name = "blobs/sha256/" + os.path.basename(layer_path(path, "t"))
    os.rename(layer_path(path, "t"), os.path.join(path, "real"))
    archive = archive_with(tmp_path, path, {name: member(tarfile.SYMTYPE, "../../real")})
    assert pull("oci-archive:%s:t" % archive, tmp_path / "cache")["changed"]
    chain = dict(("l%d" % i, member(tarfile.SYMTYPE, "l%d" % (i + 1))) for i in range(40))
    chain[name] = member(tarfile.SYMTYPE, "../../l0")
    archive = archive_with(tmp_path, path, chain)
    with pytest.raises(OciError, match="more than 16 links"):
        pull("oci-archive:%s:t" % archive, tmp_path / "cache2")


@pytest.mark.parametrize("manifest_json", [b"not json", b"\xff", b"[1]", b'[{"Config": 5}]',
                                           b'[{"Config": "c.json", "Layers": [null]}]'])
def test_a_malformed_docker_manifest_json_is_the_engines_error(tmp_path, manifest_json):
    archive = str(tmp_path / "save.tar")
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest_json)
        tar.addfile(info, io.BytesIO(manifest_json))
    with pytest.raises(VerificationError, match="manifest.json"):
        DockerArchiveSource(archive).root()


# --- compressed archives (docker save | gzip) --------------------------------------------------------

@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz"])
def test_a_compressed_archive_is_read(layout, tmp_path, codec):
    path, dummy, dummy2 = layout
    archive = gnu_tar(path, str(tmp_path / "image.tar"))
    subprocess.run([codec, "-k", archive], check=True)
    suffix = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[codec]
    assert pull("oci-archive:%s%s:t" % (archive, suffix), tmp_path / "cache")["changed"]


def test_a_compressed_archive_bomb_is_refused_before_it_is_decompressed(layout, tmp_path):
    path, dummy, dummy2 = layout
    archive = gzip_archive_bomb(path, str(tmp_path / "image.tar.gz"))
    assert os.path.getsize(archive) < (2 << 20)
    start = time.monotonic()
    with pytest.raises(LimitError, match=r"archive %s \(gzip\) expands beyond 100 times its compressed size of %d "
                                         r"bytes plus 512 MiB \(max_expansion_ratio\)" % (archive, os.path.getsize(archive))):
        pull("oci-archive:%s:t" % archive, tmp_path / "cache")
    assert time.monotonic() - start < 2  # tarfile decompressed all of it to list the members
    assert pull("oci-archive:%s:t" % archive, tmp_path / "cache", max_expansion_ratio=2000)["changed"]
