"""Mount point volumes as pve-container handles them.

- allocation of ``STORAGE:SIZE`` mount points at create and on a config change (PVE/LXC.pm create_disks):
  ``subvol-<vmid>-disk-<n>`` with the first free ``n`` (pve-storage find_free_diskname), a ZFS dataset with
  ``refquota`` on a zfspool storage, a directory ``images/<vmid>/subvol-<vmid>-disk-<n>.subvol`` on a dir
  storage; its root owned by the container's root (unprivileged: the mapped uid);
- the template's content under a mount point's path lands in the volume: create mounts every volume before the
  archive is extracted (PVE/LXC/Create.pm restore_archive under mount_all), so the files, and the directory's
  own owner and mode, are the volume's;
- at start every mount point is mounted in path order (the prestart hook's mount_all; the double writes
  ``lxc.mount.entry`` binds, ``ro=1`` read-only);
- a deleted mount point of a stopped container becomes ``unusedN`` unless a snapshot still references it
  (PVE/LXC/Config.pm update_pct_config: add_unused_volume unless is_volume_in_use);
- ``POST .../move_volume`` with ``target-vmid``: a volume reassigned to another container (or another key),
  renamed to the target's next free disk name (PVE/API2/LXC.pm move_volume, $volume_reassignfn; pve-storage
  rename_volume), with its checks and error texts.  A move between storages is not emulated (501).

Not emulated: hot-plugging a new mount point into a running container (the volume is allocated and the key
set, but it is mounted only at the next start).
"""

import os
import re
import shutil
import subprocess
import time

from ..schema import ApiError
from ..tasks import TaskFailed

MP_KEY = re.compile(r"^mp(\d+)$")
UNUSED_KEY = re.compile(r"^unused(\d+)$")
ALLOCATION = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*):(\d+(?:\.\d+)?)$")


def options(value):
    """A mount point's value as (volume, {option: value}) (the volume is the bare first part or volume=)."""
    parts = [part for part in str(value or "").split(",") if part]
    opts = {}
    volume = None
    for part in parts:
        name, sep, text = part.partition("=")
        if not sep:
            volume = part
        elif name == "volume":
            volume = text
        else:
            opts[name] = text
    return volume, opts


def print_volume(volume, opts):
    """A mount point's value as pve-container prints it (volume first, then the options sorted, mp first)."""
    rest = ["mp=%s" % opts["mp"]] if "mp" in opts else []
    rest += ["%s=%s" % (k, v) for k, v in sorted(opts.items()) if k != "mp"]
    return ",".join([volume] + rest)


def mount_volume(value):
    """The storage volume of a mount point's value, else None."""
    volume = options(value)[0] if value else None
    return volume if is_volume(volume) else None


def is_volume(volume):
    """A storage volume (``storage:name``), not a bind mount (an absolute path) or a device."""
    return bool(volume) and not volume.startswith("/") and ":" in volume


def in_snapshots(ct, volume):
    """Whether a snapshot of ``ct`` references ``volume`` (AbstractConfig is_volume_in_use_by_snapshots: the
    snapshot configs' mounted volumes; a snapshot copy holds no unusedN)."""
    return any(options(v)[0] == volume for snap in ct.snapshots.values() for k, v in snap["config"].items()
               if k == "rootfs" or MP_KEY.match(k))


def mount_points(config):
    """[(key, volume, opts)] of the config's mpN, in the order pve-container mounts them (by path)."""
    out = []
    for key, value in config.items():
        if MP_KEY.match(key):
            volume, opts = options(value)
            out.append((key, volume, opts))
    return sorted(out, key=lambda item: item[2].get("mp", ""))


