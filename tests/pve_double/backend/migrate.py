"""POST /nodes/{node}/lxc/{vmid}/migrate: a container moves to another node of the cluster (multinode.py).

pve-container PVE/API2/LXC.pm ``migrate_vm`` checks before the worker (target
not the local node, a member; a running container needs ``restart``, there
is no live migration of containers), then PVE/LXC/Migrate.pm in the
``vzmigrate`` worker (``hamigrate`` for an HA-managed container, which
ha-manager moves the same way):

- ``prepare``: check_lock; every mount point: a bind or device mount point
  that is not ``shared=1`` is refused ("cannot migrate local bind mount point
  'mp0'"), a volume's storage must be enabled on the target node; the target
  must answer (its ssh: "Can't connect to destination address using public
  key"); in restart mode the running container is shut down (vm_stop with
  ``timeout``, default 180 s, forced after it);
- ``phase1``: volumes on shared storages stay; local ones (zfspool and dir
  only) go by ``storage_migrate``, a linked clone of a base volume is refused
  ("clone of 'basevol-...'", then "can't migrate CT - check log"), snapshots
  on zfspool go along (``zfs send -R``); then the config moves to the target
  node (move_config_to_node);
- ``phase3``: the source's copies are freed (vdisk_free);
- ``final_cleanup``: the ``migrate`` lock goes; a container that ran is
  started on the target node (on the source again when phase1 failed).
"""

import os
import shutil
import subprocess

from ..schema import ApiError
from ..tasks import TaskFailed
from .volumes import is_volume, mount_points, options

MIGRATABLE = ("dir", "zfspool")  # of the double's storage types (Migrate.pm phase1 $migratable_storages)


