"""Unit tests of the runtime detection engine (pure logic, injected outside world)."""

import ctypes
import os
import stat
import types

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect

HYBRID_MOUNTINFO = """\
23 1 0:21 / / rw,relatime - overlay overlay rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V2_MOUNTINFO = """\
23 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""

CRUN_VERSION = """\
crun version 1.8.1
commit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30
rundir: /run/crun
spec: 1.0.0
+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL
"""


def fake_reader(files):
    return files.get


class FakeRunner:
    """Answers argv tuples from a table and records every call."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.table.get(tuple(argv), (127, "", "not found"))


# --- cgroups -----------------------------------------------------------------

def test_parse_mountinfo_reads_mountpoint_type_and_super_options():
    mounts = detect.parse_mountinfo(HYBRID_MOUNTINFO)
    assert ("/sys/fs/cgroup/unified", "cgroup2", "rw") in mounts
    assert ("/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd") in mounts
    assert detect.parse_mountinfo("garbage without separator\n") == []


def test_cgroup_hybrid():
    info = detect.cgroup_layout(HYBRID_MOUNTINFO, fake_reader(
        {"/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n"}))
    assert info == {
        "layout": "hybrid",
        "unified_mountpoint": "/sys/fs/cgroup/unified",
        "v1_controllers": ["cpu", "memory", "pids"],
        "v1_named_hierarchies": ["systemd"],
        "v2_controllers": ["hugetlb"],
    }


def test_cgroup_v2_ignores_mount_options():
    info = detect.cgroup_layout(V2_MOUNTINFO, fake_reader(
        {"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n"}))
    assert info["layout"] == "v2"
    assert info["unified_mountpoint"] == "/sys/fs/cgroup"
    assert info["v1_controllers"] == []
    assert info["v2_controllers"] == ["cpu", "cpuset", "io", "memory", "pids"]


def test_cgroup_v1_and_none():
    info = detect.cgroup_layout(V1_MOUNTINFO, fake_reader({}))
    assert info["layout"] == "v1"
    assert info["v1_controllers"] == ["cpu", "cpuacct", "memory"]
    assert info["unified_mountpoint"] is None
    assert detect.cgroup_layout("", fake_reader({}))["layout"] == "none"


# --- crun CLI ----------------------------------------------------------------

def test_parse_crun_version():
    assert detect.parse_crun_version(CRUN_VERSION) == {
        "version": "1.8.1",
        "commit": "f8a096be060b22ccd3d5f3ebe44108517fbf6c30",
        "spec": "1.0.0",
        "build_flags": ["+SYSTEMD", "+SELINUX", "+APPARMOR", "+CAP", "+SECCOMP", "+EBPF", "+YAJL"],
    }


def test_crun_without_features_command():
    runner = FakeRunner({
        ("/usr/bin/crun", "--version"): (0, CRUN_VERSION, ""),
        ("/usr/bin/crun", "features"): (1, "", "unknown command features"),
    })
    info = detect.crun_cli(runner, lambda name: "/usr/bin/" + name)
    assert info["present"] is True
    assert info["version"] == "1.8.1"
    assert info["features_supported"] is False
    assert info["features"] is None
    assert info["error"] is None


def test_crun_with_features_json():
    features = '{"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0", "hooks": ["prestart"]}'
    runner = FakeRunner({
        ("/opt/crun", "--version"): (0, CRUN_VERSION.replace("1.8.1", "1.19"), ""),
        ("/opt/crun", "features"): (0, features, ""),
    })
    info = detect.crun_cli(runner, lambda name: None, path="/opt/crun")
    assert info["version"] == "1.19"
    assert info["features_supported"] is True
    assert info["features"]["ociVersionMax"] == "1.2.0"


def test_crun_missing_and_broken():
    info = detect.crun_cli(FakeRunner({}), lambda name: None)
    assert info["present"] is False
    assert info["error"] == "crun not found in PATH"
    runner = FakeRunner({("/usr/bin/crun", "--version"): (1, "", "boom")})
    info = detect.crun_cli(runner, lambda name: "/usr/bin/crun")
    assert info["present"] is False
    assert "boom" in info["error"]
    assert runner.calls == [["/usr/bin/crun", "--version"]]


# --- libcrun -----------------------------------------------------------------

def _touch(path, content="", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)


def test_candidates_newest_version_first_then_linker(tmp_path):
    for version in ("1.9", "1.10", "1.8.1"):
        _touch(str(tmp_path / version / "lib" / "libcrun.so.0"))
    pattern = str(tmp_path / "*" / "lib" / "libcrun.so.0")
    found = detect.libcrun_candidates([pattern], find_library=lambda name: "libcrun.so.0")
    assert found[:3] == [str(tmp_path / v / "lib" / "libcrun.so.0") for v in ("1.10", "1.9", "1.8.1")]
    assert found[-1] == "libcrun.so.0"
    assert len(found) == len(set(found))


def test_find_libcrun_rejects_non_libcrun_and_records_errors(tmp_path):
    good = str(tmp_path / "good" / "lib" / "libcrun.so.0")
    other = str(tmp_path / "other" / "libz.so.1")
    _touch(good)
    _touch(other)

    def loader(path):
        if path == other:
            return types.SimpleNamespace()  # no libcrun symbols
        if path == good:
            return types.SimpleNamespace(**dict((s, object()) for s in detect.LIBCRUN_SYMBOLS))
        raise OSError("%s: cannot open shared object file" % path)

    info = detect.find_libcrun([other, "/nonexistent/libcrun.so.0", good], loader=loader,
                               find_library=lambda name: None, runner=FakeRunner({}))
    assert info["loaded"] is True
    assert info["path"] == os.path.realpath(good)
    assert info["tried"][0]["path"] == other
    assert info["tried"][0]["error"].startswith("not libcrun: missing symbols libcrun_container_load_from_file")
    assert info["tried"][-1] == {"path": good, "error": None}
    # neither a crun binary in the prefix nor a versioned prefix name
    assert info["version"] is None and info["version_source"] is None


def test_find_libcrun_none_loads(monkeypatch):
    # Not the host's /opt/lxcri/libcrun (the oci_runtime role may have built one there).
    monkeypatch.setattr(detect, "DEFAULT_LIBCRUN_GLOBS", ())

    def loader(path):
        raise OSError("nope")
    info = detect.find_libcrun([], loader=loader, find_library=lambda name: "libcrun.so.0")
    assert info["loaded"] is False
    assert info["tried"] == [{"path": "libcrun.so.0", "error": "nope"}]


def test_libcrun_version_from_sibling_crun(tmp_path):
    prefix = tmp_path / "custom"
    lib = str(prefix / "lib" / "libcrun.so.0")
    _touch(lib)
    crun = str(prefix / "bin" / "crun")
    _touch(crun, "#!/bin/sh\n", mode=0o755)
    runner = FakeRunner({(crun, "--version"): (0, CRUN_VERSION, "")})
    assert detect.libcrun_version(lib, runner) == (
        "1.8.1", "crun binary of the same prefix (%s)" % crun)


def test_libcrun_version_from_prefix_name(tmp_path):
    lib = str(tmp_path / "libcrun" / "1.21" / "lib" / "libcrun.so.0")
    _touch(lib)
    version, source = detect.libcrun_version(lib, FakeRunner({}))
    assert version == "1.21"
    assert source.startswith("install prefix")


def test_python_binding_found_beside_library(tmp_path):
    lib = str(tmp_path / "p" / "lib" / "libcrun.so.0")
    _touch(lib)
    binding = str(tmp_path / "p" / "lib" / "python3.11" / "site-packages" / "python_crun.so")
    _touch(binding)
    assert detect.python_binding(lib) == binding


def test_loaded_path_from_maps():
    maps = ("7f00-7f01 r--p 00000000 fd:00 123  /usr/lib/x86_64-linux-gnu/libc.so.6\n"
            "7f02-7f03 r-xp 00001000 fd:00 456  /usr/local/lib/libcrun.so.0.0.0\n")
    assert detect._loaded_path("libcrun.so", maps) == "/usr/local/lib/libcrun.so.0.0.0"
    assert detect._loaded_path("libcrun.so", "") is None


def test_real_ctypes_rejects_a_library_that_is_not_libcrun(monkeypatch):
    """ctypes really loads libc, which lacks libcrun's symbols."""
    # Loading a real libcrun in-process would re-execute pytest (libcrun's constructor).
    monkeypatch.setattr(detect, "DEFAULT_LIBCRUN_GLOBS", ())
    libc = "libc.so.6"
    info = detect.find_libcrun([], loader=ctypes.CDLL, find_library=lambda name: libc)
    assert info["loaded"] is False
    assert info["tried"][0]["error"].startswith("not libcrun: missing symbols")


