"""Test images built on the spot with umoci (busybox-based) and pushed with skopeo.

Nothing is downloaded: the only binary in the images is the host's
busybox-static.  umoci and skopeo are test tools only; the collection itself
never needs them.
"""

import hashlib
import io
import json
import os
import tarfile
import shutil
import subprocess

from .bed import BedError, run

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "cat", "env", "id", "pwd", "ls", "echo", "true", "false")

# The default test image: every init-relevant config field set.
DEFAULT_CONFIG = {
    "entrypoint": ["/bin/sleep"],
    "cmd": ["3600"],
    "env": ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=test", "GREETING=hello world"],
    "workdir": "/app",
    "user": "1000:1000",
}


class TestImage:
    """An image in an OCI layout directory, optionally pushed to registries."""

    __test__ = False  # not a pytest test class

    def __init__(self, layout, tag, config, layers):
        self.layout = layout
        self.tag = tag
        self.config = config
        self.layers = layers  # number of filesystem layers
        self.refs = {}  # registry name -> "host/repo:tag"
        self.digest = None  # manifest digest

    @property
    def oci_ref(self):
        return "oci:%s:%s" % (self.layout, self.tag)

    def manifest(self):
        with open(os.path.join(self.layout, "index.json")) as handle:
            index = json.load(handle)
        for desc in index["manifests"]:
            if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == self.tag:
                algo, hexdigest = desc["digest"].split(":", 1)
                with open(os.path.join(self.layout, "blobs", algo, hexdigest)) as handle:
                    return desc["digest"], json.load(handle)
        raise BedError("tag %s not in %s" % (self.tag, self.layout))

    def image_config(self):
        dummy, manifest = self.manifest()
        algo, hexdigest = manifest["config"]["digest"].split(":", 1)
        with open(os.path.join(self.layout, "blobs", algo, hexdigest)) as handle:
            return json.load(handle)


def _layer(layout, tag, work, populate):
    bundle = os.path.join(work, "bundle")
    shutil.rmtree(bundle, ignore_errors=True)
    run(["umoci", "unpack", "--image", "%s:%s" % (layout, tag), bundle])
    populate(os.path.join(bundle, "rootfs"))
    run(["umoci", "repack", "--image", "%s:%s" % (layout, tag), bundle])
    shutil.rmtree(bundle)


