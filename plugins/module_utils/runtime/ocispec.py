# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The config.json of an ``oci_container``: the image's process (oci/runtime_config.py) plus the module's options.

Pure functions, no I/O: the manager (runtime/container.py) reads the image and
the host, this module turns what they found into the OCI runtime spec
(https://github.com/opencontainers/runtime-spec/blob/main/config.md) that crun
and libcrun run.

Defaults follow Docker's for a container without extra privileges:

* capabilities: Docker's default set (:data:`DEFAULT_CAPS`), changed by
  ``cap_add``/``cap_drop`` (``ALL`` allowed in ``cap_drop``);
* seccomp: :func:`default_seccomp`, a deny list of what Docker's default
  profile does not allow a container without CAP_SYS_ADMIN (kernel modules,
  kexec, mount and the new mount API, namespaces, keyrings, bpf, perf,
  clock and swap changes, reboot ...), answered with EPERM, and clone3 with
  ENOSYS (as Docker does, so that the C library falls back to clone, whose
  namespace flags are then refused).  A deny list, not Docker's allow list:
  a syscall newer than the list works, as it does on the host;
* no_new_privileges off (setuid binaries work, as in Docker); the open-files
  limit is the unit's (LimitNOFILE=1048576, Docker's daemon default, as far
  as systemd can raise it), set by the runner (runtime/supervise.py);
* /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only) and the
  cgroup filesystem (read-only) as crun's own ``crun spec`` mounts them, the
  host's /etc/resolv.conf read-only, masked and read-only /proc paths as runc's.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

OCI_VERSION = "1.0.2"

# Docker's default capability set (moby oci/caps/defaults.go)
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                "CAP_KILL", "CAP_AUDIT_WRITE")
ALL_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
            "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
            "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE")

# Refused with EPERM by the default profile (see the module docstring)
DENIED_SYSCALLS = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
    "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "query_module", "quotactl",
    "reboot", "request_key", "setns", "settimeofday", "swapoff", "swapon", "sysfs", "syslog", "umount2", "unshare",
    "uselib", "userfaultfd", "ustat", "vm86", "vm86old")
# clone's namespace flags, refused one by one (a deny list cannot say "any of these bits")
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
EPERM = 1
ENOSYS = 38
SECCOMP_ARCHES = {
    "amd64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "arm64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}

MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
CPU_PERIOD = 100000

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)


def parse_memory(value):
    """``512M``, ``1G``, ``1.5GiB``, ``268435456`` -> bytes (binary units, as Docker's --memory); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise OciRuntimeError("memory %r is not a size (for example 512M or 2G)" % (value,))
        size = int(float(match.group(1)) * (1 << (10 * " KMGT".index(match.group(2).upper() or " "))))
    if size < 6 * (1 << 20):
        raise OciRuntimeError("memory %r is below 6M, the least a container can start with" % (value,))
    return size


def cpu_quota(cpus):
    """``cpus`` (a number of CPUs, may be fractional) -> the CFS quota per CPU_PERIOD, or None."""
    if cpus is None:
        return None
    try:
        value = float(cpus)
    except (TypeError, ValueError):
        raise OciRuntimeError("cpus %r is not a number" % (cpus,))
    if value < 0.01:
        raise OciRuntimeError("cpus must be at least 0.01, not %r" % (cpus,))
    return int(round(value * CPU_PERIOD))


def _cap_name(name, what):
    text = str(name).strip().upper()
    if text != "ALL" and not text.startswith("CAP_"):
        text = "CAP_" + text
    if text != "ALL" and text not in ALL_CAPS:
        raise OciRuntimeError("%s: unknown capability %r" % (what, name))
    return text


def capabilities(cap_add=None, cap_drop=None):
    """The capability set after Docker's ``--cap-add``/``--cap-drop`` rules (drop first, ``ALL`` allowed)."""
    drop = [_cap_name(c, "cap_drop") for c in cap_drop or []]
    add = [_cap_name(c, "cap_add") for c in cap_add or []]
    if "ALL" in add:
        return sorted(c for c in ALL_CAPS if c not in drop)
    caps = [] if "ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    caps.extend(c for c in add if c not in caps)
    return sorted(caps)


