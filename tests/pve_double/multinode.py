"""The double as a cluster: several nodes in one process, one ``Backend`` each.

Each node has its own LXC path, its own ``local`` dir storage and its own
``local-zfs`` (a dataset root of its own on the test bed's pool), its own
task list (UPIDs name the node) and its own Proxmox VE version (a cluster
mid-upgrade: one node in ``8`` mode while the others run ``9.1``).  The
cluster's state lives once: the vmlist (a vmid is unique cluster-wide,
PVE::Cluster::check_vmid_unused), pools (user.cfg), HA resources
(ha/resources.cfg), one config lock (pmxcfs), and a ``shared`` dir storage
every node sees.

The API host (the first node) answers ``/version``, ``/nodes``,
``/cluster/*``; a request for ``/nodes/X/...`` is proxied to node X and
handled there, with X's schema (pve-http-server PVE/APIServer/AnyEvent.pm:
the proxying node only routes, the node that has the handler verifies the
parameters).  A node taken offline (``Cluster.set_online(name, False)``) is
``offline`` in ``/nodes`` and ``/cluster/status``, its guests and storages
``unknown`` in ``/cluster/resources``, and a request proxied to it fails as
pveproxy's proxy fails: HTTP 595.
"""

from .schema import ApiError

# pve-http-server PVE/APIServer/AnyEvent.pm proxy_request: the AnyEvent::HTTP error of the connection, as status 595
OFFLINE = "Errors during connection establishment, proxy handshake: No route to host"


class Cluster:
    def __init__(self, backends, name="lxcri"):
        """``backends``: {node name: Backend}, the API host first."""
        self.backends = dict(backends)
        self.host = next(iter(self.backends))
        self.name = name
        self.offline = set()
        first = self.backends[self.host]
        self.lock = first.lock
        for backend in self.backends.values():
            backend.cluster = self
            backend.lock = self.lock  # pmxcfs: one lock for the cluster's config files
            backend.pools = first.pools
            backend.ha_resources = first.ha_resources
            backend.nextid_answers = first.nextid_answers
            backend.vmid_range = first.vmid_range

    # -- membership ---------------------------------------------------------------------
    def set_online(self, node, online=True):
        if node not in self.backends:
            raise KeyError(node)
        if node == self.host and not online:
            raise ValueError("the API host itself cannot go offline: the test talks to it")
        (self.offline.discard if online else self.offline.add)(node)

    def online(self, node):
        return node in self.backends and node not in self.offline

    def owner(self, vmid):
        """The node whose config has ``vmid`` (pmxcfs' vmlist), or None."""
        for name, backend in self.backends.items():
            if int(vmid) in backend.containers:
                return name
        return None

    def backend_for(self, node):
        """The Backend a request for ``/nodes/{node}/...`` reaches, or the error the API host answers."""
        backend = self.backends.get(node)
        if backend is None:
            # PVE::Cluster::remote_node_ip: a name that is no cluster member
            raise ApiError(500, "hostname lookup '%s' failed - failed to get address info for: %s" % (node, node))
        if node in self.offline:
            raise ApiError(595, OFFLINE)
        return backend

    # -- cluster-wide endpoints ---------------------------------------------------------
    def nodes(self, params):
        """pve-manager PVE/API2/Nodes.pm index: every member; an offline one without its usage figures."""
        out = []
        for name, backend in self.backends.items():
            entry = backend.nodes(params)[0]
            if name in self.offline:
                entry = {"node": name, "status": "offline", "type": "node", "id": "node/" + name}
            out.append(entry)
        return out

    def status(self, params):
        """pve-manager PVE/API2/ClusterConfig.pm / Cluster.pm ``status``: the cluster, then each node."""
        out = [{"type": "cluster", "id": "cluster", "name": self.name, "nodes": len(self.backends), "quorate": 1,
                "version": len(self.backends)}]
        for number, name in enumerate(self.backends, 1):
            out.append({"type": "node", "id": "node/" + name, "name": name, "nodeid": number,
                        "online": 0 if name in self.offline else 1, "local": 1 if name == self.host else 0,
                        "ip": "127.0.0.%d" % number, "level": ""})
        return out

    def resources(self, params):
        """PVE/API2/Cluster.pm resources over every node: an offline node's guests keep their place in the
        vmlist with ``status: unknown`` (no fresh pvestatd data), its storages too."""
        out = []
        for name, backend in self.backends.items():
            entries = backend.resources({})
            if name in self.offline:
                for entry in entries:
                    entry["status"] = "offline" if entry["type"] == "node" else "unknown"
                    if entry["type"] == "node":
                        for key in ("maxcpu", "maxmem", "mem", "cpu", "uptime", "disk", "maxdisk"):
                            entry.pop(key, None)
            out.extend(entries)
        order = {"node": 0, "lxc": 1, "storage": 2}
        out.sort(key=lambda e: (order.get(e["type"], 3), e.get("vmid", 0), e["id"]))
        kind = params.get("type")
        return [e for e in out if kind in (None, e["type"], "vm" if e["type"] == "lxc" else None)]

    def nextid(self, params):
        return self.backends[self.host].nextid(params)

    def ha_resources(self, params):
        """pve-ha-manager PVE/API2/HA/Resources.pm index: ``ct:<vmid>`` for each HA-managed container."""
        with self.lock:
            managed = sorted(self.backends[self.host].ha_resources)
        return [{"sid": "ct:%d" % vmid, "type": "ct", "state": "started", "max_restart": 1, "max_relocate": 1,
                 "failback": 1} for vmid in managed]
