# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the ZFS engine; ``kind`` classifies them for callers and tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError


class ZfsError(LxcriError):
    """``str(err)`` is the user-facing message; ``kind`` is one of the KINDS."""

    KINDS = ("pool_missing", "not_found", "exists", "busy", "permission", "invalid_name", "invalid_property",
             "driver_unavailable", "refused", "unsupported", "failed")

    def __init__(self, message, kind="failed", name=None):
        LxcriError.__init__(self, message, kind)
        self.name = name
