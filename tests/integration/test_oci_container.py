"""oci_container (issue 20): a registry image run on the node by libcrun and by the crun CLI, under a real systemd.

systemd runs as PID 1 of its own PID and mount namespaces (lxcri_testbed/systemd_ns.py); the module runs inside
them through ``ansible`` (``nsenter`` as the command prefix), so its units are started, stopped and restarted by
systemd itself, and the container's process is read from /proc there: argv, environment, working directory, ids.
"""

import json
import os
import uuid

import pytest

from lxcri_testbed import TEST_REPO_NS
from lxcri_testbed.systemd_ns import SystemdNamespace, available, share_mounts_below

pytestmark = pytest.mark.integration


def _need_systemd():
    from conftest import need  # pylint: disable=import-outside-toplevel
    need(available() is None, "systemd in a namespace cannot run here: %s" % available())


@pytest.fixture(name="systemd", scope="module")
def fixture_systemd(tmp_path_factory, bed):
    _need_systemd()
    ns = SystemdNamespace(tmp_path_factory.mktemp("systemd")).start()
    yield ns
    ns.stop()


def base_args(workdir, name, image, **extra):
    args = {"name": name, "image": image, "registry_tls_verify": False, "unit_dir": "/run/systemd/system",
            "base_dir": str(workdir / "oci"), "volumes_dir": str(workdir / "volumes"),
            "cache_dir": str(workdir / "cache")}
    args.update(extra)
    return args


def container_process(ns, name):
    """{pid, argv, env, cwd, uid, gid, groups, seccomp} of the container's process, read inside the namespace."""
    state = json.loads(ns.run(["crun", "--root", "/run/lxcri/oci", "state", "lxcri-oci-" + name]).stdout)
    pid = state["pid"]
    argv = ns.run(["cat", "/proc/%d/cmdline" % pid]).stdout.split("\0")[:-1]
    env = ns.run(["cat", "/proc/%d/environ" % pid]).stdout.split("\0")[:-1]
    status = dict(line.split(":", 1) for line in ns.run(["cat", "/proc/%d/status" % pid]).stdout.splitlines()
                  if ":" in line)
    root = ns.run(["readlink", "/proc/%d/root" % pid]).stdout.strip()
    cwd = ns.run(["readlink", "/proc/%d/cwd" % pid]).stdout.strip()
    return {"pid": pid, "argv": argv, "env": env, "cwd": cwd[len(root):] if root != "/" else cwd,
            "uid": int(status["Uid"].split()[0]), "gid": int(status["Gid"].split()[0]),
            "groups": status["Groups"].split(), "seccomp": status["Seccomp"].strip(), "cap_eff": status["CapEff"]}