class MigrateEndpoints:
    def lxc_migrate(self, params, user):
        target = params["target"]
        if target == self.node:
            raise ApiError(400, "Parameter verification failed.", {"target": "target is local node."})
        cluster = self.cluster
        if cluster is None or target not in cluster.backends:
            # PVE::Cluster::check_node_exists
            raise ApiError(500, "no such cluster node '%s'" % target)
        ct = self._ct(params["vmid"])  # load_config: "test if VM exists", after the target's checks
        running = self.lxc_state(ct)[0] == "running"
        if running and not params.get("online") and not params.get("restart"):
            raise ApiError(500, "can't migrate running container without --online or --restart")
        if ct.vmid in self.ha_resources:
            # migrate_vm: 'ha-manager migrate ct:<vmid> <target>'; the CRM then moves it as below, in restart mode
            # (PVE::HA::Resources::PVECT migrate: 'restart' => 1)
            kind, params = "hamigrate", dict(params, restart=1)
        else:
            kind = "vzmigrate"
        return self.tasks.start(kind, ct.vmid, user, lambda task: self._migrate(ct, cluster, target, params, task))

    def _migrate(self, ct, cluster, target, params, task):
        task.log("starting migration of CT %d to node '%s'" % (ct.vmid, target))
        if ct.lock:
            raise TaskFailed("CT is locked (%s)" % ct.lock)
        other = cluster.backends[target]
        running = self.lxc_state(ct)[0] == "running"
        if running and params.get("online"):
            raise TaskFailed("lxc live migration is currently not implemented")
        if running and not params.get("restart"):
            raise TaskFailed("running container can only be migrated in restart mode")
        local = []  # (key, volume) of the volumes that move
        volumes = [("rootfs", options(ct.config["rootfs"])[0], {})] + mount_points(ct.config)
        volumes += [(key, value, {}) for key, value in sorted(ct.config.items()) if key.startswith("unused")]
        for key, volume, opts in volumes:
            if not is_volume(volume):
                if str(opts.get("shared", "0")) == "1":
                    continue
                kind = "device" if (volume or "").startswith("/dev/") else "bind"
                raise TaskFailed("cannot migrate local %s mount point '%s'" % (kind, key))
            storage = volume.split(":")[0]
            info = self.storages.get(storage)
            if info is None:
                raise TaskFailed("storage '%s' does not exist" % storage)
            if "rootdir" not in info["content"].split(","):
                raise TaskFailed("content type 'rootdir' is not available on storage '%s'" % storage)
            if storage not in other.storages or not other.storage_enabled(storage, target):
                raise TaskFailed("storage '%s' is not available on node '%s'" % (storage, target))
            if not info.get("shared"):
                local.append((key, volume))
        if not cluster.online(target):
            raise TaskFailed("Can't connect to destination address using public key")
        was_running = running
        if running:
            timeout = params.get("timeout", 180)
            task.log("shutdown CT %d" % ct.vmid)
            self._lxc(ct, "lxc-stop", "--nokill", "-t", str(timeout))
            if self.lxc_state(ct)[0] == "running":
                self._lxc(ct, "lxc-stop", "-k")
        ct.lock = "migrate"
        moved, errors = [], []
        try:
            for key, volume in local:
                info = self.storages[volume.split(":")[0]]
                if info["type"] not in MIGRATABLE:
                    errors.append((volume, "storage type '%s' not supported" % info["type"]))
                elif info["type"] == "zfspool" and "/" in volume.split(":", 1)[1]:
                    errors.append((volume, "clone of '%s'" % volume.split(":", 1)[1].split("/")[0]))
                else:
                    task.log("found local volume '%s' (in current VM config)" % volume)
            for volume, error in errors:
                task.log("WARN: can't migrate local volume '%s': %s" % (volume, error))
            if errors:
                raise TaskFailed("can't migrate CT - check log")
            for key, volume in local:
                self._storage_migrate(volume, other, task)
                moved.append(volume)
                task.log("volume '%s' is '%s' on the target" % (volume, volume))
        except Exception:
            task.log("aborting phase 1 - cleanup resources")
            for volume in moved:
                task.log("ERROR: found stale volume copy '%s' on node '%s'" % (volume, target))
            ct.lock = None
            if was_running:
                task.log("start container on source node")
                self._start_now(ct, task)
            raise
        # move_config_to_node: the config (with its snapshots and pending changes) is the target's now
        shutil.rmtree(os.path.join(self.lxc_path, str(ct.vmid)), ignore_errors=True)
        with self.lock:
            self.containers.pop(ct.vmid, None)
            other.containers[ct.vmid] = ct
        for volume in moved:  # phase3: destroy local copies
            try:
                self._free(volume, task)
            except TaskFailed as exc:
                task.log("ERROR: removing local copy of '%s' failed - %s" % (volume, exc))
        ct.lock = None
        task.log("start final cleanup")
        if was_running:
            task.log("start container on target node")
            other._start_now(ct, task)  # pylint: disable=protected-access
        other.sync_conf()
        task.log("migration finished successfully")
        return 0

    def _storage_migrate(self, volume, other, task):
        """pve-storage PVE/Storage.pm storage_migrate between the nodes' storages of the same name: zfspool by
        ``zfs send -R`` of a ``__migration__`` snapshot into the target's pool (with every snapshot), dir by a
        copy of the volume's directory."""
        storage = volume.split(":")[0]
        info = self.storages[storage]
        if info["type"] == "zfspool":
            source, dest = self.dataset(volume), other.dataset(volume)
            if subprocess.run(["zfs", "list", "-H", dest], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False).returncode == 0:
                raise TaskFailed("storage migration for '%s' to storage '%s' failed - volume '%s' already exists on "
                                 "the target" % (volume, storage, volume))
            snap = source + "@__migration__"
            self._zfs("snapshot", snap)
            try:
                send = subprocess.Popen(["zfs", "send", "-R", snap], stdout=subprocess.PIPE)
                recv = subprocess.run(["zfs", "recv", "-F", dest], stdin=send.stdout, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, universal_newlines=True, check=False)
                send.stdout.close()
                if send.wait() != 0 or recv.returncode != 0:
                    subprocess.run(["zfs", "destroy", "-r", dest], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, check=False)
                    raise TaskFailed("storage migration for '%s' to storage '%s' failed - command 'zfs recv' failed: "
                                     "%s" % (volume, storage, recv.stderr.strip()))
                self._zfs("destroy", dest + "@__migration__")
            finally:
                subprocess.run(["zfs", "destroy", snap], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
            mountpoint = other._zfs_get(dest, "mountpoint")  # pylint: disable=protected-access
            if other._zfs_get(dest, "mounted") != "yes":  # pylint: disable=protected-access
                other._zfs("mount", dest)  # pylint: disable=protected-access
            task.log("volume on %s at %s" % (dest, mountpoint))
        else:
            source, dest = self.volume_path(volume), other.volume_path(volume)
            if os.path.lexists(dest):
                raise TaskFailed("storage migration for '%s' to storage '%s' failed - volume '%s' already exists on "
                                 "the target" % (volume, storage, volume))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            proc = subprocess.run(["cp", "-a", source, dest], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True, check=False)
            if proc.returncode != 0:
                shutil.rmtree(dest, ignore_errors=True)
                raise TaskFailed("storage migration for '%s' to storage '%s' failed - %s"
                                 % (volume, storage, proc.stdout.strip()))
