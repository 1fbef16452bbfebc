"""bench/convert: oci_template's conversion against LXC's oci template pipeline, in one run.

The image (an OCI layout under /var/lib/lxcri-bench, built once): the
debootstrap'ed Debian minbase of bench/pull split into four gzip layers by
umoci: /usr; the rest of the system; a clean-up layer (the apt archive and
/usr/share/man deleted, which umoci writes as whiteouts); and a hand-written
layer that makes /usr/share/doc opaque (one new file in it) and whites out
/etc/motd.  About 200 MB uncompressed.

Measured, each round in a rotated order so machine noise hits all of them
(medians over the rounds, after one untimed warm-up round):
  (a) oci_template cold: TemplateManager in a fresh Python process (as the
      module runs), a fresh dest directory, a warm blob cache;
  (b) oci_template again with the same dest: the template exists, changed=false;
  (c) LXC's oci template: ``umoci unpack`` plus ``tar -I 'zstd -3 -T0' -cpf``;
  (d) the floor: every layer decompressed to nowhere (Python, with the inflater
      the engine's compression module picked; ``gzip -dc`` shown as well) plus
      ``zstd -3 -T0`` of one rootfs tar made beforehand.
The output of (a) is checked against (c)'s (members, modes, owners, sizes).

Stress cases (issue 18), after the rounds: images whose one gzip layer is built at
bench time by tests/lxcri_testbed/hostile_layers.py, converted once each like (a)
(TemplateManager in a fresh Python, warm cache), with the time and the peak RSS of
that Python (its VmHWM; the zstd it may start is not counted):
  wide: 200k members with 4 KB names (a listed chain of 200-byte directories, a
        distinct 64-byte leaf each), about 1 GB of tar;
  deep: 20k members under distinct parents 1990 directories deep (one shared chain);
  deep_distinct: 20k members each under its own 1990-deep chain (40M implied
        directories: refused by the flattener's max_implied_dirs).
Each must convert or be refused within STRESS_RSS_MB of peak RSS.

Usage (root):  python bench/convert/run.py [--rounds N] [--rebuild]
Prints a JSON report and OK/MISS per target; exits 1 when a target is missed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import (  # noqa: E402
    BENCH_DIR, ROOTFS, build_layout, collections_root, copy_from_rootfs, ensure_rootfs, raw_layer, repack, timed)
from lxcri_testbed import hostile_layers  # noqa: E402
from lxcri_testbed.bed import run  # noqa: E402
from lxcri_testbed.oci_build import write_image  # noqa: E402

LAYOUT = os.path.join(BENCH_DIR, "convert-layout")
TAG = "1"
CACHE = os.path.join(BENCH_DIR, "convert-cache")
ZSTD = "zstd -3 -T0"
README = "usr/share/doc/README.lxcri-bench"

TARGETS = (
    # (report key, comparison, bound, label)
    ("ratio_oci_template_to_floor", "<=", 1.3, "(a)/(d) <= 1.3"),
    ("ratio_lxc_oci_to_oci_template", ">=", 2.0, "(c)/(a) >= 2"),
    ("oci_template_exists_s", "<", 0.5, "(b) < 0.5 s"),
)

STRESS = (
    # (name, hostile_layers shape, its parameters, what it is)
    ("wide", "wide", {"count": 200000}, "200k members with 4 KB names"),
    ("deep", "deep", {"count": 20000}, "20k members under distinct parents 1990 directories deep"),
    ("deep_distinct", "deep_distinct", {"count": 20000}, "20k members each under its own 1990-deep chain"),
)
STRESS_RSS_MB = 300

# (a) for a stress image, run by hostile_layers.measure (which adds seconds and peak_rss_mb)
STRESS_TEMPLATE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager
start = time.monotonic()
try:
    out = TemplateManager({"image": sys.argv[2], "dest": sys.argv[3], "cache_dir": sys.argv[4],
                           "format": "vztmpl", "compression": "zstd"}).run()
    result["outcome"] = "converted"
    result["template_bytes"] = out.get("size")
except OciError as exc:
    result["outcome"] = "refused"
    result["message"] = str(exc)[-240:]
result["convert_s"] = round(time.monotonic() - start, 3)
"""

