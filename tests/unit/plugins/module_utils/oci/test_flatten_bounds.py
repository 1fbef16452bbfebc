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
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten_read
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
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
    """The smaller CPU time (this process's, not the wall clock: a loaded machine stretches waits, not the work)
    of two flattens; the tests compare two shapes by their ratio, never against a time."""
    best = None
    for dummy in range(2):
        start = time.process_time()
        fl.flatten(layers(), _NullSink())
        elapsed = time.process_time() - start
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


def test_later_members_replacing_waiting_hard_links_cost_what_they_cost_in_order():
    """20k hard links waiting for a lower layer's content (through a link of their own layer),
    then a file of each name, last first: each file searched the list of waiting names (5 s,
    six times the same names in order; quadratic)."""
    def layers(order):
        links = [hl.member("t", kind=tarfile.LNKTYPE, linkname="u")]
        links += [hl.member("l%05d" % i, kind=tarfile.LNKTYPE, linkname="t") for i in range(20000)]
        files = [hl.member("l%05d" % i) for i in order(range(20000))]
        blobs = (hl.archive(hl.member("u", b"x")), hl.archive(*(links + files)))
        return lambda: [BlobLayer(blob) for blob in blobs]
    backwards = best_of_two(layers(reversed))
    in_order = best_of_two(layers(list))
    assert backwards < 3 * in_order + 0.5, (backwards, in_order)


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
    ("mtime", "-86400", ("mtime", 0)),  # a number, clamped (Tree.clamped_mtimes)
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
    bytes with hdrcharset=BINARY or without), numbers, xattrs, long links.  (Global headers differ on
    purpose: the engine skips them, test_flatten's pax global header tests.)"""
    members = [hl.pax([("path", "d/" + "n" * 300), ("mtime", "1700000001.5"), ("uid", "70000000"),
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

    assert read(flatten_read._FastTarInfo) == read(tarfile.TarInfo)


# --- malformed headers: the engine's errors only ---------------------------------------

def expect_refusal(blob, match):
    with pytest.raises(FlattenError, match=match) as info:
        flatten_blob(blob)
    return str(info.value)


@pytest.mark.parametrize("extension", ["pax", "gnu-longname"])
def test_extension_headers_before_one_member_are_bounded(extension):
    """tarfile reads a member's extension headers recursively: 500 of them (500 KB, within the
    header budget) raised a bare RecursionError."""
    def one(i):
        if extension == "pax":
            return hl.pax([("comment", "%d" % i)])
        name = ("n%d" % i).encode()
        return hl.header("././@LongLink", len(name) + 1, tarfile.GNUTYPE_LONGNAME, fmt=tarfile.GNU_FORMAT) + \
            (name + b"\0").ljust(512, b"\0")
    for count in (flatten_read.MAX_EXTENSION_HEADERS, 500):
        blob = hl.archive(hl.member("a"), *([one(i) for i in range(count)] + [hl.member("b")]))
        if count == flatten_read.MAX_EXTENSION_HEADERS:
            flatten_blob(blob)
            continue
        expect_refusal(blob, r"layer 1 of 1 \(hostile layer\): member 2 \(header at offset 512\): more than 16 "
                             r"extension headers \(pax, GNU long name\) before one member")


def base256(value, width):
    """A GNU base-256 number field (negative values in two's complement)."""
    return (b"\x80" if value >= 0 else b"\xff") + (value % (256 ** (width - 1))).to_bytes(width - 1, "big")


@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_negative_sizes_are_refused(kind):
    """A base-256 negative size: tarfile's next header offset went backwards (an 'internal error'),
    and a pax or long name header of negative size read the rest of the layer into memory."""
    blob = hl.archive(hl.member("a"), hl.header("n", kind=kind, raw={"size": base256(-1024, 12)}),
                      hl.member("b", b"x" * 5000))
    expect_refusal(blob, r"member 2 \(header at offset 512\): 'n': negative size -1024")


def gnu_sparse_archives(tmp_path):
    """A sparse file (40 data blocks among holes) archived by GNU tar in each sparse format."""
    import subprocess
    path = tmp_path / "sparse"
    with open(str(path), "wb") as handle:
        for block in range(40):
            handle.seek(block * 65536)
            handle.write(b"data%02d" % block)
        handle.truncate(40 * 65536 + 4096)
    archives = {}
    for name, options in (("gnu", ["--format=gnu"]), ("pax-0.0", ["--format=pax", "--sparse-version=0.0"]),
                          ("pax-0.1", ["--format=pax", "--sparse-version=0.1"]),
                          ("pax-1.0", ["--format=pax", "--sparse-version=1.0"])):
        archives[name] = subprocess.run(["tar", "--sparse", "-cf", "-", "-C", str(tmp_path), "sparse"] + options,
                                        stdout=subprocess.PIPE, check=True).stdout
    return archives


def test_sparse_members_are_refused_whatever_their_map(tmp_path):
    """Sparse members are refused; a truncated or malformed map surfaced as a bare IndexError
    (old GNU extension blocks), ValueError (pax 0.1 map, 0.0 size, 1.0 map) before."""
    archives = gnu_sparse_archives(tmp_path)
    for name, blob in sorted(archives.items()):
        assert b"data39" in blob, name
        expect_refusal(hl.member("a") + blob, r"sparse: sparse files are not supported")
    # old GNU: the layer ends inside the extension blocks of the map
    gnu = archives["gnu"]
    assert gnu[156:157] == b"S" and gnu[482] == 1
    expect_refusal(gnu[:512 + 100], r"member 1 \(header at offset 0\): 'sparse': the layer ends inside the sparse map")
    # pax 0.1: a map that is not numbers; 0.0: a size that is not one; 1.0: a map cut short
    for records in ([("GNU.sparse.numblocks", "1"), ("GNU.sparse.map", "0,x,,"), ("GNU.sparse.name", "s")],
                    [("GNU.sparse.size", "12x"), ("GNU.sparse.numblocks", "1"), ("GNU.sparse.offset", "0"),
                     ("GNU.sparse.numbytes", "zz")],
                    [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "s"),
                     ("GNU.sparse.realsize", "99999999999999999999999")]):
        for data in (b"", b"30\n0\n", b"\n\n\n"):
            blob = hl.archive(hl.member("a"), hl.pax(records), hl.member("GNUSparseFile.0/s", data))
            expect_refusal(blob, r": (s|GNUSparseFile.0/s): sparse files are not supported")


def fuzz_corpus(tmp_path):
    """Well-formed layers in every header flavour the flattener reads: ustar, GNU (long names,
    base-256 numbers), pax (records, xattrs, globals) and GNU tar's four sparse formats."""
    corpus = dict(("sparse " + name, blob) for name, blob in gnu_sparse_archives(tmp_path).items())
    for fmt, label in ((tarfile.USTAR_FORMAT, "ustar"), (tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
            def add(name, kind=tarfile.REGTYPE, data=b"", **fields):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.size = len(data)
                info.mtime = hl.MTIME
                for key, value in fields.items():
                    setattr(info, key, value)
                tar.addfile(info, io.BytesIO(data) if data else None)
            add("etc", tarfile.DIRTYPE, mode=0o755)
            add("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", mode=0o644)
            add("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox")
            add("bin/ash", tarfile.LNKTYPE, linkname="etc/passwd")
            add("fifo", tarfile.FIFOTYPE)
            if fmt != tarfile.USTAR_FORMAT:
                add("d/" + "n" * 150, data=b"long", uid=70000000 if fmt == tarfile.GNU_FORMAT else 7)
                add("l/" + "k" * 120, tarfile.LNKTYPE, linkname="d/" + "n" * 150)
            if fmt == tarfile.PAX_FORMAT:
                add("x", data=b"x", pax_headers={"SCHILY.xattr.user.a": "b", "mtime": "1700000000.5"})
        corpus[label] = out.getvalue()
    return corpus


FIELD_NAMES = ("mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "devmajor", "devminor")


def mutations(rng, blob):
    """Mutated copies of a layer: header fields, the old GNU sparse area, pax and long name data,
    truncations."""
    blocks = [i for i in range(0, len(blob) - 511, 512) if blob[i + 257:i + 262] == b"ustar"]
    while True:
        data = bytearray(blob)
        at = rng.choice(blocks)
        what = rng.random()
        if what < 0.55:
            start, width = hl.FIELDS[rng.choice(FIELD_NAMES)]
            if rng.random() < 0.3:
                start, width = 386, 126  # old GNU sparse structs, isextended, realsize
            value = rng.choice([
                lambda: bytes(rng.choice(b"01234567") for dummy in range(rng.randint(1, width))),
                lambda: bytes(rng.randrange(256) for dummy in range(width)),
                lambda: base256(rng.randrange(-2 ** 60, 2 ** 60), width),
                lambda: b"\xff" * width, lambda: b"\x80" + b"\xff" * (width - 1),
                lambda: b" " * width, lambda: b"\0" * width, lambda: b"9" * width, lambda: b"-1",
                lambda: bytes([rng.choice(b"0LKxgS12345679")]),
            ])()
            data[at + start:at + start + min(width, len(value))] = value[:width]
        elif what < 0.85:
            # the data following a header: pax records, long names, sparse maps
            spot = at + 512 + rng.randrange(min(1024, max(1, len(blob) - at - 512)))
            for dummy in range(rng.randint(1, 4)):
                if spot < len(data):
                    data[spot] = rng.choice(b"0123456789 =\n\0\xffxGNU.sparse")
                spot += rng.randint(1, 30)
        else:
            del data[rng.randrange(len(data)):]
        if rng.random() < 0.85 and at + 512 <= len(data):
            data[at:at + 512] = hl.checksum(bytes(data[at:at + 512]))
        yield bytes(data)


def test_fuzzed_headers_give_the_engine_errors_only(tmp_path):
    """2100 corrupted layers (numbers in octal and base-256, sizes, types, link names, sparse
    areas and maps of the GNU and pax 0.0/0.1/1.0 kinds, pax records, truncations): every one
    converts or is refused with the engine's error, converted into a template tar."""
    import random
    corpus = fuzz_corpus(tmp_path)
    rng = random.Random(18)
    outcomes = {}
    for label, blob in sorted(corpus.items()):
        produce = mutations(rng, blob)
        for case in range(300):
            data = next(produce)
            out = io.BytesIO()
            writer = fl.open_tar_writer(out)
            try:
                fl.flatten([BlobLayer(data, "fuzzed %s %d" % (label, case))], fl.TarSink(writer))
                outcomes["converted"] = outcomes.get("converted", 0) + 1
            except OciError as exc:
                assert str(exc).startswith("layer 1 of 1 (fuzzed %s %d): " % (label, case)), exc
                outcomes["refused"] = outcomes.get("refused", 0) + 1
            except Exception as exc:  # noqa: B902 - what the test is about
                raise AssertionError("%s case %d: %s: %s (blob %r)" % (label, case, type(exc).__name__, exc, data))
    assert outcomes["converted"] > 300 and outcomes["refused"] > 300, outcomes
