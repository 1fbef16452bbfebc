# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The trivial check bundle: a config from ``crun spec``, a rootfs of static busybox or the host's /usr.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import run_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError


def adjust_spec(spec, args, rootfs="rootfs", host_binds=()):
    """Turn ``crun spec`` output into the trivial check bundle's config.

    No terminal (nobody is attached), ``args`` as the process, a read-only root,
    and no ``linux.resources``: a throwaway check limits nothing, and the device
    rule would need an eBPF program (cgroup v2), which wants a larger
    RLIMIT_MEMLOCK than some hosts allow.  ``host_binds``: host directories
    bind-mounted read-only at the same place (used when no static busybox exists).
    """
    spec = json.loads(json.dumps(spec))
    process = spec.setdefault("process", {})
    process["terminal"] = False
    process["args"] = list(args)
    process.setdefault("cwd", "/")
    spec["root"] = {"path": rootfs, "readonly": True}
    linux = spec.setdefault("linux", {})
    linux.pop("resources", None)
    mounts = spec.setdefault("mounts", [])
    for path in host_binds:
        mounts.append({"destination": path, "type": "bind", "source": path,
                       "options": ["rbind", "ro", "nosuid", "nodev"]})
    return spec


def is_static_elf(path):
    """Whether ``path`` is an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only: the nodes are x86_64/arm64
                return False
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except (IOError, OSError, IndexError):
        return False
    for index in range(phnum):
        if int.from_bytes(table[index * phentsize:index * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def make_trivial_bundle(directory, args, spec_text, busybox="/bin/busybox"):
    """Write a bundle into ``directory`` (created) that runs ``args``.

    The rootfs holds a static busybox as /bin/busybox with links for ``args[0]``
    when one exists on the host; otherwise it is empty and the host's /usr
    (and /bin, /lib, /lib64 as they are: directories bind-mounted, merged-/usr
    symlinks copied) is bind-mounted read-only, so any node can run it.
    Returns ``{"bundle", "rootfs", "kind"}`` with kind ``busybox`` or ``host``.
    """
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    binds = []
    if busybox and is_static_elf(busybox):
        kind = "busybox"
        shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
        name = os.path.basename(args[0])
        if name != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", name))
        args = ["/bin/" + name] + list(args[1:])
    else:
        kind = "host"
        os.rmdir(os.path.join(rootfs, "bin"))
        for top in ("usr", "bin", "sbin", "lib", "lib64"):
            host = "/" + top
            if os.path.islink(host):
                os.symlink(os.readlink(host), os.path.join(rootfs, top))
            elif os.path.isdir(host):
                os.mkdir(os.path.join(rootfs, top))
                binds.append(host)
    for sub in ("proc", "dev", "sys"):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    spec = adjust_spec(json.loads(spec_text), args, host_binds=binds)
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(spec, handle, indent=1)
    return {"bundle": directory, "rootfs": rootfs, "kind": kind}


def spec_text(crun, runner=None):
    """``crun spec`` output (the runtime's own default config) as text."""
    work = tempfile.mkdtemp(prefix="lxcri-spec-")
    try:
        run = runner or _run_argv
        rc, out, err = run([crun, "spec", "--bundle", work])
        if rc != 0:
            raise OciRuntimeError("crun spec failed (rc=%s): %s" % (rc, (err or out).strip()))
        with open(os.path.join(work, "config.json")) as handle:
            return handle.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_argv(argv):
    proc = run_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
