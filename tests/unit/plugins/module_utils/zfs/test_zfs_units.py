"""ZFS engine: names, property model, retention, CLI parsing, and the libzfs_core contract."""

import calendar

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import props, retention
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.cli import CliDriver, classify
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.info import parse_source, parse_value
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import (
    guard, pve_managed, validate_dataset, validate_snapshot)

from . import standin_libzfs_core


# --- names and guard rails ----------------------------------------------------------

@pytest.mark.parametrize("name", ["rpool/data", "tank/a_b.c:d-e", "p/x/y/z"])
def test_valid_dataset_names(name):
    assert validate_dataset(name) == name


@pytest.mark.parametrize("name", ["", "rpool//x", "rpool/x y", "rpool/-x", "rpool/x@s", "a" * 256])
def test_invalid_dataset_names(name):
    with pytest.raises(ZfsError) as err:
        validate_dataset(name)
    assert err.value.kind == "invalid_name"


def test_snapshot_names():
    assert validate_snapshot("rpool/x@daily-1") == ("rpool/x", "daily-1")
    for bad in ("rpool/x", "rpool/x@", "rpool/x@a b", "rpool/x@a@b"):
        with pytest.raises(ZfsError):
            validate_snapshot(bad)


@pytest.mark.parametrize("name,owned", [
    ("rpool/data/subvol-100-disk-0", "subvol-100-disk-0"),
    ("rpool/data/vm-101-disk-1", "vm-101-disk-1"),
    ("rpool/data/base-9000-disk-0@__base__", "base-9000-disk-0"),
    ("rpool/data/app@__base__", "@__base__"),
    ("rpool/data/app@__replicate_101-0_1700000000__", "@__replicate_101-0_1700000000__"),
    ("rpool/data/app@__migration__", "@__migration__"),
    ("rpool/data/app", None),
    ("rpool/data/subvol-x-disk", None),
])
def test_pve_managed(name, owned):
    assert pve_managed(name) == owned


def test_guard_rails():
    with pytest.raises(ZfsError, match="pool's root"):
        guard("rpool")
    with pytest.raises(ZfsError, match="managed by Proxmox VE"):
        guard("rpool/data/subvol-100-disk-0")
    guard("rpool/data/subvol-100-disk-0", allow_pve_managed=True)
    with pytest.raises(ZfsError, match="outside allowed_roots"):
        guard("rpool/other/x", allowed_roots=["rpool/data"])
    guard("rpool/data/x", allowed_roots=["rpool/data"])
    guard("rpool/data", allowed_roots=["rpool/data"])
    with pytest.raises(ZfsError, match="outside allowed_roots"):
        guard("rpool/database", allowed_roots=["rpool/data"])


# --- property model ---------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("1G", 1073741824), ("1.5G", 1610612736), ("512K", 524288), ("100M", 104857600), ("2T", 2 * 1024 ** 4),
    ("1GiB", 1073741824), (4096, 4096), ("4096", 4096), ("none", 0),
])
def test_parse_size(value, expected):
    assert props.parse_size(value, "quota") == expected


def test_parse_size_rejects_junk():
    for bad in ("lots", "1X", True, "-1G"):
        with pytest.raises(ZfsError):
            props.parse_size(bad, "quota")


@pytest.mark.parametrize("prop,desired,current,same", [
    ("quota", "1G", "1073741824", True),
    ("quota", "none", "0", True),
    ("quota", "1G", "0", False),
    ("atime", False, "off", True),
    ("atime", "yes", "on", True),
    ("compression", "LZ4", "lz4", True),
    ("compression", "on", "lz4", False),
    ("encryption", "on", "aes-256-gcm", True),
    ("encryption", "on", "off", False),
    ("com.example:Owner", "Ops", "ops", False),  # user properties are case-sensitive
    ("recordsize", "128K", "131072", True),
])
def test_same(prop, desired, current, same):
    assert props.same(prop, desired, current) is same


