"""The PVE API double's backend semantics with real LXC and ZFS: deletion rules, resource limits."""

import os
import subprocess
import time

import pytest
import requests

from pve_double.backend import cgroup_limits
from pve_double.server import DEFAULT_PASSWORD, Double

pytestmark = pytest.mark.integration
NODE = "pve1"


@pytest.fixture(params=["9.1", "8"])
def zdouble(request, tmp_path, zfs_dataset, bed):
    instance = Double(str(tmp_path / "pve"), mode=request.param, zfs_root=zfs_dataset + "/pve").start()
    rootfs = tmp_path / "rootfs"
    for sub in ("bin", "sbin", "dev", "tmp"):
        (rootfs / sub).mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(rootfs / "bin" / "busybox")], check=True)
    for applet in ("sh", "sleep"):
        os.symlink("busybox", str(rootfs / "bin" / applet))
    (rootfs / "sbin" / "init").write_text("#!/bin/sh\ntrap 'exit 0' PWR TERM\n/bin/sleep 300 &\nwait\n")
    os.chmod(str(rootfs / "sbin" / "init"), 0o755)
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "t.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
    instance.stop()


class Api:
    def __init__(self, double):
        self.url = double.url
        self.session = requests.Session()
        self.session.verify = False  # the double's self-signed certificate (its CA handling is tested elsewhere)
        requests.packages.urllib3.disable_warnings()
        login = self.session.post(self.url + "/access/ticket", verify=False,
                                  data={"username": "root@pam", "password": DEFAULT_PASSWORD}).json()["data"]
        self.session.cookies.set("PVEAuthCookie", login["ticket"])
        self.session.headers["CSRFPreventionToken"] = login["CSRFPreventionToken"]

    def call(self, method, path, **data):
        arguments = {"params": data} if method == "GET" else {"data": data}
        resp = self.session.request(method, self.url + path, verify=False, **arguments)
        return resp.status_code, resp.json()

    def task(self, method, path, **data):
        """The exitstatus of the task the call starts."""
        status, body = self.call(method, path, **data)
        assert status == 200, body
        return self.wait(body["data"])

    def wait(self, upid):
        for dummy in range(600):
            state = self.call("GET", "/nodes/%s/tasks/%s/status" % (NODE, upid))[1]["data"]
            if state["status"] == "stopped":
                return state["exitstatus"]
            time.sleep(0.1)
        raise AssertionError("task did not end")

    def log(self, upid):
        return [line["t"] for line in self.call("GET", "/nodes/%s/tasks/%s/log" % (NODE, upid), limit=0)[1]["data"]]


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
    upid = api.call("DELETE", "/nodes/pve1/lxc/180", force=1)[1]["data"]
    assert api.wait(upid) == "WARNINGS: 1"  # PVE warns that it stopped the container first
    assert "WARN: forced to stop CT 180 before destroying!" in api.log(upid)
    assert 180 not in double.backend.containers and not os.path.exists(os.path.join(double.backend.lxc_path, "180"))
    assert pool + "/subvol-180-disk-0" not in datasets(double) and pool + "/subvol-180-disk-1" in datasets(double)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=180, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1") == "OK"
    assert api.task("DELETE", "/nodes/pve1/lxc/180", **{"destroy-unreferenced-disks": 1}) == "OK"
    assert not [d for d in datasets(double) if "-180-disk-" in d]


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
    assert double.backend.pools["ci"] == set() and not [d for d in datasets(double) if "-18" in d]


def test_memory_and_cores_are_cgroup_limits_of_the_running_container(zdouble):
    double, api = zdouble, Api(zdouble)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=181, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", memory=192, cores=1, cpulimit="0.5") == "OK"
    exitstatus = api.task("POST", "/nodes/pve1/lxc/181/status/start")
    warnings = []
    cgroup_limits({"memory": "192", "cores": "1", "cpulimit": "0.5"}, "/sys/fs/cgroup", warnings)
    assert exitstatus == ("WARNINGS: %d" % len(warnings) if warnings else "OK")
    pid = double.backend.lxc_state(double.backend.containers[181])[1]
    groups = dict(line.strip().split(":", 2)[1:] for line in open("/proc/%s/cgroup" % pid))
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        base = "/sys/fs/cgroup" + groups[""]
        assert open(base + "/memory.max").read().strip() == str(192 << 20)
        assert open(base + "/cpu.max").read().split()[0] == "50000"
        assert open(base + "/cpuset.cpus").read().strip() == "0"
    else:
        assert open("/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % groups["memory"]).read().strip() == \
            str(192 << 20)
        assert open("/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us" % groups["cpu"]).read().strip() == "50000"
        assert open("/sys/fs/cgroup/cpuset%s/cpuset.cpus" % groups["cpuset"]).read().strip() == "0"
    assert api.task("POST", "/nodes/pve1/lxc/181/status/stop") == "OK"


def test_limits_for_each_cgroup_layout(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
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
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "cpu").mkdir()
    warnings = []
    lines = cgroup_limits({"memory": "256", "cores": "1", "cpulimit": "2"}, str(v1), warnings)
    assert lines == ["lxc.cgroup.memory.limit_in_bytes = %d" % (256 << 20), "lxc.cgroup.cpu.cfs_period_us = 100000",
                     "lxc.cgroup.cpu.cfs_quota_us = 200000"]
    assert warnings == ["no memsw accounting: swap 512 MiB not enforced", "no cpuset controller: cores 1 not enforced"]


@pytest.fixture
def bridge():
    name = "lxcri-br%d" % (os.getpid() % 1000)
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.231.0.1/24", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)


def test_net0_on_an_existing_bridge_is_a_veth_else_a_warning(zdouble, bridge):
    double, api = zdouble, Api(zdouble)
    net0 = "name=eth0,bridge=%s,hwaddr=BC:24:11:AA:BB:01,ip=10.231.0.2/24,gw=10.231.0.1,type=veth" % bridge
    assert api.task("POST", "/nodes/pve1/lxc", vmid=182, ostemplate="local:vztmpl/t.tar.zst",
                    rootfs="local-zfs:1", net0=net0, net1="name=eth1,bridge=vmbr9,type=veth") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/182/status/start") == "WARNINGS: 1"  # vmbr9 is not on this host
    name = "182"
    inside = subprocess.run(["lxc-attach", "-P", double.backend.lxc_path, "-n", name, "--", "/bin/busybox", "ip",
                             "addr", "show", "eth0"], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert "bc:24:11:aa:bb:01" in inside.stdout and "10.231.0.2/24" in inside.stdout
    assert os.listdir("/sys/class/net/%s/brif" % bridge)  # the host end of the veth is on the bridge
    ping = subprocess.run(["lxc-attach", "-P", double.backend.lxc_path, "-n", name, "--", "/bin/busybox", "ping",
                           "-c", "1", "-W", "2", "10.231.0.1"], stdout=subprocess.PIPE, universal_newlines=True,
                          check=False)
    assert ping.returncode == 0, ping.stdout
    assert api.task("POST", "/nodes/pve1/lxc/182/status/stop") == "OK"
    assert not os.listdir("/sys/class/net/%s/brif" % bridge)
