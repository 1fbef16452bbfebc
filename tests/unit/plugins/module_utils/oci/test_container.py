"""Unit tests of oci_container's engine: what it decides before it touches the node."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import container
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.container import ContainerError, ContainerManager


def manager(tmp_path, **params):
    base = {"name": "app", "image": "registry.local:5000/app:1", "base_dir": str(tmp_path / "oci"),
            "volumes_dir": str(tmp_path / "vol"), "unit_dir": str(tmp_path / "units"),
            "cache_dir": str(tmp_path / "cache")}
    base.update(params)
    return ContainerManager(base, runner=lambda argv: (0, "", ""))


@pytest.mark.parametrize("params, words", [
    ({"name": "App"}, "name 'App'"),
    ({"name": "-x"}, "name '-x'"),
    ({"image": None}, "state started needs image"),
    ({"rollback": True}, "leave image out"),
    ({"rollback": True, "image": None, "state": "absent"}, "do not go together"),
    ({"stop_timeout": 0}, "stop_timeout must be at least 1"),
    ({"env": "A=1"}, "env must be a dict or a list of NAME=value, not str"),
    ({"keep_snapshots": 0}, "keep_snapshots must be at least 1"),
    ({"zfs_dataset": "tank"}, "pool's root dataset"),
    ({"zfs_dataset": "tank/other/app", "allowed_roots": ["tank/lxcri"]}, "outside allowed_roots"),
    ({"zfs_dataset": "rpool/data/subvol-100-disk-0"}, "managed by Proxmox VE"),
])
def test_refusals(tmp_path, params, words):
    with pytest.raises(ContainerError, match=words):
        manager(tmp_path, **params)


def test_unit_text():
    text = container.unit_text("app", "reg/app:1", "/var/lib/lxcri/oci/.engine/abc", "/usr/bin/python3",
                               "/var/lib/lxcri/oci/app", "SIGQUIT", 20, "always", "tank/lxcri/app")
    lines = text.splitlines()
    runner = "/usr/bin/python3 -I -B /var/lib/lxcri/oci/.engine/abc/lxcri-oci.py"
    for line in ("Type=notify", "NotifyAccess=main", "KillSignal=SIGQUIT", "KillMode=mixed", "TimeoutStopSec=35",
                 "Restart=always", "RequiresMountsFor=/var/lib/lxcri/oci/app", "After=zfs-mount.service",
                 "ExecStartPre=%s prepare /var/lib/lxcri/oci/app" % runner,
                 "ExecStart=%s run /var/lib/lxcri/oci/app" % runner,
                 "ExecStopPost=%s cleanup /var/lib/lxcri/oci/app" % runner, "WantedBy=multi-user.target"):
        assert line in lines, line
    assert "After=zfs-mount.service" not in container.unit_text("a", "i", "/e", "/p", "/b", "SIGTERM", 10, "no")


def test_host_if_name_is_short_and_stable():
    assert container.host_if_name("a" * 48) == container.host_if_name("a" * 48)
    assert len(container.host_if_name("a" * 48)) <= 15
    assert container.host_if_name("a") != container.host_if_name("b")


@pytest.mark.parametrize("cgroups, params, words", [
    ({"layout": "hybrid", "v2_controllers": [], "v1_controllers": ["memory", "cpu"]}, {"pids_limit": 64},
     "pids_limit: this node's cgroups \\(hybrid; the controllers crun can use: cpu, memory\\) have no pids controller"),
    ({"layout": "v2", "v2_controllers": ["memory"], "v1_controllers": []}, {"memory": "64M", "cpus": 1.0},
     "cpus: .* have no cpu controller"),
    ({"layout": "none", "v2_controllers": [], "v1_controllers": []}, {"pids_limit": 10}, "no pids controller"),
])
def test_limits_need_their_controller(tmp_path, cgroups, params, words):
    with pytest.raises(ContainerError, match=words):
        manager(tmp_path, **params).check_controllers(cgroups)


def test_limits_pass_where_the_controller_is(tmp_path):
    m = manager(tmp_path, memory="64M", cpus=0.5, pids_limit=50)
    m.check_controllers({"layout": "v2", "v2_controllers": ["cpu", "memory", "pids"], "v1_controllers": []})
    m.check_controllers({"layout": "v1", "v2_controllers": [], "v1_controllers": ["cpu", "memory", "pids"]})
    assert manager(tmp_path).check_controllers({"layout": "hybrid", "v2_controllers": [], "v1_controllers": []}) \
        is None


def test_a_hybrid_nodes_limits_go_through_its_v1_hierarchies(tmp_path):
    """Limits on a hybrid node whose cgroup2 has no controller: a private v1-only view; with the controllers in
    cgroup2 (or without limits) the cgroup2 view stays."""
    hybrid = {"layout": "hybrid", "v2_controllers": [], "v1_controllers": ["cpu", "memory", "pids"]}
    assert manager(tmp_path, memory="64M", cpus=0.5, pids_limit=50).check_controllers(hybrid) == "v1"
    assert manager(tmp_path).check_controllers(hybrid) is None
    assert manager(tmp_path, memory="64M").check_controllers(dict(hybrid, v2_controllers=["memory"])) is None


def test_v1_hierarchies_from_mountinfo():
    from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import agent  # pylint: disable=import-outside-toplevel
    text = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
            "50 23 0:40 / /var/lib/x rw - cgroup cgroup rw,pids\n")
    assert agent._v1_hierarchies(text) == ["cpu,cpuacct", "memory", "systemd"]  # pylint: disable=protected-access


def test_volume_plan(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    m = manager(tmp_path, volumes=[{"target": "/in", "source": str(host), "read_only": True},
                                   {"target": "/data", "source": "appdata"}, {"target": "/cache/x"}])
    plan = m.volume_plan({"volumes": ["/data", "/var/lib/db", "/"]})
    by_target = dict((item["target"], item) for item in plan)
    assert by_target["/in"]["kind"] == "bind" and by_target["/in"]["source"] == str(host)
    assert by_target["/data"]["source"] == str(tmp_path / "vol" / "app" / "appdata")
    assert by_target["/cache/x"]["source"] == str(tmp_path / "vol" / "app" / "_cache_x")
    assert by_target["/var/lib/db"]["kind"] == "image-volume" and "/" not in by_target
    assert all(item["new"] for item in plan if item["kind"] != "bind")


@pytest.mark.parametrize("volume, words", [
    ({"target": "/in", "source": "/no/such/dir"}, "bind source /no/such/dir does not exist"),
    ({"target": "/in", "source": "../escape"}, "is not a volume name"),
    ({"target": "/proc/x"}, "cannot be a mount point"),
])
def test_volume_plan_refusals(tmp_path, volume, words):
    with pytest.raises(Exception, match=words):
        manager(tmp_path, volumes=[volume]).volume_plan({"volumes": []})


def test_network_plan(tmp_path):
    assert manager(tmp_path).network_plan() is None
    with pytest.raises(ContainerError, match="address applies to mode bridge only"):
        manager(tmp_path, network={"mode": "host", "address": "192.0.2.2/24"}).network_plan()
    with pytest.raises(ContainerError, match="needs bridge"):
        manager(tmp_path, network={"mode": "bridge"}).network_plan()
    with pytest.raises(ContainerError, match="is not a bridge on this node"):
        manager(tmp_path, network={"mode": "bridge", "bridge": "no-such-br0", "address": "192.0.2.2/24"}).network_plan()


def test_inside_refuses_symlinks_out_of_the_image(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "app" / "data").mkdir(parents=True)
    (rootfs / "link").symlink_to("/etc")
    assert container._inside(str(rootfs), "/app/data") == str(rootfs / "app" / "data")  # pylint: disable=protected-access
    assert container._inside(str(rootfs), "/link") is None  # pylint: disable=protected-access
    assert container._inside(str(rootfs), "/missing") is None  # pylint: disable=protected-access


def _bundle_version(where, digest, page):
    import json  # pylint: disable=import-outside-toplevel
    (where / "rootfs").mkdir(parents=True)
    (where / "rootfs" / "page").write_text(page)
    (where / "config.json").write_text(json.dumps({"version": digest}))
    (where / "lxcri.json").write_text(json.dumps({"digest": digest, "image": "app:" + page, "rootfs": {"dataset": None},
                                                  "process": {"argv": [page]}, "unit": "[Unit]\n# %s\n" % digest}))


def test_directory_rollback_swaps_the_kept_version_back(tmp_path):
    calls = []

    def runner(argv):
        calls.append(argv)
        return 0, "LoadState=loaded\nActiveState=inactive\n", ""

    bundle = tmp_path / "oci" / "app"
    _bundle_version(bundle, "sha256:new", "new")
    _bundle_version(bundle / ".previous", "sha256:old", "old")
    (tmp_path / "units").mkdir()
    params = {"name": "app", "image": None, "rollback": True, "state": "present", "base_dir": str(tmp_path / "oci"),
              "volumes_dir": str(tmp_path / "vol"), "unit_dir": str(tmp_path / "units")}
    planned = ContainerManager(dict(params), check_mode=True, runner=runner).run()
    assert planned["changed"] and planned["rolled_back_to"] == "sha256:old"
    assert (bundle / ".previous").is_dir() and (bundle / "rootfs" / "page").read_text() == "new"  # check mode
    result = ContainerManager(dict(params), runner=runner).run()
    assert result["rolled_back_to"] == "sha256:old" and result["digest"] == "sha256:old"
    assert (bundle / "rootfs" / "page").read_text() == "old"
    assert '"sha256:old"' in (bundle / "config.json").read_text()
    assert not (bundle / ".previous").exists() and not (bundle / "rootfs.old").exists()
    assert (tmp_path / "units" / "lxcri-oci-app.service").read_text() == "[Unit]\n# sha256:old\n"
    assert ["systemctl", "daemon-reload"] in calls
    with pytest.raises(ContainerError, match="keeps no previous version"):
        ContainerManager(dict(params), runner=runner).run()


def test_status_names_the_container_pid_while_active(tmp_path):
    out = ("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=41\nNRestarts=0\n"
           "StatusText=container lxcri-oci-app runs as pid 4242 (cli)\n")
    mgr = ContainerManager({"name": "app", "image": "r/app:1", "base_dir": str(tmp_path)}, runner=lambda argv: (0, out, ""))
    assert mgr.unit_state()["pid"] == 4242 and mgr.unit_state()["main_pid"] == 41
    stopped = out.replace("ActiveState=active", "ActiveState=deactivating")
    mgr.runner = lambda argv: (0, stopped, "")
    assert mgr.unit_state()["pid"] is None
