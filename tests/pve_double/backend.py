"""What the Proxmox VE API test double does behind each endpoint.

State lives in memory; storage is real: a ``dir`` storage under the
double's directory (template cache, container root directories).  Work that
PVE does in workers (create, delete, start, ...) runs as asynchronous tasks.
"""

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time

from lxcri_testbed.bed import destroy_tree as destroy_dataset
from lxcri_testbed.lxc import config_lines, ensure_mountpoints, lxc_info
from lxcri_testbed.pve_restore import restore_command

from .schema import ApiError, Schema
from .tasks import TaskFailed, TaskManager

VERSIONS = {"9.1": ("9.1.1", "9.1"), "8": ("8.4.1", "8.4")}
# pve-storage's $VZTMPL_EXT_RE_1 (PVE/Storage.pm), anchored at the end of the name as PVE/Storage/Plugin.pm's
# $get_subdir_files (list_volumes' vztmpl listing) anchors it; the capture gives the listed format (tar or t<ext>)
VZTMPL_NAME = re.compile(r"^[^/]+\.(?:(tar)|tar\.(gz|xz|zst|bz2))$", re.IGNORECASE)
CGROUP_ROOT = "/sys/fs/cgroup"


def network_lines(config, warnings, sys_net="/sys/class/net", vmid=None):
    """``lxc.net.*`` for the container's netN: a veth on the named bridge when the host has that bridge
    (name, hwaddr, mtu; the host end named ``veth<vmid>i<N>`` as PVE names it; a static ``ip``/``gw`` as LXC's
    own ipv4 keys, since the double runs no setup inside the container), else nothing for it and a warning.
    None: no usable interface (empty network)."""
    lines, index = [], 0
    for key in sorted((k for k in config if k.startswith("net") and k[3:].isdigit()), key=lambda k: int(k[3:])):
        opts = dict(part.split("=", 1) for part in str(config[key]).split(",") if "=" in part)
        bridge = opts.get("bridge")
        if not bridge or not os.path.isdir(os.path.join(sys_net, bridge, "bridge")):
            warnings.append("%s: bridge %r does not exist on this host, interface left out" % (key, bridge))
            continue
        prefix = "lxc.net.%d." % index
        lines += [prefix + "type = veth", prefix + "link = %s" % bridge, prefix + "flags = up",
                  prefix + "name = %s" % opts.get("name", "eth%d" % index)]
        if vmid is not None:
            lines.append(prefix + "veth.pair = veth%di%s" % (vmid, key[3:]))
        if opts.get("hwaddr"):
            lines.append(prefix + "hwaddr = %s" % opts["hwaddr"])
        if opts.get("mtu"):
            lines.append(prefix + "mtu = %s" % opts["mtu"])
        if "/" in opts.get("ip", ""):
            lines.append(prefix + "ipv4.address = %s" % opts["ip"])
            if opts.get("gw"):
                lines.append(prefix + "ipv4.gateway = %s" % opts["gw"])
        index += 1
    return lines or None


