# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfs_snapshot manager: create (atomically), destroy, roll back, hold, release, retention."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import retention as zret
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.dataset import _listing
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import zfs_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import (
    MAX_NAME, guard, pool_of, split_snapshot, validate_dataset, validate_snapshot)


def snapshot_argument_spec():
    """A new dict of zfs_snapshot's options (its DOCUMENTATION and the doc fragment lxcri.proxmox.zfs)."""
    spec = dict(
        name=dict(type="list", elements="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent", "rollback"]),
        recursive=dict(type="bool", default=False),
        properties=dict(type="dict", default={}),
        hold=dict(type="str"),
        release=dict(type="str"),
        force=dict(type="bool", default=False),
        keep_newer=dict(type="bool", default=False),
        defer=dict(type="bool", default=False),
        prefix=dict(type="str"),
        create=dict(type="bool", default=True),
        retention=dict(type="dict", options=dict((period, dict(type="int")) for period in zret.CLASSES)),
        keep_last=dict(type="int"),
        max_age=dict(type="str"),
    )
    spec.update(zfs_argument_spec())
    return spec


# what a caller without Ansible leaves out (the driver is the facade's: Zfs(runner, driver))
DEFAULTS = defaults_of(snapshot_argument_spec(), leave_out=("name", "driver"))
MAX_TAG = 255  # zfs hold answers "tag too long" from 256 characters on


def _held(values):
    return values.get("userrefs", ("0",))[0] not in ("0", "-")