# --- ZFS, LXC, Proxmox --------------------------------------------------------

def which_from(found):
    return found.get


def test_zfs_openzfs():
    runner = FakeRunner({
        ("/sbin/zfs", "version"): (0, "zfs-2.2.7-pve1\nzfs-kmod-2.2.7-pve1\n", ""),
        ("/sbin/zpool", "upgrade", "-v"): (0, "This system supports ZFS pool feature flags.\n", ""),
        ("/sbin/zpool", "list", "-H", "-o", "name"): (0, "rpool\n", ""),
    })
    info = detect.zfs_cli_info(runner, which_from({"zfs": "/sbin/zfs", "zpool": "/sbin/zpool"}))
    assert info["implementation"] == "openzfs"
    assert info["version"] == "2.2.7-pve1"
    assert info["kmod_version"] == "2.2.7-pve1"
    assert info["pool_version"] == 5000
    assert info["usable"] is True


def test_zfs_fuse_and_absent():
    runner = FakeRunner({
        ("/sbin/zfs", "version"): (2, "", "unrecognized command 'version'"),
        ("/sbin/zpool", "upgrade", "-v"): (0, "This system is currently running ZFS pool version 23.\n", ""),
        ("/sbin/zpool", "list", "-H", "-o", "name"): (1, "", "connect: No such file or directory"),
    })
    info = detect.zfs_cli_info(runner, which_from(
        {"zfs": "/sbin/zfs", "zpool": "/sbin/zpool", "zfs-fuse": "/sbin/zfs-fuse"}))
    assert info["implementation"] == "zfs-fuse"
    assert info["pool_version"] == 23
    assert info["usable"] is False
    absent = detect.zfs_cli_info(FakeRunner({}), which_from({}))
    assert absent["present"] is False and absent["implementation"] is None


