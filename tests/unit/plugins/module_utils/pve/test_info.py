"""lxc_container_info's engine against a recording fake client: filters, call counts, masking."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import MASK
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.info import (
    ContainerQuery, interfaces_of, list_containers, split_tags)

RESOURCES = [
    {"id": "node/pve1", "type": "node", "node": "pve1", "status": "online"},
    {"id": "lxc/101", "type": "lxc", "vmid": 101, "node": "pve1", "name": "alpha", "status": "running",
     "template": 0, "tags": "web;blue", "maxmem": 536870912, "uptime": 42, "lock": ""},
    {"id": "qemu/102", "type": "qemu", "vmid": 102, "node": "pve1", "name": "alpha", "status": "running",
     "template": 0, "tags": "web"},
    {"id": "lxc/103", "type": "lxc", "vmid": 103, "node": "pve2", "name": "beta", "status": "stopped",
     "template": 0, "tags": "web"},
    {"id": "lxc/104", "type": "lxc", "vmid": 104, "node": "pve2", "name": "gamma", "status": "stopped",
     "template": 1, "lock": "backup"},
    {"id": "storage/pve1/local", "type": "storage", "node": "pve1", "storage": "local"},
]
CONFIGS = {
    101: {"hostname": "alpha", "memory": "512", "tags": "web;blue", "password": "s3cret", "digest": "d1"},
    103: {"hostname": "beta", "tags": "web", "digest": "d3"},
    104: {"hostname": "gamma", "tags": "db", "template": "1", "digest": "d4"},
}


# pve-container PVE::LXC::get_interfaces (8.x and 9.x): ``ip --json a`` in the container's network
INTERFACES = [
    {"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00", "inet": "127.0.0.1/8",
     "inet6": "::1/128", "ip-addresses": [
         {"ip-address-type": "inet", "ip-address": "127.0.0.1", "prefix": 8},
         {"ip-address-type": "inet6", "ip-address": "::1", "prefix": 128}]},
    {"name": "eth0", "hwaddr": "bc:24:11:aa:bb:02", "hardware-address": "bc:24:11:aa:bb:02",
     "inet": "10.0.0.150/24", "ip-addresses": [
         {"ip-address-type": "inet", "ip-address": "10.0.0.150", "prefix": 24},
         {"ip-address-type": "inet", "ip-address": "10.0.0.151", "prefix": 24},
         {"ip-address-type": "inet6", "ip-address": "fe80::be24:11ff:feaa:bb02", "prefix": 64}]},
]


class FakeClient:
    def __init__(self, resources=None, configs=None, gone=()):
        self.resources = RESOURCES if resources is None else resources
        self.configs = CONFIGS if configs is None else configs
        self.gone = gone
        self.calls = []

    def get(self, path, params=None, **kwargs):
        self.calls.append((path, dict(kwargs)))
        if path == "/cluster/resources":
            assert kwargs == {}  # every type: the nodes' states come with the guests
            return self.resources
        if path == "/nodes/{node}/lxc":  # live: the same containers, as their node lists them
            return [dict((k, v) for k, v in r.items() if k in ("vmid", "name", "status", "template", "lock", "tags"))
                    for r in self.resources if r["type"] == "lxc" and r.get("node") == kwargs["node"]]
        if path == "/nodes/{node}/lxc/{vmid}/config":
            if kwargs["vmid"] in self.gone:
                raise PveApiError(500, "GET", "/nodes/pve1/lxc/%d/config" % kwargs["vmid"],
                                  "Configuration file 'nodes/pve1/lxc/%d.conf' does not exist" % kwargs["vmid"])
            return dict(self.configs[kwargs["vmid"]])
        if path == "/nodes/{node}/lxc/{vmid}/interfaces":
            return INTERFACES
        if path == "/nodes/{node}/lxc/{vmid}/snapshot":  # PVE's order is not the age order; current comes last
            return [{"name": "b", "parent": "a", "snaptime": 20, "description": "second"},
                    {"name": "a", "snaptime": 10, "description": "first"},
                    {"name": "current", "parent": "b", "description": "You are here!"}]
        if path == "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config":  # b was taken after mp100 came
            config = {"rootfs": "local-zfs:subvol-%d-disk-0,size=4G" % kwargs["vmid"], "mp0": "/srv,mp=/srv"}
            if kwargs["snapname"] == "b":
                config["mp100"] = "local-zfs:subvol-%d-disk-1,mp=/data,size=1G" % kwargs["vmid"]
            return config
        raise AssertionError("unexpected call %s" % path)


@pytest.mark.parametrize("query,vmids", [
    (ContainerQuery(), [101, 103, 104]),
    (ContainerQuery(node="pve2"), [103, 104]),
    (ContainerQuery(vmid=103), [103]),
    (ContainerQuery(vmid="101"), [101]),
    (ContainerQuery(hostname="alpha"), [101]),          # the VM of the same name is not a container
    (ContainerQuery(tags=["web"]), [101, 103]),
    (ContainerQuery(tags=["web", "blue"]), [101]),
    (ContainerQuery(tags=["blue;web"]), [101]),
    (ContainerQuery(tags=["db"]), []),
    (ContainerQuery(node="pve1", hostname="beta"), []),
])
def test_filters_use_one_cluster_call_without_config(query, vmids):
    client = FakeClient()
    found = list_containers(client, query, with_config=False)
    assert [c["vmid"] for c in found] == vmids
    # the cluster list, then the live list of each node read (both nodes hold containers; a node filter reads one)
    nodes = ["pve1"] if query.node == "pve1" else ["pve2"] if query.node == "pve2" else ["pve1", "pve2"]
    assert client.calls == [("/cluster/resources", {})] + [("/nodes/{node}/lxc", {"node": n}) for n in nodes]
    assert all("config" not in c for c in found)


def test_config_is_fetched_for_the_matches_only_and_masked():
    client = FakeClient()
    found = list_containers(client, ContainerQuery(tags=["web"]))
    configs = [c[1] for c in client.calls if c[0] == "/nodes/{node}/lxc/{vmid}/config"]
    assert configs == [{"node": "pve1", "vmid": 101}, {"node": "pve2", "vmid": 103}]
    alpha = found[0]
    assert alpha["config"]["password"] == MASK and alpha["config"]["memory"] == "512"
    assert alpha == dict(alpha, vmid=101, node="pve1", hostname="alpha", status="running", template=False,
                         tags=["blue", "web"], maxmem=536870912, uptime=42)
    assert "lock" not in alpha  # empty lock is no lock


def test_templates_and_locks_are_reported():
    gamma = list_containers(FakeClient(), ContainerQuery(vmid=104), with_config=False)[0]
    assert gamma["template"] is True and gamma["lock"] == "backup" and gamma["tags"] == []


def test_without_tags_in_resources_the_config_decides():
    resources = [dict(r) for r in RESOURCES]
    for res in resources:
        res.pop("tags", None)
    client = FakeClient(resources=resources)
    found = list_containers(client, ContainerQuery(tags=["web"]), with_config=False)
    assert [c["vmid"] for c in found] == [101, 103]
    assert found[0]["tags"] == ["blue", "web"] and "config" not in found[0]


def test_a_container_deleted_after_the_listing_is_left_out():
    found = list_containers(FakeClient(gone=(103,)), ContainerQuery(node="pve2"))
    assert [c["vmid"] for c in found] == [104]


def test_other_errors_are_raised():
    client = FakeClient()
    client.configs = {}
    with pytest.raises(KeyError):
        list_containers(client, ContainerQuery(vmid=101))


@pytest.mark.parametrize("value,tags", [
    (None, set()), ("a;b", {"a", "b"}), ("a, b c", {"a", "b", "c"}), (["a;b", "c"], {"a", "b", "c"}), ("", set()),
])
def test_split_tags(value, tags):
    assert split_tags(value) == tags


def test_the_recorded_origin_is_returned_with_the_config():
    configs = dict(CONFIGS)
    configs[103] = dict(CONFIGS[103], description="notes\nlxcri.proxmox: image=r/app:v1 digest=sha256:%s\n" % ("a" * 64))
    found = list_containers(FakeClient(configs=configs), ContainerQuery(tags=["web"]))
    assert found[0]["origin"] is None
    assert found[1]["origin"] == {"image": "r/app:v1", "digest": "sha256:" + "a" * 64}


def test_interfaces_list_every_address_with_its_prefix():
    """The ip-addresses list (every address; the inet/inet6 keys hold only the last one of each family)."""
    assert interfaces_of(INTERFACES) == [
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": ["127.0.0.1/8"], "inet6": ["::1/128"]},
        {"name": "eth0", "hwaddr": "bc:24:11:aa:bb:02", "inet": ["10.0.0.150/24", "10.0.0.151/24"],
         "inet6": ["fe80::be24:11ff:feaa:bb02/64"]}]
    # a stopped container: the API answers null
    assert interfaces_of(None) == []
    # an answer with only the single-address keys
    assert interfaces_of([{"name": "eth0", "hwaddr": "aa:bb:cc:dd:ee:ff", "inet": "192.0.2.7/24"}]) == [
        {"name": "eth0", "hwaddr": "aa:bb:cc:dd:ee:ff", "inet": ["192.0.2.7/24"], "inet6": []}]


def test_interfaces_are_read_for_running_matches_only():
    client = FakeClient()
    found = list_containers(client, ContainerQuery(tags=["web"]), with_config=False, with_interfaces=True)
    calls = [c[1] for c in client.calls if c[0] == "/nodes/{node}/lxc/{vmid}/interfaces"]
    assert calls == [{"node": "pve1", "vmid": 101}]  # 103 is stopped: no call
    assert [c["interfaces"] for c in found] == [interfaces_of(INTERFACES), []]
    assert all("interfaces" not in c for c in list_containers(FakeClient(), with_config=False))


def test_snapshots_are_listed_oldest_first_without_current_one_call_per_match():
    client = FakeClient()
    found = list_containers(client, ContainerQuery(vmid=101), with_config=False, with_snapshots=True)
    assert found[0]["snapshots"] == [
        {"name": "a", "snaptime": 10, "description": "first", "parent": None,
         "volumes": {"rootfs": "local-zfs:subvol-101-disk-0"}},
        {"name": "b", "snaptime": 20, "description": "second", "parent": "a",
         "volumes": {"rootfs": "local-zfs:subvol-101-disk-0", "mp100": "local-zfs:subvol-101-disk-1"}}]
    assert [c[1]["snapname"] for c in client.calls if c[0].endswith("/config") and "snapname" in c[1]] == ["a", "b"]
    assert [c for c in client.calls if c[0].endswith("/snapshot")] == [
        ("/nodes/{node}/lxc/{vmid}/snapshot", {"node": "pve1", "vmid": 101})]
    assert "snapshots" not in list_containers(FakeClient(), ContainerQuery(vmid=101), with_config=False)[0]
