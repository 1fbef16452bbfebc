# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publishing a template to a Proxmox VE storage over the API (``oci_template`` with ``storage``).

The template is built into ``<cache_dir>/templates/`` exactly as for
``dest`` (atomic, locked, with its sidecar), uploaded with its sha256 only
when complete, and the local copy is removed afterwards; the sidecar stays,
so the runtime of an uploaded template is known without rebuilding.  The
volume name carries the image digest (and the hash of non-default options),
so an existing volume of that name is the same template.

With ``require_runnable`` (the default) a template that M(lxc_container)
could not run over the API on the node's Proxmox VE version is refused
before anything is uploaded: from the options alone before the image is
pulled, from the image config before the build, and from the built
template's runtime before the upload.  An upload that fails leaves no
volume behind: whatever the storage lists under the name afterwards (a
copy cut off midway whose cleanup failed too) is removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import atomic_write
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.carry import api_refusal
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError, PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import DEFAULT_WAIT_TIMEOUT, wait_task

RAW_LXC_HINT = ("or, if lxc_container will create the containers on the node with raw_lxc: true (it writes the "
                "lxc.init.* lines itself), set require_runnable: false")


class StoragePublisher:
    def __init__(self, manager):
        self.manager = manager
        self.params = manager.params
        self.client = connect(self.params)
        self.storage = self.params["storage"]
        self.node = self.params["node"] or self._only_node()
        self.workdir = os.path.join(self.params["cache_dir"], "templates")

    def _only_node(self):
        nodes = [n["node"] for n in self.client.get("/nodes") or []]
        if len(nodes) != 1:
            raise PveConfigError("the cluster has the nodes %s: give node, the one whose storage %s receives the "
                                 "template" % (", ".join(sorted(nodes)) or "(none)", self.storage))
        return nodes[0]

    def _volid(self, filename):
        return "%s:vztmpl/%s" % (self.storage, filename)

    volid = _volid

    def templates(self, regex):
        """(filename, ctime) of the storage's templates whose file name matches ``regex``."""
        content = self.client.get("/nodes/{node}/storage/{storage}/content", node=self.node, storage=self.storage,
                                  content="vztmpl")
        prefix = self._volid("")
        out = []
        for item in content or []:
            volid = str(item.get("volid", ""))
            if volid.startswith(prefix) and regex.match(volid[len(prefix):]):
                out.append((volid[len(prefix):], int(item.get("ctime") or 0)))
        return out

    def delete(self, filename):
        """Remove a template volume and the local sidecar record of it."""
        self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=self.node,
                                      storage=self.storage, volume=self._volid(filename)))
        record = self._record(filename)
        if os.path.exists(record):
            os.unlink(record)

    def _exists(self, volid):
        content = self.client.get("/nodes/{node}/storage/{storage}/content", node=self.node, storage=self.storage,
                                  content="vztmpl")
        return any(item.get("volid") == volid for item in content or [])

    def _wait(self, upid):
        if upid:
            return wait_task(self.client, self.node, upid, timeout=self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        return None

    def _record(self, filename):
        return os.path.join(self.workdir, filename + ".json")

    def check_runnable(self, filename, runtime=None):
        """Refuse (TemplateError) what lxc_container could not run on the node; see api_refusal."""
        if not self.params.get("require_runnable", True):
            return
        features = self.client.features()
        wrapper = (runtime.get("wrapper") or {}).get("kind") if runtime is not None else \
            ("init" if self.params["init_wrapper"] == "always" else None)
        problem, undecided = api_refusal(features, self.params["format"], wrapper, runtime, RAW_LXC_HINT)
        if problem:
            raise TemplateError("%s would not be uploaded to %s: lxc_container could not run it on node %s: %s"
                                % (filename, self.storage, self.node, problem))
        if undecided and self.manager.check_mode:
            self.manager.warnings.append(
                "check mode cannot tell yet whether lxc_container can run %s on node %s: %s; the real run checks it "
                "after the build, before the upload" % (filename, self.node, undecided))

    def _upload(self, path, filename, volid, checksum, size):
        """Upload and wait; on any failure remove what the storage lists under ``volid`` and re-raise."""
        try:
            return self._wait(self.client.upload(self.node, self.storage, "vztmpl", path, filename=filename,
                                                 checksum=checksum))
        except (PveError, OSError) as exc:
            note = self._remove_failed(volid, size)
            if note:
                raise PveError("%s (%s)" % (exc, note)) from exc
            raise

    def _remove_failed(self, volid, size):
        """After a failed upload: remove the volume if the storage lists it; says what happened (or None)."""
        try:
            listed = [item for item in self.client.get("/nodes/{node}/storage/{storage}/content", node=self.node,
                                                       storage=self.storage, content="vztmpl") or []
                      if item.get("volid") == volid]
        except PveError as exc:
            return "could not look for a partial %s on the storage (%s): check with 'pvesm list %s'" % (
                volid, exc, self.storage)
        if not listed:
            return None
        try:
            self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=self.node,
                                          storage=self.storage, volume=volid))
        except PveError as exc:
            return "the storage lists %s (%s of %d bytes) and removing it failed (%s): remove it with 'pvesm free %s'" % (
                volid, listed[0].get("size"), size, exc, volid)
        return "removed %s (%s of %d bytes) that the failed upload left on the storage" % (
            volid, listed[0].get("size"), size)

    def present(self, result, res, ident, cached):
        manager = self.manager
        filename = result["filename"]
        volid = self._volid(filename)
        result.update(volid=volid, node=self.node, storage=self.storage)
        record_path = self._record(filename)
        record = manager._read_sidecar(record_path)
        if record is not None and record.get("identity") != ident:
            record = None
        exists = self._exists(volid)
        if exists and not self.params["force"]:
            runtime = record["runtime"] if record else manager.scan_runtime(res, cached, result["lxc_version"])
            self.check_runnable(filename, runtime)
            result.update(size=record and record["size"], sha256=record and record["sha256"], runtime=runtime,
                          conversion=record and record.get("conversion"))
            same = {"identity": ident, "runtime": runtime}
            result["diff"] = manager._diff(same, same)
            return result
        before = {"identity": ident, "runtime": record and record["runtime"]} if exists else None
        result["changed"] = True
        if manager.check_mode:
            runtime = manager.scan_runtime(res, cached, result["lxc_version"])
            self.check_runnable(filename, runtime)
            result.update(size=None, sha256=None, runtime=runtime, would_upload=True, conversion=None)
            result["diff"] = manager._diff(before, {"identity": ident, "runtime": runtime})
            return result
        # what the config tells already (a working directory, a numeric user) is refused before the build
        self.check_runnable(filename, manager.scan_runtime(res, False, result["lxc_version"]))
        os.makedirs(self.workdir, exist_ok=True)
        path = os.path.join(self.workdir, filename)
        with manager._lock_in(self.workdir, result["name"]):
            record = manager.build(res, ident, result["lxc_version"], path)
            try:
                self.check_runnable(filename, record["runtime"])  # the user's ids from the layers: before the upload
                if exists:
                    self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=self.node,
                                                  storage=self.storage, volume=volid))
                task = self._upload(path, filename, volid, record["sha256"], record["size"])
            finally:
                os.unlink(path)
            atomic_write(record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
        if not self._exists(volid):
            raise PveConfigError("the upload of %s finished but %s does not list %s" % (filename, self.storage, volid))
        result.update(size=record["size"], sha256=record["sha256"], runtime=record["runtime"],
                      conversion=record["conversion"], upload_warnings=task.warnings if task else [])
        result["diff"] = manager._diff(before, record)
        return result

    def absent(self, result):
        manager = self.manager
        if self.params["name"]:
            name = self.params["name"]
        else:
            from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import default_name  # pylint: disable=import-outside-toplevel
            res = manager._resolve_readonly()[0]
            name = default_name(manager.images.source, res.manifest_digest, self.params)
        volid = self._volid(name + manager.extension)
        result.update(name=name, volid=volid, node=self.node, storage=self.storage, removed=[])
        if self._exists(volid):
            result["changed"] = True
            result["removed"] = [volid]
            if not manager.check_mode:
                self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=self.node,
                                              storage=self.storage, volume=volid))
                record = self._record(name + manager.extension)
                if os.path.exists(record):
                    os.unlink(record)
        result["diff"] = {"before": {"volid": volid if result["changed"] else None}, "after": {"volid": None}}
        return result
