"""Hand-made OCI images: layers written member by member with tarfile.

umoci derives layers from directory diffs, so it cannot produce opaque
markers next to same-layer entries, hardlinks into lower layers, xattrs or
hostile names on demand.  This builder writes exactly the members a test
asks for, in the order given, into a real OCI image layout that skopeo and
umoci read too.  The only binary used is the host's busybox-static.
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

from .images import _put_blob

BUSYBOX = "/bin/busybox"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {None: "application/vnd.oci.image.layer.v1.tar",
               "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "docker-gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip"}


class Layer:
    """Members of one layer tar, in order."""

    def __init__(self):
        self.members = []  # (TarInfo, bytes or None)

    def _info(self, name, kind, mode, uid, gid, mtime=1700000000):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = mtime
        return info

    def dir(self, name, mode=0o755, uid=0, gid=0, pax=None):
        info = self._info(name, tarfile.DIRTYPE, mode, uid, gid)
        info.pax_headers = dict(pax or {})
        self.members.append((info, None))
        return self

    def file(self, name, data=b"", mode=0o644, uid=0, gid=0, pax=None):
        if isinstance(data, str):
            data = data.encode()
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        info.pax_headers = dict(pax or {})
        self.members.append((info, data))
        return self

    def symlink(self, name, target, uid=0, gid=0):
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid)
        info.linkname = target
        self.members.append((info, None))
        return self

    def hardlink(self, name, target):
        info = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0)
        info.linkname = target
        self.members.append((info, None))
        return self

    def global_header(self, records):
        """A pax global header ('g') here, with ``records``."""
        self.members.append((pax_global_header(records), None))
        return self

    def raw(self, blocks):
        """Tar blocks written as they are (a hand-made header and its data)."""
        self.members.append((bytes(blocks), None))
        return self

    def whiteout(self, path):
        parent, dummy, leaf = path.rpartition("/")
        return self.file((parent + "/" if parent else "") + ".wh." + leaf)

    def opaque(self, directory):
        return self.file(directory.rstrip("/") + "/.wh..wh..opq")

    def busybox(self, applets=("sh", "sleep", "cat", "env", "id", "ls", "echo", "true")):
        with open(BUSYBOX, "rb") as handle:
            self.file("bin/busybox", handle.read(), mode=0o755)
        for applet in applets:
            self.symlink("bin/" + applet, "busybox")
        return self

    def tar_bytes(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self.members:
                if isinstance(info, bytes):
                    tar.fileobj.write(info)
                    tar.offset += len(info)
                    continue
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def pax_global_header(records):
    """The blocks of a pax global header ('g') carrying ``records`` (tarfile writes one only at an archive's start)."""
    return tarfile.TarInfo._create_pax_generic_header(dict(records), tarfile.XGLTYPE, "utf-8")


def old_gnu_member(name, data=b"", atime=1700000000, ctime=1700000001):
    """Blocks of one regular file in the old GNU format (magic "ustar  \\0"), whose atime and ctime fill the
    header area that ustar uses as the name prefix."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    assert len(block) == tarfile.BLOCKSIZE and block[257:265] == b"ustar  \0"
    block[345:357] = b"%011o\0" % atime
    block[357:369] = b"%011o\0" % ctime
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


class ZeroBomb:
    """A layer of one file of ``size`` zero bytes, compressed without ever holding it whole.

    gzip: one precompressed MiB of zeros repeated as gzip members (about 1030:1,
    deflate's limit); zstd: one frame of 16 MiB repeated (tens of thousands to
    one).  Layer-like for ``write_image``: ``blob(compression)`` gives
    ``(blob, diff_id)``.
    """

    STEP = {"gzip": 1 << 20, "docker-gzip": 1 << 20, "zstd": 16 << 20}

    def __init__(self, size, name="zeros"):
        self.size = size
        self.name = name

    def blob(self, compression):
        step = self.STEP[compression]
        if self.size % step:
            raise ValueError("a bomb's size is a multiple of %d" % step)
        info = tarfile.TarInfo(self.name)
        info.size = self.size
        info.mtime = 1700000000
        head = info.tobuf(tarfile.PAX_FORMAT)
        tail = b"\0" * (2 * tarfile.BLOCKSIZE)  # the size is a multiple of the block size: no padding
        hasher = hashlib.sha256(head)
        zeros = bytes(step)
        for dummy in range(self.size // step):
            hasher.update(zeros)
        hasher.update(tail)
        chunk = _compress(zeros, compression) if compression != "zstd" else subprocess.run(
            ["zstd", "-q", "-c", "-19"], input=zeros, stdout=subprocess.PIPE, check=True).stdout
        blob = _compress(head, compression) + chunk * (self.size // step) + _compress(tail, compression)
        return blob, "sha256:" + hasher.hexdigest()


def _compress(data, compression):
    if compression in ("gzip", "docker-gzip"):
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


def write_image(layout, tag, layers, config=None, compression="gzip", architecture="amd64"):
    """Write ``layers`` (bottom first) as image ``tag`` into the OCI layout ``layout``.

    ``config`` is the runtime config (Entrypoint, Cmd, Env, WorkingDir,
    User, ...).  Returns the reference ``oci-layout:<layout>:<tag>``.
    """
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)
    descriptors, diff_ids = [], []
    for layer in layers:
        if hasattr(layer, "put_blob"):  # a layer too big to hold in memory writes its blob as it makes it
            digest, size, diff_id = layer.put_blob(layout, compression)
            diff_ids.append(diff_id)
            descriptors.append({"mediaType": LAYER_TYPES[compression], "digest": digest, "size": size})
            continue
        if hasattr(layer, "blob"):  # a layer that compresses its own blob (ZeroBomb)
            blob, diff_id = layer.blob(compression)
            diff_ids.append(diff_id)
        else:
            raw = layer.tar_bytes()
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            blob = _compress(raw, compression)
        descriptors.append({"mediaType": LAYER_TYPES[compression], "digest": _put_blob(layout, blob), "size": len(blob)})
    image_config = {"architecture": architecture, "os": "linux", "created": "2026-01-02T03:04:05Z",
                    "config": dict(config or {}), "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_bytes = json.dumps(image_config).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": _put_blob(layout, config_bytes), "size": len(config_bytes)},
                "layers": descriptors}
    manifest_bytes = json.dumps(manifest).encode()
    index_path = os.path.join(layout, "index.json")
    if os.path.exists(index_path):
        with open(index_path) as handle:
            index = json.load(handle)
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": _put_blob(layout, manifest_bytes),
                               "size": len(manifest_bytes),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(index_path, "w") as handle:
        json.dump(index, handle)
    return "oci-layout:%s:%s" % (layout, tag)


def with_setpriv(layer):
    """util-linux setpriv and the libraries it links, copied from the host into the layer."""
    paths = ["/usr/bin/setpriv"]
    for line in subprocess.run(["ldd", "/usr/bin/setpriv"], stdout=subprocess.PIPE, universal_newlines=True,
                               check=True).stdout.splitlines():
        words = line.split()
        if "=>" in words and len(words) > 2 and words[2].startswith("/"):
            paths.append(words[2])
        elif words and words[0].startswith("/"):
            paths.append(words[0])
    made = set()
    for path in paths:
        real = os.path.realpath(path)
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                layer.dir(directory)
                made.add(directory)
        with open(real, "rb") as handle:
            layer.file(path.strip("/"), handle.read(), mode=0o755)
    return layer


# ---------------------------------------------------------------------------
# hostile local sources: a layout's files replaced, archives written with GNU tar

def image_blobs(layout, tag):
    """``(manifest, path_of)`` of image ``tag`` in ``layout``; ``path_of(digest)`` is a blob's file."""
    def path_of(digest):
        return os.path.join(layout, "blobs", "sha256", digest.split(":")[1])

    with open(os.path.join(layout, "index.json")) as handle:
        index = json.load(handle)
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            with open(path_of(desc["digest"])) as handle:
                return json.load(handle), path_of
    raise KeyError(tag)


def layer_path(layout, tag, index=-1):
    """The file of layer ``index`` of image ``tag`` in ``layout``."""
    manifest, path_of = image_blobs(layout, tag)
    return path_of(manifest["layers"][index]["digest"])


def sparse_layer(layout, tag, apparent, data=b"lxcri"):
    """Make the top layer of ``tag`` an uncompressed layer of one file of ``apparent`` bytes, written
    sparse (only ``data`` at its start is stored), with a matching digest, diff_id and size.

    Returns the blob's path.  A GNU tar ``--sparse`` archive of the layout stores it in a few KiB.
    """
    info = tarfile.TarInfo("big")
    info.size = apparent
    head = info.tobuf(tarfile.PAX_FORMAT)
    hasher = hashlib.sha256(head + data)
    zeros = bytes(1 << 20)
    left = apparent - len(data)
    while left:
        step = min(left, len(zeros))
        hasher.update(zeros[:step])
        left -= step
    tail = b"\0" * (-apparent % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)
    hasher.update(tail)
    digest = "sha256:" + hasher.hexdigest()
    total = len(head) + apparent + len(tail)
    manifest, path_of = image_blobs(layout, tag)
    path = path_of(digest)
    with open(path, "wb") as handle:
        handle.write(head + data)
        handle.truncate(total)  # a hole: no blocks on disk
    _retarget(layout, tag, {"mediaType": LAYER_TYPES[None], "digest": digest, "size": total}, digest)
    return path


def _retarget(layout, tag, layer_desc, diff_id):
    """Point ``tag``'s top layer at ``layer_desc`` (config, manifest and index rewritten)."""
    manifest, path_of = image_blobs(layout, tag)
    with open(path_of(manifest["config"]["digest"])) as handle:
        config = json.load(handle)
    config["rootfs"]["diff_ids"][-1] = diff_id
    config_bytes = json.dumps(config).encode()
    manifest["config"] = dict(manifest["config"], digest=_put_blob(layout, config_bytes), size=len(config_bytes))
    manifest["layers"][-1] = layer_desc
    manifest_bytes = json.dumps(manifest).encode()
    index_path = os.path.join(layout, "index.json")
    with open(index_path) as handle:
        index = json.load(handle)
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            desc.update(digest=_put_blob(layout, manifest_bytes), size=len(manifest_bytes))
    with open(index_path, "w") as handle:
        json.dump(index, handle)


def gnu_tar(directory, path, sparse=False, fmt="gnu"):
    """``directory``'s content as the tar ``path``, written by GNU tar (``--sparse``: holes are not stored)."""
    argv = ["tar", "--format=" + fmt, "-cf", path, "-C", directory]
    if sparse:
        argv.insert(1, "--sparse")
    subprocess.run(argv + sorted(os.listdir(directory)), check=True)
    return path


def gzip_archive_bomb(layout, path, size=1 << 30):
    """``layout`` as a gzip-compressed tar (``docker save | gzip`` style) followed by a member of ``size``
    zero bytes that compresses about 1030:1 (a ZeroBomb): a few MiB that tarfile decompresses to the end
    to list the members."""
    plain = gnu_tar(layout, path + ".plain")
    with open(plain, "rb") as handle:
        members = handle.read().rstrip(b"\0")  # without its end-of-archive blocks (the last member is JSON)
    os.unlink(plain)
    members += b"\0" * (-len(members) % tarfile.BLOCKSIZE)
    with open(path, "wb") as out:
        out.write(gzip.compress(members))
        out.write(ZeroBomb(size, "padding").blob("gzip")[0])
    return path


def classic_docker_archive(workdir, path, layer_files, config, repo_tag="lxcri/app:1", sparse=False):
    """A classic ``docker save`` archive (manifest.json, <n>/layer.tar, config json) of ``layer_files``
    (uncompressed layer tars on disk, bottom first: moved into the archive's tree as they are, holes
    included), written by GNU tar.  ``config`` is the image config (its ``rootfs`` is filled in)."""
    tree = os.path.join(workdir, "docker-save")
    os.makedirs(tree)
    names, diff_ids = [], []
    for number, layer_file in enumerate(layer_files):
        diff_ids.append("sha256:" + _sha256_file(layer_file))
        os.makedirs(os.path.join(tree, str(number)))
        names.append("%d/layer.tar" % number)
        os.rename(layer_file, os.path.join(tree, names[-1]))
    config = dict(config, rootfs={"type": "layers", "diff_ids": diff_ids})
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    with open(os.path.join(tree, config_name), "wb") as handle:
        handle.write(config_bytes)
    with open(os.path.join(tree, "manifest.json"), "w") as handle:
        json.dump([{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}], handle)
    return gnu_tar(tree, path, sparse=sparse)


def _sha256_file(path):
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
