"""Proxmox VE 9.1's import of an OCI archive given as ``ostemplate``."""

import os
import shutil
import subprocess

from ..tasks import TaskFailed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
              "application/vnd.oci.image.layer.v1.tar+zstd")


def is_oci_archive(path):
    import tarfile  # pylint: disable=import-outside-toplevel
    try:
        with tarfile.open(path) as tar:
            names = set(m.name.lstrip("./") for m in tar.getmembers()[:64])
    except (tarfile.TarError, OSError):
        return False
    return "oci-layout" in names and "index.json" in names


def import_oci_archive(path, rootfs, task):
    """Proxmox VE 9.1's OCI import as documented: the FIRST manifest of index.json, OCI media types
    only, layers applied in order with whiteouts, and the runtime config mapped onto config keys."""
    import json  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    with tarfile.open(path) as archive:
        def blob(digest):
            member = archive.getmember("blobs/%s" % digest.replace(":", "/"))
            return archive.extractfile(member).read()

        index = json.loads(archive.extractfile(archive.getmember("index.json")).read())
        desc = index["manifests"][0]
        if desc.get("mediaType") != OCI_MANIFEST:
            raise TaskFailed("unsupported OCI manifest media type '%s'" % desc.get("mediaType"))
        manifest = json.loads(blob(desc["digest"]))
        config = json.loads(blob(manifest["config"]["digest"])).get("config") or {}
        for layer in manifest["layers"]:
            if layer.get("mediaType") not in OCI_LAYERS:
                raise TaskFailed("unsupported OCI layer media type '%s'" % layer.get("mediaType"))
            fd, tmp = tempfile.mkstemp()
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob(layer["digest"]))
                with tarfile.open(tmp) as layer_tar:
                    for member in layer_tar.getmembers():
                        base = os.path.basename(member.name)
                        target = os.path.join(rootfs, os.path.dirname(member.name).lstrip("./"))
                        if base == ".wh..wh..opq":
                            for entry in os.listdir(target) if os.path.isdir(target) else []:
                                _remove(os.path.join(target, entry))
                        elif base.startswith(".wh."):
                            _remove(os.path.join(target, base[len(".wh."):]))
                proc = subprocess.run(["tar", "xpf", tmp, "--numeric-owner", "--exclude", ".wh.*", "-C", rootfs],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                      check=False)
                if proc.returncode != 0:
                    raise TaskFailed("extracting layer %s failed: %s" % (layer["digest"], proc.stdout.strip()))
            finally:
                os.unlink(tmp)
            task.log("applied layer %s" % layer["digest"])
    keys = {}
    argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    if argv:
        keys["entrypoint"] = " ".join('"%s"' % a if " " in a else a for a in argv)
    if config.get("Env"):
        keys["env"] = "\0".join(config["Env"])
    if config.get("WorkingDir"):
        keys["lxc.init.cwd"] = config["WorkingDir"]
    user = config.get("User") or ""
    uid, dummy, gid = user.partition(":")
    if uid.isdigit():
        keys["lxc.init.uid"] = uid
        keys["lxc.init.gid"] = gid if gid.isdigit() else uid
    if config.get("StopSignal"):
        keys["lxc.signal.halt"] = config["StopSignal"]
    return keys


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
