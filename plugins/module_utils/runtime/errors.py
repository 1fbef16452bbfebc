# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime package's error: what the driver, its agent and the bundle helpers raise."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError


class OciRuntimeError(LxcriError):
    """A runtime operation failed; the message says which and why."""

    kind = "runtime"
