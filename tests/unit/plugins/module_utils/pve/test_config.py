"""The container config model: property strings, normalisation and the update plan (pure logic).

The format tables are checked against the Proxmox VE API schema the test double
uses (tests/pve_double/schema, extracted from apidata-8.json and apidata-9.json).
"""

import json
import os

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import (
    FORMATS, MASK, SCALARS, ConfigValueError, diff, format_property, format_size, format_value, masked,
    needs_restart, normalize, parse_property, parse_size, same)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveError

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "pve_double", "schema")
MAC = "BC:24:11:2E:4F:6A"


def config_schema(version):
    with open(os.path.join(SCHEMA_DIR, "apidata-%s.subset.json" % version)) as handle:
        data = json.load(handle)
    return data["endpoints"]["/nodes/{node}/lxc/{vmid}/config"]["PUT"]["parameters"]["properties"]


SCHEMA_KEYS = {"net": "net[n]", "rootfs": "rootfs", "mp": "mp[n]", "features": "features", "dev": "dev[n]",
               "unused": "unused[n]"}


@pytest.mark.parametrize("version", ["8", "9"])
@pytest.mark.parametrize("family", sorted(SCHEMA_KEYS))
def test_format_tables_match_the_schema(version, family):
    schema = config_schema(version)[SCHEMA_KEYS[family]]["format"]
    ours = FORMATS[family]
    for name, field in schema.items():
        assert name in ours, "%s.%s (PVE %s) is missing" % (family, name, version)
        mine = ours[name]
        for attr in ("type", "default", "enum", "default_key"):
            assert mine.get(attr) == field.get(attr), (family, name, attr)
        assert bool(mine.get("optional")) == bool(field.get("optional")), (family, name)
        assert (mine.get("format") == "disk-size") == (field.get("format") == "disk-size"), (family, name)


def test_format_tables_know_no_key_either_schema_lacks():
    for family, schema_key in SCHEMA_KEYS.items():
        known = set(config_schema("8")[schema_key]["format"]) | set(config_schema("9")[schema_key]["format"])
        assert set(FORMATS[family]) == known, family
    # 9.x added these; 8.x does not know them
    assert "host-managed" not in config_schema("8")["net[n]"]["format"]
    assert "keepattrs" in config_schema("9")["mp[n]"]["format"]


@pytest.mark.parametrize("version", ["8", "9"])
def test_scalar_types_and_defaults_match_the_schema(version):
    schema = config_schema(version)
    for key, field in SCALARS.items():
        if key not in schema:
            # 8.x has no entrypoint/env; the double's subset drops every "description" entry
            assert key == "description" or (version == "8" and key in ("entrypoint", "env")), key
            continue
        if schema[key]["type"] in ("boolean", "integer", "number"):
            assert field["type"] == schema[key]["type"], key
            if isinstance(schema[key].get("default"), (int, float)):
                assert field.get("default") == schema[key]["default"], key
        if key in ("arch", "cmode"):
            assert field["default"] == schema[key]["default"]


