"""Cluster and node endpoints: version, nodes, node status, next free id, cluster resources."""

import os
import threading

from ..schema import ApiError

# pvestatd's update interval (pve-manager PVE/Service/pvestatd.pm: $updatetime = 10)
DEFAULT_RESOURCES_LAG = 10.0

# What a node runs, by (mode, LXC): its pve-manager version and release (GET /version) and the packages
# GET /nodes/{node}/apt/versions names.  Proxmox VE 8.0/8.1 shipped lxc-pve 5.0.2, 8.2 moved to 6.0.0 and 9.1
# ships 6.0.5 with the lxc.environment.runtime backport (pve-manager's and pve-container's debian/changelog).
VERSIONS = {
    ("9.1", "6.0"): ("9.1.1", "9.1", {"pve-container": "6.1.10", "lxc-pve": "6.0.5-3"}),
    ("8", "6.0"): ("8.4.1", "8.4", {"pve-container": "5.3.0", "lxc-pve": "6.0.0-1"}),
    ("8", "5.0"): ("8.1.4", "8.1", {"pve-container": "5.0.8", "lxc-pve": "5.0.2-4"}),
}


def node_lxc(mode, lxc=None):
    """(version, LxcTools) of the LXC a node in ``mode`` runs its containers with: ``lxc`` "6.0" (the test
    bed's lxc-pve 6.0.5 build) or "5.0" (Debian's 5.0.2).  Default: 6.0 for 9.1 (the only LXC it ships) and
    5.0 for 8 (as 8.0/8.1; give "6.0" for 8.2+)."""
    from lxcri_testbed.lxc import tools_for  # pylint: disable=import-outside-toplevel
    mode_key = "9.1" if mode.startswith("9") else "8"
    lxc = lxc or os.environ.get("PVE_DOUBLE_LXC") or ("6.0" if mode_key == "9.1" else "5.0")
    if (mode_key, lxc) not in VERSIONS:
        raise ValueError("a Proxmox VE %s node does not run LXC %s (known: %s)"
                         % (mode, lxc, ", ".join("%s with LXC %s" % key for key in sorted(VERSIONS))))
    return lxc, tools_for(lxc)


def _meminfo(keys):
    """kB values of /proc/meminfo (node status reports the host's memory)."""
    with open("/proc/meminfo") as handle:
        pairs = (line.split(":", 1) for line in handle)
        return dict((k, int(v.split()[0])) for k, v in pairs if k in keys)


