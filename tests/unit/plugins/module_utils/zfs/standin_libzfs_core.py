"""A stand-in for OpenZFS's ``libzfs_core`` Python binding (contrib/pyzfs), for contract tests.

It has the real binding's function names and signatures, its exception
classes (names, errno, ``name``, ``errors`` and ``suppressed_count`` of batch
failures), requires bytes names as the binding does, and keeps just enough
state to behave like a pool.  It is written from the binding's documented
interface; no code of the binding is copied.
"""

import errno
import types


class ZFSError(Exception):
    errno = None
    message = None
    name = None

    def __str__(self):
        return "[Errno %s] %s: %r" % (self.errno, self.message, self.name)


class _NamedError(ZFSError):
    def __init__(self, name):
        ZFSError.__init__(self, name)
        self.name = name


class MultipleOperationsFailure(ZFSError):
    def __init__(self, errors, suppressed_count):
        ZFSError.__init__(self, errors)
        self.errno = errors[0].errno
        self.errors = errors
        self.suppressed_count = suppressed_count


class DatasetNotFound(_NamedError):
    errno, message = errno.ENOENT, "Dataset not found"


class DatasetExists(_NamedError):
    errno, message = errno.EEXIST, "Dataset already exists"


class FilesystemExists(DatasetExists):
    message = "Filesystem already exists"


class FilesystemNotFound(DatasetNotFound):
    message = "Filesystem not found"


class ParentNotFound(_NamedError):
    errno, message = errno.ENOENT, "Parent not found"


class SnapshotExists(DatasetExists):
    message = "Snapshot already exists"


class SnapshotNotFound(DatasetNotFound):
    message = "Snapshot not found"


class SnapshotIsHeld(_NamedError):
    errno, message = errno.EBUSY, "Snapshot is held"


class HoldExists(_NamedError):
    errno, message = errno.EEXIST, "Hold with a given tag already exists on snapshot"


class NotClone(_NamedError):
    errno, message = errno.EINVAL, "Filesystem is not a clone, can not promote"


class SnapshotFailure(MultipleOperationsFailure):
    message = "Creation of snapshot(s) failed for one or more reasons"


class SnapshotDestructionFailure(MultipleOperationsFailure):
    message = "Destruction of snapshot(s) failed for one or more reasons"


class HoldFailure(MultipleOperationsFailure):
    message = "Placement of hold(s) failed for one or more reasons"


def make(unsupported=()):
    """A fresh module object with its own state; ``unsupported`` names functions is_supported() denies."""
    mod = types.ModuleType("libzfs_core")
    state = {"datasets": {b"pool": {"origin": None}}, "snapshots": {}, "holds": {}, "calls": []}
    mod.state = state

    def need_bytes(*names):
        for name in names:
            if not isinstance(name, bytes):
                raise TypeError("libzfs_core takes bytes names, got %r" % (name,))

    def lzc_create(name, ds_type="zfs", props=None, key=None):
        need_bytes(name)
        state["calls"].append(("lzc_create", name, ds_type, props))
        if name in state["datasets"]:
            raise FilesystemExists(name)
        if name.rsplit(b"/", 1)[0] not in state["datasets"]:
            raise ParentNotFound(name)
        state["datasets"][name] = {"origin": None, "props": props or {}}

    def lzc_clone(name, origin, props=None):
        need_bytes(name, origin)
        state["calls"].append(("lzc_clone", name, origin))
        if origin not in state["snapshots"]:
            raise SnapshotNotFound(origin)
        state["datasets"][name] = {"origin": origin, "props": props or {}}

    def lzc_snapshot(snaps, props=None):
        need_bytes(*snaps)
        state["calls"].append(("lzc_snapshot", list(snaps), props))
        errors = [SnapshotExists(s) for s in snaps if s in state["snapshots"]]
        errors += [FilesystemNotFound(s) for s in snaps if s.split(b"@")[0] not in state["datasets"]]
        if errors:
            raise SnapshotFailure(errors, 0)
        for snap in snaps:  # all or nothing: one transaction
            state["snapshots"][snap] = {"props": props or {}}

    def lzc_destroy_snaps(snaps, defer):
        need_bytes(*snaps)
        state["calls"].append(("lzc_destroy_snaps", list(snaps), defer))
        held = [SnapshotIsHeld(s) for s in snaps if state["holds"].get(s)]
        if held and not defer:
            raise SnapshotDestructionFailure(held, 0)
        for snap in snaps:
            state["snapshots"].pop(snap, None)

    def lzc_rollback_to(name, snap):
        need_bytes(name, snap)
        state["calls"].append(("lzc_rollback_to", name, snap))
        if snap not in state["snapshots"]:
            raise SnapshotNotFound(snap)

    def lzc_hold(holds, fd=None):
        for snap, tag in holds.items():
            need_bytes(snap, tag)
        state["calls"].append(("lzc_hold", dict(holds)))
        missing = [s for s in holds if s not in state["snapshots"]]
        errors = [HoldExists(s) for s, t in holds.items() if t in state["holds"].get(s, {})]
        if errors:
            raise HoldFailure(errors, 0)
        for snap, tag in holds.items():
            if snap in state["snapshots"]:
                state["holds"].setdefault(snap, {})[tag] = 1795331786
        return missing

    def lzc_release(holds):
        state["calls"].append(("lzc_release", dict(holds)))
        for snap, tags in holds.items():
            need_bytes(snap, *tags)
            for tag in tags:
                state["holds"].get(snap, {}).pop(tag, None)
        return []

    def lzc_get_holds(snapname):
        need_bytes(snapname)
        return dict(state["holds"].get(snapname, {}))

    def lzc_promote(name):
        need_bytes(name)
        state["calls"].append(("lzc_promote", name))
        if not state["datasets"].get(name, {}).get("origin"):
            raise NotClone(name)

    def lzc_exists(name):
        need_bytes(name)
        return name in state["datasets"] or name in state["snapshots"]

    def is_supported(func):
        return func.__name__ not in unsupported

    for func in (lzc_create, lzc_clone, lzc_snapshot, lzc_destroy_snaps, lzc_rollback_to, lzc_hold, lzc_release,
                 lzc_get_holds, lzc_promote, lzc_exists, is_supported):
        setattr(mod, func.__name__, func)
    return mod
