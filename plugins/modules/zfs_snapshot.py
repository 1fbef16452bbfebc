#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: zfs_snapshot
short_description: Create, destroy, roll back, hold and prune ZFS snapshots
version_added: 0.1.0
description:
  - Snapshots are named C(dataset@snapname), as in C(zfs).
  - Several snapshots in one task are created atomically (one transaction; libzfs_core or OpenZFS's multi-name
    C(zfs snapshot)); O(recursive=true) snapshots a dataset and all its descendants. No ZFS takes two snapshots
    of one dataset in one transaction, and zfs-fuse takes only one snapshot per command; such tasks are refused.
  - Holds protect snapshots from destruction (O(hold), O(release)).
  - Rolling back goes only to the newest snapshot unless O(force=true); with force, the newer snapshots and
    their clones (and what depends on those) are destroyed. They are listed in the result and in the diff, in
    check mode too.
  - Every refusal (names, guard rails, missing datasets, holds, clones, what this zfs cannot do) comes before the
    first change, and check mode makes the same refusals as a real run.
  - Retention (sanoid-like) keeps the newest snapshot of each of the newest N hours, days, weeks, months and
    years, and/or the newest O(keep_last), among the snapshots whose names start with O(prefix). It never
    prunes held snapshots, snapshots with clones, Proxmox VE's own snapshots or snapshots outside the prefix.
author:
  - lxcri maintainers (@lxcri)
options:
  name:
    description:
      - Snapshots (C(pool/fs@snap)), one or a list.
      - Or datasets (C(pool/fs)), with O(prefix) - then the module names a new snapshot
        C(<prefix><UTC date>_<UTC time>) for each, and retention applies to them.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) creates missing snapshots, then applies O(hold), O(release) and retention.
      - V(absent) destroys the snapshots.
      - V(rollback) rolls the dataset back to the one snapshot given.
    type: str
    choices: [present, absent, rollback]
    default: present
  recursive:
    description: Snapshot, or destroy, the same name on all descendants too (C(-r)).
    type: bool
    default: false
  properties:
    description: User properties (C(module:property)) for new snapshots.
    type: dict
    default: {}
  hold:
    description: Put a hold with this tag on the snapshots.
    type: str
  release:
    description: Release the hold with this tag from the snapshots.
    type: str
  force:
    description:
      - With O(state=rollback), roll back past newer snapshots, destroying them and their clones.
      - With O(state=absent), destroy clones of the snapshots too.
    type: bool
    default: false
  keep_newer:
    description:
      - With O(state=rollback) and a snapshot that is not the newest, roll the dataset's files back to it and keep the
        newer snapshots - the files are copied back (C(cp -a)) from a temporary read-only clone of it,
        C(<dataset>.lxcri-copy), which must be within O(allowed_roots) and is destroyed afterwards. The dataset must
        be mounted, and nothing should write to it meanwhile. Not atomic - snapshot it first to undo it.
      - Without it (and without O(force)) such a rollback is refused; O(force) wins over it.
    type: bool
    default: false
  defer:
    description: With O(state=absent), mark held snapshots for destruction when their last hold is released.
    type: bool
    default: false
  prefix:
    description: Names the snapshots this module creates from dataset names, and scopes retention.
    type: str
  create:
    description: With dataset names, create a new snapshot (V(false) runs retention only).
    type: bool
    default: true
  retention:
    description: How many hourly, daily, weekly, monthly and yearly snapshots to keep (UTC periods).
    type: dict
    suboptions:
      hourly:
        description: Hours to keep one snapshot each.
        type: int
      daily:
        description: Days to keep one snapshot each.
        type: int
      weekly:
        description: ISO weeks to keep one snapshot each.
        type: int
      monthly:
        description: Months to keep one snapshot each.
        type: int
      yearly:
        description: Years to keep one snapshot each.
        type: int
  keep_last:
    description: Also keep this many newest snapshots.
    type: int
  max_age:
    description:
      - Prune snapshots older than this (V(36h), V(14d), V(8w), V(1y), or seconds), even if a class would keep them.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lxcri.proxmox.zfs
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Snapshot order for rollback is the order C(zfs) lists them in (creation order); ages come from the C(creation)
    property.
  - zfs-fuse cannot list hold tags; the module then tries and treats "tag already exists" / "no such tag" as done.
"""

EXAMPLES = r"""
- name: One atomic snapshot of two datasets
  lxcri.proxmox.zfs_snapshot:
    name:
      - rpool/data/app@before-upgrade
      - rpool/data/db@before-upgrade
    hold: upgrade

- name: Hourly job - snapshot and prune
  lxcri.proxmox.zfs_snapshot:
    name: [rpool/data/app]
    prefix: "auto_"
    retention: {hourly: 24, daily: 7, weekly: 4, monthly: 6, yearly: 1}

