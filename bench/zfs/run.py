"""bench/zfs: lxcri.proxmox's ZFS modules against community.general's zfs, in one run.

1. An idempotent ensure of 100 datasets with 3 properties each, as a loop over
   lxcri.proxmox.zfs_dataset and over community.general.zfs (taken from the
   ``ansible`` package's wheel on PyPI), on the test bed's zfs-fuse pool.
   A PATH shim counts the zfs/zpool processes; wall time is measured around
   ansible-playbook.  Both the creating run and the idempotent run are shown.
2. A retention pass over 1000 snapshots with zfs_snapshot (keep_last: 100).

Usage (root, test bed up):  python bench/zfs/run.py
Prints a JSON report with the ratios; exits 1 when a target is missed.
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from lxcri_testbed.bed import destroy_tree, load_state, peer_collections, scratch_create_args  # noqa: E402

BENCH_DIR = "/var/lib/lxcri-bench"
BIN = os.path.dirname(sys.executable)
COUNT = 100
SNAPSHOTS = 1000


def install_ours(workdir):
    dist = os.path.join(workdir, "dist")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", dist,
                    REPO], check=True, stdout=subprocess.DEVNULL)
    tarball = glob.glob(os.path.join(dist, "*.tar.gz"))[0]
    path = os.path.join(workdir, "collections")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", path, tarball],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=path))
    return path


def make_shim(workdir):
    bindir = os.path.join(workdir, "shim")
    os.makedirs(bindir)
    log = os.path.join(workdir, "calls.log")
    for tool in ("zfs", "zpool"):
        path = os.path.join(bindir, tool)
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\necho %s >> %s\nexec /usr/sbin/%s \"$@\"\n" % (tool, log, tool))
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return bindir, log


def main():
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is down: run 'make testbed-up'")
    pool = state["zfs"]["pool"]
    os.makedirs(BENCH_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(dir=BENCH_DIR)
    try:
        collections = "%s:%s" % (install_ours(workdir), peer_collections())
        shim, log = make_shim(workdir)
        report = {"datasets": COUNT, "properties_each": 3}
        tasks = {
            "lxcri": """    - lxcri.proxmox.zfs_dataset:
        name: "{{ root }}/d{{ item }}"
        properties: {quota: 1G, compression: "on", atime: "off"}
      loop: "{{ range(%d) | list }}"
""" % COUNT,
            "community_general": """    - community.general.zfs:
        name: "{{ root }}/d{{ item }}"
        state: present
        extra_zfs_properties: {quota: 1G, compression: "on", atime: "off"}
      loop: "{{ range(%d) | list }}"
""" % COUNT,
        }
        for tool, body in tasks.items():
            root = "%s/bench-%s" % (pool, tool.replace("_", "-"))
            if not destroy_tree(root):
                raise SystemExit("cannot clear %s" % root)
            subprocess.run(["zfs", "create"] + scratch_create_args() + [root], check=True)
            play = "  vars: {root: %s}\n" % root
            body = play + "  tasks:\n" + body
            first = playbook_with_vars(workdir, tool + "-create", body, collections, shim, log)
            second = playbook_with_vars(workdir, tool + "-ensure", body, collections, shim, log)
            report[tool] = {"create": first, "idempotent": second}
            destroy_tree(root)
        ours, peer = report["lxcri"]["idempotent"], report["community_general"]["idempotent"]
        report["ratio_zfs_processes_peer_to_ours"] = round(peer["zfs_processes"] / max(1, ours["zfs_processes"]), 2)
        report["ratio_wall_peer_to_ours"] = round(peer["seconds"] / ours["seconds"], 2)
        report["retention"] = retention(workdir, pool, collections, shim, log)
        print(json.dumps(report, indent=2))
        ok = (report["ratio_zfs_processes_peer_to_ours"] >= 3 and report["ratio_wall_peer_to_ours"] > 1
              and ours["changed"] == 0)
        print("targets (>= 3x fewer zfs processes, lower wall time, idempotent): %s" % ("met" if ok else "MISSED"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def playbook_with_vars(workdir, name, body, collections, shim, log):
    path = os.path.join(workdir, name + ".yml")
    with open(path, "w") as handle:
        handle.write("- hosts: localhost\n  gather_facts: false\n" + body)
    return run_playbook(path, collections, shim, log)


def run_playbook(path, collections, shim, log):
    if os.path.exists(log):
        os.unlink(log)
    env = dict(os.environ, PATH=shim + ":" + os.environ["PATH"], ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_DEPRECATION_WARNINGS="false")
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), path], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (path, proc.stdout[-3000:], proc.stderr[-2000:]))
    recap = [l for l in proc.stdout.splitlines() if l.startswith("localhost")][-1]
    calls = {"zfs": 0, "zpool": 0}
    if os.path.exists(log):
        with open(log) as handle:
            for line in handle:
                calls[line.strip()] += 1
    return {"seconds": round(elapsed, 2), "changed": int(recap.split("changed=")[1].split()[0]),
            "zfs_processes": calls["zfs"], "zpool_processes": calls["zpool"]}


def retention(workdir, pool, collections, shim, log):
    root = "%s/bench-retention" % pool
    destroy_tree(root)
    subprocess.run(["zfs", "create"] + scratch_create_args() + [root], check=True)
    try:
        for i in range(SNAPSHOTS):
            subprocess.run(["zfs", "snapshot", "%s@auto_%04d" % (root, i)], check=True)
        path = os.path.join(workdir, "retention.yml")
        with open(path, "w") as handle:
            handle.write("""- hosts: localhost
  gather_facts: false
  tasks:
    - lxcri.proxmox.zfs_snapshot:
        name: [%s]
        prefix: auto_
        create: false
        keep_last: 100
""" % root)
        result = run_playbook(path, collections, shim, log)
        left = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", root],
                              stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
        result.update(snapshots=SNAPSHOTS, kept=len(left), pruned=SNAPSHOTS - len(left))
        return result
    finally:
        destroy_tree(root)


if __name__ == "__main__":
    sys.exit(main())
