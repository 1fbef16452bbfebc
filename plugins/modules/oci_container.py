#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: oci_container
short_description: Run an OCI/Docker image directly on a Proxmox VE node with crun or libcrun, under systemd
version_added: 0.5.0
description:
  - Runs an image as an OCI container on the node itself, not as a Proxmox VE guest, for node-level agents
    (exporters, log shippers, backup agents) that should not need a Docker daemon.
  - The image is pulled into the verified blob cache (as M(lxcri.proxmox.oci_image) does), its layers are merged
    by the same streaming engine as M(lxcri.proxmox.oci_template) (whiteouts, hard links, hostile paths refused)
    and extracted with GNU tar, as Proxmox VE's restore does, into the bundle's C(rootfs), in a directory or in a
    ZFS dataset of its own (O(zfs_dataset)).
  - The bundle's C(config.json) runs the image's ENTRYPOINT+CMD with its environment, working directory, user
    and supplementary groups, by the same rules as M(lxcri.proxmox.oci_template) (the user resolved in the
    image's own C(/etc/passwd) and C(/etc/group)); Docker's default capabilities; a default seccomp profile;
    memory, CPU and pids limits through the cgroup filesystem crun sees (v1, v2, or on a hybrid host a private
    view - cgroup2 alone, or the v1 hierarchies alone when limits are asked for and cgroup2 has no controller);
    the host's network or a network namespace with a veth on a bridge.
  - A systemd unit C(lxcri-oci-<name>.service) per container supervises it (C(Type=notify), ready once the
    container's process runs; the image's stop signal; restart policy O(restart)); its output goes to the
    journal. The unit runs a copy of this collection's runtime code installed under O(base_dir)C(/.engine), with
    the backend chosen when the module ran (RV(runtime)), that is libcrun through crun's C(python_crun) binding when it
    loads, else the crun CLI, as the M(lxcri.proxmox.oci_runtime_check) module selects and proves them.
  - Idempotent by image digest and options; an image change stops the container, builds the new root filesystem
    beside the old one and swaps it, and on ZFS takes a snapshot of the whole bundle first so that O(rollback)
    can return to it.
  - Runs on the node, as root, with the Python standard library, C(requests) for registries, GNU tar, systemd,
    and crun or a libcrun with C(python_crun) (the M(lxcri.proxmox.oci_runtime) role installs them).
author:
  - lxcri maintainers (@lxcri)
options:
  name:
    description:
      - The container's name. Lower-case letters, digits, C(.), C(_) and C(-), at most 48 characters.
      - The unit is C(lxcri-oci-<name>.service), the OCI container id C(lxcri-oci-<name>), the bundle
        O(base_dir)C(/<name>), and its volumes live in O(volumes_dir)C(/<name>).
    type: str
    required: true
  state:
    description:
      - V(present) builds the bundle and writes the unit without starting or stopping it, except that a running
        container whose image changed is started again on the new one.
      - V(started) also enables the unit (unless O(enabled) says otherwise) and starts it, or restarts it when
        anything of the container changed.
      - V(stopped) stops it and disables it (unless O(enabled) says otherwise).
      - V(restarted) restarts it always (and reports a change).
      - V(absent) stops and removes the unit and the bundle; with O(zfs_dataset) the dataset is destroyed with
        its rollback snapshots. The volumes stay unless O(remove_volumes=true). Check mode lists what would go.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  image:
    description:
      - The image, in the syntax of M(lxcri.proxmox.oci_image)'s O(lxcri.proxmox.oci_image#module:image)
        option. Required except with O(state=absent) and O(rollback=true).
    type: str
  entrypoint:
    description: Replaces the image's Entrypoint (and drops its Cmd unless O(cmd) is given), as C(docker run --entrypoint).
    type: list
    elements: str
  cmd:
    description: Replaces the image's Cmd.
    type: list
    elements: str
  env:
    description:
      - Variables set on top of the image's Env, as a dict or a list of C(NAME=value) (a new name is added, an
        existing one replaced in place). Newlines and NUL are refused.
    type: raw
  workdir:
    description: Replaces the image's WorkingDir.
    type: str
  user:
    description:
      - Replaces the image's User (V(name), V(uid), V(name:group) or V(uid:gid)), resolved in the image's own
        C(/etc/passwd) and C(/etc/group) as runc does.
    type: str
  stop_signal:
    description: Replaces the image's StopSignal (default C(SIGTERM)); it is the unit's C(KillSignal).
    type: str
  stop_timeout:
    description:
      - Seconds the container has to exit after the stop signal before the unit's runner kills it (SIGKILL), as
        C(docker stop) does; the unit's C(TimeoutStopSec) is 15 seconds longer.
    type: int
    default: 10
  restart:
    description: The unit's C(Restart=) policy.
    type: str
    choices: ["no", on-failure, always]
    default: on-failure
  enabled:
    description:
      - Whether the unit starts at boot. Default V(true) with O(state=started) and O(state=restarted), V(false)
        with O(state=stopped), unchanged with O(state=present).
    type: bool
  volumes:
    description:
      - Mounts into the container. A O(volumes[].source) that is an absolute path is a bind mount of that host
        path, which must exist. Any other source is a named volume, a directory O(volumes_dir)C(/<name>/<source>);
        without a source the volume is named after its target. A new volume is filled with what the image holds
        at the target (as Docker fills a new named volume), else made empty and owned by the container's user.
      - The image's own C(VOLUME)s that no entry here covers get a volume each, named after the target. Volumes
        are kept across image changes and rollbacks.
    type: list
    elements: dict
    default: []
    suboptions:
      target:
        description: The absolute path inside the container (not V(/), nor below C(/proc), C(/sys) or C(/dev)).
        type: str
        required: true
      source:
        description: An absolute host path (a bind mount) or a volume name.
        type: str
      read_only:
        description: Mount it read-only.
        type: bool
        default: false
  memory:
    description:
      - The memory limit, for example V(512M) or V(2G) (binary units); at least 6M.
      - This and O(cpus) and O(pids_limit) need their controller where crun sees the cgroups. On a hybrid node
        whose cgroup2 has no controller (they are on the v1 hierarchies), the unit gives crun a private view of
        the v1 hierarchies alone and the limits land there (crun refuses a hybrid layout as it is). A node without
        the controller anywhere is refused before any change.
    type: str
  cpus:
    description: The CPU limit in CPUs (may be fractional, V(0.5) is half a CPU), as a CFS quota per 100 ms.
    type: float
  pids_limit:
    description: The most processes and threads the container may have.
    type: int
  cap_add:
    description: Capabilities added to Docker's default set (V(NET_ADMIN) or V(CAP_NET_ADMIN); V(ALL)).
    type: list
    elements: str
    default: []
  cap_drop:
    description: Capabilities removed from Docker's default set (V(ALL) drops every one).
    type: list
    elements: str
    default: []
  seccomp:
    description:
      - V(default) refuses what Docker's default profile refuses a container without C(CAP_SYS_ADMIN) (kernel
        modules, kexec, mounts, new namespaces, keyrings, bpf, perf events, clock and swap changes, reboot) with
        EPERM, as a deny list, so newer syscalls still work. V(unconfined) sets no filter.
    type: str
    choices: [default, unconfined]
    default: default
  read_only:
    description: Mount the root filesystem read-only (volumes and C(/dev/shm) stay writable).
    type: bool
    default: false
  network:
    description: The container's network; by default the node's own (host network).
    type: dict
    default: {}
    suboptions:
      mode:
        description:
          - V(host) shares the node's network. V(bridge) gives the container a network namespace
            C(lxcri-<name>) with C(eth0), the peer of a veth whose host end is on O(network.bridge); it is made
            when the unit starts and removed when it stops.
        type: str
        choices: [host, bridge]
        default: host
      bridge:
        description: The node's bridge (for example V(vmbr0)), with O(network.mode=bridge).
        type: str
      address:
        description: C(eth0)'s address in CIDR notation, with O(network.mode=bridge).
        type: str
      gateway:
        description: The default gateway, with O(network.mode=bridge).
        type: str
  zfs_dataset:
    description:
      - Keep the bundle (its config, record and root filesystem) in this ZFS dataset, mounted at
        O(base_dir)C(/<name>) and created when missing. Each image change takes a snapshot
        C(@lxcri-<time>-<previous digest>) first; O(keep_snapshots) of them are kept.
      - Refused for a pool's root dataset, for datasets that Proxmox VE manages (unless O(allow_pve_managed)) and
        outside O(allowed_roots) when that is given.
    type: str
  allowed_roots:
    description: When not empty, O(zfs_dataset) must be one of these datasets or below one.
    type: list
    elements: str
    default: []
  allow_pve_managed:
    description: Allow a O(zfs_dataset) inside a Proxmox VE storage's dataset (C(vm-*), C(subvol-*), C(base-*)).
    type: bool
    default: false
  keep_snapshots:
    description: How many rollback snapshots of image changes to keep (older ones of this module are removed).
    type: int
    default: 3
  keep_previous:
    description:
      - Without O(zfs_dataset), an image change keeps the running version (its root filesystem, C(config.json) and
        record) in C(<base_dir>/<name>/.previous), the rollback point of O(rollback); the version before it goes.
        It costs the space of a second root filesystem. V(false) removes it at the next image change.
    type: bool
    default: true
  rollback:
    description:
      - Return the container to the image (and settings) it ran before its last image change. With
        O(zfs_dataset), by rolling the dataset back to the newest rollback snapshot, which is then removed (a
        second rollback goes one change further back); refused when a newer snapshot of another name exists, since
        the rollback would destroy it. In a directory, by swapping back the version O(keep_previous) kept (the
        current one is removed; there is one step back).
      - Always a change; the container is started again when it ran or O(state=started).
    type: bool
    default: false
  remove_volumes:
    description: With O(state=absent), also remove the container's named volumes (never bind-mounted host paths).
    type: bool
    default: false
  force:
    description: Build the root filesystem again even when the image digest did not change.
    type: bool
    default: false
  runtime:
    description:
      - The OCI runtime backend the unit runs. V(auto) takes libcrun with C(python_crun) when it loads and
        otherwise the crun CLI, saying why in RV(runtime.reason); V(libcrun) or V(cli) insist.
    type: str
    choices: [auto, libcrun, cli]
    default: auto
  libcrun_search:
    description: Extra libcrun files or directories to look at before the usual places.
    type: list
    elements: path
    default: []
  crun_path:
    description: The crun executable (default C(crun) from C(PATH)).
    type: path
  base_dir:
    description: Where the bundles (and the runner's engine copy, in C(.engine)) live.
    type: path
    default: /var/lib/lxcri/oci
  volumes_dir:
    description: Where the named volumes live.
    type: path
    default: /var/lib/lxcri/oci-volumes
  unit_dir:
    description: Where the units are written.
    type: path
    default: /etc/systemd/system
  python:
    description: The Python the unit runs the runner with.
    type: path
    default: /usr/bin/python3
extends_documentation_fragment:
  - lxcri.proxmox.registry
  - lxcri.proxmox.image_limits
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Resolves the image (manifest and config only when the layers are not cached) and reports what would be
        built, started, stopped or removed in RV(actions), changing nothing.
  diff_mode:
    support: full
    details: Shows the container's image, digest, argv, environment, working directory and ids before and after.
  platform:
    platforms: posix
notes:
  - A failed start fails the task with systemd's error and the unit's journal tail, and leaves the new root
    filesystem in place; with O(zfs_dataset), O(rollback=true) returns to the previous one.
  - The engine copy is kept per content digest; copies no unit names any more are not removed.
seealso:
  - module: lxcri.proxmox.oci_runtime_check
  - module: lxcri.proxmox.oci_image
"""

EXAMPLES = r"""
- name: Run node_exporter on each node, on the host network, from a local registry
  lxcri.proxmox.oci_container:
    name: node-exporter
    image: registry.local:5000/prom/node-exporter:v1.8.2
    cmd: ["--path.rootfs=/host"]
    volumes:
      - {source: /, target: /host, read_only: true}
    memory: 128M
    cpus: 0.5

- name: Upgrade an agent on its own ZFS dataset
  lxcri.proxmox.oci_container:
    name: shipper
    image: registry.local:5000/vector:0.40
    zfs_dataset: rpool/lxcri/shipper
    allowed_roots: [rpool/lxcri]
  register: upgrade

- name: Go back to the previous image if the new one misbehaves
  lxcri.proxmox.oci_container:
    name: shipper
    zfs_dataset: rpool/lxcri/shipper
    allowed_roots: [rpool/lxcri]
    rollback: true
  when: upgrade is failed

- name: Remove it, keeping its volumes
  lxcri.proxmox.oci_container:
    name: shipper
    state: absent
    zfs_dataset: rpool/lxcri/shipper
    allowed_roots: [rpool/lxcri]
"""

RETURN = r"""
name:
  description: The container's name.
  returned: always
  type: str
unit:
  description: The systemd unit's name.
  returned: always
  type: str
  sample: lxcri-oci-node-exporter.service
bundle:
  description: The bundle directory.
  returned: always
  type: str
actions:
  description: What was done (or in check mode would be done), in order.
  returned: always
  type: list
  elements: str
image:
  description: The image reference.
  returned: when the image was read
  type: str
digest:
  description: The image's manifest digest.
  returned: when the image was read
  type: str
runtime:
  description: The backend the unit runs and why.
  returned: with an image
  type: dict
  contains:
    backend:
      description: V(libcrun) or V(cli).
      type: str
    reason:
      description: Why that backend.
      type: str
    fallback_from:
      description: V(libcrun) when libcrun was wanted (V(auto)) and could not be used, else null.
      type: str
    cgroup_layout:
      description:
        - The cgroup layout crun gets (V(v2), V(hybrid) - seen as cgroup2 alone, V(v1) - also a hybrid node's v1
          hierarchies alone when limits need them, or V(none)).
      type: str
process:
  description: The container's process.
  returned: with an image, and after a rollback
  type: dict
  contains:
    argv:
      description: The command line.
      type: list
      elements: str
    env:
      description: The environment.
      type: list
      elements: str
    cwd:
      description: The working directory.
      type: str
    user:
      description: The user as given.
      type: str
    uid:
      description: The user id (null in check mode when only the layers would tell).
      type: int
    gid:
      description: The group id (null in check mode when only the layers would tell).
      type: int
    groups:
      description: Supplementary group ids.
      type: list
      elements: int
    stop_signal:
      description: The stop signal.
      type: str
    volumes:
      description: The image's declared volumes.
      type: list
      elements: str
rootfs:
  description: Where the root filesystem is.
  returned: when the bundle was written
  type: dict
  contains:
    path:
      description: The root filesystem's directory.
      type: str
    dataset:
      description: The ZFS dataset holding the bundle, or null.
      type: str
volumes:
  description: The container's mounts besides the runtime's own (source on the node, target, read_only, kind).
  returned: when the bundle was written
  type: list
  elements: dict
snapshot:
  description: The rollback snapshot taken before an image change.
  returned: when one was taken
  type: str
pruned:
  description: Rollback snapshots removed to keep O(keep_snapshots).
  returned: when some were removed
  type: list
  elements: str
exec:
  description:
    - The command prefix that runs a command in the running container (its namespaces, root and working
      directory, by the pid the runtime's state gives; exit status 125 when the container does not run), as
      C(pct exec VMID --) does for a Proxmox VE container; append the command's argv.
  returned: unless O(state=absent) (or in check mode)
  type: list
  elements: str
  sample: [/usr/bin/python3, -I, -B, /var/lib/lxcri/oci/.engine/0123456789abcdef/lxcri-oci.py, exec, /var/lib/lxcri/oci/shipper, "--"]
previous:
  description: Where an image change kept the previous version (a directory bundle with O(keep_previous)).
  returned: when one was kept
  type: str
rolled_back_to:
  description: The snapshot the container was rolled back to (O(zfs_dataset)), or the previous version's digest.
  returned: with O(rollback=true)
  type: str
removed:
  description: What O(state=absent) removed (or in check mode would remove).
  returned: with O(state=absent)
  type: list
  elements: str
kept_volumes:
  description: The volumes directory O(state=absent) left in place.
  returned: with O(state=absent) when the container has volumes and O(remove_volumes=false)
  type: str
status:
  description: The unit's state after the run (empty when there is no unit).
  returned: always
  type: dict
  contains:
    active:
      description: systemd's ActiveState.
      type: str
    sub:
      description: systemd's SubState.
      type: str
    enabled:
      description: systemd's UnitFileState.
      type: str
    main_pid:
      description: The runner's process id (0 when stopped).
      type: int
    pid:
      description:
        - The container's process id while the unit is active (as the runner's status line names it; in the
          node's PID namespace), for example for C(nsenter --target <pid> --all --root --wd CMD); null otherwise.
      type: int
    restarts:
      description: How many times systemd restarted the unit.
      type: int
journal:
  description: The unit's journal tail (its last run), when a start failed.
  returned: on a failed start
  type: str
error_kind:
  description:
    - When the module fails, what kind of error it was; V(oci_container) for what this module refuses or a unit
      that does not start, the kinds of M(lxcri.proxmox.oci_image) for the image (V(registry), V(verification),
      ...), V(flatten) and V(image_config) for its layers and config, V(runtime) for the OCI runtime.
  returned: failed
  type: str
  sample: oci_container
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.container import ContainerManager, container_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=container_argument_spec(),
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    params = dict(module.params)
    manager = None
    try:
        manager = ContainerManager(params, check_mode=module.check_mode, runner=module_runner(module))
        result = manager.run()
    except LxcriError as exc:
        fail_module(module, exc, engine=manager, name=params["name"],
                    changed=bool(manager and manager.result["changed"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
