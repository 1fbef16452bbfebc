# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS names: validation, and the guard rails around what Proxmox VE owns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError

MAX_NAME = 255
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_SNAPNAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
# Datasets Proxmox VE creates for guests and templates, and its own snapshots.
PVE_DATASET = re.compile(r"^(vm|base|subvol|basevol)-\d+-.+$")
PVE_SNAPSHOT = re.compile(r"^(__base__|__replicate_.*__|__migration__)$")


def split_snapshot(name):
    dataset, sep, snap = name.partition("@")
    return dataset, (snap if sep else None)


def validate_dataset(name):
    if not name or len(name) > MAX_NAME:
        raise ZfsError("invalid dataset name %r: empty or longer than %d characters" % (name, MAX_NAME),
                       "invalid_name", name)
    if "@" in name or "#" in name:
        raise ZfsError("invalid dataset name %r: use dataset@snapshot only where a snapshot is meant" % name,
                       "invalid_name", name)
    for part in name.split("/"):
        if not _COMPONENT.match(part):
            raise ZfsError("invalid dataset name %r: component %r may hold only letters, digits and _ . : -, "
                           "and must start with a letter or digit" % (name, part), "invalid_name", name)
    return name


def validate_snapshot(name):
    dataset, snap = split_snapshot(name)
    if snap is None:
        raise ZfsError("invalid snapshot name %r: expected dataset@snapname" % name, "invalid_name", name)
    validate_dataset(dataset)
    if not _SNAPNAME.match(snap) or len(name) > MAX_NAME:
        raise ZfsError("invalid snapshot name %r: the part after @ may hold only letters, digits and _ . : -"
                       % name, "invalid_name", name)
    return dataset, snap


def pool_of(name):
    return name.split("/", 1)[0].split("@", 1)[0]


def is_pool_root(name):
    return "/" not in split_snapshot(name)[0]


def pve_managed(name):
    """The PVE-owned component of ``name`` (a dataset or snapshot), or None."""
    dataset, snap = split_snapshot(name)
    for part in dataset.split("/"):
        if PVE_DATASET.match(part):
            return part
    if snap is not None and PVE_SNAPSHOT.match(snap):
        return "@" + snap
    return None


def within(name, roots):
    dataset = split_snapshot(name)[0]
    return any(dataset == root or dataset.startswith(root.rstrip("/") + "/") for root in roots)


def guard(name, allow_pve_managed=False, allowed_roots=None, action="manage"):
    """Raise ZfsError(kind='refused') when ``name`` is off limits."""
    if is_pool_root(name) and split_snapshot(name)[1] is None:
        raise ZfsError("refusing to %s %s: it is a pool's root dataset" % (action, name), "refused", name)
    owned = pve_managed(name)
    if owned and not allow_pve_managed:
        raise ZfsError("refusing to %s %s: %s is managed by Proxmox VE (set allow_pve_managed: true to override)"
                       % (action, name, owned), "refused", name)
    if allowed_roots and not within(name, allowed_roots):
        raise ZfsError("refusing to %s %s: outside allowed_roots (%s)" % (action, name, ", ".join(allowed_roots)),
                       "refused", name)
