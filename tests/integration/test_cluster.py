"""The collection on a Proxmox VE cluster (issue 16): a three-node double (pve1 and pve2 run 9.1, pve3 runs 8) with
real LXC and ZFS, driven through real ansible-playbook runs.

Placement with ``node: auto`` (free memory, candidates, where a node-local template is), a template on the shared
storage, the cluster listing with each node's state, a node taken offline before and in the middle of a play,
migration of a running container with its data and its exact init argv (there and back), and a refused migration
(a bind mount) that changes nothing.
"""

import json
import os
import subprocess
import time

import pytest

from lxcri_testbed import TEST_REPO_NS
from lxcri_testbed.ansible import write_pve_play
from lxcri_testbed.api import Api
from lxcri_testbed.app_images import page, push
from lxcri_testbed.lxc import read_init
from lxcri_testbed.pct_shim import wrapper as pct_wrapper
from lxcri_testbed.oci_build import Layer, write_image
from pve_double.server import DEFAULT_PASSWORD, Double

pytestmark = pytest.mark.integration

GIB = 1 << 30


def play(tmp_path, double, name, tasks):
    return write_pve_play(tmp_path, double, name, tasks)


def stage_free_memory(double, **free_gib):
    """Make each named node report this much free memory (pvestatd's figures, which placement reads)."""
    for node, gib in free_gib.items():
        total = double.backends[node].node_usage()["maxmem"]
        double.backends[node].usage_override = {"maxmem": total, "mem": max(total - gib * GIB, 0)}


def init_of(double, vmid):
    backend = double.owner(vmid)
    state, pid = backend.lxc_state(backend.containers[vmid])
    assert state == "running", (vmid, state)
    return read_init(pid)


def failed_msg(run):
    return " ".join(str(t["result"].get("msg")) for t in run.results["tasks"] if t["status"] != "ok")


