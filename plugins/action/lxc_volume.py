# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs lxcri.proxmox.lxc_volume; in check mode it carries the predictions of earlier tasks (check_mode_plan.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.plugin_utils.check_mode_plan import CheckModePlanAction


class ActionModule(CheckModePlanAction):
    pass