def default_seccomp(arch="amd64"):
    """The default seccomp profile (see the module docstring)."""
    syscalls = [{"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}]
    for flag in CLONE_NAMESPACE_FLAGS:
        syscalls.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                         "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]})
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}
    if arch in SECCOMP_ARCHES:
        profile["architectures"] = SECCOMP_ARCHES[arch]
    return profile


def standard_mounts(cgroup=True):
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    if cgroup:
        mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    return mounts


def check_target(path, what):
    """A mount target inside the container: absolute, normalised, not / and not under the standard mounts."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or "\n" in path:
        raise OciRuntimeError("%s: %r is not an absolute path" % (what, path))
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm == "/" or any(norm == p or norm.startswith(p + "/") for p in ("/proc", "/sys", "/dev")):
        raise OciRuntimeError("%s: %s cannot be a mount point (/, /proc, /sys and /dev are the runtime's)"
                              % (what, norm))
    return norm


def bind_mount(source, target, read_only=False):
    options = ["rbind", "rprivate", "nosuid", "nodev"] + (["ro"] if read_only else [])
    return {"destination": target, "type": "bind", "source": source, "options": options}


def build_config(process, name, options, layout="v2", arch="amd64"):
    """config.json as a dict.

    ``process``: oci/runtime_config.runtime_spec's result (argv, env, cwd, uid, gid, groups).
    ``options``: ``mounts`` (a list of {source, target, read_only} with host sources already decided),
    ``memory`` (bytes or None), ``cpu_quota`` (or None), ``pids_limit``, ``caps``, ``seccomp`` (a profile or
    None), ``read_only``, ``netns`` (a path, None for the host's network), ``resolv_conf`` (a host file or None),
    ``cgroups_path``.  ``layout``: detect.cgroup_layout's (``none``: no cgroup mount, no resources).
    """
    caps = list(options.get("caps") if options.get("caps") is not None else DEFAULT_CAPS)
    user = {"uid": process["uid"], "gid": process["gid"]}
    if process.get("groups"):
        user["additionalGids"] = list(process["groups"])
    proc = {
        "terminal": False,
        "user": user,
        "args": list(process["argv"]),
        "env": list(process["env"]),
        "cwd": process["cwd"],
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": False,
    }
    mounts = standard_mounts(cgroup=layout != "none")
    if options.get("resolv_conf"):
        mounts.append(bind_mount(options["resolv_conf"], "/etc/resolv.conf", read_only=True))
    targets = set()
    for mount in options.get("mounts") or []:
        target = check_target(mount["target"], "volumes")
        if target in targets:
            raise OciRuntimeError("volumes: %s is mounted twice" % target)
        targets.add(target)
        mounts.append(bind_mount(mount["source"], target, bool(mount.get("read_only"))))
    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if layout in ("v2", "hybrid"):
        namespaces.append({"type": "cgroup"})
    if options.get("netns"):
        namespaces.append({"type": "network", "path": options["netns"]})
    linux = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if layout != "none":
        resources = {}
        if options.get("memory"):
            resources["memory"] = {"limit": options["memory"]}
        if options.get("cpu_quota"):
            resources["cpu"] = {"quota": options["cpu_quota"], "period": CPU_PERIOD}
        if options.get("pids_limit"):
            resources["pids"] = {"limit": options["pids_limit"]}
        if resources:
            linux["resources"] = resources
        if options.get("cgroups_path"):
            linux["cgroupsPath"] = options["cgroups_path"]
    if options.get("seccomp"):
        linux["seccomp"] = options["seccomp"]
    return {
        "ociVersion": OCI_VERSION,
        "process": proc,
        "root": {"path": "rootfs", "readonly": bool(options.get("read_only"))},
        "hostname": name,
        "mounts": mounts,
        "linux": linux,
        "annotations": {"org.lxcri.proxmox.container": name},
    }
