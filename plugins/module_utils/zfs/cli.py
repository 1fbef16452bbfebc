# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``zfs``/``zpool`` command line driver: argument lists, never a shell.

Reads are one batched ``zfs get -Hp -r ... all`` per scope.  What the
installed ``zfs`` supports is detected once: OpenZFS (``zfs version``,
multi-name ``snapshot``, ``-j`` JSON from 2.3) or the older zfs-fuse set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError

_ERRORS = (
    (re.compile(r"no such pool|pool .* does not exist", re.I), "pool_missing"),
    (re.compile(r"dataset does not exist|could not find any snapshots|no such", re.I), "not_found"),
    (re.compile(r"busy|has dependent clones|has children|snapshot is held", re.I), "busy"),
    (re.compile(r"already exists", re.I), "exists"),
    (re.compile(r"permission denied|operation not permitted", re.I), "permission"),
    (re.compile(r"invalid character|invalid dataset name|name is too long|invalid.*name", re.I), "invalid_name"),
    (re.compile(r"invalid property|bad property|cannot be set|read-only property|invalid option", re.I),
     "invalid_property"),
    (re.compile(r"failed to initialize ZFS library|connect:", re.I), "driver_unavailable"),
)


_JSON_SOURCES = {"LOCAL": "local", "DEFAULT": "default", "NONE": "-", "TEMPORARY": "temporary",
                 "RECEIVED": "received"}


def parse_json_get(text):
    """OpenZFS 2.3+ ``zfs get -j`` output -> {name: {prop: (value, source)}} like the tab format."""
    doc = json.loads(text)
    data = {}
    for name, dataset in doc["datasets"].items():
        props = {}
        for prop, entry in (dataset.get("properties") or {}).items():
            source = entry.get("source") or {}
            kind = str(source.get("type", "NONE")).upper()
            if kind == "INHERITED":
                text_source = "inherited from %s" % source.get("data")
            else:
                text_source = _JSON_SOURCES.get(kind, kind.lower())
            props[prop] = (str(entry.get("value")), text_source)
        data[dataset.get("name", name)] = props
    return data


def classify(stderr):
    for pattern, kind in _ERRORS:
        if pattern.search(stderr or ""):
            return kind
    return "failed"


def several_snapshots_refused(names, implementation):
    """What a zfs whose ``zfs snapshot`` takes one name ("too many arguments") refuses, naming the datasets."""
    by_dataset = {}
    for name in names:
        by_dataset.setdefault(name.partition("@")[0], []).append(name)
    if len(by_dataset) == 1:
        dataset = list(by_dataset)[0]
        asked = "%d snapshots of the one dataset %s (%s)" % (len(names), dataset, ", ".join(names))
        advice = "take them in separate tasks (no ZFS takes two snapshots of one dataset in one transaction)"
    else:
        asked = "snapshots of %d datasets (%s)" % (len(by_dataset), ", ".join(sorted(by_dataset)))
        advice = ("snapshot them in separate tasks (then not atomic), or snapshot a common parent with "
                  "recursive: true (atomic)")
    return ("this zfs (%s) cannot take several snapshots in one command: its zfs snapshot accepts one "
            "dataset@snapname; asked for %s; %s" % (implementation, asked, advice))


