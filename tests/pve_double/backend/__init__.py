"""What the Proxmox VE API test double does behind each endpoint.

State lives in memory; storage is real: a ``dir`` storage under the
double's directory (template cache, container root directories).  Work that
PVE does in workers (create, delete, start, ...) runs as asynchronous tasks.

``Backend`` holds the state and the helpers every endpoint family uses; the
endpoints themselves live by family, one mixin each: cluster.py (version,
nodes, node status, next id, cluster resources), storage.py (listing,
content, upload, OCI registry pull, volume delete), lxc.py (container
lifecycle and config), lxc_host.py (the real LXC under the containers: the
generated LXC config, lxc-start/-stop), snapshots.py (templates, clones and
snapshots on zfspool storages), volumes.py (mount point volumes and
move_volume), migrate.py (migration to another node of a cluster), tasks.py (task status and log), and oci_archive.py (9.1's OCI
archive import).
"""

import os
import subprocess
import threading

from lxcri_testbed.bed import scratch_create_args

from ..schema import ApiError, Schema
from ..tasks import TaskFailed, TaskManager
from .cluster import DEFAULT_RESOURCES_LAG, VERSIONS, ClusterEndpoints, node_lxc
from .lxc import Container, LxcEndpoints
from .lxc_host import CGROUP_ROOT, LxcHost, cgroup_limits, network_lines
from .migrate import MigrateEndpoints
from .oci_archive import import_oci_archive, is_oci_archive
from .snapshots import SnapshotEndpoints
from .storage import VZTMPL_NAME, StorageEndpoints
from .tasks import TaskEndpoints
from .volumes import VolumeEndpoints

__all__ = ["Backend", "Container", "DEFAULT_RESOURCES_LAG", "CGROUP_ROOT", "VERSIONS", "VZTMPL_NAME", "cgroup_limits", "import_oci_archive",
           "is_oci_archive", "network_lines"]


class Backend(ClusterEndpoints, StorageEndpoints, LxcEndpoints, LxcHost, SnapshotEndpoints, VolumeEndpoints,
              MigrateEndpoints, TaskEndpoints):
    def __init__(self, root, mode="9.1", node="pve1", zfs_root=None, vmid_range=(100, 999999999),
                 dir_storages=None, resources_lag=DEFAULT_RESOURCES_LAG, lxc=None, importer=None, shared=None):
        """``vmid_range``: what nextid hands out (datacenter.cfg's next-id lower/upper); ``dir_storages``:
        more ``dir`` storages as {name: path}, besides ``local`` (and ``local-zfs`` with ``zfs_root``);
        ``lxc``: the node's LXC, see node_lxc; ``importer``: a 9.1 node's pve-container OCI import, "6.1" (6.1.0
        and later: the image's User is honoured) or "6.0" (9.1.0's 6.0.18: User ignored); default
        $PVE_DOUBLE_IMPORTER, else 6.1; ``shared``: the path of the cluster's ``shared`` dir storage (storage.cfg
        ``shared 1``: every node sees the same files), in a cluster."""
        self.root = root
        self.mode = mode
        self.lxc, self.lxc_tools = node_lxc(mode, lxc)
        self.importer = importer or os.environ.get("PVE_DOUBLE_IMPORTER") or "6.1"
        if self.importer not in ("6.0", "6.1"):
            raise ValueError("importer is 6.0 or 6.1, not %r" % (self.importer,))
        self.resources_lag = float(resources_lag or 0)  # seconds between pvestatd's broadcasts; 0: live
        self.rrd = {}
        self.node = node
        self.vmid_range = tuple(vmid_range)
        self.tasks = TaskManager(node)
        self.tasks.after = self.sync_conf
        self.lock = threading.RLock()
        self.containers = {}
        self.schema = Schema(mode)
        self.nextid_answers = []  # tests script GET /cluster/nextid (e.g. the same id twice: a race)
        # user.cfg and ha/resources.cfg as far as containers are concerned: pool -> member vmids (tests add
        # pools, as an admin would: backend.pools["ci"] = set()), and the vmids created with ha-managed=1
        self.pools = {}
        self.ha_resources = set()
        self.cluster = None  # the multinode.Cluster this node is part of (None: a one-node "cluster")
        self.storages = {"local": {"type": "dir", "path": os.path.join(root, "storage", "local"),
                                   "content": "vztmpl,rootdir,iso,backup,snippets"}}
        for name, path in sorted((dir_storages or {}).items()):
            self.storages[name] = {"type": "dir", "path": path, "content": "vztmpl,rootdir,iso,backup,snippets"}
        if shared:
            self.storages["shared"] = {"type": "dir", "path": shared, "shared": 1,
                                       "content": "vztmpl,rootdir,iso,backup,snippets"}
        for info in self.storages.values():
            for sub in ("template/cache", "images"):
                os.makedirs(os.path.join(info["path"], sub), exist_ok=True)
        if zfs_root:
            # a zfspool storage on (a dataset of) the test bed's zfs-fuse pool, with Proxmox naming
            # marked as this process's: the test bed's `up` leaves it alone while it lives (-p marks only the last)
            subprocess.run(["zfs", "create", "-p"] + scratch_create_args() + [zfs_root], check=True)
            self.storages["local-zfs"] = {"type": "zfspool", "pool": zfs_root, "content": "rootdir,images",
                                          "path": self._zfs_get(zfs_root, "mountpoint")}

    # -- helpers ------------------------------------------------------------------
    def _node(self, node):
        if node != self.node:
            raise ApiError(500, "hostname lookup '%s' failed - failed to get address info for: %s" % (node, node))

    def vmid_owner(self, vmid):
        """The node that has guest ``vmid``, or None: the cluster's vmlist (PVE::Cluster::check_vmid_unused)."""
        if self.cluster is None:
            return self.node if int(vmid) in self.containers else None
        return self.cluster.owner(vmid)

    def _ct(self, vmid):
        ct = self.containers.get(int(vmid))
        if ct is None:
            raise ApiError(500, "Configuration file 'nodes/%s/lxc/%s.conf' does not exist" % (self.node, vmid))
        return ct

    @staticmethod
    def _zfs_get(name, prop):
        return subprocess.run(["zfs", "get", "-H", "-o", "value", prop, name], stdout=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout.strip()

    @staticmethod
    def _zfs(*args):
        proc = subprocess.run(["zfs"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        if proc.returncode != 0:
            raise TaskFailed("zfs %s failed: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def dataset(self, volid):
        """pve-storage ZFSPoolPlugin parse_volname: a linked clone ``<base>/<name>`` is the dataset <pool>/<name>."""
        storage, dummy, name = volid.split(",")[0].partition(":")
        return "%s/%s" % (self.storages[storage]["pool"], name.rsplit("/", 1)[-1])

    def volume_path(self, volid):
        """The host path of a volume id (or of a mount point value: its options are left out)."""
        storage, sep, name = volid.split(",")[0].partition(":")
        info = self.storages.get(storage)
        if not sep or info is None:
            raise ApiError(500, "storage '%s' does not exist" % storage)
        if info["type"] == "zfspool":
            return self._zfs_get(self.dataset(volid), "mountpoint")
        if name.startswith("vztmpl/"):
            return os.path.join(info["path"], "template", "cache", name[len("vztmpl/"):])
        return os.path.join(info["path"], "images", name)