def test_plan_reports_creation_only_and_read_only_and_inherits():
    current = {
        "quota": ("0", "default"), "compression": ("lz4", "inherited from rpool"),
        "casesensitivity": ("sensitive", "-"), "used": ("1234", "-"), "atime": ("off", "local"),
        "recordsize": ("131072", "local"), "checksum": ("on", "default"),
    }
    plan = props.plan({"quota": "10G", "compression": "lz4", "casesensitivity": "insensitive", "used": 1},
                      current, inherit=["atime", "checksum"])
    assert plan["set"] == {"quota": "10G"}  # compression already lz4 (inherited): no change
    assert plan["inherit"] == ["atime"]  # checksum is at its default already
    assert plan["creation_only"] == {"casesensitivity": {"desired": "insensitive", "current": "sensitive"}}
    assert plan["read_only"] == {"used": {"desired": 1, "current": "1234"}}
    with pytest.raises(ZfsError, match="both set and inherited"):
        props.plan({"atime": "on"}, current, inherit=["atime"])


# --- info parsing ---------------------------------------------------------------------

def test_info_values():
    assert parse_value("1073741824") == 1073741824
    assert parse_value("1.50x") == 1.5
    assert parse_value("-") is None
    assert parse_value("lz4") == "lz4"
    assert parse_source("inherited from rpool/data") == {"kind": "inherited", "from": "rpool/data"}
    assert parse_source("local") == {"kind": "local", "from": None}
    assert parse_source("-") == {"kind": "none", "from": None}


# --- retention ---------------------------------------------------------------------------

def epoch(text):
    return calendar.timegm(__import__("time").strptime(text, "%Y-%m-%d %H:%M"))


def snaps(*stamps, prefix="auto_", dataset="p/d"):
    return [("%s@%s%s" % (dataset, prefix, s.replace(" ", "_").replace(":", ".")), epoch(s)) for s in stamps]


def test_retention_classes_keep_newest_per_period():
    records = snaps("2026-11-22 10:00", "2026-11-22 09:30", "2026-11-22 09:00", "2026-11-21 23:00",
                    "2026-11-21 08:00", "2026-11-20 12:00", "2026-11-13 12:00", "2026-10-15 12:00")
    result = retention.decide(records, "auto_", {"hourly": 2, "daily": 3}, now=epoch("2026-11-22 10:05"))
    kept = [n.split("@")[1] for n in result["keep"]]
    # hourly: 10h, 09h (newest of the 09 hour = 09:30); daily: 22nd (10:00), 21st (23:00), 20th
    assert sorted(kept) == sorted(["auto_2026-11-22_10.00", "auto_2026-11-22_09.30", "auto_2026-11-21_23.00",
                                   "auto_2026-11-20_12.00"])
    assert len(result["prune"]) == 4


def test_retention_weekly_monthly_yearly_and_keep_last():
    records = snaps("2026-11-22 10:00", "2026-11-16 10:00", "2026-11-09 10:00", "2026-10-01 10:00",
                    "2025-06-01 10:00")
    result = retention.decide(records, "auto_", {"weekly": 2, "monthly": 2, "yearly": 2}, keep_last=1)
    kept = sorted(n.split("@")[1] for n in result["keep"])
    # 2026-11-16 is in the same ISO week as 2026-11-22 (week 47), so weekly keeps week 46's 11-09
    assert kept == ["auto_2025-06-01_10.00", "auto_2026-10-01_10.00", "auto_2026-11-09_10.00",
                    "auto_2026-11-22_10.00"]


def test_retention_skips_protected_reserved_and_foreign():
    records = snaps("2026-11-22 10:00", "2026-11-21 10:00", "2026-11-20 10:00")
    records += [("p/d@__base__", epoch("2026-01-01 00:00")), ("p/d@manual", epoch("2026-01-01 00:00"))]
    protected = {records[2][0]: "held"}
    result = retention.decide(records, "auto_", keep_last=1, protected=protected)
    assert result["prune"] == [records[1][0]]
    assert result["skipped"] == {"p/d@__base__": "reserved by Proxmox VE", "p/d@manual": "outside the prefix auto_",
                                 records[2][0]: "held"}


