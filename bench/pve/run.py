"""bench/pve: lxcri.proxmox.lxc_container against community.proxmox's proxmox module, in one run.

Against ONE Proxmox VE API test double (tests/pve_double, 9.1 or 8 mode,
started in this process; real storage; every request recorded), each tool
runs three passes, each pass ONE ansible-playbook run of a loop over N
containers (default 50), each tool on its own vmid range (lxcri 1000.., the
peer 3000..), so both do the same work:

1. create N containers (state present, not started) from a tiny busybox
   template, the root file system on the ``local`` dir storage;
2. the same play again: nothing to change;
3. the play with one key changed on each container (memory 256 -> 384).

Both plays have the same shape and the same keys (vmid, hostname, ostemplate,
memory, storage ``local``).  The peer's play is its own documented idempotent
form (``update: true``, its default in community.proxmox 1.x) with no
``disk``: with ``disk`` the peer rewrites ``rootfs`` on every run and never
reports "unchanged" (``--peer-disk`` measures that form instead).  Within a
pass the tool that runs first alternates from pass to pass, so the shared
machine's noise does not favour one of them.  A loop of ``ansible.builtin.ping``
over N items gives ansible's own floor for the same loop.

After every pass the double's state is checked (both ranges hold N containers
with the expected memory and hostname), and the items each tool reported as
changed are counted from ansible's output.

Printed: per pass and tool the requests (total, per container), wall seconds,
changed items, the ratios lxcri/peer (requests and wall), and whether the
targets hold: at most 4 requests per unchanged container for lxcri (pass 2: the cluster list, the node's
live list, the config, and the login shared by the loop),
and fewer requests and less wall time than the peer on every pass.
``--breakdown`` adds the requests per container by method and path.
Wall times are single runs on a shared, noisy machine: ``--rounds R`` repeats
everything R times (the containers deleted through the API in between, not
timed) and reports medians.  After each round every container is deleted
through the double's API; at the end the temporary directory is removed.
Exit status 1 when a target is missed.

With ``--nodes 3`` the double is a cluster of three nodes (tests/pve_double/
multinode.py), the containers spread over them (``node: pve<1 + vmid % 3>``
in both tools' plays) and the template on the ``shared`` storage; the
target for lxcri is then at most 3 requests per unchanged container (the
node's live list, the config, the shared login), however many nodes.

Usage (root, test bed up):
  python bench/pve/run.py [--count N] [--mode 9.1|8] [--nodes N] [--rounds R] [--breakdown] [--peer-disk]
"""

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import collections_root  # noqa: E402
from lxcri_testbed.bed import peer_collections  # noqa: E402
from pve_double.server import DEFAULT_PASSWORD, Double  # noqa: E402

TOOLS = ("lxcri", "peer")
FIRST_VMID = {"lxcri": 1000, "peer": 3000}
NODE = "pve1"
# (name, memory, changes expected on every item)
PASSES = (("create", 256, True), ("unchanged", 256, False), ("one key", 384, True))
# the cluster list, the node's live list (/cluster/resources' name/status lag on a real node: pve/listing.py),
# the config; the login is shared by the loop
TARGET_UNCHANGED = 4.0
TARGET_UNCHANGED_CLUSTER = 3.0  # on a cluster, with node given as every play there must


def nodes_of(count):
    return ["pve%d" % n for n in range(1, count + 1)]


def make_template(double, work):
    """A busybox root file system as a zstd tarball in the double's ``local`` storage (``shared`` on a cluster)."""
    rootfs = os.path.join(work, "rootfs")
    for sub in ("bin", "sbin", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, sub))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    with open(os.path.join(rootfs, "sbin", "init"), "w") as handle:
        handle.write("#!/bin/sh\nexec /bin/busybox sleep 300\n")
    os.chmod(os.path.join(rootfs, "sbin", "init"), 0o755)
    storage = "shared" if len(double.backends) > 1 else "local"
    template = os.path.join(double.backend.storages[storage]["path"], "template", "cache", "bench.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", rootfs, "."], check=True)
    return "%s:vztmpl/bench.tar.zst" % storage