def test_libzfs_core_variants():
    def missing(name):
        raise ImportError("No module named 'libzfs_core'")
    info = detect.libzfs_core_info(missing)
    assert info["importable"] is False
    assert info["error"] == "ImportError: No module named 'libzfs_core'"

    openzfs = types.SimpleNamespace(__file__="/usr/lib/python3/dist-packages/libzfs_core/__init__.py",
                                    __version__="0.1", is_supported=lambda f: True)
    info = detect.libzfs_core_info(lambda name: openzfs)
    assert info == {"importable": True, "path": openzfs.__file__, "version": "0.1", "error": None}

    abandoned = types.SimpleNamespace(__file__="/x/libzfs_core.py")
    info = detect.libzfs_core_info(lambda name: abandoned)
    assert info["importable"] is False
    assert "not OpenZFS's pyzfs" in info["error"]


def test_lxc_and_proxmox():
    runner = FakeRunner({
        ("/usr/bin/lxc-start", "--version"): (0, "6.0.0\n", ""),
        ("/usr/bin/pveversion",): (0, "pve-manager/9.1.1/42db4a6cf33dac83 (running kernel: 6.17.2-1-pve)\n", ""),
    })
    which = which_from({"lxc-start": "/usr/bin/lxc-start", "pct": "/usr/sbin/pct",
                        "pvesh": "/usr/bin/pvesh", "pveversion": "/usr/bin/pveversion"})
    assert detect.lxc_info(runner, which) == {"present": True, "path": "/usr/bin/lxc-start",
                                              "version": "6.0.0"}
    pve = detect.proxmox_info(runner, which)
    assert pve["is_node"] is True
    assert pve["version"] == "9.1.1"
    none = detect.proxmox_info(FakeRunner({}), which_from({}))
    assert none["is_node"] is False and none["version"] is None


def test_default_which_searches_sbin(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    # sbin tools are found even when PATH lacks them (modules may run with a short PATH)
    found = detect.default_which("ls")
    assert found is not None and os.stat(found).st_mode & stat.S_IXUSR


@pytest.mark.parametrize("loaded,present,expected", [
    (True, True, "libcrun"), (False, True, "cli"), (False, False, None)])
def test_preferred_runtime(monkeypatch, loaded, present, expected):
    monkeypatch.setattr(detect, "find_libcrun", lambda *a, **k: {"loaded": loaded})
    monkeypatch.setattr(detect, "crun_cli", lambda *a, **k: {"present": present})
    monkeypatch.setattr(detect, "cgroup_layout", lambda: {})
    assert detect.runtime_report(runner=FakeRunner({}), which=which_from({}))["preferred_runtime"] == expected


def test_selected_runtime_prefers_the_role_fact(tmp_path):
    fact = tmp_path / "lxcri_oci_runtime.fact"
    libcrun = {"loaded": True, "path": "/x/libcrun.so.0", "version": "1.8.1", "python_binding": None}
    missing = detect.selected_runtime("libcrun", libcrun, str(fact))
    assert missing["source"] == "detection" and missing["runtime"] == "libcrun"
    assert missing["libcrun"]["library"] == "/x/libcrun.so.0" and missing["fact_error"] is None
    fact.write_text('{"runtime": "cli", "reason": "mode cli"}')
    got = detect.selected_runtime("libcrun", libcrun, str(fact))
    assert got["source"] == "fact" and got["runtime"] == "cli" and got["reason"] == "mode cli"
    fact.write_text("{broken")
    bad = detect.selected_runtime(None, {"loaded": False}, str(fact))
    assert bad["source"] == "detection" and "not JSON" in bad["fact_error"] and bad["libcrun"] is None


def test_probe_library_loads_in_a_child(tmp_path):
    import ctypes.util
    libc = ctypes.util.find_library("c")
    lib = detect.probe_library(libc, symbols=("printf", "no_such_symbol_here"))
    assert hasattr(lib, "printf") and not hasattr(lib, "no_such_symbol_here")
    assert lib.lxcri_loaded_path and "libc" in os.path.basename(lib.lxcri_loaded_path)
    with pytest.raises(OSError):
        detect.probe_library(str(tmp_path / "missing.so"))
