"""Unit tests of oci_container's config.json (pure functions)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import ocispec
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

PROCESS = {"argv": ["/bin/app", "--serve"], "env": ["PATH=/bin", "A=b c"], "cwd": "/srv", "uid": 1000, "gid": 1000,
           "groups": [27, 100]}


@pytest.mark.parametrize("text, size", [("512M", 512 << 20), ("1G", 1 << 30), ("1.5GiB", 3 << 29),
                                        ("268435456", 268435456), (64 << 20, 64 << 20), (None, None)])
def test_parse_memory(text, size):
    assert ocispec.parse_memory(text) == size


@pytest.mark.parametrize("text, words", [("lots", "not a size"), ("1M", "below 6M"), ("-5M", "not a size")])
def test_parse_memory_refuses(text, words):
    with pytest.raises(OciRuntimeError, match=words):
        ocispec.parse_memory(text)


def test_cpu_quota():
    assert ocispec.cpu_quota(0.5) == 50000
    assert ocispec.cpu_quota(2) == 200000
    assert ocispec.cpu_quota(None) is None
    with pytest.raises(OciRuntimeError, match="at least 0.01"):
        ocispec.cpu_quota(0)
    with pytest.raises(OciRuntimeError, match="not a number"):
        ocispec.cpu_quota("many")


def test_capabilities_follow_docker():
    assert ocispec.capabilities() == sorted(ocispec.DEFAULT_CAPS)
    caps = ocispec.capabilities(cap_add=["net_admin"], cap_drop=["CAP_NET_RAW", "mknod"])
    assert "CAP_NET_ADMIN" in caps and "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
    assert ocispec.capabilities(cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"]) == ["CAP_NET_BIND_SERVICE"]
    everything = ocispec.capabilities(cap_add=["ALL"], cap_drop=["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in everything and "CAP_SYS_MODULE" in everything
    with pytest.raises(OciRuntimeError, match="unknown capability 'CAP_FLY'"):
        ocispec.capabilities(cap_add=["CAP_FLY"])


def test_default_seccomp_denies_what_docker_denies_and_allows_the_rest():
    profile = ocispec.default_seccomp("amd64")
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"][0] == "SCMP_ARCH_X86_64"
    denied = profile["syscalls"][0]
    for name in ("mount", "kexec_load", "init_module", "unshare", "setns", "bpf", "keyctl", "reboot"):
        assert name in denied["names"]
    assert denied["errnoRet"] == 1
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in profile["syscalls"]
    clone_rules = [rule for rule in profile["syscalls"] if rule["names"] == ["clone"]]
    assert sorted(rule["args"][0]["value"] for rule in clone_rules) == sorted(ocispec.CLONE_NAMESPACE_FLAGS)
    assert all(rule["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" for rule in clone_rules)
    assert "architectures" not in ocispec.default_seccomp("riscv64")


@pytest.mark.parametrize("path, words", [("relative", "not an absolute path"), ("/", "cannot be a mount point"),
                                         ("/proc/x", "cannot be a mount point"), ("/dev", "cannot be a mount point")])
def test_check_target_refuses(path, words):
    with pytest.raises(OciRuntimeError, match=words):
        ocispec.check_target(path, "volumes")


def test_check_target_normalises():
    assert ocispec.check_target("/data//x/../y/", "volumes") == "/data/y"
    assert ocispec.check_target("/developer", "volumes") == "/developer"


def test_build_config():
    options = {"mounts": [{"source": "/var/lib/v", "target": "/data", "read_only": False},
                          {"source": "/etc/ssl", "target": "/etc/ssl", "read_only": True}],
               "memory": 64 << 20, "cpu_quota": 50000, "pids_limit": 100, "caps": ["CAP_KILL"],
               "seccomp": ocispec.default_seccomp(), "read_only": True, "netns": "/run/netns/lxcri-app",
               "resolv_conf": "/etc/resolv.conf", "cgroups_path": "/lxcri-oci/app"}
    config = ocispec.build_config(PROCESS, "app", options, layout="v2")
    proc = config["process"]
    assert proc["args"] == PROCESS["argv"] and proc["env"] == PROCESS["env"] and proc["cwd"] == "/srv"
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [27, 100]}
    assert proc["capabilities"]["bounding"] == ["CAP_KILL"] and proc["terminal"] is False
    assert config["root"] == {"path": "rootfs", "readonly": True}
    binds = [m for m in config["mounts"] if m["type"] == "bind"]
    assert [(m["source"], m["destination"], "ro" in m["options"]) for m in binds] == [
        ("/etc/resolv.conf", "/etc/resolv.conf", True), ("/var/lib/v", "/data", False), ("/etc/ssl", "/etc/ssl", True)]
    linux = config["linux"]
    assert {"type": "network", "path": "/run/netns/lxcri-app"} in linux["namespaces"]
    assert {"type": "cgroup"} in linux["namespaces"]
    assert linux["resources"] == {"memory": {"limit": 64 << 20}, "cpu": {"quota": 50000, "period": 100000},
                                  "pids": {"limit": 100}}
    assert linux["cgroupsPath"] == "/lxcri-oci/app" and linux["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"


def test_build_config_defaults_and_layouts():
    config = ocispec.build_config(dict(PROCESS, groups=[]), "app", {}, layout="none")
    assert "additionalGids" not in config["process"]["user"]
    assert sorted(config["process"]["capabilities"]["bounding"]) == sorted(ocispec.DEFAULT_CAPS)
    assert not any(m["destination"] == "/sys/fs/cgroup" for m in config["mounts"])
    assert "resources" not in config["linux"] and "seccomp" not in config["linux"]
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    v1 = ocispec.build_config(PROCESS, "app", {"memory": 1 << 30}, layout="v1")
    assert {"type": "cgroup"} not in v1["linux"]["namespaces"] and v1["linux"]["resources"]["memory"]


def test_build_config_refuses_a_target_twice():
    mounts = [{"source": "/a", "target": "/data"}, {"source": "/b", "target": "/data/"}]
    with pytest.raises(OciRuntimeError, match="/data is mounted twice"):
        ocispec.build_config(PROCESS, "app", {"mounts": mounts})
