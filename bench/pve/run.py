"""bench/pve: lxcri.proxmox.lxc_container against community.proxmox's proxmox module, in one run.

Against one Proxmox VE API test double (9.1 or 8 mode; real storage, every
request recorded), each tool runs three passes as one ansible-playbook run
each, a loop over N containers (default 50) on its own vmid range:

1. create N containers (not started) from a tiny template on the ``local`` storage;
2. the same play again: nothing to change;
3. the play with one key changed on each container (memory).

The peer's play is the one its documentation gives for an idempotent run
(``update: true`` so that pass 3 changes something at all).  For each pass it
prints the HTTP requests (total and per container) and the wall time of both
tools, the ratios lxcri/peer, and whether the targets hold: at most 3
requests per unchanged container, and fewer requests and less time than the
peer on every pass.

Usage (root, test bed up):  python bench/pve/run.py [--count N] [--mode 9.1|8]
"""

import argparse
import os
import shutil
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


def make_template(double, work):
    rootfs = os.path.join(work, "rootfs")
    for sub in ("bin", "sbin", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, sub))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    with open(os.path.join(rootfs, "sbin", "init"), "w") as handle:
        handle.write("#!/bin/sh\nexec /bin/busybox sleep 300\n")
    os.chmod(os.path.join(rootfs, "sbin", "init"), 0o755)
    template = os.path.join(double.backend.storages["local"]["path"], "template", "cache", "bench.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", rootfs, "."], check=True)
    return "local:vztmpl/bench.tar.zst"


def play(tool, double, ostemplate, first, count, memory):
    vmids = "{{ range(%d, %d) | list }}" % (first, first + count)
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
                    node: pve1
                    hostname: "b{{ item }}"
                    ostemplate: %s
                    memory: %d
                    storage: local
                  loop: "%s"
            """) % (double.port, DEFAULT_PASSWORD, ostemplate, memory, vmids)
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
              node: pve1
          tasks:
            - community.proxmox.proxmox:
                vmid: "{{ item }}"
                hostname: "b{{ item }}"
                ostemplate: %s
                memory: %d
                disk: "local:0"
                update: true
              loop: "%s"
        """) % (double.port, DEFAULT_PASSWORD, ostemplate, memory, vmids)


def run_pass(double, path, env):
    since = len(double.requests)
    started = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (path, proc.stdout[-3000:]))
    changed = [line for line in proc.stdout.splitlines() if line.startswith("localhost")]
    return len(double.requests) - since, wall, changed[-1].split() if changed else []


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/pve/run.py")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--mode", default="9.1", choices=["9.1", "8"])
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="lxcri-bench-pve-")
    double = Double(os.path.join(work, "pve"), mode=args.mode).start()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH="%s:%s" % (collections_root(), peer_collections()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    try:
        ostemplate = make_template(double, work)
        passes = (("create", 256), ("unchanged", 256), ("one key", 384))
        results = {}
        for name, memory in passes:
            for tool in TOOLS:  # same order each pass; the machine's noise hits both
                path = os.path.join(work, "%s-%s.yml" % (tool, name.replace(" ", "-")))
                with open(path, "w") as handle:
                    handle.write(play(tool, double, ostemplate, FIRST_VMID[tool], args.count, memory))
                results[(name, tool)] = run_pass(double, path, env)
        print("bench/pve: %d containers, PVE API double in %s mode (each pass one ansible-playbook run)"
              % (args.count, args.mode))
        print("%-10s %-6s %9s %8s %9s   %s" % ("pass", "tool", "requests", "per CT", "wall s", "recap"))
        misses = []
        for name, dummy in passes:
            for tool in TOOLS:
                requests, wall, recap = results[(name, tool)]
                print("%-10s %-6s %9d %8.1f %9.1f   %s" % (name, tool, requests, requests / float(args.count), wall,
                                                      " ".join(w for w in recap if w.startswith(("ok=", "changed=")))))
            ours, peer = results[(name, "lxcri")], results[(name, "peer")]
            print("%-10s ratio lxcri/peer: requests %.2f, wall %.2f" % (name, ours[0] / float(peer[0]),
                                                                      ours[1] / peer[1]))
            if ours[0] >= peer[0]:
                misses.append("%s: not fewer requests than the peer" % name)
            if ours[1] >= peer[1]:
                misses.append("%s: not faster than the peer" % name)
        unchanged = results[("unchanged", "lxcri")][0] / float(args.count)
        if unchanged > 3:
            misses.append("unchanged: %.1f requests per container (target at most 3)" % unchanged)
        print("targets: at most 3 requests per unchanged container (%.1f), fewer requests and less wall time "
              "than the peer on every pass: %s" % (unchanged, "PASS" if not misses else "MISS (%s)" % "; ".join(misses)))
    finally:
        double.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
