# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``lxc_snapshot``: a container's snapshots over the Proxmox VE API.

The container is found as ``lxc_container`` finds it (by vmid, or by a
hostname unique in the cluster).  Snapshots are listed oldest first without
PVE's pseudo entry ``current``; retention (``keep`` with ``prefix``) removes
the oldest snapshots whose name starts with the prefix.

A rollback of a running container stops it first (pve-container's
``__snapshot_rollback_vm_stop``); the rollback endpoint's ``start`` parameter
(pve-container 4.3, Proxmox VE 7.3) starts it again in the same task.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import ordered, snapshot_entry
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import PveSession
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import is_storage_volume, volume_of

STATES = ("present", "absent", "rollback")


def snapshot_argument_spec():
    """A new dict of lxc_snapshot's options but the connection and check_mode_plan (the module adds those)."""
    return dict(
        vmid=dict(type="int"),
        hostname=dict(type="str"),
        node=dict(type="str"),
        name=dict(type="str", required=True),
        description=dict(type="str"),
        state=dict(type="str", default="present", choices=list(STATES)),
        start=dict(type="bool", default=False),
        keep=dict(type="int"),
        prefix=dict(type="str"),
    )


DEFAULTS = defaults_of(snapshot_argument_spec(), leave_out=("name",))
# pve-common's pve-configid (the format of pve-snapshot-name), at most 40 characters
SNAPNAME = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)
SNAPNAME_MAX = 40
RESERVED = ("current", "vzdump")
# the release whose POST .../snapshot/{snapname}/rollback takes ``start``
ROLLBACK_START = (7, 3)


class SnapshotError(PveError):
    """The snapshot operation cannot be done as asked; the message says why."""

    kind = "snapshot"


def check_name(name, what="name"):
    """Raise SnapshotError unless ``name`` is a snapshot name Proxmox VE accepts."""
    if not name or not SNAPNAME.match(name) or len(name) > SNAPNAME_MAX:
        raise SnapshotError("%s %r is not a Proxmox VE snapshot name: a letter, then at least one letter, digit, "
                            "'_' or '-'; at most %d characters" % (what, name, SNAPNAME_MAX))
    if name.lower() in RESERVED:
        raise SnapshotError("%s %r is reserved by Proxmox VE" % (what, name))


def to_prune(names, prefix, keep, protect=None):
    """Names (oldest first) starting with ``prefix`` beyond the newest ``keep``; ``protect`` always stays."""
    if keep < 1:
        raise SnapshotError("keep must be at least 1, not %d" % keep)
    if not prefix:
        raise SnapshotError("prefix must not be empty: keep would then delete snapshots of every name")
    family = [n for n in names if n.startswith(prefix) and n != protect]
    room = keep - (1 if protect is not None and protect.startswith(prefix) else 0)
    return family[:max(len(family) - room, 0)]


def predicted(before, state, name, description=None, deleted=()):
    """The listing (oldest first) after creating ``name`` (state present) and deleting ``deleted``."""
    gone = set(deleted)
    after = [s for s in before if s["name"] not in gone]
    if state == "present" and name not in [s["name"] for s in before]:
        after.append({"name": name, "snaptime": None, "description": description or "",
                      "parent": after[-1]["name"] if after else None})
    return after


def diff_of(before, after):
    """Ansible's diff: the snapshot names (oldest first) before and after."""
    return {"before": {"snapshots": [s["name"] for s in before]}, "after": {"snapshots": [s["name"] for s in after]}}


def rollback_plan(features, start):
    """(extra rollback arguments, start with a separate call afterwards) for a node with ``features``."""
    if not start:
        return {}, False
    if features.at_least(*ROLLBACK_START):
        return {"start": 1}, False
    return {}, True