@pytest.mark.parametrize("key,text,parsed", [
    ("net0", "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,ip6=auto,type=veth" % MAC,
     {"name": "eth0", "bridge": "vmbr0", "firewall": "1", "hwaddr": MAC, "ip": "dhcp", "ip6": "auto", "type": "veth"}),
    ("net1", "name=eth1,bridge=vmbr1,ip=10.0.0.5/24,gw=10.0.0.1,tag=20,trunks=20;30,rate=12.5,mtu=1400,firewall=on",
     {"name": "eth1", "bridge": "vmbr1", "ip": "10.0.0.5/24", "gw": "10.0.0.1", "tag": "20", "trunks": "20;30",
      "rate": "12.5", "mtu": "1400", "firewall": "1"}),
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", {"volume": "local-zfs:subvol-100-disk-0", "size": "8G"}),
    ("rootfs", "volume=local-lvm:vm-100-disk-0,size=8192M,acl=yes",
     {"volume": "local-lvm:vm-100-disk-0", "size": "8G", "acl": "1"}),
    ("mp1", "local:10,mp=/srv/data,backup=1", {"volume": "local:10", "mp": "/srv/data", "backup": "1"}),
    ("mp0", "/mnt/host,mp=/mnt/ct,ro=true,mountoptions=noatime;nodev",
     {"volume": "/mnt/host", "mp": "/mnt/ct", "ro": "1", "mountoptions": "noatime;nodev"}),
    ("features", "nesting=1,keyctl=1", {"nesting": "1", "keyctl": "1"}),
    ("features", "mount=nfs;cifs,fuse=off", {"mount": "nfs;cifs", "fuse": "0"}),
    ("dev0", "/dev/ttyUSB0,gid=20,mode=0660", {"path": "/dev/ttyUSB0", "gid": "20", "mode": "0660"}),
    ("unused0", "local-zfs:subvol-100-disk-1", {"volume": "local-zfs:subvol-100-disk-1"}),
    ("startup", "order=2,up=30", {"order": "2", "up": "30"}),
    ("startup", "3", {"order": "3"}),
    # from the user, as a dict: booleans and lists in YAML's types
    ("net0", {"name": "eth0", "bridge": "vmbr0", "firewall": True, "trunks": [10, 20], "mtu": 1500, "gw": None},
     {"name": "eth0", "bridge": "vmbr0", "firewall": "1", "trunks": "10;20", "mtu": "1500"}),
])
def test_parse_property_strings(key, text, parsed):
    assert parse_property(key, text, strict=True) == parsed


@pytest.mark.parametrize("key,given,canonical", [
    # PVE's print_property_string: bare default key, required keys, the rest sorted
    ("net0", {"type": "veth", "ip": "dhcp", "hwaddr": MAC, "bridge": "vmbr0", "name": "eth0", "firewall": True},
     "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth" % MAC),
    ("net0", "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth" % MAC,
     "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth" % MAC),
    ("rootfs", {"size": "8192M", "volume": "local:8"}, "local:8,size=8G"),
    ("rootfs", "volume=local-zfs:subvol-100-disk-0,size=8G", "local-zfs:subvol-100-disk-0,size=8G"),
    ("mp0", {"mp": "/srv", "volume": "local-zfs:subvol-100-disk-1", "backup": "yes", "size": 1536 * 1024 ** 2},
     "local-zfs:subvol-100-disk-1,mp=/srv,backup=1,size=1536M"),
    ("features", "nesting=true,keyctl=1", "keyctl=1,nesting=1"),
    ("features", {"mount": ["nfs", "cifs"]}, "mount=nfs;cifs"),
    ("dev1", {"path": "/dev/fuse", "deny-write": False}, "/dev/fuse,deny-write=0"),
    ("startup", "3,down=60", "order=3,down=60"),
    ("startup", {"up": 5, "order": 1}, "order=1,up=5"),
])
def test_format_is_canonical(key, given, canonical):
    assert format_property(key, given) == canonical
    assert format_value(key, given) == canonical
    assert format_property(key, canonical) == canonical


@pytest.mark.parametrize("key,value,text", [
    ("tags", ["web", "blue", "web"], "blue;web"),
    ("tags", "web,blue db", "blue;db;web"),
    ("onboot", True, "1"),
    ("onboot", "off", "0"),
    ("memory", 512, "512"),
    ("cpulimit", 1.5, "1.5"),
    ("cpulimit", "2.0", "2"),
    ("nameserver", ["10.0.0.2", "10.0.0.1"], "10.0.0.2 10.0.0.1"),
    ("searchdomain", "a.example,b.example", "a.example b.example"),
    ("env", ["A=1", "B=two words"], "A=1\0B=two words"),
    ("env", {"B": "2", "A": "1"}, "A=1\0B=2"),
    ("hostname", "web1", "web1"),
])
def test_format_scalars(key, value, text):
    assert format_value(key, value) == text


