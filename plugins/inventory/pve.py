# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin lxcri.proxmox.pve: the containers of a Proxmox VE node or cluster as hosts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pve
short_description: Proxmox VE containers as inventory hosts
version_added: 0.1.0
description:
  - Lists the LXC containers of a Proxmox VE node or cluster (C(/cluster/resources), each container's config,
    and the addresses of running ones) through the same connection as the collection's modules - the HTTPS API
    with a password or an API token, or C(pvesh) on the node itself.
  - Each container is a host, named by its hostname (O(host_name)). Groups - C(<prefix>node_<node>),
    C(<prefix>status_<status>), C(<prefix>tag_<tag>), and C(<prefix>app_<name>) for the apps of the
    lxcri.proxmox.oci_app role (tag C(lxcri-app-<name>)). Names are made safe for Ansible groups (C(-) and other
    characters become C(_)).
  - Host variables - C(<prefix>vmid), C(<prefix>node), C(<prefix>status), C(<prefix>tags), C(<prefix>ips) (from
    C(/nodes/{node}/lxc/{vmid}/interfaces) for a running container, else the static addresses of its config),
    C(<prefix>image) and C(<prefix>digest) (what the collection recorded in the container's description when it
    made it), C(<prefix>template) and C(ansible_host) (the first IPv4 address, else the first IPv6 one).
  - Supports C(compose), C(groups) and C(keyed_groups) (Constructable), and the inventory cache (Cacheable).
  - What the API answers (tags, descriptions, hostnames) is marked unsafe - a container's description is never
    templated.
author:
  - lxcri maintainers (@lxcri)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; the inventory file must be named C(*pve.yml) or C(*pve.yaml).
    type: str
    required: true
    choices: [lxcri.proxmox.pve]
  api_host:
    description: The API host; without it the plugin runs C(pvesh) on this host, which must be a Proxmox VE node.
    type: str
    env:
      - name: PROXMOX_HOST
  api_port:
    description: The API port.
    type: int
    default: 8006
    env:
      - name: PROXMOX_PORT
  api_user:
    description: The user with its realm (C(root@pam)); with a token, the token's user.
    type: str
    default: root@pam
    env:
      - name: PROXMOX_USER
  api_password:
    description: The user's password.
    type: str
    env:
      - name: PROXMOX_PASSWORD
  api_token_id:
    description: An API token id, C(user@realm!name) (or the name alone with O(api_user)).
    type: str
    env:
      - name: PROXMOX_TOKEN_ID
  api_token_secret:
    description: The API token's secret.
    type: str
    env:
      - name: PROXMOX_TOKEN_SECRET
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
    env:
      - name: PROXMOX_VALIDATE_CERTS
  ca_path:
    description: A CA bundle to verify the API's certificate with.
    type: path
    env:
      - name: PROXMOX_CA_PATH
  api_timeout:
    description: Seconds to wait for one API answer.
    type: int
    default: 30
  api_connection:
    description: As the modules' C(api_connection) - V(auto), V(https) or V(local).
    type: str
    default: auto
    choices: [auto, https, local]
    env:
      - name: PROXMOX_CONNECTION
  nodes:
    description: Only the containers of these nodes (default - every node).
    type: list
    elements: str
    default: []
  include_templates:
    description: Also list templates (they are never started, and have no addresses).
    type: bool
    default: false
  interfaces:
    description: Read the addresses of running containers from the API (one call per running container).
    type: bool
    default: true
  host_name:
    description:
      - What names a host - V(hostname) (a clash between containers of the same hostname appends C(-<vmid>) to
        the later ones) or V(vmid).
    type: str
    default: hostname
    choices: [hostname, vmid]
  prefix:
    description: The prefix of the groups and host variables this plugin makes.
    type: str
    default: pve_
"""

EXAMPLES = r"""
# pve.yml: every container of the cluster, grouped by node, status, tag and oci_app app
plugin: lxcri.proxmox.pve
api_host: pve1.example.com
api_token_id: root@pam!inventory
# api_token_secret from PROXMOX_TOKEN_SECRET
keyed_groups:
  - key: pve_image | default('') | regex_replace('[:@].*$', '')
    prefix: image
compose:
  ansible_user: "'root'"
