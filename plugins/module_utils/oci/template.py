# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI image -> Proxmox VE container template: the engine behind ``oci_template``.

The image is pulled into the blob store (the oci_image engine), its layers
are flattened top-down into one tar stream (flatten.py: nothing from the
image is ever created on the host), the runtime (argv, env, cwd, user,
stop signal) is worked out from the config, the overrides and the image's
own /etc/passwd and /etc/group, and the result is published atomically:

- ``vztmpl``: ``./``-prefixed members, numeric container-view owners, zstd
  or gzip; plus the init wrapper or working directory the runtime needs;
- ``oci-archive``: one platform, OCI media types, one squashed layer and a
  config whose Entrypoint/Cmd Proxmox VE 9.1's importer turns into exactly
  the intended argv.

A JSON sidecar ``<template>.json`` next to the template records the
identity (image digest and every option that shapes the output) and the
runtime, so an unchanged template is found again without any work.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.hashing import HashingWriter, sha256_file
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import initwrap, lxcinit, media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import compressor
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import digest_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.destination import DirDestination
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import LxcConfigError, TemplateError, WrapperError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import (
    MAX_SYMLINK_HOPS, BlobLayer, Limits, StoredLayer, TarSink, flatten, open_tar_writer, with_restarts)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import (
    ImageManager, image_limits_argument_spec, pin_key, registry_argument_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import Puller
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import (
    EXTENSIONS, check_name, default_name, identity, identity_hash, name_parts)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.platform import host_platform
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.prune import check_keep, prune
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import (
    ConfigError, normalize_workdir, override_argument_spec, parse_group, parse_passwd, runtime_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import _fsync_dir, store_complete, sweep_tmp
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template_storage import StorageDestination
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.carry import ROOT_USERS
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import app_net

TMP_PREFIX = ".lxcri-tmp-"
# left by a killed run: .lxcri-tmp-<pid>-<random>-<filename> (and .lxcri-tmp-<pid>-layer-<random>)
_TMP_NAME = re.compile(r"^%s(?P<pid>\d+)-" % re.escape(TMP_PREFIX))
RESERVED_DIR = ".lxcri"


# pve-container PVE/LXC.pm update_lxc_config writes "lxc.environment = TERM=linux" for every container (some init
# scripts expect a Linux terminal); a wrapper that makes the environment exactly the image's keeps it the same way
PVE_TERM = "TERM=linux"


def with_pve_term(env):
    """The image's Env as the init sees it on Proxmox VE: TERM=linux first unless the image sets TERM itself
    (None stays None: a wrapper that does not reset the environment passes Proxmox's TERM on)."""
    if env is None:
        return None
    env = list(env)
    return env if any(item.split("=", 1)[0] == "TERM" for item in env) else [PVE_TERM] + env


def template_argument_spec():
    """A new dict of oci_template's options but the Proxmox VE connection (the module adds pve_argument_spec)."""
    spec = dict(
        image=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        format=dict(type="str", default="auto", choices=["auto", "vztmpl", "oci-archive"]),
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip"]),
        dest=dict(type="path"),
        storage=dict(type="str"),
        node=dict(type="str"),
        nodes=dict(type="list", elements="str"),
        name=dict(type="str"),
        init_wrapper=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        init=dict(type="str", default="app", choices=["app", "system"]),
        net=dict(type="dict"),
        volumes=dict(type="list", elements="str"),
        lxc_version=dict(type="str", default="auto"),
        force=dict(type="bool", default=False),
        keep=dict(type="int"),
        require_runnable=dict(type="bool", default=True),
    )
    spec.update(override_argument_spec())
    spec.update(registry_argument_spec())
    spec.update(image_limits_argument_spec())
    return spec


# what a caller without Ansible leaves out
DEFAULTS = defaults_of(template_argument_spec(), leave_out=("image",))


# ---------------------------------------------------------------------------
# the tar sinks

class TemplateSink(TarSink):
    """flatten()'s TarSink plus the generated entries; the image's own ``/.lxcri`` is dropped."""

    def __init__(self, fileobj, prefix):
        self.out = _Coalescing(fileobj)
        self.tar = open_tar_writer(self.out)
        TarSink.__init__(self, self.tar, prefix)

    def add(self, info, fileobj=None):
        info.uname = info.gname = ""
        TarSink.add(self, info, fileobj)

    def add_dir(self, name, uid=0, gid=0, mode=0o755, mtime=0):
        info = tarfile.TarInfo(self._name(name))
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
        self.tar.addfile(info)

    def add_file(self, name, data, mode=0o755, uid=0, gid=0, mtime=0):
        info = tarfile.TarInfo(self._name(name))
        info.size = len(data)
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
        self.tar.addfile(info, io.BytesIO(data))

    def close(self):
        self.tar.close()
        self.out.flush()

    def abort(self):
        """Drop the stream without writing its end (the output is discarded anyway)."""
        self.tar.closed = True
        stream = getattr(self.tar, "fileobj", None)
        if stream is not None and hasattr(stream, "closed"):
            stream.closed = True


def reserved_layer(init_wrapper):
    """A synthetic top layer of whiteouts for the paths the generated files take.

    The image's own ``/.lxcri`` (and, for the init wrapper, its ``/sbin/init``
    in both the classic and the merged-/usr layout) are hidden the way an
    upper layer hides them, so the template holds each name once and hard
    links to a hidden file become copies of it.
    """
    names = [".wh." + RESERVED_DIR]
    if init_wrapper:
        names += ["sbin/.wh.init", "usr/sbin/.wh.init"]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.addfile(tarfile.TarInfo(name))
    return BlobLayer(out.getvalue(), description="lxcri's reserved paths")


class _Coalescing:
    """Collects tarfile's 10 KiB records into 1 MiB writes (one pipe write to zstd instead of a hundred)."""

    SIZE = 1 << 20

    def __init__(self, target):
        self.target = target
        self.parts = []
        self.size = 0

    def write(self, data):
        self.parts.append(data)
        self.size += len(data)
        if self.size >= self.SIZE:
            self.flush()
        return len(data)

    def flush(self):
        if self.parts:
            self.target.write(b"".join(self.parts))
            self.parts = []
            self.size = 0


def _drain(fileobj, size):
    while size > 0:
        chunk = fileobj.read(min(size, 1 << 20))
        if not chunk:
            break
        size -= len(chunk)


# ---------------------------------------------------------------------------
# the tree: where to put generated files

def _split(path):
    return [part for part in path.strip("/").split("/") if part and part != "."]


def ensure_dir(tree, sink, path, uid=0, gid=0, mtime=0):
    """Create ``path`` (absolute, container view) in the output unless the image has it.

    Existing components are followed through the image's own symlinks (as
    the container will); missing ones are added as directories, the last one
    owned by ``uid:gid``.  A component that is a file is an error.
    Returns the canonical (symlink-free) path.
    """
    current = ""
    parts = _split(path)
    for index, part in enumerate(parts):
        candidate = current + "/" + part if current else part
        entry = tree.lookup(candidate)
        if entry is None:
            for later in range(index, len(parts)):
                candidate = current + "/" + parts[later] if current else parts[later]
                last = later == len(parts) - 1
                sink.add_dir(candidate, uid if last else 0, gid if last else 0, 0o755, mtime)
                current = candidate
            return "/" + current
        if entry.type == "symlink":
            resolved = tree.resolve(candidate)
            if resolved is None:
                raise TemplateError("cannot create %s: %s is a symlink to %r, which does not exist in the image"
                                    % (path, "/" + candidate, entry.linkname))
            target = tree.lookup(resolved) if resolved not in ("", ".") else None
            if target is not None and target.type != "dir":
                raise TemplateError("cannot create %s: /%s is not a directory in the image" % (path, resolved))
            current = "" if resolved in ("", ".") else resolved
            continue
        if entry.type != "dir":
            raise TemplateError("cannot create %s: /%s is a %s in the image, not a directory"
                                % (path, candidate, entry.type))
        current = candidate
    return "/" + current


def place_file(tree, sink, path, data, mode=0o755, mtime=0):
    """Write a generated file at ``path``, following the image's symlinked parents."""
    parent, dummy, leaf = path.rstrip("/").rpartition("/")
    directory = ensure_dir(tree, sink, parent or "/", mtime=mtime)
    name = (directory.strip("/") + "/" + leaf) if directory.strip("/") else leaf
    sink.add_file(name, data, mode=mode, mtime=mtime)
    return "/" + name


def in_reserved_dir(tree, path, hops=0):
    """Whether ``path`` (absolute, container view) is /.lxcri or below it, lexically or through the image's
    symlinks as far as they exist (``tree`` None, check mode without the layers: lexically only).

    The image's own /.lxcri is always hidden (reserved_layer), so the tree never holds it: a path that gets
    there does so by name, directly or through a symlink's target.
    """
    parts = _split(posixpath.normpath("/" + path))
    if parts[:1] == [RESERVED_DIR]:
        return True
    if tree is None or hops > MAX_SYMLINK_HOPS:
        return False
    current = ""
    for index, part in enumerate(parts):
        candidate = current + "/" + part if current else part
        entry = tree.lookup(candidate)
        if entry is None:
            return False
        if entry.type == "symlink":
            base = "" if entry.linkname.startswith("/") else current
            rest = "/".join(parts[index + 1:])
            return in_reserved_dir(tree, "/%s/%s/%s" % (base, entry.linkname, rest), hops + 1)
        current = candidate
    return False


def extra_volumes(paths):
    """The ``volumes`` option: absolute paths other than /, normalized as the image's VOLUMEs are."""
    out = []
    for path in paths or ():
        text = str(path)
        try:
            normal = normalize_workdir(text)
        except ConfigError as exc:
            raise TemplateError("volumes: %s" % exc)
        if not text.startswith("/") or normal == "/":
            raise TemplateError("volumes: %r is not an absolute path other than /" % text)
        out.append(normal)
    return sorted(set(out))


def check_reserved(spec, tree):
    """Refuse a WORKDIR, Volume or command path in /.lxcri, where the generated files go (and which a
    restore would otherwise get twice, from ensure_dir and from the generated entries)."""
    places = [("the working directory", spec["cwd"])] + [("the volume", v) for v in spec["volumes"]]
    program = spec["argv"][0]
    if "/" in program:  # a bare name is looked up in PATH; a relative path with a slash is below the cwd
        places.append(("the command", program if program.startswith("/") else spec["cwd"] + "/" + program))
    for what, path in places:
        if in_reserved_dir(tree, path):
            raise TemplateError("%s %s is in /%s, which lxcri.proxmox reserves for the files it generates"
                                % (what, path, RESERVED_DIR))


def conversion_stats(tree):
    """What flattening did to the image's members, for the result (RETURN: conversion)."""
    return {"passes": tree.passes, "members": tree.members, "bytes": tree.bytes, "rereads": tree.rereads,
            "same_path_repeats": tree.same_path_repeats, "pax_global_headers": tree.pax_globals,
            "clamped_ids": tree.clamped_ids, "clamped_mtimes": tree.clamped_mtimes,
            "acl_entries_converted": tree.acl_converted, "acl_entries_dropped": tree.acl_dropped,
            "dropped_members": tree.dropped, "dropped_xattrs": tree.dropped_xattrs}


def _is_file(tree, path):
    resolved = tree.resolve(path.strip("/"))
    if resolved is None:
        return False
    entry = tree.lookup(resolved)
    return entry is not None and entry.type in ("file", "hardlink")


def _is_executable(tree, path):
    """A file (or a symlink to one, inside the image) that someone may execute."""
    resolved = tree.resolve(path.strip("/"))
    entry = tree.lookup(resolved) if resolved else None
    if entry is not None and entry.type == "hardlink":
        entry = tree.lookup(entry.linkname.strip("/")) or entry
    return entry is not None and entry.type in ("file", "hardlink") and bool(entry.mode & 0o111)


def _is_busybox(tree, path):
    resolved = tree.resolve(path.strip("/"))
    entry = tree.lookup(resolved) if resolved else None
    if entry is not None and entry.type == "hardlink":
        resolved = entry.linkname
    return bool(resolved) and resolved.rsplit("/", 1)[-1] == "busybox"


def _account(spec, tree):
    """(name, primary gid, initgroups' gids) of the uid in the image's passwd, for su; or None."""
    passwd = tree.captured("etc/passwd")
    if passwd is None:
        return None
    text = passwd.decode("utf-8", "replace")
    for name, uid, gid in parse_passwd(text):
        if uid == spec["uid"]:
            group = tree.captured("etc/group")
            members = parse_group(group.decode("utf-8", "replace") if group is not None else "")
            return name, gid, sorted({gid} | set(g for gname, g, names in members if name in names))
    return None


def pve_import_user(spec, tree):
    """The ``User`` to write into an OCI archive so that Proxmox VE's import gives the init ``spec``'s ids.

    pve-container 6.1.0+ PVE/LXC/Create.pm resolve_oci_user: ``uid:gid`` sets both and no supplementary groups
    (a group given turns them off); a name takes its uid and primary gid from the image's /etc/passwd and its
    groups from the /etc/group lines that list it.  None: nothing to write (root without groups: the import then
    sets no ids).  Raises TemplateError for supplementary groups the name does not give.
    """
    uid, gid, groups = spec["uid"], spec["gid"], sorted(set(spec["groups"] or []))
    if not uid and not gid and not groups:
        return None
    if not groups:
        return "%d:%d" % (uid, gid)
    account = _account(spec, tree)
    if account is not None:
        name, primary, dummy = account
        group = tree.captured("etc/group")
        members = parse_group(group.decode("utf-8", "replace") if group is not None else "")
        listed = sorted(set(g for dummy_name, g, names in members if name in names))
        passwd = tree.captured("etc/passwd")
        first = [u for n, u, dummy_gid in parse_passwd(passwd.decode("utf-8", "replace")) if n == name][:1]
        if first == [uid] and primary == gid and listed == groups:
            return name
    raise TemplateError("the image runs as uid %d gid %d with supplementary groups %s, which Proxmox VE's OCI import "
                        "cannot reproduce (it takes them only from a user name whose /etc/passwd and /etc/group "
                        "entries give exactly these): build with init_wrapper: always" % (uid, gid, groups))


def _ensure_etc(tree, sink, mtime):
    """resolve_oci_user resolves /etc/passwd and /etc/group with abs_path in the rootfs, which fails (and with it
    the whole import) when there is no /etc directory: an image without one (FROM scratch) gets an empty /etc."""
    resolved = tree.resolve("etc")
    entry = tree.lookup(resolved) if resolved is not None else None
    if entry is not None and entry.type == "dir":
        return
    if tree.lookup("etc") is not None or entry is not None:  # a file, or a symlink that leads nowhere useful
        raise TemplateError("the image's /etc is not a directory, so Proxmox VE's OCI import cannot read its users "
                            "(it fails the create): build with init_wrapper: always")
    sink.add_dir("etc", mtime=mtime)


# ---------------------------------------------------------------------------
# the runtime

def local_lxc_version(runner=None):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.detect import lxc_info  # pylint: disable=import-outside-toplevel
    info = lxc_info() if runner is None else lxc_info(runner=runner)
    return info.get("version") if info.get("present") else None


def target_lxc(option):
    """The LXC version the template is encoded for: the option, else the local LXC, else 5.0 rules."""
    if option and option != "auto":
        return option
    return local_lxc_version() or "5.0"


# init: system
SYSTEM_INIT = "/sbin/init"
# what the generated init runs when the image has no init of its own: no daemon, and nothing that an image of
# BusyBox or coreutils lacks (BusyBox's sleep takes no "infinity")
SYSTEM_SLEEP_ARGV = ("/bin/sh", "-c", "while :; do sleep 86400; done")


def finish_runtime(spec, tree, lxc_target, init_wrapper, sink=None, mtime=0, pve_import=False, net=None,
                   system=False):
    """Complete ``spec`` with the init encoding, adding generated files to ``sink``.

    ``system`` (oci_template's ``init: system``): a base image as a system container.  An image with its own
    ``/sbin/init`` (an executable file, or a symlink to one inside the image) keeps it and gets no generated file
    (``init: image``); any other gets the generated ``/sbin/init`` running SYSTEM_SLEEP_ARGV as root in ``/``
    (``init: sleep``), so that the container stays up for ``pct exec``.  ``spec`` is then the root spec that
    TemplateManager._spec makes for it.

    ``net`` (pve config.app_net's list): interfaces the generated init
    configures (Proxmox VE before 9.1 configures none in a container made
    from an image); only with ``init_wrapper`` always, and the image must
    have ``ip`` (and ``udhcpc`` for DHCP), as a command or a BusyBox applet.

    ``pve_import``: the output is an OCI archive for Proxmox VE 9.1's import,
    whose Entrypoint/Cmd (``oci_command``) must survive its quoting as well.

    With ``sink=None`` nothing is written (check mode): the runtime is what a
    build would produce.  With ``tree=None`` too (check mode, the layers not
    read) it is what the image config alone tells: what only the layers can
    answer (the user's ids from /etc/passwd and /etc/group, whether the image
    has the /bin/sh or the user-switching tool a wrapper needs) is null or
    unverified, and ``needs_layers`` names those keys.
    """
    check_reserved(spec, tree)
    runtime = dict(spec)
    argv = spec["argv"]
    known = tree is not None
    has_shell = _is_file(tree, "/bin/sh") if known else None
    runtime["wrapper"] = None
    add = sink is not None
    needs_layers = [key for key in ("uid", "gid", "groups") if spec[key] is None]
    ids_known = not needs_layers

    def exists(path):
        return _is_file(tree, path)

    def done(value):
        if not known:
            value["needs_layers"] = needs_layers
        return value

    if system:
        if not known:
            needs_layers.append("init")
            runtime.update(init=None, lxc_init_cmd=None, pve_entrypoint=None, lxc_config=[], pve_env="",
                           argv=None)
            return done(runtime)
        if _is_executable(tree, SYSTEM_INIT):
            runtime.update(init="image", argv=[SYSTEM_INIT], lxc_init_cmd=SYSTEM_INIT, pve_entrypoint=SYSTEM_INIT,
                           lxc_config=[], pve_env="")
            return done(runtime)
        parent = tree.resolve("sbin")  # /sbin is a symlink to usr/sbin in merged-/usr images
        present = tree.lookup(parent + "/init") if parent else None
        if present is not None:
            # there, but no executable init (checked above): the generated one cannot take its name, as Proxmox VE's
            # extraction skips members that exist, so a file after the image's would never land
            what = ("a symlink to %s, which the image lacks" % present.linkname) if present.type == "symlink" \
                else "not an executable file"
            raise TemplateError("init: system: the image's %s is %s; give an image whose /sbin/init works, or none "
                                "(nothing was built)" % (SYSTEM_INIT, what))
        if not has_shell:
            raise TemplateError("init: system: the image has no %s, and no /bin/sh for the generated init that keeps "
                                "the container running without one; give an image with either" % SYSTEM_INIT)
        runtime["init"] = "sleep"
        runtime["argv"] = argv = list(SYSTEM_SLEEP_ARGV)
        spec = dict(spec, argv=argv)
        init_wrapper = "always"

    if known:
        # the working directory and the volumes are made where the image lacks them; a file on the way fails the
        # build, and check mode (with the layers read, writing nothing) the same way
        target = sink if add else _NullSink()
        ensure_dir(tree, target, spec["cwd"], spec["uid"], spec["gid"], mtime)
        for volume in spec["volumes"]:
            ensure_dir(tree, target, volume, mtime=mtime)
    if net and init_wrapper != "always":
        raise TemplateError("net: only the generated init (init_wrapper: always) configures interfaces, and this "
                            "template has none (init_wrapper: %s); on Proxmox VE 9.1 and later the node configures "
                            "an app's interfaces (host-managed): leave net unset there" % init_wrapper)
    if init_wrapper == "always":
        tool = None
        net_tools = None
        if net and known:
            net_tools = initwrap.choose_net_tools(exists, initwrap.net_needs_dhcp(net))
            missing = [name for name, found in zip(("ip", "udhcpc"), net_tools)
                       if found is None and (name == "ip" or initwrap.net_needs_dhcp(net))]
            if missing:
                raise TemplateError("net: the generated init configures the interfaces with %s, which the image "
                                    "lacks (looked for %s, and BusyBox at %s); add %s to the image, or let Proxmox "
                                    "VE bring the interfaces up (9.1 and later: host-managed; 8: lxc_container's "
                                    "raw_lxc, static addresses only)"
                                    % (" and ".join(missing),
                                       ", ".join(initwrap.IP_PATHS + (initwrap.DHCP_PATHS if "udhcpc" in missing
                                                                      else ())),
                                       ", ".join(initwrap.BUSYBOX_PATHS),
                                       "iproute2 or BusyBox" if missing == ["ip"] else "BusyBox"))
        elif net:
            needs_layers.append("wrapper.net_tools")
        if not ids_known or spec["uid"] != 0 or spec["gid"] != 0 or spec["groups"]:
            if known:
                tool = initwrap.choose_drop_tool(exists, spec["gid"], spec["groups"], _account(spec, tree),
                                                 lambda path: _is_busybox(tree, path))
                if tool is None:
                    raise TemplateError("init_wrapper=always must switch to uid %d gid %d groups %s, but the image "
                                        "has no tool that can (looked for %s); use a Proxmox VE 9.1+ node with "
                                        "init_wrapper: auto, or add setpriv to the image"
                                        % (spec["uid"], spec["gid"], spec["groups"],
                                           ", ".join(c[0] for c in initwrap.drop_tool_candidates())))
            else:
                needs_layers.append("wrapper.drop_tool")
        if known and not has_shell:
            raise TemplateError("init_wrapper=always needs /bin/sh in the image, which it lacks")
        if known:
            script = initwrap.init_wrapper(argv, with_pve_term(spec["env"] or []), spec["cwd"], spec["uid"],
                                           spec["gid"], spec["groups"], spec["stop_signal"], tool, net, net_tools)
        else:  # the ids and the tools may need the layers: check what the script takes from the config alone
            initwrap.init_wrapper(argv, with_pve_term(spec["env"] or []), spec["cwd"], 0, 0, [], spec["stop_signal"],
                                  None, net, (["ip"], ["udhcpc"]))
        path = initwrap.INIT_WRAPPER_PATH
        if add:
            resolved = tree.resolve(path.strip("/"))
            if resolved is not None and tree.lookup(resolved) is not None:
                raise TemplateError("the image's %s resolves to /%s, which cannot be replaced by the init wrapper "
                                    "(only /sbin/init and /usr/sbin/init can)" % (path, resolved))
            path = place_file(tree, sink, initwrap.INIT_WRAPPER_PATH, script, mtime=mtime)
            sink.add_dir(RESERVED_DIR, mtime=mtime)
            sink.add_file(initwrap.INIT_COPY_PATH.lstrip("/"), script, mtime=mtime)
            if net_tools and net_tools[1]:
                sink.add_file(initwrap.DHCP_SCRIPT_PATH.lstrip("/"), initwrap.dhcp_script(net_tools[0]), mtime=mtime)
        elif not known:
            path = None  # where /sbin/init lands depends on the image's symlinks
            needs_layers.append("wrapper.written_at")
        runtime["wrapper"] = {"kind": "init", "path": initwrap.INIT_WRAPPER_PATH, "written_at": path,
                              "drop_tool": tool.path if tool else None}
        if net:
            runtime["wrapper"]["net_tools"] = [" ".join(cmd) for cmd in net_tools if cmd] if net_tools else None
        runtime["net"] = net or None
        if not known:
            needs_layers.append("wrapper")  # the image's /bin/sh
        runtime["lxc_init_cmd"] = initwrap.INIT_WRAPPER_PATH
        runtime["pve_entrypoint"] = initwrap.INIT_WRAPPER_PATH
        if pve_import:
            runtime["oci_command"] = [[initwrap.INIT_WRAPPER_PATH], None]
        runtime["lxc_config"] = []
        runtime["pve_env"] = ""
        return done(runtime)
    problem = None
    try:
        runtime["lxc_init_cmd"] = lxcinit.encode_init_cmd(argv, lxc_target)
        if pve_import:
            runtime["oci_command"] = list(lxcinit.pve_import_command(argv))
    except lxcinit.NotExpressible as exc:
        problem = exc
    if problem is not None:
        target = "Proxmox VE's OCI import" if pve_import else "lxc.init.cmd for LXC %s" % lxc_target
        if init_wrapper == "never" or has_shell is False:
            why = "init_wrapper is never" if init_wrapper == "never" else "the image has no /bin/sh for a wrapper"
            raise TemplateError("the command cannot be given to %s: %s; and %s" % (target, problem, why))
        try:
            # the shell adds PWD (ash: SHLVL) to what LXC passes: the script resets the env to exactly the list
            script = initwrap.exec_wrapper(argv, with_pve_term(spec["env"]))
        except WrapperError:
            script = initwrap.exec_wrapper(argv)  # names sh cannot set: LXC passes them, the shell adds PWD
        if add:
            sink.add_dir(RESERVED_DIR, mtime=mtime)
            sink.add_file(initwrap.EXEC_WRAPPER_PATH.lstrip("/"), script, mtime=mtime)
        runtime["wrapper"] = {"kind": "exec", "path": initwrap.EXEC_WRAPPER_PATH,
                              "reason": "%s: %s" % (target, problem)}
        if not known:
            needs_layers.append("wrapper")  # the image's /bin/sh
        runtime["lxc_init_cmd"] = initwrap.EXEC_WRAPPER_PATH
        if pve_import:
            runtime["oci_command"] = [[initwrap.EXEC_WRAPPER_PATH], None]
    if runtime["wrapper"]:
        runtime["pve_entrypoint"] = initwrap.EXEC_WRAPPER_PATH
    else:
        try:
            runtime["pve_entrypoint"] = lxcinit.pve_entrypoint(argv)
        except lxcinit.NotExpressible as exc:
            runtime["pve_entrypoint"] = None
            runtime["pve_entrypoint_problem"] = str(exc)
    try:
        runtime["pve_env"] = lxcinit.pve_env(spec["env"])
    except LxcConfigError as exc:
        runtime["pve_env"] = None
        runtime["pve_env_problem"] = str(exc)
    if ids_known:
        runtime["lxc_config"] = lxcinit.lxc_config_lines(spec["cwd"], spec["uid"], spec["gid"], spec["env"],
                                                         spec["stop_signal"], spec["groups"])
    else:
        runtime["lxc_config"] = None
        needs_layers.append("lxc_config")
    return done(runtime)


# ---------------------------------------------------------------------------
# the manager

class TemplateManager:
    """``TemplateManager(params, check_mode).run()`` returns the module result."""

    def __init__(self, params, check_mode=False, client_options=None, pve_factory=None):
        self.params = with_defaults(params, DEFAULTS)
        self.check_mode = check_mode
        self.warnings = []  # for module.warn
        self.images = ImageManager(dict((k, v) for k, v in self.params.items() if k in (
            "image", "platform", "cache_dir", "registry_username", "registry_password", "auth_file",
            "registry_tls_verify", "registry_ca_path", "registry_mirrors", "timeout", "retries", "keep_corrupt",
            "max_expansion_ratio", "max_uncompressed_bytes")),
            check_mode=check_mode, client_options=client_options)
        self.pve_factory = pve_factory
        fmt = self.params["format"]  # format, compression and init_wrapper: the argument spec's choices
        if bool(self.params["dest"]) == bool(self.params["storage"]):
            raise TemplateError("give exactly one of dest (a directory) or storage (a Proxmox VE storage)")
        if self.params["name"] is not None:
            check_name(self.params["name"])
        if self.params.get("net"):
            try:
                self.params["net"] = app_net(self.params["net"]) or None
            except ValueError as exc:
                raise TemplateError("%s; nothing was built" % exc)
        else:
            self.params["net"] = None
        self.system = self.params.get("init") == "system"
        if self.system:
            fmt = self._check_system()
        self.extension = None if fmt == "auto" else self._extension(fmt)
        self.format_choice = None  # format: auto, once decided: why
        bound = self.images.bound  # the options, checked
        self.limits = Limits(max_expansion_ratio=bound.ratio, max_uncompressed_bytes=bound.max_bytes)

    def _check_system(self):
        """init: system: a plain template; the options that shape an app's process do not apply."""
        given = [key for key in ("entrypoint", "cmd", "workdir", "user", "stop_signal", "net")
                 if self.params.get(key) is not None]
        if self.params["init_wrapper"] != "auto":
            given.append("init_wrapper")
        if given:
            raise TemplateError("init: system runs the image's own /sbin/init, or a generated one that only keeps the "
                                "container up, as root: %s do not apply; leave them out (nothing was built)"
                                % ", ".join(given))
        if self.params["format"] == "oci-archive":
            raise TemplateError("init: system builds a plain template (format vztmpl), which every Proxmox VE version "
                                "runs as a system container; Proxmox VE's OCI import would run the image's command "
                                "instead: leave format out or set vztmpl (nothing was built)")
        self.params["format"] = "vztmpl"
        return "vztmpl"

    # -- resolution --------------------------------------------------------

    def _resolve(self):
        """Pull (or in check mode, resolve) the image: (Resolved, layers all cached)."""
        if self.check_mode and not store_complete(self.params["cache_dir"]):
            # no usable cache: resolve (manifest and config only) without creating one or its lock files
            puller = Puller(None, self.images.client, bound=self.images.bound)
            return puller.inspect(self.images.source, self.images.platform), False, puller
        store = self.images.store
        puller = Puller(store, self.images.client, keep_corrupt=self.params.get("keep_corrupt", False),
                        bound=self.images.bound)
        key = pin_key(self.images.source, self.images.platform or host_platform())
        res = puller.pull(self.images.source, key, self.images.platform, check_mode=self.check_mode)
        cached = not puller.missing(res) if self.check_mode else True
        return res, cached, puller

    # -- entry points --------------------------------------------------------

    def run(self):
        dest = self.destination()
        if self.params["state"] == "absent":
            return self.absent(dest)
        if self.params.get("keep") is None:
            return self._present_explained(dest)
        check_keep(self.params)
        result = self._present_explained(dest)
        return prune(dest, self.params["keep"], name_parts(self.images.source)[0], result, self.check_mode)

    def _extension(self, fmt):
        """The file extension of a template in format ``fmt`` (a plain template's says its compression)."""
        return EXTENSIONS[(fmt, self.params["compression"] if fmt == "vztmpl" else None)]

    def _present_explained(self, dest):
        """present(); a refusal after format auto chose says what it chose and why."""
        try:
            return self.present(dest)
        except TemplateError as exc:
            if not self.format_choice:
                raise
            raise TemplateError("%s (format auto chose %s)" % (exc, self.format_choice)) from exc

    def destination(self):
        """Where the template goes: ``dest`` (a directory) or ``storage`` (a Proxmox VE storage, over the API)."""
        if self.params["storage"]:
            return StorageDestination(self, self.extension)
        return DirDestination(self.params["dest"], self.extension, self.check_mode)

    def _lxc_target(self, dest):
        """The LXC version to encode the init command for: the option; for ``auto`` 6.0 for an OCI archive
        (only Proxmox VE 9.1+ imports them, with lxc-pve 6.0), else the destination node's LXC (a storage's
        node over the API; a directory's is where the module runs), else 5.0's rules."""
        option = self.params["lxc_version"]
        if option and option != "auto":
            return option
        if self.params["format"] == "oci-archive":
            return "6.0"
        return dest.lxc_version() or target_lxc(option)

    def _base(self):
        return {"changed": False, "image": str(self.images.source), "format": self.params["format"]}

    def _decide_format(self, dest, res, cached=False):
        """``format: auto``: what the destination's node runs with the image's user and its supplementary groups
        (see auto_format); those are read from the layers' /etc/passwd and /etc/group when the layers are here
        (``cached``; check mode without them cannot know)."""
        user = str(self.params.get("user") or (res.config.get("config") or {}).get("User") or "0").strip()

        def groups():
            if not cached:
                return None
            # learnt once per image and user (the store's facts about the manifest): later runs read no layer
            store = self.images.store
            meta = store.get_meta(res.manifest_digest)
            known = (meta.get("user_groups") or {}).get(user)
            if known is not None:
                return known
            found = sorted(self._spec(res, self._scan_tree(res))["groups"] or [])
            if not self.check_mode:
                learnt = dict(meta.get("user_groups") or {})
                learnt[user] = found
                store.set_meta(res.manifest_digest, dict(meta, user_groups=learnt))
            return found
        fmt, wrapper, why = dest.auto_format(user not in ROOT_USERS, groups)
        if wrapper and self.params["init_wrapper"] == "never":
            raise TemplateError("format auto chose a plain template with the generated init (%s), but init_wrapper "
                                "is never: allow the wrapper, or give format" % why)
        self.params["format"] = fmt
        if wrapper:
            self.params["init_wrapper"] = wrapper
        self.extension = dest.extension = self._extension(fmt)
        self.format_choice = "%s%s: %s" % (fmt, " with init_wrapper %s" % wrapper if wrapper else "", why)

    def present(self, dest=None):
        dest = dest or self.destination()
        auto = self.params["format"] == "auto"
        if not auto:
            # what the options alone make unrunnable (on a storage's node) is refused before the image is pulled
            dest.check_runnable(self.params["name"] or "the template")
        res, cached, dummy = self._resolve()
        if auto:
            self._decide_format(dest, res, cached)
            dest.check_runnable(self.params["name"] or "the template")
        lxc_target = self._lxc_target(dest)
        ident = identity(self.params, res.manifest_digest, res.platform, lxc_target)
        name = self.params["name"] or default_name(self.images.source, res.manifest_digest, self.params)
        filename = name + self.extension
        result = self._base()
        result.update({"name": name, "filename": filename, "digest": res.manifest_digest,
                       "platform": str(res.platform), "identity": identity_hash(ident), "lxc_version": lxc_target,
                       "format": self.params["format"], "init_wrapper": self.params["init_wrapper"]})
        if self.format_choice:
            result["format_choice"] = self.format_choice
        result.update(dest.describe(filename))
        with dest.lock(name):
            record = dest.read_record(filename, ident)
            exists = dest.exists(filename)
            if exists and not self.params["force"] and dest.up_to_date(filename, ident, record):
                runtime = record["runtime"] if record else self.scan_runtime(res, cached, lxc_target)
                dest.check_runnable(filename, runtime)
                result.update(size=record and record["size"], sha256=record and record.get("sha256"),
                              runtime=runtime, conversion=record and record.get("conversion"))
                same = {"identity": ident, "runtime": runtime}
                result["diff"] = self._diff(same, same)
                return result
            before = dest.before(ident, record) if exists else None
            result["changed"] = True
            if self.check_mode:
                runtime = self.scan_runtime(res, cached, lxc_target)
                dest.check_runnable(filename, runtime)
                result.update({"size": None, "sha256": None, "runtime": runtime, dest.CHECK_KEY: True,
                               "conversion": None})
                result["diff"] = self._diff(before, {"identity": ident, "runtime": runtime})
                return result
            if dest.checks_runtime:
                # what the config tells already (a working directory, a numeric user) is refused before the build
                dest.check_runnable(filename, self.scan_runtime(res, False, lxc_target))
            with dest.staging(name):
                path = dest.build_path(filename)
                record = self.build(res, ident, lxc_target, path)
                result.update(dest.publish(filename, path, record, exists))
            result.update(size=record["size"], sha256=record["sha256"], runtime=record["runtime"],
                          conversion=record["conversion"])
            result["diff"] = self._diff(before, {"identity": ident, "runtime": record["runtime"]})
            return result

    def absent(self, dest=None):
        dest = dest or self.destination()
        result = self._base()
        if self.params["name"]:
            name = self.params["name"]
        else:
            res, cached, dummy = self._resolve_readonly()
            if self.params["format"] == "auto":
                self._decide_format(dest, res, cached)  # the default name carries the options auto chose
            name = default_name(self.images.source, res.manifest_digest, self.params)
        if self.extension is None:  # format auto with a name: the template of either format
            extensions = [self._extension("vztmpl"), self._extension("oci-archive")]
        else:
            extensions = [self.extension]
        removed = None
        with dest.lock(name, create=False):
            for extension in extensions:
                filename = name + extension
                removed = dest.remove(filename)
                if removed:
                    break
        result["name"] = name
        result.update(dest.describe(filename, present=False))
        result["removed"] = removed
        result["changed"] = bool(removed)
        result["diff"] = {"before": {dest.KEY: dest.address(filename) if removed else None},
                          "after": {dest.KEY: None}}
        return result

    def _resolve_readonly(self):
        saved = self.check_mode
        self.check_mode = True
        try:
            return self._resolve()
        finally:
            self.check_mode = saved

    @staticmethod
    def _diff(before, after):
        def view(record):
            if not record:
                return {"template": None}
            ident = record.get("identity") or {}
            runtime = record.get("runtime") or {}
            return {"template": {"manifest_digest": ident.get("manifest_digest"), "options": ident.get("options"),
                                 "argv": runtime.get("argv"), "lxc_init_cmd": runtime.get("lxc_init_cmd")}}
        return {"before": view(before), "after": view(after)}

    # -- locking and temp files ------------------------------------------------

    def _tmp_path(self, final):
        directory = os.path.dirname(final)
        sweep_tmp(directory, _TMP_NAME)
        fd, tmp = tempfile.mkstemp(prefix="%s%d-" % (TMP_PREFIX, os.getpid()),
                                   suffix="-" + os.path.basename(final), dir=directory)
        return fd, tmp

    # -- building --------------------------------------------------------------

    def _layers(self, res, store=None):
        diff_ids = res.config["rootfs"]["diff_ids"]
        store = store or self.images.store
        layers = [StoredLayer(store, layer, diff_id) for layer, diff_id in zip(res.layers, diff_ids)]
        # init: system keeps the image's own /sbin/init (and writes one only where the image has none)
        return layers + [reserved_layer(self.params["init_wrapper"] == "always" and not self.system)]

    def _spec(self, res, tree):
        """The process spec from the config, the overrides and ``tree``'s user files (``tree=None``: layers not
        read, ids null where those files decide)."""
        keys = ("entrypoint", "cmd", "env", "workdir", "user", "stop_signal")
        overrides = dict((key, self.params.get(key)) for key in keys)
        if self.system:  # root in /, whatever the image says; the command is decided by finish_runtime
            overrides.update(entrypoint=[SYSTEM_INIT], cmd=[], workdir="/", user="0")
        passwd = tree.captured("etc/passwd") if tree is not None else None
        group = tree.captured("etc/group") if tree is not None else None
        try:
            spec = runtime_spec(res.config.get("config") or {}, overrides,
                                passwd.decode("utf-8", "replace") if passwd is not None else None,
                                group.decode("utf-8", "replace") if group is not None else None,
                                user_files=tree is not None)
        except ConfigError as exc:
            raise TemplateError("%s: %s" % (self.images.source, exc))
        spec["volumes"] = sorted(set(spec["volumes"]) | set(extra_volumes(self.params.get("volumes"))))
        if self.system:
            spec["groups"] = []  # root's supplementary groups from /etc/group are the init's business
        spec.update(image_digest=res.manifest_digest, platform=str(res.platform))
        return spec

    def _scan_tree(self, res):
        """The image's flattened tree, read from the cached layers and written nowhere (no store record)."""
        return with_restarts(lambda hints: flatten(self._layers(res, _ReadOnlyStore(self.images.store)), _NullSink(),
                                                   self.limits, hints=hints))

    def scan_runtime(self, res, cached, lxc_target):
        """The runtime a build would produce (check mode), writing nothing.

        With the layers cached they are read (through a store view that
        records nothing); without, the runtime is what the image config
        and the options tell, ``needs_layers`` naming what is null or unverified.
        """
        tree = self._scan_tree(res) if cached else None
        spec = self._spec(res, tree)
        archive = self.params["format"] == "oci-archive"
        runtime = finish_runtime(spec, tree, lxc_target, self.params["init_wrapper"], pve_import=archive,
                                 net=self.params["net"], system=self.system)
        if archive:
            entrypoint, cmd = runtime.pop("oci_command")
            runtime["oci_config"] = {"Entrypoint": entrypoint, "Cmd": cmd}
        return runtime

    def build(self, res, ident, lxc_target, path):
        """Build the template at ``path`` atomically; returns the sidecar record.

        Written again from the start when flattening asks for another pass (flatten.with_restarts)."""
        return with_restarts(lambda hints: self._build(res, ident, lxc_target, path, hints))

    def _build(self, res, ident, lxc_target, path, hints):
        mtime = _created_epoch(res.config)
        fd, tmp = self._tmp_path(path)
        try:
            with os.fdopen(fd, "wb") as raw:
                out = HashingWriter(raw)  # hashes the template as it is written
                if self.params["format"] == "vztmpl":
                    runtime, tree = self._write_vztmpl(res, out, lxc_target, mtime, hints)
                else:
                    runtime, tree = self._write_oci_archive(res, out, lxc_target, mtime, os.path.dirname(path), hints)
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, 0o644)
            # the zstd command writes into the file itself, past the hash: only then is the file read back
            sha = out.hexdigest() if out.complete else sha256_file(tmp)
            size = os.path.getsize(tmp)
            os.rename(tmp, path)
            _fsync_dir(os.path.dirname(path))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return {"identity": ident, "runtime": runtime, "image": str(self.images.source), "size": size,
                "sha256": sha, "filename": os.path.basename(path), "conversion": conversion_stats(tree)}

    def _write_vztmpl(self, res, raw, lxc_target, mtime, hints=None):
        stream = compressor(raw, self.params["compression"])
        sink = TemplateSink(stream, "./")
        try:
            tree = flatten(self._layers(res), sink, self.limits, hints=hints)
            spec = self._spec(res, tree)
            runtime = finish_runtime(spec, tree, lxc_target, self.params["init_wrapper"], sink, mtime,
                                     net=self.params["net"], system=self.system)
            sink.close()
            stream.close()
        except BaseException:
            sink.abort()
            stream.abort()
            raise
        return runtime, tree

    def _write_oci_archive(self, res, raw, lxc_target, mtime, workdir, hints=None):
        """A normalised OCI archive: one manifest, OCI types, one squashed gzip layer."""
        fd, layer_tmp = tempfile.mkstemp(prefix="%s%d-layer-" % (TMP_PREFIX, os.getpid()), dir=workdir)
        try:
            with os.fdopen(fd, "wb") as layer_file:
                compressed = HashingWriter(layer_file)
                stream = compressor(compressed, "gzip")
                uncompressed = HashingWriter(stream)
                sink = TemplateSink(uncompressed, "")
                try:
                    tree = flatten(self._layers(res), sink, self.limits, hints=hints)
                    spec = self._spec(res, tree)
                    runtime = finish_runtime(spec, tree, lxc_target, self.params["init_wrapper"], sink, mtime,
                                             pve_import=True, net=self.params["net"])
                    # the generated init switches ids itself: the import must leave them at root
                    import_user = None if (runtime["wrapper"] or {}).get("kind") == "init" else \
                        pve_import_user(spec, tree)
                    if import_user is not None:
                        _ensure_etc(tree, sink, mtime)
                    sink.close()
                    stream.close()
                except BaseException:
                    sink.abort()
                    raise
            config = copy.deepcopy(res.config)
            cfg = config.setdefault("config", {})
            entrypoint, cmd = runtime.pop("oci_command")
            cfg["Entrypoint"] = entrypoint
            cfg["Cmd"] = cmd
            cfg["Env"] = list(spec["env"])
            cfg["WorkingDir"] = spec["cwd"]
            if import_user is None:
                cfg.pop("User", None)
            else:
                cfg["User"] = import_user
            cfg["StopSignal"] = spec["stop_signal"]
            config["rootfs"] = {"type": "layers", "diff_ids": [uncompressed.digest()]}
            config["history"] = [{"created": res.config.get("created") or "1970-01-01T00:00:00Z",
                                  "created_by": "lxcri.proxmox oci_template: %d layers squashed, from %s"
                                  % (len(res.layers), res.manifest_digest)}]
            config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
            layer_desc = {"mediaType": media.OCI_LAYER_GZIP, "digest": compressed.digest(), "size": compressed.size}
            config_desc = {"mediaType": media.OCI_CONFIG, "digest": digest_of(config_bytes), "size": len(config_bytes)}
            manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config_desc,
                        "layers": [layer_desc]}
            manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
            index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [{
                "mediaType": media.OCI_MANIFEST, "digest": digest_of(manifest_bytes), "size": len(manifest_bytes),
                "platform": res.platform.as_dict() if hasattr(res.platform, "as_dict") else None,
                "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
            if index["manifests"][0]["platform"] is None:
                del index["manifests"][0]["platform"]
            else:
                index["manifests"][0]["platform"] = dict((k, v) for k, v in index["manifests"][0]["platform"].items()
                                                         if v)
            out = tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT)
            try:
                def member(name, data=None, path=None, size=None, kind=tarfile.REGTYPE):
                    info = tarfile.TarInfo(name)
                    info.type = kind
                    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
                    info.mtime = mtime
                    if data is not None:
                        info.size = len(data)
                        out.addfile(info, io.BytesIO(data))
                    elif path is not None:
                        info.size = size
                        with open(path, "rb") as handle:
                            out.addfile(info, handle)
                    else:
                        out.addfile(info)

                member("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
                member("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
                member("blobs", kind=tarfile.DIRTYPE)
                member("blobs/sha256", kind=tarfile.DIRTYPE)
                blobs = [(config_desc["digest"], config_bytes, None), (digest_of(manifest_bytes), manifest_bytes, None),
                         (layer_desc["digest"], None, layer_tmp)]
                for digest, data, path in sorted(blobs, key=lambda b: b[0]):
                    member("blobs/sha256/" + digest.partition(":")[2], data=data, path=path,
                           size=layer_desc["size"] if path else None)
            finally:
                out.close()
        finally:
            if os.path.exists(layer_tmp):
                os.unlink(layer_tmp)
        runtime["oci_config"] = {"Entrypoint": entrypoint, "Cmd": cmd}  # what the archive's config says
        return runtime, tree


class _ReadOnlyStore:
    """The blob store as check mode reads layers: a verified read records no diff_id (open_layer's remember)."""

    def __init__(self, store):
        self.store = store

    def path(self, digest):
        return self.store.path(digest)

    def set_meta(self, digest, meta):
        pass


class _NullSink:
    def add(self, info, fileobj=None):
        if fileobj is not None:
            _drain(fileobj, info.size)

    def add_dir(self, *args, **kwargs):
        pass

    def add_file(self, *args, **kwargs):
        pass


def _created_epoch(config):
    """The image's creation time as an integer epoch (mtime of generated entries), else 0."""
    created = config.get("created")
    if not created:
        return 0
    match = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", created)
    if not match:
        return 0
    import calendar  # pylint: disable=import-outside-toplevel
    return calendar.timegm(tuple(int(x) for x in match.groups()) + (0, 0, 0))