- name: Roll back to the newest snapshot
  lxcri.proxmox.zfs_snapshot:
    name: [rpool/data/app@before-upgrade]
    state: rollback

- name: Roll the files back to an older snapshot, keeping the newer ones (hourly, say)
  lxcri.proxmox.zfs_snapshot:
    name: [rpool/apps/web/data@before-upgrade]
    state: rollback
    keep_newer: true
    allowed_roots: [rpool/apps]

- name: Release and remove
  lxcri.proxmox.zfs_snapshot:
    name: [rpool/data/app@before-upgrade, rpool/data/db@before-upgrade]
    state: absent
"""

RETURN = r"""
driver:
  description: The write driver in use, C(libzfs_core) or C(cli).
  returned: always
  type: str
  sample: cli
driver_operations:
  description: Every write this run did (or would do, in check mode nothing is listed), with the driver that did it.
  returned: always
  type: list
  elements: dict
  sample: [{"op": "create", "target": "rpool/data/app", "driver": "libzfs_core"}]
zfs_processes:
  description: How many zfs/zpool processes this run started.
  returned: always
  type: int
  sample: 2
snapshots:
  description: The snapshots the task is about (generated names included).
  returned: always
  type: list
  elements: str
  sample: ["rpool/data/app@auto_2026-11-22_07.00.00"]
created:
  description: Snapshots created (or to be created).
  returned: when state is present
  type: list
  elements: str
  sample: ["rpool/data/app@before-upgrade"]
held:
  description: Snapshots that got the hold.
  returned: when state is present
  type: list
  elements: str
  sample: []
released:
  description: Snapshots whose hold was released.
  returned: when state is present
  type: list
  elements: str
  sample: []
pruned:
  description: Snapshots pruned (or to be pruned) by retention.
  returned: when state is present
  type: list
  elements: str
  sample: ["rpool/data/app@auto_2026-10-01_07.00.00"]
retention:
  description: Per dataset, the snapshots kept, pruned and skipped (with the reason).
  returned: when state is present
  type: dict
  sample: {"rpool/data/app": {"keep": [], "prune": [], "skipped": {"rpool/data/app@__base__": "reserved by Proxmox VE"}}}
destroyed:
  description:
    - Snapshots destroyed, or to be destroyed in check mode. With O(state=absent) the named ones, and with
      O(recursive=true) the same name on each descendant. With O(state=rollback) the snapshots newer than the
      target (what C(zfs rollback -r) destroys).
  returned: when state is absent or rollback
  type: list
  elements: str
  sample: ["rpool/data/app@after-upgrade"]
destroyed_clones:
  description:
    - Datasets a forced destroy or rollback destroys with those snapshots (C(-R)), or would destroy in check mode.
      This is their clones, every dataset below those clones, and clones of those in turn. Each goes with its own
      snapshots, and the diff lists those too.
  returned: when state is absent or rollback
  type: list
  elements: str
  sample: ["rpool/data/app-test"]
clones:
  description: With O(state=absent), the clones of each destroyed snapshot (by snapshot).
  returned: when state is absent
  type: dict
  sample: {"rpool/data/app@before-upgrade": ["rpool/data/app-test"]}
rolled_back_to:
  description: The snapshot rolled back to.
  returned: when state is rollback
  type: str
  sample: rpool/data/app@before-upgrade
kept_newer:
  description: With O(keep_newer), the newer snapshots kept while the files were copied back.
  returned: when state is rollback with keep_newer past newer snapshots
  type: list
  elements: str
  sample: ["rpool/data/app@daily-2026-12-01"]
copied_back:
  description: Whether the files were copied back from a temporary clone (O(keep_newer)) instead of C(zfs rollback).
  returned: when state is rollback with keep_newer past newer snapshots
  type: bool
  sample: true
written_since:
  description: Bytes written to the dataset since the target snapshot, where this zfs reports it.
  returned: when state is rollback
  type: int
  sample: 4096
error_kind:
  description: When the module fails, what kind of ZFS error it was, for example V(busy) (a held snapshot),
    V(refused) (a rollback past newer snapshots), V(invalid_name) or V(unsupported).
  returned: failed
  type: str
  sample: busy
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.snapshot import SnapshotManager, snapshot_argument_spec


def main():
    module = AnsibleModule(argument_spec=snapshot_argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    if params["retention"]:
        params["retention"] = dict((k, v) for k, v in params["retention"].items() if v is not None)
    try:
        zfs = Zfs(module_runner(module), params["driver"])
        result = SnapshotManager(zfs, params, check_mode=module.check_mode).run()
    except LxcriError as exc:
        fail_module(module, exc)
    # warnings go through module.warn: a 'warnings' key in exit_json is deprecated (ansible-core 2.19)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
