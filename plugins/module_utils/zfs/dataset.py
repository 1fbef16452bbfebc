# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfs_dataset manager: present (create, clone, properties, promote) and absent (guarded destroy)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import props as zprops
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import (
    guard, pool_of, split_snapshot, validate_dataset, validate_snapshot, within)
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import zfs_argument_spec


def dataset_argument_spec():
    """A new dict of zfs_dataset's options (its DOCUMENTATION and the doc fragment lxcri.proxmox.zfs)."""
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        properties=dict(type="dict", default={}),
        inherit=dict(type="list", elements="str", default=[]),
        origin=dict(type="str"),
        promote=dict(type="bool", default=False),
        sparse=dict(type="bool", default=False),
        recursive=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    spec.update(zfs_argument_spec())
    return spec


# what a caller without Ansible leaves out (the driver is the facade's: Zfs(runner, driver))
DEFAULTS = defaults_of(dataset_argument_spec(), leave_out=("name", "driver"))


def _listing(names, limit=10):
    names = sorted(names)
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += " and %d more" % (len(names) - limit)
    return text


def dependents(data, origins, name):
    """What a destroy of ``name`` would take with it.

    ``data``: zfs get -r of ``name``; ``origins``: zfs get -r origin of the pool.
    """
    prefix = name + "/"
    children = sorted(n for n in data if n.startswith(prefix) and "@" not in n)
    snapshots = sorted(n for n in data
                       if "@" in n and (split_snapshot(n)[0] == name or split_snapshot(n)[0].startswith(prefix)))
    held = sorted(n for n in snapshots if data[n].get("userrefs", ("0",))[0] not in ("0", "-"))
    clones_inside, clones_outside = [], []
    for other, values in origins.items():
        origin = values.get("origin", ("-",))[0]
        if origin in ("-", "") or "@" not in origin:
            continue
        if within(origin, [name]):
            (clones_inside if within(other, [name]) else clones_outside).append(other)
    return {"children": children, "snapshots": snapshots, "holds": held,
            "clones": sorted(clones_inside), "clones_elsewhere": sorted(clones_outside)}


