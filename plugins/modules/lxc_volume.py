#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxc_volume
short_description: Hand a Proxmox VE container's volume, with its data, to another container
version_added: 0.1.0
description:
  - Moves a volume (a mount point C(mpN), an C(unusedN) entry, or C(rootfs)) of one container to another
    container of the same node over the API (C(POST /nodes/{node}/lxc/{vmid}/move_volume) with C(target-vmid)).
    The data stays where it is - Proxmox VE renames the volume to the target's next free disk name
    (C(subvol-<target>-disk-<n>); on ZFS a C(zfs rename), which keeps the volume's snapshots) - and the key
    leaves the source's config and enters the target's. A running target gets a mount point as a pending
    change, mounted at its next start.
  - This is how an app's data outlives the container of one version - for example
    C(/var/lib/postgresql/data) handed from the stopped old version to the new one.
  - Refused before any change, in check mode too, with the reason named, as Proxmox VE refuses them - a volume
    that a snapshot of the source references (delete those snapshots first), a bind mount or device, a mount
    point or root volume of a running source, a target key in use, a locked or template container, a target on
    another node.
  - Idempotent - when the source no longer has O(volume) and the target has O(target_volume), the move is
    reported as done already (C(changed=false)).
  - The source is addressed as M(lxcri.proxmox.lxc_container) addresses a container, by O(vmid) or by a
    O(hostname) that is unique in the cluster. Every worker task is waited for.
author:
  - lxcri maintainers (@lxcri)
options:
  vmid:
    description: The id of the container that has the volume.
    type: int
  hostname:
    description: The hostname of the container that has the volume, when O(vmid) is not given; it must be unique in
      the cluster.
    type: str
  node:
    description: The node; found from C(/cluster/resources) when omitted.
    type: str
  volume:
    description: The volume's key in the source's config - C(mp0), C(mp1), ..., C(unused0), ..., or C(rootfs).
    type: str
    required: true
  target_vmid:
    description: The container to move it to; the same as the source moves it to another key.
    type: int
    required: true
  target_volume:
    description:
      - The key in the target's config; default O(volume). A mount point keeps its options (C(mp), C(size),
        C(backup), ...); an C(unusedN) target keeps the bare volume.
      - Never C(rootfs) - a container's root volume is not replaced.
    type: str
extends_documentation_fragment:
  - lxcri.proxmox.pve
  - lxcri.proxmox.check_mode_plan
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads both configs and the source's snapshots and reports the move, or the refusal; moves nothing.
  diff_mode:
    support: full
    details: The key in the source and in the target, before and after.
  platform:
    platforms: posix
seealso:
  - module: lxcri.proxmox.lxc_container
  - module: lxcri.proxmox.lxc_snapshot
"""

EXAMPLES = r"""
- name: Hand the data volume of the stopped old version to the new one
  lxcri.proxmox.lxc_volume:
    vmid: 105
    volume: mp0
    target_vmid: 112

- name: Keep a volume in another container, as an unused disk there
  lxcri.proxmox.lxc_volume:
    hostname: web-old
    volume: mp1
    target_vmid: 190
    target_volume: unused3
"""

RETURN = r"""
vmid:
  description: The source container's id.
  returned: success
  type: int
  sample: 105
node:
  description: The node of both containers.
  returned: success
  type: str
  sample: pve1
volume:
  description: The key in the source's config (O(volume)).
  returned: success
  type: str
  sample: mp0
target_vmid:
  description: The target container's id.
  returned: success
  type: int
  sample: 112
target_volume:
  description: The key in the target's config.
  returned: success
  type: str
  sample: mp0
source_volid:
  description: The volume's id before the move; null when it had moved already.
  returned: success
  type: str
  sample: local-zfs:subvol-105-disk-1
target_volid:
  description: The volume's id in the target after the move (null in check mode, where the new name is not known
    yet).
  returned: success
  type: str
  sample: local-zfs:subvol-112-disk-1
diff:
  description: The key's value in the source and in the target, before and after.
  returned: success
  type: dict
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
      V(config) (connection options), V(connection), V(api), V(task), V(task_timeout), V(volume) (the volume
      cannot be moved as asked).
  returned: failed
  type: str
  sample: volume
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.checkplan import check_mode_plan_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.volume import VolumeManager, volume_argument_spec


def main():
    spec = volume_argument_spec()
    spec.update(pve_argument_spec())
    spec.update(check_mode_plan_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_one_of=[("vmid", "hostname")])
    manager = None
    try:
        manager = VolumeManager(module.params, check_mode=module.check_mode)
        result = manager.run()
    except LxcriError as exc:
        fail_module(module, exc, manager and manager.session)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
