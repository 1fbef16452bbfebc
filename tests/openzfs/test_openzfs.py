"""Opt-in: both drivers against a real OpenZFS host.

    LXCRI_OPENZFS_POOL=tank pytest -m openzfs tests/openzfs

The tests create and destroy datasets under ``<pool>/lxcri-openzfs-test-<random>``
only.  They need root, the zfs command from OpenZFS, and (for the
libzfs_core driver) Debian's python3-pyzfs importable by this Python.
Skipped, with the reason, wherever LXCRI_OPENZFS_POOL is not set.
"""

import os
import subprocess
import uuid

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import subprocess_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.dataset import DatasetManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.snapshot import SnapshotManager

# Opt-in: without LXCRI_OPENZFS_POOL the suite skips, also under CI (this machine has no OpenZFS).
pytestmark = [pytest.mark.openzfs, pytest.mark.allowed_skip]
POOL = os.environ.get("LXCRI_OPENZFS_POOL")


@pytest.fixture
def root():
    if not POOL:
        pytest.skip("set LXCRI_OPENZFS_POOL to a scratch pool on an OpenZFS host to run these")
    name = "%s/lxcri-openzfs-test-%s" % (POOL, uuid.uuid4().hex[:8])
    subprocess.run(["zfs", "create", name], check=True)
    yield name
    subprocess.run(["zfs", "destroy", "-R", name], check=False)


@pytest.fixture(params=["cli", "libzfs_core"])
def zfs(request):
    try:
        return Zfs(subprocess_runner, request.param)
    except ZfsError as exc:
        pytest.skip(str(exc))


def test_openzfs_capabilities(zfs, root):
    caps = zfs.cli.caps
    assert caps["implementation"] == "openzfs" and caps["multi_snapshot"] and caps["holds"]


def test_dataset_and_atomic_snapshots(zfs, root):
    DatasetManager(zfs, {"name": root + "/a", "properties": {"quota": "1G", "atime": False}}).run()
    DatasetManager(zfs, {"name": root + "/b"}).run()
    wanted = {"name": root + "/a", "properties": {"quota": "1073741824", "atime": "off"}}
    again = DatasetManager(Zfs(subprocess_runner, "cli"), wanted).run()
    assert again["changed"] is False
    result = SnapshotManager(zfs, {"name": [root + "/a@s1", root + "/b@s1"], "hold": "keep"}).run()
    assert result["created"] == [root + "/a@s1", root + "/b@s1"] and result["held"] == result["created"]
    assert zfs.holds([root + "/a@s1"]) == {root + "/a@s1": ["keep"]}
    SnapshotManager(zfs, {"name": [root + "/a@s1", root + "/b@s1"], "release": "keep"}).run()
    rolled = SnapshotManager(zfs, {"name": [root + "/a@s1"], "state": "rollback"}).run()
    assert rolled["rolled_back_to"] == root + "/a@s1"
    drivers = set(op["driver"] for op in zfs.operations)
    assert drivers == ({"libzfs_core", "cli"} if zfs.lzc else {"cli"})


def test_volume(zfs, root):
    result = DatasetManager(zfs, {"name": root + "/vol", "properties": {"volsize": "64M", "volblocksize": "16K"},
                                  "sparse": True}).run()
    assert result["created"] is True
    again = DatasetManager(zfs, {"name": root + "/vol", "properties": {"volsize": "64M"}}).run()
    assert again["changed"] is False
