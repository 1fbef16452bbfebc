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


# --- pax headers: the engine's own bounded parser --------------------------------------

def flatten_blob(blob, limits=None):
    return fl.flatten([BlobLayer(blob, "hostile layer")], _NullSink(), limits)


def interpreters():
    """Every CPython 3.6+ found here (the test runner's, the system's, pyenv's), one per version."""
    import glob
    import os
    import subprocess
    import sys
    found = {}
    candidates = [sys.executable] + sorted(glob.glob("/usr/bin/python3.[0-9]*")) + sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for path in candidates:
        if path.endswith("-config") or not os.access(path, os.X_OK):
            continue
        probe = subprocess.run([path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
        version = probe.stdout.strip()
        if probe.returncode == 0 and tuple(int(v) for v in version.split(".")[:2]) >= (3, 6):
            found.setdefault(version, path)
    return found


PAX_BOMB = r'''
import sys, time
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten as fl
from lxcri_testbed import hostile_layers as hl
class Sink:
    def add(self, info, fileobj=None):
        pass
blob = hl.archive(hl.member("a"), hl.pax([b"9" * 1000000 + b" path=x\n"]), hl.member("b"))
start = time.time()
try:
    fl.flatten([fl.BlobLayer(blob, "hostile layer")], Sink())
    result["error"] = None
except Exception as exc:
    result["error"] = "%s: %s" % (type(exc).__name__, exc)
result["flatten_s"] = time.time() - start
'''


def test_pax_record_with_a_huge_length_field_is_refused_in_milliseconds_on_every_python():
    """A 1 MB run of digits as a pax record's length: tarfile before CPython 3.11.10/3.12.6
    searches it with quadratic regular expressions (about 15 minutes on 3.11.7), then
    raises a bare ValueError (int() of more than 4300 digits); the engine's parser refuses it."""
    import os
    import sys
    pythonpath = os.pathsep.join(p for p in sys.path if os.path.isdir(os.path.join(p, "lxcri_testbed"))
                                 or os.path.isdir(os.path.join(p, "ansible_collections")))
    found = interpreters()
    assert found
    for version, python in sorted(found.items()):
        result = hl.measure(PAX_BOMB, timeout=60, python=python, env={"PYTHONPATH": pythonpath})
        assert result["error"] and result["error"].startswith("FlattenError: layer 1 of 1 (hostile layer): member 2 "), \
            (version, result)
        assert "pax record at byte 0" in result["error"] and result["flatten_s"] < 1, (version, result)


@pytest.mark.parametrize("record, problem", [
    (b"5 a=\n", None),
    (b"0 path=x\n", "a length of 0"),
    (b"7 path=x\n", "a length of 7 does not end at a newline"),
    (b"9 path=x", "a length of 9 does not end"),
    (b"99999999999999999999 path=x\n", "a length of 99999999999999999999"),
    (b"999999999999999999999 path=x\n", "its length is not 1 to 20 decimal digits"),
    (b" 9 path=x\n", "its length is not"),
    (b"-9 path=x\n", "its length is not"),
    (b"8 pathx\n", "no keyword=value"),
    (b"6 =xy\n", "no keyword=value"),
    (b"\xd9\xa1 path=x\n", "its length is not"),  # an Arabic-Indic digit one: not ASCII
], ids=lambda v: repr(v)[:30])
def test_pax_records_are_framed_strictly(record, problem):
    blob = hl.archive(hl.member("a"), hl.pax([record]), hl.member("b"))
    if problem is None:
        assert flatten_blob(blob).lookup("b").type == "file"
        return
    with pytest.raises(FlattenError, match=r"layer 1 of 1 \(hostile layer\): member 2 \(header at offset 512\): "
                       r"pax record at byte 0: " + problem):
        flatten_blob(blob)


@pytest.mark.parametrize("keyword, value, expected", [
    ("uid", "1000", ("uid", 1000)),
    ("gid", "00042", ("gid", 42)),
    ("mtime", "1700000000.123456789987654321", ("mtime", 1700000000)),
    ("mtime", "-86400", ("mtime", -86400)),
    ("uid", "abc", "uid='abc'"),  # tarfile: uid 0
    ("uid", "", "uid=''"),  # tarfile: uid 0
    ("gid", "1e3", "gid='1e3'"),
    ("uid", "9" * 5000, "uid='99999999"),  # tarfile: a bare ValueError (int() of > 4300 digits) on 3.11+
    ("size", "-1", "size='-1'"),
    ("size", "0x10", "size='0x10'"),
    ("mtime", "inf", "mtime='inf'"),  # tarfile: float inf, then a bare OverflowError
    ("mtime", "nan", "mtime='nan'"),  # tarfile: a bare ValueError
    ("mtime", "1e400", "mtime='1e400'"),
    ("mtime", "\u0661\u0662", "mtime="),  # Unicode digits: float() takes them
])
def test_pax_numbers_are_decimal_or_refused(keyword, value, expected):
    blob = hl.archive(hl.pax([(keyword, value)]), hl.member("f"))
    if isinstance(expected, tuple):
        entry = flatten_blob(blob).lookup("f")
        assert getattr(entry, expected[0]) == expected[1]
        return
    with pytest.raises(FlattenError, match=r"layer 1 of 1 \(hostile layer\): member 1 \(header at offset 0\): "
                       r"'f': pax record " + expected.replace("(", r"\(")) as info:
        flatten_blob(blob)
    assert "is not a decimal number of at most 20 digits" in str(info.value)


def test_pax_headers_read_as_tarfile_reads_them():
    """The engine's pax parser gives what tarfile gives on well-formed headers: names (UTF-8, raw
    bytes with hdrcharset=BINARY or without), numbers, xattrs, long links, global headers."""
    members = [hl.pax([("comment", "global"), ("uid", "7")], kind=tarfile.XGLTYPE),
               hl.pax([("path", "d/" + "n" * 300), ("mtime", "1700000001.5"), ("uid", "70000000"),
                       ("SCHILY.xattr.user.k", "v\x00w"), ("SCHILY.xattr.security.capability", b"\x01\x02\xff")]),
               hl.member("placeholder"),
               hl.pax([("hdrcharset", "BINARY"), ("path", b"bin\xffname"), ("uname", b"\xe9")]),
               hl.member("placeholder2"),
               hl.pax([("path", b"raw\xfe"), ("linkpath", "t/" + "x" * 200)]),
               hl.member("placeholder3", kind=tarfile.SYMTYPE),
               hl.pax([("size", "3"), ("gid", "12")]),
               hl.member("sized", b"abc"),
               hl.member("plain")]
    blob = hl.archive(*members)
    fields = ("name", "linkname", "size", "uid", "gid", "mtime", "uname", "gname", "type", "pax_headers")

    def read(tarinfo):
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r", encoding="utf-8", errors="surrogateescape",
                          tarinfo=tarinfo) as tar:
            return [tuple(getattr(m, f) for f in fields) + (m.offset, m.offset_data) for m in tar]

    assert read(fl._FastTarInfo) == read(tarfile.TarInfo)