@pytest.mark.parametrize("key,value,message", [
    ("net0", "bridge=vmbr0", "name missing"),
    ("net0", "name=eth0,colour=red", "unknown setting 'colour'"),
    ("net0", "name=eth0,firewall=maybe", "not a boolean"),
    ("net0", "name=eth0,type=macvlan", "one of veth"),
    ("net0", "name=eth0,tag=ten", "not an integer"),
    ("net0", "name=eth0,name=eth1", "name given twice"),
    ("net0", {"name": "eth0", "ip": "10.0.0.1/24,gw=10.0.0.254"}, "must not contain a comma"),
    ("mp0", "local:8", "mp missing"),
    ("rootfs", "local:8,size=eight", "not a size"),
    ("rootfs", "local:8,other:9", "volume given twice"),
    ("features", "nesting", "no key"),
    ("memory", "lots", "not an integer"),
    ("onboot", "sometimes", "not a boolean"),
])
def test_invalid_user_values_fail_with_the_key_named(key, value, message):
    with pytest.raises(ConfigValueError, match=message) as info:
        format_value(key, value)
    assert isinstance(info.value, PveError) and isinstance(info.value, ValueError)


def test_values_from_proxmox_are_parsed_leniently():
    # a newer PVE may know sub-keys this table does not: kept, not refused
    assert parse_property("net0", "name=eth0,future-key=x") == {"name": "eth0", "future-key": "x"}


