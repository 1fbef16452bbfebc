#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: zfs_info
short_description: Datasets, snapshots, properties and space use under a ZFS dataset, with parsed values
version_added: 0.1.0
description:
  - Reads a dataset and (by default) everything below it with a single C(zfs get -Hp) call, however many
    snapshots there are.
  - Values are parsed. Sizes and counts become integers (bytes), C(creation) an epoch, ratios such as
    C(1.50x) floats, and C(-) null. Sources are split into kind (C(local), C(default), C(inherited), C(none))
    and where a value is inherited from.
author:
  - lxcri maintainers (@lxcri)
options:
  name:
    description: The dataset to start from.
    type: str
    required: true
  recursive:
    description: Include descendants and snapshots.
    type: bool
    default: true
  properties:
    description: Properties to read; V(all) by default.
    type: list
    elements: str
    default: [all]
  types:
    description: Which kinds to return.
    type: list
    elements: str
    choices: [filesystem, volume, snapshot]
    default: [filesystem, volume, snapshot]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Everything under the containers' storage
  lxcri.proxmox.zfs_info:
    name: rpool/data
  register: zinfo

- name: Space used by snapshots of one dataset
  ansible.builtin.debug:
    msg: "{{ zinfo.datasets | selectattr('name', 'equalto', 'rpool/data/apps')
             | map(attribute='properties.usedbysnapshots.value') | first }}"

- name: Only snapshots, with their creation time and holds
  lxcri.proxmox.zfs_info:
    name: rpool/data/apps
    types: [snapshot]
    properties: [creation, userrefs, used]
"""

RETURN = r"""
datasets:
  description: Filesystems and volumes, sorted by name.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "rpool/data/apps", "type": "filesystem",
            "properties": {"quota": {"value": 21474836480, "source": {"kind": "local", "from": null}},
                           "compression": {"value": "lz4", "source": {"kind": "inherited", "from": "rpool"}}}}]
snapshots:
  description: Snapshots, sorted by name, with the same shape.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "rpool/data/apps@daily-2026-11-21", "type": "snapshot",
            "properties": {"creation": {"value": 1795331786, "source": {"kind": "none", "from": null}}}}]
zfs_processes:
  description: How many zfs processes the run started.
  returned: always
  type: int
  sample: 1
error_kind:
  description: When the module fails, what kind of ZFS error it was, for example V(not_found) or V(pool_missing).
  returned: failed
  type: str
  sample: not_found
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.info import collect


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            recursive=dict(type="bool", default=True),
            properties=dict(type="list", elements="str", default=["all"]),
            types=dict(type="list", elements="str", default=["filesystem", "volume", "snapshot"],
                       choices=["filesystem", "volume", "snapshot"]),
        ),
        supports_check_mode=True,
    )
    props = module.params["properties"]
    try:
        zfs = Zfs(module_runner(module), "cli")
        result = collect(zfs, module.params["name"], module.params["recursive"],
                         "all" if props == ["all"] else props, tuple(module.params["types"]))
    except LxcriError as exc:
        fail_module(module, exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
