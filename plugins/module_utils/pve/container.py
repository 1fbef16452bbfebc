# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``lxc_container``: one container's lifecycle over the Proxmox VE API.

``ContainerManager(params, check_mode).run()`` returns the module result.
Every worker task is waited for with ``wait_task`` (fails at once with the
log tail, ``WARNINGS: N`` is success), the config is compared per key after
normalisation (pve/config.py) and written with the config digest, and
changes that a running container can only take at its next start are
reported as pending and applied by a reboot only with ``restart: when_needed``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import config as pveconfig
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import origin, rawconf
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.carry import api_refusal
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveError, PveTaskError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import OCI_RELEASE, PveFeatures
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import ContainerError, PveSession
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import DEFAULT_WAIT_TIMEOUT, parse_upid

STATES = ("present", "started", "stopped", "restarted", "absent", "template")
# options that map 1:1 onto config keys (option name -> key)
CONFIG_OPTIONS = {
    "hostname": "hostname", "cores": "cores", "cpulimit": "cpulimit", "cpuunits": "cpuunits", "memory": "memory",
    "swap": "swap", "rootfs": "rootfs", "nameserver": "nameserver", "searchdomain": "searchdomain",
    "onboot": "onboot", "startup": "startup", "features": "features", "description": "description",
    "tags": "tags", "protection": "protection", "hookscript": "hookscript", "cmode": "cmode",
    "ostype": "ostype", "arch": "arch", "unprivileged": "unprivileged", "entrypoint": "entrypoint",
    "env": "env",
}
# keys only given at create time (not part of the config, or not changeable after)
CREATE_ONLY = ("password", "ssh_public_keys", "pool", "unprivileged", "ostype", "arch")
EXISTS_MARKERS = ("already exists",)
DEFAULT_ALLOCATION_RETRIES = 8
DEFAULT_SHUTDOWN_TIMEOUT = 60  # lxc_container's shutdown_timeout
# PVE::Tools::assert_if_modified: the digest sent with a config write is not the config's digest any more
MODIFIED = "detected modified configuration"
# how often a config write is planned again after another client changed the config in between
MAX_REPLANS = 3
GIB = 1024 ** 3


def _without_digest(config):
    """A config for Ansible's diff: the digest changes with every write and is no change of its own."""
    return dict((k, v) for k, v in (config or {}).items() if k != "digest")


def _bool(value):
    return None if value is None else (1 if value else 0)


def container_argument_spec():
    """A new dict of lxc_container's options but the connection and check_mode_plan (the module adds those)."""
    return dict(
        state=dict(type="str", default="present", choices=list(STATES)),
        vmid=dict(type="int"),
        hostname=dict(type="str"),
        node=dict(type="str"),
        node_candidates=dict(type="list", elements="str"),
        migrate=dict(type="bool", default=False),
        migrate_restart=dict(type="bool", default=False),
        vmid_range=dict(type="list", elements="int"),
        ostemplate=dict(type="str"),
        oci=dict(type="dict"),
        clone=dict(type="str"),
        clone_snapshot=dict(type="str"),
        full=dict(type="bool"),
        storage=dict(type="str"),
        disk_size=dict(type="int"),
        cores=dict(type="int"),
        cpulimit=dict(type="float"),
        cpuunits=dict(type="int"),
        memory=dict(type="int"),
        swap=dict(type="int"),
        rootfs=dict(type="raw"),
        mounts=dict(type="dict"),
        net=dict(type="dict"),
        nameserver=dict(type="str"),
        searchdomain=dict(type="str"),
        onboot=dict(type="bool"),
        startup=dict(type="raw"),
        features=dict(type="raw"),
        unprivileged=dict(type="bool"),
        ostype=dict(type="str"),
        arch=dict(type="str"),
        description=dict(type="str"),
        tags=dict(type="list", elements="str"),
        pool=dict(type="str"),
        protection=dict(type="bool"),
        password=dict(type="str", no_log=True),
        ssh_public_keys=dict(type="str", no_log=True),
        hookscript=dict(type="str"),
        cmode=dict(type="str", choices=["shell", "console", "tty"]),
        entrypoint=dict(type="str"),
        env=dict(type="list", elements="str", no_log=False),
        raw_lxc=dict(type="bool", default=False),
        raw_lxc_dir=dict(type="path", default=rawconf.DEFAULT_DIR),
        purge_config=dict(type="bool", default=False),
        delete=dict(type="list", elements="str"),
        restart=dict(type="str", default="never", choices=["never", "when_needed"]),
        shutdown_timeout=dict(type="int", default=DEFAULT_SHUTDOWN_TIMEOUT),
        force_stop=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        purge=dict(type="bool", default=False),
        destroy_unreferenced_disks=dict(type="bool"),
        on_mismatch=dict(type="str", default="fail", choices=["fail", "update"]),
    )


DEFAULTS = defaults_of(container_argument_spec())


def import_problem(runtime, config):
    """What Proxmox VE's OCI import left out of ``config`` that the template's ``runtime`` needs, or None.

    pve-container before 6.1.0 (Proxmox VE 9.1.0 shipped 6.0.18) ignores the image's User: no lxc.init.uid/gid/
    groups (commits c464df5 and 2c68b55, 2026-01), so the app would run as root without a word.  The generated init
    (wrapper kind ``init``) switches ids itself and needs none of them.
    """
    if not runtime or (runtime.get("wrapper") or {}).get("kind") == "init":
        return None
    raw = dict((str(k), str(v)) for k, v in (config.get("lxc") or []))
    missing = []
    for key, name in (("uid", "lxc.init.uid"), ("gid", "lxc.init.gid")):
        want = runtime.get(key)
        if want and raw.get(name) != str(want):
            missing.append("%s %s (%s is %s)" % (key, want, name, raw.get(name, "unset")))
    groups = sorted(set(runtime.get("groups") or []))
    have = sorted(set(int(g) for g in raw.get("lxc.init.groups", "").split(",") if g.strip().isdigit()))
    if groups and have != groups:
        missing.append("supplementary groups %s (lxc.init.groups is %s)"
                       % (",".join(str(g) for g in groups), raw.get("lxc.init.groups", "unset")))
    elif groups and str(config.get("unprivileged", 0)) == "1":
        # LXC src/lxc/start.c do_start: lxc.init.groups is applied only when the container has no user namespace
        missing.append("supplementary groups %s: LXC applies lxc.init.groups only to a privileged container, and "
                       "this one is unprivileged" % ",".join(str(g) for g in groups))
    cwd = runtime.get("cwd") or "/"
    if cwd != "/" and raw.get("lxc.init.cwd") != cwd:
        missing.append("working directory %s (lxc.init.cwd is %s)" % (cwd, raw.get("lxc.init.cwd", "unset")))
    if not missing:
        return None
    return "the node's import did not set the image's %s" % "; ".join(missing)


