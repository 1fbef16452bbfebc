"""Storage endpoints: listing, content, upload, 9.1's OCI registry pull, volume delete."""

import hashlib
import os
import re
import shutil
import subprocess

from ..schema import ApiError
from ..tasks import TaskFailed

# pve-storage's $VZTMPL_EXT_RE_1 (PVE/Storage.pm), anchored at the end of the name as PVE/Storage/Plugin.pm's
# $get_subdir_files (list_volumes' vztmpl listing) anchors it; the capture gives the listed format (tar or t<ext>)
VZTMPL_NAME = re.compile(r"^[^/]+\.(?:(tar)|tar\.(gz|xz|zst|bz2))$", re.IGNORECASE)


def normalize_content_filename(filename):
    """pve-storage PVE/Storage.pm normalize_content_filename: the base name, every other byte than
    ``[a-zA-Z0-9_.-]`` made ``_``."""
    filename = filename.rstrip("\n")
    filename = re.sub(r"^.*[/\\]", "", filename)
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", filename)


class StorageEndpoints:
    """/nodes/{node}/storage and /nodes/{node}/storage/{storage}/...: ``dir`` storages are real directories."""

    # A storage's entry may say, as storage.cfg does, ``nodes`` (the nodes it is available on; all when absent)
    # and ``disable``; ``online: False`` makes its plugin's check_connection fail (an unreachable NFS server).
    def storage_enabled(self, name, node=None):
        """pve-storage PVE/Storage.pm storage_check_enabled with $noerr: not disabled, and storage_check_node:
        its ``nodes`` list (if any) names the node."""
        info = self.storages[name]
        nodes = info.get("nodes")
        return not info.get("disable") and (not nodes or (node or self.node) in nodes)

    def activate_storage(self, name, node=None):
        """PVE/Storage.pm storage_config, storage_check_enabled (dies) and activate_storage's connection
        check, with their messages."""
        info = self.storages.get(name)
        if info is None:
            raise ApiError(500, "storage '%s' does not exist" % name)
        if info.get("disable"):
            raise ApiError(500, "storage '%s' is disabled" % name)
        if not self.storage_enabled(name, node):
            raise ApiError(500, "storage '%s' is not available on node '%s'" % (name, node or self.node))
        if not info.get("online", True):
            raise ApiError(500, "storage '%s' is not online" % name)
        return info

    def storage_list(self, params):
        """PVE/API2/Storage/Status.pm index over PVE/Storage.pm storage_info: with ``content`` only the enabled
        storages that have it; ``enabled`` is storage_check_enabled for this node, ``active`` whether
        activate_storage worked (a failing one is listed inactive, with no sizes)."""
        self._node(params["node"])
        wanted = params.get("content")
        out = []
        for name, info in sorted(self.storages.items()):
            enabled = self.storage_enabled(name)
            if wanted and (wanted not in info["content"].split(",") or not enabled):
                continue
            entry = {"storage": name, "type": info["type"], "content": info["content"], "active": 0,
                     "enabled": int(enabled), "shared": int(bool(info.get("shared"))), "total": 0, "avail": 0,
                     "used": 0}
            if enabled and info.get("online", True):
                st = os.statvfs(info["path"])
                entry.update(active=1, total=st.f_blocks * st.f_frsize, avail=st.f_bavail * st.f_frsize,
                             used=(st.f_blocks - st.f_bfree) * st.f_frsize)
            out.append(entry)
        return out

    def _storage(self, name):
        info = self.storages.get(name)
        if info is None:
            raise ApiError(500, "storage '%s' does not exist" % name)
        return info

    def storage_content(self, params):
        self._node(params["node"])
        name = params["storage"]
        info = self._storage(name)
        out = []
        cache = os.path.join(info["path"], "template", "cache")
        for entry in sorted(os.listdir(cache)):
            path = os.path.join(cache, entry)
            match = VZTMPL_NAME.match(entry)
            # a glob of <dir>/* skips dot files; anything else (a sidecar *.tar.zst.json, say) is no template
            if os.path.isfile(path) and not entry.startswith(".") and match:
                ext = match.group(1) or match.group(2)
                out.append({"volid": "%s:vztmpl/%s" % (name, entry), "content": "vztmpl",
                            "format": ext if ext == "tar" else "t" + ext,
                            "size": os.path.getsize(path), "ctime": int(os.path.getmtime(path))})
        images = os.path.join(info["path"], "images")
        for vmid in sorted(os.listdir(images)):
            for entry in sorted(os.listdir(os.path.join(images, vmid))):
                out.append({"volid": "%s:%s/%s" % (name, vmid, entry), "content": "rootdir", "format": "subvol",
                            "size": 0, "vmid": int(vmid) if vmid.isdigit() else None})
        wanted = params.get("content")
        return [e for e in out if not wanted or e["content"] == wanted]

    TEMPLATE_EXTENSIONS = (".tar.gz", ".tar.xz", ".tar.zst", ".tar")

    def oci_registry_pull(self, params, user):
        """9.1: pull an image through a registry client into the storage as an OCI archive (vztmpl).

        The double uses skopeo as its registry client (a test tool; the collection never does).
        Test registries on loopback speak plain HTTP, so TLS verification is off for 127.0.0.1 only.
        """
        self._node(params["node"])
        info = self._storage(params["storage"])
        if "vztmpl" not in info["content"].split(","):
            raise ApiError(500, "storage '%s' does not support content type 'vztmpl'" % params["storage"])
        reference = params["reference"]
        repo, dummy, tag = reference.rpartition(":")
        # pve-storage PVE/API2/Storage/Status.pm oci_registry_pull: filename (default: the reference) normalised,
        # then ".tar" appended, always; an existing file is not overwritten
        filename = normalize_content_filename(params.get("filename") or reference) + ".tar"
        target = os.path.join(info["path"], "template", "cache", filename)
        if os.path.isfile(target):
            raise ApiError(500, "refusing to override existing file '%s'" % filename)
        insecure = reference.startswith(("127.0.0.1", "localhost"))

        def work(task):
            tmp = target + ".tmp.%d" % os.getpid()
            argv = ["skopeo", "copy", "--quiet"]
            if insecure:
                argv.append("--src-tls-verify=false")
            proc = subprocess.run(argv + ["docker://" + reference, "oci-archive:%s:%s" % (tmp, tag)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                  check=False)
            if proc.returncode != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise TaskFailed("failed to pull '%s': %s" % (reference, proc.stdout.strip()[-300:]))
            os.rename(tmp, target)
            task.log("saved %s" % target)
            return 0

        return self.tasks.start("imgpull", None, user, work)

    def storage_upload(self, params, user, files):
        """POST .../upload: multipart, content vztmpl (or iso), optional checksum; an imgcopy task."""
        self._node(params["node"])
        info = self._storage(params["storage"])
        upload = files.get("filename")
        if upload is None:
            raise ApiError(400, "Parameter verification failed.", {"filename": "no file uploaded"})
        # pve-storage PVE/API2/Storage/Status.pm upload: PVE::Storage::normalize_content_filename
        name, tmp = normalize_content_filename(upload[0]), upload[1]
        content = params["content"]
        if content not in info["content"].split(","):
            os.unlink(tmp)
            raise ApiError(500, "storage '%s' does not support content type '%s'" % (params["storage"], content))
        if content == "vztmpl" and not name.endswith(self.TEMPLATE_EXTENSIONS):
            os.unlink(tmp)
            raise ApiError(500, "wrong file extension")
        target = os.path.join(info["path"], "template", "cache" if content == "vztmpl" else "iso", name)

        def work(task):
            try:
                if params.get("checksum"):
                    digest = hashlib.new(params["checksum-algorithm"])
                    with open(tmp, "rb") as handle:
                        for chunk in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(chunk)
                    if digest.hexdigest() != params["checksum"].lower():
                        raise TaskFailed("checksum mismatch: got '%s' != expected '%s'"
                                         % (digest.hexdigest(), params["checksum"]))
                    task.log("checksum verified")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.move(tmp, target)
                task.log("target file: %s" % target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return 0

        return self.tasks.start("imgcopy", None, user, work)

    def storage_content_delete(self, params, user):
        self._node(params["node"])
        volume = params["volume"]
        volid = volume if ":" in volume else "%s:%s" % (params["storage"], volume)
        path = self.volume_path(volid)
        if not os.path.exists(path):
            raise ApiError(500, "volume '%s' does not exist" % volid)

        def work(task):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            task.log("removed %s" % volid)
            return 0

        return self.tasks.start("imgdel", None, user, work)
