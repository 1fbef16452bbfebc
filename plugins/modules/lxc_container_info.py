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
  - Lists the cluster's LXC containers, filtered by node, vmid, hostname or tags, and adds each matching container's
    config (one call per container, only for the matches) unless O(config=false).
  - Which containers exist and where comes from C(GET /cluster/resources); their hostname, status and template flag
    from each node's live C(GET /nodes/{node}/lxc) (one call per node holding containers, or only O(node)). On a real
    node C(/cluster/resources) serves those fields from pvestatd's data, about 10 seconds late, so a container
    created, renamed or started just before would be missed or shown as it was. A node that does not answer
    (offline) keeps what C(/cluster/resources) says.
  - Read-only; never reports a change.
author:
  - lxcri maintainers (@lxcri)
options:
  node:
    description: Only containers on this node.
    type: str
  vmid:
    description: Only the container with this id.
    type: int
  hostname:
    description: Only containers with this hostname (the name Proxmox VE lists for them).
    type: str
  tags:
    description:
      - Only containers carrying all of these tags.
      - An item may itself list several tags separated by C(;), C(,) or spaces, as Proxmox VE writes them.
    type: list
    elements: str
  config:
    description:
      - Add each matching container's config (C(GET /nodes/{node}/lxc/{vmid}/config)), secrets masked.
      - With V(false) the module makes only the one cluster call (when the node lists tags, as Proxmox VE 7.3 and
        later do).
    type: bool
    default: true
  interfaces:
    description:
      - Add each matching running container's network interfaces with their addresses, as the container has
        them now (C(GET /nodes/{node}/lxc/{vmid}/interfaces), one call per running match), for example the
        address a DHCP server gave it.
    type: bool
    default: false
  snapshots:
    description:
      - Add each matching container's snapshots, oldest first (C(GET /nodes/{node}/lxc/{vmid}/snapshot), one call
        per match), each with the storage volumes its config references (one C(GET .../snapshot/{snapname}/config)
        per snapshot) - the volumes it keeps from moving to another container, and that go with it.
    type: bool
    default: false
  placement:
    description:
      - Also say where M(lxcri.proxmox.lxc_container) with O(lxcri.proxmox.lxc_container#module:node=auto) would
        place a new container now (RV(placement)), from the same cluster call. That is the online node with the most
        free memory, then the least CPU load, that has all of O(placement.storages). A role places its app with it
        before it uploads the app's template to that node.
      - Fails, naming each node and why it was left out, when no node qualifies.
    type: dict
    suboptions:
      node_candidates:
        description: The nodes to choose from (all when not given).
        type: list
        elements: str
      storages:
        description: Storages the node must have available (the container's volumes', the template's).
        type: list
        elements: str
        default: []
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
seealso:
  - module: lxcri.proxmox.lxc_container
"""

EXAMPLES = r"""
- name: All containers tagged web (connection options set once for the pve group)
  lxcri.proxmox.lxc_container_info:
    tags: [web]
  register: web

- name: Their ids and states
  ansible.builtin.debug:
    msg: "{{ web.containers | map(attribute='vmid') }} {{ web.containers | map(attribute='status') }}"

- name: One container by hostname, status only
  lxcri.proxmox.lxc_container_info:
    api_host: pve1.example.org
    api_token_id: ansible@pve!automation
    api_token_secret: "{{ vault_pve_token_secret }}"
    hostname: web1
    config: false
  register: web1

- name: The address a DHCP server gave container 120
  lxcri.proxmox.lxc_container_info:
    vmid: 120
    config: false
    interfaces: true
  register: ct120
  # ct120.containers[0].interfaces | selectattr('name', 'equalto', 'eth0') | map(attribute='inet') | first

- name: Everything on one node
  lxcri.proxmox.lxc_container_info:
    node: pve2
  register: on_pve2
"""

RETURN = r"""
placement:
  description: With O(placement), the node a new container would go to and why others were left out.
  returned: when O(placement) is given
  type: dict
  sample: {"node": "pve2", "left_out": {"pve3": "offline"}}
nodes:
  description: Every node of the cluster with its state (V(online), V(offline), V(unknown)), from the same
    C(/cluster/resources) call as the containers.
  returned: always
  type: list
  elements: dict
  sample: [{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "offline"}]
pve:
  description:
    - The Proxmox VE version and what it supports, so that a play can choose a template format (for example an OCI
      archive and C(entrypoint)/C(env) from 9.1 on).
    - It is the version of O(node) when given and online (C(/nodes/{node}/version); in a cluster mid-upgrade a node
      may run another version than the API host), else of the node O(placement) chose, else of the API host
      (C(/version)).
  returned: always
  type: dict
  contains:
    version:
      description: The version.
      type: str
      sample: "9.1.1"
    release:
      description: The release.
      type: str
      sample: "9.1"
    entrypoint_env:
      description: Whether containers have the C(entrypoint) and C(env) config keys.
      type: bool
    oci_import:
      description: Whether the node imports OCI archives as templates.
      type: bool
    oci_registry_pull:
      description: Whether storages can pull images from a registry.
      type: bool
containers:
  description: The matching containers, sorted by vmid; empty when none matches.
  returned: always
  type: list
  elements: dict
  contains:
    vmid:
      description: The container's id.
      type: int
      sample: 120
    node:
      description: The node it is on.
      type: str
      sample: pve1
    node_status:
      description:
        - Its node's state in the cluster (V(online), V(offline), V(unknown)), or V(unreachable) when the node is
          listed online but did not answer.
        - A container on a node that did not answer is listed as the cluster list has it (status V(unknown) on a
          real cluster), without RV(containers[].config), interfaces or snapshots.
      type: str
      sample: online
    hostname:
      description: Its hostname (the resource name).
      type: str
      sample: web1
    status:
      description: V(running) or V(stopped).
      type: str
      sample: running
    template:
      description: Whether it is a template.
      type: bool
      sample: false
    tags:
      description: Its tags, sorted.
      type: list
      elements: str
      sample: [blue, web]
    lock:
      description: Its config lock (V(create), V(backup), ...), when it has one.
      type: str
      returned: when locked
      sample: backup
    pool:
      description: The resource pool it is in.
      type: str
      returned: when in a pool
    origin:
      description: What lxcri.proxmox.lxc_container recorded the container was made from (a line of its
        description) - C(image) and C(digest) of an OCI image, or C(template); null when it has no record.
      type: dict
      returned: with the config
      sample: {"image": "docker.io/library/nginx:1.27", "digest": "sha256:3b7c9e0a..."}
    uptime:
      description: Seconds since it started.
      type: int
      returned: when Proxmox VE reports it
    maxmem:
      description: Its memory limit in bytes.
      type: int
      returned: when Proxmox VE reports it
      sample: 536870912
    mem:
      description: Memory in use, in bytes.
      type: int
      returned: when Proxmox VE reports it
    maxdisk:
      description: Size of its root disk in bytes.
      type: int
      returned: when Proxmox VE reports it
    disk:
      description: Root disk space in use, in bytes.
      type: int
      returned: when Proxmox VE reports it
    maxcpu:
      description: Its CPU limit (cores).
      type: float
      returned: when Proxmox VE reports it
    cpu:
      description: CPU load (a fraction of maxcpu).
      type: float
      returned: when Proxmox VE reports it
    hastate:
      description: Its HA state, when HA manages it.
      type: str
      returned: when HA-managed
    config:
      description:
        - Its config as Proxmox VE returns it (property strings, C(digest) included), secrets masked.
      type: dict
      returned: when O(config=true)
      sample:
        hostname: web1
        memory: 512
        net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2E:4F:6A,ip=dhcp,type=veth
        rootfs: local-zfs:subvol-120-disk-0,size=8G
        tags: blue;web
    snapshots:
      description: Its snapshots, oldest first (not the C(current) entry Proxmox VE lists last).
      type: list
      elements: dict
      returned: when O(snapshots=true)
      contains:
        name:
          description: The snapshot's name.
          type: str
          sample: lxcri_data
        volumes:
          description: The storage volumes its config references, by key (C(rootfs), C(mpN); bind mounts left out).
          type: dict
          sample: {"rootfs": "local-zfs:subvol-101-disk-0", "mp100": "local-zfs:subvol-101-disk-1"}
        description:
          description: Its description.
          type: str
        snaptime:
          description: When it was taken (seconds since the epoch).
          type: int
        parent:
          description: The snapshot before it, if any.
          type: str
    interfaces:
      description:
        - Its network interfaces (the loopback included), empty when it is not running.
      type: list
      elements: dict
      returned: when O(interfaces=true)
      contains:
        name:
          description: The interface's name in the container.
          type: str
          sample: eth0
        hwaddr:
          description: Its MAC address.
          type: str
          sample: "bc:24:11:2e:4f:6a"
        inet:
          description: Its IPv4 addresses with prefix length.
          type: list
          elements: str
          sample: ["10.0.0.120/24"]
        inet6:
          description: Its IPv6 addresses with prefix length.
          type: list
          elements: str
          sample: ["fe80::be24:11ff:fe2e:4f6a/64"]
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      V(config) (connection options), V(connection), V(api), V(task_timeout).
  returned: failed
  type: str
  sample: connection
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect, pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.info import ContainerQuery, cluster_nodes, list_containers
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import node_features
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.placement import choose_node


def main():
    spec = dict(node=dict(type="str"), vmid=dict(type="int"), hostname=dict(type="str"),
                tags=dict(type="list", elements="str"), config=dict(type="bool", default=True),
                interfaces=dict(type="bool", default=False), snapshots=dict(type="bool", default=False),
                placement=dict(type="dict", options=dict(node_candidates=dict(type="list", elements="str"),
                                                         storages=dict(type="list", elements="str", default=[]))))
    spec.update(pve_argument_spec())
    # no mutually_exclusive here: the PROXMOX_* fallbacks may fill both sides; connect() says which clash
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        client = connect(params)
        query = ContainerQuery(node=params["node"], vmid=params["vmid"], hostname=params["hostname"],
                               tags=params["tags"])
        resources = client.get("/cluster/resources") or []
        found = list_containers(client, query, with_config=params["config"], with_interfaces=params["interfaces"],
                                with_snapshots=params["snapshots"], resources=resources)
        extra = {}
        if params["placement"] is not None:
            node, left_out = choose_node(client, params["placement"]["node_candidates"],
                                         sorted(set(params["placement"]["storages"] or [])), resources=resources)
            extra["placement"] = {"node": node, "left_out": left_out}
        described = params["node"] or (extra.get("placement") or {}).get("node")
        online = [n["node"] for n in cluster_nodes(resources) if n["status"] == "online"]
        # a node that is no member, or offline, cannot answer for itself: the API host's version then
        pve = (node_features(client, described) if described in online else client.features()).as_dict()
    except LxcriError as exc:
        fail_module(module, exc)
    module.exit_json(changed=False, containers=found, nodes=cluster_nodes(resources), pve=pve, **extra)


if __name__ == "__main__":
    main()
