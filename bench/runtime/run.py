"""bench/runtime: libcrun (python_crun) against the crun CLI, create+start+delete, in one run.

The seed roadmap's "ABI vs CLI" question.  A trivial bundle (static busybox
running ``true``) goes through create, start, wait-until-stopped and delete N
times through each backend of the collection's runtime driver, alternating
libcrun and CLI rounds so machine noise hits both.  Both backends work in an
agent process of the driver (the same JSON-lines round trip each); the CLI
backend additionally starts a crun process per operation, which is the cost
measured.  On a hybrid cgroup host both agents run in the same kind of private
mount namespace with a cgroup2-only /sys/fs/cgroup.

Usage (root, test bed up):  python bench/runtime/run.py [--rounds N]
Prints the medians of one create+start+delete cycle and the ratio CLI/libcrun.
"""

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import collections_root  # noqa: E402
from lxcri_testbed.bed import load_state  # noqa: E402

sys.path.insert(0, collections_root())

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect, driver  # noqa: E402
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.bundle import make_trivial_bundle, spec_text  # noqa: E402


def cycle(drv, cid, bundle):
    start = time.perf_counter()
    drv.create(cid, bundle)
    drv.start(cid)
    drv.wait(cid, timeout=30)
    drv.delete(cid)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is down: run 'make testbed-up'")
    library = state["libcrun"]["library"]
    found = sorted(glob.glob("/opt/lxcri/libcrun/*/lib/libcrun.so.0"))
    if not os.path.exists(library) and found:
        library = found[-1]
    crun = shutil.which("crun")
    layout = detect.cgroup_layout()["layout"]
    plan = driver.isolation_plan(layout)
    work = tempfile.mkdtemp(prefix="lxcri-bench-runtime-")
    root = os.path.join(work, "state")
    drivers = {
        "libcrun": driver.CrunDriver("libcrun", libcrun=library, python_crun_dir=driver.python_crun_dir(library),
                                     state_root=root, private_cgroup2=plan["private_cgroup2"]),
        "cli": driver.CrunDriver("cli", crun=crun, state_root=root, private_cgroup2=plan["private_cgroup2"],
                                 cgroup_manager=plan["cgroup_manager"]),
    }
    try:
        bundle = make_trivial_bundle(os.path.join(work, "bundle"), ["true"], spec_text(crun))["bundle"]
        times = {"libcrun": [], "cli": []}
        for name, drv in drivers.items():
            drv.open()
            cycle(drv, "warm-" + name, bundle)  # first-use costs (page cache, agent imports) stay out
        for index in range(args.rounds):
            order = ("libcrun", "cli") if index % 2 == 0 else ("cli", "libcrun")
            for name in order:
                times[name].append(cycle(drivers[name], "b-%s-%d" % (name, index), bundle))
    finally:
        for drv in drivers.values():
            drv.close()
        shutil.rmtree(work, ignore_errors=True)
    lib_ms = statistics.median(times["libcrun"]) * 1000
    cli_ms = statistics.median(times["cli"]) * 1000
    print("bench/runtime: create+start+wait+delete of a trivial bundle, %d rounds each, cgroups %s%s"
          % (args.rounds, layout, " (private cgroup2 namespace)" if plan["private_cgroup2"] else ""))
    print("  libcrun (python_crun %s): median %.1f ms" % (library, lib_ms))
    print("  crun CLI (%s):            median %.1f ms" % (crun, cli_ms))
    print("  ratio CLI/libcrun: %.2f" % (cli_ms / lib_ms))


if __name__ == "__main__":
    main()