def _base(root):
    for path in ("bin", "etc", "tmp", "app", "root"):
        os.makedirs(os.path.join(root, path), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as handle:
        handle.write("root:x:0:\napp:x:1000:\n")
    with open(os.path.join(root, "etc", "obsolete.conf"), "w") as handle:
        handle.write("removed by a later layer\n")


HOLD_SCRIPT = "#!/bin/sh\n# Keeps running, so a test can read its argv: /proc shows /bin/sh /bin/hold ARGS.\nwhile :; do sleep 3600; done\n"


def _app(root):
    os.chown(os.path.join(root, "app"), 1000, 1000)
    with open(os.path.join(root, "bin", "hold"), "w") as handle:
        handle.write(HOLD_SCRIPT)
    os.chmod(os.path.join(root, "bin", "hold"), 0o755)
    with open(os.path.join(root, "app", "hello.txt"), "w") as handle:
        handle.write("hello from layer 2\n")
    os.chown(os.path.join(root, "app", "hello.txt"), 1000, 1000)


def _cleanup(root):
    os.unlink(os.path.join(root, "etc", "obsolete.conf"))  # becomes a whiteout
    os.makedirs(os.path.join(root, "app", "data"))
    os.chown(os.path.join(root, "app", "data"), 1000, 1000)
    with open(os.path.join(root, "app", "data", "version"), "w") as handle:
        handle.write("3\n")


def build_image(workdir, tag="1", config=None, architecture=None, marker=None, big_bytes=0):
    """Build a three-layer busybox image in ``workdir/layout``.

    Layer 1 has busybox, applet symlinks, /etc/passwd and /etc/obsolete.conf;
    layer 2 adds /bin/hold (a script that keeps running with whatever
    arguments it gets) and /app content owned by 1000:1000; layer 3 deletes
    /etc/obsolete.conf (a whiteout) and adds /app/data.
    """
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(config or {})
    layout = os.path.join(workdir, "layout")
    if not os.path.isdir(layout):
        run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", "%s:%s" % (layout, tag)])
    for populate in (_base, _app, _cleanup):
        _layer(layout, tag, workdir, populate)
    if marker or big_bytes:
        def _extra(root):
            if marker:
                with open(os.path.join(root, "etc", "lxcri-marker"), "w") as handle:
                    handle.write(marker + "\n")
            if big_bytes:
                with open(os.path.join(root, "app", "blob.bin"), "wb") as handle:
                    handle.write(os.urandom(big_bytes))
        _layer(layout, tag, workdir, _extra)
    argv = ["umoci", "config", "--image", "%s:%s" % (layout, tag),
            "--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.env"]
    for word in cfg["entrypoint"]:
        argv.append("--config.entrypoint=%s" % word)
    for word in cfg["cmd"]:
        argv.append("--config.cmd=%s" % word)
    for item in cfg["env"]:
        argv.append("--config.env=%s" % item)
    argv += ["--config.workingdir=%s" % cfg["workdir"], "--config.user=%s" % cfg["user"]]
    if architecture:
        argv += ["--architecture=%s" % architecture, "--os=linux"]
    run(argv)
    return TestImage(layout, tag, cfg, layers=4 if (marker or big_bytes) else 3)


def push_image(image, registry, repo, name):
    """Copy ``image`` to ``registry`` (a bed state entry) as ``repo:tag``."""
    dest = "%s/%s:%s" % (registry["host"], repo, image.tag)
    digestfile = os.path.join(image.layout, "..", "digest-%s" % name)
    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
            "--digestfile", digestfile]
    if registry.get("username"):
        argv += ["--dest-creds", "%s:%s" % (registry["username"], registry["password"])]
    argv += [image.oci_ref, "docker://" + dest]
    try:
        run(argv, timeout=120)
    except subprocess.TimeoutExpired:
        raise BedError("skopeo copy to %s timed out" % dest)
    with open(digestfile) as handle:
        image.digest = handle.read().strip()
    image.refs[name] = dest
    return dest


def unpack_rootfs(image, dest):
    """Unpack ``image`` with umoci into ``dest`` (a bundle); returns the rootfs path.

    A reference unpacker for tests, to compare the collection's own
    conversion against.
    """
    run(["umoci", "unpack", "--image", "%s:%s" % (image.layout, image.tag), dest])
    return os.path.join(dest, "rootfs")


# ---------------------------------------------------------------------------
# multi-platform images and archives

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _put_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest.split(":")[1])
    with open(path, "wb") as handle:
        handle.write(data)
    return digest


def _index_json(layout):
    with open(os.path.join(layout, "index.json")) as handle:
        return json.load(handle)


def _write_index_json(layout, index):
    with open(os.path.join(layout, "index.json"), "w") as handle:
        json.dump(index, handle)


class MultiImage:
    """An OCI index with linux/amd64 and linux/arm64/v8 manifests in one layout."""

    __test__ = False

    def __init__(self, layout, tag, index_digest, manifests):
        self.layout = layout
        self.tag = tag
        self.index_digest = index_digest
        self.manifests = manifests  # "linux/amd64" -> manifest digest
        self.refs = {}

    @property
    def oci_ref(self):
        return "oci:%s:%s" % (self.layout, self.tag)


