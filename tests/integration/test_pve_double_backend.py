"""The PVE API double's backend semantics with real LXC and ZFS, in 9.1 and 8 mode: deletion rules (protection,
locks, force, unreferenced disks, pools, HA and purge), cgroup limits and networking of started containers,
refusals that change nothing, a zfs cycle that leaves nothing behind, and a tour through every route."""

import os
import subprocess
import time

import pytest
import requests

from lxcri_testbed.api import Api
from pve_double.backend import cgroup_limits
from pve_double.server import Double

pytestmark = pytest.mark.integration
NODE = "pve1"


@pytest.fixture(params=["9.1", "8"])
def zdouble(request, tmp_path, zfs_dataset, bed):
    instance = Double(str(tmp_path / "pve"), mode=request.param, zfs_root=zfs_dataset + "/pve").start()
    instance.add_busybox_template("t.tar.zst", tmp_path)
    yield instance
    instance.kill_containers()
    instance.stop()


def datasets(double):
    pool = double.backend.storages["local-zfs"]["pool"]
    return subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split()


def test_delete_honours_protection_force_and_unreferenced_disks(zdouble):
    double, api = zdouble, Api(zdouble)
    pool = double.backend.storages["local-zfs"]["pool"]
    assert api.task("POST", "/nodes/pve1/lxc", vmid=180, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", protection=1) == "OK"
    status, body = api.call("DELETE", "/nodes/pve1/lxc/180", force=1)
    assert status == 500 and body["message"] == "can't remove CT 180 - protection mode enabled"
    assert api.call("PUT", "/nodes/pve1/lxc/180/config", delete="protection")[0] == 200
    assert api.task("POST", "/nodes/pve1/lxc/180/status/start") == "OK"
    status, body = api.call("DELETE", "/nodes/pve1/lxc/180")
    assert status == 500 and body["message"] == "unable to destroy CT 180 - container is running"
    assert double.backend.lxc_state(double.backend.containers[180])[0] == "running"
    # a disk of this vmid that the config does not reference stays, unless asked
    subprocess.run(["zfs", "create", pool + "/subvol-180-disk-1"], check=True)
    images = os.path.join(double.backend.storages["local"]["path"], "images", "180")
    os.makedirs(os.path.join(images, "subvol-180-disk-2.subvol"))  # and one on the dir storage
    pid = double.backend.lxc_state(double.backend.containers[180])[1]
    upid = api.call("DELETE", "/nodes/pve1/lxc/180", force=1)[1]["data"]
    assert api.wait(upid) == "WARNINGS: 1"  # PVE warns that it stopped the container first
    assert "WARN: forced to stop CT 180 before destroying!" in api.log(upid)
    assert not os.path.exists("/proc/%d" % pid)  # really stopped (lxc-stop -k), not just forgotten
    assert 180 not in double.backend.containers and not os.path.exists(os.path.join(double.backend.lxc_path, "180"))
    assert pool + "/subvol-180-disk-0" not in datasets(double) and pool + "/subvol-180-disk-1" in datasets(double)
    assert os.listdir(images) == ["subvol-180-disk-2.subvol"]
    assert api.task("POST", "/nodes/pve1/lxc", vmid=180, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1") == "OK"
    assert api.task("DELETE", "/nodes/pve1/lxc/180", **{"destroy-unreferenced-disks": 1}) == "OK"
    assert not [d for d in datasets(double) if "-180-disk-" in d] and not os.path.exists(images)


def test_delete_refuses_a_locked_container_and_purge_covers_ha(zdouble):
    """Pool membership goes with every destroy (PVE's remove_vm_access); an HA resource needs purge."""
    double, api = zdouble, Api(zdouble)
    status, body = api.call("POST", "/nodes/pve1/lxc", vmid=183, ostemplate="local:vztmpl/t.tar.zst", pool="ci")
    assert status == 403 and body["message"] == "Permission check failed (pool 'ci' does not exist)"
    assert 183 not in double.backend.containers
    double.backend.pools["ci"] = set()
    double.backend.tasks.delay = 1.0  # the create task holds the create lock for a second
    ha = {"ha-managed": 1} if double.schema.mode == "9.1" else {}  # a 9.x create parameter
    if not ha:
        status, body = api.call("POST", "/nodes/pve1/lxc", vmid=183, ostemplate="local:vztmpl/t.tar.zst",
                                **{"ha-managed": 1})
        assert status == 400 and list(body["errors"]) == ["ha-managed"]
    upid = api.call("POST", "/nodes/pve1/lxc", vmid=183, ostemplate="local:vztmpl/t.tar.zst", rootfs="local-zfs:1",
                    pool="ci", **ha)[1]["data"]
    status, body = api.call("DELETE", "/nodes/pve1/lxc/183", force=1, purge=1)
    assert status == 500 and body["message"] == "CT is locked (create)"  # pve-guest-common's check_lock text
    double.backend.tasks.delay = 0
    assert api.wait(upid) == "OK"
    if ha:
        assert "Add as HA resource" in api.log(upid)
    else:
        double.backend.ha_resources.add(183)  # as `ha-manager add ct:183` would
    resources = api.call("GET", "/cluster/resources", type="vm")[1]["data"]
    assert [(r["id"], r.get("pool")) for r in resources] == [("lxc/183", "ci")]
    assert api.call("GET", "/nodes/pve1/lxc/183/status/current")[1]["data"]["ha"]["managed"] == 1
    status, body = api.call("DELETE", "/nodes/pve1/lxc/183")
    assert status == 500 and body["message"] == \
        "unable to remove CT 183 - used in HA resources and purge parameter not set."
    assert api.task("POST", "/nodes/pve1/lxc", vmid=184, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", pool="ci") == "OK"
    assert double.backend.pools["ci"] == {183, 184}
    upid = api.call("DELETE", "/nodes/pve1/lxc/183", purge=1)[1]["data"]
    assert api.wait(upid) == "OK" and "NOTE: removed CT 183 from HA resource configuration." in api.log(upid)
    assert double.backend.ha_resources == set() and double.backend.pools["ci"] == {184}
    assert api.task("DELETE", "/nodes/pve1/lxc/184") == "OK"  # no purge: the pool membership goes all the same
    assert double.backend.pools["ci"] == set()
    # the datasets' own names only: the scratch root above them is t-<random hex>, which may hold "-18" too
    assert not [d for d in datasets(double) if d.rpartition("/")[2].startswith(("subvol-183-", "subvol-184-"))]


def cgroup_values(pid):
    """(memory limit, memory+swap limit or None, CPU quota per 100 ms, cpuset) of a process, from its cgroups."""
    groups = dict(line.strip().split(":", 2)[1:] for line in open("/proc/%s/cgroup" % pid))

    def read(path):
        return open(path).read().strip() if os.path.exists(path) else None
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # unified
        base = "/sys/fs/cgroup" + groups[""]
        swap = read(base + "/memory.swap.max")
        memory = int(read(base + "/memory.max"))
        return (memory, memory + int(swap) if swap and swap != "max" else None,
                int(read(base + "/cpu.max").split()[0]), read(base + "/cpuset.cpus"))
    memsw = read("/sys/fs/cgroup/memory%s/memory.memsw.limit_in_bytes" % groups["memory"])
    return (int(read("/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % groups["memory"])),
            int(memsw) if memsw else None, int(read("/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us" % groups["cpu"])),
            read("/sys/fs/cgroup/cpuset%s/cpuset.cpus" % groups["cpuset"]))


def test_memory_and_cores_are_cgroup_limits_of_the_running_container(zdouble):
    double, api = zdouble, Api(zdouble)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=181, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", memory=192, cores=1, cpulimit="0.5") == "OK"
    exitstatus = api.task("POST", "/nodes/pve1/lxc/181/status/start")
    warnings = []
    cgroup_limits({"memory": "192", "cores": "1", "cpulimit": "0.5"}, "/sys/fs/cgroup", warnings)
    assert exitstatus == ("WARNINGS: %d" % len(warnings) if warnings else "OK")
    memory, memsw, quota, cpus = cgroup_values(double.backend.lxc_state(double.backend.containers[181])[1])
    assert (memory, quota, cpus) == (192 << 20, 50000, "0")
    swap_enforced = not [w for w in warnings if "swap" in w]
    assert memsw == ((192 + 512) << 20 if swap_enforced else None)  # swap: PVE's default 512 MiB on top
    # a reboot generates the LXC config again: changed limits apply
    assert api.call("PUT", "/nodes/pve1/lxc/181/config", memory=160, swap=64, cpulimit=1)[0] == 200
    assert api.task("POST", "/nodes/pve1/lxc/181/status/reboot", timeout=5).startswith(("OK", "WARNINGS"))
    memory, memsw, quota, cpus = cgroup_values(double.backend.lxc_state(double.backend.containers[181])[1])
    assert (memory, quota) == (160 << 20, 100000) and memsw == ((160 + 64) << 20 if swap_enforced else None)
    assert api.task("POST", "/nodes/pve1/lxc/181/status/stop") == "OK"


def test_limits_for_each_cgroup_layout(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (v2 / "init.scope").mkdir()
    (v2 / "init.scope" / "memory.swap.max").write_text("max\n")
    warnings = []
    lines = cgroup_limits({"memory": "256", "swap": "0", "cores": "2", "cpulimit": "1.5"}, str(v2), warnings)
    assert lines == ["lxc.cgroup2.memory.max = %d" % (256 << 20), "lxc.cgroup2.memory.swap.max = 0",
                     "lxc.cgroup2.cpuset.cpus = 0-%d" % (min(2, os.cpu_count() or 1) - 1),
                     "lxc.cgroup2.cpu.max = 150000 100000"] and warnings == []
    (v2 / "cgroup.controllers").write_text("pids\n")
    warnings = []
    assert cgroup_limits({"memory": "256", "cores": "1"}, str(v2), warnings) == []
    assert warnings == ["no memory controller: memory 256 MiB not enforced",
                        "no cpuset controller: cores 1 not enforced"]
    (v2 / "cgroup.controllers").write_text("memory\n")
    os.unlink(str(v2 / "init.scope" / "memory.swap.max"))
    warnings = []
    assert cgroup_limits({"memory": "256"}, str(v2), warnings) == ["lxc.cgroup2.memory.max = %d" % (256 << 20)]
    assert warnings == ["no swap accounting: swap 512 MiB not enforced"]
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "cpu").mkdir()
    warnings = []
    lines = cgroup_limits({"memory": "256", "cores": "1", "cpulimit": "2"}, str(v1), warnings)
    assert lines == ["lxc.cgroup.memory.limit_in_bytes = %d" % (256 << 20), "lxc.cgroup.cpu.cfs_period_us = 100000",
                     "lxc.cgroup.cpu.cfs_quota_us = 200000"]
    assert warnings == ["no memsw accounting: swap 512 MiB not enforced", "no cpuset controller: cores 1 not enforced"]


def test_config_lines_keep_the_empty_network_unless_given_one():
    from lxcri_testbed.lxc import config_lines
    default = config_lines("c1", "/r", "/sbin/init")
    assert "lxc.net.0.type = empty" in default and "lxc.net.0.flags = up" in default
    veth = ["lxc.net.0.type = veth", "lxc.net.0.link = br9", "lxc.net.0.flags = up"]
    lines = config_lines("c1", "/r", "/sbin/init", net=veth)
    assert "lxc.net.0.type = empty" not in lines and lines[2:5] == veth
    assert [line for line in lines if line not in veth] == [line for line in default if "lxc.net." not in line]


def test_net0_on_an_existing_bridge_is_a_veth_else_a_warning(zdouble, bridge):
    """A veth on the bridge, named and addressed as Proxmox VE does: on 9.1 only a host-managed interface is up
    with its address (pve-container update_lxc_config); without host-managed, and always on 8, the container's
    own init would have to configure it, so a container without one has it down and without an address."""
    double, api = zdouble, Api(zdouble)
    nine = double.backend.mode.startswith("9")
    net0 = "name=eth0,bridge=%s,hwaddr=BC:24:11:AA:BB:01,ip=%s,gw=%s,type=veth" % (
        bridge.name, bridge.address(2), bridge.host)
    managed = dict(net0=net0 + ",host-managed=1") if nine else {}
    assert api.task("POST", "/nodes/pve1/lxc", vmid=182, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", net1="name=eth1,bridge=vmbr9,type=veth",
                    **(managed or dict(net0=net0))) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/182/status/start") == "WARNINGS: 1"  # vmbr9 is not on this host
    name = "182"
    attach = [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n", name, "--"]
    inside = subprocess.run(attach + ["/bin/busybox", "ip", "addr", "show", "eth0"], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True)
    assert "bc:24:11:aa:bb:01" in inside.stdout
    assert os.listdir("/sys/class/net/%s/brif" % bridge.name) == ["veth182i0"]  # the host end, named as PVE does
    ping = subprocess.run(attach + ["/bin/busybox", "ping", "-c", "1", "-W", "2", bridge.host],
                          stdout=subprocess.PIPE, universal_newlines=True, check=False)
    if nine:
        assert bridge.address(2) in inside.stdout and ",UP" in inside.stdout
        assert ping.returncode == 0, ping.stdout
    else:
        assert bridge.address(2) not in inside.stdout and ",UP" not in inside.stdout
        assert ping.returncode != 0
    assert api.task("POST", "/nodes/pve1/lxc/182/status/stop") == "OK"
    assert not os.listdir("/sys/class/net/%s/brif" % bridge.name)
    if nine:  # the same interface without host-managed: down, no address
        digest = api.call("GET", "/nodes/pve1/lxc/182/config")[1]["data"]["digest"]
        assert api.call("PUT", "/nodes/pve1/lxc/182/config", net0=net0, digest=digest)[0] == 200
        assert api.task("POST", "/nodes/pve1/lxc/182/status/start") == "WARNINGS: 1"
        inside = subprocess.run(attach + ["/bin/busybox", "ip", "addr", "show", "eth0"], stdout=subprocess.PIPE,
                                universal_newlines=True, check=True)
        assert bridge.address(2) not in inside.stdout and ",UP" not in inside.stdout
        assert api.task("POST", "/nodes/pve1/lxc/182/status/stop") == "OK"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open("/proc/%d/stat" % pid).read().split(") ")[1].startswith("Z")


def test_a_host_managed_dhcp_interface_gets_its_lease_from_the_hosts_dhclient(zdouble, bridge, tmp_path):
    """9.1 (pve-container vm_start, manage_dhclient): after the start the host runs dhclient in the container's
    network for a host-managed ip=dhcp interface; the lease shows in GET .../interfaces and LXC's dhclient-script
    writes the container's resolv.conf; the post-stop hook kills the client (kill_dhclients).  PVE 8 has no
    host-managed: the interface stays down and no client runs."""
    double, api = zdouble, Api(zdouble)
    nine = double.backend.mode.startswith("9")
    bridge.serve_dhcp(tmp_path)
    template = double.add_busybox_template("etc.tar.zst", tmp_path, files={"etc/resolv.conf": "nameserver 192.0.2.53\n"})
    net0 = "name=eth0,bridge=%s,hwaddr=BC:24:11:AA:BB:02,ip=dhcp,type=veth" % bridge.name
    assert api.task("POST", "/nodes/pve1/lxc", vmid=183, ostemplate=template, rootfs="local-zfs:1",
                    net0=net0 + (",host-managed=1" if nine else "")) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/183/status/start") == "OK"
    interfaces = api.call("GET", "/nodes/pve1/lxc/183/interfaces")[1]["data"]
    eth0 = [i for i in interfaces if i["name"] == "eth0"][0]
    assert eth0["hardware-address"] == "bc:24:11:aa:bb:02"
    v4 = [a["ip-address"] for a in eth0["ip-addresses"] if a["ip-address-type"] == "inet"]
    pidfile = os.path.join(double.backend.lxc_path, "183", "hook", "dhclient4-eth0.pid")
    if not nine:
        assert v4 == [] and not os.path.exists(pidfile)
        assert api.task("POST", "/nodes/pve1/lxc/183/status/stop") == "OK"
        return
    assert len(v4) == 1 and v4[0].startswith(bridge.net + ".") and 100 <= int(v4[0].rsplit(".", 1)[1]) <= 199, v4
    assert eth0["inet"] == v4[0] + "/24"
    rootfs = double.backend.volume_path(double.backend.containers[183].config["rootfs"].split(",")[0])
    with open(os.path.join(rootfs, "etc", "resolv.conf")) as handle:
        assert handle.read() == "nameserver %s\n" % bridge.host
    pid = int(open(pidfile).read())
    assert pid_alive(pid)
    attach = [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n", "183", "--"]
    ping = subprocess.run(attach + ["/bin/busybox", "ping", "-c", "1", "-W", "2", bridge.host],
                          stdout=subprocess.PIPE, universal_newlines=True, check=False)
    assert ping.returncode == 0, ping.stdout
    assert api.task("POST", "/nodes/pve1/lxc/183/status/stop") == "OK"
    for dummy in range(50):
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    assert not pid_alive(pid) and not os.path.exists(pidfile)
    assert not os.listdir("/sys/class/net/%s/brif" % bridge.name)  # no client holds the network any more
    assert api.call("GET", "/nodes/pve1/lxc/183/interfaces")[1]["data"] is None


def test_refusals_leave_the_container_as_it_was(zdouble):
    """Template/delete of a running CT, template with snapshots, rollback past a newer snapshot and a linked
    clone of a non-template are refused at once, with nothing changed."""
    double, api = zdouble, Api(zdouble)
    pool = double.backend.storages["local-zfs"]["pool"]
    assert api.task("POST", "/nodes/pve1/lxc", vmid=190, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/start") == "OK"
    status, body = api.call("POST", "/nodes/pve1/lxc/190/template")
    assert status == 500 and body["message"] == "you can't convert a CT to template if the CT is running"
    status, body = api.call("DELETE", "/nodes/pve1/lxc/190")
    assert status == 500 and body["message"] == "unable to destroy CT 190 - container is running"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/stop") == "OK"
    for name in ("s1", "s2"):
        assert api.task("POST", "/nodes/pve1/lxc/190/snapshot", snapname=name) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/snapshot/s1/rollback") == \
        "can't rollback, 's1' is not most recent snapshot on 'subvol-190-disk-0'"
    status, body = api.call("POST", "/nodes/pve1/lxc/190/template")
    assert status == 500 and body["message"] == "unable to create template, because CT contains snapshots"
    status, body = api.call("POST", "/nodes/pve1/lxc/190/clone", newid=191, full=0)
    assert status == 500 and "parameter 'full' must be set" in body["message"]
    config = api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"]
    assert "template" not in config and config["rootfs"] == "local-zfs:subvol-190-disk-0,size=1G"
    assert sorted(double.backend.containers) == [190]
    snapshots = subprocess.run(["zfs", "list", "-H", "-t", "all", "-o", "name", "-r", pool], stdout=subprocess.PIPE,
                               universal_newlines=True, check=True).stdout.split()
    assert snapshots == [pool, pool + "/subvol-190-disk-0", pool + "/subvol-190-disk-0@s1",
                         pool + "/subvol-190-disk-0@s2"]
    assert [s["name"] for s in api.call("GET", "/nodes/pve1/lxc/190/snapshot")[1]["data"]] == ["s1", "s2", "current"]


def test_zfs_cycle_create_start_shutdown_delete_leaves_nothing(zdouble):
    double, api = zdouble, Api(zdouble)
    pool = double.backend.storages["local-zfs"]["pool"]
    assert api.task("POST", "/nodes/pve1/lxc", vmid=195, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", hostname="cycle") == "OK"
    rootfs = double.backend.volume_path("local-zfs:subvol-195-disk-0")
    assert os.path.isfile(os.path.join(rootfs, "sbin", "init")) and pool + "/subvol-195-disk-0" in datasets(double)
    assert api.task("POST", "/nodes/pve1/lxc/195/status/start") == "OK"
    state, pid = double.backend.lxc_state(double.backend.containers[195])
    assert state == "running"
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        assert handle.read().split(b"\0")[:2] == [b"/bin/sh", b"/sbin/init"]
    children = subprocess.run(["pgrep", "-P", str(pid), "-a"], stdout=subprocess.PIPE, universal_newlines=True,
                              check=False).stdout
    assert "sleep 300" in children  # the init's payload runs
    assert api.task("POST", "/nodes/pve1/lxc/195/status/shutdown", timeout=20) == "OK"  # init honours SIGPWR
    assert not os.path.exists("/proc/%d" % pid)
    assert api.task("DELETE", "/nodes/pve1/lxc/195") == "OK"
    assert datasets(double) == [pool]
    assert os.listdir(double.backend.lxc_path) == []
    assert os.listdir(os.path.join(double.backend.storages["local"]["path"], "images")) == []
    assert api.call("GET", "/nodes/pve1/lxc")[1]["data"] == []
    assert subprocess.run(["lxc-ls", "-P", double.backend.lxc_path], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split() == []


def test_every_endpoint_answers_in_both_modes(zdouble, tmp_path, bed):
    """Each endpoint of the committed schema subset, once, through HTTP; 8.x lacks oci-registry-pull."""
    double, api = zdouble, Api(zdouble)
    nine = double.backend.mode.startswith("9")
    for path in ("/version", "/nodes", "/nodes/pve1/status", "/cluster/nextid", "/cluster/resources",
                 "/nodes/pve1/lxc", "/nodes/pve1/storage", "/nodes/pve1/storage/local/content",
                 "/nodes/pve1/version", "/nodes/pve1/apt/versions"):
        status, body = api.call("GET", path)
        assert status == 200, (path, body)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=190, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", memory=128, hostname="every") == "OK"
    for path in ("config", "pending", "status/current", "snapshot"):
        status, body = api.call("GET", "/nodes/pve1/lxc/190/" + path)
        assert status == 200, (path, body)
    digest = api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"]["digest"]
    assert api.call("PUT", "/nodes/pve1/lxc/190/config", memory=160, digest=digest)[0] == 200
    assert api.task("PUT", "/nodes/pve1/lxc/190/resize", disk="rootfs", size="+1G") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/start") == "OK"
    status, body = api.call("GET", "/nodes/pve1/lxc/190/interfaces")  # no netN: the loopback only
    assert status == 200 and [(i["name"], i["ip-addresses"][0]["ip-address"]) for i in body["data"]] == \
        [("lo", "127.0.0.1")], body
    assert api.task("POST", "/nodes/pve1/lxc/190/status/reboot") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/shutdown", timeout=5, forceStop=1) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/start") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/status/stop") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/snapshot", snapname="s1", description="first") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/snapshot/s1/rollback") == "OK"
    assert api.task("DELETE", "/nodes/pve1/lxc/190/snapshot/s1") == "OK"
    status, body = api.call("POST", "/nodes/pve1/lxc/190/template")
    # pve-container's template answers null while its vztemplate worker runs: the config tells the end
    assert status == 200 and body["data"] is None, body
    assert "template" not in api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"]
    for dummy in range(100):
        if api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"].get("template") == 1:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("CT 190 never became a template")
    assert api.task("POST", "/nodes/pve1/lxc/190/clone", newid=191, hostname="linked") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/190/clone", newid=192, full=1, storage="local-zfs") == "OK"
    status, body = api.call("POST", "/nodes/pve1/lxc/191/status/start")
    upid = body["data"]
    for path in ("status", "log"):
        status, body = api.call("GET", "/nodes/pve1/tasks/%s/%s" % (upid, path))
        assert status == 200, body
    assert api.task("POST", "/nodes/pve1/lxc/191/status/stop") == "OK"
    assert api.call("PUT", "/nodes/pve1/lxc/192/config", mp0="local-zfs:1,mp=/data")[0] == 200
    assert api.task("POST", "/nodes/pve1/lxc/192/move_volume", volume="mp0",
                    **{"target-vmid": 191, "target-volume": "mp0"}) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/191/snapshot", snapname="every") == "OK"
    status, body = api.call("GET", "/nodes/pve1/lxc/191/snapshot/every/config")
    assert status == 200 and body["data"]["mp0"].startswith("local-zfs:subvol-191-disk-"), body
    upload = tmp_path / "extra.tar"
    subprocess.run(["tar", "-cf", str(upload), "-T", "/dev/null"], check=True)
    with open(str(upload), "rb") as handle:
        resp = api.session.post(api.url + "/nodes/pve1/storage/local/upload", verify=False,
                                data={"content": "vztmpl"}, files={"filename": ("extra.tar", handle)})
    assert resp.status_code == 200, resp.text
    pull = api.call("POST", "/nodes/pve1/storage/local/oci-registry-pull",
                    reference="%s/nothing/here:1" % bed["registry"]["host"])
    if nine:
        assert pull[0] == 200  # the pull itself fails: no such image (the endpoint exists)
    else:
        assert pull[0] == 501 and "not implemented" in pull[1]["message"]
    for dummy in range(100):
        if "local:vztmpl/extra.tar" in [c["volid"] for c in api.call("GET", "/nodes/pve1/storage/local/content")[1]
                                        ["data"]]:
            break
        time.sleep(0.1)
    assert api.task("DELETE", "/nodes/pve1/storage/local/content/local:vztmpl%2Fextra.tar") == "OK"
    for vmid in (192, 191, 190):
        assert api.task("DELETE", "/nodes/pve1/lxc/%d" % vmid) == "OK"
    for path in ("/cluster/status", "/cluster/ha/resources"):
        assert api.call("GET", path)[0] == 200
    # a one-node cluster has no other node to migrate to (test_cluster.py migrates on three nodes)
    status, body = api.call("POST", "/nodes/pve1/lxc/191/migrate", target="pve1")
    assert status == 400 and body["errors"] == {"target": "target is local node."}, body
    pull_route = ("POST", "/nodes/{node}/storage/{storage}/oci-registry-pull")
    migrate_route = ("POST", "/nodes/{node}/lxc/{vmid}/migrate")
    assert double.implemented() - double.served == ({migrate_route} if nine else {pull_route, migrate_route}), \
        sorted(double.implemented() - double.served)
    assert double.response_errors == []
    assert not [d for d in datasets(double) if "-19" in d.rpartition("/")[2]]


def test_8_answers_9_1_only_keys_and_routes_as_an_8_node(zdouble):
    """8.x has no entrypoint/env/ha-managed create keys (400 naming each) and no oci-registry-pull (the API
    server's 501 for an unknown path); 9.1 takes the same create."""
    double, api = zdouble, Api(zdouble)
    keys = {"entrypoint": "/bin/sleep 60", "env": "A=1\0B=two words", "ha-managed": 0}
    status, body = api.call("POST", "/nodes/pve1/lxc", vmid=197, ostemplate="local:vztmpl/t.tar.zst", **keys)
    status_pull, body_pull = api.call("POST", "/nodes/pve1/storage/local/oci-registry-pull",
                                      reference="127.0.0.1:1/none:1")
    if double.schema.mode == "8":
        assert status == 400 and set(body["errors"]) == set(keys)
        assert 197 not in double.backend.containers
        assert status_pull == 501 and body_pull["message"] == \
            "Method 'POST /nodes/pve1/storage/local/oci-registry-pull' not implemented"
    else:
        assert status == 200 and api.wait(body["data"]) == "OK"
        config = api.call("GET", "/nodes/pve1/lxc/197/config")[1]["data"]
        assert (config["entrypoint"], config["env"]) == (keys["entrypoint"], keys["env"])
        assert status_pull == 200 and api.wait(body_pull["data"]).startswith("failed to pull '127.0.0.1:1/none:1'")
        assert api.task("DELETE", "/nodes/pve1/lxc/197") == "OK"


def _monitor_exe(init_pid):
    """The binary of the LXC monitor that started the container (the parent of its init)."""
    with open("/proc/%d/stat" % init_pid) as handle:
        ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
    return os.readlink("/proc/%d/exe" % ppid)


def test_each_mode_runs_the_lxc_its_release_ships(zdouble):
    """9.1: lxc-pve 6.0.5 (the test bed's build): quoted lxc.init.cmd words, the config's env as
    lxc.environment.runtime lines after TERM=linux (pve-container PVE/LXC.pm update_lxc_config).
    8 (as 8.0/8.1): Debian's LXC 5.0.2.  /version and /nodes/{node}/apt/versions say the same."""
    from lxcri_testbed.lxc import read_init
    double, api = zdouble, Api(zdouble)
    nine = double.backend.mode.startswith("9")
    packages = dict((p["Package"], p["Version"]) for p in api.call("GET", "/nodes/pve1/apt/versions")[1]["data"])
    version = api.call("GET", "/nodes/pve1/version")[1]["data"]
    assert version == api.call("GET", "/version")[1]["data"]
    assert (packages["lxc-pve"], version["release"]) == (("6.0.5-3", "9.1") if nine else ("5.0.2-4", "8.1"))
    keys = {"entrypoint": '/bin/sh -c "sleep 300; exit 0" "two words"', "env": "A=one two\0TERM=xterm"} if nine else {}
    assert api.task("POST", "/nodes/pve1/lxc", vmid=183, ostemplate="local:vztmpl/t.tar.zst", rootfs="local-zfs:1",
                    **keys) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/183/status/start") == "OK"
    state, pid = double.backend.lxc_state(double.backend.containers[183])
    assert state == "running"
    init = read_init(pid)
    if nine:
        assert _monitor_exe(pid) == double.backend.lxc_tools.tool("lxc-start")
        assert double.backend.lxc_tools.prefix and double.backend.lxc_tools.version == "6.0.5"
        assert init.argv == ["/bin/sh", "-c", "sleep 300; exit 0", "two words"]
        assert (init.env["A"], init.env["TERM"]) == ("one two", "xterm")
        with open(os.path.join(double.backend.lxc_path, "183", "config")) as handle:
            lines = handle.read().splitlines()
        env_lines = [line for line in lines if line.startswith("lxc.environment")]
        assert env_lines == ["lxc.environment = TERM=linux", "lxc.environment.runtime = A=one two",
                             "lxc.environment.runtime = TERM=xterm"]
    else:
        assert _monitor_exe(pid) == "/usr/bin/lxc-start"
        assert init.env["TERM"] == "linux"
    assert api.task("POST", "/nodes/pve1/lxc/183/status/stop") == "OK"


def test_an_8_node_with_lxc_6_is_an_8_2_or_later(tmp_path):
    """The per-node LXC setting: PVE 8.2+ shipped lxc-pve 6.0.0; 9.1 ships only 6.0.5."""
    from pve_double.backend import Backend
    backend = Backend(str(tmp_path / "eight"), mode="8", lxc="6.0")
    assert backend.version({})["version"] == "8.4.1"
    assert backend.lxc_tools.version == "6.0.5"
    assert [p["Version"] for p in backend.apt_versions({"node": "pve1"}) if p["Package"] == "lxc-pve"] == ["6.0.0-1"]
    with pytest.raises(ValueError, match="does not run LXC 5.0"):
        Backend(str(tmp_path / "nine"), mode="9.1", lxc="5.0")


def test_a_running_containers_changes_wait_in_pending_until_its_next_start(zdouble):
    """pve-container update_pct_config + vmconfig_hotplug_pending: on a running CT the fastplug keys and the
    cgroup limits change at once, others wait in [pve:pending]; GET config merges them unless current=1;
    /pending lists value, pending and delete; the next start (a reboot too) applies them."""
    double, api = zdouble, Api(zdouble)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=184, ostemplate="local:vztmpl/t.tar.zst", rootfs="local-zfs:1",
                    nameserver="10.0.0.53", memory=256) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/184/status/start") == "OK"
    assert api.call("PUT", "/nodes/pve1/lxc/184/config", nameserver="10.0.0.54", memory=300, description="now",
                    searchdomain="example.org")[0] == 200
    merged = api.call("GET", "/nodes/pve1/lxc/184/config")[1]["data"]
    current = api.call("GET", "/nodes/pve1/lxc/184/config", current=1)[1]["data"]
    assert (merged["nameserver"], merged["searchdomain"], merged["memory"]) == ("10.0.0.54", "example.org", 300)
    assert current["nameserver"] == "10.0.0.53" and "searchdomain" not in current
    assert (current["memory"], current["description"]) == (300, "now")  # hotplugged, fastplugged
    pending = dict((item["key"], item) for item in api.call("GET", "/nodes/pve1/lxc/184/pending")[1]["data"])
    assert pending["nameserver"] == {"key": "nameserver", "value": "10.0.0.53", "pending": "10.0.0.54"}
    assert pending["searchdomain"] == {"key": "searchdomain", "pending": "example.org"}
    assert "pending" not in pending["memory"] and "digest" in pending
    assert api.call("PUT", "/nodes/pve1/lxc/184/config", delete="nameserver")[0] == 200
    pending = dict((item["key"], item) for item in api.call("GET", "/nodes/pve1/lxc/184/pending")[1]["data"])
    assert pending["nameserver"] == {"key": "nameserver", "value": "10.0.0.53", "delete": 1}
    assert "nameserver" not in api.call("GET", "/nodes/pve1/lxc/184/config")[1]["data"]
    assert api.task("POST", "/nodes/pve1/lxc/184/status/reboot") == "OK"
    current = api.call("GET", "/nodes/pve1/lxc/184/config", current=1)[1]["data"]
    assert "nameserver" not in current and current["searchdomain"] == "example.org"
    assert not [item for item in api.call("GET", "/nodes/pve1/lxc/184/pending")[1]["data"]
                if "pending" in item or "delete" in item]
    assert api.task("POST", "/nodes/pve1/lxc/184/status/stop") == "OK"


def test_an_unprivileged_container_is_idmapped_as_proxmox_makes_it(zdouble):
    """unprivileged: 1 (pve-container parse_id_maps' default map u/g 0 100000 65536): the template is restored
    inside the user namespace (owners shifted), and LXC runs the container with lxc.idmap, so its root is uid
    100000 on the node.  A privileged one restores and runs with the ids as they are."""
    from lxcri_testbed.lxc import read_init
    double, api = zdouble, Api(zdouble)
    for vmid, unprivileged in ((185, 1), (186, 0)):
        assert api.task("POST", "/nodes/pve1/lxc", vmid=vmid, ostemplate="local:vztmpl/t.tar.zst",
                        rootfs="local-zfs:1", unprivileged=unprivileged) == "OK"
        rootfs = double.backend.volume_path("local-zfs:subvol-%d-disk-0" % vmid)
        shift = 100000 if unprivileged else 0
        assert os.stat(os.path.join(rootfs, "bin")).st_uid == shift
        assert api.task("POST", "/nodes/pve1/lxc/%d/status/start" % vmid) == "OK"
        state, pid = double.backend.lxc_state(double.backend.containers[vmid])
        init = read_init(pid)
        assert state == "running" and (init.uid, init.host_uid) == (0, shift), init
        with open(os.path.join(double.backend.lxc_path, str(vmid), "config")) as handle:
            idmap = [line for line in handle.read().splitlines() if line.startswith("lxc.idmap")]
        assert idmap == (["lxc.idmap = u 0 100000 65536", "lxc.idmap = g 0 100000 65536"] if unprivileged else [])
        assert api.task("POST", "/nodes/pve1/lxc/%d/status/stop" % vmid) == "OK"


def test_root_editing_the_conf_file_changes_the_digest(zdouble):
    """The digest is the SHA-1 of the conf file (PVE::LXC::Config parse_pct_config), so a raw lxc.* line root
    writes on the node makes a PUT with the digest read before it fail, as on a real node; the line stays, shows
    in GET config's ``lxc``, and a PUT with the new digest passes."""
    double, api = zdouble, Api(zdouble)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=190, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1") == "OK"
    stale = api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"]["digest"]
    path = os.path.join(double.backend.conf_dir, "190.conf")
    with open(path, "a") as handle:
        handle.write("lxc.init.cwd: /srv\n")
    config = api.call("GET", "/nodes/pve1/lxc/190/config")[1]["data"]
    assert config["digest"] != stale and ["lxc.init.cwd", "/srv"] in config["lxc"], config
    status, body = api.call("PUT", "/nodes/pve1/lxc/190/config", memory=160, digest=stale)
    assert status == 500 and "detected modified configuration" in body["message"], body
    assert api.call("PUT", "/nodes/pve1/lxc/190/config", memory=160, digest=config["digest"])[0] == 200
    with open(path) as handle:
        assert "lxc.init.cwd: /srv\n" in handle.read() and double.backend.containers[190].config["memory"] == "160"


def test_a_running_containers_new_address_is_applied_live_and_dhcp_started_and_released(zdouble, bridge, tmp_path):
    """pve-container update_net/update_ipconfig on a running container: a static address changes in its network
    at once (the new one added, the gateway replaced, the old one deleted); on 9.1 a host-managed interface
    turned to DHCP gets the host's client started, and turned back to a static address, released (dhclient -r),
    its pid file gone."""
    double, api = zdouble, Api(zdouble)
    nine = double.backend.mode.startswith("9")
    double.backend.vmid_range = (600, 699)
    # a vmid and MAC of each mode's own: the two modes' runs may share the host (xdist), and veth<vmid>i0 with it
    vmid = 606 if nine else 607
    bridge.serve_dhcp(tmp_path)
    template = double.add_busybox_template("live.tar.zst", tmp_path)
    base = "name=eth0,bridge=%s,hwaddr=BC:24:11:AA:BB:%02d,type=veth" % (bridge.name, vmid % 100) + (",host-managed=1" if nine else "")
    assert api.task("POST", "/nodes/pve1/lxc", vmid=vmid, ostemplate=template, rootfs="local-zfs:1",
                    net0=base + ",ip=%s,gw=%s" % (bridge.address(60), bridge.host)) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/%d/" % vmid + "status/start") == "OK"

    def v4():
        eth0 = [i for i in api.call("GET", "/nodes/pve1/lxc/%d/" % vmid + "interfaces")[1]["data"] if i["name"] == "eth0"][0]
        return [a["ip-address"] for a in eth0["ip-addresses"] if a["ip-address-type"] == "inet"]
    pid = double.backend.lxc_state(double.backend.containers[vmid])[1]
    routes = ["nsenter", "-t", str(pid), "--net", "--", "ip", "-4", "route", "show", "default"]
    if nine:
        assert v4() == [bridge.address(60).split("/")[0]]
    digest = api.call("GET", "/nodes/pve1/lxc/%d/" % vmid + "config")[1]["data"]["digest"]
    assert api.call("PUT", "/nodes/pve1/lxc/%d/" % vmid + "config", digest=digest,
                    net0=base + ",ip=%s,gw=%s" % (bridge.address(61), bridge.host))[0] == 200
    assert v4() == [bridge.address(61).split("/")[0]]  # on 8 too: update_ipconfig is not host-managed only
    default = subprocess.run(routes, stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    if not nine:
        # the gateway did not change, so nothing sets it; 8 never set it at the start (no host-managed)
        assert default == ""
        return
    assert "via %s" % bridge.host in default
    pidfile = os.path.join(double.backend.lxc_path, str(vmid), "hook", "dhclient4-eth0.pid")
    assert api.call("PUT", "/nodes/pve1/lxc/%d/" % vmid + "config", net0=base + ",ip=dhcp")[0] == 200
    leased = v4()
    assert len(leased) == 1 and 100 <= int(leased[0].rsplit(".", 1)[1]) <= 199, leased
    client = int(open(pidfile).read())
    assert pid_alive(client)
    assert api.call("PUT", "/nodes/pve1/lxc/%d/" % vmid + "config", net0=base + ",ip=%s" % bridge.address(62))[0] == 200
    for dummy in range(50):
        if not pid_alive(client):
            break
        time.sleep(0.1)
    assert not pid_alive(client) and v4() == [bridge.address(62).split("/")[0]]
    assert api.task("POST", "/nodes/pve1/lxc/%d/" % vmid + "status/stop") == "OK"


# -- mount point volumes (issue 17): allocation and the template's content at create, mounting at start,
# snapshots of every volume, a deleted mount point kept as unusedN, and move_volume with target-vmid


@pytest.fixture
def vdouble(zdouble91, tmp_path):
    """The 9.1 double with a busybox template that has /data (owned by uid 1000, mode 0750, a file in it)."""
    double = zdouble91
    template = double.add_busybox_template(
        "vol.tar.zst", tmp_path, files={"data/seed.txt": "seed\n"},
        owners={"data": (1000, 1000, 0o750), "data/seed.txt": (1000, 1000, 0o640)})
    return double, Api(double), template


def zfs_names(pool, kind="filesystem"):
    return subprocess.run(["zfs", "list", "-H", "-t", kind, "-o", "name", "-r", pool], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split()


def attach(double, vmid, *argv, uid=0):
    ids = ["-u", str(uid), "-g", str(uid)] if uid else []
    return subprocess.run([double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n",
                           str(vmid)] + ids + ["--"] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)


def test_a_mount_point_is_allocated_filled_from_the_template_mounted_and_snapshotted(vdouble):
    double, api, template = vdouble
    pool = double.backend.storages["local-zfs"]["pool"]
    assert api.task("POST", "/nodes/pve1/lxc", vmid=170, ostemplate=template, rootfs="local-zfs:1",
                    mp0="local-zfs:1,mp=/data,backup=1", unprivileged=1) == "OK"
    config = api.call("GET", "/nodes/pve1/lxc/170/config")[1]["data"]
    assert config["mp0"] == "local-zfs:subvol-170-disk-1,mp=/data,backup=1,size=1G", config
    volume = double.backend.volume_path("local-zfs:subvol-170-disk-1")
    rootfs = double.backend.volume_path("local-zfs:subvol-170-disk-0")
    # create_disks then the extraction with the volume mounted: the template's /data is the volume's, shifted
    assert os.listdir(volume) == ["seed.txt"] and os.listdir(os.path.join(rootfs, "data")) == []
    info = os.stat(volume)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (101000, 101000, 0o750)
    assert os.stat(os.path.join(volume, "seed.txt")).st_uid == 101000
    assert subprocess.run(["zfs", "get", "-H", "-o", "value", "refquota", pool + "/subvol-170-disk-1"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip() == "1G"

    assert api.task("POST", "/nodes/pve1/lxc/170/status/start") == "OK"
    seen = attach(double, 170, "/bin/busybox", "stat", "-c", "%u %a", "/data/seed.txt")
    assert seen.stdout.split() == ["1000", "640"], seen.stdout
    # the image's user writes to its populated volume (the container's root could not on zfs-fuse, which checks
    # permissions itself, by host uid, where ZFS on Linux lets the kernel do it)
    wrote = attach(double, 170, "/bin/busybox", "sh", "-c", "echo one > /data/count", uid=1000)
    assert wrote.returncode == 0, wrote.stdout
    assert open(os.path.join(volume, "count")).read() == "one\n"
    assert api.task("POST", "/nodes/pve1/lxc/170/status/stop") == "OK"

    # a snapshot covers every volume, and a rollback brings the mount point's data back
    assert api.task("POST", "/nodes/pve1/lxc/170/snapshot", snapname="s1") == "OK"
    assert sorted(zfs_names(pool, "snapshot")) == [pool + "/subvol-170-disk-0@s1", pool + "/subvol-170-disk-1@s1"]
    with open(os.path.join(volume, "count"), "w") as handle:
        handle.write("two\n")
    assert api.task("POST", "/nodes/pve1/lxc/170/snapshot/s1/rollback") == "OK"
    assert open(os.path.join(volume, "count")).read() == "one\n"

    # a deleted mount point that a snapshot still references is not kept as unused (the snapshot keeps it)
    assert api.call("PUT", "/nodes/pve1/lxc/170/config", delete="mp0")[0] == 200
    config = api.call("GET", "/nodes/pve1/lxc/170/config")[1]["data"]
    assert "mp0" not in config and "unused0" not in config
    assert api.task("DELETE", "/nodes/pve1/lxc/170/snapshot/s1") == "OK"
    assert zfs_names(pool, "snapshot") == []
    # a new one, added to the stopped container, is allocated; deleted, it becomes unused0
    assert api.call("PUT", "/nodes/pve1/lxc/170/config", mp1="local-zfs:1,mp=/cache")[0] == 200
    config = api.call("GET", "/nodes/pve1/lxc/170/config")[1]["data"]
    assert config["mp1"] == "local-zfs:subvol-170-disk-2,mp=/cache,size=1G", config
    assert api.call("PUT", "/nodes/pve1/lxc/170/config", delete="mp1")[0] == 200
    assert api.call("GET", "/nodes/pve1/lxc/170/config")[1]["data"]["unused0"] == "local-zfs:subvol-170-disk-2"
    # the container's delete takes every volume of its config (rootfs and unused0; disk-1 is no longer in it)
    assert api.task("DELETE", "/nodes/pve1/lxc/170") == "OK"
    assert zfs_names(pool) == [pool, pool + "/subvol-170-disk-1"]


def test_move_volume_reassigns_a_volume_and_refuses_what_proxmox_refuses(vdouble):
    double, api, template = vdouble
    pool = double.backend.storages["local-zfs"]["pool"]
    for vmid in (171, 172):
        assert api.task("POST", "/nodes/pve1/lxc", vmid=vmid, ostemplate=template, rootfs="local-zfs:1",
                        mp0="local-zfs:1,mp=/data", unprivileged=1) == "OK"
    volume = double.backend.volume_path("local-zfs:subvol-171-disk-1")
    with open(os.path.join(volume, "mark"), "w") as handle:
        handle.write("from 171\n")

    def refused(status, message, **params):
        answer = api.call("POST", "/nodes/pve1/lxc/171/move_volume", **params)
        assert answer[0] == status and message in (answer[1].get("message") or "") + str(answer[1].get("errors")), \
            answer

    refused(500, "Target volume key 'mp0' is already in use for container '172'", volume="mp0", **{"target-vmid": 172})
    refused(500, "volume 'mp3' for container '171' does not exist", volume="mp3", **{"target-vmid": 172})
    refused(400, "either set 'storage' or 'target-vmid', but not both", volume="mp0", storage="local",
            **{"target-vmid": 172, "target-volume": "mp1"})
    refused(400, "both 'storage' and 'target-vmid' missing", volume="mp0")
    refused(500, "Container 171: detected modified configuration", volume="mp0", digest="0" * 40,
            **{"target-vmid": 172, "target-volume": "mp1"})
    assert api.task("POST", "/nodes/pve1/lxc/171/status/start") == "OK"
    refused(500, "Cannot move in-use volume while the source CT is running - detach or shutdown first",
            volume="mp0", **{"target-vmid": 172, "target-volume": "mp1"})
    assert api.task("POST", "/nodes/pve1/lxc/171/status/stop") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/171/snapshot", snapname="before") == "OK"
    refused(500, "Cannot move volume used by a snapshot to another container", volume="mp0",
            **{"target-vmid": 172, "target-volume": "mp1"})
    assert api.task("DELETE", "/nodes/pve1/lxc/171/snapshot/before") == "OK"

    # the reassignment: the dataset renamed to the target's next free disk name, both configs updated
    upid = api.call("POST", "/nodes/pve1/lxc/171/move_volume", volume="mp0",
                    **{"target-vmid": 172, "target-volume": "mp1"})[1]["data"]
    assert ":move_volume:171-mp0>172-mp1:" in upid
    assert api.wait(upid) == "OK"
    assert "mp0" not in api.call("GET", "/nodes/pve1/lxc/171/config")[1]["data"]
    target = api.call("GET", "/nodes/pve1/lxc/172/config")[1]["data"]
    assert target["mp1"] == "local-zfs:subvol-172-disk-2,mp=/data,size=1G", target
    assert pool + "/subvol-171-disk-1" not in zfs_names(pool)
    with open(os.path.join(double.backend.volume_path("local-zfs:subvol-172-disk-2"), "mark")) as handle:
        assert handle.read() == "from 171\n"


def test_a_bind_mount_is_root_at_pams_only_and_keeps_a_container_from_snapshots(vdouble, tmp_path):
    """PVE/LXC.pm check_ct_modify_config_perm: a bind mount point is root@pam's only, and an API token of root@pam
    is not root@pam; PVE/LXC/Config.pm has_feature: a container with a bind mount has no snapshot feature."""
    double, api, template = vdouble
    source = tmp_path / "shared"
    source.mkdir()
    double.add_token("root@pam!ci", "s3cret")
    token = requests.Session()
    token.headers["Authorization"] = "PVEAPIToken=root@pam!ci=s3cret"
    url = double.url + "/nodes/pve1/lxc"
    refused = token.post(url, verify=False, data={"vmid": 173, "ostemplate": template, "rootfs": "local-zfs:1",
                                                  "mp0": "%s,mp=/shared" % source})
    assert refused.status_code == 403, refused.text
    assert "mount point type bind is only allowed for root@pam" in refused.reason
    assert 173 not in double.backend.containers
    # root@pam may; the token may not add one later either, nor a device
    assert api.task("POST", "/nodes/pve1/lxc", vmid=173, ostemplate=template, rootfs="local-zfs:1") == "OK"
    for value, kind in (("%s,mp=/shared" % source, "bind"), ("/dev/null,mp=/null", "device")):
        put = token.put(url + "/173/config", verify=False, data={"mp0": value})
        assert put.status_code == 403 and "type %s is only allowed" % kind in put.reason, put.text
    assert "mp0" not in api.call("GET", "/nodes/pve1/lxc/173/config")[1]["data"]
    assert api.call("PUT", "/nodes/pve1/lxc/173/config", mp0="%s,mp=/shared" % source)[0] == 200
    # the snapshot is refused, and nothing of it is made
    status, body = api.call("POST", "/nodes/pve1/lxc/173/snapshot", snapname="s1")
    assert status == 500 and "snapshot feature is not available" in body["message"], body
    listed = api.call("GET", "/nodes/pve1/lxc/173/snapshot")[1]["data"]
    assert [snap["name"] for snap in listed] == ["current"], listed
    assert zfs_names(double.backend.storages["local-zfs"]["pool"], "snapshot") == []
    assert api.call("PUT", "/nodes/pve1/lxc/173/config", delete="mp0")[0] == 200
    assert api.task("POST", "/nodes/pve1/lxc/173/snapshot", snapname="s1") == "OK"
    assert api.task("DELETE", "/nodes/pve1/lxc/173/snapshot/s1") == "OK"
    assert api.task("DELETE", "/nodes/pve1/lxc/173") == "OK"


def test_create_fills_a_bind_mounted_directory_as_its_extraction_does(vdouble, tmp_path):
    """PVE/LXC.pm mount_all mounts bind mount points too before PVE/LXC/Create.pm restore_tar_archive extracts
    with --skip-old-files: the template's /data lands in the directory, files it has already are kept, and an
    unprivileged container's root must be able to write it (tar runs in the user namespace)."""
    double, api, template = vdouble
    fresh, used, closed = tmp_path / "fresh", tmp_path / "used", tmp_path / "closed"
    for path in (fresh, used, closed):
        path.mkdir()
    os.chown(str(fresh), 100000, 100000)
    os.chown(str(used), 100000, 100000)
    (used / "seed.txt").write_text("mine\n")
    assert api.task("POST", "/nodes/pve1/lxc", vmid=174, ostemplate=template, rootfs="local-zfs:1",
                    mp0="%s,mp=/data" % fresh, unprivileged=1) == "OK"
    info = os.stat(str(fresh))
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (101000, 101000, 0o750)
    assert (fresh / "seed.txt").read_text() == "seed\n" and os.stat(str(fresh / "seed.txt")).st_uid == 101000
    rootfs = double.backend.volume_path("local-zfs:subvol-174-disk-0")
    assert os.listdir(os.path.join(rootfs, "data")) == []
    assert api.task("POST", "/nodes/pve1/lxc/174/status/start") == "OK"
    seen = attach(double, 174, "/bin/busybox", "cat", "/data/seed.txt")
    assert seen.stdout == "seed\n", seen.stdout
    assert api.task("POST", "/nodes/pve1/lxc/174/status/stop") == "OK"
    # the container's delete leaves a bind-mounted directory as it is
    assert api.task("DELETE", "/nodes/pve1/lxc/174") == "OK"
    assert (fresh / "seed.txt").read_text() == "seed\n"

    assert api.task("POST", "/nodes/pve1/lxc", vmid=175, ostemplate=template, rootfs="local-zfs:1",
                    mp0="%s,mp=/data" % used, unprivileged=1) == "OK"
    assert (used / "seed.txt").read_text() == "mine\n"  # --skip-old-files
    assert api.task("DELETE", "/nodes/pve1/lxc/175") == "OK"

    # a directory the mapped root cannot write, and a missing one: the create fails, and leaves nothing
    for source, message in ((closed, "Cannot open: Permission denied"),
                            (tmp_path / "missing", "directory '%s' does not exist" % (tmp_path / "missing"))):
        status, body = api.call("POST", "/nodes/pve1/lxc", vmid=176, ostemplate=template, rootfs="local-zfs:1",
                                mp0="%s,mp=/data" % source, unprivileged=1)
        assert status == 200, body
        assert message in api.wait(body["data"]) + "\n".join(api.log(body["data"]))
        assert 176 not in double.backend.containers
    assert os.listdir(str(closed)) == []
    # a privileged container's root is the host's
    assert api.task("POST", "/nodes/pve1/lxc", vmid=176, ostemplate=template, rootfs="local-zfs:1",
                    mp0="%s,mp=/data" % closed) == "OK"
    assert (closed / "seed.txt").read_text() == "seed\n" and os.stat(str(closed / "seed.txt")).st_uid == 1000
    assert api.task("DELETE", "/nodes/pve1/lxc/176") == "OK"


def test_a_storage_the_node_cannot_use_is_listed_so_and_refuses_new_volumes(vdouble):
    """pve-storage PVE/Storage.pm storage_info (GET /nodes/{node}/storage): a storage disabled, or restricted to
    other nodes (storage.cfg nodes), is listed enabled 0 and left out of a content listing; one whose connection
    check fails is listed inactive.  pve-container PVE/API2/LXC.pm create_vm ($check_and_activate_storage) and a
    config PUT's new volume (update_pct_config, vdisk_alloc's activate_storage) are refused with Proxmox's
    messages, and nothing is made."""
    double, api, template = vdouble
    zfs = double.backend.storages["local-zfs"]
    double.backend.storages.update({"far": dict(zfs, nodes=["pve2"]), "off": dict(zfs, disable=True),
                                    "down": dict(zfs, online=False), "isos": dict(double.backend.storages["local"],
                                                                                  content="iso,vztmpl")})
    try:
        listed = dict((s["storage"], s) for s in api.call("GET", "/nodes/pve1/storage")[1]["data"])
        assert [(listed[n]["enabled"], listed[n]["active"]) for n in ("far", "off", "down", "local-zfs")] == \
            [(0, 0), (0, 0), (1, 0), (1, 1)], listed
        rootdir = [s["storage"] for s in api.call("GET", "/nodes/pve1/storage", content="rootdir")[1]["data"]]
        assert "far" not in rootdir and "off" not in rootdir and "down" in rootdir and "isos" not in rootdir
        for rootfs, status, message in (("far:1", 500, "storage 'far' is not available on node 'pve1'"),
                                        ("off:1", 500, "storage 'off' is disabled"),
                                        ("down:1", 500, "storage 'down' is not online"),
                                        ("isos:1", 400, "Parameter verification failed"),
                                        ("nope:1", 500, "storage 'nope' does not exist")):
            code, body = api.call("POST", "/nodes/pve1/lxc", vmid=174, ostemplate=template, rootfs=rootfs)
            assert code == status and message in body["message"], (rootfs, code, body)
            assert 174 not in double.backend.containers
        code, body = api.call("POST", "/nodes/pve1/lxc", vmid=174, ostemplate=template, rootfs="local-zfs:1",
                              mp0="far:1,mp=/data")
        assert code == 500 and "storage 'far' is not available on node 'pve1'" in body["message"], body
        assert api.task("POST", "/nodes/pve1/lxc", vmid=174, ostemplate=template, rootfs="local-zfs:1") == "OK"
        config = api.call("GET", "/nodes/pve1/lxc/174/config")[1]["data"]
        code, body = api.call("PUT", "/nodes/pve1/lxc/174/config", mp0="down:1,mp=/data")
        assert code == 400 and "unable to apply pending change mp0 : storage 'down' is not online" in \
            body["errors"]["mp0"], body
        code, body = api.call("PUT", "/nodes/pve1/lxc/174/config", mp0="isos:1,mp=/data")
        assert code == 500 and "does not allow content type 'rootdir'" in body["message"], body
        assert api.call("GET", "/nodes/pve1/lxc/174/config")[1]["data"] == config
        assert [name for name in zfs_names(zfs["pool"], "filesystem") if "disk-1" in name] == []
        assert api.task("DELETE", "/nodes/pve1/lxc/174") == "OK"
    finally:
        for name in ("far", "off", "down", "isos"):
            double.backend.storages.pop(name, None)


def test_templates_and_clones_take_every_mount_point_volume_and_a_clone_can_start_from_a_snapshot(vdouble,
                                                                                                  tmp_path):
    """pve-container PVE/LXC.pm template_create: every volume becomes a base (refused for a bind mount, which has no
    template feature); PVE/API2/LXC.pm clone_vm: every volume is cloned (linked) or copied (full, from snapname's
    state when given, its size kept), never shared with the source; a bind mount point cannot be cloned, nor a
    running container fully without a snapshot."""
    double, api, template = vdouble
    assert api.task("POST", "/nodes/pve1/lxc", vmid=175, ostemplate=template, rootfs="local-zfs:1",
                    mp0="local-zfs:1,mp=/data") == "OK"
    data = double.backend.volume_path(double.backend.containers[175].config["mp0"].split(",")[0])

    def write(path, text):
        with open(path, "w") as handle:
            handle.write(text)

    def read(vmid, key="mp0"):
        volume = double.backend.containers[vmid].config[key].split(",")[0]
        with open(os.path.join(double.backend.volume_path(volume), "state")) as handle:
            return volume, handle.read()

    write(os.path.join(data, "state"), "at s1\n")
    assert api.task("POST", "/nodes/pve1/lxc/175/snapshot", snapname="s1") == "OK"
    write(os.path.join(data, "state"), "after s1\n")
    # full clones: from now, and from s1; each gets its own volumes, the size kept
    assert api.task("POST", "/nodes/pve1/lxc/175/clone", newid=176, full=1) == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/175/clone", newid=177, full=1, snapname="s1") == "OK"
    assert read(176) == ("local-zfs:subvol-176-disk-1", "after s1\n")
    assert read(177) == ("local-zfs:subvol-177-disk-1", "at s1\n") and read(175)[1] == "after s1\n"
    assert double.backend.containers[177].config["mp0"] == "local-zfs:subvol-177-disk-1,mp=/data,size=1G"
    assert double.backend.containers[177].config["rootfs"] == "local-zfs:subvol-177-disk-0,size=1G"
    code, body = api.call("POST", "/nodes/pve1/lxc/175/clone", newid=178, full=1, snapname="nope")
    assert code == 500 and "snapshot 'nope' does not exist" in body["message"], body
    assert api.task("POST", "/nodes/pve1/lxc/176/status/start") == "OK"
    code, body = api.call("POST", "/nodes/pve1/lxc/176/clone", newid=178, full=1)
    assert code == 500 and "Full clone of a running container is only possible from a snapshot" in body["message"]
    assert api.task("POST", "/nodes/pve1/lxc/176/status/stop") == "OK"
    # a bind mount point: no clone, no template
    shared = tmp_path / "shared"
    shared.mkdir()
    assert api.call("PUT", "/nodes/pve1/lxc/176/config", mp1="%s,mp=/shared" % shared)[0] == 200
    code, body = api.call("POST", "/nodes/pve1/lxc/176/clone", newid=178, full=1)
    assert code == 500 and "unable to clone mountpoint 'mp1' (type bind)" in body["message"], body
    code, body = api.call("POST", "/nodes/pve1/lxc/176/template")  # null at once; its worker fails
    assert code == 200 and body["data"] is None, body
    for dummy in range(100):
        failed = [t for t in double.backend.tasks.tasks.values() if t.upid.split(":")[5:7] == ["vztemplate", "176"]
                  and t.status == "stopped"]
        if failed:
            break
        time.sleep(0.1)
    assert failed and failed[0].exitstatus == "Template feature is not available for '%s'" % shared, failed
    assert "template" not in double.backend.containers[176].config and 178 not in double.backend.containers
    # a template: every volume a base; a linked clone clones each
    assert api.task("DELETE", "/nodes/pve1/lxc/175/snapshot/s1") == "OK"
    assert api.call("POST", "/nodes/pve1/lxc/175/template")[0] == 200
    for dummy in range(100):
        if double.backend.containers[175].config.get("template") == "1":
            break
        time.sleep(0.1)
    config = double.backend.containers[175].config
    assert config["rootfs"].startswith("local-zfs:basevol-175-disk-0,") and \
        config["mp0"].startswith("local-zfs:basevol-175-disk-1,"), config
    assert api.task("POST", "/nodes/pve1/lxc/175/clone", newid=178, hostname="linked") == "OK"
    assert read(178) == ("local-zfs:basevol-175-disk-1/subvol-178-disk-1", "after s1\n")
    assert double.backend.containers[178].config["rootfs"].startswith("local-zfs:basevol-175-disk-0/subvol-178-disk-0")
    for vmid in (178, 177, 176, 175):
        assert api.task("DELETE", "/nodes/pve1/lxc/%d" % vmid) == "OK"
