"""The oci_app role through the collection's playbooks (deploy_app, rollback_app) against the PVE API double.

Both Proxmox VE modes: 9.1 (an OCI archive; entrypoint/env keys) and 8 (a template whose /sbin/init runs
the app). Real LXC containers and real ZFS snapshots underneath; every check reads LXC, /proc or ZFS.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from lxcri_testbed import TEST_REPO_NS
from lxcri_testbed.app_images import page, push
from lxcri_testbed.bed import destroy_tree
from lxcri_testbed.lxc import container_ids
from pve_double.server import DEFAULT_PASSWORD, Double

APP = "webapp"


@pytest.fixture(params=["9.1", "8"])
def appdouble(request, tmp_path, zfs_dataset, bed):
    instance = Double(str(tmp_path / "pve"), mode=request.param, zfs_root=zfs_dataset + "/pve").start()
    yield instance
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
    instance.stop()


def app_vars(double, image=None, **extra):
    values = {
        "pve_api_host": "127.0.0.1", "pve_api_port": double.port, "pve_api_user": "root@pam",
        "pve_api_password": DEFAULT_PASSWORD, "pve_ca_path": double.cert,
        "oci_app_name": APP, "oci_app_template_storage": "local", "oci_app_storage": "local-zfs",
        "oci_app_disk_size": 1, "oci_app_memory": 256, "oci_app_registry_tls_verify": False,
        "oci_app_template_cache_dir": os.path.join(double.backend.root, "cache"),
        "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
        "oci_app_health_exec": [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n", "{vmid}",
                                "--"],
        "oci_app_health_timeout": 20, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 2,
        # no metrics: parallel tests deploy apps of the same name, and this machine has node_exporter's directory
        # (tests/integration/test_metrics.py and the oci_app molecule scenario write them)
        "oci_app_metrics_dir": "",
    }
    if image:
        values["oci_app_image"] = image
    values.update(extra)
    return values


def containers(double):
    """{hostname: (vmid, status)} as the double's real LXC state says."""
    out = {}
    for ct in double.backend.containers.values():
        out[ct.config.get("hostname")] = (ct.vmid, double.backend.lxc_state(ct)[0])
    return out


def app_process(double, vmid):
    """(argv, uid, cwd, env) of the container's httpd: its init itself (9.1) or the generated init's child (8)."""
    ct = double.backend.containers[vmid]
    state, init = double.backend.lxc_state(ct)
    assert state == "running"
    pids = [int(init)] + child_pids(int(init))
    for pid in pids:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = [a.decode() for a in handle.read().split(b"\0")[:-1]]
        if argv and argv[0] == "httpd":
            uid = container_ids(pid)[0]  # as the container sees it (oci_app's containers are unprivileged)
            with open("/proc/%d/environ" % pid, "rb") as handle:
                env = dict(item.decode().partition("=")[::2] for item in handle.read().split(b"\0") if item)
            return argv, int(uid), os.readlink("/proc/%d/cwd" % pid), env
    raise AssertionError("no httpd under the init of CT %d (%s)" % (vmid, pids))


def child_pids(parent):
    """The pids whose parent is ``parent``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == parent:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def leased_address(run, bridge):
    """The IPv4 address the role's health check found on eth0 (lxc_container_info's interfaces), checked to be
    one the bridge's DHCP server leases."""
    leased = [t["result"] for t in run.results["tasks"]
              if t["task"].startswith("Find the address of CT") and t["status"] == "ok"]
    inet = [i["inet"] for i in leased[-1]["containers"][0]["interfaces"] if i["name"] == "eth0"][0]
    ip = inet[0].split("/")[0]
    assert ip.startswith(bridge.net + ".") and 100 <= int(ip.rsplit(".", 1)[1]) <= 199, inet
    return ip


def fetch(double, vmid):
    return subprocess.run([double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n", str(vmid), "--", "wget", "-qO-",
                           "http://127.0.0.1:8080/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False).stdout


def check_serving(double, vmid, version):
    assert fetch(double, vmid) == page(version)
    argv, uid, cwd, env = app_process(double, vmid)
    assert argv == ["httpd", "-f", "-v", "-p", "8080", "-h", "."]
    assert uid == 1000 and cwd.endswith("/srv/www")
    assert env["APP_VERSION"] == version and env["PORT"] == "8080"
    # Proxmox's TERM=linux (PVE/LXC.pm update_lxc_config) reaches the app on the 9.1 path (no wrapper) and through
    # the generated init on the 8 path, whose environment is otherwise exactly the image's
    assert env["TERM"] == "linux"


def shown(run):
    """The line the playbook's "Show the result" task printed (the role's oci_app_result.summary)."""
    return [t["result"]["msg"] for t in run.results["tasks"] if t["task"] == "Show the result"][0]


def snapshots(dataset):
    return subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset], check=True,
                          stdout=subprocess.PIPE, universal_newlines=True).stdout.split()


@pytest.mark.slow(110)
def test_deploy_upgrade_broken_rollback_and_absent(installed_collection, appdouble, tmp_path, bed):
    double = appdouble
    images = push(bed["registry"]["host"], "%s/webapp-%s" % (TEST_REPO_NS, double.backend.mode.replace(".", "")))
    deploy = "lxcri.proxmox.deploy_app"

    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    cts = containers(double)
    assert list(cts) == [APP] and cts[APP][1] == "running"
    v1 = cts[APP][0]
    check_serving(double, v1, "1")
    assert re.match(r"%s: created in CT %d \(sha256:[0-9a-f]{64}\)$" % (APP, v1), shown(first)), shown(first)
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert shown(again) == shown(first).replace("created", "unchanged")

    # check mode: an upgrade is only reported
    before = dict((vmid, dict(ct.config)) for vmid, ct in double.backend.containers.items())
    zfs_before = snapshots(double.backend.storages["local-zfs"]["pool"])
    check = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]), check=True)
    assert check.rc == 0, [(t["task"], t["result"].get("msg")) for t in check.results["tasks"] if t["status"] == "failed"]
    assert dict((vmid, dict(ct.config)) for vmid, ct in double.backend.containers.items()) == before
    assert snapshots(double.backend.storages["local-zfs"]["pool"]) == zfs_before
    check_serving(double, v1, "1")

    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]))
    assert upgrade.rc == 0, [t["result"].get("msg") for t in upgrade.results["tasks"] if t["status"] != "ok"]
    cts = containers(double)
    assert sorted(cts) == [APP, APP + "-prev"] and cts[APP + "-prev"] == (v1, "stopped")
    v2 = cts[APP][0]
    check_serving(double, v2, "2")
    assert re.match(r"%s: upgraded in CT %d \(sha256:[0-9a-f]{64}\); the previous version's CT %d is stopped, "
                    r"with snapshot lxcri_[0-9a-f]{12}$" % (APP, v2, v1), shown(upgrade)), shown(upgrade)
    pool = double.backend.storages["local-zfs"]["pool"]
    assert any(name.startswith("%s/subvol-%d-disk-0@lxcri_" % (pool, v1)) for name in snapshots(pool))

    broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"],
                                                                       oci_app_health_timeout=5))
    assert broken.rc != 0
    assert "Rolled back: CT %d runs the previous version" % v2 in broken.stdout, broken.stdout[-3000:]
    cts = containers(double)
    assert cts == {APP: (v2, "running"), APP + "-prev": (v1, "stopped")}, cts
    check_serving(double, v2, "2")

    back = installed_collection.playbook("lxcri.proxmox.rollback_app", extra_vars=app_vars(double))
    assert back.rc == 0, back
    assert containers(double) == {APP: (v1, "running")}
    check_serving(double, v1, "1")
    assert re.match(r"%s: rolled back: CT %d runs the previous version again from snapshot lxcri_[0-9a-f]{12}; "
                    r"removed CT %d$" % (APP, v1, v2), shown(back)), shown(back)
    template_dir = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
    assert len(os.listdir(template_dir)) == 3  # the three versions built, within keep_templates (3)

    gone = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="absent"))
    assert gone.rc == 0, gone
    assert shown(gone) == "%s: removed CT %d" % (APP, v1)
    assert double.backend.containers == {} and os.listdir(double.backend.lxc_path) == []
    assert not [name for name in subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], check=True,
                                                stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
                if "/subvol-" in name]


