# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's guests with live names, status and template flags.

``GET /cluster/resources`` lists every guest of the cluster, but on a real
node only its membership is live: ``id``, ``vmid``, ``node`` and ``type``
come from the cluster's vmlist (pmxcfs), and ``lock``, ``tags`` and ``pool``
are read when asked (pve-manager PVE/API2/Cluster.pm ``resources``).  Its
``name``, ``status``, ``template`` and usage come from pvestatd's RRD data
(PVE/API2Tools.pm ``extract_vm_stats``), broadcast about every 10 s: a new
container shows ``status: unknown`` and no ``name`` until then, a renamed
one its old name, a started one ``stopped``, a fresh template
``template: 0``.  Deciding on those fields creates duplicates and misses
containers.

``GET /nodes/{node}/lxc`` is live (pve-container PVE/LXC.pm ``vmstatus``:
``name`` is the config's hostname, ``status`` the LXC state, ``template``
and ``lock`` from the config).  ``live_resources`` reads the cluster list
once for membership and, per node that holds containers, the node's list
for those fields.  A node that cannot answer (offline, HTTP 595) keeps its
guests as the cluster list has them, with ``live: False``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import is_storage_volume, volume_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveConnectionError

# what /nodes/{node}/lxc answers live over the lagging fields of /cluster/resources: LIVE_FIELDS replace the
# cluster list's (vmstatus leaves template, lock and tags out when unset), USAGE_FIELDS where the node gives them
# (its ``cpus`` is the cluster list's ``maxcpu``)
LIVE_FIELDS = ("name", "status", "template", "lock", "tags")
USAGE_FIELDS = ("uptime", "maxmem", "mem", "maxdisk", "disk", "cpu")


def live_resources(client, resources=None, nodes=None):
    """``/cluster/resources?type=vm`` entries with LIVE_FIELDS from each node's ``/nodes/{node}/lxc``.

    ``resources``: the cluster list when the caller has it; ``nodes``: read only these nodes' lists.
    Each container entry gets ``live`` (True when its node answered).  Other guests are left as listed.
    """
    if resources is None:
        resources = client.get("/cluster/resources", type="vm") or []
    wanted = sorted(set(r.get("node") for r in resources if r.get("type") == "lxc" and r.get("node")))
    if nodes is not None:
        wanted = [n for n in wanted if n in set(nodes)]
    live = {}
    for node in wanted:
        try:
            listing = client.get("/nodes/{node}/lxc", node=node) or []
        except PveConnectionError:
            continue  # unreachable: its guests keep what the cluster list says
        except PveApiError as exc:
            if (exc.status or 0) < 500:
                raise
            continue  # offline (595 "no route to host"): its guests keep what the cluster list says
        live[node] = dict((int(entry["vmid"]), entry) for entry in listing if "vmid" in entry)
    out = []
    for res in resources:
        if res.get("type") != "lxc":
            out.append(res)
            continue
        node_list = live.get(res.get("node"))
        if node_list is None:
            out.append(dict(res, live=False))
            continue
        now = node_list.get(int(res["vmid"]))
        if now is None:
            continue  # removed since the cluster list was read
        out.append(_live_entry(res, now))
    return out


def _live_entry(res, now):
    """A cluster list entry ``res`` with the live fields of the node's entry ``now``."""
    entry = dict((k, v) for k, v in res.items() if k not in LIVE_FIELDS)
    entry.update((k, now[k]) for k in LIVE_FIELDS + USAGE_FIELDS if k in now)
    entry["template"] = int(now.get("template") or 0)
    if "cpus" in now:
        entry["maxcpu"] = now["cpus"]
    entry["live"] = True
    return entry


def node_entry(client, node, vmid):
    """Container ``vmid`` from ``node``'s live list alone (one call), shaped as live_resources' entries; None
    when the node does not list it or does not answer (then the cluster list must say where it is)."""
    try:
        listing = client.get("/nodes/{node}/lxc", node=node) or []
    except PveConnectionError:
        return None
    except PveApiError as exc:
        if (exc.status or 0) < 500:
            raise
        return None
    for now in listing:
        if "vmid" in now and int(now["vmid"]) == int(vmid):
            return _live_entry({"id": "lxc/%d" % int(vmid), "vmid": int(vmid), "node": node, "type": "lxc"}, now)
    return None


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
    return [snapshot_entry(entries[n]) for n in out + rest]


def snapshot_entry(entry):
    """One snapshot as the modules return it: name, snaptime, description, parent."""
    return {"name": entry["name"], "snaptime": entry.get("snaptime"), "description": entry.get("description", ""),
            "parent": entry.get("parent")}


def snapshot_volumes(client, node, vmid, name):
    """{key: volume id} of the storage volumes (rootfs, mpN) that snapshot ``name`` of CT ``vmid`` references: GET
    .../snapshot/{snapname}/config (pve-container PVE/API2/LXC/Snapshot.pm get_snapshot_config), read as
    pve-guest-common AbstractConfig is_volume_in_use_by_snapshots does.  Bind mounts and devices are left out."""
    config = client.get("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", node=node, vmid=vmid,
                        snapname=name) or {}
    out = {}
    for key, value in config.items():
        if key != "rootfs" and not re.match(r"^mp\d+$", key):
            continue
        try:
            volume = volume_of(key, value)
        except ValueError:
            continue
        if is_storage_volume(volume):
            out[key] = volume
    return out
