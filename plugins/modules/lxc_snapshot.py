#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxc_snapshot
short_description: Snapshots of a Proxmox VE container, with retention and rollback
version_added: 0.1.0
description:
  - Creates, deletes and rolls back to snapshots of a Proxmox VE container over the API. On a ZFS storage a
    container snapshot is a ZFS snapshot of its volumes (and its config is kept with it).
  - The container is addressed as M(lxcri.proxmox.lxc_container) addresses it, by O(vmid) or by a O(hostname)
    that is unique in the cluster.
  - Every worker task is waited for; a failed one fails the module at once with the end of its log.
author:
  - lxcri maintainers (@lxcri)
options:
  vmid:
    description: The container's id.
    type: int
  hostname:
    description: The container's hostname, when O(vmid) is not given; it must be unique in the cluster.
    type: str
  node:
    description: The node; found from C(/cluster/resources) when omitted.
    type: str
  name:
    description:
      - The snapshot's name, as Proxmox VE accepts it (format C(pve-configid)) - a letter, then at least one letter,
        digit, C(_) or C(-); at most 40 characters. C(current) and C(vzdump) are reserved.
      - The module checks the name before it asks the API anything.
    type: str
    required: true
  description:
    description: The snapshot's description, when it is created.
    type: str
  state:
    description:
      - V(present) creates the snapshot unless it exists (a snapshot is never re-taken).
      - V(absent) deletes it if it exists.
      - V(rollback) returns the container to the snapshot. Proxmox VE stops a running container first (it stays
        stopped unless O(start=true)). On ZFS storage (C(zfspool)) only the newest snapshot can be rolled back to;
        the module refuses any other before any change, in check mode too, naming the newer snapshots. A rollback
        always reports C(changed); in check mode it reports what it would do.
      - In check mode, a container or snapshot that an earlier task of the same run would create (or delete) is
        seen as that task would leave it (see O(check_mode_plan)).
      - A rollback to a snapshot that does not exist fails, naming the snapshots the container has.
    type: str
    choices: [present, absent, rollback]
    default: present
  start:
    description:
      - With O(state=rollback), start the container after the rollback, in the rollback's own task (the API's
        C(start) parameter, Proxmox VE 7.3 and later; on older nodes with a separate start call).
      - Only with O(state=rollback).
    type: bool
    default: false
  keep:
    description:
      - With O(state=present) and O(prefix), keep only the newest O(keep) snapshots whose name starts with
        O(prefix) and delete the older ones. The snapshot O(name) always stays. Retention runs also when O(name)
        exists already, so a re-run prunes what an earlier run left.
    type: int
  prefix:
    description:
      - The name prefix of the snapshots that O(keep) applies to; it must not be empty. Other snapshots are never
        deleted.
    type: str
extends_documentation_fragment:
  - lxcri.proxmox.pve
  - lxcri.proxmox.check_mode_plan
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the snapshots and reports what would be created, deleted or rolled back; writes nothing.
  diff_mode:
    support: full
    details: The snapshot names before and after.
  platform:
    platforms: posix
seealso:
  - module: lxcri.proxmox.lxc_container
  - module: lxcri.proxmox.zfs_snapshot
"""

EXAMPLES = r"""
- name: Snapshot the container before an upgrade, keeping the last three such snapshots
  lxcri.proxmox.lxc_snapshot:
    hostname: web1
    name: "pre_{{ ansible_date_time.epoch }}"
    description: before the upgrade to 1.27
    prefix: pre_
    keep: 3

- name: Roll back to it and start the container again
  lxcri.proxmox.lxc_snapshot:
    vmid: 105
    name: pre_1767225600
    state: rollback
    start: true

- name: Delete a snapshot
  lxcri.proxmox.lxc_snapshot:
    vmid: 105
    name: pre_1767225600
    state: absent
"""

RETURN = r"""
vmid:
  description: The container's id.
  returned: success
  type: int
  sample: 105
node:
  description: The container's node.
  returned: success
  type: str
  sample: pve1
name:
  description: The snapshot's name.
  returned: success
  type: str
  sample: pre_1767225600
snapshots:
  description: The container's snapshots after the task, oldest first (in check mode, as they would be).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The snapshot's name.
      type: str
    snaptime:
      description: When it was taken (seconds since the epoch; null for one check mode would create).
      type: int
    description:
      description: Its description.
      type: str
    parent:
      description: The snapshot before it, or null.
      type: str
deleted:
  description: Snapshots deleted (by O(state=absent) or by O(keep)).
  returned: success
  type: list
  elements: str
newer:
  description: With O(state=rollback), the snapshots newer than O(name) (ZFS storage refuses the rollback then).
  returned: when state is rollback
  type: list
  elements: str
status:
  description: The container's run state after the task (in check mode, as it would be).
  returned: success
  type: str
  sample: running
actions:
  description: What was done, in order.
  returned: success; and when the module fails, what was done before the error
  type: list
  elements: str
warnings_from_tasks:
  description: Warning lines of worker tasks that ended with C(WARNINGS).
  returned: success
  type: list
  elements: str
api_requests:
  description: Proxmox VE API requests this run made (GET, POST, PUT, DELETE and uploads; a ticket login is not counted).
  returned: success
  type: int
  sample: 4
timings:
  description: Seconds taken by each worker task and in total.
  returned: success
  type: dict
check_mode_plan:
  description: In check mode, the predictions of this task for the next ones (the action plugin merges them into
    the host fact C(lxcri_check_mode_plan) and removes this key from the result).
  returned: never (removed by the action plugin)
  type: dict
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      V(config) (connection options), V(connection), V(api), V(task), V(task_timeout), V(snapshot) (the snapshot
      operation cannot be done as asked).
  returned: failed
  type: str
  sample: snapshot
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.checkplan import check_mode_plan_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.snapshot import SnapshotManager, snapshot_argument_spec


def main():
    spec = snapshot_argument_spec()
    spec.update(pve_argument_spec())
    spec.update(check_mode_plan_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_one_of=[("vmid", "hostname")],
                           required_together=[("keep", "prefix")])
    manager = None
    try:
        manager = SnapshotManager(module.params, check_mode=module.check_mode)
        result = manager.run()
    except LxcriError as exc:
        fail_module(module, exc, manager and manager.session)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
