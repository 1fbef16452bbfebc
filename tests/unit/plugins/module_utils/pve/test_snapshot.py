"""lxc_snapshot's pure logic: the listing order and retention."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.snapshot import SnapshotError, ordered, to_prune


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