def test_the_apps_network_is_host_managed_and_answers_the_node_over_tcp(installed_collection, zdouble91, tmp_path,
                                                                        bed, bridge):
    """Proxmox VE 9.1 brings up only host-managed interfaces, and an app's init configures none: the role's
    net0 (a static address on a bridge) gets host-managed=1, the health check is a TCP connection from the node
    to that address, the page is fetched over the bridge, and a second run changes nothing (the importer's
    host-managed stays).  An upgrade's new container answers on the same address."""
    import urllib.request
    double = zdouble91
    # the host ends of the veths are named veth<vmid>i<N>, as on a node, and test doubles share this host: bridge
    # tests take their own vmid range (datacenter.cfg next-id lower=..., as a cluster could)
    double.backend.vmid_range = (300, 399)
    images = push(bed["registry"]["host"], "%s/webapp-net" % TEST_REPO_NS, versions=("1", "2"))
    address = bridge.address(20)
    ip = address.split("/")[0]
    net = {"0": "name=eth0,bridge=%s,ip=%s,gw=%s" % (bridge.name, address, bridge.host)}
    settings = dict(oci_app_net=net, oci_app_health_command=[], oci_app_health_host=ip, oci_app_health_port=8080)
    deploy = "lxcri.proxmox.deploy_app"
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    vmid = containers(double)[APP][0]
    net0 = double.backend.containers[vmid].config["net0"]
    assert "host-managed=1" in net0 and "ip=%s" % address in net0, net0
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert double.backend.containers[vmid].config["net0"] == net0
    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], **settings))
    assert upgrade.rc == 0, [t["result"].get("msg") for t in upgrade.results["tasks"] if t["status"] != "ok"]
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("2")


@pytest.mark.slow(40)
def test_the_health_check_reaches_the_container_from_the_controller_over_ssh(
        installed_collection, zdouble91, tmp_path, bed):
    """The default health path (oci_app_health_via auto with the default oci_app_health_exec): the pct connection,
    here from a play on the controller to the node's inventory host over SSH (its address, port and user), where
    the node's own pct (the shim on the sshd sessions' PATH) runs the command in the container."""
    from lxcri_testbed.sshd import Sshd  # pylint: disable=import-outside-toplevel
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-ssh" % TEST_REPO_NS, versions=("1",))
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        config = sshd.client_config(tmp_path / "ssh_config", {"LXCRI_PCT_ROOTS": double.backend.root})
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "pve-node": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root"}}}}))
        run = installed_collection.playbook("lxcri.proxmox.deploy_app", inventory=str(inventory), extra_vars=app_vars(
            double, images["1"], oci_app_health_exec=["pct", "exec", "{vmid}", "--"],
            oci_app_node_hosts={"pve1": "pve-node"}, ansible_pct_node_private_key_file=sshd.client_key,
            ansible_pct_node_ssh_args="-F %s" % config))
        assert run.rc == 0, [t["result"].get("msg") for t in run.results["tasks"] if t["status"] != "ok"]
        via = [t for t in run.results["tasks"] if t["task"].endswith("through the pct connection")]
        assert via and via[0]["status"] == "ok" and page("1") in via[0]["result"]["stdout"], via
        assert not [t for t in run.results["tasks"] if t["task"].startswith("Run the health command")
                    and not t["task"].endswith("through the pct connection") and t["status"] != "skipped"]
    finally:
        sshd.stop()


def test_a_dhcp_app_is_checked_on_its_leased_address_and_a_second_run_leaves_dhcp_running(
        installed_collection, zdouble91, tmp_path, bed, bridge):
    """net0 with ip=dhcp on 9.1: host-managed, so pve-container's vm_start runs the host's DHCP client in the
    container's network; the health check has no host given and connects to the address the container got
    (lxc_container_info's interfaces); a second run changes nothing and leaves the client running with its
    lease (nothing re-applies net0, which would restart it).  The plain-template path (vztmpl), where the
    collection asks for host-managed itself; the host-managed test covers the OCI archive, where the importer
    sets it."""
    import urllib.request
    double = zdouble91
    double.backend.vmid_range = (400, 499)  # its own veth names (see the host-managed test)
    bridge.serve_dhcp(tmp_path)
    images = push(bed["registry"]["host"], "%s/webapp-dhcp" % TEST_REPO_NS, versions=("1",))
    net = {"0": "name=eth0,bridge=%s,ip=dhcp" % bridge.name}
    settings = dict(oci_app_net=net, oci_app_health_command=[], oci_app_health_port=8080,
                    oci_app_template_format="vztmpl")
    deploy = "lxcri.proxmox.deploy_app"
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    vmid = containers(double)[APP][0]
    built = [t["result"] for t in first.results["tasks"] if t["task"].startswith("Build the template")]
    assert built[0]["volid"].endswith(".tar.zst"), built[0]["volid"]  # a plain template, not an OCI archive
    assert "host-managed=1" in double.backend.containers[vmid].config["net0"]
    pidfile = os.path.join(double.backend.lxc_path, str(vmid), "hook", "dhclient4-eth0.pid")
    pid = int(open(pidfile).read())
    ip = leased_address(first, bridge)
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert int(open(pidfile).read()) == pid and os.path.exists("/proc/%d" % pid)
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")