class ClusterEndpoints:
    """GET /version, /nodes, /nodes/{node}/status, /cluster/nextid and /cluster/resources."""

    def _versions(self):
        return VERSIONS[("9.1" if self.mode.startswith("9") else "8", self.lxc)]

    def version(self, params):
        version, release = self._versions()[:2]
        return {"version": version, "release": release, "repoid": "1a2b3c4d"}

    def node_version(self, params):
        """GET /nodes/{node}/version (proxied to the node: its own pve-manager)."""
        self._node(params["node"])
        return self.version(params)

    def apt_versions(self, params):
        """pve-manager PVE/API2/APT.pm ``versions``: the important Proxmox packages of the node."""
        self._node(params["node"])
        version, dummy, packages = self._versions()
        packages = dict(packages, **{"pve-manager": version})
        if self.mode.startswith("9") and self.importer == "6.0":
            packages["pve-container"] = "6.0.18"  # as 9.1.0 shipped it (debian/changelog, 2025-11-18)
        return [{"Package": name, "Version": packages[name], "CurrentState": "Installed", "Arch": "amd64",
                 "Origin": "Proxmox", "Priority": "optional", "Section": "admin", "Title": name,
                 "Description": name} for name in ("pve-manager", "pve-container", "lxc-pve")]

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

    def node_usage(self, running=None):
        """What pvestatd broadcasts of the node (update_node_status): memory and CPU.  Every node of the double
        is this machine, so a node's memory in use is a base of 1 GiB plus the memory of its running containers
        (``memory`` of each), and its CPU load the cores of its running containers over the machine's; tests set
        ``usage_override`` (e.g. {"mem": ...}) to stage a loaded node.  ``running``: the running containers when
        the caller knows them (resources() has their status already)."""
        cpus = os.cpu_count() or 1
        total = _meminfo(("MemTotal",))["MemTotal"] * 1024
        if running is None:
            with self.lock:
                containers = list(self.containers.values())
            running = [ct for ct in containers if self._listed_status(ct) == "running"]
        used = (1 << 30) + sum(int(ct.config.get("memory", "512")) << 20 for ct in running)
        cpu = min(1.0, sum(int(ct.config.get("cores") or 1) for ct in running) * 0.05 / cpus)
        usage = {"maxmem": total, "mem": min(used, total), "maxcpu": cpus, "cpu": round(cpu, 4),
                 "maxdisk": 100 << 30, "disk": 10 << 30, "uptime": 1000, "level": ""}
        usage.update(getattr(self, "usage_override", None) or {})
        return usage

    def nextid(self, params):
        with self.lock:
            if self.nextid_answers and "vmid" not in params:
                return self.nextid_answers.pop(0)  # scripted answers reproduce a race between two callers
            if "vmid" in params:
                if self.vmid_owner(params["vmid"]):
                    raise ApiError(400, "Parameter verification failed.",
                                   {"vmid": "VM %s already exists" % params["vmid"]})
                return params["vmid"]
            vmid = self.vmid_range[0]
            while self.vmid_owner(vmid):
                vmid += 1
            if vmid > self.vmid_range[1]:
                raise ApiError(500, "unable to get any free VMID in range [%d, %d]" % self.vmid_range)
            return vmid

    # -- pvestatd: the status broadcast /cluster/resources serves -------------------------
    def _rrd_entry(self, ct):
        """What pvestatd broadcasts for a container (pve-manager PVE/Service/pvestatd.pm update_lxc_status,
        from pve-container PVE/LXC.pm vmstatus), in the fields PVE/API2Tools.pm extract_vm_stats reads back."""
        status, dummy = self.lxc_state(ct)
        size = str(ct.config.get("rootfs", "")).partition("size=")[2].split(",")[0]
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        maxdisk = int(float(size[:-1]) * units[size[-1]]) if size and size[-1] in units else 4 << 30
        return {"uptime": 0, "name": ct.config.get("hostname", "CT%d" % ct.vmid), "status": status,
                "template": 1 if str(ct.config.get("template")) == "1" else 0,
                "maxcpu": int(ct.config.get("cores") or os.cpu_count() or 1), "cpu": 0,
                "maxmem": int(ct.config.get("memory", "512")) * 1024 * 1024, "mem": 0, "maxdisk": maxdisk,
                "disk": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0}

    def _listed_status(self, ct):
        """A container's status as /cluster/resources shows it: pvestatd's last broadcast, or live without a lag."""
        return self.rrd.get(ct.vmid, {}).get("status") if self.resources_lag else self.lxc_state(ct)[0]

    def broadcast(self):
        """One pvestatd round: the RRD data of every container as it is now."""
        with self.lock:
            containers = list(self.containers.values())
        self.rrd = dict((ct.vmid, self._rrd_entry(ct)) for ct in containers)

    def start_pvestatd(self):
        """Broadcast now and then every ``resources_lag`` seconds (0: /cluster/resources reads live)."""
        self.rrd, self._pvestatd_stop = {}, threading.Event()
        if not self.resources_lag:
            return
        self.broadcast()

        def loop():
            while not self._pvestatd_stop.wait(self.resources_lag):
                try:
                    self.broadcast()
                except Exception:  # pylint: disable=broad-except
                    pass  # a container removed mid-round: the next round has it right
        threading.Thread(target=loop, name="pvestatd", daemon=True).start()

    def stop_pvestatd(self):
        stop = getattr(self, "_pvestatd_stop", None)
        if stop is not None:
            stop.set()

    def resources(self, params):
        """pve-manager PVE/API2/Cluster.pm resources: membership (id, vmid, node, type) is the live vmlist,
        ``lock``/``tags`` are read live where set (get_guest_config_properties) and ``pool`` from user.cfg;
        name, status, template and usage are pvestatd's last broadcast (extract_vm_stats), so a container
        created since then is ``status: unknown`` without a name, and a renamed/started one shows the old values."""
        guests, running = [], []
        for ct in sorted(self.containers.values(), key=lambda c: c.vmid):
            entry = {"id": "lxc/%d" % ct.vmid, "vmid": ct.vmid, "node": self.node, "type": "lxc", "status": "unknown"}
            entry.update(self._rrd_entry(ct) if not self.resources_lag else self.rrd.get(ct.vmid, {}))
            if entry["status"] == "running":
                running.append(ct)
            entry.update(("pool", pool) for pool, members in sorted(self.pools.items()) if ct.vmid in members)
            if ct.lock:
                entry["lock"] = ct.lock
            if ct.config.get("tags") is not None:
                entry["tags"] = ct.config["tags"]
            guests.append(entry)
        # the node's figures from the same statuses (pvestatd's one broadcast, or the live state without a lag)
        out = [dict(self.node_usage(running), id="node/" + self.node, type="node", node=self.node, status="online")]
        out += guests
        for name, info in sorted(self.storages.items()):
            out.append({"id": "storage/%s/%s" % (self.node, name), "type": "storage", "storage": name,
                        "node": self.node, "status": "available" if self.storage_enabled(name) else "unknown",
                        "plugintype": info["type"], "shared": 1 if info.get("shared") else 0,
                        "content": info["content"]})
        return [e for e in out if params.get("type") in (None, e["type"], "vm" if e["type"] == "lxc" else None)]