def cgroup_limits(config, root, warnings):
    """LXC lines for ``memory``/``swap`` (MiB), ``cores`` (a cpuset) and ``cpulimit`` (a CPU quota), for the
    host's cgroup layout: v2 controllers, else v1 ones; what the host lacks becomes a warning."""
    lines = []
    memory = int(config["memory"]) * 1024 * 1024 if config.get("memory") else None
    swap = int(config.get("swap", 512)) * 1024 * 1024
    cores = int(config["cores"]) if config.get("cores") else None
    cpulimit = float(config["cpulimit"]) if config.get("cpulimit") not in (None, "0") else None
    cpus = os.cpu_count() or 1
    if os.path.exists(os.path.join(root, "cgroup.controllers")):  # unified (v2)
        available = open(os.path.join(root, "cgroup.controllers")).read().split()
        if memory and "memory" in available:
            lines.append("lxc.cgroup2.memory.max = %d" % memory)
            # the root cgroup has no memory.swap.max: a child's shows whether the kernel accounts swap
            if any(os.path.exists(os.path.join(root, entry, "memory.swap.max")) for entry in os.listdir(root)):
                lines.append("lxc.cgroup2.memory.swap.max = %d" % swap)
            else:
                warnings.append("no swap accounting: swap %d MiB not enforced" % (swap >> 20))
        elif memory:
            warnings.append("no memory controller: memory %d MiB not enforced" % (memory >> 20))
        if cores and "cpuset" in available:
            lines.append("lxc.cgroup2.cpuset.cpus = 0-%d" % (min(cores, cpus) - 1))
        elif cores:
            warnings.append("no cpuset controller: cores %d not enforced" % cores)
        if cpulimit and "cpu" in available:
            lines.append("lxc.cgroup2.cpu.max = %d 100000" % int(cpulimit * 100000))
        elif cpulimit:
            warnings.append("no cpu controller: cpulimit %s not enforced" % cpulimit)
        return lines
    v1 = dict((name, os.path.isdir(os.path.join(root, name))) for name in ("memory", "cpuset", "cpu"))
    if memory and v1["memory"]:
        lines.append("lxc.cgroup.memory.limit_in_bytes = %d" % memory)
        if os.path.exists(os.path.join(root, "memory", "memory.memsw.limit_in_bytes")):
            lines.append("lxc.cgroup.memory.memsw.limit_in_bytes = %d" % (memory + swap))
        else:
            warnings.append("no memsw accounting: swap %d MiB not enforced" % (swap >> 20))
    elif memory:
        warnings.append("no memory controller: memory %d MiB not enforced" % (memory >> 20))
    if cores and v1["cpuset"]:
        lines.append("lxc.cgroup.cpuset.cpus = 0-%d" % (min(cores, cpus) - 1))
    elif cores:
        warnings.append("no cpuset controller: cores %d not enforced" % cores)
    if cpulimit and v1["cpu"]:
        lines += ["lxc.cgroup.cpu.cfs_period_us = 100000", "lxc.cgroup.cpu.cfs_quota_us = %d" % int(cpulimit * 100000)]
    elif cpulimit:
        warnings.append("no cpu controller: cpulimit %s not enforced" % cpulimit)
    return lines


# parameters of POST /nodes/{node}/lxc that are actions, not config keys
CREATE_ONLY = ("node", "vmid", "ostemplate", "password", "ssh-public-keys", "storage", "start", "restore",
               "force", "unique", "ignore-unpack-errors", "bwlimit", "pool", "ha-managed")


def _meminfo(keys):
    """kB values of /proc/meminfo (node status reports the host's memory)."""
    with open("/proc/meminfo") as handle:
        pairs = (line.split(":", 1) for line in handle)
        return dict((k, int(v.split()[0])) for k, v in pairs if k in keys)


def _raw(value):
    """A typed property-string dict back to PVE's text form (the default key's value first, bare)."""
    if hasattr(value, "text"):
        return value.text()
    if isinstance(value, dict):
        return ",".join("%s=%s" % (k, v) for k, v in value.items())
    return str(value)


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
              "application/vnd.oci.image.layer.v1.tar+zstd")


def is_oci_archive(path):
    import tarfile  # pylint: disable=import-outside-toplevel
    try:
        with tarfile.open(path) as tar:
            names = set(m.name.lstrip("./") for m in tar.getmembers()[:64])
    except (tarfile.TarError, OSError):
        return False
    return "oci-layout" in names and "index.json" in names