def test_retention_max_age():
    now = epoch("2026-11-22 12:00")
    records = snaps("2026-11-22 10:00", "2026-11-10 10:00", "2026-09-01 10:00")
    alone = retention.decide(records, "auto_", max_age="14d", now=now)
    assert [n.split("@")[1] for n in alone["prune"]] == ["auto_2026-09-01_10.00"]
    with_class = retention.decide(records, "auto_", {"monthly": 12}, max_age="30d", now=now)
    # monthly keeps November's newest and September's; max_age then drops September's
    pruned = sorted(n.split("@")[1] for n in with_class["prune"])
    assert pruned == ["auto_2026-09-01_10.00", "auto_2026-11-10_10.00"]
    with pytest.raises(ZfsError):
        retention.parse_age("soon")
    with pytest.raises(ZfsError):
        retention.validate_policy({"minutely": 3})
    with pytest.raises(ZfsError):
        retention.validate_policy(None)


def test_snapshot_names_are_utc_and_sortable():
    assert retention.snapshot_name("auto_", epoch("2026-11-22 07:05")) == "auto_2026-11-22_07.05.00"


# --- CLI driver ----------------------------------------------------------------------------

class Runner:
    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        for key, answer in self.table.items():
            if list(argv[:len(key)]) == list(key):
                return answer
        return (1, "", "unexpected call %s" % argv)


NO_KMOD = "/nonexistent/sys/module/zfs/version"


def driver(runner, kmod=NO_KMOD):
    return CliDriver(runner, sys_version_path=kmod)


def test_cli_capabilities(tmp_path):
    openzfs = driver(Runner({("zfs", "version"): (0, "zfs-2.3.4-pve1\nzfs-kmod-2.3.4-pve1\n", "")}))
    assert openzfs.caps == {"implementation": "openzfs", "version": (2, 3), "multi_snapshot": True,
                            "list_p": True, "json": True, "holds": True}
    fuse = driver(Runner({("zfs", "version"): (2, "", "unrecognized command 'version'")}))
    assert fuse.caps["implementation"] == "zfs-fuse" and not fuse.caps["multi_snapshot"]
    kmod = tmp_path / "version"
    kmod.write_text("2.2.7-pve1\n")
    runner = Runner({})
    from_sys = driver(runner, str(kmod))
    assert from_sys.caps["version"] == (2, 2) and from_sys.caps["implementation"] == "openzfs"
    assert runner.calls == []  # no process needed


def test_cli_get_is_one_call_and_parses():
    out = "p/a\tquota\t0\tdefault\np/a\tcompression\tlz4\tinherited from p\np/a@s\tuserrefs\t1\t-\n"
    runner = Runner({("zfs", "get"): (0, out, "")})
    data = driver(runner).get_all(["p/a"])
    assert data == {"p/a": {"quota": ("0", "default"), "compression": ("lz4", "inherited from p")},
                    "p/a@s": {"userrefs": ("1", "-")}}
    assert runner.calls == [["zfs", "get", "-Hp", "-o", "name,property,value,source", "-r", "all", "p/a"]]


# The shape OpenZFS 2.3's `zfs get -j -p` prints (output_version, datasets -> properties -> value/source).
JSON_SAMPLE = """{
  "output_version": {"command": "zfs get", "vers_major": 0, "vers_minor": 1},
  "datasets": {
    "tank/app": {"name": "tank/app", "type": "FILESYSTEM", "pool": "tank", "createtxg": "812",
      "properties": {
        "quota": {"value": "10737418240", "source": {"type": "LOCAL", "data": "-"}},
        "compression": {"value": "lz4", "source": {"type": "INHERITED", "data": "tank"}},
        "atime": {"value": "on", "source": {"type": "DEFAULT", "data": "-"}},
        "used": {"value": "98304", "source": {"type": "NONE", "data": "-"}}}},
    "tank/app@s1": {"name": "tank/app@s1", "type": "SNAPSHOT", "pool": "tank", "createtxg": "815",
      "dataset": "tank/app", "snapshot_name": "s1",
      "properties": {"userrefs": {"value": "1", "source": {"type": "NONE", "data": "-"}}}}
  }
}"""


