# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The option the collection's action plugin sets in check mode; the argument spec is
    # plugins/module_utils/pve/checkplan.py check_mode_plan_argument_spec().
    DOCUMENTATION = r"""
options:
  check_mode_plan:
    description:
      - Set by the collection's action plugin in check mode, not by hand - what earlier tasks of the same run
        predicted for containers (kept as the host fact C(lxcri_check_mode_plan)), so that a check-mode chain
        (create, snapshot, stop, delete) sees each container as the earlier tasks would leave it. Ignored outside
        check mode.
    type: dict
"""