def unit_show(ns, name, *props):
    out = ns.run(["systemctl", "show", "--property=" + ",".join(props), "lxcri-oci-%s.service" % name]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def run_module(installed_collection, ns, args, **options):
    result = installed_collection.module("lxcri.proxmox.oci_container", args, prefix=ns.prefix, **options)
    assert result.data is not None, result
    return result


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_runs_the_image_and_survives_a_unit_restart(installed_collection, systemd, registry_image, bed, tmp_path,
                                                    backend):
    name = "t%s-%s" % (uuid.uuid4().hex[:6], backend)
    image = registry_image.refs["open"]
    args = base_args(tmp_path, name, image, runtime=backend, libcrun_search=[bed["libcrun"]["library"]])

    check = run_module(installed_collection, systemd, args, check=True, diff=True)
    assert check.rc == 0, check
    assert check.data["changed"] is True
    assert not os.path.exists(tmp_path / "oci" / name), "check mode wrote the bundle"

    first = run_module(installed_collection, systemd, args, diff=True)
    assert first.rc == 0, (first.data.get("msg"), first.data.get("journal"))
    data = first.data
    assert data["changed"] is True and data["runtime"]["backend"] == backend, data
    assert data["status"]["active"] == "active", data
    assert data["digest"] == registry_image.digest
    proc = container_process(systemd, name)
    config = registry_image.config
    assert proc["argv"] == config["entrypoint"] + config["cmd"]
    assert [e for e in proc["env"] if not e.startswith("HOME=")] == config["env"]
    assert proc["cwd"] == config["workdir"]
    assert (proc["uid"], proc["gid"]) == (1000, 1000)
    assert proc["seccomp"] == "2", "the default seccomp filter is not applied"
    assert data["process"]["argv"] == proc["argv"]
    cgroup = systemd.run(["cat", "/proc/%d/cgroup" % proc["pid"]]).stdout
    assert "lxcri-oci/" + name in cgroup, cgroup

    again = run_module(installed_collection, systemd, args)
    assert again.rc == 0 and again.data["changed"] is False, again.data
    assert container_process(systemd, name)["pid"] == proc["pid"], "an unchanged run restarted the container"

    # the node's own systemctl restart: a new runner, a new container, the same process
    before = unit_show(systemd, name, "MainPID")["MainPID"]
    systemd.run(["systemctl", "restart", "lxcri-oci-%s.service" % name])
    shown = unit_show(systemd, name, "ActiveState", "MainPID", "StatusText")
    assert shown["ActiveState"] == "active" and shown["MainPID"] != before, shown
    after = container_process(systemd, name)
    assert after["pid"] != proc["pid"]
    assert (after["argv"], after["cwd"], after["uid"]) == (proc["argv"], proc["cwd"], proc["uid"])
    journal = systemd.run(["journalctl", "-o", "cat", "--no-pager", "-u", "lxcri-oci-%s.service" % name]).stdout
    assert "backend %s" % backend in journal, journal

    stopped = run_module(installed_collection, systemd, dict(args, state="stopped"))
    assert stopped.rc == 0 and stopped.data["changed"] is True, stopped.data
    assert stopped.data["status"]["active"] == "inactive"
    gone = systemd.run(["crun", "--root", "/run/lxcri/oci", "state", "lxcri-oci-" + name], check=False)
    assert gone.returncode != 0, "the container outlived its unit"

    absent_check = run_module(installed_collection, systemd, {"name": name, "state": "absent",
                                                              "unit_dir": "/run/systemd/system",
                                                              "base_dir": str(tmp_path / "oci"),
                                                              "volumes_dir": str(tmp_path / "volumes")}, check=True)
    assert absent_check.data["changed"] is True and os.path.isdir(tmp_path / "oci" / name)
    assert absent_check.data["removed"] == ["/run/systemd/system/lxcri-oci-%s.service" % name,
                                            str(tmp_path / "oci" / name)]
    absent = run_module(installed_collection, systemd, {"name": name, "state": "absent",
                                                        "unit_dir": "/run/systemd/system",
                                                        "base_dir": str(tmp_path / "oci"),
                                                        "volumes_dir": str(tmp_path / "volumes")})
    assert absent.rc == 0 and absent.data["changed"] is True
    assert not os.path.exists(tmp_path / "oci" / name)
    assert systemd.run(["test", "-e", "/run/systemd/system/lxcri-oci-%s.service" % name], check=False).returncode


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_limits_reach_the_containers_cgroup(installed_collection, systemd, registry_image, bed, tmp_path, backend):
    """memory, cpus and pids_limit reach the container's cgroup on this node's layout: on a hybrid node whose
    cgroup2 has no controller (as this one) crun gets a private view of the v1 hierarchies and the limits land
    there; a limit whose controller the node lacks anywhere is refused before anything is made (unit tests)."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect  # pylint: disable=import-outside-toplevel
    from conftest import need  # pylint: disable=import-outside-toplevel
    cgroups = detect.cgroup_layout()
    name = "tlim-%s-%s" % (uuid.uuid4().hex[:6], backend)
    args = base_args(tmp_path, name, registry_image.refs["open"], runtime=backend, memory="64M", cpus=0.5,
                     pids_limit=50, libcrun_search=[bed["libcrun"]["library"]])
    result = run_module(installed_collection, systemd, args)
    v2 = cgroups["layout"] == "v2" or (cgroups["layout"] == "hybrid" and
                                       {"memory", "cpu", "pids"} <= set(cgroups["v2_controllers"]))
    need(v2 or {"memory", "cpu", "pids"} <= set(cgroups["v1_controllers"]),
         "this node has no memory, cpu and pids controllers (%s)" % cgroups)
    assert result.rc == 0, (result.data.get("msg"), result.data.get("journal"))
    assert result.data["runtime"]["backend"] == backend
    pid = container_process(systemd, name)["pid"]
    lines = systemd.run(["cat", "/proc/%d/cgroup" % pid]).stdout.split()
    paths = dict((line.split(":", 2)[1], line.split(":", 2)[2]) for line in lines)
    if v2:
        path = "/sys/fs/cgroup" + paths[""]
        assert systemd.run(["cat", path + "/memory.max"]).stdout.strip() == str(64 << 20)
        assert systemd.run(["cat", path + "/cpu.max"]).stdout.split() == ["50000", "100000"]
        assert systemd.run(["cat", path + "/pids.max"]).stdout.strip() == "50"
    else:
        assert paths["memory"] == "/lxcri-oci/" + name, paths
        memory = [key for key in paths if "memory" in key.split(",")][0]
        cpu = [key for key in paths if "cpu" in key.split(",")][0]
        assert systemd.run(["cat", "/sys/fs/cgroup/%s/lxcri-oci/%s/memory.limit_in_bytes" % (memory, name)]
                           ).stdout.strip() == str(64 << 20)
        assert systemd.run(["cat", "/sys/fs/cgroup/%s/lxcri-oci/%s/cpu.cfs_quota_us" % (cpu, name)]
                           ).stdout.strip() == "50000"
        assert systemd.run(["cat", "/sys/fs/cgroup/pids/lxcri-oci/%s/pids.max" % name]).stdout.strip() == "50"
    # the exec prefix works in this view too: the container's PID 1 (its process) as seen from inside
    inside = systemd.run(result.data["exec"] + ["cat", "/proc/1/cgroup"]).stdout
    if v2:
        assert inside.strip() == "0::/", inside  # its own cgroup namespace
    else:
        assert ":memory:/lxcri-oci/%s\n" % name in inside, inside
    stopped = run_module(installed_collection, systemd, dict(args, state="absent"))
    assert stopped.rc == 0, stopped
    if not v2:  # crun removed the container's cgroups with it
        assert not os.path.exists("/sys/fs/cgroup/memory/lxcri-oci/" + name)


def test_a_start_that_fails_reports_the_journal(installed_collection, systemd, registry_image, tmp_path):
    name = "tfail-" + uuid.uuid4().hex[:6]
    args = base_args(tmp_path, name, registry_image.refs["open"], entrypoint=["/bin/no-such-program"],
                     restart="no", runtime="cli")
    failed = run_module(installed_collection, systemd, args)
    assert failed.rc != 0
    assert "did not start" in failed.data["msg"], failed.data
    assert "no-such-program" in failed.data["journal"], failed.data
    run_module(installed_collection, systemd, {"name": name, "state": "absent", "unit_dir": "/run/systemd/system",
                                               "base_dir": str(tmp_path / "oci")})


def test_volumes_and_read_only_root(installed_collection, systemd, registry_image, tmp_path):
    name = "tvol-" + uuid.uuid4().hex[:6]
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "input.txt").write_text("from the node\n")
    args = base_args(tmp_path, name, registry_image.refs["open"], runtime="cli", read_only=True,
                     entrypoint=["/bin/sh", "-c", "cat /in/input.txt > /data/copied; echo ok > /app/data/new; "
                                 "touch /etc/x 2>/dev/null && echo writable > /data/root || echo ro > /data/root; "
                                 "exec sleep 3600"],
                     volumes=[{"source": str(host), "target": "/in", "read_only": True},
                              {"source": "appdata", "target": "/app/data"},
                              {"target": "/data"}])
    result = run_module(installed_collection, systemd, args)
    assert result.rc == 0, result
    kinds = dict((v["target"], v["kind"]) for v in result.data["volumes"])
    assert kinds == {"/in": "bind", "/app/data": "volume", "/data": "volume"}
    volumes = tmp_path / "volumes" / name
    # the new named volume was filled with what the image holds at /app/data (version 3), then written by the app
    for dummy in range(50):
        if (volumes / "_data" / "root").exists():
            break
        systemd.run(["sleep", "0.1"])
    assert (volumes / "_data" / "copied").read_text() == "from the node\n"
    assert (volumes / "_data" / "root").read_text() == "ro\n"
    assert (volumes / "appdata" / "version").read_text() == "3\n"  # the image's file, copied
    assert (volumes / "appdata" / "new").read_text() == "ok\n"
    assert os.stat(volumes / "_data").st_uid == 1000
    removed = run_module(installed_collection, systemd, {"name": name, "state": "absent",
                                                         "unit_dir": "/run/systemd/system",
                                                         "base_dir": str(tmp_path / "oci"),
                                                         "volumes_dir": str(tmp_path / "volumes")})
    assert removed.data["kept_volumes"] == str(volumes) and volumes.is_dir()


def test_zfs_upgrade_and_rollback(installed_collection, registry_image, bed, zfs_dataset, tmp_path):
    """An image change on a container's own dataset: a snapshot first, then the new image; rollback returns to it."""
    from lxcri_testbed.bed import run  # pylint: disable=import-outside-toplevel
    from lxcri_testbed.images import build_image, push_image  # pylint: disable=import-outside-toplevel
    _need_systemd()
    mountpoint = run(["zfs", "get", "-H", "-o", "value", "mountpoint", zfs_dataset]).stdout.strip()
    share_mounts_below(mountpoint)  # zfs-fuse mounts the container's dataset in the host's namespace
    ns = SystemdNamespace(tmp_path / "systemd", keep_mounts=[mountpoint]).start()
    try:
        v2 = build_image(str(tmp_path / "v2"), tag="v2", marker="second")
        push_image(v2, bed["registry"], TEST_REPO_NS + "/busybox", "open")
        name = "tzfs-" + uuid.uuid4().hex[:6]
        dataset = zfs_dataset + "/oci/" + name
        args = base_args(tmp_path, name, registry_image.refs["open"], runtime="cli", zfs_dataset=dataset,
                         allowed_roots=[zfs_dataset], base_dir=mountpoint + "/bundles")
        first = run_module(installed_collection, ns, args)
        assert first.rc == 0, (first.data.get("msg"), first.data.get("journal"))
        assert first.data["rootfs"]["dataset"] == dataset and "snapshot" not in first.data
        bundle = mountpoint + "/bundles/" + name
        assert not os.path.exists(bundle + "/rootfs/etc/lxcri-marker")

        upgraded = run_module(installed_collection, ns, dict(args, image=v2.refs["open"]), diff=True)
        assert upgraded.rc == 0, upgraded
        snapshot = upgraded.data["snapshot"]
        assert snapshot.startswith(dataset + "@lxcri-") and snapshot.endswith(registry_image.digest[7:19])
        assert upgraded.data["diff"]["before"]["digest"] == registry_image.digest
        assert upgraded.data["diff"]["after"]["digest"] == v2.digest
        with open(bundle + "/rootfs/etc/lxcri-marker") as handle:
            assert handle.read() == "second\n"
        assert upgraded.data["status"]["active"] == "active"

        run(["zfs", "snapshot", dataset + "@operator"])
        refused = run_module(installed_collection, ns, {"name": name, "zfs_dataset": dataset,
                                                        "allowed_roots": [zfs_dataset], "rollback": True,
                                                        "unit_dir": "/run/systemd/system",
                                                        "base_dir": mountpoint + "/bundles"})
        assert refused.rc != 0 and "@operator is newer" in refused.data["msg"], refused.data
        run(["zfs", "destroy", dataset + "@operator"])

        rolled = run_module(installed_collection, ns, {"name": name, "zfs_dataset": dataset,
                                                       "allowed_roots": [zfs_dataset], "rollback": True,
                                                       "unit_dir": "/run/systemd/system",
                                                       "base_dir": mountpoint + "/bundles"})
        assert rolled.rc == 0, rolled
        assert rolled.data["rolled_back_to"] == snapshot and rolled.data["digest"] == registry_image.digest
        assert not os.path.exists(bundle + "/rootfs/etc/lxcri-marker")
        assert rolled.data["status"]["active"] == "active"
        proc = container_process(ns, name)
        assert proc["argv"] == registry_image.config["entrypoint"] + registry_image.config["cmd"]

        stopped = run_module(installed_collection, ns, dict(args, image=registry_image.refs["open"], state="stopped"))
        assert stopped.rc == 0 and stopped.data["changed"] is True, stopped
        absent_check = run_module(installed_collection, ns, {"name": name, "state": "absent", "zfs_dataset": dataset,
                                                             "allowed_roots": [zfs_dataset],
                                                             "unit_dir": "/run/systemd/system",
                                                             "base_dir": mountpoint + "/bundles"}, check=True)
        assert absent_check.data["removed"] == ["/run/systemd/system/lxcri-oci-%s.service" % name,
                                                "dataset %s with its snapshots" % dataset], absent_check.data
    finally:
        ns.stop()
    # zfs-fuse refuses to destroy a dataset that the namespace's copy of the host's mounts still holds (the
    # umount does not reach it), so the dataset goes from the host's namespace, once systemd's has ended
    absent = installed_collection.module("lxcri.proxmox.oci_container", {
        "name": name, "state": "absent", "zfs_dataset": dataset, "allowed_roots": [zfs_dataset],
        "unit_dir": str(tmp_path / "no-units"), "base_dir": mountpoint + "/bundles"})
    assert absent.rc == 0, absent
    assert absent.data["removed"] == ["dataset %s with its snapshots" % dataset]
    assert run(["zfs", "list", dataset], check=False).returncode != 0
    assert not os.path.exists(bundle)


def test_bridge_network(installed_collection, systemd, registry_image, bridge, tmp_path):
    """network mode bridge: a namespace lxcri-<name> made when the unit starts, eth0 the peer of a veth on the
    bridge, its address and route; the node reaches the app (busybox httpd), and stopping the unit removes the
    namespace and the veth."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel
    name = "tnet-" + uuid.uuid4().hex[:6]
    address = bridge.address(50)
    args = base_args(tmp_path, name, registry_image.refs["open"], runtime="cli",
                     entrypoint=["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/app"],
                     network={"mode": "bridge", "bridge": bridge.name, "address": address, "gateway": bridge.host})
    result = run_module(installed_collection, systemd, args)
    assert result.rc == 0, (result.data.get("msg"), result.data.get("journal"))
    inside = systemd.run(["ip", "-n", "lxcri-" + name, "-o", "addr", "show", "dev", "eth0"]).stdout
    assert address in inside, inside
    route = systemd.run(["ip", "-n", "lxcri-" + name, "route", "show", "default"]).stdout
    assert "via %s" % bridge.host in route, route
    master = subprocess.run(["ip", "-o", "link", "show", "master", bridge.name], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout
    assert "lxo" in master, master
    url = "http://%s:8080/hello.txt" % address.split("/")[0]
    for attempt in range(50):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
            break
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    assert body == b"hello from layer 2\n"
    # the container's process is in that namespace
    pid = container_process(systemd, name)["pid"]
    assert systemd.run(["readlink", "/proc/%d/ns/net" % pid]).stdout == \
        systemd.run(["ip", "netns", "exec", "lxcri-" + name, "readlink", "/proc/self/ns/net"]).stdout
    stopped = run_module(installed_collection, systemd, dict(args, state="stopped"))
    assert stopped.rc == 0, stopped
    assert systemd.run(["ip", "netns", "list"]).stdout.count("lxcri-" + name) == 0
    assert "lxo" not in subprocess.run(["ip", "-o", "link", "show", "master", bridge.name], stdout=subprocess.PIPE, check=True,
                                       universal_newlines=True).stdout
    run_module(installed_collection, systemd, {"name": name, "state": "absent", "unit_dir": "/run/systemd/system",
                                               "base_dir": str(tmp_path / "oci")})


def test_oci_app_deploys_the_demo_app_with_the_oci_runtime(installed_collection, systemd, bed, bridge, tmp_path):
    """oci_app with oci_app_runtime auto and a rule that routes web* to oci: the demo app (the stateful webapp of
    make demo) as an oci_container on a bridge, health-checked in the container (the module's exec prefix) and
    over TCP; an upgrade keeps the previous version, a rollback returns to it, a broken version is rolled back
    automatically and fails the play; the /data volume outlives every version; absent keeps it unless purged."""
    import re  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel
    from lxcri_testbed.app_images import page, push  # pylint: disable=import-outside-toplevel
    images = push(bed["registry"]["host"], "%s/webapp-oci-%s" % (TEST_REPO_NS, uuid.uuid4().hex[:6]), stateful=True)
    name = "webapp-" + uuid.uuid4().hex[:6]
    address = bridge.address(70)
    metrics = tmp_path / "metrics"
    metrics.mkdir()

    def deploy(image=None, **extra):
        extra_vars = {"oci_app_name": name, "oci_app_runtime_rules": [{"pattern": "db-*", "runtime": "lxc"},
                                                                      {"pattern": "web?pp-*", "runtime": "oci"}],
                      "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
                      "oci_app_health_port": 8080, "oci_app_health_timeout": 20,
                      # oci_app_memory 512 and oci_app_cores 1 (the defaults) become the unit's limits
                      "oci_app_shutdown_timeout": 2,  # httpd as PID 1 ignores SIGTERM: killed after this
                      "oci_app_health_interval": 1,
                      "oci_app_registry_tls_verify": False, "oci_app_metrics_dir": str(metrics),
                      "oci_app_oci_options": {
                          "network": {"mode": "bridge", "bridge": bridge.name, "address": address,
                                      "gateway": bridge.host},
                          "unit_dir": "/run/systemd/system", "base_dir": str(tmp_path / "oci"),
                          "volumes_dir": str(tmp_path / "volumes")},
                      "oci_app_template_cache_dir": str(tmp_path / "cache")}
        if image:
            extra_vars["oci_app_image"] = image
        extra_vars.update(extra)
        return installed_collection.playbook("lxcri.proxmox.deploy_app", prefix=systemd.prefix, extra_vars=extra_vars)

    def shown(run):
        return [t["result"]["msg"] for t in run.results["tasks"] if t["task"] == "Show the result"][0]

    def serving(version, count):
        with urllib.request.urlopen("http://%s:8080/" % address.split("/")[0], timeout=10) as response:
            assert response.read().decode() == page(version)
        proc = container_process(systemd, name)
        assert proc["argv"] == ["httpd", "-f", "-v", "-p", "8080", "-h", "."]
        assert proc["uid"] == 1000 and proc["cwd"] == "/srv/www"
        assert "APP_VERSION=%s" % version in proc["env"] and "PORT=8080" in proc["env"]
        with open(str(tmp_path / "volumes" / name / "_data" / "count")) as handle:
            assert handle.read().strip() == str(count)  # the image's VOLUME /data, counted at every start

    unit = "lxcri-oci-%s.service" % name
    first = deploy(images["1"])
    assert first.rc == 0, [(t["task"], t["result"].get("msg"), t["result"].get("stderr"), t["result"].get("cmd"))
                           for t in first.results["tasks"] if t["status"] != "ok"]
    assert re.match(r"%s: created in %s \(sha256:[0-9a-f]{64}\)$" % (name, re.escape(unit)), shown(first))
    serving("1", 1)
    assert unit_show(systemd, name, "ActiveState")["ActiveState"] == "active"
    with open(str(tmp_path / "oci" / name / "config.json")) as handle:
        resources = json.load(handle)["linux"]["resources"]
    assert resources["memory"] == {"limit": 512 << 20} and resources["cpu"]["quota"] == 100000, resources
    prom = (metrics / ("lxcri_app_%s.prom" % name)).read_text()
    assert 'lxcri_app_health_ok{app="%s"} 1' % name in prom and 'vmid=""' in prom, prom

    again = deploy(images["1"])
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert shown(again) == shown(first).replace("created", "unchanged")

    upgrade = deploy(images["2"])
    assert upgrade.rc == 0, upgrade
    assert "upgraded in %s" % unit in shown(upgrade)
    serving("2", 2)
    assert os.path.isdir(str(tmp_path / "oci" / name / ".previous" / "rootfs"))

    back = deploy(oci_app_state="rollback")
    assert back.rc == 0, back
    assert "rolled back in %s to sha256:" % unit in shown(back)
    serving("1", 3)

    broken = deploy(images["3-broken"], oci_app_health_timeout=4)
    assert broken.rc != 0
    assert "Rolled back: %s" % images["3-broken"] in broken.stdout, broken.stdout[-3000:]
    serving("1", 5)  # the broken version counted its start too
    prom = (metrics / ("lxcri_app_%s.prom" % name)).read_text()
    assert 'lxcri_app_failed_upgrades_total{app="%s"} 1' % name in prom, prom

    gone = deploy(oci_app_state="absent")
    assert gone.rc == 0, gone
    assert shown(gone) == "%s: removed: /run/systemd/system/%s, %s" % (name, unit, tmp_path / "oci" / name)
    assert not os.path.exists(str(tmp_path / "oci" / name)) and (tmp_path / "volumes" / name / "_data").is_dir()
    assert not (metrics / ("lxcri_app_%s.prom" % name)).exists()
    purged = deploy(oci_app_state="absent", oci_app_purge_data=True)
    assert purged.rc == 0 and not (tmp_path / "volumes" / name).exists(), purged