def build_multiplatform(workdir, tag="multi"):
    """Two single-platform images (marker files /etc/lxcri-marker say which) joined by an index."""
    platforms = (("amd64", None), ("arm64", "v8"))
    descriptors = []
    manifests = {}
    for arch, variant in platforms:
        image = build_image(workdir, tag=arch, architecture=arch, marker=arch)
        digest, manifest = image.manifest()
        size = len(json.dumps(manifest))  # replaced below by the real blob size
        blob = os.path.join(image.layout, "blobs", "sha256", digest.split(":")[1])
        size = os.path.getsize(blob)
        platform = {"os": "linux", "architecture": arch}
        if variant:
            platform["variant"] = variant
        descriptors.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform})
        manifests["linux/%s" % arch] = digest
    layout = os.path.join(workdir, "layout")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    data = json.dumps(index).encode()
    index_digest = _put_blob(layout, data)
    top = _index_json(layout)
    top["manifests"].append({"mediaType": OCI_INDEX, "digest": index_digest, "size": len(data),
                             "annotations": {REF_NAME: tag}})
    _write_index_json(layout, top)
    return MultiImage(layout, tag, index_digest, manifests)


def push_multiplatform(image, registry, repo, name, docker_format=False):
    dest = "%s/%s:%s" % (registry["host"], repo, image.tag)
    argv = ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false"]
    if docker_format:
        argv += ["--format", "v2s2"]
    if registry.get("username"):
        argv += ["--dest-creds", "%s:%s" % (registry["username"], registry["password"])]
    run(argv + [image.oci_ref, "docker://" + dest], timeout=180)
    image.refs[name] = dest
    return dest


def skopeo_archive(image, transport, path, name):
    """Write ``image`` with skopeo as an oci-archive or docker-archive (a real tool's output)."""
    run(["skopeo", "copy", "--quiet", image.oci_ref, "%s:%s:%s" % (transport, path, name)], timeout=180)
    return path


def docker_oci_archive(multi, path, image_name, tag):
    """The OCI-based ``docker save`` format of Docker 25+: a nested index plus a legacy manifest.json."""
    layout = multi.layout
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_INDEX, "digest": multi.index_digest,
        "size": os.path.getsize(os.path.join(layout, "blobs", "sha256", multi.index_digest.split(":")[1])),
        "annotations": {"io.containerd.image.name": image_name, REF_NAME: tag}}]}
    amd64 = multi.manifests["linux/amd64"]
    with open(os.path.join(layout, "blobs", "sha256", amd64.split(":")[1])) as handle:
        manifest = json.load(handle)
    legacy = [{"Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
               "RepoTags": [image_name.split("/", 1)[1] if image_name.startswith("docker.io/") else image_name],
               "Layers": ["blobs/sha256/" + l["digest"].split(":")[1] for l in manifest["layers"]]}]
    with tarfile.open(path, "w") as tar:
        def add_bytes(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        add_bytes("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add_bytes("index.json", json.dumps(top).encode())
        add_bytes("manifest.json", json.dumps(legacy).encode())
        blobs = os.path.join(layout, "blobs", "sha256")
        for name in sorted(os.listdir(blobs)):
            tar.add(os.path.join(blobs, name), arcname="blobs/sha256/" + name)
    return path


def zstd_variant(image, workdir, tag="zstd"):
    """A copy of ``image`` with every layer recompressed by the zstd command (new digests, same diff_ids)."""
    import gzip  # pylint: disable=import-outside-toplevel
    layout = os.path.join(workdir, "zstd-layout")
    shutil.copytree(image.layout, layout)
    digest, manifest = image.manifest()
    layers = []
    for layer in manifest["layers"]:
        src = os.path.join(layout, "blobs", "sha256", layer["digest"].split(":")[1])
        plain = os.path.join(workdir, "layer.tar")
        with gzip.open(src) as handle, open(plain, "wb") as out:
            shutil.copyfileobj(handle, out)
        run(["zstd", "-q", "-f", "-3", plain, "-o", plain + ".zst"])
        with open(plain + ".zst", "rb") as handle:
            data = handle.read()
        layers.append(dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+zstd",
                           digest=_put_blob(layout, data), size=len(data)))
    manifest = dict(manifest, layers=layers)
    body = json.dumps(manifest).encode()
    top = _index_json(layout)
    top["manifests"].append({"mediaType": OCI_MANIFEST, "digest": _put_blob(layout, body), "size": len(body),
                             "annotations": {REF_NAME: tag}})
    _write_index_json(layout, top)
    return TestImage(layout, tag, image.config, image.layers)
