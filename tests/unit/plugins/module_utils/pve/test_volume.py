"""lxc_volume's engine: the keys it takes and the volume ids it reads (the moves themselves run against the API
double with real ZFS: tests/integration/test_lxc_volume.py)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import is_storage_volume, volume_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import snapshot_volumes
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.volume import VolumeError, VolumeManager


def manager(**params):
    params.setdefault("vmid", 100)
    params.setdefault("target_vmid", 101)
    return VolumeManager(params, client=object())


def test_keys_are_volume_keys_and_the_root_volume_is_never_replaced():
    assert manager(volume="mp0").validate() == ("mp0", "mp0")
    assert manager(volume="unused2", target_volume="mp5").validate() == ("unused2", "mp5")
    assert manager(volume="rootfs", target_volume="mp1").validate() == ("rootfs", "mp1")
    for volume, target, fragment in (("net0", None, "volume 'net0' is not a volume key"),
                                     ("mp0", "mpx", "target_volume 'mpx' is not a volume key"),
                                     ("mp0", "rootfs", "cannot be replaced")):
        with pytest.raises(VolumeError, match=fragment):
            manager(volume=volume, target_volume=target).validate()


def test_volume_ids_of_config_values():
    assert volume_of("mp0", "local-zfs:subvol-100-disk-1,mp=/data,size=8G") == "local-zfs:subvol-100-disk-1"
    assert volume_of("mp3", "volume=local:100/subvol-100-disk-2.subvol,mp=/x") == "local:100/subvol-100-disk-2.subvol"
    assert volume_of("unused0", "local-zfs:subvol-100-disk-3") == "local-zfs:subvol-100-disk-3"
    assert volume_of("rootfs", "local-zfs:subvol-100-disk-0,size=4G") == "local-zfs:subvol-100-disk-0"
    assert volume_of("mp0", None) is None
    assert is_storage_volume("local-zfs:subvol-100-disk-1")
    assert not is_storage_volume(volume_of("mp1", "/srv/shared,mp=/shared"))


class SnapshotConfigs:
    """GET .../snapshot/{snapname}/config answers, by snapshot name."""

    def __init__(self, configs):
        self.configs, self.calls = configs, []

    def get(self, path, **kw):
        self.calls.append((path, kw))
        return self.configs[kw["snapname"]]


def test_a_snapshots_volumes_are_its_storage_volumes_by_key():
    client = SnapshotConfigs({"s1": {"rootfs": "local-zfs:subvol-100-disk-0,size=4G", "hostname": "a",
                                     "mp0": "/srv/shared,mp=/shared", "mp100": "local-zfs:subvol-100-disk-1,mp=/data",
                                     "mp1": "/dev/net/tun,mp=/dev/net/tun", "unused0": "local-zfs:subvol-100-disk-2",
                                     "digest": "x"}})
    assert snapshot_volumes(client, "pve1", 100, "s1") == {"rootfs": "local-zfs:subvol-100-disk-0",
                                                           "mp100": "local-zfs:subvol-100-disk-1"}
    assert client.calls == [("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
                             {"node": "pve1", "vmid": 100, "snapname": "s1"})]