def import_oci_archive(path, rootfs, task):
    """Proxmox VE 9.1's OCI import as documented: the FIRST manifest of index.json, OCI media types
    only, layers applied in order with whiteouts, and the runtime config mapped onto config keys."""
    import json  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    with tarfile.open(path) as archive:
        def blob(digest):
            member = archive.getmember("blobs/%s" % digest.replace(":", "/"))
            return archive.extractfile(member).read()

        index = json.loads(archive.extractfile(archive.getmember("index.json")).read())
        desc = index["manifests"][0]
        if desc.get("mediaType") != OCI_MANIFEST:
            raise TaskFailed("unsupported OCI manifest media type '%s'" % desc.get("mediaType"))
        manifest = json.loads(blob(desc["digest"]))
        config = json.loads(blob(manifest["config"]["digest"])).get("config") or {}
        for layer in manifest["layers"]:
            if layer.get("mediaType") not in OCI_LAYERS:
                raise TaskFailed("unsupported OCI layer media type '%s'" % layer.get("mediaType"))
            fd, tmp = tempfile.mkstemp()
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob(layer["digest"]))
                with tarfile.open(tmp) as layer_tar:
                    for member in layer_tar.getmembers():
                        base = os.path.basename(member.name)
                        target = os.path.join(rootfs, os.path.dirname(member.name).lstrip("./"))
                        if base == ".wh..wh..opq":
                            for entry in os.listdir(target) if os.path.isdir(target) else []:
                                _remove(os.path.join(target, entry))
                        elif base.startswith(".wh."):
                            _remove(os.path.join(target, base[len(".wh."):]))
                proc = subprocess.run(["tar", "xpf", tmp, "--numeric-owner", "--exclude", ".wh.*", "-C", rootfs],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                      check=False)
                if proc.returncode != 0:
                    raise TaskFailed("extracting layer %s failed: %s" % (layer["digest"], proc.stdout.strip()))
            finally:
                os.unlink(tmp)
            task.log("applied layer %s" % layer["digest"])
    keys = {}
    argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    if argv:
        keys["entrypoint"] = " ".join('"%s"' % a if " " in a else a for a in argv)
    if config.get("Env"):
        keys["env"] = "\0".join(config["Env"])
    if config.get("WorkingDir"):
        keys["lxc.init.cwd"] = config["WorkingDir"]
    user = config.get("User") or ""
    uid, dummy, gid = user.partition(":")
    if uid.isdigit():
        keys["lxc.init.uid"] = uid
        keys["lxc.init.gid"] = gid if gid.isdigit() else uid
    if config.get("StopSignal"):
        keys["lxc.signal.halt"] = config["StopSignal"]
    return keys


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


class Container:
    def __init__(self, vmid, config):
        self.vmid = vmid
        self.config = config  # key -> PVE text value
        self.status = "stopped"
        self.lock = None
        self.snapshots = {}

    def digest(self):
        # PVE's digest is the sha1 of the config file, where the lock is a line too: taking or releasing a lock
        # changes it (a PUT with the digest read before the lock was released fails, as on a real node)
        items = dict(self.config, lock=self.lock) if self.lock else self.config
        text = "".join("%s: %s\n" % (k, v) for k, v in sorted(items.items()))
        return hashlib.sha1(text.encode()).hexdigest()


