"""Templates, linked and full clones, and snapshots: on zfspool storages, as Proxmox VE does them."""

import os
import random
import re
import subprocess
import time

from lxcri_testbed.bed import destroy_tree as destroy_dataset

from ..schema import ApiError
from ..tasks import TaskFailed
from .lxc import Container
from .volumes import is_volume, mount_points, options, print_volume

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
            # PVE::LXC::template_create, first: volume_has_feature('template') of every volume (none for a bind or
            # device mount), in the worker: the call has answered null already, and the task fails
            for dummy, volume, dummy2 in mount_points(ct.config):
                if not is_volume(volume):
                    raise TaskFailed("Template feature is not available for '%s'" % volume)
            with self.lock:
                self._template_create(ct)
        self.tasks.start("vztemplate", ct.vmid, user or "root@pam", work)
        return None

    def _template_create(self, ct):
        """PVE::LXC::template_create (every volume's create_base) and ``$conf->{template} = 1``: rootfs and each
        mount point volume on zfspool become ``basevol-...`` with a ``@__base__`` snapshot."""
        for key in ["rootfs"] + sorted(k for k in ct.config if re.match(r"^mp\d+$", k)):
            volume = options(ct.config.get(key, ""))[0] or ""
            if not is_volume(volume) or self.storages[volume.split(":")[0]]["type"] != "zfspool":
                continue
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
            ct.config[key] = ct.config[key].replace(volume, base, 1)
        ct.config["template"] = "1"

    def lxc_clone(self, params, user):
        """POST .../clone as pve-container's clone_vm: the source holds a 'disk' lock for the whole clone, every
        netN of the clone gets a new MAC; rootfs and every mount point volume are cloned (linked: the storage's
        clone of the base, on zfspool ``basevol-S-disk-N/subvol-NEW-disk-M``) or copied (full, from ``snapname``'s
        state when given); a bind or device mount point cannot be cloned."""
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
        snapname = params.get("snapname")
        target_node = params.get("target") if params.get("target") != self.node else None
        if target_node is not None:
            # clone_vm: check_node_exists, and a target storage must be enabled on the target node and shared
            if self.cluster is None or target_node not in self.cluster.backends:
                raise ApiError(500, "no such cluster node '%s'" % target_node)
            if "storage" in params:
                other = self.cluster.backends[target_node]
                if params["storage"] not in other.storages or not other.storage_enabled(params["storage"]):
                    raise ApiError(500, "storage '%s' is not available on node '%s'" % (params["storage"], target_node))
                if not self.storages.get(params["storage"], {}).get("shared"):
                    raise ApiError(500, "can't clone to non-shared storage '%s'" % params["storage"])
        with self.lock:
            # pve-container PVE/API2/LXC.pm clone_vm: set_lock($vmid, 'disk') on the source before the worker
            # (check_lock: "CT is locked (...)"), released when the clone ends either way
            if ct.lock:
                raise ApiError(500, "CT is locked (%s)" % ct.lock)
            if self.vmid_owner(newid):
                raise ApiError(500, "CT %d already exists on node '%s'" % (newid, self.vmid_owner(newid)))
            if snapname and snapname not in ct.snapshots:
                raise ApiError(500, "snapshot '%s' does not exist" % snapname)
            source = ct.snapshots[snapname]["config"] if snapname else ct.config
            running = self.lxc_state(ct)[0] == "running"
            volumes = {}  # key -> (volume, its options) of rootfs and every mount point
            for key in sorted(source):
                if key != "rootfs" and not re.match(r"^mp\d+$", key):
                    continue
                volume, opts = options(source[key])
                if not is_volume(volume):
                    kind = "device" if (volume or "").startswith("/dev/") else "bind"
                    raise ApiError(500, "unable to clone mountpoint '%s' (type %s)" % (key, kind))
                if full and running and not snapname:
                    raise ApiError(500, "Full clone of a running container is only possible from a snapshot")
                volumes[key] = (volume, opts)
            if target_node is not None and any(not self.storages.get(v.split(":")[0], {}).get("shared")
                                               for v, dummy in volumes.values()):
                # clone_vm: a volume on a storage without ``shared`` makes $sharedvm 0
                raise ApiError(500, "can't clone CT to node '%s' (CT uses local storage)" % target_node)
            config = dict((k, v) for k, v in source.items()
                          if k not in ("template", "rootfs") and not re.match(r"^(mp|unused)\d+$", k))
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
        made = []

        def cleanup(task):
            for volume in reversed(made):  # clone_vm's cleanup: vdisk_free of what it made (lxc.py _free)
                try:
                    self._free(volume, task)
                except TaskFailed as exc:
                    task.log("WARN: %s" % exc)
            with self.lock:
                self.containers.pop(newid, None)
            clone.lock = None
            ct.lock = None

        def work(task):
            for key in ["rootfs"] + sorted(k for k in volumes if k != "rootfs"):
                if key not in volumes:
                    continue
                volume, opts = volumes[key]
                target = self._clone_volume(volume, newid, full, params.get("storage"), snapname, task,
                                            size=opts.get("size"))
                made.append(target)
                clone.config[key] = print_volume(target, opts) if key != "rootfs" else \
                    ",".join([target] + ["%s=%s" % item for item in sorted(opts.items())])
            self._register(newid, params, task)
            clone.lock = None
            ct.lock = None
            if target_node is not None:  # clone_vm: move_config_to_node($newid, $target)
                with self.lock:
                    self.containers.pop(newid, None)
                    self.cluster.backends[target_node].containers[newid] = clone
            return 0

        return self.tasks.start("vzclone", ct.vmid, user, work, cleanup)

    def _clone_volume(self, volume, newid, full, storage, snapname, task, size=None):
        """One volume of a clone: pve-storage vdisk_clone (linked; ZFSPoolPlugin clone_image: a clone of
        <base>@__base__ with the base's refquota, named "<base>/<new>") or PVE::LXC::copy_volume (full: a new
        volume on ``storage``, default the volume's own, filled from the volume or from its snapshot)."""
        source_storage = volume.split(":")[0]
        if not full:
            base = volume.split(":", 1)[1].rsplit("/", 1)[-1]
            name = self._free_disk_name(source_storage, newid)
            refquota = self._zfs_get(self.dataset(volume), "refquota")
            self._zfs("clone", "-o", "refquota=%s" % ("none" if refquota in ("0", "none", "-") else refquota),
                      self.dataset(volume) + "@__base__", "%s/%s" % (self.storages[source_storage]["pool"], name))
            return "%s:%s/%s" % (source_storage, base, name)
        target_storage = storage or source_storage
        info = self.activate_storage(target_storage)
        name = self._free_disk_name(target_storage, newid)
        target = self._volid(target_storage, name, newid)
        if info["type"] == "zfspool":  # vdisk_alloc with the mount point's size (copy_volume)
            quota = ["-o", "refquota=%s" % size] if size and size not in ("0", "0G") else []
            self._zfs(*(["create", "-o", "xattr=on"] + quota + ["%s/%s" % (info["pool"], name)]))
        else:
            os.makedirs(self.volume_path(target))
        task.log("copying %s%s" % (volume, "@" + snapname if snapname else ""))
        if snapname:
            # the snapshot's state, read from a short-lived clone of it (zfs-fuse has no .zfs/snapshot directory)
            scratch = "%s-lxcri-copy-%d" % (self.dataset(volume), newid)
            self._zfs("clone", "%s@%s" % (self.dataset(volume), snapname), scratch)
            try:
                subprocess.run(["cp", "-a", "--", self._zfs_get(scratch, "mountpoint") + "/.", self.volume_path(target)],
                               check=True)
            finally:
                destroy_dataset(scratch)
        else:
            subprocess.run(["cp", "-a", "--", self.volume_path(volume) + "/.", self.volume_path(target)], check=True)
        return target

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