def test_a_tcp_health_check_without_a_host_needs_a_network(installed_collection, zdouble91, bed):
    """oci_app_health_port without oci_app_health_host connects to the container's address: without
    oci_app_net there is none, and the role says so before it changes anything."""
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-nonet" % TEST_REPO_NS, versions=("1",))
    run = installed_collection.playbook("lxcri.proxmox.deploy_app", extra_vars=app_vars(
        double, images["1"], oci_app_health_command=[], oci_app_health_port=8080))
    assert run.rc != 0
    failed = [t["result"]["msg"] for t in run.results["tasks"] if t["status"] == "failed"]
    assert len(failed) == 1 and "needs a network (oci_app_net)" in failed[0], failed
    assert double.backend.containers == {}


def test_on_8_the_apps_static_address_comes_up_through_raw_lines(installed_collection, zdouble8, tmp_path, bed,
                                                                 bridge):
    """Proxmox VE 8 has no host-managed network and the image's command configures none: with raw_lxc (the
    role's default there for a static address) the lxc.net.0 lines 9.1 writes for a host-managed interface go
    into the node's conf file, LXC brings eth0 up with its address, the health check connects to it from the
    node, and a second run changes nothing."""
    import urllib.request
    double = zdouble8
    double.backend.vmid_range = (500, 549)  # its own veth names (see the host-managed test)
    images = push(bed["registry"]["host"], "%s/webapp-net8" % TEST_REPO_NS, versions=("1",))
    address = bridge.address(30)
    ip = address.split("/")[0]
    net = {"0": "name=eth0,bridge=%s,ip=%s,gw=%s" % (bridge.name, address, bridge.host)}
    settings = dict(oci_app_net=net, oci_app_health_command=[], oci_app_health_port=8080)
    deploy = "lxcri.proxmox.deploy_app"
    # the role's default (auto) on 8 with a static address: raw_lxc, as a play on the node as root has it
    settings.update(oci_app_raw_lxc_dir=double.backend.conf_dir)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    vmid = containers(double)[APP][0]
    with open(os.path.join(double.backend.conf_dir, "%d.conf" % vmid)) as handle:
        conf = handle.read()
    assert "lxc.net.0.ipv4.address: %s\nlxc.net.0.ipv4.gateway: %s\nlxc.net.0.flags: up\n" % (
        address, bridge.host) in conf, conf
    assert "host-managed" not in double.backend.containers[vmid].config["net0"]  # 8 has no such option
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    with open(os.path.join(double.backend.conf_dir, "%d.conf" % vmid)) as handle:
        assert handle.read() == conf


@pytest.mark.slow(50)
def test_on_8_without_node_access_the_templates_init_configures_a_static_address_and_dhcp(
        installed_collection, zdouble8, tmp_path, bed, bridge):
    """Proxmox VE 8 with no node access (oci_app_raw_lxc: false, as an API token in AWX has it), and DHCP, which
    8 never runs for a container: the template's generated init configures the interfaces (oci_template's net)
    with the image's ip and udhcpc (BusyBox's multi-call binary for the static app, applet links for the DHCP
    one), before it starts the app as exactly the image says.  The node's conf file gets no raw lines, the
    health check finds the leased address, the DHCP client stays to renew, and second runs change nothing.  An
    lxc_container task that gives the DHCP app another address is refused, changing nothing."""
    import urllib.request
    double = zdouble8
    double.backend.vmid_range = (550, 599)  # its own veth names (see the host-managed test)
    bridge.serve_dhcp(tmp_path)
    deploy = "lxcri.proxmox.deploy_app"

    # a static address, no node access
    images = push(bed["registry"]["host"], "%s/webapp-api8" % TEST_REPO_NS, versions=("1",))
    address = bridge.address(40)
    ip = address.split("/")[0]
    net = {"0": "name=eth0,bridge=%s,ip=%s,gw=%s" % (bridge.name, address, bridge.host)}
    settings = dict(oci_app_net=net, oci_app_health_command=[], oci_app_health_port=8080, oci_app_raw_lxc=False,
                    oci_app_raw_lxc_dir=double.backend.conf_dir)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    vmid = containers(double)[APP][0]
    built = [t["result"] for t in first.results["tasks"] if t["task"].startswith("Build the template")][0]
    assert built["runtime"]["net"] == [{"key": "net0", "name": "eth0", "ip": address, "gw": bridge.host}], built
    assert built["runtime"]["wrapper"]["net_tools"] == ["/bin/busybox ip"], built["runtime"]["wrapper"]
    with open(os.path.join(double.backend.conf_dir, "%d.conf" % vmid)) as handle:
        conf = handle.read()
    assert "lxc.net" not in conf and "net=" in double.backend.containers[vmid].config["description"], conf
    with urllib.request.urlopen("http://%s:8080/" % ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")
    check_serving(double, vmid, "1")  # argv, uid, cwd and the image's exact environment, as without a network
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again

    # DHCP, with the role's defaults (auto: no raw lines), on the applet links ip and udhcpc
    images = push(bed["registry"]["host"], "%s/webapp-dhcp8" % TEST_REPO_NS, versions=("1",),
                  applets=("sh", "httpd", "wget", "id", "echo", "sleep", "cat", "ls", "ip", "udhcpc"))
    net = {"0": {"name": "eth0", "bridge": bridge.name, "ip": "dhcp"}}
    settings = dict(oci_app_name="webapp-dhcp", oci_app_net=net, oci_app_health_command=[],
                    oci_app_health_port=8080, oci_app_raw_lxc_dir=double.backend.conf_dir)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert first.rc == 0, [t["result"].get("msg") for t in first.results["tasks"] if t["status"] != "ok"]
    dhcp_vmid = containers(double)["webapp-dhcp"][0]
    built = [t["result"] for t in first.results["tasks"] if t["task"].startswith("Build the template")][0]
    assert built["runtime"]["wrapper"]["net_tools"] == ["/bin/ip", "/bin/udhcpc"], built["runtime"]["wrapper"]
    with open(os.path.join(double.backend.conf_dir, "%d.conf" % dhcp_vmid)) as handle:
        assert "lxc.net" not in handle.read()
    dhcp_ip = leased_address(first, bridge)
    with urllib.request.urlopen("http://%s:8080/" % dhcp_ip, timeout=10) as answer:
        assert answer.read().decode() == page("1")
    # the client stays, a child of the generated init, to renew the lease
    ct = double.backend.containers[dhcp_vmid]
    children = []
    for pid in child_pids(int(double.backend.lxc_state(ct)[1])):
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            children.append(cmdline.read().split(b"\0")[0].decode())
    assert "/bin/udhcpc" in children, children
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **settings))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again

    # another address than the template's, for the DHCP app's container: refused, nothing changed
    config = dict(ct.config)
    other = installed_collection.module("lxcri.proxmox.lxc_container", {
        "api_host": "127.0.0.1", "api_port": double.port, "api_user": "root@pam", "api_password": DEFAULT_PASSWORD,
        "ca_path": double.cert, "vmid": dhcp_vmid, "hostname": "webapp-dhcp",
        "net": {"0": "name=eth0,bridge=%s,ip=%s,gw=%s" % (bridge.name, bridge.address(41), bridge.host)}})
    assert other.rc != 0 and "the template's generated init configures other interfaces" in other.data["msg"] and \
        "nothing was changed" in other.data["msg"], other.data
    assert dict(double.backend.containers[dhcp_vmid].config) == config


