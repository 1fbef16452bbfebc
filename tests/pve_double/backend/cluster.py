"""Cluster and node endpoints: version, nodes, node status, next free id, cluster resources."""

import os

from ..schema import ApiError

VERSIONS = {"9.1": ("9.1.1", "9.1"), "8": ("8.4.1", "8.4")}


def _meminfo(keys):
    """kB values of /proc/meminfo (node status reports the host's memory)."""
    with open("/proc/meminfo") as handle:
        pairs = (line.split(":", 1) for line in handle)
        return dict((k, int(v.split()[0])) for k, v in pairs if k in keys)


class ClusterEndpoints:
    """GET /version, /nodes, /nodes/{node}/status, /cluster/nextid and /cluster/resources."""

    def version(self, params):
        version, release = VERSIONS["9.1" if self.mode.startswith("9") else "8"]
        return {"version": version, "release": release, "repoid": "1a2b3c4d"}

    def nodes(self, params):
        return [{"node": self.node, "status": "online", "type": "node", "id": "node/" + self.node,
                 "maxcpu": os.cpu_count() or 1, "level": ""}]

    def node_status(self, params):
        self._node(params["node"])
        uname, cpus, root = os.uname(), os.cpu_count() or 1, os.statvfs("/")
        memory = dict((k, v * 1024) for k, v in _meminfo(("MemTotal", "MemFree", "MemAvailable")).items())
        disk = {"total": root.f_blocks * root.f_frsize, "free": root.f_bfree * root.f_frsize,
                "avail": root.f_bavail * root.f_frsize, "used": (root.f_blocks - root.f_bfree) * root.f_frsize}
        return {"pveversion": "pve-manager/%s/1a2b3c4d" % self.version({})["version"], "uptime": 1,
                "kversion": "%s %s %s" % (uname.sysname, uname.release, uname.version), "cpu": 0.0,
                "cpuinfo": {"cpus": cpus, "cores": cpus, "sockets": 1, "model": uname.machine},
                "current-kernel": {"sysname": uname.sysname, "release": uname.release, "version": uname.version,
                                   "machine": uname.machine},
                "boot-info": {"mode": "efi" if os.path.isdir("/sys/firmware/efi") else "legacy-bios"},
                "loadavg": ["%.2f" % load for load in os.getloadavg()], "rootfs": disk,
                "memory": {"total": memory["MemTotal"], "free": memory["MemFree"], "available": memory["MemAvailable"],
                           "used": memory["MemTotal"] - memory["MemAvailable"]}}

    def nextid(self, params):
        with self.lock:
            if self.nextid_answers and "vmid" not in params:
                return self.nextid_answers.pop(0)  # scripted answers reproduce a race between two callers
            if "vmid" in params:
                if params["vmid"] in self.containers:
                    raise ApiError(400, "Parameter verification failed.",
                                   {"vmid": "VM %s already exists" % params["vmid"]})
                return params["vmid"]
            vmid = self.vmid_range[0]
            while vmid in self.containers:
                vmid += 1
            if vmid > self.vmid_range[1]:
                raise ApiError(500, "unable to get any free VMID in range [%d, %d]" % self.vmid_range)
            return vmid

    def resources(self, params):
        out = [{"id": "node/" + self.node, "type": "node", "node": self.node, "status": "online"}]
        for ct in sorted(self.containers.values(), key=lambda c: c.vmid):
            entry = self._entry(ct)
            entry.update(id="lxc/%d" % ct.vmid, node=self.node)
            entry.update(("pool", pool) for pool, members in sorted(self.pools.items()) if ct.vmid in members)
            out.append(entry)
        for name, info in sorted(self.storages.items()):
            out.append({"id": "storage/%s/%s" % (self.node, name), "type": "storage", "storage": name,
                        "node": self.node, "status": "available", "plugintype": info["type"]})
        return [e for e in out if params.get("type") in (None, e["type"], "vm" if e["type"] == "lxc" else None)]
