#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxc_container_info
short_description: List Proxmox VE containers with their status and config
version_added: 0.1.0
description:
  - Lists the cluster's LXC containers from one C(GET /cluster/resources) call, filtered by node, vmid, hostname or
    tags, and adds each matching container's config (one call per container, only for the matches) unless
    O(config=false).
author:
  - lxcri maintainers (@lxcri)
options:
  node:
    description: Only containers on this node.
    type: str
  vmid:
    description: Only this container.
    type: int
  hostname:
    description: Only containers with this hostname.
    type: str
  tags:
    description: Only containers carrying all of these tags.
    type: list
    elements: str
  config:
    description: Add each container's config (secrets masked).
    type: bool
    default: true
extends_documentation_fragment:
  - lxcri.proxmox.pve
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    description: Use C(group/lxcri.proxmox.pve) in C(module_defaults) to set the connection options once.
    support: full
    membership: [lxcri.proxmox.pve]
seealso:
  - module: lxcri.proxmox.lxc_container
"""

EXAMPLES = r"""
- name: All containers tagged web
  lxcri.proxmox.lxc_container_info:
    tags: [web]
  register: web

- name: Their ids and states
  ansible.builtin.debug:
    msg: "{{ web.containers | map(attribute='vmid') }} {{ web.containers | map(attribute='status') }}"
"""

RETURN = r"""
containers:
  description: The matching containers, by vmid.
  returned: always
  type: list
  elements: dict
  contains:
    vmid:
      description: The container's id.
      type: int
    node:
      description: Its node.
      type: str
    hostname:
      description: Its hostname (the resource name).
      type: str
    status:
      description: V(running) or V(stopped).
      type: str
    template:
      description: Whether it is a template.
      type: bool
    tags:
      description: Its tags.
      type: list
      elements: str
    config:
      description: Its config (when O(config=true)), secrets masked.
      type: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import masked
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect, pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveError


def containers(client, node=None, vmid=None, hostname=None, tags=None, with_config=True):
    found = []
    wanted_tags = set(tags or ())
    for res in client.get("/cluster/resources", type="vm") or []:
        if res.get("type") != "lxc":
            continue
        have_tags = set(t for t in re.split(r"[;,\s]+", res.get("tags") or "") if t)
        if (node and res.get("node") != node) or (vmid is not None and int(res["vmid"]) != vmid) or \
                (hostname and res.get("name") != hostname) or not wanted_tags <= have_tags:
            continue
        entry = {"vmid": int(res["vmid"]), "node": res.get("node"), "hostname": res.get("name"),
                 "status": res.get("status"), "template": bool(int(res.get("template") or 0)),
                 "tags": sorted(have_tags)}
        if with_config:
            entry["config"] = masked(client.get("/nodes/{node}/lxc/{vmid}/config", node=entry["node"],
                                                vmid=entry["vmid"]))
        found.append(entry)
    return sorted(found, key=lambda e: e["vmid"])


def main():
    spec = dict(node=dict(type="str"), vmid=dict(type="int"), hostname=dict(type="str"),
                tags=dict(type="list", elements="str"), config=dict(type="bool", default=True))
    spec.update(pve_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        client = connect(params)
        found = containers(client, params["node"], params["vmid"], params["hostname"], params["tags"],
                           params["config"])
    except PveError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, containers=found)


if __name__ == "__main__":
    main()