class SnapshotManager:
    """Every refusal is raised before the first write, in check mode as in a real run."""

    def __init__(self, zfs, params, check_mode=False, clock=time.time):
        self.zfs = zfs
        self.params = with_defaults(params, DEFAULTS)
        self.check_mode = check_mode
        self.now = clock()
        names = self.params["name"]
        self.names = []
        for name in [names] if isinstance(names, str) else names:
            if name not in self.names:  # a name given twice means it once (zfs would refuse the repeat)
                self.names.append(name)
        if not self.names:
            raise ZfsError("name: give at least one snapshot (dataset@snap) or dataset", "invalid_name")
        self.pool_listing = None
        self.doomed_dependents = []  # what a forced destroy or rollback removes besides the snapshots: for the diff

    # -- helpers ----------------------------------------------------------------
    def _pool(self, pool):
        """origin and userrefs of everything in the pool, read once: clones and holds may be anywhere in it."""
        if self.pool_listing is None:
            self.pool_listing = self.zfs.get_all([pool], recursive=True, props="origin,userrefs")
        return self.pool_listing

    def clones_of(self, snapshots, pool):
        found = {}
        for name, values in self._pool(pool).items():
            origin = values.get("origin", ("-",))[0]
            if origin in snapshots:
                found.setdefault(origin, []).append(name)
        return found

    def dependents(self, snapshots, pool):
        """Everything ``zfs destroy -R`` / ``zfs rollback -R`` removes along with ``snapshots``: their clones,
        all below those clones (datasets and snapshots), and the clones of those snapshots in turn."""
        listing = self._pool(pool)
        by_origin = {}
        for name, values in listing.items():
            origin = values.get("origin", ("-",))[0]
            if origin not in ("-", ""):
                by_origin.setdefault(origin, []).append(name)
        found = set()
        queue = list(snapshots)
        while queue:
            for clone in by_origin.get(queue.pop(), []):
                for name in listing:
                    if name not in found and (name == clone or name.startswith(clone + "/")
                                              or name.startswith(clone + "@")):
                        found.add(name)
                        if "@" in name:
                            queue.append(name)
        return sorted(found)

    def _refuse_held_or_guarded(self, dependents, pool, what):
        """A held snapshot among ``dependents`` makes the -R operation fail; a guarded dataset must not go."""
        listing = self._pool(pool)
        held = [name for name in dependents if "@" in name and _held(listing.get(name, {}))]
        if held:
            raise ZfsError("cannot %s: it would destroy clones with held snapshots (%s); release those holds "
                           "first" % (what, _listing(held)), "busy")
        for name in dependents:
            try:
                guard(name, self.params["allow_pve_managed"], self.params["allowed_roots"], "destroy")
            except ZfsError as exc:
                raise ZfsError("%s (to %s it would be destroyed as a clone, or part of one)" % (exc, what),
                               "refused", name)

    @staticmethod
    def snapshots_of(data, dataset):
        """Snapshots of one dataset, in the order zfs lists them (creation order)."""
        return [n for n in data if "@" in n and split_snapshot(n)[0] == dataset]

    @staticmethod
    def descendants(data, dataset):
        return [n for n in data if "@" not in n and n.startswith(dataset + "/")]

    def family(self, target, data):
        """The snapshots an operation on ``target`` touches: with recursive, the same name on every descendant."""
        if not self.params["recursive"]:
            return [target]
        dataset, snap = split_snapshot(target)
        return [target] + ["%s@%s" % (d, snap) for d in self.descendants(data, dataset)]

    # -- run ------------------------------------------------------------------------
    def run(self):
        params = self.params
        explicit = [n for n in self.names if "@" in n]
        datasets = [n for n in self.names if "@" not in n]
        if explicit and datasets:
            raise ZfsError("name: give either snapshots (dataset@snap) or datasets (with prefix), not both",
                           "invalid_name")
        if datasets:
            if not params["prefix"]:
                raise ZfsError("name lists datasets: set prefix, which names the snapshots this module creates "
                               "and scopes retention", "invalid_name")
            for dataset in datasets:
                validate_dataset(dataset)
            targets = [dataset + "@" + zret.snapshot_name(params["prefix"], self.now) for dataset in datasets]
        else:
            targets = explicit
        for target in targets:
            validate_snapshot(target)
            guard(target, params["allow_pve_managed"], params["allowed_roots"],
                  "roll back" if params["state"] == "rollback" else "manage")
        pools = sorted(set(pool_of(t) for t in targets))
        if len(pools) > 1 and params["state"] == "present":
            raise ZfsError("snapshots in one task must be in one pool to be atomic (got %s)" % ", ".join(pools),
                           "invalid_name")
        involved = sorted(set(split_snapshot(t)[0] for t in targets))
        data = self.zfs.get_all(involved, recursive=True)
        missing_ds = [d for d in involved if d not in data]
        if missing_ds:
            for pool in sorted(set(pool_of(d) for d in missing_ds)):
                if not self.zfs.cli.pool_exists(pool):
                    raise ZfsError("pool %s does not exist" % pool, "pool_missing")
            raise ZfsError("dataset %s does not exist" % ", ".join(missing_ds), "not_found")
        result = {"changed": False, "snapshots": targets, "driver_operations": self.zfs.operations}
        shown = list(involved)
        if params["recursive"]:
            shown = sorted(set(shown + sum((self.descendants(data, d) for d in involved), [])))
        before = dict((d, self.snapshots_of(data, d)) for d in shown)
        if params["state"] == "present":
            result.update(self.present(targets, data, datasets))
        elif params["state"] == "absent":
            result.update(self.absent(targets, data, pools[0]))
        else:
            result.update(self.rollback(targets, data, pools[0]))
        result["diff"] = self._diff(before, result, data)
        result["driver"] = self.zfs.lzc.name if self.zfs.lzc else "cli"
        result["zfs_processes"] = self.zfs.process_calls
        return result

    def _diff(self, before, result, data):
        created = set(sum((self.family(t, data) for t in result.get("created", [])), []))
        gone = set(result.get("destroyed", [])) | set(result.get("pruned", []))
        after = dict((d, sorted((set(names) | set(c for c in created if split_snapshot(c)[0] == d)) - gone))
                     for d, names in before.items())
        diff = {"before": {"snapshots": dict((d, sorted(v)) for d, v in before.items())},
                "after": {"snapshots": after}}
        if self.doomed_dependents:
            diff["before"]["clones"] = list(self.doomed_dependents)
            diff["after"]["clones"] = []
        return diff

    # -- present ---------------------------------------------------------------------
    def present(self, targets, data, datasets):
        params = self.params
        user_props = dict((k, str(v)) for k, v in (params["properties"] or {}).items())
        for key in user_props:
            if ":" not in key:
                raise ZfsError("snapshot properties must be user properties (module:property), not %s" % key,
                               "invalid_property")
        if params["hold"] and len(params["hold"]) > MAX_TAG:
            raise ZfsError("hold: the tag is %d characters long; zfs takes at most %d"
                           % (len(params["hold"]), MAX_TAG), "invalid_property")
        retain = bool(datasets) and (bool(params["retention"]) or params["keep_last"] is not None
                                     or params["max_age"] is not None)
        if retain:
            zret.validate_policy(params["retention"], params["keep_last"], params["max_age"])
        create = [t for t in targets if t not in data] if (params["create"] or not datasets) else []
        if create:
            self._check_create(create, data)
        # no refusal below this line: the writes start
        out = {"created": [], "held": [], "released": [], "pruned": [], "retention": {}, "warnings": []}
        if create:
            if not self.check_mode:
                self.zfs.snapshot(create, recursive=params["recursive"], props=user_props)
            out["created"] = create
        existing = [t for t in targets if t in data or (t in create and not self.check_mode)]
        if params["hold"]:
            out["held"] = self._hold(params["hold"], existing, data, create, out["warnings"])
        if params["release"]:
            out["released"] = self._release(params["release"], [t for t in targets if t in data], data)
        if retain:
            pruned, report = self._retention(datasets, data, create, out["held"])
            out["pruned"], out["retention"] = pruned, report
        out["changed"] = bool(out["created"] or out["held"] or out["released"] or out["pruned"])
        return out

    def _check_create(self, create, data):
        """The refusals ``zfs snapshot`` would give, raised before anything is written."""
        self.zfs.check_snapshot(create, recursive=self.params["recursive"])
        names_by_dataset = {}
        for target in create:
            for snap in self.family(target, data):
                names_by_dataset.setdefault(split_snapshot(snap)[0], set()).add(snap)
        twice = sorted((d, sorted(n)) for d, n in names_by_dataset.items() if len(n) > 1)
        if twice:
            raise ZfsError("ZFS takes at most one snapshot of a dataset in one transaction, so these cannot be "
                           "created in one task: %s; give them in separate tasks"
                           % "; ".join("%s (%s)" % (d, ", ".join(n)) for d, n in twice), "unsupported")
        if self.params["recursive"]:
            present = sorted(s for t in create for s in self.family(t, data)[1:] if s in data)
            if present:
                raise ZfsError("cannot snapshot %s recursively: descendants already have a snapshot of that name "
                               "(%s), and zfs snapshot -r creates none when one exists"
                               % (_listing(create), _listing(present)), "exists")
        too_long = sorted(s for t in create for s in self.family(t, data) if len(s) > MAX_NAME)
        if too_long:
            raise ZfsError("snapshot names longer than %d characters: %s" % (MAX_NAME, _listing(too_long)),
                           "invalid_name")

    def _hold(self, tag, snapshots, data, created, warnings):
        if not snapshots and not created:
            return []
        if self.check_mode:
            unknown = [s for s in snapshots if s in data and data[s].get("userrefs", ("0",))[0] not in ("0", "-")]
            listed = self.zfs.holds([s for s in snapshots if s in data]) if snapshots else {}
            wanted = list(created)
            for snap in snapshots:
                if snap in created:
                    continue
                if listed is not None:
                    if tag not in listed.get(snap, []):
                        wanted.append(snap)
                elif snap in unknown:
                    warnings.append("%s already has holds that this zfs cannot list; hold %s may exist" % (snap, tag))
                else:
                    wanted.append(snap)
            return sorted(wanted)
        listed = self.zfs.holds(snapshots)
        wanted = [s for s in snapshots if listed is None or tag not in listed.get(s, [])]
        done = []
        for snap in wanted:
            try:
                self.zfs.hold(tag, [snap])
                done.append(snap)
            except ZfsError as exc:
                if exc.kind != "exists" and "tag already exists" not in str(exc):
                    raise
        return sorted(done)

    def _release(self, tag, snapshots, data):
        held = [s for s in snapshots if data[s].get("userrefs", ("0",))[0] not in ("0", "-")]
        if not held:
            return []
        listed = self.zfs.holds(held)
        if listed is not None:
            held = [s for s in held if tag in listed.get(s, [])]
            if not self.check_mode and held:
                self.zfs.release(tag, held)
            return sorted(held)
        done = []
        for snap in held:  # the zfs cannot list holds: try, and a missing tag means nothing to release
            if self.check_mode:
                done.append(snap)
                continue
            try:
                self.zfs.release(tag, [snap])
                done.append(snap)
            except ZfsError as exc:
                if "no such tag" not in str(exc) and exc.kind != "not_found":
                    raise
        return sorted(done)

    def _retention(self, datasets, data, created, held_now):
        params = self.params
        pool = pool_of(datasets[0])
        all_snaps = [n for n in data if "@" in n and split_snapshot(n)[0] in datasets]
        clones = self.clones_of(set(all_snaps), pool)
        report = {}
        prune_all = []
        for dataset in datasets:
            records = [(n, int(data[n].get("creation", ("0",))[0])) for n in self.snapshots_of(data, dataset)]
            records += [(c, int(self.now)) for c in created if split_snapshot(c)[0] == dataset and c not in data]
            protected = {}
            for name, dummy in records:
                if (name in data and _held(data[name])) or name in held_now:  # held now: destroy would fail
                    protected[name] = "held"
                if name in clones:
                    protected[name] = "has clones (%s)" % ", ".join(sorted(clones[name]))
            decision = zret.decide(records, params["prefix"], params["retention"], params["keep_last"],
                                   params["max_age"], self.now, protected)
            report[dataset] = decision
            prune_all.extend(decision["prune"])
        if prune_all and not self.check_mode:
            self.zfs.destroy_snapshots(sorted(prune_all))
        return sorted(prune_all), report

    # -- absent ------------------------------------------------------------------------
    def absent(self, targets, data, pool):
        params = self.params
        # with recursive, zfs destroy -r also takes the same name on every descendant
        families = dict((t, [s for s in self.family(t, data) if s in data]) for t in targets if t in data)
        out = {"destroyed": [], "destroyed_clones": [], "clones": {}}
        if not families:
            return out
        doomed = sorted(set(sum(families.values(), [])))
        held = [s for s in doomed if _held(data[s])]
        clones = self.clones_of(set(doomed), pool)
        dependents = self.dependents(doomed, pool) if clones else []
        dependent_datasets = [d for d in dependents if "@" not in d]
        if clones and not params["force"]:
            raise ZfsError("refusing to destroy %s: clones depend on them (%s); set force: true to destroy the clones "
                           "too" % (_listing(doomed), _listing(dependent_datasets)), "refused")
        if held and not params["defer"]:
            raise ZfsError("cannot destroy held snapshots (%s): release them first, or set defer: true to destroy "
                           "them when the last hold is released" % _listing(held), "busy")
        self._refuse_held_or_guarded(dependents, pool, "destroy %s" % _listing(doomed))
        self.doomed_dependents = dependents
        if not self.check_mode:
            self.zfs.cli.settle_unmount(sorted(dependent_datasets, reverse=True))
            if clones or params["recursive"]:
                for snap in sorted(families):
                    cloned = any(member in clones for member in families[snap])
                    self.zfs.cli.destroy(snap, recursive=params["recursive"], dependents=cloned,
                                         defer=params["defer"])
            else:
                self.zfs.destroy_snapshots(sorted(families), defer=params["defer"])
        out.update(changed=True, destroyed=doomed, destroyed_clones=dependent_datasets, clones=clones)
        return out

    # -- rollback -----------------------------------------------------------------------
    def rollback(self, targets, data, pool):
        if len(targets) != 1:
            raise ZfsError("rollback takes exactly one snapshot", "invalid_name")
        target = targets[0]
        if target not in data:
            raise ZfsError("snapshot %s does not exist" % target, "not_found", target)
        dataset = split_snapshot(target)[0]
        ordered = self.snapshots_of(data, dataset)
        newer = ordered[ordered.index(target) + 1:]
        # zfs rollback -R: the newer snapshots, their clones and all that depends on those
        if newer and self.params["keep_newer"] and not self.params["force"]:
            return self._copy_back(target, dataset, data, newer)
        dependents = self.dependents(newer, pool) if newer else []
        clone_names = [d for d in dependents if "@" not in d]
        if newer and not self.params["force"]:
            raise ZfsError("refusing to roll %s back to %s: it is not the newest snapshot (newer: %s%s); set force: "
                           "true to destroy them" % (dataset, target, _listing(newer),
                                                     "; their clones: %s" % _listing(clone_names) if clone_names
                                                     else ""), "refused", target)
        held = [s for s in newer if _held(data[s])]
        if held:
            raise ZfsError("cannot roll %s back to %s: newer snapshots it would destroy are held (%s); release "
                           "them first" % (dataset, target, _listing(held)), "busy", target)
        self._refuse_held_or_guarded(dependents, pool, "roll %s back to %s" % (dataset, target))
        self.doomed_dependents = dependents
        written = data[dataset].get("written", ("-",))[0]
        changed = bool(newer) or written not in ("0",)
        if changed and not self.check_mode:
            self.zfs.cli.settle_unmount(sorted(clone_names, reverse=True))
            self.zfs.rollback(target, destroy_newer=bool(newer))
        return {"changed": changed, "rolled_back_to": target, "destroyed": newer, "destroyed_clones": clone_names,
                "written_since": int(written) if written.isdigit() else None}

    def _copy_back(self, target, dataset, data, newer):
        """Roll ``dataset``'s content back to ``target`` and keep the newer snapshots (``keep_newer``): its files
        become the snapshot's, copied from a temporary read-only clone of it (``<dataset>.lxcri-copy``, mounted on
        a private directory and destroyed afterwards).  Not atomic: take a snapshot first to undo it."""
        clone = dataset + ".lxcri-copy"
        guard(clone, self.params["allow_pve_managed"], self.params["allowed_roots"],
              "make the copy-back rollback's temporary clone")
        if clone in self.zfs.get_all([clone], recursive=False, props="type"):
            raise ZfsError("cannot roll %s back to %s keeping the newer snapshots: %s exists (left by an interrupted "
                           "copy-back?); destroy it first" % (dataset, target, clone), "exists", target)
        children = self.descendants(data, dataset)
        if children:
            raise ZfsError("cannot roll %s back to %s keeping the newer snapshots: it has child datasets (%s), whose "
                           "mountpoints a copy-back of its files would cross" % (dataset, target, _listing(children)),
                           "refused", target)
        mountpoint = data[dataset].get("mountpoint", ("-",))[0]
        if data[dataset].get("mounted", ("yes",))[0] != "yes" or not mountpoint.startswith("/"):
            raise ZfsError("cannot roll %s back to %s keeping the newer snapshots: it is not mounted (its files are "
                           "copied back)" % (dataset, target), "refused", target)
        out = {"changed": True, "rolled_back_to": target, "destroyed": [], "destroyed_clones": [],
               "kept_newer": newer, "copied_back": True, "written_since": None}
        if self.check_mode:
            return out
        where = tempfile.mkdtemp(prefix="lxcri-copy-")
        try:
            self.zfs.clone(target, clone, {"mountpoint": where, "readonly": "on"})
            try:
                for entry in os.listdir(mountpoint):
                    path = os.path.join(mountpoint, entry)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                # -T: the clone's root onto the dataset's (its owner and mode too); -a keeps owners, modes, times,
                # links, xattrs
                rc, dummy, err = self.zfs.cli.runner(["cp", "-a", "-T", "--", where, mountpoint])
                if rc != 0:
                    raise ZfsError("copying %s back into %s failed: %s" % (target, mountpoint, err.strip()),
                                   "failed", target)
            finally:
                self.zfs.cli.settle_unmount([clone])
                self.zfs.destroy(clone)
        finally:
            try:
                os.rmdir(where)
            except OSError:
                pass
        return out
