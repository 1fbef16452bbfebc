#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: prometheus_textfile
short_description: Write Prometheus metrics for node_exporter's textfile collector, atomically
description:
  - Writes a set of metrics as C(<name>.prom) into node_exporter's textfile directory (its
    C(--collector.textfile.directory); Debian's C(prometheus-node-exporter) reads C(/var/lib/prometheus/node-exporter)).
    The file is written to a temporary name in the same directory and renamed over the old one, so node_exporter never
    reads half a file.
  - A metric can keep its current value (O(metrics[].keep), for a timestamp that moves only when something happened)
    or add to it (O(metrics[].increment), for a counter), so an unchanged run writes an unchanged file
    (C(changed=false)).
  - Used by the M(lxcri.proxmox.oci_app) role for its deploy metrics; the M(lxcri.proxmox.zfs_snapshots) role's runner
    writes its job metrics with the same code.
  - Runs on the node; needs only the Python standard library.
author:
  - lxcri maintainers (@lxcri)
options:
  name:
    description: The file's name without C(.prom) (letters, digits, C(_), C(.), C(-)).
    type: str
    required: true
  directory:
    description: node_exporter's textfile directory. It must exist (the package makes it).
    type: path
    default: /var/lib/prometheus/node-exporter
  state:
    description: V(present) writes the metrics; V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  keep_others:
    description: Keep the file's samples that O(metrics) does not give (by name and labels). V(false) - the file
      holds exactly O(metrics).
    type: bool
    default: false
  metrics:
    description: The metrics (with O(keep_others=false), the whole file).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The metric's name (for example V(lxcri_app_last_deploy_timestamp_seconds)).
        type: str
        required: true
      value:
        description: Its value (a number, or a boolean as 1 or 0).
        type: raw
        required: true
      labels:
        description: Its labels.
        type: dict
      help:
        description: The HELP text of the metric's name.
        type: str
      type:
        description: The TYPE of the metric's name.
        type: str
        choices: [gauge, counter, untyped]
        default: gauge
      keep:
        description: Keep the sample's value in the current file when it has one (O(metrics[].value) is then only the
          first value).
        type: bool
        default: false
      increment:
        description: Add O(metrics[].value) to the sample's value in the current file (0 when it has none).
        type: bool
        default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Record a deploy
  lxcri.proxmox.prometheus_textfile:
    name: lxcri_app_web
    metrics:
      - name: lxcri_app_last_deploy_timestamp_seconds
        help: When the app was last deployed, upgraded or rolled back.
        labels: {app: web}
        value: "{{ now(utc=true).timestamp() | int }}"
        keep: "{{ not deployed_now }}"
      - name: lxcri_app_rollbacks_total
        type: counter
        labels: {app: web}
        value: "{{ 1 if rolled_back else 0 }}"
        increment: true
"""

RETURN = r"""
path:
  description: The textfile.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/lxcri_app_web.prom
content:
  description: What the file holds (or would hold, in check mode) afterwards; empty when removed.
  returned: always
  type: str
error_kind:
  description: When the module fails, V(metrics) (a name Prometheus would refuse, no textfile directory, or a write
    that failed).
  returned: failed
  type: str
  sample: metrics
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils import metrics as textfile
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            directory=dict(type="path", default=textfile.DEFAULT_DIR),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            keep_others=dict(type="bool", default=False),
            metrics=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                value=dict(type="raw", required=True),
                labels=dict(type="dict"),
                help=dict(type="str"),
                type=dict(type="str", default="gauge", choices=["gauge", "counter", "untyped"]),
                keep=dict(type="bool", default=False),
                increment=dict(type="bool", default=False),
            )),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["state"] == "absent":
            changed, path, before = textfile.remove(params["directory"], params["name"], module.check_mode)
            after = ""
        else:
            for metric in params["metrics"]:
                if metric["keep"] and metric["increment"]:
                    raise textfile.MetricsError("metric %s: keep and increment exclude each other" % metric["name"])
            changed, path, before, after = textfile.update(params["directory"], params["name"], params["metrics"],
                                                           module.check_mode, params["keep_others"])
    except (LxcriError, OSError) as exc:
        if isinstance(exc, OSError):
            exc = textfile.MetricsError("cannot write the textfile: %s" % exc)
        fail_module(module, exc)
    module.exit_json(changed=changed, path=path, content=after,
                     diff={"before": before or "", "after": after, "before_header": path, "after_header": path})


if __name__ == "__main__":
    main()
