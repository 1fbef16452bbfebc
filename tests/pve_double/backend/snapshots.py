"""Templates, linked and full clones, and snapshots: on zfspool storages, as Proxmox VE does them."""

import os
import random
import re
import subprocess
import time

from ..schema import ApiError
from ..tasks import TaskFailed
from .lxc import Container
from .volumes import is_volume, mount_points

# seconds between the template call's null answer and its worker's start (a real fork_worker takes a moment too)
TEMPLATE_WORKER_DELAY = 0.3


def random_mac():
    """PVE::Tools::random_ether_addr without a datacenter mac_prefix: a locally administered unicast address."""
    octets = [random.randint(0, 255) for dummy in range(6)]
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join("%02X" % o for o in octets)


class SnapshotEndpoints:
    """POST .../template and .../clone, and /nodes/{node}/lxc/{vmid}/snapshot/..."""

    def _zfs_volume(self, ct, action):
        volume = ct.config.get("rootfs", "").split(",")[0]
        storage = volume.split(":")[0]
        if self.storages.get(storage, {}).get("type") != "zfspool":
            raise ApiError(500, "%s feature is not available" % action)
        return volume

    def lxc_template(self, params, user):
        """pve-container PVE/API2/LXC.pm ``template``: the checks run in the request (under the config lock, in
        this order and with these texts), then ``fork_worker('vztemplate', ...)`` runs template_create and writes
        ``template: 1``, and the call answers null (``returns => { type => 'null' }``), not the worker's UPID: a
        client learns the end from the config (or the node's task list)."""
        ct = self._ct(params["vmid"])
        if ct.lock:
            raise ApiError(500, "CT is locked (%s)" % ct.lock)
        if ct.snapshots:
            raise ApiError(500, "unable to create template, because CT contains snapshots")
        if ct.config.get("template") == "1":
            raise ApiError(500, "you can't convert a template to a template")
        if self.lxc_state(ct)[0] == "running":
            raise ApiError(500, "you can't convert a CT to template if the CT is running")

        def work(task):
            time.sleep(TEMPLATE_WORKER_DELAY)  # the worker's fork and start: the answer comes first
            with self.lock:
                self._template_create(ct)
        self.tasks.start("vztemplate", ct.vmid, user or "root@pam", work)
        return None

    def _template_create(self, ct):
        """PVE::LXC::template_create (the storage's create_base) and ``$conf->{template} = 1``."""
        volume = ct.config.get("rootfs", "").split(",")[0]
        if self.storages[volume.split(":")[0]]["type"] == "zfspool":
            # ZFSPoolPlugin create_base: subvol-N-... becomes basevol-N-... (a linked clone keeps its "<base>/" part)
            storage, dummy, volname = volume.partition(":")
            prefix, slash, last = volname.rpartition("/")
            base = "%s:%s%s%s" % (storage, prefix, slash, re.sub(r"^subvol-", "basevol-", last))
            # zfs-fuse refuses to rename a mounted dataset it is still holding, and holds it for
            # a moment after the container that used it stopped: unmount and retry
            for attempt in range(20):
                subprocess.run(["zfs", "unmount", "-f", self.dataset(volume)], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    self._zfs("rename", self.dataset(volume), self.dataset(base))
                    break
                except TaskFailed:
                    if attempt == 19:
                        raise
                    time.sleep(0.3)
            subprocess.run(["zfs", "mount", self.dataset(base)], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._zfs("snapshot", self.dataset(base) + "@__base__")
            ct.config["rootfs"] = ct.config["rootfs"].replace(volume, base)
        ct.config["template"] = "1"

    def lxc_clone(self, params, user):
        """POST .../clone as pve-container's clone_vm: the source holds a 'disk' lock for the whole clone, every
        netN of the clone gets a new MAC, a linked clone on zfspool is ``basevol-S-disk-0/subvol-N-disk-0``."""
        ct = self._ct(params["vmid"])
        newid = params["newid"]
        self._check_pool(params)
        template = ct.config.get("template") == "1"
        full = params.get("full", 0 if template else 1)
        if not template and not full:
            raise ApiError(500, "parameter 'full' must be set for a clone of a container that is not a template")
        if "storage" in params and not full:
            raise ApiError(400, "Parameter verification failed.",
                           {"storage": "storage is only allowed for full clones"})
        with self.lock:
            # pve-container PVE/API2/LXC.pm clone_vm: set_lock($vmid, 'disk') on the source before the worker
            # (check_lock: "CT is locked (...)"), released when the clone ends either way
            if ct.lock:
                raise ApiError(500, "CT is locked (%s)" % ct.lock)
            if newid in self.containers:
                raise ApiError(500, "CT %d already exists on node '%s'" % (newid, self.node))
            config = dict((k, v) for k, v in ct.config.items() if k not in ("template", "rootfs"))
            for key, value in list(config.items()):
                if re.match(r"^net\d+$", key):  # clone_vm: "always change MAC! address" (random_ether_addr)
                    config[key] = re.sub(r"hwaddr=[0-9A-Fa-f:]+", "hwaddr=" + random_mac(), value) \
                        if "hwaddr=" in value else value + ",hwaddr=" + random_mac()
            if params.get("hostname"):
                config["hostname"] = params["hostname"]
            clone = Container(newid, config)
            clone.lock = "create"
            ct.lock = "disk"
            self.containers[newid] = clone
        volume = ct.config["rootfs"].split(",")[0]
        source_storage = volume.split(":")[0]
        target_storage = params.get("storage", source_storage)

        def cleanup(task):
            with self.lock:
                self.containers.pop(newid, None)
            clone.lock = None
            ct.lock = None

        def work(task):
            name = "subvol-%d-disk-0" % newid
            if not full:
                # pve-storage ZFSPoolPlugin clone_image: a clone of <base>@__base__ with the base's refquota,
                # named "<base>/<new>"; clone_vm keeps the mount point's options (size=)
                base = volume.split(":", 1)[1].rsplit("/", 1)[-1]
                refquota = self._zfs_get(self.dataset(volume), "refquota")
                self._zfs("clone", "-o", "refquota=%s" % ("none" if refquota in ("0", "none", "-") else refquota),
                          self.dataset(volume) + "@__base__", "%s/%s" % (self.storages[source_storage]["pool"], name))
                options = ct.config["rootfs"].split(",")[1:]
                clone.config["rootfs"] = ",".join(["%s:%s/%s" % (source_storage, base, name)] + options)
            else:
                info = self.storages[target_storage]
                if info["type"] == "zfspool":
                    self._zfs("create", "-o", "xattr=on", "%s/%s" % (info["pool"], name))
                    target = self.volume_path("%s:%s" % (target_storage, name))
                    clone.config["rootfs"] = "%s:%s" % (target_storage, name)
                else:
                    name = "%d/subvol-%d-disk-0.subvol" % (newid, newid)
                    target = self.volume_path("%s:%s" % (target_storage, name))
                    os.makedirs(target)
                    clone.config["rootfs"] = "%s:%s" % (target_storage, name)
                task.log("copying %s" % volume)
                subprocess.run(["cp", "-a", "--", self.volume_path(volume) + "/.", target], check=True)
            self._register(newid, params, task)
            clone.lock = None
            ct.lock = None
            return 0

        return self.tasks.start("vzclone", ct.vmid, user, work, cleanup)

    def snapshot_list(self, params):
        ct = self._ct(params["vmid"])
        out = []
        parent = None
        for name, info in ct.snapshots.items():
            entry = {"name": name, "snaptime": info["snaptime"], "description": info.get("description", "")}
            if parent:
                entry["parent"] = parent
            out.append(entry)
            parent = name
        current = {"name": "current", "description": "You are here!", "running": 1 if ct.status == "running" else 0}
        if parent:
            current["parent"] = parent
        return out + [current]

    def snapshot_config(self, params):
        """GET .../snapshot/{snapname}/config (pve-container PVE/API2/LXC/Snapshot.pm get_snapshot_config): the
        config kept with the snapshot, with its digest."""
        ct = self._ct(params["vmid"])
        snap = ct.snapshots.get(params["snapname"])
        if snap is None:
            raise ApiError(500, "snapshot '%s' does not exist" % params["snapname"])
        config = dict(snap["config"], snaptime=snap["snaptime"])
        if snap.get("description"):
            config["description"] = snap["description"]
        return config

    def snapshot_create(self, params, user):
        ct = self._ct(params["vmid"])
        volumes = self.snapshot_volumes(ct.config, "snapshot")  # rootfs and every mount point volume
        name = params["snapname"]
        if name in ct.snapshots:
            raise ApiError(500, "snapshot name '%s' already used" % name)

        def work(task):
            for volume in volumes:
                self._zfs("snapshot", "%s@%s" % (self.dataset(volume), name))
            # pve-guest-common AbstractConfig __snapshot_copy_config: the copy leaves out unusedN and the description
            config = dict((k, v) for k, v in ct.config.items()
                          if not re.match(r"^unused\d+$", k) and k != "description")
            ct.snapshots[name] = {"snaptime": int(time.time()), "config": config,
                                  "description": params.get("description", "")}
            return 0

        return self.tasks.start("vzsnapshot", ct.vmid, user, work)

    def snapshot_delete(self, params, user):
        ct = self._ct(params["vmid"])
        self._zfs_volume(ct, "snapshot")
        name = params["snapname"]
        if name not in ct.snapshots:
            raise ApiError(500, "snapshot '%s' does not exist" % name)

        def work(task):
            # the volumes of the snapshot's config (snapshot_delete: __snapshot_foreach_volume of the snapshot)
            for volume in self.snapshot_volumes(ct.snapshots[name]["config"], "snapshot"):
                self._zfs("destroy", "%s@%s" % (self.dataset(volume), name))
            ct.snapshots.pop(name, None)
            return 0

        return self.tasks.start("vzdelsnapshot", ct.vmid, user, work)

    def snapshot_rollback(self, params, user):
        ct = self._ct(params["vmid"])
        volume = self._zfs_volume(ct, "snapshot")
        name = params["snapname"]
        if name not in ct.snapshots:
            raise ApiError(500, "snapshot '%s' does not exist" % name)
        volumes = self.snapshot_volumes(ct.snapshots[name]["config"], "snapshot")
        newest = list(ct.snapshots)[-1] == name
        if params.get("start"):
            self._check_startable(ct)

        def work(task):
            if not newest:  # the zfspool plugin's check, inside the worker, before anything is stopped
                raise TaskFailed("can't rollback, '%s' is not most recent snapshot on '%s'"
                                 % (name, volume.partition(":")[2]))
            # as pve-container's snapshot_rollback: a running container is stopped first
            if self.lxc_state(ct)[0] == "running":
                task.log("stopping CT %d" % ct.vmid)
                self._lxc(ct, "lxc-stop", "-k")
            for each in volumes:  # every volume of the snapshot (rootfs first)
                self._zfs("rollback", "%s@%s" % (self.dataset(each), name))
            # pve-guest-common AbstractConfig snapshot_rollback: a volume mounted now that the snapshot lacks becomes
            # unusedN (__snapshot_rollback_get_unused, add_unused_volume); __snapshot_apply_config keeps the current
            # description and unusedN and copies the rest from the snapshot
            snap = ct.snapshots[name]["config"]
            keep = [v for dummy, v, dummy2 in mount_points(ct.config) if is_volume(v)]
            keep = [v for v in [ct.config.get("rootfs", "").split(",")[0]] + keep if v and v not in volumes]
            newconf = dict((k, v) for k, v in ct.config.items() if re.match(r"^unused\d+$", k) or k == "description")
            for loose in keep:
                number = 0
                while "unused%d" % number in newconf:
                    number += 1
                newconf["unused%d" % number] = loose
            newconf.update((k, v) for k, v in snap.items() if k != "description" and not re.match(r"^unused\d+$", k))
            ct.config = newconf
            if params.get("start"):
                task.log("starting CT %d" % ct.vmid)
                return self._start_now(ct, task)  # its warnings (what the host cannot do) count here too
            return 0

        return self.tasks.start("vzrollback", ct.vmid, user, work)
