# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfs_snapshot manager: create (atomically), destroy, roll back, hold, release, retention."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import retention as zret
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.dataset import _listing
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import (
    guard, pool_of, split_snapshot, validate_dataset, validate_snapshot)

DEFAULTS = {"state": "present", "recursive": False, "properties": {}, "hold": None, "release": None,
            "force": False, "defer": False, "prefix": None, "retention": None, "keep_last": None,
            "max_age": None, "create": True, "allow_pve_managed": False, "allowed_roots": []}


class SnapshotManager:
    def __init__(self, zfs, params, check_mode=False, clock=time.time):
        self.zfs = zfs
        self.params = dict(DEFAULTS)
        self.params.update(dict((k, v) for k, v in params.items() if v is not None))
        self.check_mode = check_mode
        self.now = clock()
        names = self.params["name"]
        self.names = [names] if isinstance(names, str) else list(names)
        if not self.names:
            raise ZfsError("name: give at least one snapshot (dataset@snap) or dataset", "invalid_name")
        self.origins = None

    # -- helpers ----------------------------------------------------------------
    def _origins(self, pool):
        if self.origins is None:
            self.origins = self.zfs.get_all([pool], recursive=True, props="origin")
        return self.origins

    def clones_of(self, snapshots, pool):
        found = {}
        for name, values in self._origins(pool).items():
            origin = values.get("origin", ("-",))[0]
            if origin in snapshots:
                found.setdefault(origin, []).append(name)
        return found

    @staticmethod
    def snapshots_of(data, dataset):
        """Snapshots of one dataset, in the order zfs lists them (creation order)."""
        return [n for n in data if "@" in n and split_snapshot(n)[0] == dataset]

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
        before = dict((d, self.snapshots_of(data, d)) for d in involved)
        if params["state"] == "present":
            result.update(self.present(targets, data, datasets))
        elif params["state"] == "absent":
            result.update(self.absent(targets, data, pools[0]))
        else:
            result.update(self.rollback(targets, data, pools[0]))
        after = dict((d, sorted(set(before[d]) | set(t for t in result.get("created", []) if t.startswith(d + "@"))
                                - set(result.get("destroyed", [])) - set(result.get("pruned", []))))
                     for d in involved)
        result["diff"] = {"before": {"snapshots": dict((d, sorted(v)) for d, v in before.items())},
                          "after": {"snapshots": after}}
        result["driver"] = self.zfs.lzc.name if self.zfs.lzc else "cli"
        result["zfs_processes"] = self.zfs.process_calls
        return result

    # -- present ---------------------------------------------------------------------
    def present(self, targets, data, datasets):
        params = self.params
        out = {"created": [], "held": [], "released": [], "pruned": [], "retention": {}, "warnings": []}
        user_props = dict((k, str(v)) for k, v in (params["properties"] or {}).items())
        for key in user_props:
            if ":" not in key:
                raise ZfsError("snapshot properties must be user properties (module:property), not %s" % key,
                               "invalid_property")
        create = [t for t in targets if t not in data] if (params["create"] or not datasets) else []
        if create:
            if not self.check_mode:
                self.zfs.snapshot(create, recursive=params["recursive"], props=user_props)
            out["created"] = create
        existing = [t for t in targets if t in data or (t in create and not self.check_mode)]
        if params["hold"]:
            out["held"] = self._hold(params["hold"], existing, data, create, out["warnings"])
        if params["release"]:
            out["released"] = self._release(params["release"], [t for t in targets if t in data], data)
        if datasets and (params["retention"] or params["keep_last"] is not None or params["max_age"] is not None):
            zret.validate_policy(params["retention"], params["keep_last"], params["max_age"])
            pruned, report = self._retention(datasets, data, create)
            out["pruned"], out["retention"] = pruned, report
        out["changed"] = bool(out["created"] or out["held"] or out["released"] or out["pruned"])
        return out

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

    def _retention(self, datasets, data, created):
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
                if name in data and data[name].get("userrefs", ("0",))[0] not in ("0", "-"):
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
        existing = [t for t in targets if t in data]
        out = {"destroyed": [], "clones": {}}
        if not existing:
            return out
        held = [t for t in existing if data[t].get("userrefs", ("0",))[0] not in ("0", "-")]
        clones = self.clones_of(set(existing), pool)
        if clones and not params["force"]:
            raise ZfsError("refusing to destroy %s: clones depend on them (%s); set force: true to destroy the clones "
                           "too" % (_listing(existing), _listing(sum(clones.values(), []))), "refused")
        if held and not params["defer"]:
            raise ZfsError("cannot destroy held snapshots (%s): release them first, or set defer: true to destroy "
                           "them when the last hold is released" % _listing(held), "busy")
        if not self.check_mode:
            self.zfs.cli.settle_unmount(sorted(sum(clones.values(), [])))
            if clones or params["recursive"]:
                for snap in existing:
                    self.zfs.cli.destroy(snap, recursive=params["recursive"], dependents=bool(clones.get(snap)),
                                         defer=params["defer"])
            else:
                self.zfs.destroy_snapshots(existing, defer=params["defer"])
        out.update(changed=True, destroyed=sorted(existing), clones=clones)
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
        clones = self.clones_of(set(newer), pool) if newer else {}
        clone_names = sorted(sum(clones.values(), []))
        if newer and not self.params["force"]:
            raise ZfsError("refusing to roll %s back to %s: it is not the newest snapshot (newer: %s%s); set force: "
                           "true to destroy them" % (dataset, target, _listing(newer),
                                                     "; their clones: %s" % _listing(clone_names) if clone_names
                                                     else ""), "refused", target)
        written = data[dataset].get("written", ("-",))[0]
        changed = bool(newer) or written not in ("0",)
        if changed and not self.check_mode:
            self.zfs.cli.settle_unmount(clone_names)
            self.zfs.rollback(target, destroy_newer=bool(newer))
        return {"changed": changed, "rolled_back_to": target, "destroyed": newer, "destroyed_clones": clone_names,
                "written_since": int(written) if written.isdigit() else None}
