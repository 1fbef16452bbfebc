# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libzfs_core driver: OpenZFS's Python binding (Debian ``python3-pyzfs``).

Used for what it does well (create, clone, atomic snapshots, snapshot
destroy, rollback, holds, promote, existence); every call is checked with
``is_supported()`` first.  Names go in as bytes.  The binding does not
mount, so callers mount through the CLI after create and clone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError

# exception class name -> error kind
_KINDS = {
    "DatasetNotFound": "not_found", "FilesystemNotFound": "not_found", "SnapshotNotFound": "not_found",
    "ParentNotFound": "not_found", "HoldNotFound": "not_found", "PoolNotFound": "pool_missing",
    "DatasetExists": "exists", "FilesystemExists": "exists", "SnapshotExists": "exists", "HoldExists": "exists",
    "DatasetBusy": "busy", "SnapshotIsCloned": "busy", "SnapshotIsHeld": "busy", "SnapshotNotLatest": "busy",
    "NameInvalid": "invalid_name", "SnapshotNameInvalid": "invalid_name", "FilesystemNameInvalid": "invalid_name",
    "NameTooLong": "invalid_name", "PropertyInvalid": "invalid_property", "PropertyNotSupported": "unsupported",
    "FeatureNotSupported": "unsupported", "DuplicateSnapshots": "invalid_name", "PoolsDiffer": "invalid_name",
    "NotClone": "refused", "ZFSInitializationFailed": "driver_unavailable", "ReadOnlyPool": "permission",
}


def _b(text):
    return text.encode("utf-8") if not isinstance(text, bytes) else text


def _s(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def load(import_module=importlib.import_module):
    """The binding module, or raise ZfsError(driver_unavailable)."""
    try:
        lzc = import_module("libzfs_core")
    except Exception as exc:  # pylint: disable=broad-except
        raise ZfsError("the libzfs_core driver is unavailable (install python3-pyzfs on an OpenZFS host): %s"
                       % exc, "driver_unavailable")
    if not hasattr(lzc, "is_supported") or not hasattr(lzc, "lzc_create"):
        raise ZfsError("the installed libzfs_core is not OpenZFS's pyzfs (the PyPI 'pyzfs' 0.2.3 is abandoned)",
                       "driver_unavailable")
    return lzc


class LzcDriver:
    name = "libzfs_core"

    def __init__(self, module):
        self.lzc = module
        self.calls = 0

    def supports(self, func):
        try:
            return bool(self.lzc.is_supported(getattr(self.lzc, func)))
        except Exception:  # pylint: disable=broad-except
            return False

    def _call(self, func, what, *args, **kwargs):
        if not self.supports(func):
            raise ZfsError("%s is not supported by this libzfs_core" % func, "unsupported")
        self.calls += 1
        try:
            return getattr(self.lzc, func)(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._translate(exc, what)

    def _translate(self, exc, what):
        kind = _KINDS.get(type(exc).__name__, "failed")
        details = []
        for sub in getattr(exc, "errors", None) or []:  # batch failures list each error
            details.append("%s: %s" % (_s(getattr(sub, "name", "") or ""), getattr(sub, "message", sub)))
            kind = _KINDS.get(type(sub).__name__, kind)
        name = getattr(exc, "name", None)
        message = "%s failed: %s" % (what, getattr(exc, "message", None) or exc)
        if name:
            message += " (%s)" % _s(name)
        if details:
            message += ": " + "; ".join(details)
        suppressed = getattr(exc, "suppressed_count", 0)
        if suppressed:
            message += " (and %d more)" % suppressed
        return ZfsError(message, kind, _s(name) if name else None)

    @staticmethod
    def _props(props):
        out = {}
        for key, value in (props or {}).items():
            out[_b(key)] = int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) \
                else _b(value)
        return out

    def exists(self, name):
        return bool(self._call("lzc_exists", "exists %s" % name, _b(name)))

    def create(self, name, props=None, volume=False):
        self._call("lzc_create", "create %s" % name, _b(name), ds_type="zvol" if volume else "zfs",
                   props=self._props(props))

    def clone(self, origin, name, props=None):
        self._call("lzc_clone", "clone %s" % name, _b(name), _b(origin), props=self._props(props))

    def promote(self, name):
        self._call("lzc_promote", "promote %s" % name, _b(name))

    def snapshot(self, names, props=None):
        """All ``names`` in one transaction: atomic across datasets of one pool."""
        self._call("lzc_snapshot", "snapshot %s" % ", ".join(names), [_b(n) for n in names],
                   props=self._props(props))

    def destroy_snapshots(self, names, defer=False):
        self._call("lzc_destroy_snaps", "destroy %s" % ", ".join(names), [_b(n) for n in names], defer)

    def rollback_to(self, dataset, snapshot):
        self._call("lzc_rollback_to", "rollback %s" % snapshot, _b(dataset), _b(snapshot))

    def hold(self, tag, snapshots):
        missing = self._call("lzc_hold", "hold %s" % tag, dict((_b(s), _b(tag)) for s in snapshots))
        if missing:
            raise ZfsError("hold %s failed: snapshots not found: %s" % (tag, ", ".join(_s(m) for m in missing)),
                           "not_found")

    def release(self, tag, snapshots):
        self._call("lzc_release", "release %s" % tag, dict((_b(s), [_b(tag)]) for s in snapshots))

    def holds(self, snapshot):
        return sorted(_s(t) for t in self._call("lzc_get_holds", "holds of %s" % snapshot, _b(snapshot)))