class SnapshotManager:
    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep):
        params = with_defaults(params, DEFAULTS)
        self.params = params
        self.check_mode = check_mode
        self.session = PveSession(params, check_mode=check_mode, client=client, sleep=sleep)
        self.client = self.session.client

    def listing(self, node, vmid, found=None):
        """The snapshots oldest first; in check mode as earlier tasks of the run left them (checkplan.py)."""
        entry = self.session.check_plan.lookup(vmid, (found or {}).get("name") if vmid is None else None)
        if found is not None and found.get("phantom"):
            entry = entry or {}
            return [snapshot_entry({"name": n}) for n in entry.get("snapshots") or []]
        listing = ordered(self.client.get("/nodes/{node}/lxc/{vmid}/snapshot", node=node, vmid=vmid))
        if entry is not None and entry.get("snapshots") is not None:
            known = dict((s["name"], s) for s in listing)
            listing = [known.get(n) or snapshot_entry({"name": n}) for n in entry["snapshots"]]
        return listing

    def zfs_volumes(self, node, vmid):
        """The container's volumes (rootfs, mpN) on zfspool storages, which roll back to the newest snapshot only."""
        config = self.session.config_of(node, vmid)
        volumes = [volume_of(k, config[k]) or "" for k in sorted(config) if k == "rootfs" or re.match(r"^mp\d+$", k)]
        storages = dict((s.get("storage"), s.get("type")) for s in
                        self.client.get("/nodes/{node}/storage", node=node) or [])
        return [volume for volume in volumes if storages.get(volume.partition(":")[0]) == "zfspool"]

    def refuse_path_mounts(self, node, vmid):
        """pve-container PVE/LXC/Config.pm has_feature asks every mount point for the snapshot feature, and
        pve-storage PVE/Storage.pm volume_has_feature has none for a path (a bind or device mount): Proxmox answers
        "snapshot feature is not available".  Said before the call, with the mount points to blame (check mode too)."""
        config = self.session.config_of(node, vmid)
        paths = ["%s (%s)" % (key, volume_of(key, config[key])) for key in sorted(config)
                 if re.match(r"^mp\d+$", key) and not is_storage_volume(volume_of(key, config[key]))]
        if paths:
            raise SnapshotError("cannot snapshot CT %d: Proxmox VE snapshots no container with a bind or device mount "
                                "point, and it has %s. Remove the mount point, or snapshot the data where it lives "
                                "(zfs_snapshot for a dataset); nothing was changed" % (vmid, ", ".join(paths)))

    def validate(self):
        params = self.params
        state = params["state"]
        check_name(params.get("name"))
        if (params.get("keep") is None) != (params.get("prefix") is None):
            raise SnapshotError("keep and prefix go together: keep the newest <keep> snapshots named <prefix>...")
        if params.get("keep") is not None:
            if state != "present":
                raise SnapshotError("keep and prefix apply with state present only")
            to_prune([], params["prefix"], params["keep"])  # the same checks, before anything is read
        if params.get("start") and state != "rollback":
            raise SnapshotError("start applies with state rollback only")
        return state

    def _create(self, node, vmid, name):
        args = {"snapname": name}
        if self.params.get("description"):
            args["description"] = self.params["description"]
        self.session.task(node, "snapshot " + name, lambda: self.client.post(
            "/nodes/{node}/lxc/{vmid}/snapshot", node=node, vmid=vmid, **args))

    def _delete(self, node, vmid, name):
        self.session.task(node, "delete " + name, lambda: self.client.delete(
            "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", node=node, vmid=vmid, snapname=name))

    def run(self):
        params = self.params
        started = time.monotonic()
        state = self.validate()
        name = params["name"]
        session = self.session
        found = session.find()
        if found is None:
            which = params.get("vmid") if params.get("vmid") is not None else repr(params.get("hostname"))
            raise SnapshotError("no container %s in the cluster" % which)
        node = session.node(found)
        vmid = int(found["vmid"]) if found.get("vmid") is not None else None
        before = self.listing(node, vmid, found)
        names = [s["name"] for s in before]
        result = {"vmid": vmid, "node": node, "name": name, "deleted": []}
        status = found.get("status")
        if state == "present":
            if name not in names and not found.get("phantom"):
                self.refuse_path_mounts(node, vmid)
            if name not in names:
                session.perform("created %s" % name, functools.partial(self._create, node, vmid, name))
                names = names + [name]
            if params.get("keep") is not None:
                doomed = to_prune(names, params["prefix"], params["keep"], protect=name)
                for old in doomed:
                    session.perform("deleted %s" % old, functools.partial(self._delete, node, vmid, old))
                result["deleted"] = doomed
        elif state == "absent":
            if name in names:
                session.perform("deleted %s" % name, functools.partial(self._delete, node, vmid, name))
                result["deleted"] = [name]
        else:
            if name not in names:
                raise SnapshotError("CT %d has no snapshot %r to roll back to; it has: %s"
                                    % (vmid, name, ", ".join(names) or "none"))
            result["newer"] = names[names.index(name) + 1:]
            if result["newer"] and not found.get("phantom"):
                # pve-storage's ZFSPoolPlugin::volume_rollback_is_possible refuses in the worker; say it before
                # (and in check mode, which would otherwise predict a rollback the real run cannot do)
                blocked = self.zfs_volumes(node, vmid)
                if blocked:
                    raise SnapshotError(
                        "can't rollback CT %d to %r: it is not the most recent snapshot on %s (ZFS rolls back to "
                        "the newest snapshot only; newer: %s). Delete the newer snapshots first (state: absent), "
                        "or roll back to %r; nothing was changed"
                        % (vmid, name, ", ".join(blocked), ", ".join(result["newer"]), names[-1]))
            status = self._rollback(node, vmid, name, status)
        after = self.listing(node, vmid) if session.changed and not self.check_mode else \
            predicted(before, state, name, params.get("description"), result["deleted"])
        if session.changed and not self.check_mode:
            status = session.status_of(node, vmid)
        session.check_plan.record(vmid, found.get("name"), node=node, status=status, created=bool(found.get("phantom")),
                                  snapshots=[s["name"] for s in after])
        result.update(snapshots=after, diff=diff_of(before, after), status=status)
        return session.finish(result, started)

    def _rollback(self, node, vmid, name, status):
        """Roll back (Proxmox VE stops a running container first); the status expected afterwards."""
        session = self.session
        start = bool(self.params.get("start"))
        if status == "running":
            session.actions.append("stopped (rollback stops a running container)")
        args, start_after = rollback_plan(session.features(node), start) if start else ({}, False)
        session.perform("rolled back to %s" % name, lambda: session.task(node, "rollback " + name, lambda: self.client.post(
            "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", node=node, vmid=vmid, snapname=name, **args)))
        if start_after:
            ContainerManager(self.params, session=session).start(node, vmid)
        elif start:
            session.actions.append("started")
        return "running" if start else "stopped"
