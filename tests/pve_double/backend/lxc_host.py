"""The real LXC under the double's containers: the LXC config PVE would generate, lxc-start and the other tools."""

import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess

from lxcri_testbed.lxc import config_lines, ensure_mountpoints, lxc_info

from ..tasks import TaskFailed
from .lxc import id_map_of

CGROUP_ROOT = "/sys/fs/cgroup"
# isc-dhcp-client, which pve-container depends on (debian/control) and runs as /sbin/dhclient
DHCLIENT = shutil.which("dhclient") or "/sbin/dhclient"


def network_lines(config, warnings, sys_net="/sys/class/net", vmid=None, host_managed=True):
    """``lxc.net.*`` for the container's netN: a veth on the named bridge when the host has that bridge
    (name, hwaddr, mtu; the host end named ``veth<vmid>i<N>`` as PVE names it), else nothing for it and a warning.
    None: no usable interface (empty network).

    pve-container PVE/LXC.pm update_lxc_config (9.1): ``lxc.net.N.flags = up`` and the static ipv4/ipv6
    address and gateway only for an interface with ``host-managed=1`` (and not ``link_down=1``); any other
    interface is left to the container's own init (which an app container does not have: it stays down, without
    an address).  ``host_managed`` False: Proxmox VE 8, which has no host-managed and never writes them.
    DHCP of a host-managed interface is started after the start (``dhcp_interfaces``, LxcHost._start_dhcp)."""
    lines, index = [], 0
    for key in sorted((k for k in config if k.startswith("net") and k[3:].isdigit()), key=lambda k: int(k[3:])):
        opts = dict(part.split("=", 1) for part in str(config[key]).split(",") if "=" in part)
        bridge = opts.get("bridge")
        if not bridge or not os.path.isdir(os.path.join(sys_net, bridge, "bridge")):
            warnings.append("%s: bridge %r does not exist on this host, interface left out" % (key, bridge))
            continue
        prefix = "lxc.net.%d." % index
        lines += [prefix + "type = veth", prefix + "link = %s" % bridge,
                  prefix + "name = %s" % opts.get("name", "eth%d" % index)]
        if vmid is not None:
            lines.append(prefix + "veth.pair = veth%di%s" % (vmid, key[3:]))
        if opts.get("hwaddr"):
            lines.append(prefix + "hwaddr = %s" % opts["hwaddr"])
        if opts.get("mtu"):
            lines.append(prefix + "mtu = %s" % opts["mtu"])
        if host_managed and opts.get("host-managed") == "1" and opts.get("link_down") != "1":
            if opts.get("ip") and opts["ip"] not in ("dhcp", "manual"):
                lines.append(prefix + "ipv4.address = %s" % opts["ip"])
            if opts.get("gw"):
                lines.append(prefix + "ipv4.gateway = %s" % opts["gw"])
            if opts.get("ip6") == "auto":
                raise TaskFailed("%s: SLAAC is not supported for host-managed network configuration" % key)
            if opts.get("ip6") and opts["ip6"] not in ("dhcp", "manual"):
                lines.append(prefix + "ipv6.address = %s" % opts["ip6"])
            if opts.get("gw6"):
                lines.append(prefix + "ipv6.gateway = %s" % opts["gw6"])
            lines.append(prefix + "flags = up")
        index += 1
    return lines or None


def _net_options(value):
    """The sub-keys of a netN value (a property string as the double keeps it)."""
    return dict(part.split("=", 1) for part in str(value or "").split(",") if "=" in part)


def dhcp_interfaces(config, host_managed=True):
    """``[(ipversion, ifname)]``: the interfaces whose DHCP client the host runs after a start.

    pve-container PVE/LXC.pm vm_start (9.1): after the post-start hookscript, every ``netN`` with
    ``host-managed=1`` and ``ip=dhcp`` (v4) or ``ip6=dhcp`` (v6), in key order, v4 ones first; PVE 8 has no
    host-managed and starts none."""
    if not host_managed:
        return []
    found = {4: [], 6: []}
    for key in sorted(k for k in config if k.startswith("net") and k[3:].isdigit()):
        opts = dict(part.split("=", 1) for part in str(config[key]).split(",") if "=" in part)
        if opts.get("host-managed") != "1":
            continue
        name = opts.get("name", "eth" + key[3:])
        if opts.get("ip") == "dhcp":
            found[4].append(name)
        if opts.get("ip6") == "dhcp":
            found[6].append(name)
    return [(4, name) for name in found[4]] + [(6, name) for name in found[6]]