groups:
  web: "'web' in pve_tags"

# ansible-inventory -i pve.yml --graph
"""

import re

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.info import ContainerQuery, list_containers

CONNECTION_OPTIONS = ("api_host", "api_port", "api_user", "api_password", "api_token_id", "api_token_secret",
                      "validate_certs", "ca_path", "api_timeout", "api_connection")
APP_TAG = re.compile(r"^lxcri-app-(.+)$")


def safe(name):
    """A group name Ansible accepts: letters, digits and _ (anything else becomes _)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def config_ips(config):
    """The static addresses of a container's netN entries (``ip=``, ``ip6=``), without their prefix length."""
    out = []
    for key in sorted(config or {}):
        if not re.match(r"^net\d+$", key):
            continue
        for part in str(config[key]).split(","):
            name, dummy, value = part.partition("=")
            if name in ("ip", "ip6") and value and value not in ("dhcp", "auto", "manual"):
                out.append(value.split("/")[0])
    return out


def running_ips(interfaces):
    """The addresses of a running container's interfaces (lo and IPv6 link-local left out)."""
    out = []
    for iface in interfaces or []:
        if iface.get("name") == "lo":
            continue
        out += [a.split("/")[0] for a in iface.get("inet", [])]
        out += [a.split("/")[0] for a in iface.get("inet6", []) if not a.lower().startswith("fe80:")]
    return out


def hosts_of(containers, prefix="pve_", host_name="hostname", include_templates=False):
    """[(host name, variables, groups)] for the containers that list_containers returned."""
    out, seen = [], set()
    for ct in containers:
        if ct.get("template") and not include_templates:
            continue
        name = str(ct["vmid"]) if host_name == "vmid" else (ct.get("hostname") or "ct%s" % ct["vmid"])
        if name in seen:
            name = "%s-%s" % (name, ct["vmid"])
        seen.add(name)
        config = ct.get("config") or {}
        record = ct.get("origin") or {}
        ips = running_ips(ct.get("interfaces")) or config_ips(config)
        tags = list(ct.get("tags") or [])
        variables = {
            prefix + "vmid": ct["vmid"], prefix + "node": ct.get("node"), prefix + "status": ct.get("status"),
            prefix + "tags": tags, prefix + "ips": ips, prefix + "image": record.get("image"),
            prefix + "digest": record.get("digest"), prefix + "template": bool(ct.get("template")),
        }
        v4 = [ip for ip in ips if ":" not in ip]
        if v4 or ips:
            variables["ansible_host"] = (v4 or ips)[0]
        groups = [prefix + "node_" + safe(ct.get("node")), prefix + "status_" + safe(ct.get("status"))]
        groups += [prefix + "tag_" + safe(tag) for tag in tags]
        groups += [prefix + "app_" + safe(APP_TAG.match(tag).group(1)) for tag in tags if APP_TAG.match(tag)]
        out.append((name, variables, groups))
    return out


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "lxcri.proxmox.pve"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("pve.yml", "pve.yaml"))

    def _containers(self):
        params = dict((key, self.get_option(key)) for key in CONNECTION_OPTIONS)
        try:
            client = connect(params)
            found = []
            resources = client.get("/cluster/resources") or []  # once, for every node asked for
            for node in self.get_option("nodes") or [None]:
                found += list_containers(client, ContainerQuery(node=node), with_config=True,
                                         with_interfaces=self.get_option("interfaces"), resources=resources)
        except LxcriError as exc:
            raise AnsibleError("lxcri.proxmox.pve: %s" % exc)
        return found

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        containers = None
        if use_cache:
            try:
                containers = self._cache[key]
            except KeyError:
                update_cache = True
        if containers is None:
            containers = self._containers()
        if update_cache:
            self._cache[key] = containers
        self._populate(containers)

    def _populate(self, containers):
        prefix = self.get_option("prefix")
        strict = self.get_option("strict")
        for name, variables, groups in hosts_of(containers, prefix, self.get_option("host_name"),
                                                self.get_option("include_templates")):
            self.inventory.add_host(name)
            for group in groups:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            # what the API says (tags, descriptions, hostnames) is data, never a template
            variables = wrap_var(variables)
            for var, value in variables.items():
                self.inventory.set_variable(name, var, value)
            self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
