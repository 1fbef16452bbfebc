# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only detection of the OCI runtime and the host facilities around it.

Standard library only: this runs on stock Proxmox VE nodes.  Every function
takes its outside world (command runner, ``which``, file reader, library
loader) as arguments, so the logic is testable without Ansible; the defaults
touch the real host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import glob
import importlib
import json
import os
import re
import shutil
import subprocess
import sys

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import run_process, subprocess_runner

# Symbols every libcrun since 0.x exports; a library without them is not libcrun.
LIBCRUN_SYMBOLS = (
    "libcrun_container_load_from_file",
    "libcrun_container_run",
    "libcrun_container_delete",
)

# Where lxcri.proxmox.oci_runtime installs a libcrun it builds:
# /opt/lxcri/libcrun/<version>/lib/libcrun.so.0
DEFAULT_LIBCRUN_GLOBS = ("/opt/lxcri/libcrun/*/lib/libcrun.so.0",)

# Modules may run with a minimal PATH; system tools live in sbin too.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_VERSION_DIR = re.compile(r"^v?(\d+\.\d+(?:\.\d+)?(?:[-+.~][0-9A-Za-z.+~-]*)?)$")


def default_which(name):
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=path + os.pathsep + SYSTEM_PATH if path else SYSTEM_PATH)


