"""Container endpoints: create, config, status, start/stop/shutdown/reboot, delete, resize, list."""

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time

from lxcri_testbed.bed import destroy_tree as destroy_dataset
from lxcri_testbed.pve_restore import UNPRIVILEGED_ID_MAP, restore_command

from ..schema import ApiError
from ..tasks import TaskFailed
from .oci_archive import import_oci_archive, is_oci_archive
from .ossetup import OsDetectError, detect_ostype
from .volumes import ALLOCATION, MP_KEY, mount_volume

# parameters of POST /nodes/{node}/lxc that are actions, not config keys
CREATE_ONLY = ("node", "vmid", "ostemplate", "password", "ssh-public-keys", "storage", "start", "restore",
               "force", "unique", "ignore-unpack-errors", "bwlimit", "pool", "ha-managed")


def _raw(value):
    """A typed property-string dict back to PVE's text form (the default key's value first, bare)."""
    if hasattr(value, "text"):
        return value.text()
    if isinstance(value, dict):
        return ",".join("%s=%s" % (k, v) for k, v in value.items())
    return str(value)


class Container:
    def __init__(self, vmid, config):
        self.vmid = vmid
        self.config = config  # key -> PVE text value
        self.status = "stopped"
        self.lock = None
        self.snapshots = {}
        self.pending = {}  # the config file's [pve:pending] section: key -> value ...
        self.pending_delete = []  # ... and its "delete:" list

    def digest(self, raw_lines=()):
        # PVE's digest is the sha1 of the config file (PVE::LXC::Config parse_pct_config: sha1_hex of the raw
        # text), where the lock is a line too: taking or releasing a lock changes it (a PUT with the digest read
        # before the lock was released fails, as on a real node); so is the [pve:pending] section, and so are the
        # lxc.* lines root wrote into the file on the node (``raw_lines``, LxcHost.file_raw_lines)
        items = dict(self.config, lock=self.lock) if self.lock else self.config
        text = "".join("%s: %s\n" % (k, v) for k, v in sorted(items.items()))
        text += "".join("%s: %s\n" % (k, v) for k, v in raw_lines if k not in items)
        if self.pending or self.pending_delete:
            text += "[pve:pending]\n" + "".join("%s: %s\n" % (k, v) for k, v in sorted(self.pending.items()))
            text += "delete: %s\n" % ",".join(self.pending_delete) if self.pending_delete else ""
        return hashlib.sha1(text.encode()).hexdigest()

    def merged(self):
        """The config with its pending changes applied: what GET .../config answers (without ``current``)."""
        out = dict(self.config, **self.pending)
        for key in self.pending_delete:
            out.pop(key, None)
        return out

    def drop_pending(self, key):
        """No pending change (value or delete) of ``key`` any more."""
        self.pending.pop(key, None)
        if key in self.pending_delete:
            self.pending_delete.remove(key)

    def apply_pending(self):
        """PVE::LXC::Config vmconfig_apply_pending (vm_start runs it before the start)."""
        self.config = self.merged()
        self.pending, self.pending_delete = {}, []


def id_map_of(config):
    """pve-container PVE::LXC::parse_id_maps: an unprivileged CT without its own lxc.idmap lines maps ids
    0..65535 to 100000.. ; a privileged one maps nothing (nor does the double model a CT's own lxc.idmap)."""
    if str(config.get("unprivileged", "0")) != "1" or "lxc.idmap" in config:
        return ()
    return UNPRIVILEGED_ID_MAP


def shift_owners(rootfs, id_map):
    """Every owner under ``rootfs`` moved into the id map (what extracting inside the user namespace gives);
    ids outside the map become its nobody (65534)."""
    (dummy_u, first_uid, uid_base, uid_count), (dummy_g, first_gid, gid_base, gid_count) = id_map
    paths = [rootfs]
    for top, dirs, files in os.walk(rootfs):
        paths += [os.path.join(top, name) for name in dirs + files]
    for path in paths:
        info = os.lstat(path)
        uid, gid = info.st_uid - first_uid, info.st_gid - first_gid
        new_uid = uid_base + (uid if 0 <= uid < uid_count else 65534)
        new_gid = gid_base + (gid if 0 <= gid < gid_count else 65534)
        if (new_uid, new_gid) == (info.st_uid, info.st_gid):
            continue
        os.lchown(path, new_uid, new_gid)
        if not os.path.islink(path) and info.st_mode & 0o6000:
            os.chmod(path, info.st_mode & 0o7777)  # chown drops setuid/setgid; the extraction kept them