def kmod_file(tmp_path, version):
    path = tmp_path / "kmod-version"
    path.write_text(version + "\n")
    return str(path)


def test_openzfs_json_output_parses_like_the_tab_format(tmp_path):
    runner = Runner({("zfs", "get", "-j"): (0, JSON_SAMPLE, "")})
    data = driver(runner, kmod_file(tmp_path, "2.3.4-pve1")).get_all(["tank/app"])
    assert runner.calls == [["zfs", "get", "-j", "-p", "-r", "all", "tank/app"]]
    assert data == {
        "tank/app": {"quota": ("10737418240", "local"), "compression": ("lz4", "inherited from tank"),
                     "atime": ("on", "default"), "used": ("98304", "-")},
        "tank/app@s1": {"userrefs": ("1", "-")},
    }
    plan = props.plan({"quota": "10G", "compression": "lz4"}, data["tank/app"], inherit=["atime"])
    assert plan["set"] == {} and plan["inherit"] == []


def test_unexpected_json_falls_back_to_the_tab_format(tmp_path):
    tab = "tank/app\tquota\t0\tdefault\n"
    runner = Runner({("zfs", "get", "-j"): (0, '{"surprise": 1}', ""), ("zfs", "get", "-Hp"): (0, tab, "")})
    result = driver(runner, kmod_file(tmp_path, "2.3.0")).get_all(["tank/app"])
    assert result == {"tank/app": {"quota": ("0", "default")}}


def test_openzfs_before_2_3_and_zfs_fuse_use_the_tab_format_in_one_process(tmp_path):
    for kmod in (kmod_file(tmp_path, "2.2.7-pve1"), NO_KMOD):
        runner = Runner({("zfs", "get", "-Hp"): (0, "", "")})
        driver(runner, kmod).get_all(["tank/app"])
        assert [c[:3] for c in runner.calls] == [["zfs", "get", "-Hp"]]


@pytest.mark.parametrize("stderr,kind", [
    ("cannot open 'x/y': dataset does not exist", "not_found"),
    ("cannot create 'p/a': dataset already exists", "exists"),
    ("cannot destroy 'p/a': dataset is busy", "busy"),
    ("cannot destroy 'p/a': permission denied", "permission"),
    ("cannot open 'nopool/x': no such pool", "pool_missing"),
    ("cannot create 'p/a b': invalid character ' ' in name", "invalid_name"),
    ("cannot set property for 'p/a': 'quota' is readonly", "failed"),
])
def test_error_classification(stderr, kind):
    assert classify(stderr) == kind


def test_zfs_fuse_multi_snapshot_is_refused_not_faked():
    fuse = driver(Runner({("zfs", "version"): (2, "", "unrecognized")}))
    with pytest.raises(ZfsError) as err:
        fuse.snapshot(["p/a@s", "p/b@s"])
    assert err.value.kind == "unsupported" and "cannot take several snapshots in one command" in str(err.value)


# --- libzfs_core contract (stand-in with the binding's interface) ------------------------

def zfs_with(standin, runner=None):
    runner = runner or Runner({("zfs", "mount"): (0, "", ""), ("zfs", "version"): (0, "zfs-2.2.7\n", "")})
    return Zfs(runner, "libzfs_core", import_module=lambda name: standin), runner


