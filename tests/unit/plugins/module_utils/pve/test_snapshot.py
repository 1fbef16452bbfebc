"""lxc_snapshot's pure logic: the listing order, retention, name checks, check-mode prediction, diff."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.snapshot import (
    SnapshotError, check_name, diff_of, ordered, predicted, rollback_plan, to_prune)


def test_ordered_follows_parents_and_drops_current():
    listing = [{"name": "current", "parent": "c", "running": 1}, {"name": "c", "parent": "b", "snaptime": 1},
               {"name": "a", "snaptime": 9, "description": "first"}, {"name": "b", "parent": "a", "snaptime": 5}]
    out = ordered(listing)
    assert [s["name"] for s in out] == ["a", "b", "c"]  # the parent chain wins over snaptime
    assert out[0] == {"name": "a", "snaptime": 9, "description": "first", "parent": None}
    assert ordered([{"name": "current"}]) == []


def test_ordered_puts_orphans_last_by_time():
    listing = [{"name": "x", "parent": "gone", "snaptime": 3}, {"name": "a", "snaptime": 1}]
    assert [s["name"] for s in ordered(listing)] == ["a", "x"]


@pytest.mark.parametrize("names, prefix, keep, protect, doomed", [
    (["pre_1", "pre_2", "pre_3"], "pre_", 2, "pre_3", ["pre_1"]),
    (["pre_1", "manual", "pre_2"], "pre_", 1, "pre_2", ["pre_1"]),
    (["pre_1", "pre_2"], "pre_", 5, None, []),
    (["pre_1", "pre_2", "pre_3"], "pre_", 1, "pre_1", ["pre_2", "pre_3"]),  # the named one stays, even if oldest
    (["a", "b"], "pre_", 1, "a", []),
])
def test_to_prune(names, prefix, keep, protect, doomed):
    assert to_prune(names, prefix, keep, protect) == doomed


def test_keep_must_be_positive():
    with pytest.raises(SnapshotError, match="at least 1"):
        to_prune(["a"], "a", 0)


def test_empty_prefix_is_refused():
    with pytest.raises(SnapshotError, match="prefix must not be empty"):
        to_prune(["a", "b"], "", 1)


@pytest.mark.parametrize("name", ["pre-upgrade-1", "lxcri-1", "a_b", "Ab", "x" * 40])
def test_check_name_accepts_pve_configids(name):
    check_name(name)


@pytest.mark.parametrize("name, problem", [
    ("1pre", "not a Proxmox VE snapshot name"), ("a", "not a Proxmox VE snapshot name"),
    ("pre.1", "not a Proxmox VE snapshot name"), ("pre 1", "not a Proxmox VE snapshot name"),
    ("x" * 41, "at most 40"), ("", "not a Proxmox VE snapshot name"), ("current", "reserved"),
    ("vzdump", "reserved"),
])
def test_check_name_refuses(name, problem):
    with pytest.raises(SnapshotError, match=problem):
        check_name(name)


BEFORE = [{"name": "a", "snaptime": 1, "description": "", "parent": None},
          {"name": "b", "snaptime": 2, "description": "", "parent": "a"}]


def test_predicted_and_diff_for_a_create_with_retention():
    after = predicted(BEFORE, "present", "c", "new", deleted=["a"])
    assert after == [BEFORE[1], {"name": "c", "snaptime": None, "description": "new", "parent": "b"}]
    assert diff_of(BEFORE, after) == {"before": {"snapshots": ["a", "b"]}, "after": {"snapshots": ["b", "c"]}}


def test_predicted_unchanged_when_present_or_rolled_back():
    assert predicted(BEFORE, "present", "b") == BEFORE
    assert predicted(BEFORE, "rollback", "b") == BEFORE
    assert predicted(BEFORE, "absent", "b", deleted=["b"]) == BEFORE[:1]
    assert predicted([], "present", "x")[0]["parent"] is None


@pytest.mark.parametrize("version, start, plan", [
    ((9, 1, 1), True, ({"start": 1}, False)),
    ((8, 4, 0), True, ({"start": 1}, False)),
    ((7, 3, 0), True, ({"start": 1}, False)),
    ((7, 2, 7), True, ({}, True)),  # no start parameter before pve-container 4.3: a separate start call
    ((9, 1, 1), False, ({}, False)),
])
def test_rollback_plan(version, start, plan):
    assert rollback_plan(PveFeatures(version), start) == plan
