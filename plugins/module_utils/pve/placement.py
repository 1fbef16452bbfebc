# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a new container goes in a cluster (``node: auto``).

One ``GET /cluster/resources`` gives every node's status, memory and CPU and
every storage's availability per node.  A node qualifies when it is online,
is among the candidates (when given), and has each storage the container
needs ``available``; of those the one with the most free memory wins, then
the least CPU load, then the name (so two runs on the same figures agree).

The figures are pvestatd's (pve-manager PVE/Service/pvestatd.pm
update_node_status, broadcast every 10 s): containers placed within the
same 10 s see the same figures.  A template on a storage that is not shared
(``local``) exists only where it was uploaded: with ``template`` given, each
remaining node is asked for it (``GET /nodes/{node}/storage/{storage}/content``)
and nodes without it drop out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveError


class PlacementError(PveError):
    """No node qualifies; the message says why each was left out."""

    kind = "placement"


def free_memory(entry):
    return int(entry.get("maxmem") or 0) - int(entry.get("mem") or 0)


def _has_volume(client, node, volid):
    storage = volid.split(":", 1)[0]
    try:
        content = client.get("/nodes/{node}/storage/{storage}/content", node=node, storage=storage,
                             content="vztmpl") or []
    except PveApiError as exc:
        if (exc.status or 0) < 500:
            raise
        return False
    return any(item.get("volid") == volid for item in content)


def choose_node(client, candidates=None, storages=(), template=None, resources=None):
    """(node, {node: why it was left out}) for a new container; PlacementError when none qualifies.

    ``candidates``: node names to choose from (None: every node); ``storages``: storage ids the container's
    volumes need; ``template``: the volume id it is created from; ``resources``: /cluster/resources when the
    caller read it already.
    """
    if resources is None:
        resources = client.get("/cluster/resources") or []
    nodes = dict((r["node"], r) for r in resources if r.get("type") == "node" and r.get("node"))
    available = set((r.get("node"), r.get("storage")) for r in resources
                    if r.get("type") == "storage" and r.get("status") == "available")
    shared = set(r.get("storage") for r in resources if r.get("type") == "storage" and r.get("shared"))
    if candidates:
        unknown = sorted(set(candidates) - set(nodes))
        if unknown:
            raise PlacementError("node_candidates names %s, which %s no node of the cluster (its nodes: %s)"
                                 % (", ".join(unknown), "is" if len(unknown) == 1 else "are",
                                    ", ".join(sorted(nodes))))
    left_out = {}
    fit = []
    for name in sorted(nodes):
        entry = nodes[name]
        if candidates and name not in candidates:
            continue
        if entry.get("status") != "online":
            left_out[name] = "offline"
            continue
        missing = [s for s in storages if (name, s) not in available]
        if missing:
            left_out[name] = "storage %s not available there" % ", ".join(missing)
            continue
        fit.append(entry)
    if template and ":" in template and template.split(":", 1)[0] not in shared and len(fit) > 0:
        keep = []
        for entry in fit:
            if _has_volume(client, entry["node"], template):
                keep.append(entry)
            else:
                left_out[entry["node"]] = "template %s is not on its %s storage" % (template, template.split(":")[0])
        fit = keep
    if not fit:
        raise PlacementError("no node can take the container: %s; nothing was changed"
                             % "; ".join("%s: %s" % item for item in sorted(left_out.items())))
    fit.sort(key=lambda e: (-free_memory(e), float(e.get("cpu") or 0), e["node"]))
    return fit[0]["node"], left_out