def test_lzc_does_the_writes_it_supports_with_bytes_and_mounts_through_the_cli():
    standin = standin_libzfs_core.make()
    zfs, runner = zfs_with(standin)
    zfs.create("pool/app", {"compression": "lz4", "quota": "1073741824"})
    zfs.snapshot(["pool/app@a"])
    zfs.clone("pool/app@a", "pool/copy")
    zfs.hold("keep", ["pool/app@a"])
    assert zfs.holds(["pool/app@a"]) == {"pool/app@a": ["keep"]}
    zfs.release("keep", ["pool/app@a"])
    zfs.rollback("pool/app@a")
    names = [call[0] for call in standin.state["calls"]]
    assert names == ["lzc_create", "lzc_snapshot", "lzc_clone", "lzc_hold", "lzc_release", "lzc_rollback_to"]
    create = standin.state["calls"][0]
    assert create[1] == b"pool/app" and create[3] == {b"compression": b"lz4", b"quota": 1073741824}
    assert [c for c in runner.calls if c[1] == "mount"] == [["zfs", "mount", "pool/app"], ["zfs", "mount", "pool/copy"]]
    assert [(o["op"], o["driver"]) for o in zfs.operations] == [
        ("create", "libzfs_core"), ("mount", "cli"), ("snapshot", "libzfs_core"), ("clone", "libzfs_core"),
        ("mount", "cli"), ("hold keep", "libzfs_core"), ("release keep", "libzfs_core"),
        ("rollback", "libzfs_core")]


def test_lzc_atomic_multi_snapshot_and_batch_errors():
    standin = standin_libzfs_core.make()
    zfs, dummy = zfs_with(standin)
    zfs.create("pool/a")
    zfs.create("pool/b")
    zfs.snapshot(["pool/a@s", "pool/b@s"])
    assert set(standin.state["snapshots"]) == {b"pool/a@s", b"pool/b@s"}
    with pytest.raises(ZfsError) as err:
        zfs.snapshot(["pool/a@s", "pool/missing@s"])
    assert err.value.kind == "not_found"
    assert "pool/a@s: Snapshot already exists" in str(err.value)
    assert "pool/missing@s: Filesystem not found" in str(err.value)


def test_lzc_exception_mapping():
    standin = standin_libzfs_core.make()
    zfs, dummy = zfs_with(standin)
    zfs.create("pool/a")
    with pytest.raises(ZfsError) as err:
        zfs.create("pool/a")
    assert err.value.kind == "exists" and "Filesystem already exists" in str(err.value)
    with pytest.raises(ZfsError) as err:
        zfs.promote("pool/a")
    assert err.value.kind == "refused"
    zfs.snapshot(["pool/a@s"])
    zfs.hold("t", ["pool/a@s"])
    with pytest.raises(ZfsError) as err:
        zfs.destroy_snapshots(["pool/a@s"])
    assert err.value.kind == "busy"


def test_unsupported_lzc_functions_fall_back_to_the_cli():
    standin = standin_libzfs_core.make(unsupported=("lzc_snapshot",))
    runner = Runner({("zfs", "version"): (0, "zfs-2.2.7\n", ""), ("zfs", "snapshot"): (0, "", "")})
    zfs, dummy = zfs_with(standin, runner)
    zfs.snapshot(["pool@s"])
    assert zfs.operations[-1] == {"op": "snapshot", "target": "pool@s", "driver": "cli"}
    assert ["zfs", "snapshot", "pool@s"] in runner.calls


def test_driver_selection():
    def missing(name):
        raise ImportError("No module named 'libzfs_core'")
    auto = Zfs(Runner({}), "auto", import_module=missing)
    assert auto.lzc is None and "python3-pyzfs" in auto.unavailable
    with pytest.raises(ZfsError) as err:
        Zfs(Runner({}), "libzfs_core", import_module=missing)
    assert err.value.kind == "driver_unavailable"
    abandoned = __import__("types").SimpleNamespace(__name__="libzfs_core")
    with pytest.raises(ZfsError) as err:
        Zfs(Runner({}), "libzfs_core", import_module=lambda name: abandoned)
    assert "abandoned" in str(err.value)
    assert Zfs(Runner({}), "cli").lzc is None
