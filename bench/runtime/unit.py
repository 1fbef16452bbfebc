"""bench/runtime/unit.py: start-to-ready and stop of an oci_container through its systemd unit, libcrun against the CLI.

A busybox image built on the spot (pushed to the test bed's registry) runs as two
oci_container containers, one per backend, under a real systemd (the test bed's
systemd namespace, tests/lxcri_testbed/systemd_ns.py).  Each round times
``systemctl start`` (it returns at READY=1, sent by the unit's runner once the
container's process runs: start-to-ready) and ``systemctl stop`` (the stop signal
forwarded to the app, which exits on it, the container deleted, the network
namespace, if any, removed) for both backends, alternating which goes first so
machine noise hits both.  Prints the medians and the ratios CLI/libcrun.

Usage (root, test bed up):  python bench/runtime/unit.py [--rounds N]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import collections_root  # noqa: E402
from lxcri_testbed.bed import load_state  # noqa: E402

sys.path.insert(0, collections_root())

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import subprocess_runner  # noqa: E402
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.container import ContainerManager  # noqa: E402

ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def inside(config):
    """Runs in systemd's namespaces: make both containers, time their units, print the figures as JSON."""
    for backend in ("libcrun", "cli"):
        params = dict(config["params"], name="bench-" + backend, runtime=backend, state="stopped")
        ContainerManager(params, runner=subprocess_runner).run()
    times = {"libcrun": {"start": [], "stop": []}, "cli": {"start": [], "stop": []}}
    for index in range(config["rounds"]):
        order = ("libcrun", "cli") if index % 2 == 0 else ("cli", "libcrun")
        for backend in order:
            unit = "lxcri-oci-bench-%s.service" % backend
            for verb in ("start", "stop"):
                began = time.perf_counter()
                subprocess.run(["systemctl", verb, unit], check=True)
                times[backend][verb].append(time.perf_counter() - began)
    for backend in ("libcrun", "cli"):
        params = dict(config["params"], name="bench-" + backend, state="absent")
        params.pop("image")
        ContainerManager(params, runner=subprocess_runner).run()
    print(json.dumps(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        with open(args.inside) as handle:
            return inside(json.load(handle))
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is down: run 'make testbed-up'")
    from lxcri_testbed.images import build_image, push_image  # pylint: disable=import-outside-toplevel
    from lxcri_testbed.systemd_ns import SystemdNamespace, available  # pylint: disable=import-outside-toplevel
    if available():
        raise SystemExit("no systemd namespace here: %s" % available())
    work = tempfile.mkdtemp(prefix="lxcri-bench-unit-")
    ns = None
    try:
        image = build_image(os.path.join(work, "image"), tag="bench-unit")
        ref = push_image(image, state["registry"], "lxcri-bench/unit", "open")
        params = {"image": ref, "registry_tls_verify": False, "entrypoint": ENTRYPOINT, "unit_dir": "/run/systemd/system",
                  "base_dir": os.path.join(work, "oci"), "volumes_dir": os.path.join(work, "volumes"),
                  "cache_dir": os.path.join(work, "cache"), "libcrun_search": [state["libcrun"]["library"]],
                  "restart": "no"}
        config = os.path.join(work, "config.json")
        with open(config, "w") as handle:
            json.dump({"params": params, "rounds": args.rounds}, handle)
        ns = SystemdNamespace(os.path.join(work, "systemd")).start()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        out = subprocess.run(ns.prefix + [sys.executable, os.path.abspath(__file__), "--inside", config],
                             check=True, stdout=subprocess.PIPE, universal_newlines=True, env=env).stdout
        times = json.loads(out.strip().splitlines()[-1])
    finally:
        if ns is not None:
            ns.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("bench/runtime/unit: an oci_container's unit, %d rounds per backend (median seconds)" % args.rounds)
    for verb, what in (("start", "systemctl start to READY (start-to-ready)"), ("stop", "systemctl stop")):
        lib = statistics.median(times["libcrun"][verb])
        cli = statistics.median(times["cli"][verb])
        print("  %-42s libcrun %.3f s   cli %.3f s   ratio cli/libcrun %.2f" % (what, lib, cli, cli / lib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
