# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``oci_container``: an OCI image run on the node by crun or libcrun under a systemd unit.

On the node, for a container NAME:

* the bundle ``BASE/NAME`` holds ``config.json`` (runtime/ocispec.py),
  ``lxcri.json`` (the record: image, digest, the process, the run settings
  of runtime/supervise.py, the unit text) and ``rootfs/`` (the image's layers
  merged by the flatten engine, extracted by GNU tar as Proxmox VE's restore
  does).  With ``zfs_dataset`` the bundle is that dataset's mountpoint: a
  snapshot ``@lxcri-<time>-<old digest>`` taken before an image change holds
  the whole previous bundle, and ``rollback`` returns to it; in a
  directory, the previous version's rootfs, config.json and record move to
  ``BASE/NAME/.previous`` (``keep_previous``), and ``rollback`` swaps it back;
* volumes live outside the bundle (``VOLUMES/NAME/...``), so an upgrade or a
  rollback never touches data; ``state: absent`` keeps them unless
  ``remove_volumes`` says otherwise;
* the unit ``lxcri-oci-NAME.service`` runs the engine copy's runner
  (module_utils/engine_copy.py) with the bundle: ``Type=notify``, the image's
  stop signal as ``KillSignal``, ``stop_timeout`` as ``TimeoutStopSec``,
  ``restart`` as ``Restart``; logs in the journal.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils import engine_copy
from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.command import start_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import Limits, StoredLayer, flatten, with_restarts
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import Puller
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import (
    ImageManager, image_limits_argument_spec, pin_key, registry_argument_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.platform import host_platform
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import (
    ConfigError, override_argument_spec, runtime_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import atomic_write, store_complete
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateSink, _NullSink
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect, ocispec
# imported for the engine copy (ENGINE_MODULES): this import is what ships the unit's runner in the module's payload
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import supervise  # noqa: F401 pylint: disable=unused-import
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.driver import select_driver
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import guard, validate_dataset

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UNIT_PREFIX = "lxcri-oci-"
ID_PREFIX = "lxcri-oci-"
SNAPSHOT_PREFIX = "lxcri-"
RECORD = "lxcri.json"
PREVIOUS = ".previous"  # a directory bundle's previous version: its rootfs, config.json and record
RUNNER = "lxcri-oci.py"
STATE_ROOT = "/run/lxcri/oci"
RUNNER_TEXT = (
    "# lxcri.proxmox oci_container: what a container's unit runs (prepare|run|cleanup BUNDLE).\n"
    "import os\nimport sys\n\n"
    "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n\n"
    "from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.supervise import main  # noqa: E402\n\n"
    "sys.exit(main(sys.argv[1:]))\n")
ENGINE_MODULES = tuple(engine_copy.PREFIX + "." + name for name in (
    "errors", "command", "runtime.errors", "runtime.agent", "runtime.supervise"))
# GNU tar as Proxmox VE's restore runs it (PVE::LXC::Create restore_tar_archive), into an empty directory
TAR_EXTRACT = ["tar", "-x", "-p", "--numeric-owner", "--acls", "--xattrs", "--xattrs-include=user.*",
               "--xattrs-include=security.capability", "--warning=no-file-ignored", "--warning=no-xattr-write",
               "-f", "-"]
STATES = ("present", "started", "stopped", "restarted", "absent")


class ContainerError(OciError):
    """An oci_container request that cannot be carried out; ``journal`` holds the unit's log tail when known."""

    kind = "oci_container"

    def __init__(self, message, journal=None, **fields):
        if journal:
            fields["journal"] = journal
        super(ContainerError, self).__init__(message, **fields)
        self.journal = journal


def container_argument_spec():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=list(STATES)),
        image=dict(type="str"),
        stop_timeout=dict(type="int", default=10),
        restart=dict(type="str", default="on-failure", choices=["no", "on-failure", "always"]),
        enabled=dict(type="bool"),
        volumes=dict(type="list", elements="dict", default=[], options=dict(
            target=dict(type="str", required=True),
            source=dict(type="str"),
            read_only=dict(type="bool", default=False))),
        memory=dict(type="str"),
        cpus=dict(type="float"),
        pids_limit=dict(type="int"),
        cap_add=dict(type="list", elements="str", default=[]),
        cap_drop=dict(type="list", elements="str", default=[]),
        seccomp=dict(type="str", default="default", choices=["default", "unconfined"]),
        read_only=dict(type="bool", default=False),
        network=dict(type="dict", default={}, options=dict(
            mode=dict(type="str", default="host", choices=["host", "bridge"]),
            bridge=dict(type="str"),
            address=dict(type="str"),
            gateway=dict(type="str"))),
        zfs_dataset=dict(type="str"),
        allowed_roots=dict(type="list", elements="str", default=[]),
        allow_pve_managed=dict(type="bool", default=False),
        keep_snapshots=dict(type="int", default=3),
        keep_previous=dict(type="bool", default=True),
        rollback=dict(type="bool", default=False),
        remove_volumes=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        runtime=dict(type="str", default="auto", choices=["auto", "libcrun", "cli"]),
        libcrun_search=dict(type="list", elements="path", default=[]),
        crun_path=dict(type="path"),
        base_dir=dict(type="path", default="/var/lib/lxcri/oci"),
        volumes_dir=dict(type="path", default="/var/lib/lxcri/oci-volumes"),
        unit_dir=dict(type="path", default="/etc/systemd/system"),
        python=dict(type="path", default="/usr/bin/python3"),
    )
    spec.update(override_argument_spec())
    spec.update(registry_argument_spec())
    spec.update(image_limits_argument_spec())
    return spec