@pytest.mark.slow(60)
def test_placement_listing_and_offline_nodes(installed_collection, zcluster, tmp_path):
    double = zcluster
    double.add_busybox_template("base.tar.zst", tmp_path, storage="shared")
    double.add_busybox_template("pve1only.tar.zst", tmp_path, node="pve1")  # local:vztmpl on pve1 alone
    stage_free_memory(double, pve1=1, pve2=6, pve3=3)
    place = play(tmp_path, double, "place.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 300
            hostname: auto-a
            node: auto
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            state: started
          register: a
        - lxcri.proxmox.lxc_container:
            vmid: 301
            hostname: auto-b
            node: auto
            node_candidates: [pve1, pve3]
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            state: started
          register: b
        - lxcri.proxmox.lxc_container:
            vmid: 302
            hostname: auto-c
            node: auto
            ostemplate: local:vztmpl/pve1only.tar.zst
            storage: local-zfs
            disk_size: 1
          register: c
        """)
    run = installed_collection.playbook(place)
    assert run.rc == 0, failed_msg(run)
    a, b, c = run.task_results()
    # the most free memory; among the candidates; where the node-local template is
    assert (a["node"], a["placement"]) == ("pve2", {"node": "pve2", "left_out": {}})
    assert b["node"] == "pve3" and b["status"] == "running"
    assert c["node"] == "pve1"
    assert c["placement"]["left_out"] == {"pve2": "template local:vztmpl/pve1only.tar.zst is not on its local storage",
                                          "pve3": "template local:vztmpl/pve1only.tar.zst is not on its local storage"}
    assert [double.cluster.owner(v) for v in (300, 301, 302)] == ["pve2", "pve3", "pve1"]
    # the UPIDs name the node that ran the task; the container's volume is on its node's own pool
    assert all(t.node == "pve3" for t in double.backends["pve3"].tasks.tasks.values())
    pool3 = double.backends["pve3"].storages["local-zfs"]["pool"]
    assert subprocess.run(["zfs", "list", "-H", pool3 + "/subvol-301-disk-0"], check=False).returncode == 0
    # found again by vmid wherever they are: nothing placed or created twice
    again = installed_collection.playbook(place)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, failed_msg(again)

    info = play(tmp_path, double, "info.yml", """\
        - lxcri.proxmox.lxc_container_info:
            config: false
          register: listed
        """)
    run = installed_collection.playbook(info)
    listed = run.task_results()[0]
    assert [(c["vmid"], c["node"], c["status"], c["node_status"]) for c in listed["containers"]] == [
        (300, "pve2", "running", "online"), (301, "pve3", "running", "online"), (302, "pve1", "stopped", "online")]
    assert listed["nodes"] == [{"node": n, "status": "online"} for n in ("pve1", "pve2", "pve3")]

    # pve3 goes offline: listed as offline, its container unknown; placement leaves it out; a task on it fails
    # naming the node, and changes nothing
    double.cluster.set_online("pve3", False)
    run = installed_collection.playbook(info)
    listed = run.task_results()[0]
    assert run.rc == 0, failed_msg(run)
    assert {"node": "pve3", "status": "offline"} in listed["nodes"]
    entry = [c for c in listed["containers"] if c["vmid"] == 301][0]
    assert entry["node_status"] == "offline" and entry["status"] == "unknown"
    stop = play(tmp_path, double, "stop.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 301
            state: stopped
        """)
    run = installed_collection.playbook(stop)
    assert run.rc != 0 and "node pve3 does not answer the API host" in failed_msg(run), failed_msg(run)
    assert double.running(301)
    stage_free_memory(double, pve3=60)  # the most free memory, but offline
    offline_place = play(tmp_path, double, "offline-place.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: auto-d
            node: auto
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
          register: d
        """)
    run = installed_collection.playbook(offline_place)
    assert run.rc == 0, failed_msg(run)
    d = run.task_results()[0]
    assert d["node"] == "pve2" and d["placement"]["left_out"] == {"pve3": "offline"}

    # a node that goes offline in the middle of a task: the container made there cannot be started nor removed;
    # the error names the node and the container left; the next run, with the node back, finishes it (no second
    # container)
    double.cluster.set_online("pve3", True)
    midway = play(tmp_path, double, "midway.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 305
            hostname: midway
            node: pve3
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            state: started
          register: m
        """)
    double.before_next("POST", "/nodes/{node}/lxc/{vmid}/status/start",
                       lambda: double.cluster.set_online("pve3", False))
    run = installed_collection.playbook(midway)
    message = failed_msg(run)
    assert run.rc != 0 and "node pve3 does not answer the API host" in message, message
    assert "CT 305 was created by this task and is LEFT on node pve3" in message, message
    double.cluster.set_online("pve3", True)
    run = installed_collection.playbook(midway)
    assert run.rc == 0, failed_msg(run)
    assert run.task_results()[0]["actions"] == ["started"] and double.running(305)
    assert sorted(double.backends["pve3"].containers) == [301, 305]
    assert double.response_errors == []


