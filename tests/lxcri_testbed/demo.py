"""``make demo``: the app deployment flow on the embedded default, start to finish.

The embedded default is this machine's test bed (a local registry, a zfs-fuse
pool, LXC) and the Proxmox VE API test double in 9.1 mode serving a ``local``
dir storage and a ``local-zfs`` zfspool storage.  The demo builds the sample
webapp (a busybox HTTP server with an ENTRYPOINT and arguments) in three
versions, then runs the collection's own playbooks, as an operator would:

1. ``deploy_app.yml`` with version 1: template, container, health check; the
   demo fetches the page from the container and shows its init process;
2. ``deploy_app.yml`` with version 2: an upgrade (snapshot, new container,
   health check, success);
3. ``deploy_app.yml`` with version 3-broken: the health check fails, the
   role rolls back to version 2 automatically and the play fails, as it must;
4. ``rollback_app.yml``: back to version 1 from its snapshot;
5. ``deploy_app.yml`` with ``oci_app_state=absent`` keeps the data (in the
   stopped, protected ``webapp-data``), version 2 deployed again takes it over,
   and ``oci_app_purge_data=true`` removes it all; then the double stops and
   removes its containers, datasets and files.

    python -m lxcri_testbed.demo [--keep] [--mode 9.1|8] [--port 18006]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from .app_images import push
from .bed import load_state
from .lxc import container_ids, tools_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOUBLE_DIR = "/var/lib/lxcri-testbed/pve-double-demo"
PASSWORD = "lxcri-double"


def say(text):
    print("\n\033[1m==> %s\033[0m" % text if sys.stdout.isatty() else "\n==> %s" % text)
    sys.stdout.flush()


def playbook(name, extra, expect_failure=False, expect="Rolled back"):
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "lxcri.proxmox.%s" % name]
    for item in extra:
        argv += ["-e", item]
    print("$ " + " ".join(argv))
    sys.stdout.flush()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)
    print(proc.stdout.rstrip())
    if expect_failure:
        if proc.returncode == 0:
            raise SystemExit("demo: %s should have failed (%s)" % (name, expect))
        if expect not in proc.stdout:
            raise SystemExit("demo: %s failed, but not with %r" % (name, expect))
    elif proc.returncode != 0:
        raise SystemExit("demo: %s failed (exit %d)" % (name, proc.returncode))
    return proc.stdout


DEMO_BRIDGE = "lxcri-demo0"
DEMO_NET = "10.232.0"


def bridge_up():
    """The demo's bridge with the node's address on it (kept with --keep); returns the app's address."""
    if subprocess.run(["ip", "link", "show", DEMO_BRIDGE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      check=False).returncode != 0:
        subprocess.run(["ip", "link", "add", DEMO_BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", DEMO_NET + ".1/24", "dev", DEMO_BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", DEMO_BRIDGE, "up"], check=True)
    return DEMO_NET + ".10"


def running_app(lxc_path, tools, hostname="webapp"):
    """(vmid, page, init argv, uid) of the running container with that hostname, from LXC itself."""
    for name in sorted(os.listdir(lxc_path)):
        proc = subprocess.run([tools.tool("lxc-info"), "-P", lxc_path, "-n", name, "-sH"], stdout=subprocess.PIPE,
                              universal_newlines=True, check=False)
        if proc.stdout.strip() != "RUNNING":
            continue
        with open(os.path.join(lxc_path, name, "config")) as handle:
            if "lxc.uts.name = %s\n" % hostname not in handle.read():
                continue
        pid = subprocess.run([tools.tool("lxc-info"), "-P", lxc_path, "-n", name, "-pH"], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.strip()
        with open("/proc/%s/cmdline" % pid) as handle:
            argv = handle.read().split("\0")[:-1]
        uid = "%d (%d on the node: an unprivileged container)" % (container_ids(int(pid))[0], os.stat(
            "/proc/%s" % pid).st_uid)
        page = subprocess.run([tools.tool("lxc-attach"), "-P", lxc_path, "-n", name, "--", "wget", "-qO-",
                               "http://127.0.0.1:8080/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, check=False).stdout.strip()
        return name, page, argv, uid
    raise SystemExit("demo: no running container is called %s" % hostname)


def show(lxc_path, tools, expected_version, address=None, expected_count=None):
    vmid, page, argv, uid = running_app(lxc_path, tools)
    count = subprocess.run([tools.tool("lxc-attach"), "-P", lxc_path, "-n", vmid, "--", "cat", "/data/count"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           check=False).stdout.strip()
    print("CT %s volume /data (the image's VOLUME, a Proxmox volume of the app): count = %s (starts so far)"
          % (vmid, count))
    if expected_count is not None and count != str(expected_count):
        raise SystemExit("demo: expected /data/count %s" % expected_count)
    if address:
        # over the bridge, from the node: 9.1 brings the interface up (host-managed), 8 the generated init
        with urllib.request.urlopen("http://%s:8080/" % address, timeout=10) as answer:
            page = answer.read().decode().strip()
        print("CT %s answers at http://%s:8080/: %s" % (vmid, address, page))
    else:
        print("CT %s answers: %s" % (vmid, page))
    print("CT %s init (pid 1 in the container): argv %s, uid %s" % (vmid, json.dumps(argv), uid))
    if page != "Hello from webapp version %s" % expected_version:
        raise SystemExit("demo: expected version %s to answer" % expected_version)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m lxcri_testbed.demo")
    parser.add_argument("--mode", default="9.1", choices=["9.1", "8"])
    parser.add_argument("--port", type=int, default=18006)
    parser.add_argument("--keep", action="store_true", help="leave the double and the app running at the end")
    args = parser.parse_args(argv)
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is not up: make testbed-up")
    tests = os.path.dirname(HERE)
    pidfile = os.path.join(tempfile.gettempdir(), "lxcri-demo-double.pid")
    lxc_path = os.path.join(DOUBLE_DIR, "lxc")
    tools = tools_for("6.0" if args.mode == "9.1" else "5.0")  # the LXC the double's node runs (pve_double --lxc)
    address = None

    say("Starting the embedded Proxmox VE (the API test double, mode %s, real LXC and ZFS)" % args.mode)
    subprocess.run([sys.executable, "-m", "pve_double", "--detach", "--fresh", "--mode", args.mode,
                    "--port", str(args.port), "--dir", DOUBLE_DIR, "--pidfile", pidfile], cwd=tests, check=True)
    try:
        say("Building the sample webapp (busybox httpd, ENTRYPOINT with arguments) and pushing it to %s"
            % state["registry"]["host"])
        images = push(state["registry"]["host"], stateful=True)
        for version, ref in sorted(images.items()):
            print("  version %-9s %s" % (version, ref))
        settings = {
            "pve_api_host": "127.0.0.1", "pve_api_port": args.port, "pve_api_user": "root@pam",
            "pve_api_password": PASSWORD, "pve_validate_certs": False,
            "oci_app_name": "webapp", "oci_app_template_storage": "local", "oci_app_storage": "local-zfs",
            "oci_app_disk_size": 1, "oci_app_memory": 256, "oci_app_registry_tls_verify": False,
            "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
            "oci_app_health_exec": [tools.tool("lxc-attach"), "-P", lxc_path, "-n", "{vmid}", "--"],
            "oci_app_health_timeout": 20, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 10,
        }
        # net0 on a bridge of this host, and the health check is also a TCP connection from the node to the app.
        # 9.1 brings up host-managed interfaces (pve-container update_lxc_config); 8 has none, and without node
        # access (as an API token has it) the template's generated init configures eth0 (oci_template's net)
        address = bridge_up()
        net0 = "name=eth0,bridge=%s,ip=%s/24,gw=%s.1" % (DEMO_BRIDGE, address, DEMO_NET)
        settings.update(oci_app_net={"0": net0}, oci_app_health_host=address, oci_app_health_port=8080)
        if args.mode == "8":
            settings.update(oci_app_raw_lxc=False)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="lxcri-demo-", delete=False) as handle:
            json.dump(settings, handle)
            app_vars = "@" + handle.name

        say("1. Deploy version 1 (playbooks/deploy_app.yml): /data is filled from the image, and counts starts")
        playbook("deploy_app", [app_vars, "oci_app_image=" + images["1"]])
        show(lxc_path, tools, "1", address, 1)

        say("2. Upgrade to version 2: snapshot, new container, the volume handed over, health check")
        playbook("deploy_app", [app_vars, "oci_app_image=" + images["2"]])
        show(lxc_path, tools, "2", address, 2)

        say("3. Deploy the broken version 3: its health check fails and the role rolls back by itself, the data "
            "too (the broken version's start is undone)")
        playbook("deploy_app", [app_vars, "oci_app_image=" + images["3-broken"], "oci_app_health_timeout=6"],
                 expect_failure=True)
        show(lxc_path, tools, "2", address, 3)

        say("4. Roll back to version 1 on request (playbooks/rollback_app.yml); the volume goes with it (its data "
            "as version 2 left it: the failed attempt used up the data snapshot)")
        playbook("rollback_app", [app_vars])
        show(lxc_path, tools, "1", address, 4)

        if args.keep:
            say("Left running: the double at https://127.0.0.1:%d (root@pam / %s); stop it with "
                "'cd tests && python -m pve_double --stop --dir %s --pidfile %s'"
                % (args.port, PASSWORD, DOUBLE_DIR, pidfile))
            return 0
        say("5. Remove the app: its data stays, in the stopped, protected webapp-data; deploy again and the count "
            "goes on; with oci_app_purge_data it all goes, data and all")
        playbook("deploy_app", [app_vars, "oci_app_state=absent"])
        playbook("deploy_app", [app_vars, "oci_app_image=" + images["2"]])
        show(lxc_path, tools, "2", address, 5)
        playbook("deploy_app", [app_vars, "oci_app_state=absent", "oci_app_purge_data=true"])
        os.unlink(app_vars[1:])
    finally:
        if not args.keep:
            subprocess.run([sys.executable, "-m", "pve_double", "--stop", "--dir", DOUBLE_DIR, "--pidfile", pidfile],
                           cwd=tests, check=False)
            subprocess.run(["ip", "link", "del", DEMO_BRIDGE], check=False, stderr=subprocess.DEVNULL)
    say("Demo complete: deploy, upgrade, automatic rollback of a broken version, rollback on request, cleanup")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
