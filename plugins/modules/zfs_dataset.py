#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: zfs_dataset
short_description: Manage ZFS filesystems and volumes safely next to Proxmox VE
version_added: 0.1.0
description:
  - Creates, clones, promotes, updates and destroys ZFS filesystems and volumes on the node.
  - Properties are compared the way ZFS means them. V(1G) equals 1073741824 bytes, V(none) equals 0 for
    quotas and reservations, V(true)/V(on) and V(false)/V(off) are the same, V(encryption=on) is satisfied by
    whichever cipher was chosen, and an inherited value that already equals the desired one is left alone.
  - Creation-only properties (C(encryption), C(volblocksize), C(casesensitivity), C(normalization),
    C(utf8only)) and read-only ones are never re-set; a difference is reported in RV(creation_only_mismatch)
    or RV(read_only_mismatch) and as a warning.
  - Destroying refuses when the dataset has children, snapshots, clones or held snapshots unless
    O(recursive=true), and refuses clones outside the dataset's own tree unless O(force=true). It names the
    dependents, in check mode too. It never destroys pool roots or (by default) what Proxmox VE owns.
author:
  - lxcri maintainers (@lxcri)
options:
  name:
    description: The dataset, for example C(rpool/data/app).
    type: str
    required: true
  state:
    description: Whether the dataset should exist.
    type: str
    choices: [present, absent]
    default: present
  properties:
    description:
      - Properties to have, as a dict. Give C(volsize) (and optionally C(volblocksize)) to create a volume.
      - C(mountpoint) is managed like any other property.
    type: dict
    default: {}
  inherit:
    description: Properties to return to their inherited value (C(zfs inherit)).
    type: list
    elements: str
    default: []
  origin:
    description: Create the dataset as a clone of this snapshot (C(pool/fs@snap)).
    type: str
  promote:
    description: Promote the dataset if it is a clone (C(zfs promote)).
    type: bool
    default: false
  sparse:
    description: Create a volume without a reservation (C(zfs create -s)).
    type: bool
    default: false
  recursive:
    description: With O(state=absent), also destroy children, snapshots and clones inside the dataset.
    type: bool
    default: false
  force:
    description: With O(state=absent), also destroy clones elsewhere that depend on the dataset's snapshots.
    type: bool
    default: false
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
  - Runs on the node; needs the C(zfs) command, and optionally C(python3-pyzfs) for the libzfs_core driver.
"""

EXAMPLES = r"""
- name: A dataset for application data
  lxcri.proxmox.zfs_dataset:
    name: rpool/data/apps
    properties:
      compression: lz4
      quota: 20G
      atime: false
      "com.example:owner": ops

- name: A sparse 10 GiB volume
  lxcri.proxmox.zfs_dataset:
    name: rpool/data/scratch-vol
    properties:
      volsize: 10G
      volblocksize: 16K
    sparse: true

- name: A clone of a template snapshot, promoted
  lxcri.proxmox.zfs_dataset:
    name: rpool/data/app-copy
    origin: rpool/data/apps@golden
    promote: true

- name: Return the quota to its inherited value
  lxcri.proxmox.zfs_dataset:
    name: rpool/data/apps
    inherit: [quota]

- name: Remove a dataset with its snapshots, but never clones elsewhere
  lxcri.proxmox.zfs_dataset:
    name: rpool/data/old
    state: absent
    recursive: true
    allowed_roots: [rpool/data]
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
name:
  description: The dataset.
  returned: always
  type: str
  sample: rpool/data/apps
created:
  description: Whether the dataset was (or would be) created.
  returned: when state is present
  type: bool
  sample: false
set:
  description: Properties set (or to be set), as C(zfs set) values.
  returned: when state is present
  type: dict
  sample: {"quota": "20G"}
inherited:
  description: Properties returned to their inherited value.
  returned: when state is present
  type: list
  elements: str
  sample: ["quota"]
promoted:
  description: Whether the clone was promoted.
  returned: when state is present
  type: bool
  sample: false
creation_only_mismatch:
  description: Creation-only properties (and C(origin)) that differ; never changed.
  returned: when state is present
  type: dict
  sample: {"casesensitivity": {"desired": "insensitive", "current": "sensitive"}}
read_only_mismatch:
  description: Read-only properties that differ from what was given; never changed.
  returned: when state is present
  type: dict
  sample: {}
destroyed:
  description: What was (or would be) destroyed, dependents included.
  returned: when state is absent
  type: list
  elements: str
  sample: ["rpool/data/old", "rpool/data/old@daily-2026-11-20"]
dependents:
  description: The dataset's dependents, by kind (children, snapshots, clones, clones_elsewhere, holds).
  returned: when state is absent and the dataset existed
  type: dict
  sample: {"children": [], "snapshots": ["rpool/data/old@s1"], "clones": [], "clones_elsewhere": [], "holds": []}
error_kind:
  description: When the module fails, what kind of ZFS error it was, for example V(exists), V(busy), V(refused)
    (a destroy with dependents), V(invalid_property) or V(driver_unavailable).
  returned: failed
  type: str
  sample: refused
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.dataset import DatasetManager, dataset_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs


def main():
    module = AnsibleModule(argument_spec=dataset_argument_spec(), supports_check_mode=True)
    try:
        zfs = Zfs(module_runner(module), module.params["driver"])
        result = DatasetManager(zfs, module.params, check_mode=module.check_mode).run()
    except LxcriError as exc:
        fail_module(module, exc, name=module.params["name"])
    for kind in ("creation_only_mismatch", "read_only_mismatch"):
        for prop, values in sorted((result.get(kind) or {}).items()):
            module.warn("%s: %s is %r, not %r, and cannot be changed on an existing dataset"
                        % (result["name"], prop, values["current"], values["desired"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
