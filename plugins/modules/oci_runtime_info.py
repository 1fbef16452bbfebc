#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: oci_runtime_info
short_description: Report the OCI runtime (libcrun or crun CLI) and container facilities of a node
version_added: 0.1.0
description:
  - Detects whether a libcrun shared library loads through C(ctypes) and which version it is.
  - Detects the C(crun) command line runtime, its version, build flags and, where the installed
    crun supports it, the output of C(crun features).
  - Reports the cgroup layout (C(v1), C(v2), C(hybrid) or C(none)), which decides how crun can run
    bundles on the node.
  - Reports whether LXC, ZFS (the C(zfs)/C(zpool) commands and OpenZFS's C(libzfs_core) Python
    binding) and the Proxmox VE tools C(pct), C(pvesh) and C(pveversion) are present.
  - Reports the runtime the C(lxcri.proxmox.oci_runtime) role selected and proved, from its local fact
    file, or else what detection prefers.
  - Read-only. Needs only the Python standard library on the node. Candidate libraries are loaded in a
    child process, because libcrun re-executes the process that loads it.
author:
  - lxcri maintainers (@lxcri)
options:
  libcrun_search_paths:
    description:
      - Paths or shell globs of C(libcrun.so) files to try before the default locations.
      - The defaults are C(/opt/lxcri/libcrun/*/lib/libcrun.so.0), where the C(lxcri.proxmox.oci_runtime)
        role installs the libcrun it builds, then whatever the dynamic linker finds as C(crun).
      - Within one glob the highest version is tried first.
    type: list
    elements: path
    default: []
  crun_path:
    description:
      - Path of the C(crun) executable. By default it is looked up in C(PATH) and the sbin directories.
    type: path
  fact_path:
    description:
      - The local fact file the C(lxcri.proxmox.oci_runtime) role writes with the runtime it selected and
        proved. When it exists, RV(selected_runtime) is its content.
    type: path
    default: /etc/ansible/facts.d/lxcri_oci_runtime.fact
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    details: The module changes nothing, so there is nothing to diff.
  platform:
    platforms: posix
    details: Linux hosts, in particular Proxmox VE and Debian nodes.
notes:
  - libcrun has no call that returns its version. The version is read from the C(crun) binary
    installed in the same prefix as the library (built from the same source), else from a versioned
    prefix directory name such as C(/opt/lxcri/libcrun/1.8.1/lib). When neither exists, RV(libcrun.version)
    is null.
  - C(crun features) exists in crun 1.10 and later. With older crun, RV(crun.features) is null and
    RV(crun.features_supported) is false.
seealso:
  - name: OCI runtime features
    description: The structure returned by C(crun features).
    link: https://github.com/opencontainers/runtime-spec/blob/main/features.md
"""

EXAMPLES = r"""
- name: Inspect the OCI runtime on the Proxmox nodes
  lxcri.proxmox.oci_runtime_info:
  register: runtime

- name: Stop early when neither libcrun nor the crun CLI is usable
  ansible.builtin.assert:
    that: runtime.preferred_runtime is not none
    fail_msg: "No OCI runtime on {{ inventory_hostname }}; apply the lxcri.proxmox.oci_runtime role."

- name: Look for a libcrun built into a custom prefix as well
  lxcri.proxmox.oci_runtime_info:
    libcrun_search_paths:
      - /usr/local/lib/libcrun.so.0
      - /srv/crun-*/lib/libcrun.so.0
  register: runtime

- name: Show the cgroup layout
  ansible.builtin.debug:
    msg: "{{ runtime.cgroup.layout }}"
"""

RETURN = r"""
preferred_runtime:
  description:
    - The runtime the collection would use, C(libcrun) when a libcrun loads, else C(cli) when the crun
      command works, else null.
  returned: always
  type: str
  sample: cli
selected_runtime:
  description:
    - The runtime the C(lxcri.proxmox.oci_runtime) role selected and proved, read from O(fact_path)
      (with RV(selected_runtime.source) C(fact)), else RV(preferred_runtime) (source C(detection)).
    - From the fact file it also holds the role's C(reason), C(fallback_from), C(libcrun), C(crun),
      C(cgroup_layout), C(private_cgroup2) and C(checked_with) (see M(lxcri.proxmox.oci_runtime_check)'s C(fact)).
  returned: always
  type: dict
  contains:
    runtime:
      description: C(libcrun), C(cli) or null.
      type: str
      sample: libcrun
    source:
      description: C(fact) or C(detection).
      type: str
      sample: fact
    fact_path:
      description: The fact file looked at.
      type: str
      sample: /etc/ansible/facts.d/lxcri_oci_runtime.fact
    fact_error:
      description: Why an existing fact file was not used, or null.
      type: str
      sample: null
    libcrun:
      description: The libcrun of the selection, or null.
      type: dict
      sample: {"library": "/opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0", "version": "1.8.1"}
libcrun:
  description: The result of loading libcrun through C(ctypes).
  returned: always
  type: dict
  contains:
    loaded:
      description: Whether a library loaded and exports libcrun's container API.
      type: bool
      sample: true
    path:
      description: The file the library was loaded from, with symlinks resolved.
      type: str
      sample: /opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0.0.0
    version:
      description: The crun release the library was built from, when it can be known. See the notes.
      type: str
      sample: 1.8.1
    version_source:
      description: Where RV(libcrun.version) was read.
      type: str
      sample: crun binary of the same prefix (/opt/lxcri/libcrun/1.8.1/bin/crun)
    python_binding:
      description: Path of crun's C(python_crun) extension installed beside the library, if any.
      type: str
      sample: /opt/lxcri/libcrun/1.8.1/lib/python3.11/site-packages/python_crun.so
    tried:
      description: Every candidate tried, in order, with the error that ruled it out (null for the one that loaded).
      type: list
      elements: dict
      sample: [{"path": "libcrun.so.0", "error": "libcrun.so.0: cannot open shared object file"}]
crun:
  description: The C(crun) command line runtime.
  returned: always
  type: dict
  contains:
    present:
      description: Whether C(crun --version) ran successfully.
      type: bool
      sample: true
    path:
      description: Path of the executable.
      type: str
      sample: /usr/bin/crun
    version:
      description: Version from C(crun --version).
      type: str
      sample: 1.8.1
    commit:
      description: Source commit from C(crun --version).
      type: str
      sample: f8a096be060b22ccd3d5f3ebe44108517fbf6c30
    spec:
      description: OCI runtime-spec version crun implements.
      type: str
      sample: 1.0.0
    build_flags:
      description: Build features from C(crun --version), such as C(+SYSTEMD) or C(-CRIU).
      type: list
      elements: str
      sample: ["+SYSTEMD", "+SELINUX", "+CAP", "+SECCOMP", "+EBPF", "+YAJL"]
    features_supported:
      description: Whether this crun has the C(features) command.
      type: bool
      sample: false
    features:
      description: The JSON printed by C(crun features), or null when not supported.
      type: dict
      sample: {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0"}
    error:
      description: Why crun is not usable, or null.
      type: str
      sample: crun not found in PATH
cgroup:
  description: The cgroup layout of the node.
  returned: always
  type: dict
  contains:
    layout:
      description: C(v2) (unified), C(v1) (legacy), C(hybrid) (v1 controllers plus a cgroup2 mount) or C(none).
      type: str
      sample: hybrid
    unified_mountpoint:
      description: Where cgroup2 is mounted, or null.
      type: str
      sample: /sys/fs/cgroup/unified
    v1_controllers:
      description: Controllers mounted as cgroup v1 hierarchies.
      type: list
      elements: str
      sample: ["blkio", "cpu", "memory", "pids"]
    v1_named_hierarchies:
      description: Named v1 hierarchies without controllers, such as C(systemd).
      type: list
      elements: str
      sample: ["systemd"]
    v2_controllers:
      description: Controllers available in the cgroup2 root.
      type: list
      elements: str
      sample: ["cpu", "io", "memory", "pids"]
lxc:
  description: The LXC tools.
  returned: always
  type: dict
  contains:
    present:
      description: Whether C(lxc-start) was found.
      type: bool
      sample: true
    path:
      description: Path of C(lxc-start).
      type: str
      sample: /usr/bin/lxc-start
    version:
      description: LXC version from C(lxc-start --version).
      type: str
      sample: 5.0.2
zfs:
  description: ZFS command line tools and the OpenZFS Python binding.
  returned: always
  type: dict
  contains:
    cli:
      description: The C(zfs) and C(zpool) commands.
      type: dict
      sample:
        present: true
        path: /usr/sbin/zfs
        zpool_path: /usr/sbin/zpool
        implementation: openzfs
        version: 2.2.7-pve1
        kmod_version: 2.2.7-pve1
        pool_version: 5000
        usable: true
    libzfs_core:
      description:
        - Whether OpenZFS's C(libzfs_core) Python module (Debian C(python3-pyzfs)) imports in the
          module's interpreter. The abandoned PyPI package of the same module name is reported as not importable.
      type: dict
      sample: {"importable": false, "path": null, "version": null, "error": "ModuleNotFoundError: No module named 'libzfs_core'"}
proxmox:
  description: Proxmox VE tools on the node.
  returned: always
  type: dict
  contains:
    is_node:
      description: Whether C(pct) and C(pvesh) are both present.
      type: bool
      sample: false
    pct_path:
      description: Path of C(pct), or null.
      type: str
      sample: /usr/sbin/pct
    pvesh_path:
      description: Path of C(pvesh), or null.
      type: str
      sample: /usr/bin/pvesh
    pveversion_path:
      description: Path of C(pveversion), or null.
      type: str
      sample: /usr/bin/pveversion
    version:
      description: The pve-manager version from C(pveversion), or null.
      type: str
      sample: 9.1.1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.detect import runtime_report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            libcrun_search_paths=dict(type="list", elements="path", default=[]),
            crun_path=dict(type="path"),
            fact_path=dict(type="path", default="/etc/ansible/facts.d/lxcri_oci_runtime.fact"),
        ),
        supports_check_mode=True,
    )
    report = runtime_report(
        runner=module_runner(module),
        libcrun_search=module.params["libcrun_search_paths"],
        crun_path=module.params["crun_path"],
        fact_path=module.params["fact_path"],
    )
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