def data_volume(double):
    """volume_of(vmid): the volume id of the app's /data (mp100)."""
    def volume_of(vmid):
        config = double.backend.containers[vmid].config
        assert config["mp100"].split(",")[1:3] == ["mp=/data", "backup=1"], config
        return config["mp100"].split(",")[0]
    return volume_of


def data_count(double):
    """count(vmid): the number of starts the stateful app counted in its /data."""
    def count(vmid):
        with open(os.path.join(double.backend.volume_path(data_volume(double)(vmid)), "count")) as handle:
            return int(handle.read())
    return count


def failed(run):
    """The messages of the failed tasks (of a loop, its failed items')."""
    out = []
    for task in run.results["tasks"]:
        if task["status"] != "failed":
            continue
        items = [item.get("msg") for item in task["result"].get("results", []) if item.get("failed")]
        out.append("; ".join(str(msg) for msg in items) if items else task["result"].get("msg"))
    return out


def subvols(pool):
    return [name for name in subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], check=True,
                                            stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
            if "/subvol-" in name]


@pytest.mark.slow(220)
def test_an_apps_volume_keeps_its_data_through_upgrade_failed_upgrade_and_rollback(
        installed_collection, zdouble91, bed):
    """Issue 17: the image's VOLUME /data is a Proxmox volume of the app (mp100), filled from the image at the
    first create (its seed file, owned by the image's user, shifted as the container is unprivileged); every start
    counts itself in /data/count as that user.  An upgrade hands the volume to the new version (the count goes
    on); a failed upgrade hands it back with the data as it was before (lxcri_data); a rollback on request returns
    the data to before the current version ran; a smaller size, or a new volume on a storage the node cannot
    use, is refused before any change; oci_app_purge_data removes it all."""
    double = zdouble91
    pool = double.backend.storages["local-zfs"]["pool"]
    images = push(bed["registry"]["host"], "%s/webapp-data" % TEST_REPO_NS, stateful=True)
    deploy = "lxcri.proxmox.deploy_app"

    volume_of, count = data_volume(double), data_count(double)

    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert first.rc == 0, failed(first)
    v1 = containers(double)[APP][0]
    data = double.backend.volume_path(volume_of(v1))
    assert volume_of(v1) == "local-zfs:subvol-%d-disk-1" % v1 and count(v1) == 1
    info = os.stat(os.path.join(data, "seed"))
    assert (info.st_uid, info.st_gid) == (101000, 101000) and os.stat(os.path.join(data, "count")).st_uid == 101000
    check_serving(double, v1, "1")
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0 and count(v1) == 1, again

    state = double.state()
    check = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]), check=True)
    assert check.rc == 0 and double.state() == state, failed(check)

    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]))
    assert upgrade.rc == 0, failed(upgrade)
    v2 = containers(double)[APP][0]
    assert count(v2) == 2 and not [k for k in double.backend.containers[v1].config if k.startswith(("mp", "unused"))]
    assert list(double.backend.containers[v2].snapshots) == ["lxcri_data"]
    check_serving(double, v2, "2")

    # a rollback on request: the volume back to v1, its data as before v2 ran (1), then v1's start
    back = installed_collection.playbook("lxcri.proxmox.rollback_app", extra_vars=app_vars(double))
    assert back.rc == 0, failed(back)
    assert containers(double) == {APP: (v1, "running")} and count(v1) == 2
    assert "its volumes are back, with the data of before the version rolled back from" in shown(back), shown(back)
    check_serving(double, v1, "1")

    # the upgrade grows the volume to 2 GiB as it hands it over
    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"],
                                                                        oci_app_image_volume_size=2))
    assert upgrade.rc == 0, failed(upgrade)
    v2 = containers(double)[APP][0]
    assert count(v2) == 3 and "size=2G" in double.backend.containers[v2].config["mp100"].split(",")

    # shrinking it back is refused before anything changes, in check mode too
    state = double.state()
    for check_mode in (True, False):
        shrink = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]), check=check_mode)
        assert shrink.rc != 0 and "a volume cannot shrink (/data is 2.0 GiB, asked 1 GiB)" in failed(shrink)[-1], \
            failed(shrink)
        assert double.state() == state and containers(double)[APP] == (v2, "running")

    # a new volume on a storage this node cannot use (storage.cfg nodes: pve2 only): refused before any change
    double.backend.storages["far-zfs"] = dict(double.backend.storages["local-zfs"], nodes=["pve2"])
    far = dict(oci_app_image_volume_size=2, oci_app_volumes={"logs": {"path": "/logs", "storage": "far-zfs"}})
    for check_mode in (True, False):
        refused = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **far),
                                                check=check_mode)
        assert refused.rc != 0 and "cannot allocate its volumes on node pve1: storage 'far-zfs' is disabled, or " \
            "not available on node pve1" in failed(refused)[-1], failed(refused)
        assert double.state() == state and containers(double)[APP] == (v2, "running")
    del double.backend.storages["far-zfs"]

    # a failed upgrade: the volume back to v2 with the data as before the attempt (3), then v2's start
    broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"],
                                                                       oci_app_image_volume_size=2,
                                                                       oci_app_health_timeout=4))
    assert broken.rc != 0 and "with its volumes as they were before" in failed(broken)[-1], failed(broken)
    assert containers(double)[APP] == (v2, "running") and count(v2) == 4
    assert sorted(double.backend.containers) == [v1, v2]

    purged = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="absent",
                                                                       oci_app_purge_data=True))
    assert purged.rc == 0 and shown(purged) == "webapp: removed CT %d, %d; destroyed: local-zfs:subvol-%d-disk-1 " \
        "(/data)" % (v1, v2, v2), failed(purged)
    assert double.backend.containers == {} and not subvols(pool)