class DatasetManager:
    def __init__(self, zfs, params, check_mode=False):
        self.zfs = zfs
        self.params = with_defaults(params, DEFAULTS)
        self.check_mode = check_mode
        self.name = validate_dataset(self.params["name"])

    def run(self):
        params = self.params
        guard(self.name, params["allow_pve_managed"], params["allowed_roots"],
              "destroy" if params["state"] == "absent" else "manage")
        pool = pool_of(self.name)
        data = self.zfs.get_all([self.name], recursive=params["state"] == "absent")
        # only when the dataset is missing can the pool be: no zpool process on the common path
        if self.name not in data and not self.zfs.cli.pool_exists(pool):
            raise ZfsError("pool %s does not exist (zpool list shows no such pool)" % pool, "pool_missing")
        result = {"changed": False, "name": self.name, "driver_operations": self.zfs.operations}
        if params["state"] == "absent":
            result.update(self.absent(data, pool))
        else:
            result.update(self.present(data.get(self.name)))
        result["driver"] = self.zfs.lzc.name if self.zfs.lzc else "cli"
        result["zfs_processes"] = self.zfs.process_calls
        return result

    # -- present ------------------------------------------------------------------
    def present(self, current):
        params = self.params
        desired = dict((str(k).lower(), v) for k, v in (params["properties"] or {}).items())
        inherit = [p.lower() for p in params["inherit"] or []]
        volsize = desired.pop("volsize", None)
        out = {"created": False, "set": {}, "inherited": [], "creation_only_mismatch": {}, "read_only_mismatch": {},
               "promoted": False}
        if current is None:
            settable = dict((k, zprops.to_zfs(k, v)) for k, v in desired.items() if k not in zprops.READ_ONLY)
            bad = sorted(k for k in desired if k in zprops.READ_ONLY)
            if bad:
                raise ZfsError("cannot create %s with read-only properties: %s" % (self.name, ", ".join(bad)),
                               "invalid_property")
            if volsize is not None:
                volsize = zprops.parse_size(volsize, "volsize")
            if params["origin"]:
                validate_snapshot(params["origin"])
            if not self.check_mode:
                if params["origin"]:
                    if not self.zfs.get_all([params["origin"]], recursive=False, props="type"):
                        raise ZfsError("origin snapshot %s does not exist" % params["origin"], "not_found")
                    self.zfs.clone(params["origin"], self.name, settable)
                else:
                    self.zfs.create(self.name, settable, volsize=volsize, sparse=params["sparse"])
            out.update(created=True, set=settable, changed=True)
            out["diff"] = {"before": {"name": self.name, "state": "absent"},
                           "after": dict({"name": self.name, "state": "present"}, **settable)}
            return out
        if volsize is not None:
            desired["volsize"] = volsize
        plan = zprops.plan(desired, current, inherit)
        if params["origin"]:
            have = current.get("origin", ("-",))[0]
            if have != params["origin"]:
                out["creation_only_mismatch"]["origin"] = {"desired": params["origin"], "current": have}
        out["creation_only_mismatch"].update(plan["creation_only"])
        out["read_only_mismatch"] = plan["read_only"]
        if not self.check_mode:
            if plan["set"]:
                self.zfs.set(self.name, plan["set"])
            for prop in plan["inherit"]:
                self.zfs.inherit(self.name, prop)
        promote = params["promote"] and current.get("origin", ("-",))[0] not in ("-", "")
        if promote and not self.check_mode:
            self.zfs.promote(self.name)
        out.update(set=plan["set"], inherited=plan["inherit"], promoted=bool(promote))
        out["changed"] = bool(plan["set"] or plan["inherit"] or promote)
        keys = sorted(set(plan["set"]) | set(plan["inherit"]))
        before = dict((k, current.get(k, (None,))[0]) for k in keys)
        after = dict(before)
        after.update(plan["set"])
        for prop in plan["inherit"]:
            after[prop] = "(inherited)"
        if promote:
            before["origin"], after["origin"] = current["origin"][0], "-"
        out["diff"] = {"before": dict({"name": self.name}, **before), "after": dict({"name": self.name}, **after)}
        return out

    # -- absent -------------------------------------------------------------------
    def absent(self, data, pool):
        params = self.params
        if self.name not in data:
            return {"destroyed": [], "diff": {"before": {"name": self.name, "state": "absent"},
                                              "after": {"name": self.name, "state": "absent"}}}
        origins = self.zfs.get_all([pool], recursive=True, props="origin")
        deps = dependents(data, origins, self.name)
        inside = deps["children"] + deps["snapshots"] + deps["clones"]
        if (inside or deps["holds"]) and not params["recursive"]:
            parts = []
            for key in ("children", "snapshots", "clones", "holds"):
                if deps[key]:
                    parts.append("%s: %s" % (key, _listing(deps[key])))
            raise ZfsError("refusing to destroy %s: it has dependents (%s); set recursive: true to destroy them too"
                           % (self.name, "; ".join(parts)), "refused", self.name)
        if deps["clones_elsewhere"] and not params["force"]:
            raise ZfsError("refusing to destroy %s: clones outside it depend on its snapshots (%s); set force: true "
                           "to destroy those clones as well" % (self.name, _listing(deps["clones_elsewhere"])),
                           "refused", self.name)
        if deps["holds"]:
            raise ZfsError("cannot destroy %s: snapshots are held (%s); release the holds first"
                           % (self.name, _listing(deps["holds"])), "busy", self.name)
        destroyed = [self.name] + inside + deps["clones_elsewhere"]
        if not self.check_mode:
            self.zfs.cli.settle_unmount(deps["clones_elsewhere"] + deps["clones"]
                                        + sorted(deps["children"], reverse=True) + [self.name])
            self.zfs.destroy(self.name, recursive=bool(inside), dependents=bool(deps["clones_elsewhere"]))
        return {"changed": True, "destroyed": sorted(set(destroyed)), "dependents": deps,
                "diff": {"before": {"name": self.name, "state": "present", "destroys": sorted(set(destroyed))},
                         "after": {"name": self.name, "state": "absent"}}}