# What pve-container's lxc-pve-poststop-hook does for DHCP (PVE::LXC::vm_stop_cleanup -> kill_dhclients): kill
# every pid in /var/lib/lxc/<vmid>/hook/dhclient*-*.pid (SIGKILL) and remove the files.  The double writes it as
# the container's own lxc.hook.post-stop (LXC runs it on the host when the container stops, however it stops).
POSTSTOP_HOOK = """#!/bin/sh
# lxc.hook.post-stop of the PVE API double: PVE::LXC::kill_dhclients
for pidfile in "%s"/dhclient*-*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  case $pid in ''|*[!0-9]*) ;; *) kill -9 "$pid" 2>/dev/null ;; esac
  rm -f "$pidfile"
done
exit 0
"""


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


def searchable(path):
    """Let everyone search (x, not read) ``path`` and every directory above it."""
    while path and path != "/":
        mode = os.stat(path).st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(path, stat.S_IMODE(mode) | stat.S_IXOTH)
        path = os.path.dirname(path)


class LxcHost:
    """Each container is a real LXC container named by its vmid under ``<root>/lxc``."""

    @property
    def lxc_path(self):
        path = os.path.join(self.root, "lxc")
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def conf_dir(self):
        """This node's ``/etc/pve/lxc`` (pmxcfs): ``<vmid>.conf`` for each container (sync_conf)."""
        path = os.path.join(self.root, "etc", "pve", "lxc")
        os.makedirs(path, exist_ok=True)
        return path

    def file_raw_lines(self, vmid):
        """The ``lxc.*`` lines of the current config in ``<vmid>.conf`` (before the first ``[section]``), as
        ``(key, value)``: PVE::LXC::Config parse_pct_config reads ``lxc.key: value`` (or ``=``) into the
        config's ``lxc`` list, in order, repeated keys kept."""
        try:
            with open(os.path.join(self.conf_dir, "%d.conf" % vmid)) as handle:
                text = handle.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            if line.startswith("["):
                break
            match = re.match(r"^(lxc\.[A-Za-z0-9_.\-]+)\s*[:=]\s*(.*?)\s*$", line)
            if match:
                out.append((match.group(1), match.group(2)))
        return out

    def sync_conf(self):
        """Write each container's ``<vmid>.conf`` as pmxcfs holds it after the API's change, and remove those of
        containers that are gone.

        PVE::LXC::Config write_config writes ``key: value`` for each key and the raw ``lxc`` entries as
        ``lxc.key: value`` lines; raw lines that root wrote into the file on the node (the API cannot set them)
        stay through every API change, and PVE/LXC.pm update_lxc_config appends them to the LXC config at the
        next start (``lxc_config``).  The double's own lxc.* keys (an OCI import's) come first."""
        with self.lock:
            wanted = {}
            for vmid, ct in self.containers.items():
                own = [(k, v) for k, v in sorted(ct.config.items()) if k.startswith("lxc.")]
                known = set(k for k, dummy in own)
                extra = [(k, v) for k, v in self.file_raw_lines(vmid) if k not in known]
                lines = ["%s: %s" % (k, v) for k, v in sorted(ct.config.items()) if not k.startswith("lxc.")]
                lines += ["%s: %s" % (k, v) for k, v in own + extra]
                wanted["%d.conf" % vmid] = "\n".join(lines) + "\n"
            for name in os.listdir(self.conf_dir):
                if name.endswith(".conf") and name not in wanted:
                    os.unlink(os.path.join(self.conf_dir, name))
            for name, text in wanted.items():
                path = os.path.join(self.conf_dir, name)
                try:
                    with open(path) as handle:
                        if handle.read() == text:
                            continue
                except FileNotFoundError:
                    pass
                with open(path + ".tmp", "w") as handle:
                    handle.write(text)
                os.rename(path + ".tmp", path)

    def lxc_state(self, ct):
        """What LXC says, so a container reported running is really running."""
        if not os.path.isdir(os.path.join(self.lxc_path, str(ct.vmid))):
            return "stopped", None
        state, pid = lxc_info(self.lxc_path, str(ct.vmid), self.lxc_tools)
        return ("running" if state == "RUNNING" else "stopped"), pid

    def lxc_config(self, ct, warnings=None):
        """The LXC config PVE would generate for this container (the parts the double supports).

        ``warnings`` collects what the host cannot do (a start task then ends ``WARNINGS: N``).
        """
        # pve-container PVE/LXC.pm update_lxc_config: "lxc.environment = TERM=linux" for every container, then
        # "lxc.environment.runtime = <variable>" for each of the config's env (split(/\0+/)): the init gets
        # them, hooks do not (lxc-pve's conf-env-split backport; LXC without it refuses the key, so a config with
        # env cannot start there: real 9.1 ships only lxc-pve 6.0.5)
        runtime_env = ["lxc.environment.runtime = %s" % item
                       for item in (ct.config.get("env") or "").split("\0") if item]
        raw = ["%s = %s" % (k, v) for k, v in sorted(ct.config.items()) if k.startswith("lxc.")]
        # update_lxc_config appends the config's raw lxc entries: those root wrote into <vmid>.conf too
        known = set(k for k in ct.config if k.startswith("lxc."))
        raw += ["%s = %s" % (k, v) for k, v in self.file_raw_lines(ct.vmid) if k not in known]
        warnings = warnings if warnings is not None else []
        limits = cgroup_limits(ct.config, CGROUP_ROOT, warnings)
        # update_lxc_config: "lxc.idmap = u 0 100000 65536" and g for an unprivileged CT without its own idmap
        idmap = ["lxc.idmap = %s %d %d %d" % entry for entry in id_map_of(ct.config)]
        # PVE's config has "lxc.hook.post-stop = /usr/share/lxc/hooks/lxc-pve-poststop-hook"; the double's does
        # the part of it that matters here (kill_dhclients)
        hook = ["lxc.hook.post-stop = %s" % os.path.join(self.lxc_path, str(ct.vmid), "poststop-hook")]
        return config_lines(ct.config.get("hostname", "CT%d" % ct.vmid),
                            self.volume_path(ct.config["rootfs"].split(",")[0]),
                            ct.config.get("entrypoint", "/sbin/init"), env={"TERM": "linux"},
                            extra=idmap + hook + self.mount_lines(ct) + runtime_env + limits + raw,
                            net=network_lines(ct.config, warnings, vmid=ct.vmid,
                                              host_managed=self.mode.startswith("9")))

    def _lxc(self, ct, tool, *args):
        """Run an lxc-* tool on the container; returns the CompletedProcess (output captured)."""
        return subprocess.run([self.lxc_tools.tool(tool), "-P", self.lxc_path, "-n", str(ct.vmid)] + list(args),
                              check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)

    def _start_now(self, ct, task):
        """lxc-start the container with the LXC config generated from its PVE config; returns the warnings."""
        cdir = os.path.join(self.lxc_path, str(ct.vmid))
        os.makedirs(cdir, exist_ok=True)
        if str(ct.config.get("unprivileged", "0")) == "1":
            # the container's root (uid 100000) must pass through the directories above its LXC directory and
            # rootfs, as through /var/lib/lxc on a node ("Could not access ... Please grant it x access"); the
            # double lives in test directories that are 0700
            for path in [cdir, self.volume_path(ct.config["rootfs"].split(",")[0])] + self.volume_paths(ct):
                searchable(os.path.dirname(path))
        ensure_mountpoints(self.volume_path(ct.config["rootfs"].split(",")[0]))
        warnings = []
        with open(os.path.join(cdir, "config"), "w") as handle:
            handle.write("\n".join(self.lxc_config(ct, warnings)) + "\n")
        for warning in warnings:
            task.log("WARN: %s" % warning)
        hook_dir = os.path.join(cdir, "hook")
        with open(os.path.join(cdir, "poststop-hook"), "w") as handle:
            handle.write(POSTSTOP_HOOK % hook_dir)
        os.chmod(os.path.join(cdir, "poststop-hook"), 0o755)
        log = os.path.join(cdir, "start.log")
        if self._lxc(ct, "lxc-start", "-d", "-l", "INFO", "-o", log).returncode != 0:
            with open(log) as handle:
                for line in handle.read().splitlines()[-15:]:
                    task.log(line)
            raise TaskFailed("startup for container '%d' failed" % ct.vmid)
        return len(warnings) + self._start_dhcp(ct, task, hook_dir)

    def _start_dhcp(self, ct, task, hook_dir):
        """pve-container PVE/LXC.pm vm_start then manage_dhclient('start', ...) for each ``dhcp_interfaces``;
        a failure is ``log_warn("DHCP failed - ...")`` (the task ends WARNINGS).  Returns the number of
        warnings."""
        wanted = dhcp_interfaces(ct.config, host_managed=self.mode.startswith("9"))
        warnings = 0
        for version, name in wanted:
            proc = self._dhclient(ct, "start", version, name, hook_dir)
            if proc.returncode != 0:
                output = proc.stdout.strip().splitlines()
                task.log("WARN: DHCP failed - command 'dhclient -%d %s' failed: exit code %d%s"
                         % (version, name, proc.returncode, (": " + output[-1]) if output else ""))
                warnings += 1
        return warnings

    def _dhclient(self, ct, action, version, name, hook_dir=None):
        """pve-container PVE/LXC.pm manage_dhclient: the HOST's ``/sbin/dhclient`` (``-1`` to start, ``-r`` to
        release and stop the running one) with ``lxc-attach -s NETWORK|UTSNAME`` in the container's network, pid
        and lease files in /var/lib/lxc/<vmid>/hook, LXC's dhclient-script writing resolv.conf under
        ROOTFS=/proc/<pid>/root.  Real runs it under ``aa-exec -p unconfined``; the double's containers are
        unconfined already."""
        hook_dir = hook_dir or os.path.join(self.lxc_path, str(ct.vmid), "hook")
        if action == "start":
            os.makedirs(hook_dir, exist_ok=True)
        pid = self.lxc_state(ct)[1]
        script = os.path.join(self.lxc_tools.prefix or "/usr", "share", "lxc", "hooks", "dhclient-script")
        base = os.path.join(hook_dir, "dhclient%d-%s" % (version, name))
        return self._lxc(ct, "lxc-attach", "-s", "NETWORK|UTSNAME", "--", DHCLIENT,
                         "-1" if action == "start" else "-r", "-%d" % version, "-pf", base + ".pid",
                         "-lf", base + ".leases", "-e", "ROOTFS=/proc/%s/root" % pid, "-sf", script, name)

    def update_net(self, ct, key, old, new):
        """A netN change on a running container, as pve-container PVE/LXC.pm update_net does it (from
        vmconfig_hotplug_pending): a new bridge re-plugs the host end (tap_unplug, net_tap_plug), then
        update_ipconfig changes the addresses live in the container's network.  Not emulated: a new name or
        MAC address (update_net deletes the veth and hot-plugs a new one) and a new interface (hotplug_net):
        those apply at the next start."""
        state, pid = self.lxc_state(ct)
        if state != "running" or not pid or not old:
            return
        oldo, newo = _net_options(old), _net_options(new)
        if oldo.get("name") != newo.get("name") or oldo.get("hwaddr") != newo.get("hwaddr"):
            return
        veth = "veth%di%s" % (ct.vmid, key[3:])
        if newo.get("bridge") and newo.get("bridge") != oldo.get("bridge"):
            subprocess.run(["ip", "link", "set", "dev", veth, "nomaster"], check=False)
            subprocess.run(["ip", "link", "set", "dev", veth, "master", newo["bridge"], "up"], check=False)
        self.update_ipconfig(ct, int(pid), oldo, newo)

    def update_ipconfig(self, ct, pid, oldo, newo):
        """pve-container PVE/LXC.pm update_ipconfig, per IP version: a new DHCP address of a host-managed
        interface starts the host's client and an old one releases it (manage_dhclient); a static address is
        added first (a failure cancels that version), then the gateway replaced (a gateway outside the subnet
        gets its own route; a failure removes the new address and cancels), then the old address deleted.
        Failures are only warnings on a real node (the API call succeeds)."""
        eth = newo.get("name")
        nine = self.mode.startswith("9")

        def ip(*args):
            return subprocess.run(["nsenter", "-t", str(pid), "--net", "--", "ip"] + list(args), check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

        def in_cidr(gateway, cidr):
            try:
                return ipaddress.ip_address(gateway) in ipaddress.ip_interface(cidr).network
            except ValueError:
                return False
        for version in (4, 6):
            suffix = "" if version == 4 else "6"
            family = "-%d" % version
            newip, newgw = newo.get("ip" + suffix), newo.get("gw" + suffix)
            oldip, oldgw = oldo.get("ip" + suffix), oldo.get("gw" + suffix)
            change_ip, change_gw = oldip != newip, oldgw != newgw
            if not change_ip and not change_gw:
                continue
            real_ip = bool(newip) and newip not in ("auto", "dhcp", "manual")
            if change_ip:
                if nine and newo.get("host-managed") == "1" and newip == "dhcp":
                    self._dhclient(ct, "start", version, eth)
                if nine and oldo.get("host-managed") == "1" and oldip == "dhcp":
                    self._dhclient(ct, "stop", version, eth)
                if real_ip and not ip(family, "addr", "add", newip, "dev", eth):
                    continue
            elif nine and oldo.get("host-managed") == "1" and newo.get("host-managed") != "1":
                self._dhclient(ct, "stop", version, eth)
            if change_gw:
                if newgw:
                    routed = True
                    if real_ip and not in_cidr(newgw, newip):
                        routed = ip(family, "route", "add", newgw, "dev", eth)
                    if not routed or not ip(family, "route", "replace", "default", "via", newgw):
                        if change_ip and real_ip:
                            ip(family, "addr", "del", newip, "dev", eth)
                        continue
                else:
                    ip(family, "route", "del", "default")
                if oldgw and oldip and not in_cidr(oldgw, oldip):
                    ip(family, "route", "del", oldgw, "dev", eth)
            if change_ip and oldip and oldip not in ("auto", "dhcp"):
                if version == 4:
                    subprocess.run(["nsenter", "-t", str(pid), "--net", "--", "sysctl", "-qw",
                                    "net.ipv4.conf.%s.promote_secondaries=1" % eth], check=False,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ip(family, "addr", "del", oldip, "dev", eth)

    def interfaces(self, ct):
        """pve-container PVE/LXC.pm get_interfaces: ``nsenter -t <pid> --net -- ip --json a`` in the running
        container's network; None when it is not running (find_lxc_pid dies, the API returns null)."""
        state, pid = self.lxc_state(ct)
        if state != "running" or not pid:
            return None
        proc = subprocess.run(["nsenter", "-t", str(pid), "--net", "--", "ip", "--json", "a"], check=True,
                              stdout=subprocess.PIPE, universal_newlines=True)
        out = []
        for interface in json.loads(proc.stdout):
            obj = {"name": interface["ifname"], "ip-addresses": []}
            for ip in interface.get("addr_info", []):
                obj[ip["family"]] = "%s/%s" % (ip["local"], ip["prefixlen"])  # "TODO: remove on next major"
                obj["ip-addresses"].append({"ip-address-type": ip["family"], "ip-address": ip["local"],
                                            "prefix": ip["prefixlen"]})
            obj["hardware-address"] = interface.get("address")
            obj["hwaddr"] = interface.get("address")
            out.append(obj)
        return out