def _net_text(settings):
    """config.app_net's list as ``net0 (name=eth0,ip=dhcp); ...`` for messages."""
    def fields(item):
        return ",".join("%s=%s" % (field, item[field]) for field in pveconfig.APP_NET_FIELDS if field in item)
    return "; ".join("%s (%s)" % (item["key"], fields(item)) for item in settings)


class ContainerManager:
    """One container's lifecycle; the work shared with other engines (finding it, tasks, locks, the record of
    the run) is its :class:`PveSession`, ``session``: its own, or another engine's given as ``session`` (whose
    check mode and client it then uses)."""

    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep, clock=time.monotonic, session=None):
        params = with_defaults(params, DEFAULTS)
        self.session = session or PveSession(params, check_mode=check_mode, client=client, sleep=sleep, clock=clock)
        self.params = params
        self.check_mode = self.session.check_mode
        self.client = self.session.client
        self.mismatch = []
        self.empty_env = False
        self.target = None  # the node that has (or gets) the container: its version decides the features
        self.notices = []  # Ansible warnings of the run (the module's ``warnings``)

    # -- desired config --------------------------------------------------------------------

    def features_for(self, config=None):
        """The node's features; a config with ``entrypoint`` or ``env`` proves 9.1+ without ``GET /version``."""
        if config and ("entrypoint" in config or "env" in config):
            return PveFeatures(OCI_RELEASE, "%d.%d+" % OCI_RELEASE)
        return self.session.features(self.target)

    def desired(self, features=None, config=None):
        """The keys the options ask for, as the user gave them (dicts or strings).

        ``config`` is the container's current config, when it exists (it can spare the version request).
        """
        params = self.params
        wanted = {}
        for option, key in CONFIG_OPTIONS.items():
            value = params.get(option)
            if value is None:
                continue
            if isinstance(value, bool):
                value = _bool(value)
            wanted[key] = value
        for index, value in (params.get("net") or {}).items():
            wanted["net%d" % int(index)] = value
        for index, value in (params.get("mounts") or {}).items():
            wanted["mp%d" % int(index)] = value
        runtime = (params.get("oci") or {}).get("runtime") if params.get("oci") else None
        if runtime:
            features = features or self.features_for(config)
            if not params.get("raw_lxc"):
                fmt = "oci-archive" if str(params["oci"].get("volid", "")).endswith(".tar") else "vztmpl"
                problem, dummy = api_refusal(features, fmt, (runtime.get("wrapper") or {}).get("kind"), runtime)
                if problem:
                    raise ContainerError("%s; nothing was changed" % problem)
            if features.entrypoint_env:
                if "entrypoint" not in wanted and runtime.get("pve_entrypoint"):
                    wanted["entrypoint"] = runtime["pve_entrypoint"]
                if "env" not in wanted and runtime.get("pve_env") is not None:
                    wanted["env"] = runtime["pve_env"]
        self._app_network(wanted, features, config, bool(runtime))
        if isinstance(wanted.get("env"), list):
            wanted["env"] = "\0".join(wanted["env"])
        if wanted.get("env") == "":
            # an image without Env (FROM scratch): PVE takes no empty env (pve-http-server decodes 'env=' to
            # undef, which deletes the key), so an empty environment is no env key at all
            del wanted["env"]
            self.empty_env = True
        if isinstance(wanted.get("tags"), list):
            wanted["tags"] = ";".join(wanted["tags"])
        if config is None:
            # a new container records what it is made from (origin.py); a clone inherits its source's record
            record = origin.record_of(params.get("oci"), params.get("ostemplate"))
            if record and params.get("clone") is None:
                wanted["description"] = origin.with_record(params.get("description"), record)
        elif params.get("description") is not None:
            # the user's notes, keeping the record the container has
            wanted["description"] = origin.with_record(params["description"], origin.parse(config.get("description")))
        try:
            pveconfig.check_carried(wanted)
        except ValueError as exc:
            raise ContainerError("%s; nothing was changed" % exc)
        return wanted

    def _made_from_image(self, config, from_image=False):
        """Whether the container runs an image's command as init: made from ``oci`` (this task's, or the record
        lxc_container wrote into its description)."""
        if from_image or (self.params.get("oci") or {}).get("runtime"):
            return True
        record = origin.parse(config.get("description")) if config else None
        return bool(record and record.get("image"))

    def _app_network(self, wanted, features, config, from_image):
        """An app container's interfaces are configured by the host, since the image's command is its init and
        configures no network - or by the template's generated init, when oci_template baked them in (its
        ``net``).

        9.1+: ``host-managed=1`` unless the user sets host-managed.  pve-container PVE/LXC/Create.pm
        restore_oci_archive turns it on for every netN of an OCI import with its own entrypoint ("Auto-Enabling
        host-managed network"), and PVE/LXC.pm update_lxc_config writes ``lxc.net.N.flags = up`` and the addresses
        only for host-managed interfaces (vm_start starts their DHCP clients).  Desiring the same on both template
        paths brings the interfaces up for a plain template too, and never undoes what the importer set (a
        second run changes nothing).

        Proxmox VE 8 has no host-managed: an interface with an address is brought up by the same lines written
        raw (raw_lxc, ``net_lines``), or by a template whose generated init configures it; otherwise the task is
        refused, as is DHCP without such a template (8 runs no DHCP client for a container; ``ip=manual`` leaves
        the interface to the app).  A template that configures interfaces takes exactly those (``_template_net``).
        """
        nets = [key for key in wanted if pveconfig.kind_of(key) == "net"]
        if not self._made_from_image(config, from_image):
            return
        baked = self._template_net(wanted, config)
        if not nets:
            return
        features = features or self.features_for(config)
        parsed = {}
        for key in nets:
            try:
                parsed[key] = pveconfig.parse_property(key, wanted[key], strict=True)
            except ValueError as exc:
                raise ContainerError("%s: %s; nothing was changed" % (key, exc))
        if features.entrypoint_env:
            for key in sorted(nets):
                if "host-managed" not in parsed[key] and key not in baked:
                    wanted[key] = dict(parsed[key], **{"host-managed": "1"})
                    parsed[key]["host-managed"] = "1"
                if str(parsed[key].get("host-managed")) == "1" and parsed[key].get("ip6") == "auto" and \
                        str(parsed[key].get("link_down")) != "1":
                    # pve-container PVE/LXC.pm update_lxc_config dies at start: the container would be made and
                    # never run
                    raise ContainerError(
                        "%s: ip6=auto: Proxmox VE refuses SLAAC on a host-managed interface (\"SLAAC is not "
                        "supported for host-managed network configuration\", at start), and a container made from "
                        "an image needs host-managed interfaces, since the image's command configures none; give "
                        "ip6 a static address, dhcp or manual; nothing was changed" % key)
            return
        release = ".".join(str(part) for part in features.version[:2])
        template_route = ("or build the template with oci_template's net (the same interfaces), whose generated init "
                          "configures them (the image needs ip and, for DHCP, udhcpc)")
        for key in sorted(nets):
            net = parsed[key]
            if str(net.get("link_down")) == "1" or key in baked:
                continue
            for option in ("ip", "ip6"):
                if net.get(option) == "dhcp":
                    raise ContainerError(
                        "%s: %s=dhcp: Proxmox VE %s runs no DHCP client for a container (9.1 runs one for a "
                        "host-managed interface), and a container made from an image runs the image's command as "
                        "init, which configures no network: %s; or give a static address (with raw_lxc: true), or "
                        "%s=manual if the app configures its network itself; nothing was changed"
                        % (key, option, release, template_route, option))
            addressed = net.get("ip") not in (None, "manual") or net.get("ip6") not in (None, "manual")
            if addressed and not self.params.get("raw_lxc"):
                raise ContainerError(
                    "%s: Proxmox VE %s brings up no interface of a container made from an image (it has no "
                    "host-managed network, and the image's command configures none), so %s would stay down "
                    "without its address: run the task on the node with raw_lxc: true, which writes the "
                    "addresses as raw lxc.net.%s lines (as 9.1 writes them for a host-managed interface), %s, or "
                    "set ip=manual if the app configures its network itself; nothing was changed"
                    % (key, release, net.get("name") or key, key[3:], template_route))

    def _template_net(self, wanted, config):
        """The netN keys that the template's generated init configures (oci_template's ``net``: this task's
        ``oci``, else the digest in the container's record), after checking that the container's interfaces are
        exactly those: the init configures what the template says, whatever the config says, and fails without
        such an interface."""
        runtime = (self.params.get("oci") or {}).get("runtime") or {}
        template = runtime.get("net")
        record = origin.parse(config.get("description")) if config else None
        digest = None if template is not None or not record else record.get("net")
        if template is None and not digest:
            return set()
        effective = dict((key, value) for key, value in (config or {}).items() if pveconfig.kind_of(key) == "net")
        effective.update((key, value) for key, value in wanted.items() if pveconfig.kind_of(key) == "net")
        try:
            have = pveconfig.app_net(effective)
        except ValueError as exc:
            raise ContainerError("%s; nothing was changed" % exc)
        if template is not None:
            same = have == [dict(item) for item in template]
            told = "configures %s" % (_net_text(template) or "no interface")
        else:
            same = pveconfig.app_net_digest(have) == digest
            told = "configures other interfaces (its record says net=%s)" % digest
        if not same:
            raise ContainerError(
                "the template's generated init %s, and the container's interfaces would be %s: a template built "
                "with oci_template's net is for containers with exactly those interfaces (name, ip, gw, ip6, gw6); "
                "give the same net, or build the template with this one; nothing was changed"
                % (told, _net_text(have) or "none"))
        return set(item["key"] for item in have)

    def net_lines(self, config):
        """``(lines, managed keys)``: the raw ``lxc.net.N.*`` lines that bring up an app container's interfaces
        on Proxmox VE 8, as pve-container 9.1's update_lxc_config writes them for host-managed ones (addresses,
        gateways, ``flags = up``; nothing for ``link_down=1``).  None on 9.1+ and for other containers."""
        if not self._made_from_image(config) or self.features_for(config).entrypoint_env:
            return [], set()
        lines, managed = [], set()
        for key in sorted((k for k in config if pveconfig.kind_of(k) == "net"), key=lambda k: int(k[3:])):
            index = int(key[3:])
            managed |= rawconf.net_keys(index)
            net = pveconfig.parse_property(key, config[key])
            if str(net.get("link_down")) == "1":
                continue
            prefix = "lxc.net.%d." % index
            if net.get("ip") not in (None, "dhcp", "manual"):
                lines.append(prefix + "ipv4.address = %s" % net["ip"])
            if net.get("gw"):
                lines.append(prefix + "ipv4.gateway = %s" % net["gw"])
            if net.get("ip6") not in (None, "dhcp", "manual", "auto"):
                lines.append(prefix + "ipv6.address = %s" % net["ip6"])
            if net.get("gw6"):
                lines.append(prefix + "ipv6.gateway = %s" % net["gw6"])
            lines.append(prefix + "flags = up")
        return lines, managed

    def ostemplate(self):
        oci = self.params.get("oci")
        if oci:
            if oci.get("volid"):
                return oci["volid"]
            raise ContainerError("oci must be the registered result of oci_template with storage (it has no volid)")
        return self.params.get("ostemplate")

    # -- vmid allocation ---------------------------------------------------------------

    def _candidates(self):
        if self.params.get("vmid") is not None:
            yield int(self.params["vmid"])
            return
        vmid_range = self.params.get("vmid_range")
        if vmid_range:
            low, high = int(vmid_range[0]), int(vmid_range[1])
            used = set(int(r["vmid"]) for r in self.session.resources())
            for vmid in range(low, high + 1):
                if vmid not in used:
                    yield vmid
            raise ContainerError("no free vmid in %d-%d" % (low, high))
        for dummy in range(DEFAULT_ALLOCATION_RETRIES):
            yield int(self.client.get("/cluster/nextid"))
        raise ContainerError("could not allocate a vmid: %d attempts collided" % DEFAULT_ALLOCATION_RETRIES)

    def _create_with(self, make):
        """Run ``make(vmid)`` (returns a UPID) with vmids from _candidates, retrying collisions."""
        last = None
        for vmid in self._candidates():
            try:
                return vmid, make(vmid)
            except PveApiError as exc:
                if any(marker in str(exc) for marker in EXISTS_MARKERS) and self.params.get("vmid") is None:
                    last = exc
                    continue
                raise
        raise ContainerError("could not allocate a vmid: %s" % last)

    # -- creation ----------------------------------------------------------------------

    def create(self, node, wanted):
        params = self.params
        clone = params.get("clone")
        create_args = {}
        for key in ("password", "pool"):
            if params.get(key) is not None:
                create_args[key] = params[key]
        if params.get("ssh_public_keys"):
            create_args["ssh-public-keys"] = params["ssh_public_keys"]
        if clone is not None:
            return self.clone(node, wanted)
        template = self.ostemplate()
        if not template:
            raise ContainerError("the container does not exist: give ostemplate, oci or clone to create it")
        post_only = dict((k, pveconfig.format_value(k, v)) for k, v in wanted.items()
                         if k not in ("entrypoint", "env"))
        if self.default_rootfs() and "rootfs" not in post_only:
            post_only["rootfs"] = self.default_rootfs()
        post_only.update(create_args)
        post_only["ostemplate"] = template
        if params.get("unprivileged") is None:
            # secure by default, as the Proxmox VE GUI and community.proxmox create them (the API's default is 0)
            post_only["unprivileged"] = 1
        if params.get("oci") and "ostype" not in post_only:
            # an image is no distribution Proxmox should set up: create detects the OS from /etc/os-release and
            # fails on IDs it does not know ("unable to detect OS distribution": wolfi, chainguard, amzn), or
            # writes hostname/network files into Debian/Alpine images (pve-container PVE/LXC/Setup.pm
            # autodetect_type, PVE/API2/LXC.pm create_vm)
            post_only["ostype"] = "unmanaged"

        def make(vmid):
            return self.client.post("/nodes/{node}/lxc", dict(post_only, vmid=vmid), node=node)

        vmid, upid = self._create_with(make)
        self.session.act("created")
        self.session.wait(node, upid, "create")
        if params.get("oci") and str(template).endswith(".tar"):
            problem = import_problem((params["oci"] or {}).get("runtime"), self.session.config_of(node, vmid))
            if problem:
                raise self.undo_create(node, vmid, ContainerError(
                    "CT %s was made from the OCI archive %s, but %s. The app would not run as the image says: "
                    "build the template with init_wrapper: always (its generated init switches the user and "
                    "directory itself), or update pve-container on node %s to 6.1.0 or later"
                    % (vmid, template, problem, node)))
        # entrypoint/env after the create: Proxmox's OCI import overwrites env given at create
        late = dict((k, pveconfig.format_value(k, v)) for k, v in wanted.items() if k in ("entrypoint", "env"))
        if late:
            try:
                self.client.put("/nodes/{node}/lxc/{vmid}/config", late, node=node, vmid=vmid)
            except PveError as exc:
                raise self.undo_create(node, vmid, exc)
        return vmid

    def clone_source(self):
        source = self.params["clone"]
        src = [r for r in self.session.resources()
               if r.get("type") == "lxc" and (str(r["vmid"]) == str(source) or r.get("name") == str(source))]
        if len(src) != 1:
            raise ContainerError("clone source %r: %s" % (source, "not found" if not src else "ambiguous"))
        return src[0]

    def clone(self, node, wanted):
        params = self.params
        src = self.clone_source()
        full = params.get("full")
        if full is None:
            full = not src.get("template")
        if not full and not src.get("template"):
            raise ContainerError("a linked clone needs a template as source; %s is not one (set full: true)"
                                 % src["vmid"])
        if params.get("clone_snapshot"):
            if not full:
                raise ContainerError("clone_snapshot needs a full clone (full: true): Proxmox VE clones a snapshot's "
                                     "state by copying it")
        args = {"full": 1 if full else 0}
        if params.get("clone_snapshot"):
            args["snapname"] = params["clone_snapshot"]
        if wanted.get("hostname"):
            args["hostname"] = wanted["hostname"]
        if full and params.get("storage"):
            args["storage"] = params["storage"]
        if params.get("pool"):
            args["pool"] = params["pool"]
        if node and node != src["node"]:
            # pve-container clone_vm: the clone's config goes to the target node; Proxmox VE refuses it unless the
            # source's volumes and the target storage are shared
            args["target"] = node

        def make(vmid):
            # clone_vm holds a 'disk' lock on the source for the whole clone (pve-container PVE/API2/LXC.pm
            # clone_vm: set_lock before the worker), so parallel clones of one template meet "CT is locked (disk)"
            return self.session.locked_retry("clone", lambda: self.client.post(
                "/nodes/{node}/lxc/{vmid}/clone", dict(args, newid=vmid), node=src["node"], vmid=src["vmid"]))

        vmid, upid = self._create_with(make)
        self.session.act("cloned")
        self.session.wait(src["node"], upid, "clone")
        return vmid

    @staticmethod
    def raw_config(runtime):
        """The raw lxc.* lines of an image's runtime (oci_template's ``runtime``)."""
        return ["lxc.init.cmd = %s" % runtime["lxc_init_cmd"]] + list(runtime.get("lxc_config") or [])

    def raw_lines(self, node, vmid, config):
        """Write the raw lxc.* lines into the node's conf file (raw_lxc): the image's runtime (a template without
        the init wrapper) and, on Proxmox VE 8, the interfaces of an app container (net_lines); returns whether
        it changed."""
        if not self.params.get("raw_lxc"):
            return False
        runtime = (self.params.get("oci") or {}).get("runtime")
        lines, managed = [], set()
        if runtime and (runtime.get("wrapper") or {}).get("kind") != "init":
            lines += self.raw_config(runtime)
            managed |= set(rawconf.MANAGED_KEYS)
        net, net_managed = self.net_lines(config or {})
        lines += net
        managed |= net_managed
        if not managed:
            return False
        try:
            changed = rawconf.apply(vmid, lines, self.params["raw_lxc_dir"], check_mode=self.check_mode,
                                    managed=managed)
        except (OSError, IOError) as exc:
            raise ContainerError(str(exc))
        if changed:
            self.session.act("raw_lxc")
        return changed

    # -- update --------------------------------------------------------------------------

    def rootfs_size(self, current, wanted):
        """Split a root file system size change off the config change.

        Returns ``(wanted, bytes)``: the config without a size change (the volume stays the one in the
        config; its other sub-keys may change) and the new size when it grows, else None. Proxmox VE
        cannot shrink a volume: asking for less is an error.
        """
        if not current.get("rootfs"):
            return wanted, None
        have = pveconfig.parse_property("rootfs", current["rootfs"])
        have_size = pveconfig.parse_size(have.get("size")) if have.get("size") else None
        asked = int(self.params["disk_size"]) * GIB if self.params.get("disk_size") else None
        if "rootfs" in wanted:
            want = pveconfig.parse_property("rootfs", pveconfig.format_value("rootfs", wanted["rootfs"]))
            alloc = pveconfig.allocation(want.get("volume", ""))
            if alloc:
                if alloc[0] != str(have.get("volume", "")).partition(":")[0]:
                    raise ContainerError("rootfs is on %s; moving it to %s is not done by this module (pct "
                                         "move-volume)" % (str(have.get("volume")).partition(":")[0], alloc[0]))
                asked = alloc[1] or asked
            elif want.get("volume") not in (None, have.get("volume")):
                raise ContainerError("rootfs is %s; another volume (%s) cannot be set on an existing container"
                                     % (have.get("volume"), want.get("volume")))
            elif want.get("size"):
                asked = pveconfig.parse_size(want["size"])
            merged = dict(have)
            merged.update((k, v) for k, v in want.items() if k not in ("volume", "size"))
            wanted = dict(wanted, rootfs=pveconfig.format_property("rootfs", merged))
        if asked is None or have_size is None or asked == have_size:
            return wanted, None
        if asked < have_size:
            raise ContainerError("rootfs is %s and %s was asked: Proxmox VE cannot shrink a volume"
                                 % (pveconfig.format_size(have_size), pveconfig.format_size(asked)))
        return wanted, asked

    def volume_sizes(self, current, wanted):
        """rootfs_size for every volume: ``(wanted, {key: bytes})`` with the volumes that grow.

        An existing mount point given as ``STORAGE:SIZE`` (or with ``size=``) keeps its volume: Proxmox VE would
        allocate a new, empty one for it and keep the old one only as unusedN, so the app would lose sight of its
        data.  It grows through a resize instead; a smaller size is refused (Proxmox VE cannot shrink a volume),
        as is another storage (a move: lxc_volume, or pct move-volume).  An explicit other volume id is the
        user's own swap and is written as given (Proxmox VE keeps the old volume as unusedN).
        """
        wanted, grow = self.rootfs_size(current, wanted)
        grows = {"rootfs": grow} if grow else {}
        for key in sorted(k for k in wanted if re.match(r"^mp\d+$", k) and current.get(k)):
            have = pveconfig.parse_property(key, current[key])
            try:
                want = pveconfig.parse_property(key, pveconfig.format_value(key, wanted[key]), strict=True)
            except ValueError as exc:
                raise ContainerError("%s: %s; nothing was changed" % (key, exc))
            alloc = pveconfig.allocation(want.get("volume", ""))
            storage = str(have.get("volume", "")).partition(":")[0]
            if alloc:
                if alloc[0] != storage:
                    raise ContainerError("%s is the volume %s on %s; %s asks for one on %s, which would be a new, "
                                         "empty volume: move a volume with lxc_volume (another container) or pct "
                                         "move-volume (another storage); nothing was changed"
                                         % (key, have.get("volume"), storage, wanted[key], alloc[0]))
                asked = alloc[1] or None
            elif want.get("volume") not in (None, have.get("volume")):
                continue
            else:
                asked = pveconfig.parse_size(want["size"]) if want.get("size") else None
            merged = dict(have)
            merged.update((k, v) for k, v in want.items() if k not in ("volume", "size"))
            wanted = dict(wanted, **{key: pveconfig.format_property(key, merged)})
            have_size = pveconfig.parse_size(have["size"]) if have.get("size") else None
            if asked is None or have_size is None or asked == have_size:
                continue
            if asked < have_size:
                raise ContainerError("%s is %s and %s was asked: Proxmox VE cannot shrink a volume; nothing was "
                                     "changed" % (key, pveconfig.format_size(have_size), pveconfig.format_size(asked)))
            grows[key] = asked
        return wanted, grows

    def resize(self, node, vmid, size, disk="rootfs"):
        self.session.perform("resized" if disk == "rootfs" else "resized " + disk,
                             lambda: self.session.task(node, "resize " + disk, lambda: self.client.put(
                                 "/nodes/{node}/lxc/{vmid}/resize", {"disk": disk, "size": pveconfig.format_size(size)},
                                 node=node, vmid=vmid)))

    def check_mount_perm(self, values, vmid=None):
        """Refuse, before any change (check mode too), a bind or device mount point (a path as its volume) written
        by anyone but root@pam: pve-container PVE/LXC.pm check_ct_modify_config_perm, which create_vm and
        update_vm run first, allows them to root@pam only (``mount point type bind is only allowed for
        root@pam``); an API token of root@pam is another user there."""
        user = self.client.acting_user()
        if user == "root@pam":
            return
        paths = []
        for key, value in sorted(values.items()):
            if key != "rootfs" and not re.match(r"^mp\d+$", key):
                continue
            volume = pveconfig.parse_property("mp" if key != "rootfs" else key,
                                              pveconfig.format_value(key, value)).get("volume") or ""
            if volume.startswith("/"):
                paths.append("%s (%s)" % (key, volume))
        if paths:
            raise ContainerError("%s: %s: Proxmox VE allows bind and device mount points to root@pam only "
                                 "(check_ct_modify_config_perm), and this connection acts as %s. Log in as root@pam "
                                 "with its password, or run on the node (api_connection local or ssh); nothing was changed"
                                 % ("CT %s" % vmid if vmid is not None else "the new container", ", ".join(paths),
                                    user))

    def check_storages(self, node, values, vmid=None):
        """Refuse, before any change (check mode too), a new volume (rootfs or mpN as ``STORAGE:SIZE``) on a
        storage the node cannot allocate it on, as Proxmox VE would refuse it: pve-container PVE/API2/LXC.pm
        create_vm $check_and_activate_storage and PVE/LXC/Config.pm update_pct_config $check_content_type, over
        pve-storage PVE/Storage.pm storage_check_enabled (``disable``, storage.cfg ``nodes``) and
        activate_storage (the connection check).  GET /nodes/{node}/storage lists each storage as
        PVE/Storage.pm storage_info sees it from that node: ``enabled``, ``active`` and ``content``."""
        wanted = self.volume_storages(values, allocated_only=True)
        if not wanted:
            return
        listed = dict((entry.get("storage"), entry) for entry in
                      self.client.get("/nodes/{node}/storage", node=node) or [])
        problems = []
        for storage in sorted(wanted):
            entry = listed.get(storage)
            if entry is None:
                problems.append("storage '%s' does not exist" % storage)
            elif str(entry.get("enabled", 1)) in ("0", "False", "false"):
                problems.append("storage '%s' is disabled, or not available on node %s (its storage.cfg nodes)"
                                % (storage, node))
            elif "rootdir" not in str(entry.get("content", "")).split(","):
                problems.append("storage '%s' holds no container volumes (its content has no rootdir)" % storage)
            elif str(entry.get("active", 1)) in ("0", "False", "false"):
                problems.append("storage '%s' is not active on node %s (offline, or its connection check fails)"
                                % (storage, node))
        if problems:
            raise ContainerError("%s: cannot allocate its volumes on node %s: %s; nothing was changed"
                                 % ("CT %s" % vmid if vmid is not None else "the new container", node,
                                    "; ".join(problems)))

    @staticmethod
    def volume_storages(values, allocated_only=False):
        """The storages of the rootfs and mpN volumes in ``values``: of new ones (``STORAGE:SIZE``) only, or of
        every storage volume (bind and device mounts have none)."""
        out = set()
        for key, value in values.items():
            if key != "rootfs" and not re.match(r"^mp\d+$", key):
                continue
            volume = pveconfig.parse_property("mp" if key != "rootfs" else key,
                                              pveconfig.format_value(key, value)).get("volume") or ""
            alloc = pveconfig.allocation(volume)
            if alloc:
                out.add(alloc[0])
            elif not allocated_only and ":" in volume and not volume.startswith("/"):
                out.add(volume.split(":", 1)[0])
        return sorted(out)

    def new_volumes(self):
        """rootfs and mpN of a new container as the options give them (before desired(): placement needs them)."""
        params = self.params
        values = dict(("mp%d" % int(index), value) for index, value in (params.get("mounts") or {}).items())
        if params.get("rootfs") is not None:
            values["rootfs"] = params["rootfs"]
        elif self.default_rootfs():
            values["rootfs"] = self.default_rootfs()
        return values

    def default_rootfs(self):
        """The rootfs ``storage`` and ``disk_size`` (GiB, default 8) ask for, ``STORAGE:SIZE``; None without storage."""
        if not self.params.get("storage"):
            return None
        return "%s:%s" % (self.params["storage"], self.params.get("disk_size") or 8)

    def place(self):
        """The node a new container goes to (session.node: given, the only one, or node: auto)."""
        if self.params.get("clone") is not None:
            # a clone is made where its source is, or on ``node`` (clone_vm's target: shared storage only)
            if self.params.get("node") not in (None, "", "auto"):
                return self.params["node"]
            return self.clone_source()["node"]
        template = None
        if self.params.get("node") == "auto":
            template = self.ostemplate()
        return self.session.node(storages=self.volume_storages(self.new_volumes()), template=template)

    def migrate(self, found):
        """migrate: true moves a container that is on another node than ``node`` there (pve-container
        migrate_vm); a running one only with migrate_restart (shut down, moved, started on the target).
        Without migrate it stays where it is, and a warning says so.  Returns the node it is on afterwards."""
        params, node, vmid = self.params, found["node"], found["vmid"]
        wanted = params.get("node")
        if not wanted or wanted == "auto" or wanted == node or found.get("phantom"):
            return node
        if not params.get("migrate"):
            self.notices.append("CT %s is on node %s, not on node %s as the task says; it was left there (set "
                                "migrate: true to move it)" % (vmid, node, wanted))
            return node
        running = found.get("status") == "running"
        if running and not params.get("migrate_restart"):
            raise ContainerError("CT %s runs on node %s: moving it to node %s means shutting it down and starting it "
                                 "there (Proxmox VE has no live migration of containers); set migrate_restart: true "
                                 "to do that; nothing was changed" % (vmid, node, wanted))
        args = {"target": wanted}
        if running:
            args.update(restart=1, timeout=params.get("shutdown_timeout") or DEFAULT_SHUTDOWN_TIMEOUT)

        def move():
            try:
                self.session.task(node, "migrate", lambda: self.client.post(
                    "/nodes/{node}/lxc/{vmid}/migrate", args, node=node, vmid=vmid))
            except PveError as exc:
                raise ContainerError("moving CT %s from node %s to node %s failed: %s; Proxmox VE left it on node %s"
                                     % (vmid, node, wanted, exc, node))
        self.session.perform("migrated from %s to %s%s" % (node, wanted, " (restarted)" if running else ""), move)
        return wanted

    def plan(self, current, wanted):
        delete = list(self.params.get("delete") or ()) + (["env"] if self.empty_env else [])
        return pveconfig.diff(current, wanted, purge=bool(self.params.get("purge_config")), delete=delete)

    def update(self, node, vmid, current, wanted, running):
        """Write the keys that differ (one PUT with the digest), then grow the rootfs.

        The config goes first: a resize changes the config (its ``size``) and so the digest read before.
        While the container is locked the write waits; after each wait the config is read again and the
        plan made anew (releasing a lock changes the digest; the other task may have changed keys).
        A write refused because another client changed the config in between is planned anew the same
        way, up to MAX_REPLANS times.
        """
        wanted, grows = self.volume_sizes(current, wanted)
        plan = self.plan(current, wanted)
        self.check_mount_perm(plan.put, vmid)
        self.check_storages(node, plan.put, vmid)
        result = {"pending": [], "resized": grows}
        if self.check_mode:
            if plan.changed:
                self.session.act("configured")
        elif plan.changed:
            latest = {"plan": plan, "digest": current.get("digest")}

            def write():
                for replans in range(MAX_REPLANS + 1):
                    todo = latest["plan"]
                    if not todo.changed:
                        return
                    body = dict(todo.put)
                    if todo.delete:
                        body["delete"] = ",".join(todo.delete)
                    if latest["digest"]:
                        body["digest"] = latest["digest"]
                    try:
                        self.client.put("/nodes/{node}/lxc/{vmid}/config", body, node=node, vmid=vmid)
                        return
                    except PveApiError as exc:
                        if MODIFIED not in str(exc):
                            raise
                        if replans == MAX_REPLANS:
                            raise ContainerError("configure: the config of CT %s changed under every one of %d "
                                                 "writes (%s); another client keeps editing it; this step "
                                                 "changed nothing" % (vmid, MAX_REPLANS + 1, exc))
                    # another client changed the config since it was read: plan again from what it is now
                    # (per key, so only the keys this task manages are written; theirs are kept)
                    self.session.note("re-planned after a concurrent edit")
                    refresh()

            def refresh():
                fresh = self.session.config_of(node, vmid)
                latest.update(plan=self.plan(fresh, wanted), digest=fresh.get("digest"))

            self.session.locked_retry("configure", write, refresh)
            plan = latest["plan"]
            if plan.changed:
                self.session.act("configured")
        for disk, size in sorted(grows.items()):
            self.resize(node, vmid, size, disk)
        if plan.changed and running:
            result["pending"] = sorted(plan.pending)
        return plan, result

    # -- state transitions ------------------------------------------------------------------

    def start(self, node, vmid):
        self.session.perform("started", lambda: self._ha_settled(node, vmid, "running", self.session.task(
            node, "start", lambda: self.client.post("/nodes/{node}/lxc/{vmid}/status/start", node=node, vmid=vmid))))

    def _ha_settled(self, node, vmid, wanted, done):
        """After the task ``done``: an HA-managed container's start or stop is only a request to ha-manager
        (pve-container PVE/API2/LXC/Status.pm: a ``hastart``/``hastop`` worker runs ``ha-manager set ct:<vmid>
        --state started``, or crm-command stop); the CRM acts on its next round, about 10 s later.  Wait until
        the container's status is ``wanted`` (within wait_timeout)."""
        try:
            kind = parse_upid(done.upid).type if done is not None else None
        except PveError:
            kind = None
        if kind not in ("hastart", "hastop"):
            return done
        deadline = self.session.clock() + (self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        started = self.session.clock()
        while self.session.status_of(node, vmid) != wanted:
            if self.session.clock() > deadline:
                raise ContainerError("CT %s is HA-managed: ha-manager was asked to make it %s (%s), but it is not "
                                     "after wait_timeout; see 'ha-manager status'" % (vmid, wanted, done.upid))
            self.session.sleep(1.0)
        self.session.timings["ha_wait"] = round(self.session.clock() - started, 3)
        self.session.note("waited for ha-manager")
        return done

    def stop(self, node, vmid):
        self.session.perform("stopped", lambda: self._shutdown(node, vmid))

    def _shutdown(self, node, vmid):
        timeout = self.params["shutdown_timeout"]
        args = {"timeout": timeout}
        if self.params.get("force_stop"):
            args["forceStop"] = 1
        began = self.session.clock()
        try:
            self._ha_settled(node, vmid, "stopped", self.session.task(node, "shutdown", lambda: self.client.post(
                "/nodes/{node}/lxc/{vmid}/status/shutdown", args, node=node, vmid=vmid)))
        except PveTaskError as exc:
            # PVE::LXC::vm_stop: lxc-stop --nokill --timeout N failed and the container still runs
            if "container did not stop" not in str(exc):
                raise
            raise ContainerError("CT %s did not stop within shutdown_timeout (%s s): its init ignored the stop "
                                 "signal (lxc.signal.halt) or took longer. Set force_stop: true to kill it after the "
                                 "timeout, or raise shutdown_timeout. (%s)" % (vmid, timeout, exc))
        if self.params.get("force_stop") and self.session.clock() - began >= timeout:
            # with forceStop lxc-stop kills the container when the timeout is over; the task says nothing of it
            self.session.note("killed after shutdown_timeout (%s s): the app ignored its stop signal (force_stop)" % timeout)

    def kill(self, node, vmid):
        self.session.perform("stopped", lambda: self._ha_settled(node, vmid, "stopped", self.session.task(
            node, "stop", lambda: self.client.post("/nodes/{node}/lxc/{vmid}/status/stop", node=node, vmid=vmid))))

    def reboot(self, node, vmid):
        args = {"timeout": self.params["shutdown_timeout"]}
        self.session.perform("restarted", lambda: self.session.task(node, "reboot", lambda: self.client.post(
            "/nodes/{node}/lxc/{vmid}/status/reboot", args, node=node, vmid=vmid)))

    def make_template(self, node, vmid):
        self.session.perform("templated", lambda: self._template(node, vmid))

    def _template(self, node, vmid):
        # POST .../template answers null although a worker runs: poll the config until it says so
        self.session.task(node, "template", lambda: self.client.post(
            "/nodes/{node}/lxc/{vmid}/template", node=node, vmid=vmid))
        deadline = self.session.clock() + (self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        while str(self.session.config_of(node, vmid).get("template")) != "1":
            if self.session.clock() > deadline:
                raise ContainerError("CT %s did not become a template within wait_timeout" % vmid)
            self.session.sleep(0.2)

    def destroy(self, node, vmid, status, config):
        params = self.params
        if str(config.get("protection")) == "1" and not params.get("force"):
            raise ContainerError("CT %s is protected (protection: 1); set force: true to remove the protection and "
                                 "delete it" % vmid)
        if status == "running":
            if not params.get("force"):
                raise ContainerError("CT %s is running; set force: true to stop and delete it" % vmid)
            self.kill(node, vmid)
        self.session.perform("deleted", lambda: self._delete(node, vmid, config))

    def _delete(self, node, vmid, config):
        params = self.params
        if str(config.get("protection")) == "1":
            self.client.put("/nodes/{node}/lxc/{vmid}/config", {"delete": "protection"}, node=node, vmid=vmid)
        args = {}
        if params.get("purge"):
            args["purge"] = 1
        if params.get("destroy_unreferenced_disks") is not None:
            args["destroy-unreferenced-disks"] = 1 if params["destroy_unreferenced_disks"] else 0
        self.session.task(node, "delete", lambda: self.client.delete(
            "/nodes/{node}/lxc/{vmid}", args, node=node, vmid=vmid))

    # -- the module ----------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        state = self.params["state"]
        self.check_request()
        found = self.session.find()
        result = {"changed": False, "state": state}
        if state == "absent":
            return self.session.finish(self.remove(found, result), started)
        if found is None and state == "stopped" and not self.has_source():
            # nothing to stop, as absent has nothing to delete; only present/started need a source to create from
            result.update(vmid=self.params.get("vmid"), status="absent", diff={"before": {}, "after": {}})
            return self.session.finish(result, started)
        if found is None:
            node = self.target = self.place()
            wanted = self.desired()
            if self.params.get("clone") is None:
                rootfs = {} if "rootfs" in wanted or not self.default_rootfs() else {"rootfs": self.default_rootfs()}
                self.check_storages(node, dict(wanted, **rootfs))
            self.check_mount_perm(wanted)
            if self.check_mode:
                self.session.act("created")
                status = "running" if state in ("started", "restarted") else "stopped"
                if status == "running":
                    self.session.actions.append("started")
                self.session.check_plan.record(self.params.get("vmid"), wanted.get("hostname"), node=node,
                                               status=status, created=True)
                result.update(vmid=self.params.get("vmid"), node=node, status=status,
                              diff={"before": {}, "after": pveconfig.masked(wanted)})
                return self.session.finish(result, started)
            vmid = self.create(node, wanted)
            try:
                return self.session.finish(self.converge(state, vmid, node, None, wanted, result), started)
            except PveError as exc:
                raise self.undo_create(node, vmid, exc)
        node, vmid = found["node"], found["vmid"]
        moved_to = self.target = self.migrate(found)
        if moved_to != node and not self.check_mode:  # check mode reads it where it still is
            node = moved_to
            found = dict(found, node=node)
        if found.get("phantom"):
            # created by an earlier task of this check-mode run: nothing to read, its config is the one asked for
            return self.session.finish(self.converge(state, vmid, node, found, None, result), started)
        vmid = int(vmid)
        config = self.session.config_of(node, vmid)
        self.check_origin(vmid, config)
        unprivileged = str(config.get("unprivileged", 0)) == "1"
        if self.params.get("unprivileged") is not None and bool(self.params["unprivileged"]) != unprivileged:
            raise ContainerError("CT %s is %s, and Proxmox VE fixes that when a container is created (unprivileged is "
                                 "read-only after): leave unprivileged out, or make a new container; nothing was "
                                 "changed" % (vmid, "unprivileged" if unprivileged else "privileged"))
        wanted = self.desired(config=config)
        result = self.converge(state, vmid, node, found, wanted, result, config)
        result["node"] = moved_to
        if self.notices:
            result["warnings"] = list(self.notices)
        return self.session.finish(result, started)

    def converge(self, state, vmid, node, found, wanted, result, config=None):
        """Configure (an existing container), then bring the run state to ``state``; returns the result."""
        if found is None:  # created by this task
            node = self.session.node({"node": node}) if self.params.get("clone") is None else self.session.find_by_vmid(vmid)["node"]
            config = self.session.config_of(node, vmid)
            if self.params.get("clone") is not None:
                if self.params.get("description") is not None:  # the user's notes, keeping the inherited record
                    wanted = dict(wanted, description=origin.with_record(
                        self.params["description"], origin.parse(config.get("description"))))
                self.update(node, vmid, config, wanted, running=False)
                config = self.session.config_of(node, vmid)
            before = {}
            status = "stopped"
        elif found.get("phantom"):
            config, before, status = {}, {}, found.get("status") or "stopped"
        else:
            before = pveconfig.masked(config)
            status = found.get("status")
            if str(config.get("template")) == "1" and state in ("started", "restarted", "stopped"):
                raise ContainerError("CT %s is a template; it cannot be %s" % (vmid, state))
            plan, info = self.update(node, vmid, config, wanted, running=status == "running")
            result["pending"] = info["pending"]
            if status == "running":
                # GET .../config merges pending values: a change an earlier run left pending looks done there
                result["pending"] = sorted(set(result["pending"]) | set(self.session.pending_keys(node, vmid)))
            if result["pending"] and self.params.get("restart") == "when_needed" and state != "stopped":
                self.reboot(node, vmid)
                result["pending"] = []
            if (plan.changed or info["resized"]) and not self.check_mode:
                config = self.session.config_of(node, vmid)
            elif plan.changed or info["resized"]:
                config = dict(config, **plan.put)
                for key in plan.delete:
                    config.pop(key, None)
                for disk, size in info["resized"].items():
                    volume = pveconfig.parse_property(disk, config[disk])
                    volume["size"] = pveconfig.format_size(size)
                    config[disk] = pveconfig.format_property(disk, volume)
        if vmid is not None and not (found or {}).get("phantom") and self.raw_lines(node, vmid, config) and \
                status == "running" and state != "stopped":
            result.setdefault("pending", []).append("lxc.*")
            if self.params.get("restart") == "when_needed":
                self.reboot(node, vmid)
                result["pending"] = [k for k in result["pending"] if k != "lxc.*"]
        if state == "started" and status != "running":
            self.start(node, vmid)
            status = "running"
        elif state == "stopped" and status == "running":
            self.stop(node, vmid)
            status = "stopped"
        elif state == "restarted":
            if status == "running":
                self.reboot(node, vmid)
            else:
                self.start(node, vmid)
            status = "running"
        elif state == "template" and str(config.get("template")) != "1":
            if status == "running":
                if not self.params.get("force"):
                    raise ContainerError("CT %s is running; stop it first or set force: true" % vmid)
                self.kill(node, vmid)
            self.make_template(node, vmid)
            if not self.check_mode:
                config = self.session.config_of(node, vmid)
        if not self.check_mode and self.session.changed:
            status = self.session.status_of(node, vmid) or status
        if self.check_mode and found is not None:
            self.session.check_plan.record(vmid, config.get("hostname") or found.get("name"), node=self.target or node,
                                           status=status, created=bool(found.get("phantom")))
        result.update(vmid=vmid, node=node, status=status, config=pveconfig.masked(config),
                      diff={"before": _without_digest(before), "after": _without_digest(pveconfig.masked(config))})
        if self.mismatch:
            result["mismatch"] = self.mismatch
        if self.session.placement is not None:
            result["placement"] = self.session.placement
        return result

    def remove(self, found, result):
        """state absent: delete the container (nothing to do when there is none)."""
        if found is None:
            result.update(vmid=self.params.get("vmid"), status="absent", diff={"before": {}, "after": {}})
            return result
        node, vmid = found["node"], found["vmid"]
        if found.get("phantom"):
            config = {}
            if found.get("status") == "running" and not self.params.get("force"):
                raise ContainerError("CT %s would be running (an earlier task of this check run starts it); set "
                                     "force: true to stop and delete it" % (vmid if vmid is not None else
                                                                            found.get("name")))
            self.session.act("deleted")
        else:
            vmid = int(vmid)
            config = self.session.config_of(node, vmid)
            self.destroy(node, vmid, found.get("status"), config)
        self.session.check_plan.record(vmid, found.get("name"), node=node, status="absent", created=False)
        result.update(vmid=vmid, node=node, status="absent",
                      diff={"before": _without_digest(pveconfig.masked(config)), "after": {}})
        return result

    def has_source(self):
        return bool(self.params.get("ostemplate") or self.params.get("oci") or self.params.get("clone") is not None)

    def check_request(self):
        """Checks of the options alone, before anything is read or changed (check mode too)."""
        params = self.params
        try:
            pveconfig.check_carried({"entrypoint": params.get("entrypoint"), "env": params.get("env"),
                                     "hostname": params.get("hostname"), "description": params.get("description")})
            runtime = (params.get("oci") or {}).get("runtime") or {}
            if params.get("raw_lxc") and runtime and (runtime.get("wrapper") or {}).get("kind") != "init":
                rawconf.check_lines(self.raw_config(runtime))
        except ValueError as exc:
            raise ContainerError("%s; nothing was changed" % exc)

    def check_origin(self, vmid, config):
        """Refuse (on_mismatch: fail) to take over a container that is another one than the task describes.

        Addressed by vmid, a container whose hostname differs from the given one, or whose recorded image
        (origin line of its description) is another image or another digest of it, is someone else's
        container or another version: changing it silently would rename or repurpose it.  The mismatches are
        returned (``mismatch``); with on_mismatch: update the task goes on (the root file system stays the one
        it was created from: this module never replaces it; oci_app upgrades through a new container).
        """
        params = self.params
        found = []
        hostname = config.get("hostname") or "CT%d" % vmid
        if params.get("vmid") is not None and params.get("hostname") and params["hostname"] != hostname:
            found.append({"what": "hostname", "have": hostname, "want": params["hostname"]})
        record = origin.parse(config.get("description"))
        wanted = origin.record_of(params.get("oci"), params.get("ostemplate"))
        for what, have, want in origin.mismatches(record, wanted):
            found.append({"what": what, "have": have, "want": want})
        if not found:
            return
        self.mismatch = found
        text = "; ".join("%s is %s, the task asks for %s" % (m["what"], m["have"], m["want"]) for m in found)
        if params["on_mismatch"] == "fail":
            hints = []
            if any(m["what"] == "hostname" for m in found):
                hints.append("to rename it, set on_mismatch: update; to make another container, give another vmid "
                             "or none")
            if any(m["what"] in ("image", "digest", "template") for m in found):
                hints.append("its root file system was made from the recorded image and is not rebuilt by "
                             "lxc_container: deploy a new version with the oci_app role (or a new container), or set "
                             "on_mismatch: update to apply the rest of the task to it anyway")
            raise ContainerError("CT %d is not the container this task describes: %s. Nothing was changed; %s"
                                 % (vmid, text, "; ".join(hints)))
        self.session.warnings.append("CT %d: %s (on_mismatch: update goes on%s)" % (
            vmid, text, "; the root file system stays the one it was made from"
            if any(m["what"] != "hostname" for m in found) else ""))

    def undo_create(self, node, vmid, exc):
        """A step after this task's create failed: remove the container it made, and say what is left."""
        step = str(exc)
        try:
            status = self.session.status_of(node, vmid)
            if status == "running":
                self.session.wait(node, self.client.post("/nodes/{node}/lxc/{vmid}/status/stop", node=node,
                                                         vmid=vmid), "undo stop")
            self.session.wait(node, self.client.delete("/nodes/{node}/lxc/{vmid}", {"purge": 1}, node=node,
                                                       vmid=vmid), "undo create")
        except PveError as undo:
            return ContainerError("%s\nCT %s was created by this task and is LEFT on node %s: removing it failed "
                                  "(%s). Remove it with lxcri.proxmox.lxc_container (vmid: %s, state: absent, "
                                  "force: true) or 'pct destroy %s --purge' on the node."
                                  % (step, vmid, node, undo, vmid, vmid))
        self.session.note("removed the container it created after a later step failed")
        return ContainerError("%s\nCT %s, created by this task, was removed again; nothing is left behind."
                              % (step, vmid))
