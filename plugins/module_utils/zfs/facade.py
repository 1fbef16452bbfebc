# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One entry point over both drivers: reads through the CLI (one batched call),
writes through libzfs_core where it supports them, and a log of which driver
did each operation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.cli import CliDriver
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.lzc import LzcDriver, load
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import split_snapshot

DRIVERS = ("auto", "libzfs_core", "cli")


def zfs_argument_spec():
    """A new dict of the options the ZFS modules share (see the doc fragment lxcri.proxmox.zfs)."""
    return dict(
        driver=dict(type="str", default="auto", choices=list(DRIVERS)),
        allow_pve_managed=dict(type="bool", default=False),
        allowed_roots=dict(type="list", elements="str", default=[]),
    )


class Zfs:
    def __init__(self, runner, driver="auto", import_module=importlib.import_module):
        self.cli = CliDriver(runner)
        self.lzc = None
        self.unavailable = None
        if driver in ("auto", "libzfs_core"):
            try:
                self.lzc = LzcDriver(load(import_module))
            except ZfsError as exc:
                if driver == "libzfs_core":
                    raise
                self.unavailable = str(exc)
        self.operations = []

    def _use_lzc(self, func):
        return self.lzc is not None and self.lzc.supports(func)

    def _log(self, op, target, driver):
        self.operations.append({"op": op, "target": target, "driver": driver})

    @property
    def process_calls(self):
        return self.cli.calls

    # reads -------------------------------------------------------------------
    def get_all(self, names, recursive=True, props="all"):
        return self.cli.get_all(names, recursive, props)

    # writes --------------------------------------------------------------------
    def create(self, name, props=None, volsize=None, sparse=False):
        if volsize is None and self._use_lzc("lzc_create"):
            # lzc_create makes no parents and does not mount
            parent = name.rsplit("/", 1)[0]
            if "/" in name and not self.lzc.exists(parent):
                self.cli.create(parent, parents=True)
                self._log("create", parent, "cli")
            self.lzc.create(name, props)
            self._log("create", name, "libzfs_core")
            if (props or {}).get("canmount", "on") != "off" and (props or {}).get("mountpoint") not in ("none", "legacy"):
                self.cli.mount(name)
                self._log("mount", name, "cli")
            return
        self.cli.create(name, props, volsize=volsize, sparse=sparse)
        self._log("create", name, "cli")

    def clone(self, origin, name, props=None):
        if self._use_lzc("lzc_clone"):
            self.lzc.clone(origin, name, props)
            self._log("clone", name, "libzfs_core")
            self.cli.mount(name)
            self._log("mount", name, "cli")
            return
        self.cli.clone(origin, name, props)
        self._log("clone", name, "cli")

    def promote(self, name):
        if self._use_lzc("lzc_promote"):
            self.lzc.promote(name)
            self._log("promote", name, "libzfs_core")
            return
        self.cli.promote(name)
        self._log("promote", name, "cli")

    def set(self, name, props):
        self.cli.set(name, props)
        self._log("set", name, "cli")

    def inherit(self, name, prop):
        self.cli.inherit(name, prop)
        self._log("inherit %s" % prop, name, "cli")

    def destroy(self, name, recursive=False, dependents=False):
        self.cli.destroy(name, recursive=recursive, dependents=dependents)
        self._log("destroy", name, "cli")

    def check_snapshot(self, names, recursive=False):
        """Raise the refusal snapshot() would meet from the driver it would use, writing nothing (check mode)."""
        if not recursive and self._use_lzc("lzc_snapshot"):
            return  # one transaction for any number of names
        self.cli.check_snapshot(names)

    def snapshot(self, names, recursive=False, props=None):
        if not recursive and self._use_lzc("lzc_snapshot"):
            self.lzc.snapshot(names, props)
            self._log("snapshot", ", ".join(names), "libzfs_core")
            return
        self.cli.snapshot(names, recursive=recursive, props=props)
        self._log("snapshot", ", ".join(names), "cli")

    def destroy_snapshots(self, names, defer=False):
        if self._use_lzc("lzc_destroy_snaps"):
            self.lzc.destroy_snapshots(names, defer)
            self._log("destroy", ", ".join(names), "libzfs_core")
            return
        self.cli.destroy_snapshots(names, defer=defer)
        self._log("destroy", ", ".join(names), "cli")

    def rollback(self, snapshot, destroy_newer=False):
        dataset = split_snapshot(snapshot)[0]
        if not destroy_newer and self._use_lzc("lzc_rollback_to"):
            self.lzc.rollback_to(dataset, snapshot)
            self._log("rollback", snapshot, "libzfs_core")
            return
        self.cli.rollback(snapshot, destroy_newer)
        self._log("rollback", snapshot, "cli")

    def holds(self, snapshots):
        """{snapshot: [tags]}, or None when the driver cannot list holds."""
        if self._use_lzc("lzc_get_holds"):
            return dict((snap, self.lzc.holds(snap)) for snap in snapshots)
        return self.cli.holds(snapshots)

    def hold(self, tag, snapshots):
        if self._use_lzc("lzc_hold"):
            self.lzc.hold(tag, snapshots)
            self._log("hold %s" % tag, ", ".join(snapshots), "libzfs_core")
            return
        self.cli.hold(tag, snapshots)
        self._log("hold %s" % tag, ", ".join(snapshots), "cli")

    def release(self, tag, snapshots):
        if self._use_lzc("lzc_release"):
            self.lzc.release(tag, snapshots)
            self._log("release %s" % tag, ", ".join(snapshots), "libzfs_core")
            return
        self.cli.release(tag, snapshots)
        self._log("release %s" % tag, ", ".join(snapshots), "cli")