DEFAULTS = defaults_of(container_argument_spec(), leave_out=("name",))


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write_atomic(path, text, mode=0o644):
    """Write ``text`` to ``path`` atomically (oci/store.py); False when it already holds it."""
    data = text.encode("utf-8") if not isinstance(text, bytes) else text
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except (IOError, OSError):
        pass
    atomic_write(path, data, mode)
    return True


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def host_if_name(name):
    """The host end of a container's veth: ``lxo`` and 8 hex digits of the name's digest (at most 15 chars)."""
    return "lxo" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def unit_text(name, image, engine_home, python, bundle, stop_signal, stop_timeout, restart, zfs_dataset=None):
    """The systemd unit of a container (see the module docstring)."""
    runner = os.path.join(engine_home, RUNNER)
    base = "%s -I -B %s" % (python, runner)
    lines = [
        "# Managed by Ansible: lxcri.proxmox.oci_container %s; changes here are overwritten." % name,
        "[Unit]",
        "Description=lxcri OCI container %s (%s)" % (name, image),
        "After=network-online.target",
        "Wants=network-online.target",
        "RequiresMountsFor=%s" % bundle,
    ]
    if zfs_dataset:
        lines.append("After=zfs-mount.service")
    lines += [
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStartPre=%s prepare %s" % (base, bundle),
        "ExecStart=%s run %s" % (base, bundle),
        "ExecStopPost=%s cleanup %s" % (base, bundle),
        "KillSignal=%s" % stop_signal,
        "KillMode=mixed",
        "LimitNOFILE=1048576",
        "TimeoutStartSec=120",
        "TimeoutStopSec=%d" % (stop_timeout + 15),  # the runner kills the container at stop_timeout
        "Restart=%s" % restart,
        "RestartSec=2",
        "SyslogIdentifier=lxcri-oci-%s" % name,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


class ContainerManager:
    """``ContainerManager(params, check_mode, runner).run()`` returns the module result."""

    def __init__(self, params, check_mode=False, runner=None, client_options=None, select=select_driver):
        self.params = with_defaults(params, DEFAULTS)
        self.check_mode = check_mode
        self.runner = runner
        self.select = select
        self.warnings = []
        p = self.params
        if not NAME.match(p["name"] or ""):
            raise ContainerError("name %r: use lower-case letters, digits, '.', '_' and '-', starting with a letter "
                                 "or digit, at most 48 characters" % (p["name"],))
        self.name = p["name"]
        self.unit = UNIT_PREFIX + self.name + ".service"
        self.unit_path = os.path.join(p["unit_dir"], self.unit)
        self.bundle = os.path.join(p["base_dir"], self.name)
        self.record_path = os.path.join(self.bundle, RECORD)
        self.previous = os.path.join(self.bundle, PREVIOUS)
        self.volume_root = os.path.join(p["volumes_dir"], self.name)
        if p["rollback"] and p["state"] == "absent":
            raise ContainerError("rollback and state absent do not go together")
        if p["rollback"] and p["image"]:
            raise ContainerError("rollback returns to the image the container ran before its last image change: "
                                 "leave image out")
        if p["state"] != "absent" and not p["rollback"] and not p["image"]:
            raise ContainerError("state %s needs image" % p["state"])
        if p["env"] is not None and not isinstance(p["env"], (dict, list)):
            raise ContainerError("env must be a dict or a list of NAME=value, not %s" % type(p["env"]).__name__)
        if p["stop_timeout"] < 1:
            raise ContainerError("stop_timeout must be at least 1 second")
        if p["keep_snapshots"] < 1:
            raise ContainerError("keep_snapshots must be at least 1 (the rollback point of the last image change)")
        self.dataset = None
        if p["zfs_dataset"]:
            try:
                self.dataset = validate_dataset(p["zfs_dataset"])
                guard(self.dataset, p["allow_pve_managed"], p["allowed_roots"],
                      "destroy" if p["state"] == "absent" else "manage")
            except ZfsError as exc:
                raise ContainerError("zfs_dataset: %s" % exc)
            self.zfs = Zfs(runner, "cli")
        self.images = None
        if p["image"]:
            self.images = ImageManager(dict((k, v) for k, v in p.items() if k in (
                "image", "platform", "cache_dir", "registry_username", "registry_password", "auth_file",
                "registry_tls_verify", "registry_ca_path", "registry_mirrors", "timeout", "retries", "keep_corrupt",
                "max_expansion_ratio", "max_uncompressed_bytes")), check_mode=check_mode,
                client_options=client_options)
            bound = self.images.bound
            self.limits = Limits(max_expansion_ratio=bound.ratio, max_uncompressed_bytes=bound.max_bytes)
        self.result = {"changed": False, "name": self.name, "unit": self.unit, "bundle": self.bundle,
                       "actions": []}

    @property
    def actions(self):
        """What was done so far (a failed module result carries it)."""
        return self.result["actions"]

    # -- helpers -------------------------------------------------------------

    def _run(self, argv, check=True, what=None):
        rc, out, err = self.runner(argv)
        if check and rc != 0:
            raise ContainerError("%s failed (rc=%s): %s" % (what or " ".join(argv), rc, (err or out).strip()))
        return rc, out, err

    def _act(self, text):
        self.result["actions"].append(text)
        self.result["changed"] = True

    def systemctl(self, *args, **kwargs):
        return self._run(["systemctl"] + list(args), **kwargs)

    def unit_state(self):
        """{active, sub, enabled, main_pid, pid, restarts} of the unit ({} when systemd does not know it); ``pid``:
        the container's process, as the runner's status line (sd_notify STATUS) names it, while it runs."""
        rc, out, dummy = self.systemctl("show", "--property=ActiveState,SubState,UnitFileState,MainPID,NRestarts,"
                                        "LoadState,StatusText", self.unit, check=False)
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if rc != 0 or props.get("LoadState") in (None, "not-found"):
            return {}
        active = props.get("ActiveState")
        pid = re.search(r" runs as pid (\d+) ", props.get("StatusText") or "") if active == "active" else None
        return {"active": active, "sub": props.get("SubState"),
                "enabled": props.get("UnitFileState"), "main_pid": int(props.get("MainPID") or 0),
                "pid": int(pid.group(1)) if pid else None, "restarts": int(props.get("NRestarts") or 0)}

    def journal_tail(self, lines=30):
        """The unit's last journal lines, of its last run only (its InvocationID) when systemd tells it."""
        rc, out, dummy = self.systemctl("show", "--property=InvocationID", "--value", self.unit, check=False)
        invocation = out.strip() if rc == 0 else ""
        argv = ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines)]
        argv += ["_SYSTEMD_INVOCATION_ID=" + invocation] if invocation else ["-u", self.unit]
        rc, out, err = self._run(argv, check=False)
        return (out if rc == 0 else err).strip()

    def start_unit(self, verb="start"):
        rc, out, err = self.systemctl(verb, self.unit, check=False)
        if rc != 0:
            journal = self.journal_tail()
            raise ContainerError("%s did not %s: %s%s" % (
                self.unit, verb, (err or out).strip(), ("\njournal:\n" + journal) if journal else ""), journal=journal)

    # -- image and rootfs ----------------------------------------------------

    def resolve(self):
        images = self.images
        if self.check_mode and not store_complete(self.params["cache_dir"]):
            puller = Puller(None, images.client, bound=images.bound)
            return puller.inspect(images.source, images.platform), False
        puller = Puller(images.store, images.client, keep_corrupt=self.params["keep_corrupt"], bound=images.bound)
        key = pin_key(images.source, images.platform or host_platform())
        res = puller.pull(images.source, key, images.platform, check_mode=self.check_mode)
        return res, (not puller.missing(res)) if self.check_mode else True

    def _layers(self, res, store=None):
        diff_ids = res.config["rootfs"]["diff_ids"]
        return [StoredLayer(store or self.images.store, layer, diff_id) for layer, diff_id in zip(res.layers, diff_ids)]

    def scan(self, res):
        """The merged tree of the image, read and written nowhere (check mode with the layers cached)."""
        return with_restarts(lambda hints: flatten(self._layers(res), _NullSink(), self.limits, hints=hints))

    def extract(self, res, target):
        """The image's merged layers extracted into ``target`` (made new); returns the flatten Tree."""

        def attempt(hints):
            if os.path.lexists(target):
                shutil.rmtree(target)
            os.mkdir(target, 0o755)
            with tempfile.TemporaryFile() as errors:
                proc = start_process(TAR_EXTRACT + ["-C", target], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=errors)
                sink = TemplateSink(proc.stdin, "")
                try:
                    tree = flatten(self._layers(res), sink, self.limits, hints=hints)
                    sink.close()
                    proc.stdin.close()
                except BaseException:
                    sink.abort()
                    proc.kill()
                    proc.wait()
                    raise
                rc = proc.wait()
                if rc != 0:
                    errors.seek(0)
                    raise ContainerError("extracting the image into %s failed (tar rc=%s): %s" % (
                        target, rc, errors.read().decode("utf-8", "replace").strip()[-2000:]))
            return tree

        return with_restarts(attempt)

    def process_spec(self, res, user_files):
        keys = ("entrypoint", "cmd", "env", "workdir", "user", "stop_signal")
        overrides = dict((key, self.params.get(key)) for key in keys)
        try:
            if user_files is None:
                return runtime_spec(res.config.get("config") or {}, overrides, user_files=False)
            return runtime_spec(res.config.get("config") or {}, overrides, user_files.get("passwd"),
                                user_files.get("group"))
        except ConfigError as exc:
            raise ContainerError("%s: %s" % (self.images.source, exc))

    # -- volumes and network -------------------------------------------------

    def volume_plan(self, process):
        """[{target, source, read_only, kind, new}] for the option's volumes and the image's VOLUMEs."""
        plan = []
        given = set()
        for item in self.params["volumes"]:
            target = ocispec.check_target(item["target"], "volumes")
            source = item.get("source")
            if source and source.startswith("/"):
                if not os.path.exists(source):
                    raise ContainerError("volumes: bind source %s does not exist on this node" % source)
                kind, host = "bind", os.path.normpath(source)
            else:
                label = source or "_" + target.strip("/").replace("/", "_")
                if source and not VOLUME_NAME.match(source):
                    raise ContainerError("volumes: %r is not a volume name (letters, digits, '.', '_', '-') nor an "
                                         "absolute host path" % (source,))
                kind, host = "volume", os.path.join(self.volume_root, label)
            given.add(target)
            plan.append({"target": target, "source": host, "read_only": bool(item.get("read_only")), "kind": kind})
        for target in process.get("volumes") or []:
            if target in given or target == "/":
                continue
            host = os.path.join(self.volume_root, "_" + target.strip("/").replace("/", "_"))
            plan.append({"target": target, "source": host, "read_only": False, "kind": "image-volume"})
        for item in plan:
            item["new"] = item["kind"] != "bind" and not os.path.isdir(item["source"])
        return plan

    def make_volumes(self, plan, rootfs, process):
        """Create the new volume directories, with what the image holds at the target (as Docker fills a new
        named volume) or else owned by the container's user."""
        for item in plan:
            if not item["new"]:
                continue
            os.makedirs(self.volume_root, mode=0o700, exist_ok=True)
            image_dir = _inside(rootfs, item["target"])
            if image_dir is not None:
                tmp = item["source"] + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                self._run(["cp", "-a", "--no-dereference", image_dir, tmp], what="filling volume %s" % item["target"])
                os.rename(tmp, item["source"])
            else:
                os.mkdir(item["source"], 0o755)
                os.chown(item["source"], process["uid"], process["gid"])
            self._act("created volume %s for %s" % (item["source"], item["target"]))

    def network_plan(self):
        net = self.params["network"] or {}
        mode = net.get("mode") or "host"
        if mode == "host":
            for key in ("bridge", "address", "gateway"):
                if net.get(key):
                    raise ContainerError("network: %s applies to mode bridge only" % key)
            return None
        if not net.get("bridge"):
            raise ContainerError("network mode bridge needs bridge (the node's bridge, for example vmbr0)")
        if not os.path.isdir(os.path.join("/sys/class/net", net["bridge"], "bridge")):
            raise ContainerError("network: %s is not a bridge on this node" % net["bridge"])
        if not net.get("address"):
            raise ContainerError("network mode bridge needs address (CIDR, for example 192.0.2.10/24)")
        return {"name": "lxcri-" + self.name, "host_if": host_if_name(self.name), "bridge": net["bridge"],
                "address": net["address"], "gateway": net.get("gateway")}

    # -- entry ----------------------------------------------------------------

    def run(self):
        if self.params["state"] == "absent":
            self.absent()
        elif self.params["rollback"]:
            self.rollback()
        else:
            self.present()
        state = {} if self.check_mode and not os.path.exists(self.unit_path) else self.unit_state()
        self.result["status"] = state
        return self.result

    def _record(self):
        return _read_json(self.record_path)

    def _selection(self):
        """The backend the unit will run with (the module's ``runtime``), and how crun sees cgroups."""
        cgroups = detect.cgroup_layout()
        layout = cgroups["layout"]
        view = self.check_controllers(cgroups)
        try:
            driver, selection = self.select(self.params["runtime"], self.params["libcrun_search"],
                                            crun=self.params["crun_path"], layout=layout,
                                            state_root=STATE_ROOT, python=self.params["python"])
        except OciRuntimeError as exc:
            raise ContainerError("no OCI runtime for %s: %s" % (self.name, exc))
        driver.close()
        if view == "v1":  # a hybrid node's controllers, through a private v1 view (agent._enter_private_cgroup_v1)
            selection["isolation"] = dict(selection["isolation"], private_cgroup2=False, private_cgroup_v1=True,
                                          note="hybrid cgroups with limits: private mount namespace with the v1 "
                                               "hierarchies only")
            return selection, "v1"
        return selection, layout

    def check_controllers(self, cgroups):
        """Refuse limits the node cannot apply, before anything changes; returns the cgroup view crun gets on a
        hybrid node: ``v1`` when limits are asked for and only the v1 hierarchies have their controllers (the
        usual hybrid node), else None (the layout as detected; a hybrid node's cgroup2 alone)."""
        layout = cgroups["layout"]
        limits = (("memory", "memory"), ("cpus", "cpu"), ("pids_limit", "pids"))
        wanted = [(option, controller) for option, controller in limits if self.params[option]]
        have = cgroups["v2_controllers"] if layout in ("v2", "hybrid") else \
            (cgroups["v1_controllers"] if layout == "v1" else [])
        missing = [(option, controller) for option, controller in wanted if controller not in have]
        if missing and layout == "hybrid" and \
                not [controller for dummy, controller in wanted if controller not in cgroups["v1_controllers"]]:
            return "v1"
        if missing:
            if layout == "hybrid":
                have = sorted(set(have) | set(cgroups["v1_controllers"]))
            raise ContainerError(
                "%s: this node's cgroups (%s; the controllers crun can use: %s) have no %s controller, so the limit "
                "cannot be applied; leave %s out or enable the controller (nothing was changed)" % (
                    ", ".join(option for option, dummy in missing), layout, ", ".join(have) or "none",
                    ", ".join(controller for dummy, controller in missing), " and ".join(o for o, dummy in missing)))
        return None

    def present(self):
        p = self.params
        record = self._record()
        res, cached = self.resolve()
        digest = res.manifest_digest
        selection, layout = self._selection()
        self.result.update(image=str(self.images.source), digest=digest, runtime={
            "backend": selection["backend"], "reason": selection["reason"],
            "fallback_from": selection["fallback_from"], "cgroup_layout": layout})
        netns = self.network_plan()
        new_rootfs = record is None or record.get("digest") != digest or p["force"] or \
            (record.get("rootfs") or {}).get("dataset") != self.dataset
        if record and (record.get("rootfs") or {}).get("dataset") != self.dataset:
            raise ContainerError("%s keeps its root filesystem %s; to move it to %s remove the container first "
                                 "(state absent)" % (self.name, (record.get("rootfs") or {}).get("dataset") or
                                                     "in a directory", self.dataset or "a directory"))
        before = self._view(record)
        state = self.unit_state() if os.path.exists(self.unit_path) else {}
        was_active = state.get("active") in ("active", "activating", "reloading")
        user_files = None if new_rootfs else record.get("user_files")
        if new_rootfs and (not self.check_mode or cached):
            if self.check_mode:
                tree = self.scan(res)
                user_files = _user_files(tree)
        process = self.process_spec(res, user_files)
        if self.check_mode:
            after = {"image": str(self.images.source), "digest": digest, "argv": process["argv"],
                     "env": process["env"], "cwd": process["cwd"], "uid": process["uid"], "gid": process["gid"]}
            self.result["process"] = _process_view(process)
            if new_rootfs:
                self._act("would build the root filesystem from %s" % digest if record is None else
                          "would change the image from %s to %s (snapshot first)" % (record.get("digest"), digest)
                          if self.dataset else "would replace the root filesystem with %s" % digest)
            elif before != after:
                self._act("would change the container's settings")
            self._plan_state(state, new_rootfs or before != after)
            self.result["diff"] = {"before": before, "after": after}
            return
        if new_rootfs:
            if was_active:
                self.systemctl("stop", self.unit)
                self._act("stopped %s to change its root filesystem" % self.unit)
            try:
                user_files, process = self.build_rootfs(res, record)
            except BaseException:
                if was_active:  # the old root filesystem is still in place
                    self.start_unit("start")
                raise
        plan = self.volume_plan(process)
        self.make_volumes(plan, os.path.join(self.bundle, "rootfs"), process)
        options = {
            "mounts": [dict((k, item[k]) for k in ("source", "target", "read_only")) for item in plan],
            "memory": ocispec.parse_memory(p["memory"]),
            "cpu_quota": ocispec.cpu_quota(p["cpus"]),
            "pids_limit": p["pids_limit"],
            "caps": ocispec.capabilities(p["cap_add"], p["cap_drop"]),
            "seccomp": ocispec.default_seccomp(_arch()) if p["seccomp"] == "default" else None,
            "read_only": p["read_only"],
            "netns": "/run/netns/" + netns["name"] if netns else None,
            "resolv_conf": "/etc/resolv.conf" if os.path.exists("/etc/resolv.conf") else None,
            "cgroups_path": "/lxcri-oci/" + self.name,
        }
        try:
            config = ocispec.build_config(process, self.name, options, layout=layout, arch=_arch())
        except OciRuntimeError as exc:
            raise ContainerError(str(exc))
        files = engine_copy.engine_files(ENGINE_MODULES, RUNNER, RUNNER_TEXT)
        home, written = engine_copy.install(os.path.join(p["base_dir"], ".engine"), files)
        if written:
            self._act("installed the runner in %s" % home)
        unit = unit_text(self.name, str(self.images.source), home, p["python"], self.bundle, process["stop_signal"],
                         p["stop_timeout"], p["restart"], self.dataset)
        self.result["exec"] = [p["python"], "-I", "-B", os.path.join(home, RUNNER), "exec", self.bundle, "--"]
        run = {"id": ID_PREFIX + self.name, "backend": selection["backend"], "crun": selection["crun"],
               "libcrun": (selection["libcrun"] or {}).get("library") if selection["backend"] == "libcrun" else None,
               "python_crun_dir": (selection["libcrun"] or {}).get("python_crun_dir")
               if selection["backend"] == "libcrun" else None,
               "state_root": STATE_ROOT, "private_cgroup2": selection["isolation"]["private_cgroup2"],
               "private_cgroup_v1": bool(selection["isolation"].get("private_cgroup_v1")),
               "cgroup_manager": selection["isolation"]["cgroup_manager"] if selection["backend"] == "cli" else None,
               "netns": netns, "stop_signal": process["stop_signal"], "stop_timeout": p["stop_timeout"]}
        new_record = {"version": 1, "name": self.name, "image": str(self.images.source), "digest": digest,
                      "platform": str(res.platform), "process": _process_view(process), "user_files": user_files,
                      "rootfs": {"dataset": self.dataset}, "run": run, "unit": unit,
                      "volumes": [dict((k, item[k]) for k in ("source", "target", "read_only", "kind"))
                                  for item in plan]}
        changed_config = _write_atomic(os.path.join(self.bundle, "config.json"),
                                       json.dumps(config, indent=1, sort_keys=True) + "\n", 0o600)
        changed_record = _write_atomic(self.record_path, json.dumps(new_record, indent=1, sort_keys=True) + "\n",
                                       0o600)
        if (changed_config or changed_record) and not new_rootfs:
            self._act("changed the container's settings")
        unit_changed = _write_atomic(self.unit_path, unit)
        if unit_changed:
            self._act("wrote %s" % self.unit_path)
            self.systemctl("daemon-reload")
        self.result["process"] = _process_view(process)
        self.result["rootfs"] = {"path": os.path.join(self.bundle, "rootfs"), "dataset": self.dataset}
        self.result["volumes"] = new_record["volumes"]
        self.result["diff"] = {"before": before, "after": self._view(new_record)}
        self.apply_state(was_active, new_rootfs or changed_config or changed_record or unit_changed)

    def _plan_state(self, state, changes):
        desired = self.params["state"]
        active = state.get("active") == "active"
        if desired == "started" and (not active or changes):
            self._act("would %s %s" % ("restart" if active else "start", self.unit))
        elif desired == "stopped" and active:
            self._act("would stop %s" % self.unit)
        elif desired == "restarted":
            self._act("would restart %s" % self.unit)

    def apply_state(self, was_active, changes):
        p = self.params
        desired = p["state"]
        enabled = p["enabled"]
        if enabled is None:  # started: enabled at boot; stopped: not; present: as it is
            enabled = True if desired in ("started", "restarted") else (False if desired == "stopped" else None)
        state = self.unit_state()
        if enabled is True and state.get("enabled") != "enabled":
            self.systemctl("enable", self.unit)
            self._act("enabled %s" % self.unit)
        elif enabled is False and state.get("enabled") == "enabled":
            self.systemctl("disable", self.unit)
            self._act("disabled %s" % self.unit)
        active = state.get("active") == "active"
        if desired == "started":
            if not active:
                self.start_unit("start")
                self._act("started %s" % self.unit)
            elif changes:
                self.start_unit("restart")
                self._act("restarted %s" % self.unit)
        elif desired == "restarted":
            self.start_unit("restart")
            self._act("restarted %s" % self.unit)
        elif desired == "stopped" and active:
            self.systemctl("stop", self.unit)
            self._act("stopped %s" % self.unit)
        elif desired == "present" and was_active and not active:
            self.start_unit("start")  # stopped only to change the root filesystem
            self._act("started %s again" % self.unit)

    def build_rootfs(self, res, record):
        """The new root filesystem in place (a snapshot first on ZFS when the container had one); returns the
        image's user files and the process spec."""
        os.makedirs(self.params["base_dir"], mode=0o755, exist_ok=True)
        snapshot = None
        if self.dataset:
            data = self.zfs.get_all([self.dataset], recursive=False, props="type,mountpoint")
            if self.dataset not in data:
                self.zfs.create(self.dataset, {"mountpoint": self.bundle})
                self._act("created dataset %s" % self.dataset)
            elif data[self.dataset]["mountpoint"][0] != self.bundle:
                raise ContainerError("dataset %s is mounted at %s, not at %s: it is not this container's"
                                     % (self.dataset, data[self.dataset]["mountpoint"][0], self.bundle))
            if record is not None:
                snapshot = "%s@%s%s-%s" % (self.dataset, SNAPSHOT_PREFIX, _now().strftime("%Y%m%dT%H%M%SZ"),
                                           (record.get("digest") or "none").split(":")[-1][:12])
                self.zfs.snapshot([snapshot])
                self._act("snapshot %s" % snapshot)
                self.result["snapshot"] = snapshot
        else:
            os.makedirs(self.bundle, mode=0o755, exist_ok=True)
        rootfs = os.path.join(self.bundle, "rootfs")
        staging = rootfs + ".new"
        try:
            tree = self.extract(res, staging)
            user_files = _user_files(tree)
            process = self.process_spec(res, user_files)  # an image whose user cannot run is refused before the swap
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if snapshot:
                self.zfs.destroy_snapshots([snapshot])
                self.result.pop("snapshot", None)
            raise
        if os.path.lexists(rootfs) and not self.dataset and record is not None and self.params["keep_previous"]:
            # the rollback point of a directory bundle: the running version as a whole, moved (one rename each)
            shutil.rmtree(self.previous, ignore_errors=True)
            os.mkdir(self.previous, 0o700)
            os.rename(rootfs, os.path.join(self.previous, "rootfs"))
            for name in ("config.json", RECORD):
                if os.path.exists(os.path.join(self.bundle, name)):
                    shutil.copy2(os.path.join(self.bundle, name), os.path.join(self.previous, name))
            os.rename(staging, rootfs)
            self._act("kept the previous version (%s) in %s" % (record.get("digest"), self.previous))
            self.result["previous"] = self.previous
        elif os.path.lexists(rootfs):
            old = rootfs + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(rootfs, old)
            os.rename(staging, rootfs)
            shutil.rmtree(old)
            if os.path.lexists(self.previous) and not self.params["keep_previous"]:
                shutil.rmtree(self.previous)
                self._act("removed the previous version (keep_previous false)")
        else:
            os.rename(staging, rootfs)
        self._act("built the root filesystem from %s" % res.manifest_digest)
        if self.dataset:
            self.prune_snapshots()
        return user_files, process

    def snapshots(self):
        """Our snapshots of the dataset, oldest first, and the newest snapshot of any name."""
        data = self.zfs.get_all([self.dataset], recursive=True, props="type,createtxg")
        snaps = sorted(((int(v["createtxg"][0]), k) for k, v in data.items()
                        if v.get("type", ("",))[0] == "snapshot" and k.startswith(self.dataset + "@")))
        ours = [name for dummy, name in snaps if name.split("@", 1)[1].startswith(SNAPSHOT_PREFIX)]
        return ours, (snaps[-1][1] if snaps else None)

    def prune_snapshots(self):
        ours, dummy = self.snapshots()
        drop = ours[:-self.params["keep_snapshots"]] if len(ours) > self.params["keep_snapshots"] else []
        if drop:
            self.zfs.destroy_snapshots(drop)
            self._act("removed snapshots %s (keep_snapshots %d)" % (", ".join(drop), self.params["keep_snapshots"]))
            self.result["pruned"] = drop

    def rollback(self):
        """Back to the version before the last image change: the ZFS dataset's newest rollback snapshot, or a
        directory bundle's kept previous version (the current one is removed: it is what failed)."""
        record = self._record()
        if record is None:
            raise ContainerError("%s does not exist: nothing to roll back" % self.name)
        if (record.get("rootfs") or {}).get("dataset") != self.dataset:
            raise ContainerError("%s's root filesystem is %s; give zfs_dataset as it was created with (nothing was "
                                 "changed)" % (self.name, (record.get("rootfs") or {}).get("dataset")
                                               or "a directory"))
        if self.dataset:
            target, after, plan, swap = self._snapshot_rollback()
        else:
            target, after, plan, swap = self._previous_rollback()
        was_active = self.unit_state().get("active") in ("active", "activating")
        self.result["rolled_back_to"] = target
        self.result["diff"] = {"before": self._view(record), "after": after}
        if self.check_mode:
            self._act("would " + plan)
            return
        if was_active:
            self.systemctl("stop", self.unit)
            self._act("stopped %s" % self.unit)
        swap()
        self._after_rollback(was_active)

    def _snapshot_rollback(self):
        """(target, diff after, plan, swap) of a rollback to the dataset's newest rollback snapshot."""
        ours, newest = self.snapshots()
        if not ours:
            raise ContainerError("%s has no snapshot from an image change to roll back to" % self.dataset)
        target = ours[-1]
        if newest != target:
            raise ContainerError("%s is newer than %s, the rollback point: rolling back would destroy it; remove or "
                                 "rename it first (nothing was changed)" % (newest, target))

        def swap():
            self.zfs.rollback(target)
            self.zfs.destroy_snapshots([target])
            self._act("rolled %s back to %s" % (self.dataset, target))
        return target, None, "roll %s back to %s" % (self.dataset, target), swap

    def _previous_rollback(self):
        """(target, diff after, plan, swap) of a rollback to the version kept in BUNDLE/.previous."""
        previous = _read_json(os.path.join(self.previous, RECORD))
        if previous is None or not os.path.isdir(os.path.join(self.previous, "rootfs")):
            raise ContainerError("%s keeps no previous version to roll back to (%s: an image change keeps one with "
                                 "keep_previous, and a rollback uses it up)" % (self.name, self.previous))
        what = "%s to its previous version (%s)" % (self.name, previous.get("digest"))

        def swap():
            rootfs = os.path.join(self.bundle, "rootfs")
            failed = rootfs + ".old"
            shutil.rmtree(failed, ignore_errors=True)
            if os.path.lexists(rootfs):
                os.rename(rootfs, failed)
            os.rename(os.path.join(self.previous, "rootfs"), rootfs)
            for name in ("config.json", RECORD):  # the record last: until it is back, the bundle says the new one
                if os.path.exists(os.path.join(self.previous, name)):
                    os.replace(os.path.join(self.previous, name), os.path.join(self.bundle, name))
            shutil.rmtree(self.previous)
            shutil.rmtree(failed, ignore_errors=True)
            self._act("returned " + what)
        return previous.get("digest"), self._view(previous), "return " + what, swap

    def _after_rollback(self, was_active):
        record = self._record()
        self.result["diff"]["after"] = self._view(record)
        self.result.update(image=record.get("image"), digest=record.get("digest"), process=record.get("process"))
        if _write_atomic(self.unit_path, record["unit"]):
            self.systemctl("daemon-reload")
        runner = re.search(r"^ExecStart=(\S+) -I -B (\S+) run ", record["unit"], re.M)
        if runner:  # the engine copy the version rolled back to runs with
            self.result["exec"] = [runner.group(1), "-I", "-B", runner.group(2), "exec", self.bundle, "--"]
        if self.params["state"] in ("started", "restarted") or (was_active and self.params["state"] == "present"):
            self.start_unit("start")
            self._act("started %s" % self.unit)

    def absent(self):
        record = self._record()
        exists = os.path.exists(self.unit_path) or record is not None or os.path.lexists(self.bundle)
        dataset = (record or {}).get("rootfs", {}).get("dataset") if record else self.dataset
        if dataset and dataset != self.dataset:
            raise ContainerError("%s's root filesystem is dataset %s: give it as zfs_dataset to remove it (nothing "
                                 "was changed)" % (self.name, dataset))
        if dataset:
            try:
                guard(dataset, self.params["allow_pve_managed"], self.params["allowed_roots"], "destroy")
            except ZfsError as exc:
                raise ContainerError("zfs_dataset: %s" % exc)
        removes = []
        if os.path.exists(self.unit_path):
            removes.append(self.unit_path)
        if exists:
            removes.append(("dataset %s with its snapshots" % dataset) if dataset else self.bundle)
        volumes = os.path.isdir(self.volume_root)
        if volumes and self.params["remove_volumes"]:
            removes.append(self.volume_root)
        elif volumes:
            self.result["kept_volumes"] = self.volume_root
        self.result["removed"] = removes
        self.result["diff"] = {"before": self._view(record), "after": None}
        if not removes:
            return
        if self.check_mode:
            self._act("would remove %s" % ", ".join(removes))
            return
        state = self.unit_state() if os.path.exists(self.unit_path) else {}
        if state.get("active") in ("active", "activating", "reloading", "deactivating"):
            self.systemctl("stop", self.unit)
        if state.get("enabled") == "enabled":
            self.systemctl("disable", self.unit)
        if os.path.exists(self.unit_path):
            os.unlink(self.unit_path)
            self.systemctl("daemon-reload")
        if dataset:
            if self.zfs.get_all([dataset], recursive=False, props="type"):
                self.unmount_bundle(dataset)
                self.zfs.destroy(dataset, recursive=True)
            if os.path.isdir(self.bundle) and not os.listdir(self.bundle):
                os.rmdir(self.bundle)
        elif os.path.lexists(self.bundle):
            shutil.rmtree(self.bundle)
        if volumes and self.params["remove_volumes"]:
            shutil.rmtree(self.volume_root)
        self._act("removed %s" % ", ".join(removes))

    def unmount_bundle(self, dataset):
        """Unmount the dataset before it is destroyed, also where this process sees it: OpenZFS unmounts in the
        caller's mount namespace, zfs-fuse in its daemon's, and a namespace of the node's (a copy of the host's
        mounts) keeps the dataset busy until its own copy is gone."""
        self.zfs.cli.settle_unmount([dataset])
        self._run(["zfs", "unmount", dataset], check=False)
        if os.path.ismount(self.bundle):
            self._run(["umount", self.bundle], what="unmounting %s" % self.bundle)

    @staticmethod
    def _view(record):
        if not record:
            return None
        process = record.get("process") or {}
        return {"image": record.get("image"), "digest": record.get("digest"), "argv": process.get("argv"),
                "env": process.get("env"), "cwd": process.get("cwd"), "uid": process.get("uid"),
                "gid": process.get("gid")}


def _process_view(process):
    return dict((k, process.get(k)) for k in ("argv", "env", "cwd", "user", "uid", "gid", "groups", "stop_signal",
                                              "volumes"))


def _user_files(tree):
    found = {}
    for key, path in (("passwd", "etc/passwd"), ("group", "etc/group")):
        data = tree.captured(path)
        found[key] = data.decode("utf-8", "replace") if data is not None else None
    return found


def _arch():
    machine = os.uname()[4]
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _inside(rootfs, target):
    """``rootfs`` + ``target`` when every component below rootfs is a real directory (no symlink leads out of
    the image), else None."""
    path = rootfs
    for part in target.strip("/").split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path) or not os.path.isdir(path):
            return None
    return path