@pytest.mark.slow(180)
def test_absent_keeps_an_apps_data_for_its_next_deployment_until_purged(installed_collection, zdouble91, bed):
    """Issue 17: oci_app_state absent keeps the app's volume in its container, stopped, renamed <name>-data and
    protected (the previous version goes); a second run changes nothing.  The next deployment takes the volume
    over (the count goes on) and removes <name>-data after its health check; a deployment that fails its health
    check gives the volume back with the data as it was kept.  oci_app_purge_data names what it would destroy in
    check mode, then removes it all."""
    double = zdouble91
    pool = double.backend.storages["local-zfs"]["pool"]
    images = push(bed["registry"]["host"], "%s/webapp-kept" % TEST_REPO_NS, stateful=True)
    deploy = "lxcri.proxmox.deploy_app"
    count = data_count(double)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert first.rc == 0, failed(first)
    v1 = containers(double)[APP][0]
    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]))
    assert upgrade.rc == 0, failed(upgrade)
    v2 = containers(double)[APP][0]
    assert count(v2) == 2 and containers(double)["webapp-prev"] == (v1, "stopped")

    # absent keeps the data: v1 (webapp-prev) goes, v2 stays stopped as webapp-data, protected; check mode first
    absent = app_vars(double, oci_app_state="absent")
    state = double.state()
    check = installed_collection.playbook(deploy, extra_vars=absent, check=True)
    assert check.rc == 0 and double.state() == state, failed(check)
    assert "would remove CT %d; would stop, rename and protect CT %d; the data would be kept in CT %d (webapp-data, " \
        "stopped and protected): local-zfs:subvol-%d-disk-1 (/data)" % (v1, v2, v2, v2) in shown(check), shown(check)
    kept = installed_collection.playbook(deploy, extra_vars=absent)
    assert kept.rc == 0, failed(kept)
    assert containers(double) == {"webapp-data": (v2, "stopped")} and count(v2) == 2
    assert str(double.backend.containers[v2].config["protection"]) == "1"
    again = installed_collection.playbook(deploy, extra_vars=absent)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert shown(again).startswith("webapp: the data is kept in CT %d (webapp-data" % v2), shown(again)

    # the next deployment takes the data over (the count goes on), and removes webapp-data after its health check
    state = double.state()
    check = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"],
                                                                      oci_app_image_volume_size=2), check=True)
    assert check.rc == 0 and double.state() == state, failed(check)
    back = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], oci_app_image_volume_size=2))
    assert back.rc == 0, failed(back)
    v3 = containers(double)[APP][0]
    assert sorted(double.backend.containers) == [v3] and count(v3) == 3, containers(double)
    assert "with the data kept in CT %d (/data), which was removed" % v2 in shown(back), shown(back)
    check_serving(double, v3, "2")
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], oci_app_image_volume_size=2))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0 and count(v3) == 3, again

    # kept again; a deployment that fails its health check gives the data back, as it was, and removes its container
    kept = installed_collection.playbook(deploy, extra_vars=absent)
    assert kept.rc == 0 and containers(double) == {"webapp-data": (v3, "stopped")}, failed(kept)
    broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"],
                                                                       oci_app_image_volume_size=2,
                                                                       oci_app_health_timeout=4))
    assert broken.rc != 0 and "are back in CT %d, stopped and protected, with the data as it was kept" % v3 \
        in failed(broken)[-1], failed(broken)
    assert containers(double) == {"webapp-data": (v3, "stopped")} and count(v3) == 3
    assert str(double.backend.containers[v3].config["protection"]) == "1"

    # the purge: check mode names what would be destroyed and changes nothing; then it all goes
    purge = app_vars(double, oci_app_state="absent", oci_app_purge_data=True)
    state = double.state()
    check = installed_collection.playbook(deploy, extra_vars=purge, check=True)
    assert check.rc == 0 and double.state() == state, failed(check)
    assert shown(check) == "webapp: would remove CT %d; would destroy: local-zfs:subvol-%d-disk-1 (/data)" % (v3, v3)
    purged = installed_collection.playbook(deploy, extra_vars=purge)
    assert purged.rc == 0, failed(purged)
    assert double.backend.containers == {} and not subvols(pool)


@pytest.mark.slow(110)
def test_an_app_with_a_bind_mount_upgrades_and_rolls_back_without_snapshots(installed_collection, zdouble91, bed):
    """Proxmox VE snapshots no container with a bind mount point (has_feature).  An app with one in
    oci_app_mounts and a volume: the upgrade with oci_app_rollback_data snapshot is refused before any change
    (the data could not be rolled back); with keep, the upgrade takes no snapshot (the previous version stays
    stopped and unchanged), a broken version is rolled back to it, and a rollback on request starts it as it
    is.  The bind mount is there in every version, its file read from inside."""
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-bind" % TEST_REPO_NS, stateful=True)
    deploy = "lxcri.proxmox.deploy_app"
    count = data_count(double)
    shared = tempfile.mkdtemp(prefix="lxcri-bind-", dir="/var/tmp")  # reachable by the container's mapped root
    os.chmod(shared, 0o755)
    try:
        with open(os.path.join(shared, "motd"), "w") as handle:
            handle.write("shared\n")
        os.chmod(os.path.join(shared, "motd"), 0o644)
        mounts = {"oci_app_mounts": {"0": "%s,mp=/shared" % shared}}
        # a volume where the image has a file: refused by the template build, before anything is made
        passwd = installed_collection.playbook(deploy, extra_vars=app_vars(
            double, images["1"], oci_app_volumes={"accounts": {"path": "/etc/passwd"}}, **mounts))
        assert passwd.rc != 0 and "cannot create /etc/passwd: /etc/passwd is a file in the image, not a directory" \
            in failed(passwd)[-1], failed(passwd)
        assert double.backend.containers == {}
        first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **mounts))
        assert first.rc == 0, failed(first)
        v1 = containers(double)[APP][0]

        def motd(vmid):
            return subprocess.run([double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n",
                                   str(vmid), "--", "cat", "/shared/motd"], stdout=subprocess.PIPE,
                                  universal_newlines=True, check=True).stdout

        assert motd(v1) == "shared\n" and count(v1) == 1
        state = double.state()
        refused = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], **mounts))
        assert refused.rc != 0 and "Set oci_app_rollback_data: keep" in failed(refused)[-1], failed(refused)
        assert double.state() == state and containers(double) == {APP: (v1, "running")}

        keep = dict(mounts, oci_app_rollback_data="keep")
        upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], **keep))
        assert upgrade.rc == 0, failed(upgrade)
        v2 = containers(double)[APP][0]
        assert "CT %d is stopped, unchanged (no snapshot: it has bind or device mount points mp0)" % v1 in \
            shown(upgrade), shown(upgrade)
        assert not double.backend.containers[v1].snapshots and not double.backend.containers[v2].snapshots
        assert motd(v2) == "shared\n" and count(v2) == 2
        check_serving(double, v2, "2")

        broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"],
                                                                           oci_app_health_timeout=4, **keep))
        assert broken.rc != 0 and "as the new version left them" in failed(broken)[-1], failed(broken)
        assert containers(double)[APP] == (v2, "running") and count(v2) == 4  # the broken start, then v2's

        back = installed_collection.playbook("lxcri.proxmox.rollback_app", extra_vars=app_vars(double, **keep))
        assert back.rc == 0, failed(back)
        assert "runs the previous version again as it was stopped (no snapshot: it has bind or device mount " \
            "points mp0)" in shown(back), shown(back)
        assert containers(double)[APP] == (v1, "running") and count(v1) == 5 and motd(v1) == "shared\n"
        check_serving(double, v1, "1")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.slow(45)