@pytest.mark.slow(60)
def test_migration_moves_a_running_container_with_its_data_and_argv_and_refuses_a_bind_mount(
        installed_collection, zcluster, tmp_path):
    double = zcluster
    double.add_busybox_template("base.tar.zst", tmp_path, storage="shared", init=Double.HALTING_INIT)
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 310
            hostname: app
            node: pve1
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            mounts:
              "0": local-zfs:1,mp=/data
            state: started
        - lxcri.proxmox.lxc_container:
            vmid: 311
            hostname: bound
            node: pve1
            ostemplate: shared:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            mounts:
              "0": %s,mp=/srv
        """ % host_dir)
    run = installed_collection.playbook(create)
    assert run.rc == 0, failed_msg(run)
    volume = double.backends["pve1"].volume_path("local-zfs:subvol-310-disk-1")
    with open(os.path.join(volume, "kept.txt"), "w") as handle:
        handle.write("data of v1\n")
    before = init_of(double, 310)

    move = play(tmp_path, double, "move.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 310
            node: "{{ target }}"
            migrate: true
            migrate_restart: "{{ restart | default(false) }}"
            shutdown_timeout: 10
            state: started
          register: moved
        """)
    # running, without migrate_restart: refused before any change
    state = double.state()
    run = installed_collection.playbook(move, extra_vars={"target": "pve2"})
    assert run.rc != 0 and "set migrate_restart: true" in failed_msg(run)
    assert double.state() == state and double.cluster.owner(310) == "pve1" and double.running(310)
    # check mode names the move and changes nothing
    run = installed_collection.playbook(move, check=True, extra_vars={"target": "pve2", "restart": True})
    assert run.rc == 0 and run.task_results()[0]["actions"] == ["migrated from pve1 to pve2 (restarted)"]
    assert double.state() == state

    for source, target in (("pve1", "pve2"), ("pve2", "pve1")):
        run = installed_collection.playbook(move, extra_vars={"target": target, "restart": True})
        assert run.rc == 0, failed_msg(run)
        moved = run.task_results()[0]
        assert moved["node"] == target and moved["actions"] == ["migrated from %s to %s (restarted)" % (source, target)]
        assert double.cluster.owner(310) == target and double.running(310)
        after = init_of(double, 310)
        assert after.argv == before.argv and after.cwd == before.cwd and after.uid == before.uid
        with open("/proc/%d/root/data/kept.txt" % after.pid) as handle:
            assert handle.read() == "data of v1\n"  # the data volume came along (zfs send | zfs recv)
        pools = dict((n, double.backends[n].storages["local-zfs"]["pool"]) for n in (source, target))
        assert subprocess.run(["zfs", "list", "-H", pools[source] + "/subvol-310-disk-1"], check=False,
                              stderr=subprocess.DEVNULL).returncode != 0  # freed on the source
        again = installed_collection.playbook(move, extra_vars={"target": target, "restart": True})
        assert again.rc == 0 and again.stats["localhost"]["changed"] == 0

    # a local bind mount cannot go along: Proxmox VE refuses, the container stays as it was
    state = double.state()
    refused = play(tmp_path, double, "refused.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 311
            node: pve2
            migrate: true
        """)
    run = installed_collection.playbook(refused)
    message = failed_msg(run)
    assert run.rc != 0 and "cannot migrate local bind mount point 'mp0'" in message, message
    assert "Proxmox VE left it on node pve1" in message
    assert double.state() == state and double.cluster.owner(311) == "pve1"
    # without migrate, a container on another node is reported and left alone
    stay = play(tmp_path, double, "stay.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 311
            node: pve2
          register: stayed
        """)
    run = installed_collection.playbook(stay)
    assert run.rc == 0 and run.stats["localhost"]["changed"] == 0
    assert "CT 311 is on node pve1, not on node pve2" in json.dumps(run.task_results()[0].get("warnings"))
    assert ("POST", "/nodes/{node}/lxc/{vmid}/migrate") in double.served and double.response_errors == []


