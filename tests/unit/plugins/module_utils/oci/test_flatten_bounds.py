"""The flattener's bounds on hostile layers (issue 18): memory and time of tracking, header parsing, errors.

Layers are made on the spot by lxcri_testbed.hostile_layers: stress shapes streamed while
they are read, and headers written byte by byte.  Memory is the peak RSS of a fresh Python
running one conversion; bounds are generous (a noisy shared 2-core machine) but far below
what the shapes cost before they were bounded.
"""

import io
import tarfile
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten as fl
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import BlobLayer, FlattenError, Limits
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import _NullSink
from lxcri_testbed import hostile_layers as hl

# A conversion in a fresh Python: the shape as the top layer over ``below`` (tar bytes), into a
# sink that drains data; RLIMIT_AS stops a runaway at 2 GB instead of the machine's memory.
CONVERT = r'''
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten as fl
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import _NullSink
from lxcri_testbed.hostile_layers import StreamLayer, archive, member
import json
shape, params, cover = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
layers = [StreamLayer(shape, **params)]
if cover:  # an upper layer that makes the whole shape hidden (its members are read, not emitted)
    layers.append(fl.BlobLayer(archive(member(cover + "/.wh..wh..opq"))))
try:
    tree = fl.flatten(layers, _NullSink())
    result["outcome"] = "converted"
    result["members"] = tree.members
except fl.FlattenError as exc:
    result["outcome"] = "refused"
    result["message"] = str(exc)[-300:]
except MemoryError:
    result["outcome"] = "MemoryError"
'''


def convert_in_child(shape, cover="", **params):
    import json
    import os
    import sys
    here = [p for p in sys.path if os.path.isdir(os.path.join(p, "lxcri_testbed"))][:1]
    roots = [p for p in sys.path if os.path.isdir(os.path.join(p, "ansible_collections"))][:1]
    return hl.measure(CONVERT, [shape, json.dumps(params), cover], timeout=300,
                      env={"PYTHONPATH": os.pathsep.join(here + roots)})


def best_of_two(layers):
    best = None
    for dummy in range(2):
        start = time.perf_counter()
        fl.flatten(layers(), _NullSink())
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


# --- memory and time of tracking -----------------------------------------------------

@pytest.mark.parametrize("cover", ["", "000" + "w" * 197], ids=["emitted", "hidden"])
def test_long_names_cost_no_memory_per_name_byte(cover):
    """50k members with 4 KB names: tracking kept every name (and a hidden member's TarInfo)
    whole, about 9 KB a member (450 MB); now a member costs its last component."""
    result = convert_in_child("wide", cover, count=50000)
    assert result["outcome"] == "converted", result
    assert result["peak_rss_mb"] < 200, result


def test_deep_parents_cost_what_long_names_cost():
    """3000 members under distinct parents 1990 directories deep: every member rebuilt its
    ancestors as strings (depth x path length, 8x the time of as long a name of 20 parts)."""
    n = 3000
    deep = best_of_two(lambda: [hl.StreamLayer("deep", count=n, depth=1990)])
    shallow = best_of_two(lambda: [hl.StreamLayer("deep", count=n, depth=20, component="d" * 199)])
    assert deep < 4 * shallow + 0.5, (deep, shallow)


def test_hard_links_into_deep_lower_directories_cost_what_long_names_cost():
    """Hard links to targets deep in a lower layer: each link rebuilt the target's ancestors, and
    each layer's end rebuilt them again for every waiting target."""
    def layers(depth, component):
        prefix = (component + "/") * depth
        lower = b"".join(hl.member("%s%05d" % (prefix, i)) for i in range(1500))
        upper = b"".join(hl.member("l%05d" % i, kind=tarfile.LNKTYPE, linkname="%s%05d" % (prefix, i))
                         for i in range(1500))
        return lambda: [BlobLayer(hl.archive(lower)), BlobLayer(hl.archive(upper)), BlobLayer(hl.archive(upper))]
    deep = best_of_two(layers(1990, "d"))
    shallow = best_of_two(layers(20, "d" * 199))
    assert deep < 4 * shallow + 0.5, (deep, shallow)


def test_distinct_deep_parents_are_refused_in_bounded_memory():
    """20k members each under its own chain of 1990 unlisted directories imply 40M directories:
    the conversion grew until memory ran out; now max_implied_dirs refuses it early."""
    result = convert_in_child("deep_distinct", count=20000)
    assert result["outcome"] == "refused", result
    assert "max_implied_dirs (262144)" in result["message"], result
    assert result["peak_rss_mb"] < 300 and result["seconds"] < 60, result


def test_max_implied_dirs_counts_unlisted_directories():
    names = [hl.member("a/b/c/f%d" % i) for i in range(3)]
    blob = hl.archive(*names)
    tree = fl.flatten([BlobLayer(blob)], _NullSink(), Limits(max_implied_dirs=3))
    assert tree.lookup("a/b").type == "dir" and tree.lookup("a/b/c/f2").type == "file"
    with pytest.raises(FlattenError, match=r"a/b/c/d/f0: the members imply more than max_implied_dirs \(3\)"):
        fl.flatten([BlobLayer(hl.archive(hl.member("a/b/c/d/f0")))], _NullSink(), Limits(max_implied_dirs=3))


def test_implied_directories_parents_first_siblings_by_name():
    blob = hl.archive(*(hl.member(n) for n in ("z/y/f", "a.c/f", "a/b/f", "a/a/f")))
    out = io.BytesIO()
    writer = fl.open_tar_writer(out)
    fl.flatten([BlobLayer(blob)], fl.TarSink(writer))
    writer.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = [m.name for m in tar if m.isdir()]
    assert names == [".", "./a", "./a/a", "./a/b", "./a.c", "./z", "./z/y"]


def test_symlink_targets_kept_for_resolving_are_bounded():
    """Symlink targets are kept to resolve paths (init, WORKDIR, passwd): 200k symlinks with
    4 KB targets kept 800 MB; their total is bounded by max_symlink_bytes."""
    links = [hl.member("l%d" % i, kind=tarfile.SYMTYPE, linkname="t" * 90) for i in range(12)]
    fl.flatten([BlobLayer(hl.archive(*links[:11]))], _NullSink(), Limits(max_symlink_bytes=1000))
    with pytest.raises(FlattenError, match=r"l11: symlink targets take more than max_symlink_bytes \(1000\)"):
        fl.flatten([BlobLayer(hl.archive(*links))], _NullSink(), Limits(max_symlink_bytes=1000))