def play(tool, double, ostemplate, count, memory, peer_disk=False):
    first = FIRST_VMID[tool]
    vmids = "{{ range(%d, %d) | list }}" % (first, first + count)
    node = NODE if len(double.backends) == 1 else '"pve{{ 1 + item %% %d }}"' % len(double.backends)
    if tool == "lxcri":
        return textwrap.dedent("""\
            - hosts: localhost
              gather_facts: false
              module_defaults:
                group/lxcri.proxmox.pve:
                  api_host: 127.0.0.1
                  api_port: %d
                  api_user: root@pam
                  api_password: %s
                  validate_certs: false
              tasks:
                - lxcri.proxmox.lxc_container:
                    vmid: "{{ item }}"
                    node: %s
                    hostname: "b{{ item }}"
                    ostemplate: %s
                    memory: %d
                    storage: local
                    state: present
                  loop: "%s"
            """) % (double.port, DEFAULT_PASSWORD, node, ostemplate, memory, vmids)
    return textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          module_defaults:
            community.proxmox.proxmox:
              api_host: 127.0.0.1
              api_port: %d
              api_user: root@pam
              api_password: %s
              validate_certs: false
          tasks:
            - community.proxmox.proxmox:
                vmid: "{{ item }}"
                node: %s
                hostname: "b{{ item }}"
                ostemplate: %s
                memory: %d
                storage: local%s
                update: true
                state: present
              loop: "%s"
        """) % (double.port, DEFAULT_PASSWORD, node, ostemplate, memory,
                '\n        disk: "local:0"' if peer_disk else "", vmids)


FLOOR_PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
      loop: "{{ range(0, %d) | list }}"
"""


def run_playbook(path, env):
    """(wall seconds, ansible's output); exits with the output's tail when the run fails."""
    started = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (path, proc.stdout[-3000:]))
    return wall, proc.stdout


def changed_items(output):
    return len(re.findall(r"^changed: \[localhost\] => \(item=", output, re.M))


def check_state(double, tool, count, memory):
    """The double holds the tool's N containers with the pass's memory and hostname, none running."""
    problems = []
    for vmid in range(FIRST_VMID[tool], FIRST_VMID[tool] + count):
        owner = double.cluster.owner(vmid)
        ct = double.backends[owner].containers.get(vmid) if owner else None
        if ct is None:
            problems.append("%d missing" % vmid)
            continue
        if len(double.backends) > 1 and owner != "pve%d" % (1 + vmid % len(double.backends)):
            problems.append("%d is on %s" % (vmid, owner))
        if str(ct.config.get("memory")) != str(memory) or ct.config.get("hostname") != "b%d" % vmid:
            problems.append("%d: memory %s hostname %s" % (vmid, ct.config.get("memory"), ct.config.get("hostname")))
        elif double.backends[owner].lxc_state(ct)[0] != "stopped":
            problems.append("%d is running" % vmid)
    if problems:
        raise SystemExit("%s left the double in the wrong state: %s" % (tool, "; ".join(problems[:5])))


def breakdown(requests, count):
    """Requests per container by method and path (vmids and task ids folded)."""
    kinds = collections.Counter()
    for method, path, dummy in requests:
        path = re.sub(r"/api2/json", "", path)
        path = re.sub(r"/tasks/[^/]+", "/tasks/{upid}", path)
        path = re.sub(r"/lxc/\d+", "/lxc/{vmid}", path)
        kinds["%s %s" % (method, path)] += 1
    return ["      %5.2f  %s" % (n / float(count), kind) for kind, n in sorted(kinds.items(), key=lambda i: -i[1])]