class Backend:
    def __init__(self, root, mode="9.1", node="pve1", zfs_root=None, vmid_range=(100, 999999999),
                 dir_storages=None):
        """``vmid_range``: what nextid hands out (datacenter.cfg's next-id lower/upper); ``dir_storages``:
        more ``dir`` storages as {name: path}, besides ``local`` (and ``local-zfs`` with ``zfs_root``)."""
        self.root = root
        self.mode = mode
        self.node = node
        self.vmid_range = tuple(vmid_range)
        self.tasks = TaskManager(node)
        self.lock = threading.RLock()
        self.containers = {}
        self.schema = Schema(mode)
        self.nextid_answers = []  # tests script GET /cluster/nextid (e.g. the same id twice: a race)
        # user.cfg and ha/resources.cfg as far as containers are concerned: pool -> member vmids (tests add
        # pools, as an admin would: backend.pools["ci"] = set()), and the vmids created with ha-managed=1
        self.pools = {}
        self.ha_resources = set()
        self.storages = {"local": {"type": "dir", "path": os.path.join(root, "storage", "local"),
                                   "content": "vztmpl,rootdir,iso,backup,snippets"}}
        for name, path in sorted((dir_storages or {}).items()):
            self.storages[name] = {"type": "dir", "path": path, "content": "vztmpl,rootdir,iso,backup,snippets"}
        for info in self.storages.values():
            for sub in ("template/cache", "images"):
                os.makedirs(os.path.join(info["path"], sub), exist_ok=True)
        if zfs_root:
            # a zfspool storage on (a dataset of) the test bed's zfs-fuse pool, with Proxmox naming
            subprocess.run(["zfs", "create", "-p", zfs_root], check=True)
            self.storages["local-zfs"] = {"type": "zfspool", "pool": zfs_root, "content": "rootdir,images",
                                          "path": self._zfs_get(zfs_root, "mountpoint")}

    # -- helpers ------------------------------------------------------------------
    def _node(self, node):
        if node != self.node:
            raise ApiError(500, "hostname lookup '%s' failed - failed to get address info for: %s" % (node, node))

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
        storage, dummy, name = volid.split(",")[0].partition(":")
        return "%s/%s" % (self.storages[storage]["pool"], name)

    def volume_path(self, volid):
        storage, sep, name = volid.partition(":")
        info = self.storages.get(storage)
        if not sep or info is None:
            raise ApiError(500, "storage '%s' does not exist" % storage)
        if info["type"] == "zfspool":
            return self._zfs_get("%s/%s" % (info["pool"], name.split(",")[0]), "mountpoint")
        if name.startswith("vztmpl/"):
            return os.path.join(info["path"], "template", "cache", name[len("vztmpl/"):])
        return os.path.join(info["path"], "images", name)

    # -- read endpoints -------------------------------------------------------------
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

    # -- storage ------------------------------------------------------------------------
    def storage_list(self, params):
        self._node(params["node"])
        out = []
        for name, info in sorted(self.storages.items()):
            st = os.statvfs(info["path"])
            out.append({"storage": name, "type": info["type"], "content": info["content"], "active": 1,
                        "enabled": 1, "shared": 0, "total": st.f_blocks * st.f_frsize,
                        "avail": st.f_bavail * st.f_frsize, "used": (st.f_blocks - st.f_bfree) * st.f_frsize})
        wanted = params.get("content")
        return [e for e in out if not wanted or wanted in e["content"].split(",")]

    def _storage(self, name):
        info = self.storages.get(name)
        if info is None:
            raise ApiError(500, "storage '%s' does not exist" % name)
        return info

    def storage_content(self, params):
        self._node(params["node"])
        name = params["storage"]
        info = self._storage(name)
        out = []
        cache = os.path.join(info["path"], "template", "cache")
        for entry in sorted(os.listdir(cache)):
            path = os.path.join(cache, entry)
            match = VZTMPL_NAME.match(entry)
            # a glob of <dir>/* skips dot files; anything else (a sidecar *.tar.zst.json, say) is no template
            if os.path.isfile(path) and not entry.startswith(".") and match:
                ext = match.group(1) or match.group(2)
                out.append({"volid": "%s:vztmpl/%s" % (name, entry), "content": "vztmpl",
                            "format": ext if ext == "tar" else "t" + ext,
                            "size": os.path.getsize(path), "ctime": int(os.path.getmtime(path))})
        images = os.path.join(info["path"], "images")
        for vmid in sorted(os.listdir(images)):
            for entry in sorted(os.listdir(os.path.join(images, vmid))):
                out.append({"volid": "%s:%s/%s" % (name, vmid, entry), "content": "rootdir", "format": "subvol",
                            "size": 0, "vmid": int(vmid) if vmid.isdigit() else None})
        wanted = params.get("content")
        return [e for e in out if not wanted or e["content"] == wanted]

    TEMPLATE_EXTENSIONS = (".tar.gz", ".tar.xz", ".tar.zst", ".tar")

    def oci_registry_pull(self, params, user):
        """9.1: pull an image through a registry client into the storage as an OCI archive (vztmpl).

        The double uses skopeo as its registry client (a test tool; the collection never does).
        Test registries on loopback speak plain HTTP, so TLS verification is off for 127.0.0.1 only.
        """
        self._node(params["node"])
        info = self._storage(params["storage"])
        if "vztmpl" not in info["content"].split(","):
            raise ApiError(500, "storage '%s' does not support content type 'vztmpl'" % params["storage"])
        reference = params["reference"]
        repo, dummy, tag = reference.rpartition(":")
        filename = params.get("filename") or "%s_%s.tar" % (repo.rsplit("/", 1)[-1], tag)
        if not filename.endswith(".tar"):
            filename += ".tar"
        target = os.path.join(info["path"], "template", "cache", filename)
        insecure = reference.startswith(("127.0.0.1", "localhost"))

        def work(task):
            tmp = target + ".tmp.%d" % os.getpid()
            argv = ["skopeo", "copy", "--quiet"]
            if insecure:
                argv.append("--src-tls-verify=false")
            proc = subprocess.run(argv + ["docker://" + reference, "oci-archive:%s:%s" % (tmp, tag)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                  check=False)
            if proc.returncode != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise TaskFailed("failed to pull '%s': %s" % (reference, proc.stdout.strip()[-300:]))
            os.rename(tmp, target)
            task.log("saved %s" % target)
            return 0

        return self.tasks.start("imgpull", None, user, work)

    def storage_upload(self, params, user, files):
        """POST .../upload: multipart, content vztmpl (or iso), optional checksum; an imgcopy task."""
        self._node(params["node"])
        info = self._storage(params["storage"])
        upload = files.get("filename")
        if upload is None:
            raise ApiError(400, "Parameter verification failed.", {"filename": "no file uploaded"})
        name, tmp = os.path.basename(upload[0]), upload[1]
        content = params["content"]
        if content not in info["content"].split(","):
            os.unlink(tmp)
            raise ApiError(500, "storage '%s' does not support content type '%s'" % (params["storage"], content))
        if content == "vztmpl" and not name.endswith(self.TEMPLATE_EXTENSIONS):
            os.unlink(tmp)
            raise ApiError(500, "wrong file extension")
        target = os.path.join(info["path"], "template", "cache" if content == "vztmpl" else "iso", name)

        def work(task):
            try:
                if params.get("checksum"):
                    digest = hashlib.new(params["checksum-algorithm"])
                    with open(tmp, "rb") as handle:
                        for chunk in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(chunk)
                    if digest.hexdigest() != params["checksum"].lower():
                        raise TaskFailed("checksum mismatch: got '%s' != expected '%s'"
                                         % (digest.hexdigest(), params["checksum"]))
                    task.log("checksum verified")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.move(tmp, target)
                task.log("target file: %s" % target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return 0

        return self.tasks.start("imgcopy", None, user, work)

    def storage_content_delete(self, params, user):
        self._node(params["node"])
        volume = params["volume"]
        volid = volume if ":" in volume else "%s:%s" % (params["storage"], volume)
        path = self.volume_path(volid)
        if not os.path.exists(path):
            raise ApiError(500, "volume '%s' does not exist" % volid)

        def work(task):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            task.log("removed %s" % volid)
            return 0

        return self.tasks.start("imgdel", None, user, work)

    # -- real LXC -------------------------------------------------------------------
    @property
    def lxc_path(self):
        path = os.path.join(self.root, "lxc")
        os.makedirs(path, exist_ok=True)
        return path

    def lxc_state(self, ct):
        """What LXC says, so a container reported running is really running."""
        if not os.path.isdir(os.path.join(self.lxc_path, str(ct.vmid))):
            return "stopped", None
        state, pid = lxc_info(self.lxc_path, str(ct.vmid))
        return ("running" if state == "RUNNING" else "stopped"), pid

    def lxc_config(self, ct, warnings=None):
        """The LXC config PVE would generate for this container (the parts the double supports).

        ``warnings`` collects what the host cannot do (a start task then ends ``WARNINGS: N``).
        """
        env = dict(item.partition("=")[::2] for item in (ct.config.get("env") or "").split("\0") if item)
        raw = ["%s = %s" % (k, v) for k, v in sorted(ct.config.items()) if k.startswith("lxc.")]
        warnings = warnings if warnings is not None else []
        limits = cgroup_limits(ct.config, CGROUP_ROOT, warnings)
        return config_lines(ct.config.get("hostname", "CT%d" % ct.vmid),
                            self.volume_path(ct.config["rootfs"].split(",")[0]),
                            ct.config.get("entrypoint", "/sbin/init"), env=env, extra=limits + raw,
                            net=network_lines(ct.config, warnings, vmid=ct.vmid))

    def _lxc(self, ct, tool, *args):
        """Run an lxc-* tool on the container; returns the CompletedProcess (output captured)."""
        return subprocess.run([tool, "-P", self.lxc_path, "-n", str(ct.vmid)] + list(args), check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)

    def _check_startable(self, ct):
        if ct.config.get("template") == "1":
            raise ApiError(500, "CT %d is a template - unable to start" % ct.vmid)
        if ct.lock:
            raise ApiError(500, "CT %d is locked (%s)" % (ct.vmid, ct.lock))

    def lxc_start(self, params, user):
        ct = self._ct(params["vmid"])
        self._check_startable(ct)
        if self.lxc_state(ct)[0] == "running":
            raise ApiError(500, "CT %d already running" % ct.vmid)

        def work(task):
            return self._start_now(ct, task)

        return self.tasks.start("vzstart", ct.vmid, user, work)

    def _start_now(self, ct, task):
        """lxc-start the container with the LXC config generated from its PVE config; returns the warnings."""
        cdir = os.path.join(self.lxc_path, str(ct.vmid))
        os.makedirs(cdir, exist_ok=True)
        ensure_mountpoints(self.volume_path(ct.config["rootfs"].split(",")[0]))
        warnings = []
        with open(os.path.join(cdir, "config"), "w") as handle:
            handle.write("\n".join(self.lxc_config(ct, warnings)) + "\n")
        for warning in warnings:
            task.log("WARN: %s" % warning)
        log = os.path.join(cdir, "start.log")
        if self._lxc(ct, "lxc-start", "-d", "-l", "INFO", "-o", log).returncode != 0:
            with open(log) as handle:
                for line in handle.read().splitlines()[-15:]:
                    task.log(line)
            raise TaskFailed("startup for container '%d' failed" % ct.vmid)
        return len(warnings)

    def lxc_reboot(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)
        timeout = params.get("timeout", 60)

        def work(task):
            self._lxc(ct, "lxc-stop", "--nokill", "-t", str(timeout))
            self._lxc(ct, "lxc-stop", "-k")
            return self._start_now(ct, task)  # as PVE: the LXC config is generated again (changed limits apply)

        return self.tasks.start("vzreboot", ct.vmid, user, work)

    def pending(self, params):
        ct = self._ct(params["vmid"])
        return [{"key": k, "value": v} for k, v in sorted(ct.config.items())]

    def lxc_stop(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)

        def work(task):
            self._lxc(ct, "lxc-stop", "-k")
            return 0

        return self.tasks.start("vzstop", ct.vmid, user, work)

    def lxc_shutdown(self, params, user):
        ct = self._ct(params["vmid"])
        if self.lxc_state(ct)[0] != "running":
            raise ApiError(500, "CT %d not running" % ct.vmid)
        timeout = params.get("timeout", 60)

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
        ct.status = self.lxc_state(ct)[0]
        return {"vmid": ct.vmid, "name": ct.config.get("hostname", "CT%d" % ct.vmid), "status": ct.status,
                "type": "lxc", "template": 1 if ct.config.get("template") == "1" else 0,
                "maxmem": int(ct.config.get("memory", "512")) * 1024 * 1024,
                "cpus": int(ct.config.get("cores", "1")), "lock": ct.lock or "", "tags": ct.config.get("tags", "")}

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
        data = self.typed_config(dict((k, v) for k, v in ct.config.items() if not k.startswith("lxc.")))
        raw = [[k, v] for k, v in sorted(ct.config.items()) if k.startswith("lxc.")]
        if raw:
            data["lxc"] = raw
        data["digest"] = ct.digest()
        if ct.lock:
            data["lock"] = ct.lock
        return data

    def status_current(self, params):
        ct = self._ct(params["vmid"])
        data = self._entry(ct)
        data["ha"] = {"managed": 1 if ct.vmid in self.ha_resources else 0}
        return data

    def task_status(self, params):
        task = self.tasks.get(params["upid"])
        if task is None:
            raise ApiError(500, "unable to parse worker upid '%s'" % params["upid"])
        return task.as_status()

    def task_log(self, params):
        """A page of the log as pve-manager's read_task_log: lines numbered from 1, ``total`` beside ``data``.

        ``limit`` 0 reads to the end; a log without lines has one "no content" line (PVE::Tools::dump_logfile).
        """
        from .schema import Response  # pylint: disable=import-outside-toplevel
        task = self.tasks.get(params["upid"])
        if task is None:
            raise ApiError(500, "unable to parse worker upid '%s'" % params["upid"])
        start = int(params.get("start", 0))
        limit = int(params.get("limit", 50))
        lines = [{"n": i + 1, "t": line} for i, line in enumerate(list(task.lines))] or [{"n": 1, "t": "no content"}]
        return Response(lines[start:start + limit] if limit else lines[start:], total=len(lines))

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
        self._check_pool(params)
        vmid = params["vmid"]
        with self.lock:
            if vmid in self.containers:
                raise ApiError(500, "CT %d already exists on node '%s'" % (vmid, self.node))
            config = dict((k, _raw(v)) for k, v in params.items() if k not in CREATE_ONLY)
            config.setdefault("arch", "amd64")
            config.setdefault("ostype", "unmanaged")
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

        def cleanup(task):
            if zfs:
                destroy_dataset("%s/subvol-%d-disk-0" % (self.storages[storage]["pool"], vmid))
            else:
                shutil.rmtree(os.path.join(self.storages[storage]["path"], "images", str(vmid)), ignore_errors=True)
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
                if self.mode.startswith("9") and is_oci_archive(template):
                    task.log("detected OCI archive '%s'" % template)
                    ct.config.update(import_oci_archive(template, rootfs, task))
                    ct.config["rootfs"] = "%s:%s" % (storage, name) + (",size=%sG" % size if zfs and size != "0"
                                                                       else "")
                    return 0
                task.log("extracting archive '%s'" % template)
                # pve-container PVE::LXC::Create::restore_tar_archive (lxcri_testbed/pve_restore.py)
                proc = subprocess.run(restore_command(template, rootfs), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, universal_newlines=True,
                                      check=False)
                for line in proc.stdout.splitlines():
                    task.log(line)
                if proc.returncode != 0:
                    raise TaskFailed("unable to create CT %d - command 'tar xpf %s' failed: exit code %d"
                                     % (vmid, template, proc.returncode))
                ct.config["rootfs"] = "%s:%s" % (storage, name) + (",size=%sG" % size if zfs and size != "0"
                                                                   else "")
            finally:
                ct.lock = None
            return 0

        def create_and_register(task):
            work(task)
            self._register(vmid, params, task)
            return 0

        return self.tasks.start("vzcreate", vmid, user, create_and_register, cleanup)

    def config_put(self, params):
        ct = self._ct(params["vmid"])
        with self.lock:
            if ct.lock:
                raise ApiError(500, "CT %s is locked (%s)" % (ct.vmid, ct.lock))
            if params.get("digest") and params["digest"] != ct.digest():
                raise ApiError(500, "detected modified configuration - file changed by other user? "
                                    "Try again.")
            for key in (params.get("delete") or "").replace(";", ",").split(","):
                key = key.strip()
                if key:
                    ct.config.pop(key, None)
            for key, value in params.items():
                if key not in ("node", "vmid", "digest", "delete", "revert"):
                    ct.config[key] = _raw(value)
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
            if params.get("digest") and params["digest"] != ct.digest():
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

    # -- templates, clones, snapshots (zfspool) ---------------------------------------------
    def _zfs_volume(self, ct, action):
        volume = ct.config.get("rootfs", "").split(",")[0]
        storage = volume.split(":")[0]
        if self.storages.get(storage, {}).get("type") != "zfspool":
            raise ApiError(500, "%s feature is not available" % action)
        return volume

    def lxc_template(self, params, user):
        ct = self._ct(params["vmid"])
        # pve-container's order and texts: lock, snapshots, already a template, running
        if ct.lock:
            raise ApiError(500, "CT is locked (%s)" % ct.lock)
        if ct.snapshots:
            raise ApiError(500, "unable to create template, because CT contains snapshots")
        if ct.config.get("template") == "1":
            raise ApiError(500, "you can't convert a template to a template")
        if self.lxc_state(ct)[0] == "running":
            raise ApiError(500, "you can't convert a CT to template if the CT is running")
        volume = ct.config.get("rootfs", "").split(",")[0]
        if self.storages[volume.split(":")[0]]["type"] == "zfspool":
            base = volume.replace(":subvol-", ":basevol-")
            try:
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
            except TaskFailed as exc:
                raise ApiError(500, str(exc))
            ct.config["rootfs"] = ct.config["rootfs"].replace(volume, base)
        ct.config["template"] = "1"
        return None

    def lxc_clone(self, params, user):
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
            if newid in self.containers:
                raise ApiError(500, "CT %d already exists on node '%s'" % (newid, self.node))
            config = dict((k, v) for k, v in ct.config.items() if k not in ("template", "rootfs"))
            if params.get("hostname"):
                config["hostname"] = params["hostname"]
            clone = Container(newid, config)
            clone.lock = "create"
            self.containers[newid] = clone
        volume = ct.config["rootfs"].split(",")[0]
        source_storage = volume.split(":")[0]
        target_storage = params.get("storage", source_storage)

        def cleanup(task):
            with self.lock:
                self.containers.pop(newid, None)
            clone.lock = None

        def work(task):
            name = "subvol-%d-disk-0" % newid
            if not full:
                self._zfs("clone", self.dataset(volume) + "@__base__",
                          "%s/%s" % (self.storages[source_storage]["pool"], name))
                clone.config["rootfs"] = "%s:%s" % (source_storage, name)
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

    def snapshot_create(self, params, user):
        ct = self._ct(params["vmid"])
        volume = self._zfs_volume(ct, "snapshot")
        name = params["snapname"]
        if name in ct.snapshots:
            raise ApiError(500, "snapshot name '%s' already used" % name)

        def work(task):
            self._zfs("snapshot", "%s@%s" % (self.dataset(volume), name))
            ct.snapshots[name] = {"snaptime": int(time.time()), "config": dict(ct.config),
                                  "description": params.get("description", "")}
            return 0

        return self.tasks.start("vzsnapshot", ct.vmid, user, work)

    def snapshot_delete(self, params, user):
        ct = self._ct(params["vmid"])
        volume = self._zfs_volume(ct, "snapshot")
        name = params["snapname"]
        if name not in ct.snapshots:
            raise ApiError(500, "snapshot '%s' does not exist" % name)

        def work(task):
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
            self._zfs("rollback", "%s@%s" % (self.dataset(volume), name))
            ct.config = dict(ct.snapshots[name]["config"])
            if params.get("start"):
                task.log("starting CT %d" % ct.vmid)
                return self._start_now(ct, task)  # its warnings (what the host cannot do) count here too
            return 0

        return self.tasks.start("vzrollback", ct.vmid, user, work)