@pytest.mark.slow(60)
def test_a_template_reaches_every_node_once_per_node_or_once_on_shared_storage(
        installed_collection, zcluster, registry_image, tmp_path):
    double = zcluster
    layout = str(tmp_path / "layout")
    root_image = write_image(layout, "app", [Layer().dir("bin").busybox(("sh", "sleep"))], {"Cmd": ["/bin/sleep", "3600"]})
    distribute = play(tmp_path, double, "distribute.yml", """\
        - lxcri.proxmox.oci_template:
            image: "{{ image }}"
            registry_tls_verify: false
            storage: "{{ storage }}"
            nodes: "{{ nodes }}"
            cache_dir: %s
          register: tmpl
        """ % (tmp_path / "cache"))
    local_all = {"image": root_image, "storage": "local", "nodes": ["all"]}
    # node-local storage: one upload per node; format auto follows the oldest node (pve3 runs 8: no OCI import)
    run = installed_collection.playbook(distribute, extra_vars=local_all)
    assert run.rc == 0, failed_msg(run)
    tmpl = run.task_results()[0]
    assert tmpl["nodes"] == ["pve1", "pve2", "pve3"] and tmpl["shared"] is False
    assert tmpl["uploaded_to"] == ["pve1", "pve2", "pve3"]
    assert tmpl["format"] == "vztmpl" and "node pve3" in tmpl["format_choice"]
    for node in ("pve1", "pve2", "pve3"):
        path = double.backends[node].volume_path(tmpl["volid"])
        assert os.path.getsize(path) == tmpl["size"], node
    again = installed_collection.playbook(distribute, extra_vars=local_all)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, failed_msg(again)
    # a node that lost its copy gets only its own upload
    os.unlink(double.backends["pve2"].volume_path(tmpl["volid"]))
    run = installed_collection.playbook(distribute, extra_vars=local_all)
    assert run.rc == 0 and run.task_results()[0]["uploaded_to"] == ["pve2"], failed_msg(run)

    # an image that runs as a user, which the generated init cannot switch to (no setpriv in it): an OCI archive
    # would do on 9.1, but pve3 runs 8; refused before anything is uploaded
    user_all = dict(local_all, image=registry_image.refs["open"])
    run = installed_collection.playbook(distribute, extra_vars=user_all)
    assert run.rc != 0 and "Proxmox VE 8.1 on node pve3 has no OCI import" in failed_msg(run), failed_msg(run)
    assert not [n for n in ("pve1", "pve2", "pve3") if any(
        "busybox" in name for name in os.listdir(os.path.dirname(double.backends[n].volume_path("local:vztmpl/x"))))]

    # a shared storage: one upload serves every node; the 9.1 nodes alone take the OCI archive
    run = installed_collection.playbook(distribute, extra_vars={"image": registry_image.refs["open"],
                                                                "storage": "shared", "nodes": ["pve1", "pve2"]})
    assert run.rc == 0, failed_msg(run)
    shared = run.task_results()[0]
    assert shared["shared"] is True and shared["nodes"] == ["pve1"] and shared["uploaded_to"] == ["pve1"]
    assert shared["format"] == "oci-archive"
    # containers from it on both nodes
    deploy = play(tmp_path, double, "deploy.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: "{{ item.vmid }}"
            node: "{{ item.node }}"
            oci: %s
            storage: local-zfs
            disk_size: 1
            state: started
          loop: [{vmid: 320, node: pve1}, {vmid: 321, node: pve2}]
        """ % json.dumps(shared))
    run = installed_collection.playbook(deploy)
    assert run.rc == 0, failed_msg(run)
    assert double.running(320) and double.running(321)
    assert init_of(double, 320).argv == init_of(double, 321).argv

    # an offline node is refused before anything is built or uploaded
    double.cluster.set_online("pve3", False)
    run = installed_collection.playbook(distribute, extra_vars=dict(local_all, image=registry_image.refs["open"]))
    assert run.rc != 0 and "node pve3 is offline" in failed_msg(run) and "nothing was uploaded" in failed_msg(run)


def app_inventory(tmp_path, pve2_vars=None, others=None):
    """localhost and the three nodes as inventory hosts (local connections), the nodes in group lxcri_nodes; each
    node host has its own ansible_host, which a task delegated to it names in its result."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    nodes = dict(("pve%d" % n, dict(local, ansible_host="127.0.0.%d" % n)) for n in (1, 2, 3))
    for name, values in nodes.items():
        values.update((pve2_vars if name == "pve2" else others) or {})
    path = tmp_path / "nodes.yml"
    path.write_text(json.dumps({"all": {"hosts": {"localhost": local},
                                        "children": {"lxcri_nodes": {"hosts": nodes}}}}))
    return str(path)


def app_vars(double, **extra):
    """oci_app's variables for the cluster double; the health command runs with lxc-attach on the node's LXC path
    ({node})."""
    values = {
        "pve_api_host": "127.0.0.1", "pve_api_port": double.port, "pve_api_user": "root@pam",
        "pve_api_password": DEFAULT_PASSWORD, "pve_ca_path": double.cert,
        "oci_app_template_storage": "local", "oci_app_storage": "local-zfs",
        "oci_app_disk_size": 1, "oci_app_memory": 256, "oci_app_registry_tls_verify": False,
        "oci_app_template_cache_dir": str(double.backend.root) + "/cache",
        "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
        "oci_app_health_exec": [double.backend.lxc_tools.tool("lxc-attach"), "-P",
                                os.path.dirname(double.backend.root) + "/{node}/lxc", "-n", "{vmid}", "--"],
        "oci_app_health_timeout": 20, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 2,
        # no metrics: parallel tests deploy apps of the same name, and this machine has node_exporter's directory
        # (tests/integration/test_metrics.py and the oci_app molecule scenario write them)
        "oci_app_metrics_dir": "",
    }
    values.update(extra)
    return values


def hostnames(double, node):
    return sorted(ct.config.get("hostname") for ct in double.backends[node].containers.values())


def health_hosts(run):
    """The inventory host each health command ran on (delegate_to)."""
    by_address = {"127.0.0.1": "pve1", "127.0.0.2": "pve2", "127.0.0.3": "pve3"}
    return [by_address.get((t["result"].get("_ansible_delegated_vars") or {}).get("ansible_host"), t["host"])
            for t in run.results["tasks"] if t["task"].startswith("Run the health command") and t["status"] == "ok"]


@pytest.mark.slow(120)
def test_oci_app_runs_on_its_node_and_checks_health_there(installed_collection, zcluster, tmp_path, bed):
    double = zcluster
    images = push(bed["registry"]["host"], "%s/webapp-cluster" % TEST_REPO_NS, versions=("1", "2"))
    inventory = app_inventory(tmp_path)
    deploy = "lxcri.proxmox.deploy_app"

    # a chosen node: the template goes to its local storage, the health command runs there
    run = installed_collection.playbook(deploy, inventory=inventory, extra_vars=app_vars(
        double, oci_app_name="web", oci_app_image=images["1"], oci_app_node="pve2"))
    assert run.rc == 0, failed_msg(run)
    assert hostnames(double, "pve2") == ["web"] and health_hosts(run) == ["pve2"]
    web = list(double.backends["pve2"].containers.values())[0]
    assert double.running(web.vmid) and page("1") in serving(double, web.vmid)

    # auto: the candidate with the most free memory
    stage_free_memory(double, pve1=8, pve2=1, pve3=30)
    run = installed_collection.playbook(deploy, inventory=inventory, extra_vars=app_vars(
        double, oci_app_name="api", oci_app_image=images["1"], oci_app_node="auto",
        oci_app_node_candidates=["pve1", "pve2"]))
    assert run.rc == 0, failed_msg(run)
    assert hostnames(double, "pve1") == ["api"] and health_hosts(run) == ["pve1"]
    assert [n for n in os.listdir(os.path.join(double.backends["pve1"].storages["local"]["path"], "template",
                                               "cache")) if "webapp" in n]

    # an upgrade stays on the app's node, whatever oci_app_node says now; found there, not made twice
    run = installed_collection.playbook(deploy, inventory=inventory, extra_vars=app_vars(
        double, oci_app_name="web", oci_app_image=images["2"], oci_app_node="pve1"))
    assert run.rc == 0, failed_msg(run)
    assert hostnames(double, "pve2") == ["web", "web-prev"] and hostnames(double, "pve1") == ["api"]
    new = [ct for ct in double.backends["pve2"].containers.values() if ct.config["hostname"] == "web"][0]
    assert page("2") in serving(double, new.vmid) and health_hosts(run) == ["pve2"]

    # the health command through the connection plugin lxcri.proxmox.pct (pct here: the play's host stands for
    # pve2), as an argument list: what oci_app_health_via auto does with the default oci_app_health_exec
    roots = [double.backends[n].root for n in ("pve1", "pve2", "pve3")]
    run = installed_collection.playbook(deploy, inventory=inventory, extra_vars=app_vars(
        double, oci_app_name="web", oci_app_image=images["2"], oci_app_health_exec=["pct", "exec", "{vmid}", "--"],
        oci_app_node_hosts={"pve2": "localhost"}, ansible_pct_command=pct_wrapper(tmp_path, roots)))
    assert run.rc == 0 and run.stats["localhost"]["changed"] == 0, failed_msg(run)
    via = [t for t in run.results["tasks"] if t["task"].endswith("through the pct connection")]
    assert via and via[0]["status"] == "ok" and page("2") in via[0]["result"]["stdout"], via

    # the running api app moves to pve2 with a restart, and serves there as the same process line
    api = list(double.backends["pve1"].containers.values())[0]
    before = init_of(double, api.vmid)
    move = play(tmp_path, double, "move-api.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: %d
            node: pve2
            migrate: true
            migrate_restart: true
            shutdown_timeout: 5
            force_stop: true
        """ % api.vmid)
    run = installed_collection.playbook(move)
    assert run.rc == 0, failed_msg(run)
    assert double.cluster.owner(api.vmid) == "pve2" and page("1") in serving(double, api.vmid)
    assert init_of(double, api.vmid).argv == before.argv
    # the role finds it on its new node: nothing to do
    run = installed_collection.playbook(deploy, inventory=inventory, extra_vars=app_vars(
        double, oci_app_name="api", oci_app_image=images["1"], oci_app_node="auto"))
    assert run.rc == 0 and run.stats["localhost"]["changed"] == 0, failed_msg(run)
    assert health_hosts(run) == ["pve2"]

    # the inventory plugin lists the apps of the whole cluster, grouped by node and by app
    source = tmp_path / "cluster.pve.yml"
    source.write_text("plugin: lxcri.proxmox.pve\napi_host: 127.0.0.1\napi_port: %d\napi_user: root@pam\n"
                      "api_password: %s\nca_path: %s\n" % (double.port, DEFAULT_PASSWORD, double.cert))
    proc, listed = installed_collection.inventory(str(source))
    assert proc.returncode == 0 and listed, proc.stderr
    assert sorted(listed["pve_node_pve2"]["hosts"]) == ["api", "web", "web-prev"]
    assert "pve_node_pve1" not in listed and "pve_node_pve3" not in listed
    assert sorted(listed["pve_app_web"]["hosts"]) == ["web", "web-prev"] and listed["pve_app_api"]["hosts"] == ["api"]
    assert listed["_meta"]["hostvars"]["web"]["pve_node"] in ("pve2", {"__ansible_unsafe": "pve2"})


@pytest.mark.slow(120)
def test_deploy_app_nodes_goes_node_by_node_and_stops_at_the_first_failed_health_check(
        installed_collection, zcluster, tmp_path, bed):
    double = zcluster
    images = push(bed["registry"]["host"], "%s/webapp-agent" % TEST_REPO_NS, versions=("1",))
    # pve2's health command fails
    # pve2's health command fails (a host variable: the extra variables would override it)
    inventory = app_inventory(tmp_path, pve2_vars={"oci_app_health_command": ["sh", "-c", "exit 1"]})
    variables = app_vars(double, lxcri_app_name="agent", oci_app_image=images["1"], oci_app_health_timeout=3)
    healthy = variables.pop("oci_app_health_command")
    inventory = app_inventory(tmp_path, pve2_vars={"oci_app_health_command": ["sh", "-c", "exit 1"]},
                              others={"oci_app_health_command": healthy})
    run = installed_collection.playbook("lxcri.proxmox.deploy_app_nodes", inventory=inventory, extra_vars=variables)
    assert run.rc != 0
    assert hostnames(double, "pve1") == ["agent-pve1"] and double.running(
        list(double.backends["pve1"].containers)[0])
    # the failed first deployment is left as it is, for a look; the run stopped there
    assert hostnames(double, "pve2") == ["agent-pve2"] and run.stats["pve2"]["failures"] == 1
    assert hostnames(double, "pve3") == [] and "pve3" not in run.stats  # never started
    assert health_hosts(run)[0] == "pve1"


def serving(double, vmid):
    backend = double.owner(vmid)
    return subprocess.run([backend.lxc_tools.tool("lxc-attach"), "-P", backend.lxc_path, "-n", str(vmid), "--",
                           "wget", "-qO-", "http://127.0.0.1:8080/"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False).stdout


def test_the_doubles_cluster_rules_for_clone_migrate_offline_targets_and_ha(installed_collection, zcluster, tmp_path):
    """pve-container clone_vm with target, Migrate.pm's refusals of a linked clone and of an unreachable target, and
    an HA-managed container's start through a hastart request (the LRM starts it a round later)."""
    double = zcluster
    api = Api(double)
    double.add_busybox_template("base.tar.zst", tmp_path, storage="shared", init=Double.HALTING_INIT)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=330, ostemplate="shared:vztmpl/base.tar.zst",
                    rootfs="local-zfs:1") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc", vmid=331, ostemplate="shared:vztmpl/base.tar.zst",
                    rootfs="shared:1") == "OK"
    # a vmid is the cluster's: taken on pve1, refused on pve2, skipped by nextid
    status, body = api.call("POST", "/nodes/pve2/lxc", vmid=330, ostemplate="shared:vztmpl/base.tar.zst")
    assert status == 500 and body["message"] == "CT 330 already exists on node 'pve1'"
    # clone to another node: only from and to shared storage
    status, body = api.call("POST", "/nodes/pve1/lxc/330/clone", newid=332, target="pve2", full=1, storage="local-zfs")
    assert status == 500 and body["message"] == "can't clone to non-shared storage 'local-zfs'", body
    status, body = api.call("POST", "/nodes/pve1/lxc/330/clone", newid=332, target="pve2", full=1, storage="shared")
    assert status == 500 and body["message"] == "can't clone CT to node 'pve2' (CT uses local storage)", body
    assert api.task("POST", "/nodes/pve1/lxc/331/clone", newid=332, target="pve2", full=1, storage="shared") == "OK"
    assert double.cluster.owner(332) == "pve2"
    # lxc_container clones to its node: clone_vm's target
    clone = play(tmp_path, double, "clone.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: "{{ vmid }}"
            clone: "{{ source }}"
            node: pve2
            full: true
            storage: shared
          register: cloned
        """)
    run = installed_collection.playbook(clone, extra_vars={"vmid": 334, "source": 331})
    assert run.rc == 0 and run.task_results()[0]["node"] == "pve2", failed_msg(run)
    assert double.cluster.owner(334) == "pve2"
    run = installed_collection.playbook(clone, extra_vars={"vmid": 335, "source": 330})
    assert run.rc != 0 and "can't clone CT to node 'pve2' (CT uses local storage)" in failed_msg(run)
    assert double.cluster.owner(335) is None
    # a linked clone cannot move: its base stays behind
    assert api.call("POST", "/nodes/pve1/lxc/330/template")[0] == 200  # answers null, as PVE: poll the config
    for dummy in range(100):
        if api.call("GET", "/nodes/pve1/lxc/330/config")[1]["data"].get("template") == 1:
            break
        time.sleep(0.1)
    assert api.task("POST", "/nodes/pve1/lxc/330/clone", newid=333) == "OK"
    status, body = api.call("POST", "/nodes/pve1/lxc/333/migrate", target="pve2")
    assert status == 200
    assert api.wait(body["data"]) == "can't migrate CT - check log"
    assert any("clone of 'basevol-330-disk-0'" in line for line in api.log(body["data"]))
    assert double.cluster.owner(333) == "pve1"
    # an unreachable target: the task fails before anything moves
    double.cluster.set_online("pve3", False)
    status, body = api.call("POST", "/nodes/pve1/lxc/331/migrate", target="pve3")
    assert api.wait(body["data"]) == "Can't connect to destination address using public key"
    assert double.cluster.owner(331) == "pve1"
    status, body = api.call("GET", "/nodes/pve3/lxc")
    assert status == 595
    # HA: the start is a request to ha-manager; the container runs a CRM round later
    double.backend.ha_resources.add(331)
    assert api.call("GET", "/cluster/ha/resources")[1]["data"][0]["sid"] == "ct:331"
    status, body = api.call("POST", "/nodes/pve1/lxc/331/status/start")
    assert ":hastart:331:" in body["data"] and api.wait(body["data"]) == "OK"
    assert not double.running(331)
    for dummy in range(100):
        if double.running(331):
            break
        time.sleep(0.1)
    assert double.running(331)
    # lxc_container waits for ha-manager to do what it was asked, and reports the state it reached
    stop = play(tmp_path, double, "ha-stop.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 331
            state: stopped
            shutdown_timeout: 5
        """)
    run = installed_collection.playbook(stop)
    assert run.rc == 0, failed_msg(run)
    result = run.task_results()[0]
    assert result["status"] == "stopped" and "waited for ha-manager" in result["actions"], result["actions"]
    assert not double.running(331)
    assert double.response_errors == []
