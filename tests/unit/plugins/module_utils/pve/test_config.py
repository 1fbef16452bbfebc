"""The container config model: property strings, normalisation and the update plan (pure logic)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import (
    MASK, diff, format_property, format_value, masked, needs_restart, normalize, parse_property, same)


@pytest.mark.parametrize("key,text,parsed", [
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth",
     {"name": "eth0", "bridge": "vmbr0", "hwaddr": "BC:24:11:AA:BB:CC", "ip": "dhcp", "type": "veth"}),
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", {"volume": "local-zfs:subvol-100-disk-0", "size": "8G"}),
    ("mp1", "local:10,mp=/srv/data,backup=1", {"volume": "local:10", "mp": "/srv/data", "backup": "1"}),
    ("features", "nesting=1,keyctl=1", {"nesting": "1", "keyctl": "1"}),
    ("startup", "order=2,up=30", {"order": "2", "up": "30"}),
    ("startup", "3", {"order": "3"}),
])
def test_parse_property_strings(key, text, parsed):
    assert parse_property(key, text) == parsed


def test_format_puts_the_default_key_first_and_sorts_the_rest():
    assert format_property("rootfs", {"size": "8G", "volume": "local:8"}) == "volume=local:8,size=8G"
    assert format_property("net0", {"name": "eth0", "firewall": True, "bridge": "vmbr0"}) == \
        "name=eth0,bridge=vmbr0,firewall=1"
    assert format_value("tags", ["a", "b"]) == "a;b"
    assert format_value("onboot", True) == "1"
    with pytest.raises(ValueError, match="no key"):
        parse_property("features", "nesting")


@pytest.mark.parametrize("key,current,desired,equal", [
    ("memory", "512", 512, True),
    ("onboot", "1", True, True),
    ("onboot", "0", "off", True),
    ("cpulimit", "1.5", 1.5, True),
    ("tags", "web;blue", ["blue", "web"], True),
    ("tags", "web blue", "blue,web", True),
    ("tags", "web", ["web", "db"], False),
    ("rootfs", "local:100/vm-100-disk-0.raw,size=8G", "local:100/vm-100-disk-0.raw,size=8192M", True),
    ("rootfs", "local:100/vm-100-disk-0.raw,size=8G", {"volume": "local:100/vm-100-disk-0.raw", "size": "9G"}, False),
    # a MAC is kept unless given
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC", {"name": "eth0", "bridge": "vmbr0"}, True),
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC", {"name": "eth0", "bridge": "vmbr0",
                                                                 "hwaddr": "bc:24:11:aa:bb:cd"}, False),
    ("net0", "name=eth0,bridge=vmbr0,firewall=1", "name=eth0,bridge=vmbr0,firewall=true", True),
    ("description", "notes\n", "notes", True),
    ("hostname", None, "web1", False),
])
def test_same_after_normalisation(key, current, desired, equal):
    assert same(key, current, desired) is equal


def test_diff_sends_only_changed_keys_keeps_the_mac_and_purges_only_when_asked():
    current = {"memory": "512", "cores": "1", "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC",
               "net1": "name=eth1,bridge=vmbr1", "description": "old", "digest": "abc", "rootfs": "local:8"}
    desired = {"memory": 512, "cores": 2, "net0": {"name": "eth0", "bridge": "vmbr9"}}
    plan = diff(current, desired)
    assert plan.put == {"cores": "2", "net0": "name=eth0,bridge=vmbr9,hwaddr=BC:24:11:AA:BB:CC"}
    assert plan.delete == [] and plan.changed
    assert diff(current, desired, purge=True).delete == ["description", "net1"]  # never rootfs or digest
    assert diff(current, desired, delete=["description", "nope"]).delete == ["description"]
    assert not diff(current, {"memory": 512, "cores": "1"}).changed


def test_restart_rules_and_masking():
    assert needs_restart("rootfs") and needs_restart("entrypoint") and needs_restart("lxc.init.cwd")
    assert not needs_restart("memory") and not needs_restart("description")
    assert masked({"password": "s3cret", "memory": "1"}) == {"password": MASK, "memory": "1"}
    assert normalize("features", "nesting=on") == {"nesting": "1"}