def test_restore_brings_the_apps_data_back_to_a_snapshot_after_an_undo_point(installed_collection, zdouble91, bed):
    """oci_app_state restore: the app's volume comes back to a snapshot of its container (one taken with
    lxc_snapshot, not the newest), from a full clone at that snapshot, after an undo point (lxcri_restore_<time>);
    check mode changes nothing, a second run changes nothing, an unknown snapshot is refused before any change,
    and a rollback to the undo point brings the data of before the restore back."""
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-restore" % TEST_REPO_NS, versions=("1",), stateful=True)
    deploy = "lxcri.proxmox.deploy_app"
    volume_of, count = data_volume(double), data_count(double)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert first.rc == 0, failed(first)
    vmid = containers(double)[APP][0]

    def marker(text=None):
        path = os.path.join(double.backend.volume_path(volume_of(vmid)), "marker")
        if text is not None:
            with open(path, "w") as handle:
                handle.write(text)
        with open(path) as handle:
            return handle.read()

    connection = {"api_host": "127.0.0.1", "api_port": double.port, "api_user": "root@pam",
                  "api_password": DEFAULT_PASSWORD, "ca_path": double.cert, "vmid": vmid}
    marker("at mine\n")
    for name in ("mine", "later"):
        snap = installed_collection.module("lxcri.proxmox.lxc_snapshot", dict(connection, name=name))
        assert snap.rc == 0, snap.data
        marker("after %s\n" % name)
    restore = app_vars(double, oci_app_state="restore", oci_app_restore_snapshot="mine")
    state = double.state()
    check = installed_collection.playbook(deploy, extra_vars=restore, check=True)
    assert check.rc == 0 and double.state() == state, failed(check)
    nope = installed_collection.playbook(deploy, extra_vars=dict(restore, oci_app_restore_snapshot="nope"))
    assert nope.rc != 0 and "it has no such snapshot (it has mine, later" in failed(nope)[-1], failed(nope)
    assert double.state() == state

    done = installed_collection.playbook(deploy, extra_vars=restore)
    assert done.rc == 0, failed(done)
    assert containers(double) == {APP: (vmid, "running")} and marker() == "at mine\n" and count(vmid) == 2
    undo = list(double.backend.containers[vmid].snapshots)[-1]
    assert list(double.backend.containers[vmid].snapshots)[:2] == ["mine", "later"] and \
        undo.startswith("lxcri_restore_"), double.backend.containers[vmid].snapshots
    assert "restored CT %d's volumes (mp100) to mine; undo with lxc_snapshot (state rollback) to %s" % (vmid, undo) \
        in shown(done), shown(done)
    check_serving(double, vmid, "1")
    again = installed_collection.playbook(deploy, extra_vars=restore)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, failed(again)

    # the undo point holds the data of before the restore
    back = installed_collection.module("lxcri.proxmox.lxc_snapshot", dict(connection, name=undo, state="rollback",
                                                                          start=True))
    assert back.rc == 0, back.data
    assert marker() == "after later\n"

    # a volume newer than the snapshot stays as it is; the others are restored
    extra = installed_collection.module("lxcri.proxmox.lxc_container", dict(
        connection, mounts={"101": "local-zfs:1,mp=/extra"}, state="stopped", shutdown_timeout=2, force_stop=True))
    assert extra.rc == 0 and "mp101" in double.backend.containers[vmid].config, extra.data
    newer = installed_collection.playbook(deploy, extra_vars=dict(restore, oci_app_restore_snapshot="later"))
    assert newer.rc == 0 and marker() == "after mine\n", failed(newer)
    assert "restored CT %d's volumes (mp100) to later, not mp101 (newer than the snapshot, kept as they are)" % vmid \
        in shown(newer), shown(newer)
    assert "mp101" in double.backend.containers[vmid].config


