# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of lxc_container_info: the cluster's containers with their status and config.

``GET /cluster/resources?type=vm`` lists every guest of the cluster with
node, tags and usage, and each node's ``GET /nodes/{node}/lxc`` gives the
live name, status and template flag (listing.py: the cluster list lags on a
real node); the filters apply to that list, and only the matching
containers' configs are fetched (one call each).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import origin
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import masked
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import live_resources, ordered, snapshot_volumes

_TAG_SPLIT = re.compile(r"[;,\s]+")
# fields of a /cluster/resources entry copied into the result when present
RESOURCE_FIELDS = ("lock", "pool", "uptime", "maxmem", "mem", "maxdisk", "disk", "maxcpu", "cpu", "hastate")


def split_tags(value):
    """A set of tags from PVE's text (``;``, ``,`` or space separated) or a list of such texts."""
    if value is None:
        return set()
    if isinstance(value, (list, tuple, set)):
        out = set()
        for item in value:
            out |= split_tags(item)
        return out
    return set(t for t in _TAG_SPLIT.split(str(value)) if t)


class ContainerQuery:
    """Filters for containers; every given one must match."""

    def __init__(self, node=None, vmid=None, hostname=None, tags=None):
        self.node = node
        self.vmid = int(vmid) if vmid is not None else None
        self.hostname = hostname
        self.tags = split_tags(tags)

    def matches_resource(self, res, tags_listed=True):
        """Does a /cluster/resources entry pass the filters that do not need its config?

        ``tags_listed``: the listing reports tags (PVE leaves the field out of
        untagged guests, and older versions out of all).
        """
        if res.get("type") != "lxc":
            return False
        if self.node and res.get("node") != self.node:
            return False
        if self.vmid is not None and int(res.get("vmid", -1)) != self.vmid:
            return False
        if self.hostname and res.get("name") != self.hostname:
            return False
        if self.tags and tags_listed and not self.tags <= split_tags(res.get("tags")):
            return False
        return True


def _entry(res):
    entry = {"vmid": int(res["vmid"]), "node": res.get("node"), "hostname": res.get("name"),
             "status": res.get("status"), "template": bool(int(res.get("template") or 0)),
             "tags": sorted(split_tags(res.get("tags")))}
    for field in RESOURCE_FIELDS:
        if res.get(field) not in (None, ""):
            entry[field] = res[field]
    return entry


def _config(client, node, vmid):
    """The container's config, or None when it was deleted since the listing."""
    try:
        return client.get("/nodes/{node}/lxc/{vmid}/config", node=node, vmid=vmid)
    except PveApiError as exc:
        if "does not exist" in exc.message:
            return None
        raise


def interfaces_of(answer):
    """``GET /nodes/{node}/lxc/{vmid}/interfaces`` (pve-container PVE::LXC::get_interfaces, ``ip --json a`` in the
    container's network) as ``[{"name", "hwaddr", "inet": [...], "inet6": [...]}]``, addresses as
    ``address/prefix``; None (not running) gives ``[]``."""
    out = []
    for item in answer or []:
        entry = {"name": item.get("name"), "hwaddr": item.get("hardware-address") or item.get("hwaddr"),
                 "inet": [], "inet6": []}
        listed = item.get("ip-addresses")
        if listed is None:  # before the ip-addresses list: one address per family
            listed = [{"ip-address-type": family, "ip-address": item[family].partition("/")[0],
                       "prefix": item[family].partition("/")[2]} for family in ("inet", "inet6") if item.get(family)]
        for address in listed:
            family = address.get("ip-address-type")
            if family in ("inet", "inet6") and address.get("ip-address"):
                text = str(address["ip-address"])
                if address.get("prefix") not in (None, ""):
                    text += "/%s" % address["prefix"]
                entry[family].append(text)
        out.append(entry)
    return out


def cluster_nodes(resources):
    """[{"node", "status"}] of the cluster's nodes in a /cluster/resources answer (``online``, ``offline``,
    ``unknown``), by name."""
    return sorted(({"node": r["node"], "status": r.get("status") or "unknown"} for r in resources
                   if r.get("type") == "node" and r.get("node")), key=lambda n: n["node"])


def list_containers(client, query=None, with_config=True, with_interfaces=False, with_snapshots=False,
                    resources=None):
    """The containers matching ``query`` (a ContainerQuery), sorted by vmid.

    Each is a dict: vmid, node, hostname, status, template, tags (sorted), the
    usage fields PVE reported (RESOURCE_FIELDS), with ``with_config`` its
    ``config`` (secrets masked), and with ``with_interfaces`` its network
    ``interfaces`` as the running container has them (``interfaces_of``; one
    call per running match, none for a stopped one), and with ``with_snapshots``
    its ``snapshots`` oldest first, without PVE's ``current`` entry, each with the
    storage ``volumes`` it references (one call per snapshot).  Each also has
    ``node_status``, its node's state in the cluster list; a container whose
    node does not answer (offline) is listed as the cluster list has it, without
    config, interfaces or snapshots.  ``resources``: the cluster list (every
    type) when the caller read it already.  Raises PveError from the client.
    """
    query = query or ContainerQuery()
    if resources is None:
        resources = client.get("/cluster/resources") or []
    states = dict((n["node"], n["status"]) for n in cluster_nodes(resources))
    resources = [r for r in resources if r.get("type") in ("lxc", "qemu")]
    tags_listed = any("tags" in res for res in resources)
    nodes = None if query.node is None else [query.node]
    resources = live_resources(client, resources, nodes=nodes)
    found = []
    for res in resources:
        if not query.matches_resource(res, tags_listed):
            continue
        entry = _entry(res)
        entry["node_status"] = states.get(entry["node"], "unknown")
        if res.get("live") is False:  # its node did not answer: nothing more can be read there
            if entry["node_status"] == "online":
                entry["node_status"] = "unreachable"
            if not query.tags or tags_listed:
                found.append(entry)
            continue
        config = None
        if with_config or (query.tags and not tags_listed):
            config = _config(client, entry["node"], entry["vmid"])
            if config is None:
                continue
            if not tags_listed:
                entry["tags"] = sorted(split_tags(config.get("tags")))
                if not query.tags <= set(entry["tags"]):
                    continue
        if with_config:
            entry["config"] = masked(config)
            entry["origin"] = origin.parse(config.get("description"))
        if with_interfaces:
            entry["interfaces"] = []
            if entry["status"] == "running":
                entry["interfaces"] = interfaces_of(client.get("/nodes/{node}/lxc/{vmid}/interfaces",
                                                               node=entry["node"], vmid=entry["vmid"]))
        if with_snapshots:
            listed = client.get("/nodes/{node}/lxc/{vmid}/snapshot", node=entry["node"], vmid=entry["vmid"]) or []
            entry["snapshots"] = ordered(listed)
            for snap in entry["snapshots"]:
                snap["volumes"] = snapshot_volumes(client, entry["node"], entry["vmid"], snap["name"])
        found.append(entry)
    return sorted(found, key=lambda e: e["vmid"])