PULL = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
ImageManager({"image": sys.argv[2], "cache_dir": sys.argv[3]}).run()
"""

TEMPLATE = """
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager
except ImportError as exc:
    sys.stderr.write("cannot import TemplateManager from plugins/module_utils/oci/template.py: %s" % exc)
    sys.exit(3)
if len(sys.argv) == 2:
    sys.exit(0)
r = TemplateManager({"image": sys.argv[2], "dest": sys.argv[3], "cache_dir": sys.argv[4],
                     "format": "vztmpl", "compression": "zstd"}).run()
print(json.dumps(dict((k, r.get(k)) for k in ("changed", "path", "size", "digest", "sha256")), default=str))
"""

# The floor's decompression: the inflater the engine's compression module uses, to nowhere.
INFLATE = """
import sys, zlib
sys.path.insert(0, sys.argv[1])
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import compression
impl = compression.fast_zlib
total = 0
for path in sys.argv[2:]:
    with open(path, "rb") as handle:
        obj = impl.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            total += len(obj.decompress(chunk))
        assert obj.eof and not obj.unused_data, path
print(compression.INFLATER, total)
"""


# ---------------------------------------------------------------------------
# the image

def cleanup_layer(root):
    """Layer 3: what a Dockerfile's clean-up RUN leaves: umoci writes whiteouts."""
    archives = os.path.join(root, "var", "cache", "apt", "archives")
    for name in os.listdir(archives):
        if name.endswith(".deb"):
            os.unlink(os.path.join(archives, name))
    shutil.rmtree(os.path.join(root, "usr", "share", "man"))
    with open(os.path.join(root, "etc", "lxcri-bench-release"), "w") as handle:
        handle.write("bench/convert\n")


