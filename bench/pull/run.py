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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import (  # noqa: E402
    BENCH_DIR, ROOTFS, build_layout, collections_root, copy_from_rootfs, ensure_rootfs, repack, timed)
from lxcri_testbed.bed import load_state, run  # noqa: E402

LAYOUT = os.path.join(BENCH_DIR, "layout")
REPO_NAME = "lxcri-bench/minbase"
TAG = "1"

PULL = """
import sys
sys.path.insert(0, sys.argv[3])
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
r = ImageManager({"image": sys.argv[1], "cache_dir": sys.argv[2], "registry_tls_verify": False}).run()
print(r["fetched_bytes"], r["compressed_size"])
"""


def write_noise(root):
    with open(os.path.join(root, "opt", "bench-noise.bin"), "wb") as handle:
        handle.write(os.urandom(12 * 1024 * 1024))


def ensure_image(registry):
    ref = "%s/%s:%s" % (registry["host"], REPO_NAME, TAG)
    probe = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if probe.returncode == 0:
        return ref
    ensure_rootfs()
    top = sorted(os.listdir(ROOTFS))
    build_layout(LAYOUT, TAG, [repack(copy_from_rootfs(["usr"])),
                               repack(copy_from_rootfs([n for n in top if n != "usr"])),
                               repack(write_noise)])
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:%s" % (LAYOUT, TAG), "docker://" + ref],
        timeout=900)
    return ref


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is down: run 'make testbed-up'")
    os.makedirs(BENCH_DIR, exist_ok=True)
    ref = ensure_image(state["registry"])
    collections = collections_root()
    ours, theirs, warm = [], [], []
    size = None
    for dummy in range(args.rounds):
        cache = tempfile.mkdtemp(dir=BENCH_DIR)
        dest = tempfile.mkdtemp(dir=BENCH_DIR)
        try:
            elapsed, out = timed([sys.executable, "-c", PULL, ref, cache, collections])
            ours.append(elapsed)
            size = int(out.split()[1])
            elapsed, dummy_out = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                        "docker://" + ref, "oci:%s:%s" % (dest, TAG)])
            theirs.append(elapsed)
            elapsed, out = timed([sys.executable, "-c", PULL, ref, cache, collections])
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
