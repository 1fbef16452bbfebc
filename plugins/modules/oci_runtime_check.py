#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: oci_runtime_check
short_description: Select the OCI runtime of a node (libcrun or the crun CLI) and prove it runs a bundle
version_added: 0.1.0
description:
  - Selects the OCI runtime backend the collection uses on the node, libcrun through crun's C(python_crun)
    binding when it loads, else the C(crun) command line, and reports the choice and why.
  - Proves the selected backend works by running a throwaway bundle through it, in a temporary directory,
    with a private state root. The bundle's root file system is a static busybox (C(/bin/busybox)) when the
    node has one, else the node's C(/usr) bind-mounted read-only; its process prints a word the module checks.
    The bundle runs once with the runtime's C(run), then once through C(create), C(start), wait and C(delete).
  - On a hybrid cgroup host (cgroup v1 controllers plus a cgroup2 mount), which crun refuses, the runtime
    runs in a private mount namespace with a cgroup2-only C(/sys/fs/cgroup); the play's host keeps its view.
  - Returns a deterministic RV(fact) that the C(lxcri.proxmox.oci_runtime) role writes to
    C(/etc/ansible/facts.d/lxcri_oci_runtime.fact) and that M(lxcri.proxmox.oci_runtime_info) reads back.
  - This is a separate module rather than an option of M(lxcri.proxmox.oci_runtime_info) because that
    module only reads, cheaply, while this one starts processes and containers.
author:
  - lxcri maintainers (@lxcri)
options:
  runtime:
    description:
      - C(auto) uses libcrun when a libcrun with its C(python_crun) binding loads and falls back to the CLI
        otherwise, reporting why in RV(reason).
      - C(libcrun) uses libcrun or fails. C(cli) uses the C(crun) command only.
    type: str
    choices: [auto, libcrun, cli]
    default: auto
  libcrun_search_paths:
    description:
      - Paths or shell globs of C(libcrun.so) files to try before C(/opt/lxcri/libcrun/*/lib/libcrun.so.0),
        where the C(lxcri.proxmox.oci_runtime) role installs the libcrun it builds. Within one glob the
        highest version comes first.
      - A candidate is used only with crun's C(python_crun) extension installed in the same prefix
        (C(<prefix>/lib/python3/dist-packages)).
    type: list
    elements: path
    default: []
  crun_path:
    description:
      - Path of the C(crun) executable. By default it is looked up in C(PATH) and the sbin directories.
    type: path
  probe_text:
    description:
      - The word the check bundle prints and the module expects back.
    type: str
    default: lxcri-oci-runtime-check
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module runs in check mode as well. It changes nothing on the node that outlives it (a
        temporary bundle directory and state root, a container it deletes), so what it reports in check mode
        is what it would report otherwise.
  diff_mode:
    support: none
    details: The module changes nothing, so there is nothing to diff.
  platform:
    platforms: posix
    details: Linux hosts, in particular Proxmox VE and Debian nodes, as root.
notes:
  - The runtime works in a child process of the module. Loading libcrun re-executes the loading process
    (crun's CVE-2019-5736 protection), which must not happen to the module itself, and a libcrun that
    fails to load then takes only the child down, and the module falls back to the CLI.
  - C(changed) is always false.
seealso:
  - module: lxcri.proxmox.oci_runtime_info
"""

EXAMPLES = r"""
- name: Prove the OCI runtime works, libcrun if possible
  lxcri.proxmox.oci_runtime_check:
  register: runtime

- name: Show the choice
  ansible.builtin.debug:
    msg: "{{ runtime.backend }}: {{ runtime.reason }}"

- name: Insist on libcrun from a custom prefix
  lxcri.proxmox.oci_runtime_check:
    runtime: libcrun
    libcrun_search_paths:
      - /srv/crun-*/lib/libcrun.so.0

- name: Check the CLI alone
  lxcri.proxmox.oci_runtime_check:
    runtime: cli
"""

RETURN = r"""
backend:
  description: The backend selected and checked, C(libcrun) or C(cli).
  returned: success
  type: str
  sample: libcrun
reason:
  description: Why that backend was selected; for a fallback, why libcrun could not be used.
  returned: success
  type: str
  sample: libcrun /opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0 and python_crun load
fallback_from:
  description: C(libcrun) when C(runtime=auto) fell back to the CLI, else null.
  returned: success
  type: str
  sample: null
libcrun:
  description: The libcrun candidate used or tried, or null when none was found.
  returned: success
  type: dict
  contains:
    library:
      description: Path of C(libcrun.so).
      type: str
      sample: /opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0
    prefix:
      description: Its install prefix.
      type: str
      sample: /opt/lxcri/libcrun/1.8.1
    python_crun_dir:
      description: The directory holding C(python_crun).
      type: str
      sample: /opt/lxcri/libcrun/1.8.1/lib/python3/dist-packages
    version:
      description: The crun release it was built from, read from the prefix's own C(crun) or its name.
      type: str
      sample: 1.8.1
crun:
  description: The crun command line runtime.
  returned: success
  type: dict
  contains:
    path:
      description: Path of C(crun), or null.
      type: str
      sample: /usr/bin/crun
    version:
      description: Its version.
      type: str
      sample: 1.8.1
cgroup_layout:
  description: The node's cgroup layout, C(v1), C(v2), C(hybrid) or C(none).
  returned: success
  type: str
  sample: hybrid
isolation:
  description: How the runtime is run on this cgroup layout.
  returned: success
  type: dict
  sample: {"private_cgroup2": true, "cgroup_manager": null, "cgroup_layout": "hybrid",
           "note": "hybrid cgroups: private mount namespace with a cgroup2-only /sys/fs/cgroup"}
check:
  description: What the check bundle did.
  returned: success
  type: dict
  sample: {"backend": "libcrun", "bundle_kind": "busybox", "run": {"exit_status": 0, "output": "lxcri-oci-runtime-check"},
           "lifecycle": ["created", "stopped"]}
fact:
  description: The choice, versions and paths, stable from run to run, as the oci_runtime role records them.
  returned: success
  type: dict
  sample:
    runtime: libcrun
    reason: libcrun /opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0 and python_crun load
    fallback_from: null
    libcrun: {"library": "/opt/lxcri/libcrun/1.8.1/lib/libcrun.so.0", "prefix": "/opt/lxcri/libcrun/1.8.1",
              "python_crun_dir": "/opt/lxcri/libcrun/1.8.1/lib/python3/dist-packages", "version": "1.8.1"}
    crun: {"path": "/usr/bin/crun", "version": "1.8.1"}
    cgroup_layout: hybrid
    private_cgroup2: true
    checked_with: busybox
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      V(runtime).
  returned: failed
  type: str
  sample: runtime
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import module_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.check import (
    DEFAULT_PROBE_TEXT, RuntimeCheckError, check_runtime)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            runtime=dict(type="str", choices=["auto", "libcrun", "cli"], default="auto"),
            libcrun_search_paths=dict(type="list", elements="path", default=[]),
            crun_path=dict(type="path"),
            probe_text=dict(type="str", default=DEFAULT_PROBE_TEXT),
        ),
        supports_check_mode=True,
    )
    try:
        result = check_runtime(module_runner(module), module.params["runtime"], module.params["libcrun_search_paths"],
                               crun_path=module.params["crun_path"], probe_text=module.params["probe_text"])
    except RuntimeCheckError as exc:
        fail_module(module, exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
