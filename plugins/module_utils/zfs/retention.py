# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot retention, sanoid-like: keep the newest snapshot of each of the newest N
hours/days/weeks/months/years, plus the newest ``keep_last``; everything else under the
prefix is pruned.  Pure logic over ``(name, creation_epoch)`` records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import PVE_SNAPSHOT

CLASSES = ("hourly", "daily", "weekly", "monthly", "yearly")
_AGE = re.compile(r"^\s*(\d+)\s*([smhdwy]?)\s*$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_age(text):
    """``90m``, ``36h``, ``14d``, ``8w``, ``1y`` or seconds -> seconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _AGE.match(str(text or ""))
    if not match:
        raise ZfsError("max_age %r: use a number with s, m, h, d, w or y" % (text,), "invalid_property")
    return int(match.group(1)) * _AGE_UNITS[match.group(2)]


def bucket(cls, epoch):
    t = time.gmtime(epoch)
    if cls == "hourly":
        return time.strftime("%Y-%m-%dT%H", t)
    if cls == "daily":
        return time.strftime("%Y-%m-%d", t)
    if cls == "weekly":
        year, week, dummy = datetime.date(t.tm_year, t.tm_mon, t.tm_mday).isocalendar()
        return "%04d-W%02d" % (year, week)
    if cls == "monthly":
        return time.strftime("%Y-%m", t)
    return time.strftime("%Y", t)


def snapshot_name(prefix, epoch):
    """UTC, sortable: ``<prefix>2026-11-22_07.20.11`` (no characters ZFS or shells dislike)."""
    return prefix + time.strftime("%Y-%m-%d_%H.%M.%S", time.gmtime(epoch))


def validate_policy(policy, keep_last=None, max_age=None):
    for key, value in (policy or {}).items():
        if key not in CLASSES:
            raise ZfsError("retention: unknown class %r (use %s)" % (key, ", ".join(CLASSES)), "invalid_property")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ZfsError("retention.%s must be a whole number >= 0" % key, "invalid_property")
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise ZfsError("keep_last must be a whole number >= 0", "invalid_property")
    if not policy and keep_last is None and max_age is None:
        raise ZfsError("retention needs at least one of retention, keep_last or max_age", "invalid_property")
    if max_age is not None:
        parse_age(max_age)  # a bad max_age must fail before the snapshot is taken, not at the pruning after it


def decide(snapshots, prefix, policy=None, keep_last=None, max_age=None, now=None, protected=None):
    """Split one dataset's snapshots into keep / prune / skipped.

    ``snapshots``: [(full_name, creation_epoch)] of ONE dataset.
    ``protected``: {full_name: reason} for held or cloned snapshots (never pruned).
    Returns {"keep": [...], "prune": [...], "skipped": {name: reason}}.
    """
    policy = policy or {}
    protected = protected or {}
    now = time.time() if now is None else now
    skipped = {}
    candidates = []
    for name, creation in snapshots:
        snap = name.split("@", 1)[1]
        if PVE_SNAPSHOT.match(snap):
            skipped[name] = "reserved by Proxmox VE"
        elif not snap.startswith(prefix):
            skipped[name] = "outside the prefix %s" % prefix
        else:
            candidates.append((name, creation))
    # newest first; ties broken by name so the result is deterministic
    candidates.sort(key=lambda item: (item[1], item[0]), reverse=True)
    keep = set()
    if keep_last:
        keep.update(name for name, dummy in candidates[:keep_last])
    for cls in CLASSES:
        count = policy.get(cls) or 0
        seen = []
        for name, creation in candidates:
            key = bucket(cls, creation)
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            keep.add(name)
    if not policy and keep_last is None:
        keep.update(name for name, dummy in candidates)  # max_age alone decides
    if max_age is not None:
        limit = now - parse_age(max_age)
        keep.difference_update(name for name, creation in candidates if creation < limit)
    prune = []
    for name, creation in candidates:
        if name in keep:
            continue
        if name in protected:
            skipped[name] = protected[name]
            continue
        prune.append(name)
    return {"keep": sorted(keep), "prune": sorted(prune), "skipped": skipped}