class CliDriver:
    name = "cli"

    def __init__(self, runner, zfs="zfs", zpool="zpool", sleep=time.sleep,
                 sys_version_path="/sys/module/zfs/version"):
        self.runner = runner
        self.sys_version_path = sys_version_path
        self.sleep = sleep
        self.zfs = zfs
        self.zpool = zpool
        self.calls = 0
        self._caps = None

    def run(self, argv, what):
        self.calls += 1
        rc, out, err = self.runner(argv)
        if rc == 127:
            raise ZfsError("the zfs command is not available: %s" % err.strip(), "driver_unavailable")
        if rc != 0:
            message = (err or out).strip()
            raise ZfsError("%s failed: %s" % (what, message), classify(message))
        return out

    # -- capabilities ---------------------------------------------------------
    @property
    def caps(self):
        """What this zfs can do; the kernel module's version file answers without a process."""
        if self._caps is None:
            version_text = self.kmod_version()
            if version_text is None:
                self.calls += 1
                rc, out, err = self.runner([self.zfs, "version"])
                version_text = out.strip()[len("zfs-"):] if rc == 0 and out.startswith("zfs-") else None
            version = None
            if version_text:
                match = re.match(r"(\d+)\.(\d+)", version_text)
                version = (int(match.group(1)), int(match.group(2))) if match else None
            openzfs = version_text is not None
            self._caps = {
                "implementation": "openzfs" if openzfs else "zfs-fuse",
                "version": version,
                "multi_snapshot": openzfs,  # zfs-fuse: "too many arguments"
                "list_p": openzfs,  # zfs-fuse has get -p but not list -p
                "json": bool(version and version >= (2, 3)),
                "holds": openzfs,  # zfs-fuse's "zfs holds" needs a missing helper
            }
        return self._caps

    def kmod_version(self):
        """OpenZFS's loaded kernel module version (``/sys/module/zfs/version``), or None."""
        try:
            with open(self.sys_version_path) as handle:
                return handle.read().strip() or None
        except (IOError, OSError):
            return None

    @property
    def reads_json(self):
        """JSON reads need OpenZFS 2.3; decided without starting a process where possible."""
        if self._caps is None and self.kmod_version() is None:
            return False  # no OpenZFS kernel module: zfs-fuse or no ZFS at all; the tab format works everywhere
        return self.caps["json"]

    # -- reads ----------------------------------------------------------------
    def get_all(self, names, recursive=True, props="all"):
        """{name: {prop: (value, source)}} for ``names`` (and descendants), in one call.

        Names that do not exist are left out rather than failing the call.
        OpenZFS 2.3+ answers in JSON (``-j``); older releases and zfs-fuse in
        tab-separated ``-Hp`` output.  Both parse to the same shape.
        """
        if self.reads_json:
            data = self._get_json(names, recursive, props)
            if data is not None:
                return data
        argv = [self.zfs, "get", "-Hp", "-o", "name,property,value,source"]
        if recursive:
            argv.append("-r")
        argv += [props] + list(names)
        self.calls += 1
        rc, out, err = self.runner(argv)
        if rc == 127:
            raise ZfsError("the zfs command is not available: %s" % err.strip(), "driver_unavailable")
        if rc != 0:
            kind = classify(err)
            if kind not in ("not_found",):
                raise ZfsError("zfs get failed: %s" % err.strip(), kind)
        data = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 4:
                continue
            name, prop, value, source = parts
            data.setdefault(name, {})[prop] = (value, source)
        return data

    def _get_json(self, names, recursive, props):
        argv = [self.zfs, "get", "-j", "-p"]
        if recursive:
            argv.append("-r")
        self.calls += 1
        rc, out, err = self.runner(argv + [props] + list(names))
        if rc != 0 and classify(err) != "not_found":
            raise ZfsError("zfs get failed: %s" % err.strip(), classify(err))
        try:
            return parse_json_get(out) if out.strip() else {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # an unexpected JSON shape: read the tab format instead

    def exists(self, name):
        return bool(self.get_all([name], recursive=False, props="type"))

    def pool_exists(self, pool):
        self.calls += 1
        rc, out, err = self.runner([self.zpool, "list", "-H", "-o", "name", pool])
        return rc == 0

    # -- writes ---------------------------------------------------------------
    @staticmethod
    def _props(props):
        argv = []
        for key, value in sorted((props or {}).items()):
            argv += ["-o", "%s=%s" % (key, value)]
        return argv

    def create(self, name, props=None, volsize=None, parents=True, sparse=False):
        argv = [self.zfs, "create"]
        if parents:
            argv.append("-p")
        if volsize is not None:
            if sparse:
                argv.append("-s")
            argv += ["-V", str(volsize)]
        self.run(argv + self._props(props) + [name], "zfs create %s" % name)

    def clone(self, origin, name, props=None):
        self.run([self.zfs, "clone", "-p"] + self._props(props) + [origin, name], "zfs clone %s" % name)

    def promote(self, name):
        self.run([self.zfs, "promote", name], "zfs promote %s" % name)

    def set(self, name, props):
        if not props:
            return
        pairs = ["%s=%s" % (k, v) for k, v in sorted(props.items())]
        if self.caps["implementation"] == "openzfs":
            self.run([self.zfs, "set"] + pairs + [name], "zfs set on %s" % name)
        else:  # zfs-fuse sets one property per call
            for pair in pairs:
                self.run([self.zfs, "set", pair, name], "zfs set %s on %s" % (pair, name))

    def inherit(self, name, prop):
        self.run([self.zfs, "inherit", prop, name], "zfs inherit %s on %s" % (prop, name))

    def destroy(self, name, recursive=False, dependents=False, defer=False):
        argv = [self.zfs, "destroy"]
        if recursive:
            argv.append("-r")
        if dependents:
            argv.append("-R")
        if defer:
            argv.append("-d")
        return self.run_settling(argv + [name], "zfs destroy %s" % name)

    def run_settling(self, argv, what):
        """zfs-fuse answers "dataset is busy" while a FUSE unmount settles: retry there, briefly."""
        attempts = 1 if self.caps["implementation"] == "openzfs" else 6
        for attempt in range(attempts):
            try:
                return self.run(argv, what)
            except ZfsError as exc:
                if exc.kind != "busy" or attempt == attempts - 1:
                    raise
                self.sleep(0.3)
        return None

    def check_snapshot(self, names):
        """Raise the refusal ``zfs snapshot`` would give for ``names``, without running anything (check mode)."""
        names = list(names)
        if len(names) > 1 and not self.caps["multi_snapshot"]:
            raise ZfsError(several_snapshots_refused(names, self.caps["implementation"]), "unsupported")

    def snapshot(self, names, recursive=False, props=None):
        """Snapshot ``names`` (dataset@snap) atomically; several names need multi-name support."""
        names = list(names)
        self.check_snapshot(names)
        argv = [self.zfs, "snapshot"]
        if recursive:
            argv.append("-r")
        self.run(argv + self._props(props) + names, "zfs snapshot %s" % " ".join(names))

    def rollback(self, snapshot, destroy_newer=False):
        argv = [self.zfs, "rollback"]
        if destroy_newer:
            argv.append("-R")
        self.run_settling(argv + [snapshot], "zfs rollback %s" % snapshot)

    def hold(self, tag, snapshots):
        for snap in snapshots:
            self.run([self.zfs, "hold", tag, snap], "zfs hold %s %s" % (tag, snap))

    def release(self, tag, snapshots):
        for snap in snapshots:
            self.run([self.zfs, "release", tag, snap], "zfs release %s %s" % (tag, snap))

    def holds(self, snapshots):
        """{snapshot: [tags]} (OpenZFS); None where the command cannot list holds (zfs-fuse)."""
        if not self.caps["holds"]:
            return None
        out = self.run([self.zfs, "holds", "-H"] + list(snapshots), "zfs holds")
        found = dict((snap, []) for snap in snapshots)
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                found.setdefault(parts[0], []).append(parts[1])
        return found

    def destroy_snapshots(self, names, defer=False):
        """OpenZFS destroys several snapshots of one dataset as ``fs@a,b,c``; zfs-fuse one at a time."""
        names = list(names)
        if self.caps["implementation"] == "openzfs":
            by_dataset = {}
            for name in names:
                dataset, dummy, snap = name.partition("@")
                by_dataset.setdefault(dataset, []).append(snap)
            for dataset, snaps in sorted(by_dataset.items()):
                self.destroy("%s@%s" % (dataset, ",".join(snaps)), defer=defer)
            return
        for name in names:
            self.destroy(name, defer=defer)

    def settle_unmount(self, names):
        """zfs-fuse does not unmount clones that rollback -R / destroy -R remove: do it first (OpenZFS does)."""
        if self.caps["implementation"] == "openzfs":
            return
        for name in names:
            self.calls += 1
            self.runner([self.zfs, "unmount", "-f", name])

    def mount(self, name):
        self.run([self.zfs, "mount", name], "zfs mount %s" % name)