# pve-container PVE/LXC/Config.pm: $LXC_FASTPLUG_OPTIONS, written at once on a running CT ...
FASTPLUG = ("description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock")
# ... and what vmconfig_hotplug_pending changes or deletes on it (cgroup limits, veth interfaces, new mount
# points and devices); every other change waits in [pve:pending] for the next start
HOTPLUG_SET = ("cpulimit", "cpuunits", "memory", "swap")
HOTPLUG_DELETE = ("swap", "cpulimit", "cpuunits")


def _keys(text):
    """The keys of a ``delete``/``revert`` list (PVE::Tools::split_list: commas, semicolons, spaces)."""
    return [key for key in re.split(r"[,;\s]+", text or "") if key]


def _hotpluggable(key, config, delete=False):
    if key in FASTPLUG or re.match(r"^net\d+$", key):
        return True
    if delete:
        return key in HOTPLUG_DELETE or bool(re.match(r"^unused\d+$", key))
    return key in HOTPLUG_SET or (bool(re.match(r"^(mp|dev)\d+$", key)) and key not in config)


class LxcEndpoints:
    """/nodes/{node}/lxc and /nodes/{node}/lxc/{vmid}/... except templates, clones and snapshots."""

    def ct_digest(self, ct):
        """The config's digest, covering the raw lines root wrote into its conf file (Container.digest)."""
        return ct.digest(self.file_raw_lines(ct.vmid))

    def _check_startable(self, ct):
        if ct.config.get("template") == "1":
            raise ApiError(500, "CT %d is a template - unable to start" % ct.vmid)
        if ct.lock:
            raise ApiError(500, "CT %d is locked (%s)" % (ct.vmid, ct.lock))

    # seconds until ha-manager's CRM acts on a request (pve-ha-manager: the CRM and LRM loops run every 10 s)
    HA_DELAY = 2.0

    def _ha_request(self, ct, user, kind, state, action):
        """pve-container PVE/API2/LXC/Status.pm for an HA-managed container: the ``hastart``/``hastop`` worker only
        asks ha-manager (``ha-manager set ct:<vmid> --state started``, crm-command stop) and ends OK; the LRM of the
        container's node does the start or stop a round later, as a task of its own."""
        def work(task):
            task.log("Requesting HA %s for CT %d" % ("start" if state == "started" else "stop", ct.vmid))

            def later():
                time.sleep(self.HA_DELAY)
                self.tasks.start("vzstart" if state == "started" else "vzstop", ct.vmid, "root@pam", action)
            threading.Thread(target=later, daemon=True).start()
            return 0
        return self.tasks.start(kind, ct.vmid, user, work)

    def lxc_start(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] == "running":
            raise ApiError(500, "CT %d already running" % ct.vmid)
        if ct.vmid in self.ha_resources:
            return self._ha_request(ct, user, "hastart", "started", lambda task: self._start_now(ct, task))
        self._check_startable(ct)

        def work(task):
            with self.lock:
                ct.apply_pending()  # PVE::LXC::vm_start: "apply pending changes while starting"
            return self._start_now(ct, task)

        return self.tasks.start("vzstart", ct.vmid, user, work)

    def lxc_reboot(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)
        timeout = params.get("timeout", 60)

        def work(task):
            self._lxc(ct, "lxc-stop", "--nokill", "-t", str(timeout))
            self._lxc(ct, "lxc-stop", "-k")
            with self.lock:
                ct.apply_pending()  # a reboot is a stop and a vm_start, which applies them
            return self._start_now(ct, task)  # as PVE: the LXC config is generated again (changed limits apply)

        return self.tasks.start("vzreboot", ct.vmid, user, work)

    def pending(self, params):
        """pve-container vm_pending (PVE::GuestHelpers config_with_pending_array): every key with its current
        ``value``, its ``pending`` value and ``delete: 1`` for a pending delete; raw lxc.* lines are left out."""
        ct = self._ct(params["vmid"])
        out = []
        config = dict(ct.config, digest=self.ct_digest(ct))
        for key in sorted(set(config) | set(ct.pending) | set(ct.pending_delete)):
            if key.startswith("lxc."):
                continue
            item = {"key": key}
            if key in config:
                item["value"] = config[key]
            if key in ct.pending:
                item["pending"] = ct.pending[key]
            if key in ct.pending_delete:
                item["delete"] = 1
            out.append(item)
        return out

    def lxc_stop(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)
        if ct.vmid in self.ha_resources:
            return self._ha_request(ct, user, "hastop", "stopped",
                                    lambda task: self._lxc(ct, "lxc-stop", "-k") and 0)

        def work(task):
            self._lxc(ct, "lxc-stop", "-k")
            return 0

        return self.tasks.start("vzstop", ct.vmid, user, work)

    def lxc_shutdown(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)
        timeout = params.get("timeout", 60)
        if ct.vmid in self.ha_resources:
            return self._ha_request(ct, user, "hastop", "stopped", lambda task: self._lxc(
                ct, "lxc-stop", "-t", str(timeout)) and 0)

        def work(task):
            # pve-container PVE::LXC::vm_stop: 'lxc-stop -n ID --nokill --timeout T' sends the halt signal
            # (lxc.signal.halt, SIGPWR by default) and waits; with forceStop it runs without --nokill, so lxc-stop
            # kills the container when T is over and the task says nothing of it. Without forceStop the failed
            # lxc-stop is warned about and the task dies with "container did not stop" (PVE then polls the
            # command socket for another T+5 s; the double does not wait that long).
            proc = self._lxc(ct, "lxc-stop", "--nokill", "-t", str(timeout))
            if self.lxc_state(ct)[0] == "running":
                if not params.get("forceStop"):
                    task.log("command 'lxc-stop -n %d --nokill --timeout %s' failed: exit code 1" % (ct.vmid, timeout))
                    raise TaskFailed("container did not stop")
                self._lxc(ct, "lxc-stop", "-k")
            elif proc.returncode != 0:
                task.log(proc.stdout.strip())
            return 0

        return self.tasks.start("vzshutdown", ct.vmid, user, work)

    def _entry(self, ct):
        """A container as pve-container's PVE/LXC.pm vmstatus answers it (live): ``template`` and ``lock``
        only when set, ``tags`` only when defined."""
        ct.status = self.lxc_state(ct)[0]
        entry = {"vmid": ct.vmid, "name": ct.config.get("hostname", "CT%d" % ct.vmid), "status": ct.status,
                 "type": "lxc", "maxmem": int(ct.config.get("memory", "512")) * 1024 * 1024,
                 "cpus": int(ct.config.get("cores", "1"))}
        if ct.config.get("template") == "1":
            entry["template"] = 1
        if ct.lock:
            entry["lock"] = ct.lock
        if ct.config.get("tags") is not None:
            entry["tags"] = ct.config["tags"]
        return entry

    def lxc_list(self, params):
        self._node(params["node"])
        return [self._entry(ct) for ct in sorted(self.containers.values(), key=lambda c: c.vmid)]

    def typed_config(self, config):
        """The config as PVE's JSON has it: integer, number and boolean keys as numbers."""
        props = self.schema.endpoints["/nodes/{node}/lxc/{vmid}/config"]["GET"]["returns"].get("properties") or {}
        out = {}
        for key, value in config.items():
            kind = (props.get(key) or {}).get("type")
            try:
                out[key] = int(value) if kind in ("integer", "boolean") else float(value) if kind == "number" \
                    else value
            except ValueError:
                out[key] = value
        return out

    def config_get(self, params):
        """The config as PVE answers it: typed, raw ``lxc.*`` lines as one ``lxc`` list of [key, value]."""
        ct = self._ct(params["vmid"])
        # vm_config: pending values merged in, unless ``current`` asks for the values in use
        config = ct.config if params.get("current") else ct.merged()
        data = self.typed_config(dict((k, v) for k, v in config.items() if not k.startswith("lxc.")))
        raw = [[k, v] for k, v in sorted(config.items()) if k.startswith("lxc.")]
        raw += [[k, v] for k, v in self.file_raw_lines(ct.vmid) if k not in config]  # root's lines in the file
        if raw:
            data["lxc"] = raw
        data["digest"] = self.ct_digest(ct)
        if ct.lock:
            data["lock"] = ct.lock
        return data

    def status_current(self, params):
        ct = self._ct(params["vmid"])
        data = self._entry(ct)
        data["ha"] = {"managed": 1 if ct.vmid in self.ha_resources else 0}
        return data

    def lxc_interfaces(self, params):
        """pve-container PVE/API2/LXC.pm ``ip`` (GET .../interfaces): PVE::LXC::get_interfaces (lxc_host)."""
        return self.interfaces(self._ct(params["vmid"]))

    # -- writes -------------------------------------------------------------------------
    def _check_pool(self, params):
        if params.get("pool") is not None and params["pool"] not in self.pools:
            raise ApiError(403, "Permission check failed (pool '%s' does not exist)" % params["pool"])

    def _register(self, vmid, params, task):
        """After a successful create/clone, as PVE: add_vm_to_pool, and an HA resource for ha-managed."""
        if params.get("pool"):
            with self.lock:
                self.pools[params["pool"]].add(vmid)
        if params.get("ha-managed"):
            task.log("Add as HA resource")
            self.ha_resources.add(vmid)

    def lxc_create(self, params, user):
        self._node(params["node"])
        self.check_mount_perm(params, user)
        self._check_pool(params)
        # PVE/API2/LXC.pm create_vm: $check_and_activate_storage for the storage of every volume mount point
        # (bind and device mounts have none), and for the rootfs's (``storage``, default local, without one)
        used = [mount_volume(_raw(params[key])) for key in sorted(params) if key == "rootfs" or MP_KEY.match(key)]
        if params.get("rootfs") is None:
            used.append("%s:" % (params.get("storage") or "local"))
        for storage in sorted(set(volume.partition(":")[0] for volume in used if volume)):
            info = self.activate_storage(storage)
            if "rootdir" not in info["content"].split(","):
                raise ApiError(400, "Parameter verification failed.",
                               {"storage": "storage '%s' does not support container directories" % storage})
        vmid = params["vmid"]
        with self.lock:
            if self.vmid_owner(vmid):
                raise ApiError(500, "CT %d already exists on node '%s'" % (vmid, self.vmid_owner(vmid)))
            config = dict((k, _raw(v)) for k, v in params.items() if k not in CREATE_ONLY)
            config.setdefault("arch", "amd64")
            ct = Container(vmid, config)
            ct.lock = "create"
            self.containers[vmid] = ct
        template = self.volume_path(params["ostemplate"])
        storage, dummy, size = (params.get("rootfs") or {}).get("volume", "local:0").partition(":")
        if storage not in self.storages:
            with self.lock:
                self.containers.pop(vmid, None)
            raise ApiError(500, "storage '%s' does not exist" % storage)
        zfs = self.storages[storage]["type"] == "zfspool"

        made = []  # the mount point volumes allocated so far

        def cleanup(task):
            if zfs:
                destroy_dataset("%s/subvol-%d-disk-0" % (self.storages[storage]["pool"], vmid))
            else:
                shutil.rmtree(os.path.join(self.storages[storage]["path"], "images", str(vmid)), ignore_errors=True)
            for volume in made:  # create_disks' cleanup: what it allocated goes again
                if self.storages[volume.split(":")[0]]["type"] == "zfspool":
                    destroy_dataset(self.dataset(volume))
                else:
                    shutil.rmtree(os.path.join(self.storages[volume.split(":")[0]]["path"], "images", str(vmid)),
                                  ignore_errors=True)
            with self.lock:
                self.containers.pop(vmid, None)
            ct.lock = None

        def work(task):
            try:
                if not os.path.isfile(template):
                    raise TaskFailed("volume '%s' does not exist" % params["ostemplate"])
                if zfs:
                    name = "subvol-%d-disk-0" % vmid
                    args = ["create", "-o", "xattr=on"]
                    if size and size != "0":
                        args += ["-o", "refquota=%sG" % size]
                    self._zfs(*(args + ["%s/%s" % (self.storages[storage]["pool"], name)]))
                    rootfs = self.volume_path("%s:%s" % (storage, name))
                else:
                    name = "%d/subvol-%d-disk-0.subvol" % (vmid, vmid)
                    rootfs = self.volume_path("%s:%s" % (storage, name))
                    os.makedirs(rootfs)
                id_map = id_map_of(ct.config)
                if id_map:
                    # the restore runs as the container's root (PVE::LXC::userns_command): it owns the rootfs
                    os.chown(rootfs, id_map[0][2], id_map[1][2])
                # create_disks: the mount points' volumes too (rootfs is disk-0)
                made.extend(self.allocate_mount_points(ct))
                if self.mode.startswith("9") and is_oci_archive(template):
                    task.log("detected OCI archive '%s'" % template)
                    ct.config.update(import_oci_archive(template, rootfs, task, ct.config, self.importer))
                    if id_map:
                        # restore_oci_archive extracts inside the user namespace (run_in_userns): owners shifted
                        shift_owners(rootfs, id_map)
                    ct.config["rootfs"] = "%s:%s" % (storage, name) + (",size=%sG" % size if zfs and size != "0"
                                                                       else "")
                    self.fill_mount_points(ct, rootfs)
                    self._setup_os(ct, rootfs, task)
                    return 0
                task.log("extracting archive '%s'" % template)
                # pve-container PVE::LXC::Create::restore_tar_archive (lxcri_testbed/pve_restore.py)
                # unprivileged: tar runs as the mapped root, which cannot reach the double's directories: it reads
                # the template from stdin and extracts into its working directory, both opened as root.  zfs-fuse
                # refuses a chown made inside a user namespace (a gap of zfs-fuse, not of ZFS): on zfspool the
                # restore runs as root and the owners are shifted after, which leaves the same files
                in_userns = bool(id_map) and not zfs
                argv = restore_command(template, ".", id_map) if in_userns else restore_command(template, rootfs)
                if in_userns:
                    argv[argv.index(str(template))] = "-"
                with open(template, "rb") as archive:
                    proc = subprocess.run(argv, stdin=archive if in_userns else subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                          check=False, cwd=rootfs)
                for line in proc.stdout.splitlines():
                    task.log(line)
                if proc.returncode != 0:
                    raise TaskFailed("unable to create CT %d - command 'tar xpf %s' failed: exit code %d"
                                     % (vmid, template, proc.returncode))
                if id_map and not in_userns:
                    shift_owners(rootfs, id_map)
                ct.config["rootfs"] = "%s:%s" % (storage, name) + (",size=%sG" % size if zfs and size != "0"
                                                                   else "")
                self.fill_mount_points(ct, rootfs)
                self._setup_os(ct, rootfs, task)
            finally:
                ct.lock = None
            return 0

        def create_and_register(task):
            work(task)
            self._register(vmid, params, task)
            return 0

        return self.tasks.start("vzcreate", vmid, user, create_and_register, cleanup)

    @staticmethod
    def _setup_os(ct, rootfs, task):
        """pve-container PVE/API2/LXC.pm create_vm: ``PVE::LXC::Setup->new`` detects the OS (ossetup.py) and the
        config is written with it; an OS it cannot detect fails the create."""
        try:
            ct.config["ostype"] = detect_ostype(rootfs, ct.config, lambda text: task.log("WARN: " + text))
        except OsDetectError as exc:
            raise TaskFailed(str(exc))

    def config_put(self, params, user="root@pam"):
        ct = self._ct(params["vmid"])
        self.check_mount_perm(params, user)
        with self.lock:
            if ct.lock:
                raise ApiError(500, "CT %s is locked (%s)" % (ct.vmid, ct.lock))
            if params.get("digest") and params["digest"] != self.ct_digest(ct):
                raise ApiError(500, "detected modified configuration - file changed by other user? "
                                    "Try again.")
            # PVE/LXC/Config.pm update_pct_config $check_content_type for a volume mount point: its storage exists
            # (storage_config) and holds rootdir; then vmconfig_apply_pending's create_disks activates the storage
            # of an allocation (PVE/Storage.pm vdisk_alloc).  A real node keeps a change whose activation failed
            # pending and answers 400 naming it; the double refuses it whole, changing nothing
            for key in sorted(params):
                volume = mount_volume(_raw(params[key])) if MP_KEY.match(key) else None
                if not volume:
                    continue
                storage = volume.partition(":")[0]
                if storage not in self.storages:
                    raise ApiError(500, "storage '%s' does not exist" % storage)
                if "rootdir" not in self.storages[storage]["content"].split(","):
                    raise ApiError(500, "storage '%s' does not allow content type 'rootdir' (Container)" % storage)
                if ALLOCATION.match(volume):
                    try:
                        self.activate_storage(storage)
                    except ApiError as exc:
                        raise ApiError(400, "Parameter verification failed.",
                                       {key: "unable to apply pending change %s : %s" % (key, exc.message)})
            # pve-container PVE/LXC/Config.pm update_pct_config: deletes and changes go into [pve:pending]; then a
            # running CT takes what vmconfig_hotplug_pending can change live, a stopped one everything
            # (vmconfig_apply_pending)
            running = self.lxc_state(ct)[0] == "running"
            live = []
            replaced = dict((key, mount_volume(ct.config.get(key))) for key in params
                            if re.match(r"^mp\d+$", key) and key in ct.config)
            for key in _keys(params.get("revert")):
                ct.drop_pending(key)
            for key in _keys(params.get("delete")):
                ct.drop_pending(key)
                if not running and re.match(r"^mp\d+$", key):
                    self.detach_mount_point(ct, key)  # its volume becomes unusedN (volumes.py)
                elif not running or _hotpluggable(key, ct.config, delete=True):
                    ct.config.pop(key, None)
                else:
                    ct.pending_delete.append(key)
            for key, value in params.items():
                if key in ("node", "vmid", "digest", "delete", "revert"):
                    continue
                ct.drop_pending(key)
                if value is None:
                    # $conf->{pending}->{env} = undef, and vmconfig_apply_pending moves the undef into the config,
                    # which write_config leaves out: an empty value removes the key (a running CT keeps no undef
                    # pending change)
                    if not running:
                        ct.config.pop(key, None)
                elif not running or _hotpluggable(key, ct.config):
                    if running and re.match(r"^net\d+$", key) and ct.config.get(key) != _raw(value):
                        live.append((key, ct.config.get(key), _raw(value)))
                    ct.config[key] = _raw(value)
                elif ct.config.get(key) != _raw(value):  # cleanup_pending drops one equal to the current value
                    ct.pending[key] = _raw(value)
            # create_disks for a new mount point given as STORAGE:SIZE (vmconfig_apply_pending, or the hot-plug of
            # a running CT, which the double mounts only at the next start)
            new_mps = [key for key in params if re.match(r"^mp\d+$", key) and key in ct.config]
            if new_mps:
                try:
                    self.allocate_mount_points(ct, new_mps)
                except TaskFailed as exc:
                    raise ApiError(500, str(exc))
                # a mount point given another volume: the old one is kept as unusedN (update_pct_config,
                # add_unused_volume), unless a snapshot still references it
                for key, old in replaced.items():
                    if old and old != mount_volume(ct.config.get(key)):
                        self.keep_unused(ct, old)
        # vmconfig_hotplug_pending -> PVE::LXC::update_net for each changed netN of a running container (outside
        # the double's global lock: a real node holds only this container's config lock meanwhile)
        for key, old, new in live:
            self.update_net(ct, key, old, new)
        return None

    def _volumes(self, ct):
        """The volume ids the config references (rootfs, mpN, unusedN)."""
        out = []
        for key, value in sorted(ct.config.items()):
            if key == "rootfs" or key.startswith(("mp", "unused")):
                volume = str(value).split(",", 1)[0]
                if ":" in volume and volume.split(":")[0] in self.storages:
                    out.append(volume)
        return out

    def _owned_volumes(self, vmid):
        """Every volume on the node's storages that belongs to ``vmid`` by Proxmox's naming."""
        out = []
        for name, info in sorted(self.storages.items()):
            if info["type"] == "zfspool":
                listing = subprocess.run(["zfs", "list", "-H", "-o", "name", "-d", "1", info["pool"]],
                                         stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
                for dataset in listing.split():
                    base = dataset.rpartition("/")[2]
                    if base.startswith(("subvol-%d-disk-" % vmid, "basevol-%d-disk-" % vmid)):
                        out.append("%s:%s" % (name, base))
            else:
                images = os.path.join(info["path"], "images", str(vmid))
                if os.path.isdir(images):
                    out.extend("%s:%d/%s" % (name, vmid, entry) for entry in sorted(os.listdir(images)))
        return out

    def _free(self, volume, task):
        task.log("removing %s" % volume)
        if self.storages[volume.split(":")[0]]["type"] == "zfspool":
            if not destroy_dataset(self.dataset(volume)):
                raise TaskFailed("zfs error: cannot destroy %s: dataset is busy" % self.dataset(volume))
        else:
            path = self.volume_path(volume)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)

    def lxc_delete(self, params, user):
        """DELETE .../lxc/{vmid} in pve-container's order: protection, lock, HA without ``purge``, then running
        (``force`` stops it first, a warning as on PVE). Only the config's volumes go, unless
        ``destroy-unreferenced-disks`` (then every ``subvol-/basevol-<vmid>-disk-N`` dataset and ``images/<vmid>/``
        entry too). Pool membership always goes (PVE's remove_vm_access runs on every destroy); ``purge`` also
        drops the HA resource. The double keeps no ACLs, firewall, backup or replication jobs to remove."""
        ct = self._ct(params["vmid"])
        if str(ct.config.get("protection")) == "1":
            raise ApiError(500, "can't remove CT %s - protection mode enabled" % ct.vmid)
        if ct.lock:
            # pve-guest-common's check_lock names the guest type only (the double's other checks add the id)
            raise ApiError(500, "CT is locked (%s)" % ct.lock)
        if ct.vmid in self.ha_resources and not params.get("purge"):
            raise ApiError(500, "unable to remove CT %s - used in HA resources and purge parameter not set." % ct.vmid)
        running = self.lxc_state(ct)[0] == "running"
        if running and not params.get("force"):
            raise ApiError(500, "unable to destroy CT %s - container is running" % ct.vmid)
        ct.lock = "destroyed"

        def work(task):
            warnings = 0
            if self.lxc_state(ct)[0] == "running":
                task.log("WARN: forced to stop CT %d before destroying!" % ct.vmid)
                warnings += 1
                self._lxc(ct, "lxc-stop", "-k")
            referenced = self._volumes(ct)
            for volume in referenced:
                self._free(volume, task)
            if params.get("destroy-unreferenced-disks"):
                for volume in self._owned_volumes(ct.vmid):
                    if volume not in referenced:
                        self._free(volume, task)
            images = os.path.join(self.storages["local"]["path"], "images", str(ct.vmid))
            if os.path.isdir(images) and not os.listdir(images):
                os.rmdir(images)
            shutil.rmtree(os.path.join(self.lxc_path, str(ct.vmid)), ignore_errors=True)
            with self.lock:
                for members in self.pools.values():
                    members.discard(ct.vmid)
                if params.get("purge"):
                    task.log("purging CT %d from related configurations.." % ct.vmid)
                    if ct.vmid in self.ha_resources:
                        self.ha_resources.discard(ct.vmid)
                        task.log("NOTE: removed CT %d from HA resource configuration." % ct.vmid)
                self.containers.pop(ct.vmid, None)
            return warnings

        def cleanup(task):
            ct.lock = None

        return self.tasks.start("vzdestroy", ct.vmid, user, work, cleanup)

    SIZE_UNITS = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}

    def _bytes(self, text):
        text = str(text)
        unit = text[-1] if text[-1] in self.SIZE_UNITS else None
        return int(float(text[:-1] if unit else text) * (self.SIZE_UNITS[unit] if unit else 1))

    @staticmethod
    def _size_text(size):
        for unit, factor in (("T", 1024 ** 4), ("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
            if size % factor == 0:
                return "%d%s" % (size // factor, unit)
        return str(size)

    def lxc_resize(self, params, user):
        """PUT .../resize: grow a volume (never shrink), as pve-container does, in a worker task."""
        ct = self._ct(params["vmid"])
        with self.lock:
            if ct.lock:
                raise ApiError(500, "CT %s is locked (%s)" % (ct.vmid, ct.lock))
            if params.get("digest") and params["digest"] != self.ct_digest(ct):
                raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
            disk = params["disk"]
            if disk not in ct.config:
                raise ApiError(500, "unable to resize - disk '%s' does not exist" % disk)
            parts = ct.config[disk].split(",")
            volume, options = parts[0], dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            current = self._bytes(options.get("size", "0"))
            size = params["size"]
            new = current + self._bytes(size[1:]) if size.startswith("+") else self._bytes(size)
            if new < current:
                raise ApiError(500, "unable to shrink disk size")

        def work(task):
            if self.storages[volume.split(":")[0]]["type"] == "zfspool":
                self._zfs("set", "refquota=%d" % new, self.dataset(volume))
            options["size"] = self._size_text(new)
            ct.config[disk] = ",".join([volume] + ["%s=%s" % item for item in options.items()])
            task.log("resized %s to %s" % (volume, options["size"]))
            return 0

        return self.tasks.start("resize", ct.vmid, user, work)
