# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``lxc_volume``: a container's volume handed to another container of the node, over the API.

``POST /nodes/{node}/lxc/{vmid}/move_volume`` with ``target-vmid`` (pve-container PVE/API2/LXC.pm move_volume,
``$volume_reassignfn``) renames the volume to the target's next free disk name (``subvol-<target>-disk-<n>``;
on ZFS a ``zfs rename``, which keeps its snapshots and data), drops the key from the source's config and
writes it into the target's (a running target gets it as a pending change).

Proxmox VE refuses, and so does this module before any change, naming the reason: a volume that a snapshot of
the source references (delete those snapshots first), a bind mount or device, a mount point of a running
source, a target key in use, a locked or template container, a target on another node.  Idempotent: a volume
that is no longer in the source while the target has the key is reported as moved already.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import is_storage_volume, volume_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import snapshot_volumes
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import PveSession

KEY = re.compile(r"^(rootfs|mp\d+|unused\d+)$")


def volume_argument_spec():
    """A new dict of lxc_volume's options but the connection and check_mode_plan (the module adds those)."""
    return dict(
        vmid=dict(type="int"),
        hostname=dict(type="str"),
        node=dict(type="str"),
        volume=dict(type="str", required=True),
        target_vmid=dict(type="int", required=True),
        target_volume=dict(type="str"),
    )


DEFAULTS = defaults_of(volume_argument_spec(), leave_out=("volume", "target_vmid"))


class VolumeError(PveError):
    """The volume cannot be moved as asked; the message says why."""

    kind = "volume"


