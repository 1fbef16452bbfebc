"""bench/pull: oci_image's pull against skopeo's, on one realistic image, in one run.

The image: a debootstrap'ed Debian minbase split into three layers (/usr, the
rest of the system, and 12 MiB of incompressible data so the image is over
50 MB compressed), pushed to the test bed's open registry.  Each round pulls
it into an empty cache with the oci_image engine (a fresh Python process, as
the module runs) and with ``skopeo copy docker://... oci:...``; then pulls
again into the warm cache.  Rounds alternate so machine noise hits both.

Usage (root, test bed up):  python bench/pull/run.py [--rounds N]
Prints the medians and the ratios; exits 1 when a target is missed.
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
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from lxcri_testbed.bed import load_state, run  # noqa: E402

BENCH_DIR = "/var/lib/lxcri-bench"
ROOTFS = os.path.join(BENCH_DIR, "minbase")
LAYOUT = os.path.join(BENCH_DIR, "layout")
REPO_NAME = "lxcri-bench/minbase"
TAG = "1"
COLLECTIONS = os.path.join(REPO, ".cache", "collections")

PULL = """
import sys
sys.path.insert(0, %r)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
r = ImageManager({"image": sys.argv[1], "cache_dir": sys.argv[2], "registry_tls_verify": False}).run()
print(r["fetched_bytes"], r["compressed_size"])
""" % COLLECTIONS


def ensure_rootfs():
    if os.path.isdir(os.path.join(ROOTFS, "usr", "bin")):
        return
    run(["debootstrap", "--variant=minbase", "bookworm", ROOTFS, "http://deb.debian.org/debian"], timeout=1800)


def ensure_image(registry):
    ref = "%s/%s:%s" % (registry["host"], REPO_NAME, TAG)
    probe = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if probe.returncode == 0:
        return ref
    ensure_rootfs()
    shutil.rmtree(LAYOUT, ignore_errors=True)
    run(["umoci", "init", "--layout", LAYOUT])
    run(["umoci", "new", "--image", "%s:%s" % (LAYOUT, TAG)])
    top = sorted(os.listdir(ROOTFS))
    steps = [["usr"], [n for n in top if n != "usr"], None]
    for step in steps:
        bundle = tempfile.mkdtemp(dir=BENCH_DIR)
        os.rmdir(bundle)
        run(["umoci", "unpack", "--image", "%s:%s" % (LAYOUT, TAG), bundle])
        root = os.path.join(bundle, "rootfs")
        if step is None:
            with open(os.path.join(root, "opt", "bench-noise.bin"), "wb") as handle:
                handle.write(os.urandom(12 * 1024 * 1024))
        else:
            for name in step:
                src = os.path.join(ROOTFS, name)
                run(["cp", "-a", src, os.path.join(root, name)])
        run(["umoci", "repack", "--image", "%s:%s" % (LAYOUT, TAG), bundle], timeout=900)
        shutil.rmtree(bundle)
    run(["umoci", "config", "--image", "%s:%s" % (LAYOUT, TAG), "--config.cmd=/bin/bash"])
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:%s" % (LAYOUT, TAG), "docker://" + ref],
        timeout=900)
    return ref


def timed(argv):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed: %s" % (argv[0], proc.stderr))
    return elapsed, proc.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is down: run 'make testbed-up'")
    os.makedirs(BENCH_DIR, exist_ok=True)
    ref = ensure_image(state["registry"])
    ours, theirs, warm = [], [], []
    size = None
    for dummy in range(args.rounds):
        cache = tempfile.mkdtemp(dir=BENCH_DIR)
        dest = tempfile.mkdtemp(dir=BENCH_DIR)
        try:
            elapsed, out = timed([sys.executable, "-c", PULL, ref, cache])
            ours.append(elapsed)
            size = int(out.split()[1])
            elapsed, dummy_out = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                        "docker://" + ref, "oci:%s:%s" % (dest, TAG)])
            theirs.append(elapsed)
            elapsed, out = timed([sys.executable, "-c", PULL, ref, cache])
            assert out.split()[0] == "0", "the warm pull fetched bytes"
            warm.append(elapsed)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
    report = {
        "image": ref, "compressed_bytes": size, "rounds": args.rounds,
        "oci_image_cold_s": round(statistics.median(ours), 3),
        "skopeo_copy_s": round(statistics.median(theirs), 3),
        "ratio_oci_image_to_skopeo": round(statistics.median(ours) / statistics.median(theirs), 3),
        "oci_image_warm_s": round(statistics.median(warm), 3),
    }
    print(json.dumps(report, indent=2))
    ok = report["ratio_oci_image_to_skopeo"] <= 1.0 and report["oci_image_warm_s"] < 0.5
    print("targets (ratio <= 1.0, warm < 0.5 s): %s" % ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