def delete_all(double):
    """Every container deleted through the double's API (each task waited for)."""
    from proxmoxer import ProxmoxAPI  # pylint: disable=import-outside-toplevel
    api = ProxmoxAPI(double.host, port=double.port, user="root@pam", password=DEFAULT_PASSWORD, verify_ssl=False)
    failed = []
    every = sorted((vmid, name) for name, backend in double.backends.items() for vmid in backend.containers)
    for vmid, name in every:
        node = api.nodes(name)
        upid = node.lxc(vmid).delete()
        deadline = time.monotonic() + 60
        status = node.tasks(upid).status.get()
        while status["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
            status = node.tasks(upid).status.get()
        if status.get("exitstatus") != "OK":
            failed.append("%d: %s" % (vmid, status.get("exitstatus", "did not finish")))
    left = sorted(vmid for backend in double.backends.values() for vmid in backend.containers)
    images = [name for backend in double.backends.values()
              for name in os.listdir(os.path.join(backend.storages["local"]["path"], "images"))]
    if failed or left or images:
        raise SystemExit("clean-up through the double: %d deletions failed (%s), containers %s and volumes %s left"
                         % (len(failed), "; ".join(failed[:3]), left[:5], images[:5]))


def measure_round(number, args, double, ostemplate, work, env, results):
    """One round: the floor, then the three passes of both tools (who goes first alternates)."""
    floor_path = os.path.join(work, "floor.yml")
    with open(floor_path, "w") as handle:
        handle.write(FLOOR_PLAY % args.count)
    results.setdefault("floor", []).append(run_playbook(floor_path, env)[0])
    for index, (name, memory, dummy) in enumerate(PASSES):
        order = TOOLS if (number + index) % 2 == 0 else TOOLS[::-1]
        for tool in order:
            path = os.path.join(work, "%s-%s.yml" % (tool, name.replace(" ", "-")))
            with open(path, "w") as handle:
                handle.write(play(tool, double, ostemplate, args.count, memory, args.peer_disk))
            since = len(double.requests)
            wall, output = run_playbook(path, env)
            requests = double.requests[since:]
            check_state(double, tool, args.count, memory)
            results.setdefault((name, tool), []).append((len(requests), wall, changed_items(output), requests))


def report(args, results):
    """The table and the targets; returns the misses."""
    count = float(args.count)
    floor = statistics.median(results["floor"])
    print("bench/pve: %d containers per tool, PVE API double in %s mode%s, each pass one ansible-playbook run%s"
          % (args.count, args.mode, "" if args.nodes == 1 else " as a cluster of %d nodes" % args.nodes,
             "" if args.rounds == 1 else "; medians of %d rounds" % args.rounds))
    print("peer: community.proxmox.proxmox, update: true, %s; ansible's floor (a ping loop of %d): %.1f s"
          % ("disk: local:0" if args.peer_disk else "no disk", args.count, floor))
    header = ("pass", "tool", "requests", "per CT", "wall s", "s/CT", "s/CT-floor", "changed")
    print("%-10s %-6s %9s %7s %8s %7s %12s   %s" % header)
    misses = []
    summary = {}
    for name, dummy, expect_changes in PASSES:
        for tool in TOOLS:
            runs = results[(name, tool)]
            requests = max(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            changed = sorted(set(r[2] for r in runs))
            summary[tool] = (requests, wall, changed)
            print("%-10s %-6s %9d %7.2f %8.1f %7.2f %12.2f   %s/%d%s"
                  % (name, tool, requests, requests / count, wall, wall / count, (wall - floor) / count,
                     ",".join(str(c) for c in changed), args.count,
                     "" if len(set(r[0] for r in runs)) == 1 else "  (requests varied: %s)" % [r[0] for r in runs]))
        ours, peer = summary["lxcri"], summary["peer"]
        print("%-10s ratio lxcri/peer: requests %.2f, wall %.2f" % (name, ours[0] / float(peer[0]), ours[1] / peer[1]))
        if ours[0] >= peer[0]:
            misses.append("%s: %d requests, the peer %d" % (name, ours[0], peer[0]))
        if ours[1] >= peer[1]:
            misses.append("%s: %.1f s, the peer %.1f s" % (name, ours[1], peer[1]))
        if ours[2] != [args.count if expect_changes else 0]:
            misses.append("%s: lxcri reported %s of %d items changed" % (name, ours[2], args.count))
        if args.breakdown:
            for tool in TOOLS:
                print("    %s, requests per container (round 1):" % tool)
                print("\n".join(breakdown(results[(name, tool)][0][3], args.count)))
    unchanged = max(r[0] for r in results[("unchanged", "lxcri")]) / count
    target = TARGET_UNCHANGED if args.nodes == 1 else TARGET_UNCHANGED_CLUSTER
    if unchanged > target:
        misses.append("unchanged: %.2f requests per container" % unchanged)
    print("targets: lxcri at most %g requests per unchanged container (%.2f); fewer requests and less wall "
          "time than the peer on every pass; lxcri reports changed on every item of passes 1 and 3, on none "
          "of pass 2: %s" % (target, unchanged, "PASS" if not misses else "MISS (%s)" % "; ".join(misses)))
    return misses


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/pve/run.py")
    parser.add_argument("--count", type=int, default=50, help="containers per tool (default 50)")
    parser.add_argument("--mode", default="9.1", choices=["9.1", "8"], help="the double's Proxmox VE version")
    parser.add_argument("--nodes", type=int, default=1, help="a cluster of this many nodes (default 1)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat everything (containers deleted in between), report medians (default 1)")
    parser.add_argument("--breakdown", action="store_true", help="print the requests per container by path")
    parser.add_argument("--peer-disk", action="store_true",
                        help="give the peer disk: local:0 (it then rewrites rootfs on every pass)")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= FIRST_VMID["peer"] - FIRST_VMID["lxcri"]:
        parser.error("--count must be between 1 and %d" % (FIRST_VMID["peer"] - FIRST_VMID["lxcri"]))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    misses = []
    work = tempfile.mkdtemp(prefix="lxcri-bench-pve-")
    if not 1 <= args.nodes <= 9:
        parser.error("--nodes must be between 1 and 9")
    double = Double(os.path.join(work, "pve"), mode=args.mode, nodes=nodes_of(args.nodes)).start()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH="%s:%s" % (collections_root(), peer_collections()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_RETRY_FILES_ENABLED="false")
    try:
        ostemplate = make_template(double, work)
        results = {}
        for number in range(args.rounds):
            measure_round(number, args, double, ostemplate, work, env, results)
            delete_all(double)
        misses = report(args, results)
        print("clean-up: %d containers deleted through the double after each round" % (2 * args.count))
    finally:
        if any(backend.containers for backend in double.backends.values()):  # a failed run: through the API still
            try:
                delete_all(double)
            except (SystemExit, Exception) as exc:  # pylint: disable=broad-except
                print("clean-up through the double failed (the directory goes anyway): %s" % exc, file=sys.stderr)
        double.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