class VolumeManager:
    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep):
        self.params = with_defaults(params, DEFAULTS)
        self.check_mode = check_mode
        self.session = PveSession(self.params, check_mode=check_mode, client=client, sleep=sleep)
        self.client = self.session.client

    def validate(self):
        params = self.params
        key = params["volume"]
        target_key = params.get("target_volume") or key
        for what, value in (("volume", key), ("target_volume", target_key)):
            if not KEY.match(value or ""):
                raise VolumeError("%s %r is not a volume key of a container (rootfs, mp0, mp1, ..., unused0, ...)"
                                  % (what, value))
        if target_key == "rootfs":
            raise VolumeError("target_volume rootfs: a container's root volume cannot be replaced; move the volume "
                              "to a mount point (mpN) or unusedN")
        return key, target_key

    def snapshots_using(self, node, vmid, volume):
        """The source's snapshots whose config references ``volume`` (AbstractConfig is_volume_in_use_by_snapshots)."""
        out = []
        for snap in self.client.get("/nodes/{node}/lxc/{vmid}/snapshot", node=node, vmid=vmid) or []:
            name = snap.get("name")
            if name and name != "current" and volume in snapshot_volumes(self.client, node, vmid, name).values():
                out.append(name)
        return out

    def run(self):
        params = self.params
        started = time.monotonic()
        key, target_key = self.validate()
        session = self.session
        found = session.find()
        if found is None:
            which = params.get("vmid") if params.get("vmid") is not None else repr(params.get("hostname"))
            raise VolumeError("no container %s in the cluster" % which)
        node = session.node(found)
        vmid = int(found["vmid"]) if found.get("vmid") is not None else None
        target_vmid = int(params["target_vmid"])
        target = [r for r in session.resources() if r.get("type") == "lxc" and int(r["vmid"]) == target_vmid]
        planned = session.check_plan.lookup(target_vmid)
        if self.check_mode and (found.get("phantom") or (planned or {}).get("created")):
            # a container an earlier task of this check run creates: nothing to read, the move is predicted
            session.act("moved %s of CT %s to %s of CT %d" % (key, vmid, target_key, target_vmid))
            result = {"vmid": vmid, "node": node, "volume": key, "target_vmid": target_vmid,
                      "target_volume": target_key, "source_volid": None, "target_volid": None, "diff": {}}
            return session.finish(result, started)
        if not target:
            raise VolumeError("no container %d in the cluster to move %s of CT %d to" % (target_vmid, key, vmid))
        if target[0].get("node") != node:
            raise VolumeError("CT %d is on node %s and CT %d on %s: Proxmox VE moves a volume between containers of "
                              "one node; migrate one of them first" % (vmid, node, target_vmid, target[0].get("node")))
        source_config = session.config_of(node, vmid)
        target_config = source_config if target_vmid == vmid else session.config_of(node, target_vmid)
        result = {"vmid": vmid, "node": node, "volume": key, "target_vmid": target_vmid, "target_volume": target_key}
        before = {"source": {key: source_config.get(key)}, "target": {target_key: target_config.get(target_key)}}
        if key not in source_config:
            if target_key in target_config:
                # moved already (an earlier run): nothing to do
                result.update(source_volid=None, target_volid=volume_of(target_key, target_config[target_key]),
                              diff={"before": before, "after": before})
                return session.finish(result, started)
            raise VolumeError("CT %d has no %s, and CT %d no %s: nothing to move" % (vmid, key, target_vmid, target_key))
        if target_key in target_config:
            raise VolumeError("CT %d has %s already (%s): Proxmox VE does not replace a volume; choose another "
                              "target_volume; nothing was changed" % (target_vmid, target_key, target_config[target_key]))
        volume = volume_of(key, source_config[key])
        self._check(node, vmid, key, volume, found, source_config, target_config, target_vmid)
        value = volume if target_key.startswith("unused") else source_config[key]
        session.perform("moved %s of CT %d to %s of CT %d" % (key, vmid, target_key, target_vmid),
                        lambda: session.task(node, "move " + key, lambda: self.client.post(
                            "/nodes/{node}/lxc/{vmid}/move_volume", node=node, vmid=vmid, volume=key,
                            **{"target-vmid": target_vmid, "target-volume": target_key,
                               "digest": source_config.get("digest"),
                               "target-digest": target_config.get("digest")})))
        if self.check_mode:
            after_value = value  # the new name is the target's next free disk name, known once moved
        else:
            moved = session.config_of(node, target_vmid)
            after_value = moved.get(target_key)
            if after_value is None:  # a running target keeps it as a pending change
                pending = self.client.get("/nodes/{node}/lxc/{vmid}/pending", node=node, vmid=target_vmid) or []
                after_value = next((item.get("pending") for item in pending if item.get("key") == target_key), None)
                if after_value is not None:
                    session.note("%s of CT %d waits for its next start (pending)" % (target_key, target_vmid))
        after = {"source": {key: None}, "target": {target_key: after_value}}
        result.update(source_volid=volume, target_volid=None if self.check_mode else volume_of(target_key, after_value),
                      diff={"before": before, "after": after})
        return session.finish(result, started)

    def _check(self, node, vmid, key, volume, found, source_config, target_config, target_vmid):
        """What Proxmox VE's move_volume refuses, said before any change (and in check mode)."""
        for which, config, ident in (("source", source_config, vmid), ("target", target_config, target_vmid)):
            if config.get("lock"):
                raise VolumeError("CT %d (the %s) is locked (%s); nothing was changed" % (ident, which, config["lock"]))
            if str(config.get("template")) == "1":
                raise VolumeError("CT %d (the %s) is a template: Proxmox VE moves no volume from or to a template"
                                  % (ident, which))
        if not is_storage_volume(volume):
            raise VolumeError("%s of CT %d is %s, a bind mount or device: only a storage volume can move to another "
                              "container" % (key, vmid, volume))
        if (key == "rootfs" or key.startswith("mp")) and self.session.status_of(node, vmid) == "running":
            raise VolumeError("CT %d is running: Proxmox VE moves a volume in use only from a stopped container; "
                              "stop it first; nothing was changed" % vmid)
        using = self.snapshots_using(node, vmid, volume)
        if using:
            raise VolumeError("%s of CT %d (%s) is in its snapshots %s: Proxmox VE cannot move a volume a snapshot "
                              "uses to another container; delete those snapshots first; nothing was changed"
                              % (key, vmid, volume, ", ".join(using)))