class VolumeEndpoints:
    """Mount points (create_disks, mount_all), snapshots of every volume, and POST .../move_volume."""

    # -- names and allocation --------------------------------------------------------

    def _disk_names(self, storage):
        """The volume names on ``storage`` (subvol-/basevol- datasets or directory entries)."""
        info = self.storages[storage]
        if info["type"] == "zfspool":
            # -r: a linked clone's volume is <base>/<name>, a dataset below its base
            listing = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", info["pool"]],
                                     stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
            return [name.rpartition("/")[2] for name in listing.split()]
        images = os.path.join(info["path"], "images")
        names = []
        for vmid in os.listdir(images) if os.path.isdir(images) else ():
            names += os.listdir(os.path.join(images, vmid)) if os.path.isdir(os.path.join(images, vmid)) else []
        return names

    def _free_disk_name(self, storage, vmid):
        """pve-storage Plugin.pm find_free_diskname: the first ``subvol-<vmid>-disk-<n>`` no volume of the vmid has
        (a base volume's number counts too)."""
        used = set()
        for name in self._disk_names(storage):
            match = re.match(r"^(?:subvol|basevol)-%d-disk-(\d+)" % vmid, name)
            if match:
                used.add(int(match.group(1)))
        number = 0
        while number in used:
            number += 1
        return "subvol-%d-disk-%d" % (vmid, number)

    def _volid(self, storage, name, vmid):
        if self.storages[storage]["type"] == "zfspool":
            return "%s:%s" % (storage, name)
        return "%s:%d/%s.subvol" % (storage, vmid, name)

    def allocate_volume(self, ct, storage, size):
        """create_disks for one ``STORAGE:SIZE`` (GiB): the new volume id, its root owned by the container's
        root."""
        from .lxc import id_map_of  # pylint: disable=import-outside-toplevel
        # PVE/Storage.pm vdisk_alloc: activate_storage first (exists, enabled on this node, online)
        info = self.activate_storage(storage)
        name = self._free_disk_name(storage, ct.vmid)
        volid = self._volid(storage, name, ct.vmid)
        if info["type"] == "zfspool":
            args = ["create", "-o", "xattr=on"]
            if size and float(size) > 0:
                args += ["-o", "refquota=%sG" % size]
            self._zfs(*(args + ["%s/%s" % (info["pool"], name)]))
        else:
            os.makedirs(self.volume_path(volid))
        id_map = id_map_of(ct.config)
        if id_map:
            os.chown(self.volume_path(volid), id_map[0][2], id_map[1][2])
        return volid

    def allocate_mount_points(self, ct, keys=None):
        """Allocate every mpN of ``ct`` (or those in ``keys``) given as ``STORAGE:SIZE``; returns the new volume
        ids (for a cleanup)."""
        made = []
        for key, volume, opts in mount_points(ct.config):
            if keys is not None and key not in keys:
                continue
            match = ALLOCATION.match(volume or "")
            if not match:
                continue
            volid = self.allocate_volume(ct, match.group(1), match.group(2))
            made.append(volid)
            size = match.group(2)
            ct.config[key] = print_volume(volid, dict(opts, size="%sG" % size) if float(size) > 0 else opts)
        return made

    def fill_mount_points(self, ct, rootfs):
        """What create's extraction with every mount point mounted leaves (PVE/LXC.pm mount_all mounts bind mounts
        too, mountpoint_mount's ``bind`` branch): the template's files under each mount point's path moved into its
        volume or bind-mounted directory, the directory's owner and mode given to its root; a path the template
        lacks is created (owned by the container's root).  The extraction's tar runs with ``--skip-old-files``
        (PVE/LXC/Create.pm restore_tar_archive), so a file a bind-mounted directory already has is kept.  For an
        unprivileged container it runs inside the user namespace, as the mapped root: a bind-mounted directory
        that root cannot write fails the create as tar does (create_disks chowns only the volumes it makes)."""
        from .lxc import id_map_of  # pylint: disable=import-outside-toplevel
        id_map = id_map_of(ct.config)
        for key, volume, opts in mount_points(ct.config):
            if not opts.get("mp") or not volume or volume.startswith("/dev/"):
                continue
            bind = not is_volume(volume)
            target = volume if bind else self.volume_path(volume)
            inside = os.path.join(rootfs, opts["mp"].strip("/"))
            if os.path.islink(inside) or (os.path.exists(inside) and not os.path.isdir(inside)):
                raise TaskFailed("mount point '%s' of %s is not a directory in the container" % (opts["mp"], key))
            if bind:
                # the extraction writes there only when the template has that path
                self._check_bind_source(key, target, id_map if os.path.isdir(inside) else ())
            if os.path.isdir(inside):
                info = os.lstat(inside)
                for entry in os.listdir(inside):
                    # -n: tar's --skip-old-files (only a bind-mounted directory can have files already)
                    subprocess.run(["cp", "-a", "-n", "--", os.path.join(inside, entry), target], check=True)
                    path = os.path.join(inside, entry)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                os.chown(target, info.st_uid, info.st_gid)
                os.chmod(target, info.st_mode & 0o7777)
            else:
                os.makedirs(inside)
                if id_map:
                    os.chown(inside, id_map[0][2], id_map[1][2])

    @staticmethod
    def _check_bind_source(key, source, id_map):
        """A bind mount point's directory as create's extraction meets it: it must exist (PVE/LXC.pm
        __mountpoint_mount: ``directory '...' does not exist``), and where the template has files for it (``id_map``
        given) an unprivileged container's mapped root must be able to write it."""
        if not os.path.isdir(source):
            raise TaskFailed("directory '%s' does not exist" % source)
        if not id_map:
            return
        info = os.stat(source)
        root_uid, root_gid = id_map[0][2], id_map[1][2]
        writable = (info.st_uid == root_uid and info.st_mode & 0o200) or \
            (info.st_gid == root_gid and info.st_mode & 0o020) or info.st_mode & 0o002
        if not writable:
            raise TaskFailed("tar: %s: Cannot open: Permission denied (the bind mount point %s of an unprivileged "
                             "container is not writable by its root, uid %d)\n"
                             "command 'lxc-usernsexec ... tar xpf - ...' failed: exit code 2"
                             % (source, key, root_uid))

    def mount_lines(self, ct):
        """``lxc.mount.entry`` lines binding each volume mount point, in mount order (the prestart hook mounts
        them in the container's root before the init runs)."""
        lines = []
        for key, volume, opts in mount_points(ct.config):
            if not opts.get("mp"):
                continue
            source = self.volume_path(volume) if is_volume(volume) else volume
            flags = "rbind,create=dir" + (",ro" if opts.get("ro") == "1" else "")
            lines.append("lxc.mount.entry = %s %s none %s 0 0" % (source, opts["mp"].strip("/"), flags))
        return lines

    def volume_paths(self, ct):
        """The host paths of the container's mount point volumes (they must be reachable by its root)."""
        return [self.volume_path(volume) for dummy, volume, dummy2 in mount_points(ct.config) if is_volume(volume)]

    def detach_mount_point(self, ct, key):
        """A deleted mpN of a stopped container: its volume becomes unusedN, unless a snapshot references it
        (update_pct_config: add_unused_volume unless is_volume_in_use with snapshots)."""
        volume, dummy = options(ct.config.pop(key, None))
        if is_volume(volume):
            self.keep_unused(ct, volume)

    def keep_unused(self, ct, volume):
        """add_unused_volume: ``volume`` as the first free unusedN, unless a snapshot references it."""
        if in_snapshots(ct, volume):
            return
        number = 0
        while "unused%d" % number in ct.config:
            number += 1
        ct.config["unused%d" % number] = volume

    # -- who may mount a path -------------------------------------------------------

    @staticmethod
    def check_mount_perm(params, user):
        """PVE/LXC.pm check_ct_modify_config_perm, which create_vm and update_vm run before anything else: a bind
        or device mount point (an absolute path; PVE/LXC/Config.pm parse_volume types /dev/... as device) is
        root@pam's only (an API token of root@pam is not root@pam)."""
        from .lxc import _raw  # pylint: disable=import-outside-toplevel
        if user == "root@pam":
            return
        for key, value in params.items():
            if key != "rootfs" and not MP_KEY.match(key):
                continue
            volume = options(_raw(value))[0] or ""
            if volume.startswith("/"):
                kind = "device" if volume.startswith("/dev/") else "bind"
                raise ApiError(403, "Permission check failed (mount point type %s is only allowed for root@pam)"
                               % kind)

    # -- snapshots cover every volume ---------------------------------------------------

    def snapshot_volumes(self, config, action):
        """The volumes a snapshot covers (rootfs and every volume mount point: __snapshot_foreach_volume); all must
        be on a storage with snapshots ("snapshot feature is not available" otherwise)."""
        volumes = [config.get("rootfs", "").split(",")[0]]
        volumes += [volume for dummy, volume, dummy2 in mount_points(config)]
        for volume in volumes:
            # a bind or device mount point has no snapshot feature (pve-storage PVE/Storage.pm volume_has_feature
            # answers undef for a path), so PVE/LXC/Config.pm has_feature refuses a container that has one
            if not is_volume(volume) or self.storages.get(volume.split(":")[0], {}).get("type") != "zfspool":
                raise ApiError(500, "%s feature is not available" % action)
        return volumes

    # -- move_volume ---------------------------------------------------------------

    def move_volume(self, params, user):
        """POST /nodes/{node}/lxc/{vmid}/move_volume (pve-container PVE/API2/LXC.pm move_volume)."""
        vmid = int(params["vmid"])
        target_vmid = params.get("target-vmid")
        storage = params.get("storage")
        key = params["volume"]
        target_key = params.get("target-volume") or key
        if target_vmid is not None and storage:
            msg = "either set 'storage' or 'target-vmid', but not both"
            raise ApiError(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
        if target_vmid is None and not storage:
            msg = "both 'storage' and 'target-vmid' missing, either needs to be set"
            raise ApiError(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
        if storage:
            raise ApiError(501, "the API double does not move volumes between storages")
        target_vmid = int(target_vmid)
        self._reassign_checks(vmid, target_vmid, key, target_key, params)

        def work(task):
            with self.lock:
                source, target, volume, opts = self._reassign_checks(vmid, target_vmid, key, target_key, params)
                task.log("moving volume '%s' from container '%d' to '%d'" % (key, vmid, target_vmid))
                new = self._rename_volume(volume, target_vmid)
                del source.config[key]
                task.log("removing volume '%s' from container '%d' config" % (key, vmid))
                if UNUSED_KEY.match(target_key):
                    target.config[target_key] = new
                elif self.lxc_state(target)[0] == "running":
                    # update_pct_config of a running target: the new key waits in [pve:pending]
                    target.pending[target_key] = print_volume(new, opts)
                else:
                    target.config[target_key] = print_volume(new, opts)
                task.log("target container '%d' updated with '%s'" % (target_vmid, target_key))
            return 0

        return self.tasks.start("move_volume", "%d-%s>%d-%s" % (vmid, key, target_vmid, target_key), user, work)

    def _reassign_checks(self, vmid, target_vmid, key, target_key, params):
        """$load_and_check_reassign_configs: (source, target, volume, options), or the refusal."""
        source = self._ct(vmid)
        if source.lock:
            raise ApiError(500, "CT %d is locked (%s)" % (vmid, source.lock))
        target = self._ct(target_vmid)
        if target.lock:
            raise ApiError(500, "CT %d is locked (%s)" % (target_vmid, target.lock))
        if source.config.get("template") == "1" or target.config.get("template") == "1":
            raise ApiError(500, "Can't move volumes from or to template CT")
        modified = "detected modified configuration - file changed by other user? Try again."
        if params.get("digest") and params["digest"] != self.ct_digest(source):
            raise ApiError(500, "Container %d: %s" % (vmid, modified))
        if params.get("target-digest") and params["target-digest"] != self.ct_digest(target):
            raise ApiError(500, "Container %d: %s" % (target_vmid, modified))
        if key not in source.config:
            raise ApiError(500, "volume '%s' for container '%d' does not exist" % (key, vmid))
        if target_key in target.config:
            raise ApiError(500, "Target volume key '%s' is already in use for container '%d'" % (target_key, target_vmid))
        if UNUSED_KEY.match(key):
            volume, opts = source.config[key], {}
        else:
            volume, opts = options(source.config[key])
        if not volume:
            raise ApiError(500, "Volume '%s' has no associated image" % key)
        if in_snapshots(source, volume):
            raise ApiError(500, "Cannot move volume used by a snapshot to another container")
        if not is_volume(volume):
            raise ApiError(500, "Cannot move a bindmount or device mount to another container")
        if key == "rootfs" or MP_KEY.match(key):
            if self.lxc_state(source)[0] == "running":
                raise ApiError(500, "Cannot move in-use volume while the source CT is running - detach or shutdown "
                                    "first")
        return source, target, volume, opts

    def _rename_volume(self, volume, target_vmid):
        """pve-storage rename_volume: the volume under the target's first free disk name (a ZFS rename keeps its
        snapshots)."""
        storage = volume.split(":")[0]
        name = self._free_disk_name(storage, target_vmid)
        new = self._volid(storage, name, target_vmid)
        if self.storages[storage]["type"] == "zfspool":
            self._zfs_rename(self.dataset(volume), "%s/%s" % (self.storages[storage]["pool"], name))
        else:
            os.makedirs(os.path.dirname(self.volume_path(new)), exist_ok=True)
            os.rename(self.volume_path(volume), self.volume_path(new))
        return new

    def _zfs_rename(self, old, new, attempts=10):
        """``zfs rename`` (ZFS remounts a mounted dataset under its new name).  zfs-fuse answers "dataset is busy"
        for a dataset it has not let go of since a container used it: unmounted first, then renamed and mounted,
        a few times (a gap of zfs-fuse, as destroy_tree's)."""
        for attempt in range(attempts):
            proc = subprocess.run(["zfs", "rename", old, new], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, check=False)
            if proc.returncode == 0:
                subprocess.run(["zfs", "mount", new], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
                return
            if "busy" not in proc.stderr or attempt == attempts - 1:
                raise TaskFailed("zfs error: %s" % proc.stderr.strip())
            subprocess.run(["zfs", "unmount", "-f", old], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            time.sleep(0.3)
