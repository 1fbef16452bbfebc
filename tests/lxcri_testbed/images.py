"""Test images built on the spot with umoci (busybox-based) and pushed with skopeo.

Nothing is downloaded: the only binary in the images is the host's
busybox-static.  umoci and skopeo are test tools only; the collection itself
never needs them.
"""

import json
import os
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


def build_image(workdir, tag="1", config=None):
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
    argv = ["umoci", "config", "--image", "%s:%s" % (layout, tag),
            "--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.env"]
    for word in cfg["entrypoint"]:
        argv.append("--config.entrypoint=%s" % word)
    for word in cfg["cmd"]:
        argv.append("--config.cmd=%s" % word)
    for item in cfg["env"]:
        argv.append("--config.env=%s" % item)
    argv += ["--config.workingdir=%s" % cfg["workdir"], "--config.user=%s" % cfg["user"]]
    run(argv)
    return TestImage(layout, tag, cfg, layers=3)


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