@pytest.mark.parametrize("text,size", [
    ("8G", 8 * 1024 ** 3), ("8192M", 8 * 1024 ** 3), ("4GiB", 4 * 1024 ** 3), ("1.5T", int(1.5 * 1024 ** 4)),
    ("512K", 512 * 1024), ("1000", 1000), (2048, 2048), ("8GB", None), ("big", None),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("size,text", [
    (8 * 1024 ** 3, "8G"), (1536 * 1024 ** 2, "1536M"), (1024 ** 4, "1T"), (1000, "1000"), (3 * 1024, "3K"),
])
def test_format_size_like_pve(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize("key,current,desired,equal", [
    ("memory", "512", 512, True),
    ("memory", None, 512, True),           # the schema default
    ("memory", None, 1024, False),
    ("swap", "0", 512, False),
    ("onboot", "1", True, True),
    ("onboot", "0", "off", True),
    ("onboot", None, False, True),
    ("onboot", None, "yes", False),
    ("console", None, True, True),
    ("protection", "1", "no", False),
    ("cpulimit", "1.5", 1.5, True),
    ("cpulimit", None, 0, True),
    ("cores", None, 1, False),             # no default: unset is "all host cores"
    ("tags", "web;blue", ["blue", "web"], True),
    ("tags", "web blue", "blue,web", True),
    ("tags", "web", ["web", "db"], False),
    ("nameserver", "10.0.0.1 10.0.0.2", ["10.0.0.1", "10.0.0.2"], True),
    ("nameserver", "10.0.0.1 10.0.0.2", ["10.0.0.2", "10.0.0.1"], False),  # order matters to resolv.conf
    ("description", "notes  \nmore\n", "notes\nmore", True),
    ("description", "notes", "other notes", False),
    ("hostname", None, "web1", False),
    ("env", "A=1\0B=2", ["A=1", "B=2"], True),
    ("entrypoint", "/app --flag", "/app  --flag", False),
    # property strings
    ("rootfs", "local:100/vm-100-disk-0.raw,size=8G", "local:100/vm-100-disk-0.raw,size=8192M", True),
    ("rootfs", "local:100/vm-100-disk-0.raw,size=8G", {"volume": "local:100/vm-100-disk-0.raw", "size": "9G"}, False),
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", "local-zfs:subvol-100-disk-0", True),  # size is PVE's
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", "local-zfs:8", True),   # allocation syntax
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", "local-zfs:16", False),
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", "local-lvm:8", False),
    ("rootfs", "local:100/subvol-100-disk-0.subvol", "local:0", True),
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G", "local-zfs:8,replicate=1", True),  # a default
    ("rootfs", "local-zfs:subvol-100-disk-0,size=8G,replicate=0", "local-zfs:8", False),
    ("mp0", "local-zfs:subvol-100-disk-1,mp=/srv,backup=1,size=10G", {"volume": "local-zfs:10", "mp": "/srv",
                                                                      "backup": True}, True),
    ("mp0", "local-zfs:subvol-100-disk-1,mp=/srv,size=10G", {"volume": "local-zfs:10", "mp": "/data"}, False),
    ("mp0", "/mnt/host,mp=/mnt/ct,mountoptions=noatime;nodev", "/mnt/host,mp=/mnt/ct,mountoptions=noatime;nodev",
     True),
    # a MAC is kept unless given
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=%s" % MAC, {"name": "eth0", "bridge": "vmbr0"}, True),
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=%s" % MAC, {"name": "eth0", "bridge": "vmbr0",
                                                        "hwaddr": MAC.lower()}, True),
    ("net0", "name=eth0,bridge=vmbr0,hwaddr=%s" % MAC, {"name": "eth0", "bridge": "vmbr0",
                                                        "hwaddr": "bc:24:11:aa:bb:cd"}, False),
    ("net0", "name=eth0,bridge=vmbr0,firewall=1", "name=eth0,bridge=vmbr0,firewall=true", True),
    ("net0", "name=eth0,bridge=vmbr0", "name=eth0,bridge=vmbr0,firewall=0", True),   # unset boolean is false
    ("net0", "name=eth0,bridge=vmbr0,ip=dhcp", "name=eth0,bridge=vmbr0", False),     # ip is not generated
    ("net0", "name=eth0,bridge=vmbr0,tag=10", {"name": "eth0", "bridge": "vmbr0", "tag": 10}, True),
    ("net0", "name=eth0,bridge=vmbr0,trunks=10;20", {"name": "eth0", "bridge": "vmbr0", "trunks": [20, 10]}, False),
    ("features", "nesting=1", {"nesting": True, "fuse": False}, True),
    ("features", "nesting=1,keyctl=1", "keyctl=on,nesting=yes", True),
    ("features", None, "nesting=0", False),
    ("startup", "order=2,up=30", "2,up=30", True),
    ("startup", "order=2", {"order": 2, "down": 10}, False),
])
def test_same_after_normalisation(key, current, desired, equal):
    assert same(key, current, desired) is equal


def test_normalize_fills_in_schema_defaults():
    assert normalize("features", "nesting=on") == {"nesting": "1", "fuse": "0", "keyctl": "0", "mknod": "0",
                                                   "force_rw_sys": "0"}
    assert normalize("rootfs", "local:8")["replicate"] == "1"
    assert normalize("onboot", None) == "0" and normalize("cores", None) is None


CURRENT = {
    "arch": "amd64", "ostype": "debian", "hostname": "web1", "memory": "512", "swap": "512", "cores": "1",
    "net0": "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth" % MAC,
    "net1": "name=eth1,bridge=vmbr1,hwaddr=BC:24:11:00:00:01,type=veth",
    "mp0": "local-zfs:subvol-100-disk-1,mp=/srv,size=10G", "rootfs": "local-zfs:subvol-100-disk-0,size=8G",
    "description": "old\n", "tags": "blue;web", "features": "nesting=1", "unprivileged": "1",
    "digest": "0123456789abcdef0123456789abcdef01234567", "lxc": [["lxc.init.cwd", "/app"]],
    "unused0": "local-zfs:subvol-100-disk-2",
}


@pytest.mark.parametrize("desired,put,pending", [
    ({}, {}, []),
    ({"memory": 512, "cores": "1", "tags": ["web", "blue"], "description": "old", "onboot": False,
      "net0": {"name": "eth0", "bridge": "vmbr0", "firewall": True, "ip": "dhcp", "type": "veth"},
      "rootfs": "local-zfs:8", "features": "nesting=1,keyctl=0"}, {}, []),
    ({"memory": 1024, "cores": 2}, {"memory": "1024", "cores": "2"}, []),
    ({"net0": {"name": "eth0", "bridge": "vmbr9", "ip": "dhcp"}},
     {"net0": "name=eth0,bridge=vmbr9,hwaddr=%s,ip=dhcp" % MAC}, []),
    ({"net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:99:99:99"},
     {"net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:99:99:99"}, []),
    ({"net2": {"name": "eth2", "bridge": "vmbr0", "ip": "manual"}}, {"net2": "name=eth2,bridge=vmbr0,ip=manual"}, []),
    ({"features": {"nesting": True, "keyctl": True}}, {"features": "keyctl=1,nesting=1"}, ["features"]),
    ({"hostname": "web2", "tags": "web"}, {"hostname": "web2", "tags": "web"}, []),
    ({"nameserver": ["10.0.0.1"], "searchdomain": "example.org"},
     {"nameserver": "10.0.0.1", "searchdomain": "example.org"}, ["nameserver", "searchdomain"]),
    ({"mp0": {"volume": "local-zfs:subvol-100-disk-1", "mp": "/data"}},
     {"mp0": "local-zfs:subvol-100-disk-1,mp=/data"}, ["mp0"]),            # a changed mount point waits
    ({"mp1": {"volume": "local-zfs:4", "mp": "/cache"}}, {"mp1": "local-zfs:4,mp=/cache"}, []),  # a new one not
    ({"onboot": True, "startup": {"order": 1}}, {"onboot": "1", "startup": "order=1"}, []),
    ({"description": "new text\n"}, {"description": "new text\n"}, []),
])
def test_diff_sends_only_what_differs_and_knows_what_is_pending(desired, put, pending):
    plan = diff(CURRENT, desired)
    assert plan.put == put
    assert plan.delete == []
    assert plan.pending == pending
    assert plan.changed is bool(put)


def test_removed_keys_only_with_purge_or_delete_and_never_what_pve_refuses():
    desired = {"memory": 512, "net0": {"name": "eth0", "bridge": "vmbr0", "firewall": 1, "ip": "dhcp"}}
    assert diff(CURRENT, desired).delete == []
    plan = diff(CURRENT, desired, purge=True)
    assert plan.delete == ["cores", "description", "features", "mp0", "net1", "swap", "tags"]
    # never rootfs, memory, ostype, arch, unprivileged, hostname, digest, raw lxc lines or unused volumes
    assert plan.pending == ["features", "mp0"]  # deleting these waits for the next start; the rest is hotplugged
    assert diff(CURRENT, desired, delete=["description", "nope", "memory"]).delete == ["description"]
    assert diff(CURRENT, {"description": None}, delete=["description"]).delete == ["description"]


def test_before_and_after_show_the_change_with_secrets_masked():
    current = dict(CURRENT, password="hunter22")
    plan = diff(current, {"cores": 4, "net1": None}, delete=["net1"])
    assert plan.before["cores"] == "1" and plan.after["cores"] == "4"
    assert "net1" in plan.before and "net1" not in plan.after
    assert "digest" not in plan.before and "digest" not in plan.after
    assert plan.before["password"] == MASK and plan.after["password"] == MASK
    assert "hunter22" not in json.dumps([plan.before, plan.after])


def test_masked_hides_passwords_and_ssh_keys():
    assert masked({"password": "s3cret", "ssh-public-keys": "ssh-ed25519 AAAA", "memory": "1"}) == \
        {"password": MASK, "ssh-public-keys": MASK, "memory": "1"}
    assert masked(None) == {}


@pytest.mark.parametrize("key,current,delete,restart", [
    ("memory", None, False, False), ("swap", None, True, False), ("memory", None, True, True),
    ("cpulimit", None, False, False), ("cores", None, False, False), ("description", None, False, False),
    ("hostname", None, False, False), ("tags", None, True, False), ("net3", None, False, False),
    ("net3", None, True, False), ("rootfs", None, False, True), ("features", None, False, True),
    ("entrypoint", None, False, True), ("env", None, True, True), ("nameserver", None, False, True),
    ("mp0", None, False, True), ("mp0", {}, False, False), ("mp0", {"mp0": "x,mp=/a"}, False, True),
    ("mp0", {}, True, True), ("dev0", {}, False, False), ("unused0", None, True, False),
    ("lxc.init.cwd", None, False, True),
])
def test_restart_rules_follow_pve_container_hotplug(key, current, delete, restart):
    assert needs_restart(key, current, delete=delete) is restart
