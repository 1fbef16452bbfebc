# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property values compared the way ZFS means them, not as raw strings.

Current values come from ``zfs get -Hp`` (sizes in bytes, ``none`` as 0);
desired values come from users (``1G``, ``none``, ``true``, ``on``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError

SIZE_PROPS = frozenset((
    "quota", "refquota", "reservation", "refreservation", "volsize", "volblocksize", "recordsize",
    "special_small_blocks", "filesystem_limit", "snapshot_limit", "used", "available", "referenced",
    "logicalused", "logicalreferenced", "written", "usedbysnapshots", "usedbydataset", "usedbychildren",
    "usedbyrefreservation",
))
# "none" means 0 for these (zfs get -p prints 0)
NONE_IS_ZERO = frozenset(("quota", "refquota", "reservation", "refreservation", "special_small_blocks"))
CREATION_ONLY = frozenset(("encryption", "volblocksize", "casesensitivity", "normalization", "utf8only",
                           "keyformat", "pbkdf2iters"))
READ_ONLY = frozenset((
    "type", "creation", "used", "available", "referenced", "compressratio", "refcompressratio", "mounted",
    "origin", "clones", "version", "usedbysnapshots", "usedbydataset", "usedbychildren", "usedbyrefreservation",
    "defer_destroy", "userrefs", "logicalused", "logicalreferenced", "written", "guid", "createtxg",
    "objsetid", "encryptionroot", "keystatus", "snapshot_count", "filesystem_count", "receive_resume_token",
))
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?\s*$", re.I)


def parse_size(value, prop="size"):
    """``1G`` -> 1073741824 (ZFS sizes are binary); ``none`` -> 0 where that is ZFS's meaning."""
    if isinstance(value, bool):
        raise ZfsError("%s: %r is not a size" % (prop, value), "invalid_property")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lower() == "none" and prop in NONE_IS_ZERO:
        return 0
    match = _SIZE.match(text)
    if not match:
        raise ZfsError("%s: %r is not a size (use bytes or a number with K, M, G, T, P or E)" % (prop, value),
                       "invalid_property")
    number, unit = match.groups()
    return int(round(float(number) * (1024 ** _UNITS[unit.upper()])))


def to_zfs(prop, value):
    """A desired value as the string ``zfs set`` takes."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\n" in text or "\0" in text:
        raise ZfsError("%s: values cannot contain newlines or NUL" % prop, "invalid_property")
    return text


def normalise(prop, value):
    """A comparable form of a desired or current value."""
    if prop in SIZE_PROPS:
        if str(value).strip() in ("-", ""):
            return None
        return parse_size(value, prop)
    text = to_zfs(prop, value)
    if ":" not in prop:  # native properties are case-insensitive words; user properties are not
        text = text.lower()
    if text in ("yes", "true"):
        return "on"
    if text in ("no", "false"):
        return "off"
    return text


def same(prop, desired, current):
    """Does the current value satisfy the desired one?"""
    want = normalise(prop, desired)
    have = normalise(prop, current)
    if prop == "encryption" and want == "on":
        return have not in (None, "off")  # "on" means the default cipher, whichever it is
    return want == have


def is_inherited(source):
    return source is not None and (source.startswith("inherited") or source == "default")


def plan(desired, current, inherit=(), exists=True):
    """Compare properties.

    ``current`` maps property -> (value, source).  Returns a dict with
    ``set`` {prop: zfs value}, ``inherit`` [props], ``creation_only`` and
    ``read_only`` {prop: {"desired", "current"}} mismatches that are reported but never changed.
    """
    result = {"set": {}, "inherit": [], "creation_only": {}, "read_only": {}}
    for prop, value in sorted((desired or {}).items()):
        if prop in inherit:
            raise ZfsError("property %s is both set and inherited" % prop, "invalid_property")
        have = current.get(prop)
        if prop in READ_ONLY:
            if have is None or not same(prop, value, have[0]):
                result["read_only"][prop] = {"desired": value, "current": have and have[0]}
            continue
        if exists and prop in CREATION_ONLY:
            if have is None or not same(prop, value, have[0]):
                result["creation_only"][prop] = {"desired": value, "current": have and have[0]}
            continue
        if have is None or not same(prop, value, have[0]):
            result["set"][prop] = to_zfs(prop, value)
    for prop in sorted(inherit or ()):
        have = current.get(prop)
        if have is not None and not is_inherited(have[1]) and have[1] != "-":
            result["inherit"].append(prop)
    return result