def zfs_list(root, kind="filesystem,snapshot"):
    """Every dataset and snapshot under ``root`` (none when it does not exist)."""
    found = subprocess.run(["zfs", "list", "-H", "-t", kind, "-o", "name", "-s", "createtxg", "-r", root],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
    return found.stdout.split()


def zfs_get(name, prop):
    return subprocess.run(["zfs", "get", "-H", "-o", "value", prop, name], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()


@pytest.mark.slow(200)
def test_dataset_volumes_outlive_containers_with_a_zfs_snapshot_chain_per_version(
        installed_collection, zdouble91, zfs_dataset, bed, tmp_path):
    """Issue 17, the second kind: the image's VOLUME /data as a ZFS dataset the collection manages
    (<root>/webapp/data), bind-mounted, with a backup schedule (a zfs_snapshots job beside the node's other one).
    Refused before any change: an API token (bind mounts are root@pam's), a dataset of another app, a backup
    schedule with Proxmox VE volumes, a change of the volume's kind.  The first create fills it from the image
    (owners shifted, written by the app's user); an upgrade binds it in the new version without refilling it,
    after a ZFS snapshot named as the previous version's rollback point; a broken version is rolled back with the
    data of before it; a rollback on request copies the data back to the snapshot of before the current version,
    keeping the newer snapshots (the backup job's); absent keeps the dataset and removes the job, the next
    deployment binds it (the count goes on); restore copies it back to an older snapshot after an undo point;
    purge destroys it, named in check mode first."""
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-ds" % TEST_REPO_NS, stateful=True)
    deploy = "lxcri.proxmox.deploy_app"
    root = zfs_dataset + "/apps"
    data = root + "/webapp/data"
    dirs = {"zfs_snapshots_config_dir": str(tmp_path / "jobs"), "zfs_snapshots_unit_dir": str(tmp_path / "units"),
            "zfs_snapshots_install_root": str(tmp_path / "engine")}
    (tmp_path / "units").mkdir()
    schedule = {"oci_app_backup_schedule": {"schedule": "*:0/30", "retention": {"keep_last": 5}}}
    kind = dict(dirs, oci_app_volume_kind="dataset", oci_app_dataset_root=root)
    scheduled = dict(kind, **schedule)

    def mountpoint():
        return zfs_get(data, "mountpoint")

    def count():
        with open(os.path.join(mountpoint(), "count")) as handle:
            return int(handle.read())

    def snapshots():
        return [name.split("@")[1] for name in zfs_list(data, "snapshot")]

    def jobs():
        return sorted(os.listdir(dirs["zfs_snapshots_config_dir"]))

    # the node's own job, made by the zfs_snapshots role
    subprocess.run(["zfs", "create", zfs_dataset + "/other"], check=True)
    other = installed_collection.playbook("lxcri.proxmox.zfs_snapshots", extra_vars=dict(
        dirs, zfs_snapshots_jobs=[{"name": "other", "datasets": [zfs_dataset + "/other"]}]))
    assert other.rc == 0, failed(other)

    # an API token may not bind: refused before any change (no container, no dataset)
    double.add_token("root@pam!ci", "s3cret")
    token = app_vars(double, images["1"], pve_api_token_id="root@pam!ci", pve_api_token_secret="s3cret", **scheduled)
    del token["pve_api_password"]
    refused = installed_collection.playbook(deploy, extra_vars=token)
    assert refused.rc != 0 and "Proxmox VE allows bind and device mount points to root@pam only" in \
        failed(refused)[-1] and "acts as root@pam!ci" in failed(refused)[-1], failed(refused)
    assert double.backend.containers == {} and zfs_list(root) == [] and jobs() == ["other.json"]
    # a backup schedule for Proxmox VE volumes
    volumes = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **dict(dirs, **schedule)))
    assert volumes.rc != 0 and "back those up with a Proxmox VE backup job" in failed(volumes)[-1], failed(volumes)
    # a dataset marked for another app
    subprocess.run(["zfs", "create", "-p", "-o", "lxcri:app=other", root + "/webapp"], check=True)
    foreign = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **scheduled))
    assert foreign.rc != 0 and "these datasets belong to another app, or to none (their ZFS property lxcri:app): " \
        "%s/webapp (lxcri:app other)" % root in failed(foreign)[-1], failed(foreign)
    assert double.backend.containers == {} and zfs_list(root) == [root, root + "/webapp"]
    assert destroy_tree(root)

    check = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **scheduled), check=True)
    assert check.rc == 0 and double.backend.containers == {} and zfs_list(root) == [], failed(check)
    assert jobs() == ["other.json"]
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **scheduled))
    assert first.rc == 0, failed(first)
    v1 = containers(double)[APP][0]
    assert double.backend.containers[v1].config["mp100"] == "%s,mp=/data" % mountpoint()
    assert zfs_get(data, "lxcri:app") == "webapp" and zfs_get(data, "lxcri:populated") == "CT %d" % v1
    assert zfs_get(data, "refquota") == "1G" and count() == 1
    for name in ("seed", "count"):  # filled by the create, written by the app's user: shifted owners
        info = os.stat(os.path.join(mountpoint(), name))
        assert (info.st_uid, info.st_gid) == (101000, 101000), name
    check_serving(double, v1, "1")
    assert jobs() == ["oci-app-webapp.json", "other.json"]
    with open(os.path.join(dirs["zfs_snapshots_config_dir"], "oci-app-webapp.json")) as handle:
        job = json.load(handle)
    assert job["datasets"] == [root + "/webapp"] and job["recursive"] and job["prefix"] == "lxcri-backup-"
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **scheduled))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0 and count() == 1, failed(again)

    # the upgrade binds the dataset as it is: a file the app removed is not put back from the new image
    os.unlink(os.path.join(mountpoint(), "seed"))
    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"], **scheduled))
    assert upgrade.rc == 0, failed(upgrade)
    v2 = containers(double)[APP][0]
    assert count() == 2 and not os.path.exists(os.path.join(mountpoint(), "seed"))
    assert len(snapshots()) == 1 and re.match(r"^lxcri_[0-9a-f]{12}$", snapshots()[0]), snapshots()
    before_v2 = snapshots()[0]
    assert double.backend.containers[v1].config["mp100"] == double.backend.containers[v2].config["mp100"]
    check_serving(double, v2, "2")
    # the backup timer's run, as its service says
    with open(os.path.join(dirs["zfs_snapshots_unit_dir"], "lxcri-zfs-snapshots-oci-app-webapp.service")) as handle:
        argv = re.search(r"(?m)^ExecStart=(.*)$", handle.read()).group(1).split()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    assert len(snapshots()) == 2 and snapshots()[1].startswith("lxcri-backup-"), snapshots()

    # the volume asked as a Proxmox VE volume now: refused before any change
    state, before = double.state(), zfs_list(root)
    other_kind = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"],
                                                                           oci_app_dataset_root=root, **dirs))
    assert other_kind.rc != 0 and "CT %d binds dataset volume(s) at /data, which the app no longer names as " \
        "volumes of kind dataset" % v2 in failed(other_kind)[-1], failed(other_kind)
    assert double.state() == state and zfs_list(root) == before and count() == 2

    # a broken version: the data back to before it (2), then v2's start (3)
    broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"],
                                                                       oci_app_health_timeout=4, **scheduled))
    assert broken.rc != 0 and "with its volumes as they were before" in failed(broken)[-1], failed(broken)
    assert containers(double)[APP] == (v2, "running") and count() == 3
    snaps = snapshots()
    assert len(snaps) == 3 and snaps[0] == before_v2, snaps

    # a rollback on request: the data back to before v2 ran (1), then v1's start (2); newer snapshots stay
    back = installed_collection.playbook("lxcri.proxmox.rollback_app", extra_vars=app_vars(double, **scheduled))
    assert back.rc == 0, failed(back)
    assert containers(double) == {APP: (v1, "running")} and count() == 2 and snapshots() == snaps
    assert "its datasets are rolled back to %s" % before_v2 in shown(back), shown(back)
    check_serving(double, v1, "1")

    # absent keeps the dataset and removes the backup job; the next deployment binds the dataset
    gone = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="absent", **kind))
    assert gone.rc == 0 and double.backend.containers == {} and jobs() == ["other.json"], failed(gone)
    assert "the datasets are kept: %s (/data)" % data in shown(gone), shown(gone)
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="absent", **kind))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, failed(again)
    redeploy = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], **kind))
    assert redeploy.rc == 0 and jobs() == ["other.json"], failed(redeploy)
    v3 = containers(double)[APP][0]
    assert count() == 3 and zfs_get(data, "lxcri:populated") == "CT %d" % v1

    # restore to the snapshot of before v2 ran (count 1), after an undo point; newer snapshots stay
    restore = app_vars(double, oci_app_state="restore", oci_app_restore_snapshot=before_v2, **kind)
    before = zfs_list(root)
    check = installed_collection.playbook(deploy, extra_vars=restore, check=True)
    assert check.rc == 0 and zfs_list(root) == before and count() == 3, failed(check)
    nope = installed_collection.playbook(deploy, extra_vars=dict(restore, oci_app_restore_snapshot="nope"))
    assert nope.rc != 0 and "%s has no such snapshot (%s)" % (data, ", ".join(snaps)) in failed(nope)[-1], \
        failed(nope)
    assert zfs_list(root) == before and count() == 3
    done = installed_collection.playbook(deploy, extra_vars=restore)
    assert done.rc == 0 and containers(double)[APP] == (v3, "running") and count() == 2, failed(done)
    undo = snapshots()[-1]
    assert undo.startswith("lxcri_restore_") and snapshots() == snaps + [undo]
    assert "restored CT %d's datasets (%s at /data) to %s" % (v3, data, before_v2) in shown(done), shown(done)
    again = installed_collection.playbook(deploy, extra_vars=restore)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0 and count() == 2, failed(again)

    purge = app_vars(double, oci_app_state="absent", oci_app_purge_data=True, **kind)
    before = zfs_list(root)
    check = installed_collection.playbook(deploy, extra_vars=purge, check=True)
    assert check.rc == 0 and "would destroy: " in shown(check) and data in shown(check), shown(check)
    assert zfs_list(root) == before and containers(double)[APP] == (v3, "running")
    purged = installed_collection.playbook(deploy, extra_vars=purge)
    assert purged.rc == 0 and double.backend.containers == {} and zfs_list(root) == [root], failed(purged)
    assert jobs() == ["other.json"]


