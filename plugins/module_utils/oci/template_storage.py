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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import atomic_write
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import wait_task


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
            return wait_task(self.client, self.node, upid, timeout=self.params.get("wait_timeout") or 600)
        return None

    def _record(self, filename):
        return os.path.join(self.workdir, filename + ".json")

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
            result.update(size=record and record["size"], sha256=record and record["sha256"], runtime=runtime)
            same = {"identity": ident, "runtime": runtime}
            result["diff"] = manager._diff(same, same)
            return result
        before = {"identity": ident, "runtime": record and record["runtime"]} if exists else None
        result["changed"] = True
        if manager.check_mode:
            runtime = manager.scan_runtime(res, cached, result["lxc_version"])
            result.update(size=None, sha256=None, runtime=runtime, would_upload=True)
            result["diff"] = manager._diff(before, {"identity": ident, "runtime": runtime})
            return result
        os.makedirs(self.workdir, exist_ok=True)
        path = os.path.join(self.workdir, filename)
        with manager._lock_in(self.workdir, result["name"]):
            record = manager.build(res, ident, result["lxc_version"], path)
            try:
                if exists:
                    self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=self.node,
                                                  storage=self.storage, volume=volid))
                task = self._wait(self.client.upload(self.node, self.storage, "vztmpl", path, filename=filename,
                                                     checksum=record["sha256"]))
            finally:
                os.unlink(path)
            atomic_write(record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
        if not self._exists(volid):
            raise PveConfigError("the upload of %s finished but %s does not list %s" % (filename, self.storage, volid))
        result.update(size=record["size"], sha256=record["sha256"], runtime=record["runtime"],
                      upload_warnings=task.warnings if task else [])
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
