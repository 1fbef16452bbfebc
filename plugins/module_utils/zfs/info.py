# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_info: datasets and snapshots under a root with parsed values, from one ``zfs get`` call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import split_snapshot, validate_dataset

NUMERIC = re.compile(r"^-?\d+$")
RATIO = re.compile(r"^(\d+(?:\.\d+)?)x$")


def parse_value(value):
    """``-`` -> None, integers -> int, ``1.50x`` -> 1.5; everything else stays a string."""
    if value in ("-", ""):
        return None
    if NUMERIC.match(value):
        return int(value)
    match = RATIO.match(value)
    if match:
        return float(match.group(1))
    return value


def parse_source(source):
    if source in ("-", ""):
        return {"kind": "none", "from": None}
    if source.startswith("inherited from "):
        return {"kind": "inherited", "from": source[len("inherited from "):]}
    return {"kind": source, "from": None}


def collect(zfs, root, recursive=True, properties="all", types=("filesystem", "volume", "snapshot")):
    validate_dataset(split_snapshot(root)[0])
    props = properties if properties == "all" else ",".join(sorted(set(list(properties) + ["type"])))
    data = zfs.get_all([root], recursive=recursive, props=props)
    if root not in data:
        raise ZfsError("dataset %s does not exist" % root, "not_found", root)
    datasets, snapshots = [], []
    for name in sorted(data):
        values = data[name]
        kind = values.get("type", ("-",))[0]
        if kind not in types:
            continue
        entry = {"name": name, "type": kind,
                 "properties": dict((p, {"value": parse_value(v), "source": parse_source(s)})
                                    for p, (v, s) in sorted(values.items()))}
        (snapshots if kind == "snapshot" else datasets).append(entry)
    return {"datasets": datasets, "snapshots": snapshots, "zfs_processes": zfs.process_calls}
