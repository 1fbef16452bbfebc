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

With ``nodes`` (a list, or ``all``: every node, each of which must be
online) the template goes to the storage of each of those nodes: once when
the storage is shared (every node sees the same files), else one upload per
node that lacks it, so a second run changes nothing and a node added later
gets only its own upload.  Each node must be able to run it (its own
version).  ``node`` (else the API host) decides the format.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.destination import DirLock, read_record, write_record
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import TemplateError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.carry import api_refusal
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError, PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import (
    import_sets_user, node_features, node_lxc_version, node_packages, parse_version)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import DEFAULT_WAIT_TIMEOUT, wait_task

RAW_LXC_HINT = ("or, if lxc_container will create the containers on the node with raw_lxc: true (it writes the "
                "lxc.init.* lines itself), set require_runnable: false")


def _connect(params):
    # pve.connection brings requests and ansible's module_utils.basic: imported only when a storage is the
    # destination, so that oci_template with dest (and every dest-only import of the engine) does not pay for them
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect  # pylint: disable=import-outside-toplevel
    return connect(params)


class StorageDestination:
    """Templates as ``vztmpl`` volumes of a Proxmox VE storage; the sidecar records stay in ``<cache_dir>/templates``.

    ``owner`` is the template manager (its ``params``, ``check_mode`` and ``warnings``); ``client`` a PVE API
    client, by default connected from the params.
    """

    KEY = "volid"
    CHECK_KEY = "would_upload"
    checks_runtime = True

    def __init__(self, owner, extension=None, client=None):
        self.manager = owner
        self.extension = extension
        self.params = owner.params
        self.check_mode = owner.check_mode
        self.client = client if client is not None else _connect(self.params)
        self.storage = self.params["storage"]
        self._listed = None  # GET /nodes, read once
        self.node = self.params["node"] or self._only_node()
        self.workdir = os.path.join(self.params["cache_dir"], "templates")
        self._features = {}  # node -> PveFeatures, asked once per node
        self._node_packages = {}  # node -> node_packages' answer, asked once per node
        self.shared = None
        self.nodes = self._nodes()

    def _cluster_nodes(self):
        """``GET /nodes`` (read once)."""
        if self._listed is None:
            self._listed = self.client.get("/nodes") or []
        return self._listed

    def _only_node(self):
        listed = self._cluster_nodes()
        nodes = [n["node"] for n in listed]
        wanted = self.params.get("nodes")
        if wanted and len(nodes) != 1:
            # with nodes, the first online one of them decides the version and the format
            online = [n["node"] for n in listed if n.get("status") == "online"]
            for name in (sorted(online) if wanted == ["all"] else wanted):
                if name in online:
                    return name
        if len(nodes) != 1:
            raise PveConfigError("the cluster has the nodes %s: give node, the one whose storage %s receives the "
                                 "template, or nodes" % (", ".join(sorted(nodes)) or "(none)", self.storage))
        return nodes[0]

    def _nodes(self):
        """The nodes whose storage gets the template: ``node`` alone, or those of ``nodes`` (``all``: every node),
        ``node`` first; one when the storage is shared.  An unknown or offline node is refused before anything."""
        wanted = self.params.get("nodes")
        if not wanted:
            return [self.node]
        listed = dict((n["node"], n) for n in self._cluster_nodes())
        names = sorted(listed) if wanted == ["all"] else list(dict.fromkeys(wanted))
        unknown = [name for name in names if name not in listed]
        if unknown:
            raise PveConfigError("nodes names %s, which the cluster does not have (its nodes: %s); nothing was "
                                 "uploaded" % (", ".join(unknown), ", ".join(sorted(listed))))
        offline = [name for name in names if listed[name].get("status") != "online"]
        if offline:
            raise PveConfigError("node %s is %s: the template cannot reach it; give nodes without it, or bring it "
                                 "back; nothing was uploaded" % (", ".join(offline), "offline"))
        entry = [e for e in self.client.get("/nodes/{node}/storage", node=self.node, storage=self.storage) or []
                 if e.get("storage") == self.storage]
        self.shared = bool(entry and str(entry[0].get("shared", 0)) in ("1", "True", "true"))
        if self.shared:
            return [self.node]  # one upload: every node sees the shared storage's files
        return [self.node] + [name for name in names if name != self.node]

    def _volid(self, filename):
        return "%s:vztmpl/%s" % (self.storage, filename)

    def _packages(self, node=None):
        node = node or self.node
        if node not in self._node_packages:
            self._node_packages[node] = node_packages(self.client, node)
        return self._node_packages[node]

    def node_features(self, node=None):
        """PveFeatures of the node whose storage gets the template (its own version: a cluster mid-upgrade may run
        another one on the API host), asked once per node."""
        node = node or self.node
        if node not in self._features:
            self._features[node] = node_features(self.client, node)
        return self._features[node]

    def lxc_version(self):
        """The LXC of the node that will run the template (not the one where the module runs); with several
        nodes, the oldest of theirs (its rules hold on the newer ones)."""
        versions = [node_lxc_version(self.client, node, self._packages(node)) for node in self.nodes]
        return min(versions, key=parse_version)

    def auto_format(self, needs_user, groups=None):
        """``format: auto`` for this storage's node: (format, init_wrapper or None to keep the option's, why).

        9.1+ imports OCI archives (entrypoint, env, working directory, stop signal; the image's User from
        pve-container 6.1.0): an OCI archive, unless the image runs as another user and the node's import is
        known to ignore User, or that user has supplementary groups (then a plain template with the generated
        init).  Before 9.1 there are no entrypoint/env keys: a plain template whose generated /sbin/init runs
        the app.

        ``groups``: a callable giving the image user's supplementary gids (None: not known without the layers),
        asked only when the answer decides.  pve-container 6.1's import writes them as ``lxc.init.groups``,
        which LXC (src/lxc/start.c) applies only without a user namespace, so an unprivileged container (what
        lxc_container makes by default) would run without them; the generated init sets them (setpriv).
        """
        sets_user = True
        for node in self.nodes:  # with several nodes, what each of them can run
            features = self.node_features(node)
            if not features.oci_import:
                return "vztmpl", "always", ("Proxmox VE %s on node %s has no OCI import and no entrypoint/env keys"
                                            % (features.release or ".".join(str(p) for p in features.version), node))
            node_sets_user = import_sets_user(self._packages(node)) if needs_user else True
            if node_sets_user is False:
                return "vztmpl", "always", ("node %s's pve-container %s ignores the image's User in an OCI import "
                                            "(6.1.0 added it)" % (node, self._packages(node).get("pve-container")))
            sets_user = sets_user and node_sets_user
        extra = groups() if (needs_user and groups is not None) else None
        if extra:
            return "vztmpl", "always", ("the image's user has the supplementary groups %s, which an OCI import "
                                        "would set as lxc.init.groups, and LXC applies those only in a privileged "
                                        "container (lxc_container makes them unprivileged): the generated init "
                                        "sets them" % ",".join(str(g) for g in sorted(extra)))
        note = "" if sets_user else " (its pve-container version is not readable without Sys.Audit: taken as 6.1+)"
        if needs_user and groups is not None and extra is None:
            note += " (the image user's supplementary groups are not known without its layers)"
        return "oci-archive", None, "node%s %s import%s OCI archives%s" % (
            "s" if len(self.nodes) > 1 else "", ", ".join(self.nodes), "" if len(self.nodes) > 1 else "s", note)

    address = _volid

    def describe(self, filename, present=True):
        """The result fields naming the template."""
        out = {"volid": self._volid(filename), "node": self.node, "storage": self.storage}
        if self.params.get("nodes"):
            out.update(nodes=list(self.nodes), shared=self.shared)
        return out

    @staticmethod
    def lock(name, create=True):
        return contextlib.nullcontext()  # the volume name carries the image digest: an existing one is the same

    def staging(self, name):
        """The local build's lock, in the work directory."""
        os.makedirs(self.workdir, exist_ok=True)
        return DirLock(self.workdir, name, enabled=not self.check_mode)

    def exists(self, filename):
        """On every node's storage (a node that lacks it gets the next upload)."""
        return not self.missing(filename)

    def missing(self, filename):
        volid = self._volid(filename)
        return [node for node in self.nodes if not self._exists(volid, node)]

    def read_record(self, filename, ident=None):
        """The local record of the volume when it is of ``ident`` (the record of another build says nothing)."""
        record = read_record(self._record(filename))
        return record if record is not None and record.get("identity") == ident else None

    @staticmethod
    def up_to_date(filename, ident, record):
        return True  # it exists, and its name says what it holds

    @staticmethod
    def before(ident, record):
        return {"identity": ident, "runtime": record and record["runtime"]}

    def build_path(self, filename):
        os.makedirs(self.workdir, exist_ok=True)
        return os.path.join(self.workdir, filename)

    def publish(self, filename, path, record, existed):
        """Upload the template built at ``path`` to each node that lacks it (to every node, replacing the volume,
        when it ``existed`` everywhere: force), then drop the local copy and keep its record.  Returns the extra
        result fields."""
        volid = self._volid(filename)
        targets = self.nodes if existed else self.missing(filename)
        warnings, done = [], []
        try:
            for node in targets:  # the user's ids from the layers: checked on every node before any upload
                self.check_runnable(filename, record["runtime"], node)
            for node in targets:
                try:
                    if existed:
                        self._delete(volid, node)
                    task = self._upload(path, filename, volid, record["sha256"], record["size"], node)
                except PveError as exc:
                    if not done:
                        raise
                    raise PveError("%s; the upload to node %s failed: %s. Nodes %s have the complete template, "
                                   "run the task again for the rest" % (filename, node, exc, ", ".join(done)))
                warnings.extend(task.warnings if task else [])
                if not self._exists(volid, node):
                    raise PveConfigError("the upload of %s finished but %s on node %s does not list %s"
                                         % (filename, self.storage, node, volid))
                done.append(node)
        finally:
            os.unlink(path)
        write_record(self._record(filename), record)
        out = {"upload_warnings": warnings}
        if self.params.get("nodes"):
            out["uploaded_to"] = done
        return out

    def remove(self, filename):
        """Remove the volume and its local record (check mode: only say so); returns the volids removed."""
        volid = self._volid(filename)
        if not any(self._exists(volid, node) for node in self.nodes):
            return []
        if not self.check_mode:
            self.delete(filename)
        return [volid]

    def _delete(self, volid, node=None):
        node = node or self.node
        self._wait(self.client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=node,
                                      storage=self.storage, volume=volid), node)

    def family(self, regex):
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
        """Remove a template volume (from each node's storage that has it) and the local sidecar record of it."""
        volid = self._volid(filename)
        for node in self.nodes:
            if len(self.nodes) == 1 or self._exists(volid, node):
                self._delete(volid, node)
        record = self._record(filename)
        if os.path.exists(record):
            os.unlink(record)

    def _exists(self, volid, node=None):
        content = self.client.get("/nodes/{node}/storage/{storage}/content", node=node or self.node,
                                  storage=self.storage, content="vztmpl")
        return any(item.get("volid") == volid for item in content or [])

    def _wait(self, upid, node=None):
        if upid:
            return wait_task(self.client, node or self.node, upid,
                             timeout=self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        return None

    def _record(self, filename):
        return os.path.join(self.workdir, filename + ".json")

    def check_runnable(self, filename, runtime=None, node=None):
        """Refuse (TemplateError) what lxc_container could not run on ``node`` (default: each node the template
        goes to); see api_refusal."""
        if not self.params.get("require_runnable", True) or self.params.get("init") == "system":
            return  # a system container's template is a plain one: every version starts its /sbin/init
        wrapper = (runtime.get("wrapper") or {}).get("kind") if runtime is not None else \
            ("init" if self.params["init_wrapper"] == "always" else None)
        for name in [node] if node else self.nodes:
            features = self.node_features(name)
            problem, undecided = api_refusal(features, self.params["format"], wrapper, runtime, RAW_LXC_HINT)
            if problem:
                raise TemplateError("%s would not be uploaded to %s: lxc_container could not run it on node %s: %s"
                                    % (filename, self.storage, name, problem))
            if undecided and self.check_mode:
                self.manager.warnings.append(
                    "check mode cannot tell yet whether lxc_container can run %s on node %s: %s; the real run checks "
                    "it after the build, before the upload" % (filename, name, undecided))

    def _upload(self, path, filename, volid, checksum, size, node=None):
        """Upload and wait; on any failure remove what the storage lists under ``volid`` and re-raise."""
        node = node or self.node
        try:
            return self._wait(self.client.upload(node, self.storage, "vztmpl", path, filename=filename,
                                                 checksum=checksum), node)
        except (PveError, OSError) as exc:
            note = self._remove_failed(volid, size, node)
            if note:
                raise PveError("%s (%s)" % (exc, note)) from exc
            raise

    def _remove_failed(self, volid, size, node=None):
        """After a failed upload: remove the volume if the storage lists it; says what happened (or None)."""
        node = node or self.node
        try:
            listed = [item for item in self.client.get("/nodes/{node}/storage/{storage}/content", node=node,
                                                       storage=self.storage, content="vztmpl") or []
                      if item.get("volid") == volid]
        except PveError as exc:
            return "could not look for a partial %s on the storage (%s): check with 'pvesm list %s'" % (
                volid, exc, self.storage)
        if not listed:
            return None
        try:
            self._delete(volid, node)
        except PveError as exc:
            return "the storage lists %s (%s of %d bytes) and removing it failed (%s): remove it with 'pvesm free %s'" % (
                volid, listed[0].get("size"), size, exc, volid)
        return "removed %s (%s of %d bytes) that the failed upload left on the storage" % (
            volid, listed[0].get("size"), size)
