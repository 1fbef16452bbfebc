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
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


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