def _read_text(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _version_key(text):
    """Sort key that orders 1.10 after 1.9."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------
# cgroups

def parse_mountinfo(text):
    """Return ``[(mountpoint, fstype, super_options)]`` from /proc/self/mountinfo text."""
    mounts = []
    for line in (text or "").splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        left_fields = left.split()
        right_fields = right.split()
        if len(left_fields) < 5 or len(right_fields) < 2:
            continue
        mountpoint = left_fields[4].replace("\\040", " ")
        fstype = right_fields[0]
        options = right_fields[2] if len(right_fields) > 2 else ""
        mounts.append((mountpoint, fstype, options))
    return mounts


def cgroup_layout(mountinfo_text=None, read_text=_read_text):
    """Classify the cgroup setup as ``v2``, ``v1``, ``hybrid`` or ``none``.

    ``hybrid`` is systemd's layout with v1 controller hierarchies plus a
    cgroup2 mount (usually /sys/fs/cgroup/unified) that holds few or no
    controllers; crun refuses such hosts unless given a cgroup2-only view.
    """
    if mountinfo_text is None:
        mountinfo_text = read_text("/proc/self/mountinfo") or ""
    v1_controllers = set()
    v1_named = set()
    v2_mounts = []
    for mountpoint, fstype, options in parse_mountinfo(mountinfo_text):
        if fstype == "cgroup2":
            v2_mounts.append(mountpoint)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt.startswith("name="):
                    v1_named.add(opt[5:])
                elif opt not in ("rw", "ro", "") and "=" not in opt and opt not in (
                        "nosuid", "nodev", "noexec", "relatime", "clone_children",
                        "noprefix", "xattr", "cpuset_v2_mode", "favordynmods",
                        "nsdelegate", "memory_recursiveprot", "memory_localevents"):
                    v1_controllers.add(opt)
    unified = None
    if v2_mounts:
        unified = "/sys/fs/cgroup" if "/sys/fs/cgroup" in v2_mounts else sorted(v2_mounts)[0]
    has_v1 = bool(v1_controllers or v1_named)
    if unified and has_v1:
        layout = "hybrid"
    elif unified:
        layout = "v2"
    elif has_v1:
        layout = "v1"
    else:
        layout = "none"
    v2_controllers = []
    if unified:
        text = read_text(os.path.join(unified, "cgroup.controllers"))
        v2_controllers = sorted((text or "").split())
    return {
        "layout": layout,
        "unified_mountpoint": unified,
        "v1_controllers": sorted(v1_controllers),
        "v1_named_hierarchies": sorted(v1_named),
        "v2_controllers": v2_controllers,
    }


# --------------------------------------------------------------------------
# crun CLI

def parse_crun_version(text):
    """Parse ``crun --version`` output."""
    info = {"version": None, "commit": None, "spec": None, "build_flags": []}
    for line in (text or "").splitlines():
        line = line.strip()
        match = re.match(r"^crun version (\S+)", line)
        if match:
            info["version"] = match.group(1)
        elif line.startswith("commit:"):
            info["commit"] = line.split(":", 1)[1].strip()
        elif line.startswith("spec:"):
            info["spec"] = line.split(":", 1)[1].strip()
        elif line.startswith(("+", "-")):
            info["build_flags"] = line.split()
    return info


def crun_cli(runner=subprocess_runner, which=default_which, path=None):
    """Describe the crun CLI: path, version, build flags and ``crun features``."""
    result = {
        "present": False, "path": None, "version": None, "commit": None,
        "spec": None, "build_flags": [], "features_supported": False,
        "features": None, "error": None,
    }
    path = path or which("crun")
    if not path:
        result["error"] = "crun not found in PATH"
        return result
    result["path"] = path
    rc, out, err = runner([path, "--version"])
    if rc != 0:
        result["error"] = "'%s --version' failed (rc=%s): %s" % (path, rc, (err or out).strip())
        return result
    result["present"] = True
    result.update(parse_crun_version(out))
    # "crun features" appeared in crun 1.10 (OCI runtime-spec features.md);
    # older releases answer "unknown command features".
    rc, out, err = runner([path, "features"])
    if rc == 0:
        try:
            result["features"] = json.loads(out)
            result["features_supported"] = True
        except ValueError:
            result["error"] = "'crun features' did not print JSON"
    return result


# --------------------------------------------------------------------------
# libcrun through ctypes

def _loaded_path(soname_fragment, maps_text):
    """The file a just-loaded library came from, read from /proc/self/maps."""
    for line in (maps_text or "").splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and soname_fragment in os.path.basename(fields[5]):
            return fields[5].strip()
    return None


def libcrun_candidates(search=(), find_library=ctypes.util.find_library):
    """Ordered, de-duplicated list of libraries to try.

    Explicit ``search`` entries (paths or globs) come first, newest version
    first within a glob; then the versioned prefixes the oci_runtime role
    installs to; then whatever the dynamic linker knows as ``crun``.
    """
    seen = []
    for pattern in list(search) + list(DEFAULT_LIBCRUN_GLOBS):
        matches = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for match in matches:
            if match not in seen:
                seen.append(match)
    linker_name = find_library("crun")
    if linker_name and linker_name not in seen:
        seen.append(linker_name)
    return seen


def libcrun_version(library_path, runner=subprocess_runner):
    """Best available version of the libcrun at ``library_path``.

    libcrun has no version call.  A build installed under a prefix also
    installs its crun binary there, built from the same source, so ask it;
    else use a versioned prefix directory name (``.../libcrun/1.8.1/lib``).
    Returns ``(version, source)``; both None when it cannot be known.
    """
    real = os.path.realpath(library_path)
    prefix = os.path.dirname(os.path.dirname(real))
    sibling = os.path.join(prefix, "bin", "crun")
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        rc, out, dummy = runner([sibling, "--version"])
        version = parse_crun_version(out)["version"] if rc == 0 else None
        if version:
            return version, "crun binary of the same prefix (%s)" % sibling
    match = _VERSION_DIR.match(os.path.basename(prefix))
    if match:
        return match.group(1), "install prefix (%s)" % prefix
    return None, None


def python_binding(library_path):
    """Path of crun's python_crun extension installed in the library's prefix, if any."""
    libdir = os.path.dirname(os.path.realpath(library_path))
    prefix = os.path.dirname(libdir)
    patterns = (
        os.path.join(libdir, "python3*", "*-packages", "python_crun*.so"),
        os.path.join(libdir, "python3*", "python_crun*.so"),
        # Debian's python3 puts a prefix's modules under local/ (posix_local scheme).
        os.path.join(prefix, "local", "lib", "python3*", "*-packages", "python_crun*.so"),
        os.path.join(libdir, "python_crun*.so"),
    )
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


# Loads a library in a child process and reports which symbols it has and the
# file it came from.  libcrun's ELF constructor re-executes whatever process
# loads it (crun's CVE-2019-5736 protection, argv re-read from /proc/self/cmdline):
# done to a module that came on stdin (pipelining), that restart finds no code
# and the module returns nothing.  A child started with its code in argv restarts
# harmlessly.
_PROBE = (
    "import ctypes, json, os, sys\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "path = None\n"
    "name = os.path.basename(sys.argv[1]).split('.so')[0] + '.so'\n"
    "for line in open('/proc/self/maps'):\n"
    "    fields = line.split(None, 5)\n"
    "    if len(fields) == 6 and name in os.path.basename(fields[5]):\n"
    "        path = fields[5].strip()\n"
    "        break\n"
    "print(json.dumps({'path': path, 'symbols': [s for s in sys.argv[2:] if hasattr(lib, s)]}))\n"
)


class ProbedLibrary:
    """What probe_library learnt: the present symbols as attributes, and the loaded file."""

    def __init__(self, symbols, loaded_path):
        for symbol in symbols:
            setattr(self, symbol, True)
        self.lxcri_loaded_path = loaded_path


def probe_library(path, symbols=LIBCRUN_SYMBOLS, python=None, timeout=60):
    """Load ``path`` in a child Python process; raise OSError when it does not load."""
    try:
        proc = run_process([python or sys.executable, "-c", _PROBE, path] + list(symbols),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError("cannot probe %s: %s" % (path, exc))
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OSError(err[-1] if err else "loading %s failed (exit status %s)" % (path, proc.returncode))
    try:
        info = json.loads(lines[-1])
    except ValueError:
        raise OSError("probing %s printed %r" % (path, lines[-1][:200]))
    return ProbedLibrary(info.get("symbols") or [], info.get("path"))


def find_libcrun(search=(), loader=probe_library, find_library=ctypes.util.find_library,
                 runner=subprocess_runner, read_text=_read_text):
    """Try to load libcrun through ctypes and describe the first one that works.

    The default loader loads each candidate in a child process (probe_library).
    """
    result = {
        "loaded": False, "path": None, "version": None, "version_source": None,
        "python_binding": None, "tried": [],
    }
    for candidate in libcrun_candidates(search, find_library):
        try:
            lib = loader(candidate)
        except OSError as exc:
            result["tried"].append({"path": candidate, "error": str(exc)})
            continue
        missing = [sym for sym in LIBCRUN_SYMBOLS if not hasattr(lib, sym)]
        if missing:
            result["tried"].append({
                "path": candidate,
                "error": "not libcrun: missing symbols %s" % ", ".join(missing),
            })
            continue
        path = candidate
        if not os.path.isabs(path):
            path = (getattr(lib, "lxcri_loaded_path", None)
                    or _loaded_path(os.path.basename(candidate).split(".so")[0] + ".so", read_text("/proc/self/maps"))
                    or candidate)
        result["tried"].append({"path": candidate, "error": None})
        result["loaded"] = True
        result["path"] = os.path.realpath(path) if os.path.isabs(path) else path
        if os.path.isabs(path):
            result["version"], result["version_source"] = libcrun_version(path, runner)
            result["python_binding"] = python_binding(path)
        return result
    return result


# --------------------------------------------------------------------------
# LXC, ZFS, Proxmox tools

def lxc_info(runner=subprocess_runner, which=default_which):
    path = which("lxc-start")
    result = {"present": bool(path), "path": path, "version": None}
    if path:
        rc, out, dummy = runner([path, "--version"])
        if rc == 0 and out.strip():
            result["version"] = out.strip().splitlines()[0].strip()
    return result


def parse_openzfs_version(text):
    """``zfs version`` prints ``zfs-2.2.7-pve1`` and ``zfs-kmod-2.2.7-pve1``."""
    userland = kmod = None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("zfs-kmod-"):
            kmod = line[len("zfs-kmod-"):]
        elif line.startswith("zfs-"):
            userland = line[len("zfs-"):]
    return userland, kmod


def zfs_cli_info(runner=subprocess_runner, which=default_which):
    zfs = which("zfs")
    zpool = which("zpool")
    result = {
        "present": bool(zfs and zpool), "path": zfs, "zpool_path": zpool,
        "implementation": None, "version": None, "kmod_version": None,
        "pool_version": None, "usable": False,
    }
    if not result["present"]:
        return result
    rc, out, dummy = runner([zfs, "version"])
    if rc == 0:
        result["implementation"] = "openzfs"
        result["version"], result["kmod_version"] = parse_openzfs_version(out)
    elif which("zfs-fuse"):
        result["implementation"] = "zfs-fuse"
    rc, out, dummy = runner([zpool, "upgrade", "-v"])
    match = re.search(r"ZFS pool version (\d+)", out or "")
    if match:
        result["pool_version"] = int(match.group(1))
    elif rc == 0 and "feature flags" in (out or "").lower():
        result["pool_version"] = 5000  # feature-flag pools report 5000
    rc, dummy, dummy = runner([zpool, "list", "-H", "-o", "name"])
    result["usable"] = rc == 0
    return result


def libzfs_core_info(import_module=importlib.import_module):
    """Whether OpenZFS's Python binding (Debian python3-pyzfs) imports."""
    result = {"importable": False, "path": None, "version": None, "error": None}
    try:
        mod = import_module("libzfs_core")
    except Exception as exc:  # pylint: disable=broad-except
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
        return result
    result["importable"] = True
    result["path"] = getattr(mod, "__file__", None)
    result["version"] = getattr(mod, "__version__", None)
    if not hasattr(mod, "is_supported"):
        # The abandoned 2016 PyPI "pyzfs" also installs a libzfs_core module.
        result["error"] = "libzfs_core has no is_supported(): not OpenZFS's pyzfs"
        result["importable"] = False
    return result


def proxmox_info(runner=subprocess_runner, which=default_which):
    tools = dict((name, which(name)) for name in ("pct", "pvesh", "pveversion"))
    result = {
        "is_node": bool(tools["pct"] and tools["pvesh"]),
        "pct_path": tools["pct"], "pvesh_path": tools["pvesh"],
        "pveversion_path": tools["pveversion"], "version": None,
    }
    if tools["pveversion"]:
        rc, out, dummy = runner([tools["pveversion"]])
        match = re.search(r"pve-manager/([0-9][^/\s]*)", out or "")
        if rc == 0 and match:
            result["version"] = match.group(1)
    return result


# Written by the oci_runtime role (lxcri.proxmox.oci_runtime_check's ``fact``).
RUNTIME_FACT_PATH = "/etc/ansible/facts.d/lxcri_oci_runtime.fact"


def selected_runtime(preferred, libcrun, fact_path=RUNTIME_FACT_PATH, read_text=_read_text):
    """The runtime the oci_runtime role selected and proved (its fact file), else what detection prefers.

    Returns the fact's content plus ``source: fact``, or ``{"runtime", "source": "detection",
    "libcrun": {...} or None}``.  An unreadable or malformed fact file counts as absent and
    is named in ``fact_error``.
    """
    text = read_text(fact_path) if fact_path else None
    error = None
    if text is not None:
        try:
            fact = json.loads(text)
        except ValueError as exc:
            fact, error = None, "%s: not JSON (%s)" % (fact_path, exc)
        if isinstance(fact, dict) and fact.get("runtime") in ("libcrun", "cli"):
            return dict(fact, source="fact", fact_path=fact_path, fact_error=None)
        if error is None:
            error = "%s: no runtime recorded" % fact_path
    return {
        "runtime": preferred, "source": "detection", "fact_path": fact_path, "fact_error": error,
        "libcrun": ({"library": libcrun.get("path"), "version": libcrun.get("version"),
                     "python_binding": libcrun.get("python_binding")} if libcrun.get("loaded") else None),
    }


def runtime_report(runner=subprocess_runner, which=default_which, libcrun_search=(),
                   crun_path=None, fact_path=RUNTIME_FACT_PATH):
    """Everything oci_runtime_info returns."""
    libcrun = find_libcrun(libcrun_search, runner=runner)
    crun = crun_cli(runner, which, crun_path)
    if libcrun["loaded"]:
        preferred = "libcrun"
    elif crun["present"]:
        preferred = "cli"
    else:
        preferred = None
    return {
        "libcrun": libcrun,
        "crun": crun,
        "preferred_runtime": preferred,
        "selected_runtime": selected_runtime(preferred, libcrun, fact_path),
        "cgroup": cgroup_layout(),
        "lxc": lxc_info(runner, which),
        "zfs": {"cli": zfs_cli_info(runner, which), "libzfs_core": libzfs_core_info()},
        "proxmox": proxmox_info(runner, which),
    }
