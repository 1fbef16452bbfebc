#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxc_container
short_description: Manage Proxmox VE LXC containers, including ones that run an OCI image's entrypoint
version_added: 0.1.0
description:
  - Creates, configures, starts, stops, restarts, converts to a template and deletes a Proxmox VE container
    over the API, waiting for every worker task. A failed task fails the module at once with the end of its log;
    C(WARNINGS) is success, and the warnings are returned.
  - The configuration is compared key by key after normalisation (property strings parsed, sizes, booleans, tags
    as sets, MAC addresses kept unless given), and only the keys that differ are written, with the config digest
    for optimistic locking. Keys you drop are removed only with O(purge_config) or O(delete).
  - Changes a running container can only take at its next start are returned as RV(pending), and applied by a
    reboot only with O(restart=when_needed). That includes changes an earlier run (or another client) left
    pending, read from C(GET .../pending), since Proxmox VE's C(GET .../config) shows pending values as if applied.
  - A container that another task has locked (backup, snapshot, create, ...; C(CT is locked (backup))) is waited
    for with backoff up to O(wait_timeout), and the config is read again before each retried write (releasing a
    lock changes the digest); past that the module fails naming the lock, and that step changes nothing.
  - When another client changed the config between the module's read and its write (Proxmox VE refuses the stale
    digest with C(detected modified configuration)), the config is read again and the write planned anew, key by
    key, so only the keys this task manages are written and the other client's changes are kept; after 3 such
    re-plans the module fails and that step changes nothing.
  - The cluster is listed once per run. An unchanged container costs that listing and its config (plus the login
    with a password, and C(GET /version) only where O(oci) needs it and the config does not show it).
  - A new container records what it was made from (the image reference and manifest digest of O(oci), or the
    O(ostemplate) volume) as a line of its description (C(lxcri.proxmox) followed by C(image=... digest=...)), which Proxmox VE
    copies to clones. An existing container addressed by O(vmid) whose hostname differs from O(hostname), or whose
    recorded image is another image or another digest than O(oci)'s, is refused before any change (O(on_mismatch)).
  - Every value that could only fail later (an C(env) or C(entrypoint) value with a newline or another control
    character, raw C(lxc.*) lines, a user or directory that a plain template cannot carry on this Proxmox VE) is
    checked before anything is created, in check mode too. When a step after the create fails (the entrypoint/env
    write, the start), the container this task created is removed again, and the error says so (or names what is
    left and how to remove it).
  - In check mode, a container that an earlier task of the same run would create, stop, start or delete is seen as
    that task left it (the collection's action plugin keeps the predictions as the host fact
    C(lxcri_check_mode_plan)), so a check-mode chain such as create, snapshot, stop, delete reports each step's
    change instead of failing on the container's absence.
  - With O(oci) (the registered result of M(lxcri.proxmox.oci_template) with C(storage)), the container runs the
    image's command. On Proxmox VE 9.1 and later the C(entrypoint) and C(env) keys are set from its runtime after
    the create (Proxmox's OCI import overwrites C(env)); before 9.1 the template must carry the init wrapper.
author:
  - lxcri maintainers (@lxcri)
options:
  state:
    description:
      - V(present) creates the container if needed and applies the configuration; V(started), V(stopped) and
        V(restarted) also set its run state; V(template) converts it to a template (idempotent); V(absent)
        deletes it.
      - V(stopped) on a container that does not exist is no change when no source (O(ostemplate), O(oci),
        O(clone)) is given, as V(absent) is; with a source it creates the container stopped.
    type: str
    choices: [present, started, stopped, restarted, absent, template]
    default: present
  vmid:
    description: The container's id. Without it, the container is found by O(hostname), and a new one gets an id
      from C(/cluster/nextid) (retried when another creator took it) or from O(vmid_range).
    type: int
  hostname:
    description: The container's hostname; addresses it when O(vmid) is not given (it must then be unique).
    type: str
  node:
    description:
      - The node to create the container on. Defaults to the only node of a one-node cluster; a cluster of several
        nodes needs it.
      - V(auto) places a new container on the online node with the most free memory, then the least CPU load
        (C(/cluster/resources), as pvestatd last reported them), among O(node_candidates) when given, that has the
        storages of its volumes and, on a storage that is not shared, the template. RV(placement) says which and why
        the others were left out.
      - An existing container is found on whatever node it is. When that is another node than this one, it stays
        there with a warning, unless O(migrate) is set.
      - Feature checks (entrypoint and env, the OCI import, host-managed networking) ask this node's version, not the
        API host's, as a cluster may run two versions during an upgrade.
    type: str
  node_candidates:
    description: The nodes O(node=auto) may choose from (all nodes when not given). With another O(node), that node
      must be one of them.
    type: list
    elements: str
  migrate:
    description:
      - Move an existing container that is on another node to O(node) (Proxmox VE's migrate, offline). Local volumes
        go with it (ZFS by C(zfs send)), volumes on shared storage stay. Proxmox VE refuses containers with bind or
        device mount points that are not C(shared=1), and linked clones; the container then stays where it was.
      - A running container is moved only with O(migrate_restart).
    type: bool
    default: false
  migrate_restart:
    description: With O(migrate), move a running container by shutting it down (within O(shutdown_timeout)), moving it,
      and starting it on the target node (Proxmox VE has no live migration of containers).
    type: bool
    default: false
  vmid_range:
    description: Allocate a new container's id as the lowest free one in this inclusive range, V([first, last]).
    type: list
    elements: int
  ostemplate:
    description: The template volume to create from, for example
      V(local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst).
    type: str
  oci:
    description:
      - The registered result of M(lxcri.proxmox.oci_template) with C(storage). Its C(volid) is the template and its
        C(runtime) gives C(entrypoint) and C(env) on Proxmox VE 9.1+.
    type: dict
  clone:
    description: Create the container as a clone of this container or template (vmid or hostname).
    type: str
  clone_snapshot:
    description:
      - With O(clone), the source's snapshot to clone (Proxmox VE's C(snapname)). The new container gets the
        source's config and volumes as they were at that snapshot. Needs a full clone; the source may be running.
    type: str
  full:
    description: A full clone instead of a linked one. Linked clones need a template as source. Defaults to a linked
      clone of a template and a full clone of anything else.
    type: bool
  storage:
    description: The storage of the root disk at create time (and of a full clone).
    type: str
  disk_size:
    description:
      - The root disk size in GiB, with O(storage) at create time.
      - On an existing container a larger size grows the volume (C(PUT .../resize)); Proxmox VE cannot shrink
        a volume, so a smaller one is an error. A size in O(rootfs) (C(size=) or C(STORAGE:GiB)) works the same.
    type: int
  cores:
    description: CPU cores.
    type: int
  cpulimit:
    description: CPU limit (0 means unlimited).
    type: float
  cpuunits:
    description: CPU weight.
    type: int
  memory:
    description: Memory in MiB.
    type: int
  swap:
    description: Swap in MiB.
    type: int
  rootfs:
    description: The root disk as a Proxmox property string or a dict (C(volume), C(size), ...).
    type: raw
  mounts:
    description: Mount points by index (C(mp0), C(mp1), ...), each as a property string or a dict.
    type: dict
  net:
    description:
      - Network interfaces by index (C(net0), ...), each as a property string or a dict (C(name), C(bridge), C(ip),
        C(gw), C(hwaddr), C(firewall), C(tag), ...). A MAC address is kept unless you give one.
      - When O(oci)'s template configures interfaces in its generated init (M(lxcri.proxmox.oci_template)'s
        O(lxcri.proxmox.oci_template#module:net)), the container must have exactly those (C(name), C(ip), C(gw),
        C(ip6), C(gw6)); the digest in its description keeps that check for later tasks without O(oci).
    type: dict
  nameserver:
    description: DNS servers.
    type: str
  searchdomain:
    description: DNS search domains.
    type: str
  onboot:
    description: Start the container when the node boots.
    type: bool
  startup:
    description: Startup order and delays, as a property string or a dict.
    type: raw
  features:
    description: Container features (C(nesting), C(keyctl), C(fuse), ...), as a property string or a dict.
    type: raw
  unprivileged:
    description:
      - Whether a new container is unprivileged (its root is uid 100000 on the node). Not given, a new container
        is unprivileged, as the Proxmox VE GUI and community.proxmox create them; V(false) makes a privileged one.
      - Proxmox VE fixes it at creation. Given for an existing container that differs, the task fails and changes
        nothing.
    type: bool
  ostype:
    description:
      - The OS type Proxmox sets the container up for (create time only).
      - Defaults to V(unmanaged) when O(oci) is given (Proxmox would otherwise detect it from the image's
        C(/etc/os-release), fail on IDs it does not know, and write its own files into the image); otherwise
        Proxmox detects it.
    type: str
  arch:
    description: The architecture (create time only).
    type: str
  description:
    description: The container's notes.
    type: str
  tags:
    description: Tags; compared as a set.
    type: list
    elements: str
  pool:
    description: The resource pool to put a new container in.
    type: str
  protection:
    description: Protect the container from deletion.
    type: bool
  password:
    description: The root password of a new container.
    type: str
  ssh_public_keys:
    description: SSH public keys for root of a new container.
    type: str
  hookscript:
    description: A hook script volume.
    type: str
  cmode:
    description: The console mode.
    type: str
    choices: [shell, console, tty]
  entrypoint:
    description: The init command (Proxmox VE 9.1+ C(entrypoint) key); overrides the one from O(oci).
    type: str
  env:
    description: The environment (Proxmox VE 9.1+ C(env) key) as a list of C(NAME=value); overrides O(oci)'s.
    type: list
    elements: str
  raw_lxc:
    description:
      - Write the image's runtime (RV(lxcri.proxmox.oci_template#module:runtime.lxc_config) and C(lxc.init.cmd)) as raw
        C(lxc.*) lines into the container's config file on the node (the API cannot set them). Only those keys are
        touched. Needs the module to run on the node that has the container, and O(oci).
      - For Proxmox VE before 9.1 with a template without the init wrapper, or to set the user and directory of a
        plain template on 9.1.
      - On Proxmox VE 8 it also brings up the interfaces of a container made from an image (O(oci), or recorded in
        its description) - 8 has no host-managed network and the image's command configures none - with the
        C(lxc.net.N.ipv4.address), C(ipv4.gateway), C(ipv6.address), C(ipv6.gateway) and C(flags = up) lines that
        9.1 writes for a host-managed interface, from each O(net)'s C(ip), C(gw), C(ip6), C(gw6). Without it such
        an interface with an address is refused there, and C(ip=dhcp) always is (8 runs no DHCP client for a
        container), unless the template's generated init configures it (M(lxcri.proxmox.oci_template)'s
        O(lxcri.proxmox.oci_template#module:net), which needs no node access); C(ip=manual) leaves the interface to
        the app.
    type: bool
    default: false
  raw_lxc_dir:
    description: Where the container config files are (the cluster file system).
    type: path
    default: /etc/pve/lxc
  on_mismatch:
    description:
      - What to do when the container found by O(vmid) is not the one the task describes - its hostname is not
        O(hostname), or its recorded image is another image, or another digest of the same image, than O(oci)'s
        (another template than O(ostemplate)).
      - V(fail) refuses before any change and names what differs. V(update) says the change is intended - for
        example a rename - and applies the task, with a warning; the root file system stays the one the container
        was made from (this module never replaces it; the M(lxcri.proxmox.oci_app) role upgrades an app through a new
        container). The differences are returned as RV(mismatch) either way.
    type: str
    choices: [fail, update]
    default: fail
  purge_config:
    description: Remove config keys that are set on the container but not given here (among those this module manages).
    type: bool
    default: false
  delete:
    description: Config keys to remove.
    type: list
    elements: str
  restart:
    description: V(when_needed) reboots a running container when keys are pending (changed by this run or left by an
      earlier one); V(never) only reports them.
    type: str
    choices: [never, when_needed]
    default: never
  shutdown_timeout:
    description: Seconds a graceful shutdown (O(state=stopped)) may take.
    type: int
    default: 60
  force_stop:
    description:
      - Stop (kill) the container when the graceful shutdown times out. Without it, a shutdown that times out fails
        the task with a message saying so. When the kill was needed, RV(actions) says that the app ignored its stop
        signal.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), stop a running container and remove the protection before deleting it.
      - With O(state=template), stop a running container first.
    type: bool
    default: false
  purge:
    description: With O(state=absent), also remove the container from backup jobs, replication and HA.
    type: bool
    default: false
  destroy_unreferenced_disks:
    description: With O(state=absent), also destroy disks of this vmid that the config does not reference.
    type: bool
extends_documentation_fragment:
  - lxcri.proxmox.pve
  - lxcri.proxmox.check_mode_plan
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the container and reports what would change; sends no write request.
  diff_mode:
    support: full
    details: The config before and after, with the password and keys masked.
  platform:
    platforms: posix
seealso:
  - module: lxcri.proxmox.oci_template
  - module: lxcri.proxmox.lxc_container_info
"""

EXAMPLES = r"""
- name: Build a template from an image and upload it to the node's local storage
  lxcri.proxmox.oci_template:
    image: nginx:1.27
    storage: local
  register: nginx_template

- name: Run it as a container (Proxmox VE 9.1+ sets entrypoint and env from the image)
  lxcri.proxmox.lxc_container:
    hostname: web1
    oci: "{{ nginx_template }}"
    storage: local-zfs
    memory: 512
    net:
      0: {name: eth0, bridge: vmbr0, ip: dhcp}
    state: started

- name: Stop and delete it
  lxcri.proxmox.lxc_container:
    hostname: web1
    state: absent
    force: true
"""

RETURN = r"""
vmid:
  description: The container's id.
  returned: success
  type: int
  sample: 105
placement:
  description: With O(node=auto) for a new container, the chosen node and why others were left out (offline, a
    storage missing, the template not there).
  returned: when O(node=auto) placed a container
  type: dict
  sample: {"node": "pve2", "left_out": {"pve3": "offline"}}
node:
  description: The node the container is on (after a migration, the node it moved to).
  returned: success
  type: str
  sample: pve1
status:
  description: The run state after the task (V(running), V(stopped) or V(absent)).
  returned: success
  type: str
  sample: running
config:
  description: The container's config after the task (secrets masked).
  returned: unless state is absent
  type: dict
pending:
  description: Keys of a running container with a change waiting for its next start (this run's and those left pending
    before).
  returned: unless state is absent
  type: list
  elements: str
actions:
  description: What was done, in order (V(created), V(configured), V(resized), V(started), ...). C(waited for lock
    NAME) says a step waited for another task's lock (no change by itself); C(re-planned after a concurrent edit)
    says the config was read and planned again because another client had changed it.
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
  description: Seconds taken by each worker task and in total; C(lock_wait) is the time spent waiting for locks.
  returned: success
  type: dict
mismatch:
  description: How the container found by O(vmid) differs from the task (O(on_mismatch)) - C(what) (V(hostname),
    V(image), V(digest) or V(template)), C(have) and C(want).
  returned: when the container differs
  type: list
  elements: dict
  sample: [{"what": "hostname", "have": "a", "want": "b"}]
check_mode_plan:
  description: In check mode, the predictions of this task for the next ones (the action plugin merges them into
    the host fact C(lxcri_check_mode_plan) and removes this key from the result).
  returned: never (removed by the action plugin)
  type: dict
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      V(config) (connection options), V(connection), V(api), V(task), V(task_timeout), V(container) (the state
      cannot be reached as asked), V(invalid_value).
  returned: failed
  type: str
  sample: container
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.checkplan import check_mode_plan_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import (
    ContainerManager, container_argument_spec)


def main():
    spec = container_argument_spec()
    spec.update(pve_argument_spec())
    spec.update(check_mode_plan_argument_spec())
    module = AnsibleModule(argument_spec=spec, mutually_exclusive=[("ostemplate", "oci", "clone")],
                           supports_check_mode=True)
    manager = None
    try:
        manager = ContainerManager(module.params, check_mode=module.check_mode)
        result = manager.run()
    except LxcriError as exc:
        fail_module(module, exc, manager and manager.session)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
