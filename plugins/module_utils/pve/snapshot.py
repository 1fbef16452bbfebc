# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``lxc_snapshot``: a container's snapshots over the Proxmox VE API.

The container is found as ``lxc_container`` finds it (by vmid, or by a
hostname unique in the cluster).  Snapshots are listed oldest first without
PVE's pseudo entry ``current``; retention (``keep`` with ``prefix``) removes
the oldest snapshots whose name starts with the prefix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError, ContainerManager

STATES = ("present", "absent", "rollback")


class SnapshotError(ContainerError):
    """The snapshot operation cannot be done as asked; the message says why."""


def ordered(listing):
    """PVE's snapshot listing as a list oldest first (following ``parent`` links), without ``current``."""
    entries = dict((e["name"], e) for e in listing or [] if e.get("name") != "current")
    children = {}
    for entry in entries.values():
        children.setdefault(entry.get("parent"), []).append(entry["name"])
    out = []
    queue = sorted(children.get(None, []), key=lambda n: (entries[n].get("snaptime") or 0, n))
    while queue:
        name = queue.pop(0)
        out.append(name)
        queue = sorted(children.get(name, []), key=lambda n: (entries[n].get("snaptime") or 0, n)) + queue
    # anything unreachable (a parent that no longer exists) goes by time
    rest = sorted((n for n in entries if n not in out), key=lambda n: (entries[n].get("snaptime") or 0, n))
    return [_public(entries[n]) for n in out + rest]


def _public(entry):
    return {"name": entry["name"], "snaptime": entry.get("snaptime"), "description": entry.get("description", ""),
            "parent": entry.get("parent")}


def to_prune(names, prefix, keep, protect=None):
    """Names (oldest first) starting with ``prefix`` beyond the newest ``keep``; ``protect`` always stays."""
    if keep < 1:
        raise SnapshotError("keep must be at least 1, not %d" % keep)
    family = [n for n in names if n.startswith(prefix) and n != protect]
    room = keep - (1 if protect is not None and protect.startswith(prefix) else 0)
    return family[:max(len(family) - room, 0)]


class SnapshotManager:
    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep):
        self.params = params
        self.check_mode = check_mode
        self.ct = ContainerManager(params, check_mode=check_mode, client=client, sleep=sleep)
        self.client = self.ct.client

    def listing(self, node, vmid):
        return ordered(self.client.get("/nodes/{node}/lxc/{vmid}/snapshot", node=node, vmid=vmid))

    def run(self):
        params = self.params
        started = time.monotonic()
        state, name = params.get("state") or "present", params.get("name")
        if state not in STATES:
            raise SnapshotError("state must be one of %s" % ", ".join(STATES))
        if (params.get("keep") is None) != (params.get("prefix") is None):
            raise SnapshotError("keep and prefix go together: keep the newest <keep> snapshots named <prefix>...")
        if params.get("keep") is not None and state != "present":
            raise SnapshotError("keep and prefix apply with state present only")
        found = self.ct.find()
        if found is None:
            raise SnapshotError("no container %s in the cluster"
                                % (params.get("vmid") if params.get("vmid") is not None else repr(params.get("hostname"))))
        node, vmid = self.ct.node(found), int(found["vmid"])
        before = self.listing(node, vmid)
        names = [s["name"] for s in before]
        result = {"vmid": vmid, "node": node, "name": name, "deleted": []}
        ct = self.ct
        if state == "present":
            if name not in names:
                ct._act("created")  # pylint: disable=protected-access
                if not self.check_mode:
                    args = {"snapname": name}
                    if params.get("description"):
                        args["description"] = params["description"]
                    ct._wait(node, self.client.post("/nodes/{node}/lxc/{vmid}/snapshot", node=node, vmid=vmid,  # pylint: disable=protected-access
                                                    **args), "snapshot")
                names = names + [name]
            if params.get("keep") is not None:
                doomed = to_prune(names, params["prefix"], params["keep"], protect=name)
                for old in doomed:
                    ct._act("deleted %s" % old)  # pylint: disable=protected-access
                    if not self.check_mode:
                        ct._wait(node, self.client.delete("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",  # pylint: disable=protected-access
                                                          node=node, vmid=vmid, snapname=old), "delete " + old)
                result["deleted"] = doomed
        elif state == "absent":
            if name in names:
                ct._act("deleted")  # pylint: disable=protected-access
                if not self.check_mode:
                    ct._wait(node, self.client.delete("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", node=node,  # pylint: disable=protected-access
                                                      vmid=vmid, snapname=name), "delete")
                result["deleted"] = [name]
        else:
            if name not in names:
                raise SnapshotError("CT %d has no snapshot %r to roll back to; it has: %s"
                                    % (vmid, name, ", ".join(names) or "none"))
            # ZFS storages roll back to the newest snapshot only; Proxmox VE says so in the task's error
            result["newer"] = names[names.index(name) + 1:]
            ct._act("rolled back")  # pylint: disable=protected-access
            if not self.check_mode:
                args = {"snapname": name}
                if params.get("start"):
                    args["start"] = 1
                ct._wait(node, self.client.post("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",  # pylint: disable=protected-access
                                                node=node, vmid=vmid, **args), "rollback")
                if params.get("start"):
                    ct.actions.append("started")
        after = self.listing(node, vmid) if ct.changed and not self.check_mode else self._predicted(before, result)
        result["snapshots"] = after
        result["diff"] = {"before": {"snapshots": [s["name"] for s in before]},
                          "after": {"snapshots": [s["name"] for s in after]}}
        if state == "rollback" or (ct.changed and not self.check_mode):
            result["status"] = ct.status_of(node, vmid) if not self.check_mode else found.get("status")
        else:
            result["status"] = found.get("status")
        return ct._finish(result, started)  # pylint: disable=protected-access

    def _predicted(self, before, result):
        """The listing after a check-mode run."""
        gone = set(result["deleted"])
        after = [s for s in before if s["name"] not in gone]
        if self.params.get("state") == "present" and result["name"] not in [s["name"] for s in before]:
            after.append({"name": result["name"], "snaptime": None, "description": self.params.get("description") or "",
                          "parent": after[-1]["name"] if after else None})
        return after
