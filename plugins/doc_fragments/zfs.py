# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by the ZFS modules; the argument spec is
    # plugins/module_utils/zfs/facade.py zfs_argument_spec() (a unit test holds them together).
    DOCUMENTATION = r"""
options:
  driver:
    description:
      - V(libzfs_core) uses OpenZFS's Python binding (Debian C(python3-pyzfs)) for create, clone, snapshots,
        snapshot destroy, rollback, holds and promote, and the C(zfs) command for the rest (listing,
        properties, mounting, volumes).
      - V(cli) uses only the C(zfs) and C(zpool) commands.
      - V(auto) uses libzfs_core when it imports, else the commands.
      - Which driver did each operation is returned in RV(driver_operations).
    type: str
    choices: [auto, libzfs_core, cli]
    default: auto
  allow_pve_managed:
    description:
      - Allow touching datasets Proxmox VE owns (C(vm-|base-|subvol-|basevol-<id>-*)) and its snapshots
        (C(__base__), C(__replicate_*__), C(__migration__)). Refused by default.
    type: bool
    default: false
  allowed_roots:
    description: When set, refuse anything outside these datasets.
    type: list
    elements: str
    default: []
"""
