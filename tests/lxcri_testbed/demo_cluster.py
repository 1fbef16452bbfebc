"""``make demo-cluster``: placement and migration on a three-node cluster (the API test double, real LXC and ZFS).

The double runs pve1 and pve2 in 9.1 mode and pve3 in 8 mode (a cluster mid-upgrade), each node with its own
LXC path and ``local-zfs`` dataset root, and a ``shared`` dir storage.  The demo:

1. deploys the sample webapp with ``oci_app_node=auto`` among pve1 and pve2 (the most free memory wins; the
   template goes to that node first) and a second app the same way: each lands where there is room;
2. lists the cluster (``lxc_container_info``): each container's node and each node's state;
3. moves the first app's running container to the other node with ``lxc_container``'s ``migrate`` and
   ``migrate_restart`` (its volumes go by ``zfs send``) and fetches its page there;
4. stops the double, which removes its containers, datasets and files.

    python -m lxcri_testbed.demo_cluster [--port 18008] [--keep]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from .app_images import push
from .bed import load_state
from .demo import PASSWORD, playbook, say
from .lxc import tools_for

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLE_DIR = "/var/lib/lxcri-testbed/pve-double-cluster-demo"
NODES = ("pve1", "pve2", "pve3")


def module(name, args, connection):
    """An ad hoc module run on localhost; returns its result."""
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "lxcri.proxmox." + name,
            "-a", json.dumps(dict(connection, **args)), "-o"]
    print("$ ansible localhost -m lxcri.proxmox.%s -a '%s'" % (name, json.dumps(args)))
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)
    out = proc.stdout.strip()
    try:
        result = json.loads(out.split(" => ", 1)[1])
    except (IndexError, ValueError):
        raise SystemExit("demo: %s gave no result:\n%s" % (name, out))
    if proc.returncode != 0:
        raise SystemExit("demo: %s failed: %s" % (name, result.get("msg")))
    return result


def page(vmid, node, tools):
    return subprocess.run([tools.tool("lxc-attach"), "-P", os.path.join(DOUBLE_DIR, "nodes", node, "lxc"), "-n",
                           str(vmid), "--", "wget", "-qO-", "http://127.0.0.1:8080/"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False).stdout.strip()


def listing(connection):
    info = module("lxc_container_info", {"config": False}, connection)
    for node in info["nodes"]:
        print("  node %-5s %s" % (node["node"], node["status"]))
    for ct in info["containers"]:
        print("  CT %-4s %-8s on %-5s %s" % (ct["vmid"], ct["hostname"], ct["node"], ct["status"]))
    return info


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m lxcri_testbed.demo_cluster")
    parser.add_argument("--port", type=int, default=18008)
    parser.add_argument("--keep", action="store_true", help="leave the double and the apps running at the end")
    args = parser.parse_args(argv)
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is not up: make testbed-up")
    tests = os.path.dirname(HERE)
    pidfile = os.path.join(tempfile.gettempdir(), "lxcri-demo-cluster-double.pid")
    tools = tools_for("6.0")  # the LXC of the 9.1 nodes, where the apps run
    connection = {"api_host": "127.0.0.1", "api_port": args.port, "api_user": "root@pam", "api_password": PASSWORD,
                  "validate_certs": False}

    say("Starting a three-node Proxmox VE cluster (the API test double: pve1 and pve2 on 9.1, pve3 on 8)")
    subprocess.run([sys.executable, "-m", "pve_double", "--detach", "--fresh", "--nodes", ",".join(NODES),
                    "--node-mode", "pve3=8", "--resources-lag", "0", "--port", str(args.port), "--dir", DOUBLE_DIR,
                    "--pidfile", pidfile], cwd=tests, check=True)
    try:
        images = push(state["registry"]["host"], versions=("1",))
        settings = {
            "pve_api_host": "127.0.0.1", "pve_api_port": args.port, "pve_api_user": "root@pam",
            "pve_api_password": PASSWORD, "pve_validate_certs": False,
            "oci_app_node": "auto", "oci_app_node_candidates": ["pve1", "pve2"],
            "oci_app_template_storage": "local", "oci_app_storage": "local-zfs", "oci_app_disk_size": 1,
            "oci_app_memory": 256, "oci_app_registry_tls_verify": False, "oci_app_image": images["1"],
            "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
            # the health command runs with lxc-attach on the node's LXC path ({node}), as pct exec on the node
            "oci_app_health_exec": [tools.tool("lxc-attach"), "-P", os.path.join(DOUBLE_DIR, "nodes", "{node}", "lxc"),
                                    "-n", "{vmid}", "--"],
            "oci_app_health_timeout": 20, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 10,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="lxcri-demo-", delete=False) as handle:
            json.dump(settings, handle)
            app_vars = "@" + handle.name

        say("1. Deploy two apps with oci_app_node=auto: each goes to the node with the most free memory")
        playbook("deploy_app", [app_vars, "oci_app_name=webapp"])
        time.sleep(1)  # the running webapp counts on its node from now on
        playbook("deploy_app", [app_vars, "oci_app_name=api"])

        say("2. The cluster as lxc_container_info lists it")
        info = listing(connection)
        web = [ct for ct in info["containers"] if ct["hostname"] == "webapp"][0]
        print("  webapp answers on %s: %s" % (web["node"], page(web["vmid"], web["node"], tools)))

        target = "pve2" if web["node"] == "pve1" else "pve1"
        say("3. Migrate the running webapp to %s (restart mode: shut down, zfs send of its volumes, started there)"
            % target)
        moved = module("lxc_container", {"vmid": web["vmid"], "node": target, "migrate": True,
                                         "migrate_restart": True, "state": "started"}, connection)
        print("  %s; now on %s" % (", ".join(moved["actions"]), moved["node"]))
        print("  webapp answers on %s: %s" % (moved["node"], page(web["vmid"], moved["node"], tools)))

        if args.keep:
            say("Left running: the double at https://127.0.0.1:%d (root@pam / %s); stop it with "
                "'cd tests && python -m pve_double --stop --dir %s --pidfile %s'"
                % (args.port, PASSWORD, DOUBLE_DIR, pidfile))
            return 0
        os.unlink(app_vars[1:])
    finally:
        if not args.keep:
            subprocess.run([sys.executable, "-m", "pve_double", "--stop", "--dir", DOUBLE_DIR, "--pidfile", pidfile],
                           cwd=tests, check=False)
    say("Cluster demo complete: placement by free memory, migration of a running app with its data")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