def opaque_layer(path):
    """Layer 4, written by hand (umoci never writes opaque whiteouts): /usr/share/doc
    replaced as a whole, /etc/motd whited out."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name):
            info = tar.gettarinfo(os.path.join(ROOTFS, name), arcname=name)
            info.uname = info.gname = "root"
            tar.addfile(info)

        def add_file(name, data, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 1700000000
            info.uname = info.gname = "root"
            tar.addfile(info, _Bytes(data))

        for name in ("etc", "usr", "usr/share", "usr/share/doc"):
            add_dir(name)
        add_file("etc/.wh.motd", b"")
        add_file("usr/share/doc/.wh..wh..opq", b"")
        add_file(README, b"Documentation was removed from this image.\n")


class _Bytes:
    def __init__(self, data):
        self.data = data

    def read(self, size=-1):
        data, self.data = (self.data, b"") if size is None or size < 0 else (self.data[:size], self.data[size:])
        return data


def ensure_layout(rebuild):
    if os.path.exists(os.path.join(LAYOUT, "index.json")) and not rebuild:
        return
    ensure_rootfs()
    building = LAYOUT + ".build"
    top = sorted(os.listdir(ROOTFS))
    build_layout(building, TAG, [repack(copy_from_rootfs(["usr"])),
                                 repack(copy_from_rootfs([n for n in top if n != "usr"])),
                                 repack(cleanup_layer),
                                 raw_layer(opaque_layer)])
    shutil.rmtree(LAYOUT, ignore_errors=True)
    os.rename(building, LAYOUT)
    shutil.rmtree(CACHE, ignore_errors=True)  # the old image's blobs


def blob_path(digest, layout=LAYOUT):
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexdigest)


def layer_paths():
    with open(os.path.join(LAYOUT, "index.json")) as handle:
        index = json.load(handle)
    descriptor = [m for m in index["manifests"]
                  if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == TAG][0]
    with open(blob_path(descriptor["digest"])) as handle:
        manifest = json.load(handle)
    return [blob_path(layer["digest"]) for layer in manifest["layers"]]


def whiteouts(layers):
    found = []
    for path in layers:
        out = run(["tar", "-tzf", path]).stdout.splitlines()
        found.append(sum(1 for name in out if os.path.basename(name.rstrip("/")).startswith(".wh.")))
    return found


# ---------------------------------------------------------------------------
# the sanity check of (a)'s output against (c)'s

def listing(path):
    """{name: (type, mode, owner, size)} from ``tar -tvf`` (names without ./ and trailing /)."""
    out = run(["tar", "--numeric-owner", "-tvf", path], timeout=600).stdout
    entries = {}
    for line in out.splitlines():
        perms, owner, size, dummy_date, dummy_time, name = line.split(None, 5)
        if perms[0] == "l":
            name = name.split(" -> ", 1)[0]
        elif perms[0] == "h":
            name = name.split(" link to ", 1)[0]
        if name.startswith("./"):
            name = name[2:]
        name = name.rstrip("/")
        entries[name or "."] = (perms[0], perms[1:], owner, size)
    return entries


def compare(ours, theirs):
    """Differences between (a)'s and (c)'s members, and which of them are expected."""
    dev = set(n for n in theirs if n.startswith("dev/"))
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    unexpected_missing = [n for n in only_theirs if n not in dev and n != "dev"]
    mismatched = []
    for name in sorted(set(ours) & set(theirs)):
        a, c = ours[name], theirs[name]
        fields = [a[1] == c[1], a[2] == c[2]]
        if "h" not in (a[0], c[0]):
            fields.append(a[0] == c[0])
            if a[0] == "-":
                fields.append(a[3] == c[3])
        if not all(fields):
            mismatched.append("%s: %s vs %s" % (name, a, c))
    problems = []
    if only_ours:
        problems.append("members only in (a): %s" % only_ours[:10])
    if unexpected_missing:
        problems.append("members of (c) missing from (a), not under dev/: %s" % unexpected_missing[:10])
    if mismatched:
        problems.append("%d members differ in type/mode/owner/size: %s" % (len(mismatched), mismatched[:5]))
    leftovers = [n for n in ours if os.path.basename(n).startswith(".wh.")]
    if leftovers:
        problems.append("whiteout files in (a): %s" % leftovers[:10])
    recipe = [n for n in ours if n.startswith("var/cache/apt/archives/") and n.endswith(".deb")]
    recipe += [n for n in ours if n == "usr/share/man" or n.startswith("usr/share/man/") or n == "etc/motd"]
    recipe += [n for n in ours if n.startswith("usr/share/doc/") and n != README]
    if recipe or README not in ours:
        problems.append("whiteouts not applied: %s%s" % (recipe[:10], "" if README in ours else ", no " + README))
    summary = {
        "members_a": len(ours), "members_c": len(theirs), "dev_content_in_c": len(dev),
        "dropped_from_c": len(only_theirs), "dev_dir_in_a": "dev" in ours,
    }
    return summary, problems


# ---------------------------------------------------------------------------
# the measurements

class Bench:
    def __init__(self, workdir, collections, template_ok):
        self.workdir = workdir
        self.collections = collections
        self.template_ok = template_ok
        self.image = "oci-layout:%s:%s" % (LAYOUT, TAG)
        self.layers = layer_paths()
        self.rootfs_tar = os.path.join(workdir, "rootfs.tar")
        self.times = dict((key, []) for key in ("a", "b", "c_unpack", "c_tar", "d_inflate", "d_gzip", "d_zstd"))
        self.keep = None  # the warm-up round's outputs, for the sanity check
        self.inflater = None
        self.uncompressed = None

    def template(self, dest):
        elapsed, out = timed([sys.executable, "-c", TEMPLATE, self.collections, self.image, dest, CACHE])
        return elapsed, json.loads(out)

    def measure_template(self, record):
        dest = tempfile.mkdtemp(dir=self.workdir)
        elapsed, first = self.template(dest)
        if not first["changed"] or not os.path.isfile(first["path"] or ""):
            raise SystemExit("(a) did not make a template: %s" % first)
        again, second = self.template(dest)
        same = all(second.get(k) == first.get(k) for k in ("path", "size", "digest", "sha256"))
        if second["changed"] or not same:
            raise SystemExit("(b) is not idempotent: %s after %s" % (second, first))
        if record:
            self.times["a"].append(elapsed)
            self.times["b"].append(again)
        if self.keep is None:
            self.keep = {"a": first}
        else:
            shutil.rmtree(dest)

    def measure_lxc(self, record):
        bundle = os.path.join(self.workdir, "bundle")
        out = os.path.join(self.workdir, "lxc-oci.tar.zst")
        unpack, dummy = timed(["umoci", "unpack", "--image", "%s:%s" % (LAYOUT, TAG), bundle], timeout=900)
        pack, dummy = timed(["tar", "-I", ZSTD, "-cpf", out, "-C", os.path.join(bundle, "rootfs"), "."],
                            timeout=900)
        if record:
            self.times["c_unpack"].append(unpack)
            self.times["c_tar"].append(pack)
        shutil.rmtree(bundle)
        if self.keep is not None and "c" not in self.keep:
            kept = os.path.join(self.workdir, "lxc-oci.kept.tar.zst")
            os.rename(out, kept)
            self.keep["c"] = kept
        else:
            os.unlink(out)

    def measure_inflate(self, record):
        elapsed, out = timed([sys.executable, "-c", INFLATE, self.collections] + self.layers, timeout=900)
        self.inflater, total = out.split()
        self.uncompressed = int(total)
        if record:
            self.times["d_inflate"].append(elapsed)

    def measure_gzip(self, record):
        with open(os.devnull, "wb") as null:
            elapsed, dummy = timed(["gzip", "-dc"] + self.layers, stdout=null, timeout=900)
        if record:
            self.times["d_gzip"].append(elapsed)

    def measure_zstd(self, record):
        with open(os.devnull, "wb") as null:
            elapsed, dummy = timed(["zstd", "-3", "-T0", "-q", "-c", self.rootfs_tar], stdout=null, timeout=900)
        if record:
            self.times["d_zstd"].append(elapsed)

    def prepare(self):
        """The rootfs tar the floor compresses, made once and not timed."""
        bundle = os.path.join(self.workdir, "floor-bundle")
        run(["umoci", "unpack", "--image", "%s:%s" % (LAYOUT, TAG), bundle], timeout=900)
        run(["tar", "-cpf", self.rootfs_tar, "-C", os.path.join(bundle, "rootfs"), "."], timeout=900)
        shutil.rmtree(bundle)

    def round(self, number, record):
        steps = [self.measure_lxc, self.measure_inflate, self.measure_gzip, self.measure_zstd]
        if self.template_ok:
            steps.insert(0, self.measure_template)
        shift = number % len(steps)
        for step in steps[shift:] + steps[:shift]:
            step(record)


def stress(workdir, collections):
    """Each stress image built now, pulled into a cache (untimed), then converted once, measured."""
    layout = os.path.join(workdir, "stress-layout")
    cache = os.path.join(workdir, "stress-cache")
    results = {}
    for name, shape, params, what in STRESS:
        started = time.monotonic()
        ref = write_image(layout, name, [hostile_layers.StreamLayer(shape, **params)], {"Cmd": ["/bin/sleep", "1"]})
        built = time.monotonic() - started
        with open(os.path.join(layout, "index.json")) as handle:
            descriptor = [m for m in json.load(handle)["manifests"]
                          if m["annotations"]["org.opencontainers.image.ref.name"] == name][0]
        with open(blob_path(descriptor["digest"], layout)) as handle:
            layer = json.load(handle)["layers"][0]
        timed([sys.executable, "-c", PULL, collections, ref, cache], timeout=1800)
        dest = tempfile.mkdtemp(dir=workdir)
        result = hostile_layers.measure(STRESS_TEMPLATE, [collections, ref, dest, cache], timeout=1800)
        shutil.rmtree(dest)
        result.update(what=what, layer_gzip_bytes=layer["size"], build_s=round(built, 1))
        results[name] = result
    return results


def median(values):
    return round(statistics.median(values), 3) if values else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the image")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/convert needs root (umoci unpack keeps owners and device nodes)")
    os.makedirs(BENCH_DIR, exist_ok=True)
    ensure_layout(args.rebuild)
    collections = collections_root()
    probe = subprocess.run([sys.executable, "-c", TEMPLATE, collections], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, check=False)
    template_error = None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["rc %d" % probe.returncode])[-1]
    if template_error:
        print("(a) and (b) NOT MEASURED: %s" % template_error, file=sys.stderr)
    timed([sys.executable, "-c", PULL, collections, "oci-layout:%s:%s" % (LAYOUT, TAG), CACHE])  # warm cache
    workdir = tempfile.mkdtemp(dir=BENCH_DIR)
    try:
        bench = Bench(workdir, collections, template_error is None)
        bench.prepare()
        bench.round(0, record=False)
        for number in range(args.rounds):
            bench.round(number, record=True)
        t = dict((key, median(values)) for key, values in bench.times.items())
        layers = bench.layers
        report = {
            "image": bench.image, "layers": len(layers), "whiteouts_per_layer": whiteouts(layers),
            "compressed_bytes": sum(os.path.getsize(p) for p in layers), "uncompressed_bytes": bench.uncompressed,
            "rootfs_tar_bytes": os.path.getsize(bench.rootfs_tar), "rounds": args.rounds,
            "oci_template_cold_s": t["a"], "oci_template_exists_s": t["b"],
            "lxc_oci_s": round(t["c_unpack"] + t["c_tar"], 3),
            "lxc_oci_umoci_unpack_s": t["c_unpack"], "lxc_oci_tar_zstd_s": t["c_tar"],
            "floor_s": round(t["d_inflate"] + t["d_zstd"], 3),
            "floor_inflate_s": t["d_inflate"], "floor_inflater": "python %s, fresh process" % bench.inflater,
            "floor_gzip_dc_s": t["d_gzip"], "floor_zstd_s": t["d_zstd"],
            "floor_with_gzip_dc_s": round(t["d_gzip"] + t["d_zstd"], 3),
            "samples_s": dict((key, [round(v, 3) for v in values]) for key, values in bench.times.items()),
        }
        problems = []
        if template_error is None:
            a, lxc = t["a"], report["lxc_oci_s"]
            report["ratio_oci_template_to_floor"] = round(a / report["floor_s"], 3)
            report["ratio_oci_template_to_floor_gzip_dc"] = round(a / report["floor_with_gzip_dc_s"], 3)
            report["ratio_lxc_oci_to_oci_template"] = round(lxc / a, 3)
            # the same ratios taken within each round, where the machine's load was alike
            times = bench.times
            report["per_round_median_ratio_oci_template_to_floor"] = median(
                [x / (i + z) for x, i, z in zip(times["a"], times["d_inflate"], times["d_zstd"])])
            report["per_round_median_ratio_lxc_oci_to_oci_template"] = median(
                [(u + p) / x for x, u, p in zip(times["a"], times["c_unpack"], times["c_tar"])])
            report["output_bytes_a"] = os.path.getsize(bench.keep["a"]["path"])
            report["output_bytes_c"] = os.path.getsize(bench.keep["c"])
            report["output_size_reported_a"] = bench.keep["a"].get("size")
            summary, problems = compare(listing(bench.keep["a"]["path"]), listing(bench.keep["c"]))
            report["members"] = summary
        if template_error is None:
            report["stress"] = stress(workdir, collections)
        print(json.dumps(report, indent=2))
        failed = False
        for key, op, bound, label in TARGETS:
            value = report.get(key)
            if value is None:
                ok = False
                label += ": not measured (%s)" % template_error
            else:
                ok = value <= bound if op == "<=" else value >= bound if op == ">=" else value < bound
                label += ": %s" % value
            failed = failed or not ok
            print("%s %s" % ("OK  " if ok else "MISS", label))
        if template_error is None:
            print("%s (a)'s output matches (c)'s rootfs (dev/ content dropped, whiteouts applied)%s"
                  % ("OK  " if not problems else "MISS", "".join("\n     " + p for p in problems)))
            for name, _shape, _params, what in STRESS:
                result = report["stress"][name]
                ok = result["peak_rss_mb"] < STRESS_RSS_MB
                failed = failed or not ok
                print("%s stress %s (%s): %s in %.1f s, peak RSS %.0f MB < %d MB"
                      % ("OK  " if ok else "MISS", name, what, result["outcome"], result["seconds"],
                         result["peak_rss_mb"], STRESS_RSS_MB))
        return 1 if failed or problems else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