@pytest.mark.slow(100)
def test_snapshots_that_hold_an_apps_volumes_stop_an_upgrade_before_any_change(installed_collection, zdouble91, bed):
    """Proxmox VE moves no volume a snapshot references, and frees only a removed container's own volumes.  So an
    upgrade is refused before any change while a snapshot of the running version references its volume, and
    while an older previous version it would remove has a snapshot that alone holds a volume (a restore's undo
    point keeps the volume it replaced)."""
    double = zdouble91
    images = push(bed["registry"]["host"], "%s/webapp-pinned" % TEST_REPO_NS, versions=("1", "2"), stateful=True)
    deploy = "lxcri.proxmox.deploy_app"
    volume_of = data_volume(double)
    first = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert first.rc == 0, failed(first)
    v1 = containers(double)[APP][0]
    connection = {"api_host": "127.0.0.1", "api_port": double.port, "api_user": "root@pam",
                  "api_password": DEFAULT_PASSWORD, "ca_path": double.cert}

    # a snapshot of the running version pins its volume
    pin = installed_collection.module("lxcri.proxmox.lxc_snapshot", dict(connection, vmid=v1, name="pin"))
    assert pin.rc == 0, pin.data
    state = double.state()
    pinned = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]))
    assert pinned.rc != 0 and "the snapshot(s) pin (%s) of CT %d reference its volumes" % (volume_of(v1), v1) in \
        failed(pinned)[-1], failed(pinned)
    assert double.state() == state

    # restored to it: the undo point keeps the volume it replaced, and the pin no longer references the running one
    original = volume_of(v1)
    restore = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="restore",
                                                                        oci_app_restore_snapshot="pin"))
    assert restore.rc == 0 and volume_of(v1) != original, failed(restore)
    upgrade = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["2"]))
    assert upgrade.rc == 0, failed(upgrade)
    v2 = containers(double)[APP][0]
    # the next upgrade would remove CT v1, the previous version before last, whose snapshots alone hold a volume
    state = double.state()
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"]))
    assert again.rc != 0 and "the upgrade (older previous versions go) would remove CT %d, whose snapshots alone " \
        "hold volumes (CT %d snapshot pin: %s" % (v1, v1, original) in failed(again)[-1], failed(again)
    assert double.state() == state and containers(double)[APP] == (v2, "running")
    # purged, those go too
    purged = installed_collection.playbook(deploy, extra_vars=app_vars(double, oci_app_state="absent",
                                                                       oci_app_purge_data=True))
    assert purged.rc == 0 and double.backend.containers == {}, failed(purged)
    assert not subvols(double.backend.storages["local-zfs"]["pool"])


def test_runtime_rules_route_apps_by_name(installed_collection, zdouble91, tmp_path):
    """oci_app_runtime auto: the first rule whose glob matches the app's name picks its runtime (lxc: the API's
    containers are read; oci: the node's oci_container); an explicit runtime wins; a bad rule and what the oci
    runtime does not do are refused before anything changes."""
    rules = [{"pattern": "db-*", "runtime": "lxc"}, {"pattern": "*-exporter", "runtime": "oci"}]
    options = {"unit_dir": str(tmp_path / "units"), "base_dir": str(tmp_path / "oci"),
               "volumes_dir": str(tmp_path / "volumes")}

    def run(name, **extra):
        values = app_vars(zdouble91, oci_app_name=name, oci_app_state="absent", oci_app_runtime_rules=rules,
                          oci_app_oci_options=options)
        values.update(extra)
        return installed_collection.playbook("lxcri.proxmox.deploy_app", extra_vars=values)

    def tasks(result):
        return [t["task"] for t in result.results["tasks"]]

    lxc = run("db-main")
    assert lxc.rc == 0, lxc
    assert "Find the app's containers and what this Proxmox VE supports" in tasks(lxc)
    assert not [t for t in tasks(lxc) if t.startswith("Remove the app's container (")]
    oci = run("node-exporter")
    assert oci.rc == 0, oci
    assert "Remove the app's container (keeping its volumes)" in tasks(oci)
    assert "Find the app's containers and what this Proxmox VE supports" not in tasks(oci)
    assert shown(oci) == "node-exporter: absent already, nothing to remove"
    forced = run("node-exporter", oci_app_runtime="lxc")
    assert forced.rc == 0 and "Find the app's containers and what this Proxmox VE supports" in tasks(forced)
    fallback = run("web")  # no rule matches: lxc
    assert fallback.rc == 0 and "Find the app's containers and what this Proxmox VE supports" in tasks(fallback)

    bad = run("web", oci_app_runtime_rules=[{"pattern": "w*", "runtime": "docker"}])
    assert bad.rc != 0 and "came out as 'invalid rule" in bad.stdout, bad.stdout[-2000:]
    restore = run("node-exporter", oci_app_state="restore")
    assert restore.rc != 0 and "oci_app_runtime oci" in restore.stdout and "nothing was changed" in restore.stdout
    assert not os.path.exists(str(tmp_path / "oci")) and not os.path.exists(str(tmp_path / "units"))
