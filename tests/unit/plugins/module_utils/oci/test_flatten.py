"""The layer flattener: overlay semantics, hard links, metadata, limits and the breakout corpus.

Layers are built in memory with tarfile.  Where extraction matters, the
output is extracted with GNU tar using Proxmox VE's restore flags, into a
temp dir, and the test checks that nothing appeared or changed outside it.
"""

import gzip
import hashlib
import io
import os
import random
import shutil
import stat
import struct
import subprocess
import tarfile
import uuid

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten as fl
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import flatten_merge, flatten_read
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import digest_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError, VerificationError
from lxcri_testbed.oci_build import ZeroBomb, old_gnu_member, pax_global_header
from lxcri_testbed.pve_restore import restore_command
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import BlobLayer, FlattenError, Limits, flatten
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore

GNU_TAR = shutil.which("tar")
ZSTD = shutil.which("zstd")
needs_gnu_tar = pytest.mark.skipif(GNU_TAR is None, reason="GNU tar not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="restoring owners, capabilities and devices needs root")


# --- building layers ---------------------------------------------------------------

def F(name, data=b"", **kw):
    return dict(kw, name=name, kind="file", data=data)


def D(name, **kw):
    return dict(kw, name=name, kind="dir")


def S(name, target, **kw):
    return dict(kw, name=name, kind="symlink", link=target)


def H(name, target, **kw):
    return dict(kw, name=name, kind="hardlink", link=target)


def WH(name):
    return F(name)


TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
         "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "global": tarfile.XGLTYPE}


def G(**records):
    return dict(name="pax_global_header", kind="global", pax=records)


def tar_of(members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for spec in members:
            info = tarfile.TarInfo(spec["name"])
            info.type = spec.get("type", TYPES[spec["kind"]])
            info.mode = spec.get("mode", 0o755 if spec["kind"] == "dir" else 0o644)
            info.uid = spec.get("uid", 0)
            info.gid = spec.get("gid", 0)
            info.uname = spec.get("uname", "")
            info.mtime = spec.get("mtime", 1000)
            info.linkname = spec.get("link", "")
            info.devmajor = spec.get("major", 0)
            info.devminor = spec.get("minor", 0)
            if "pax" in spec:
                info.pax_headers = spec["pax"]
            if spec["kind"] == "global":  # a pax global header ('g') here, with records spec["pax"]
                header = pax_global_header(spec["pax"])
                tar.fileobj.write(header)
                tar.offset += len(header)
                continue
            data = spec.get("data")
            if spec["kind"] == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def layer(*members, **kw):
    compress = kw.pop("compress", None)
    blob = tar_of(members, kw.pop("fmt", tarfile.PAX_FORMAT))
    diff_id = digest_of(blob)
    if compress == "gzip":
        blob = gzip.compress(blob)
    elif compress == "zstd":
        blob = subprocess.run([ZSTD, "-q", "-c"], input=blob, stdout=subprocess.PIPE, check=True).stdout
    kw.setdefault("diff_id", diff_id)
    return BlobLayer(blob, kw.pop("description", "test layer"), **kw)


def run(layers, limits=None, capture=("etc/passwd", "etc/group")):
    """Flatten into a vztmpl-style tar (again, with what a pass learned, when flatten asks for it, as
    oci_template does); returns (tree, output bytes, {name: member} of the output)."""
    def attempt(hints):
        out = io.BytesIO()
        writer = fl.open_tar_writer(out)
        try:
            tree = flatten(layers, fl.TarSink(writer), limits=limits, capture=capture, hints=hints)
        finally:
            writer.close()
        return tree, out.getvalue()

    tree, blob = fl.with_restarts(attempt)
    return tree, blob, members_of(blob)


class Member:
    def __init__(self, info, data):
        self.info = info
        self.data = data
        self.name = info.name
        self.type = info.type
        self.linkname = info.linkname


def members_of(blob):
    """Output members by canonical name (the "./" prefix dropped), in order of appearance."""
    result = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else None
            name = info.name[2:] if info.name.startswith("./") else info.name
            result.setdefault("__order__", []).append(name)
            result[name] = Member(info, data)
    return result


def names(members):
    return list(members.get("__order__", []))


def expect_error(layers, match, limits=None):
    with pytest.raises(FlattenError, match=match) as info:
        run(layers, limits=limits)
    return str(info.value)


# --- extraction with GNU tar -----------------------------------------------------------

def snapshot(top, skip):
    """Everything under ``top`` except ``skip``: path -> (type, size, mtime, mode, content hash)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            seen[path] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, st.st_mode, digest)
    return seen


def extract(blob, tmp_path, probes=()):
    """Extract as Proxmox does into tmp_path/root; assert nothing outside it appeared or changed."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    archive = tmp_path / "out.tar"
    archive.write_bytes(blob)
    before = snapshot(str(tmp_path), str(root))
    for probe in probes:
        assert not os.path.lexists(probe), probe
    proc = subprocess.run(restore_command(archive, root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    try:
        for probe in probes:
            assert not os.path.lexists(probe), "extraction escaped to %s" % probe
    finally:
        for probe in probes:
            if os.path.lexists(probe) and not os.path.isdir(probe):
                os.unlink(probe)
    after = snapshot(str(tmp_path), str(root))
    after.pop(str(archive), None)
    before.pop(str(archive), None)
    assert after == before, "extraction changed files outside the root"
    assert proc.returncode == 0, proc.stderr.decode()
    return root


@pytest.fixture
def probe():
    """A unique file name, and the places outside the root an escape would put it."""
    name = "lxcri-flatten-probe-" + uuid.uuid4().hex[:12]
    return name


def probes_for(name, tmp_path):
    places = ["/etc/" + name, "/" + name, str(tmp_path / name), str(tmp_path.parent / name),
              str(tmp_path.parent.parent / name)]
    return places


# --- sink contract, formats ----------------------------------------------------------------

class ListSink:
    def __init__(self):
        self.items = []

    def add(self, info, fileobj=None):
        data = fileobj.read(info.size + 10) if fileobj is not None else None
        self.items.append((info.name, info.type, info.linkname, data, info))


def test_sink_gets_canonical_names_exact_data_and_earlier_link_targets():
    sink = ListSink()
    tree = flatten([layer(D("./"), D("./etc/"), F("./etc//passwd", b"root:x:0:0\n"), F("/abs", b"A"),
                          H("./etc/passwd.lnk", "/etc//passwd"), S("./etc/alias/", "passwd"))], sink)
    got = [(n, t, ln, d) for n, t, ln, d, _i in sink.items]
    assert got == [(".", tarfile.DIRTYPE, "", None), ("etc", tarfile.DIRTYPE, "", None),
                   ("etc/passwd", tarfile.REGTYPE, "", b"root:x:0:0\n"), ("abs", tarfile.REGTYPE, "", b"A"),
                   ("etc/passwd.lnk", tarfile.LNKTYPE, "etc/passwd", None), ("etc/alias", tarfile.SYMTYPE, "passwd", None)]
    for _n, _t, _l, _d, info in sink.items:
        assert info.uname == "" and info.gname == "" and isinstance(info.mtime, int)
    assert tree.members == 6 and tree.bytes == 12
    assert tree.lookup("/etc/passwd.lnk").type == "hardlink" and tree.lookup("etc/passwd.lnk").linkname == "etc/passwd"
    assert tree.captured("etc/passwd.lnk") == b"root:x:0:0\n"


def test_tarsink_fast_headers_are_byte_identical_to_tarfile():
    def output(fast):
        out = io.BytesIO()
        writer = fl.open_tar_writer(out)
        sink = fl.TarSink(writer)
        sink.fast = fast
        flatten([meta_layer(), layer(D("d"), F("d/" + "x" * 97, b"x" * 1000), F("d/" + "y" * 98, b"y"), F("caf\u00e9", b"c"),
                                     S("s", "d"), H("h", "d/" + "x" * 97), F("big-uid", b"u", uid=3000000), F("z", b""))], sink)
        writer.close()
        return out.getvalue()

    fast, slow = output(True), output(False)
    assert len(fast) % tarfile.RECORDSIZE == 0
    probe = tarfile.TarInfo("x").tobuf(tarfile.PAX_FORMAT)
    if probe[329:345] == b"\0" * 16:  # Python 3.10+ leaves a non-device's numbers empty, as we do
        assert fast == slow
    with tarfile.open(fileobj=io.BytesIO(fast)) as one, tarfile.open(fileobj=io.BytesIO(slow)) as two:
        left, right = one.getmembers(), two.getmembers()
        assert [m.get_info() for m in left] == [m.get_info() for m in right] and len(left) == 14
        assert [m.pax_headers for m in left] == [m.pax_headers for m in right]


def header_blocks(blob):
    return [blob[i:i + 512] for i in range(0, len(blob), 512)]


def parse(parser, buf):
    try:
        info = parser.frombuf(buf, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return type(exc).__name__
    return (info.get_info(), info.chksum, info.type)


class TarfileWithGnuPrefixRule(tarfile.TarInfo):
    """tarfile's parser, with the prefix field joined only under the ustar magic (GNU tar's and Go's rule)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super(TarfileWithGnuPrefixRule, cls).frombuf(buf, encoding, errors)
        prefix = tarfile.nts(buf[345:500], encoding, errors)
        if prefix and buf[257:263] != b"ustar\0" and obj.type not in tarfile.GNU_TYPES:
            assert obj.name.startswith(prefix + "/")
            obj.name = obj.name[len(prefix) + 1:]
        return obj


def with_checksum(block):
    block = bytearray(block)
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@pytest.mark.parametrize("method", ["frombuf", "_tarfile_frombuf"])  # the fast path and its fallback
def test_old_gnu_atime_and_ctime_are_not_a_name_prefix(method):
    parser = getattr(flatten_read._FastTarInfo, method)
    block = old_gnu_member("etc/passwd")[:512]
    assert tarfile.TarInfo.frombuf(block, "utf-8", "strict").name == "14524770400/etc/passwd"  # tarfile's reading
    assert parser(block, "utf-8", "surrogateescape").name == "etc/passwd"
    ustar = bytearray(tar_of([F("passwd")], tarfile.USTAR_FORMAT)[:512])
    ustar[345:348] = b"etc"
    assert parser(with_checksum(ustar), "utf-8", "surrogateescape").name == "etc/passwd"  # ustar: a prefix


@needs_gnu_tar
def test_old_gnu_header_names_the_file_gnu_tar_restores(tmp_path):
    blob = old_gnu_member("etc/passwd", b"root:x:0:0::/:/bin/sh\n") + b"\0" * 1024
    tree, out_blob, out = run([BlobLayer(blob, diff_id=digest_of(blob)), layer(F("etc/group", b"root:x:0:\n"))])
    assert sorted(n for n in out if n != "__order__") == [".", "etc", "etc/group", "etc/passwd"]
    assert tree.captured("etc/passwd") == b"root:x:0:0::/:/bin/sh\n"
    reference = tmp_path / "reference"
    reference.mkdir()
    (tmp_path / "layer.tar").write_bytes(blob)
    subprocess.run(restore_command(tmp_path / "layer.tar", reference), check=True)
    assert os.listdir(str(reference)) == ["etc"] and os.listdir(str(reference / "etc")) == ["passwd"]
    root = extract(out_blob, tmp_path)
    assert (root / "etc/passwd").read_bytes() == b"root:x:0:0::/:/bin/sh\n"


def test_fast_header_parser_matches_tarfile():
    blocks = []
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        blocks += header_blocks(tar_of([D("./"), F("d/" + "p" * 120 + "/file", b"x" * 700, uid=70000, mtime=2 ** 33 - 1), S("s", "t"),
                                        H("h", "s"), dict(name="dev/c", kind="chr", major=4, minor=64), F("a-b", b"", mode=0o7777),
                                        F("caf\u00e9/\udcff", b"z")]
                                       + ([F("big", b"", uid=2 ** 22, gid=5)] if fmt != tarfile.USTAR_FORMAT else []), fmt))
    if GNU_TAR is not None:
        archive = subprocess.run([GNU_TAR, "--format=gnu", "-cf", "-", "-C", "/", "etc/hostname", "etc/passwd"],
                                 stdout=subprocess.PIPE, check=True).stdout
        blocks += header_blocks(archive)[:8]
    ustar = tarfile.TarInfo("v7dir/")
    ustar.type = tarfile.AREGTYPE
    blocks.append(ustar.tobuf(tarfile.USTAR_FORMAT))
    spaced = bytearray(tarfile.TarInfo("sp").tobuf(tarfile.USTAR_FORMAT))
    spaced[100:108] = b" 000644 "
    spaced[148:156] = b"        "
    spaced[148:156] = b"%06o\0 " % sum(spaced)
    blocks.append(bytes(spaced))
    rng = random.Random(5)
    for block in list(blocks):
        for dummy in range(40):  # random corruption, including checksum-consistent ones
            mutated = bytearray(block)
            for dummy2 in range(rng.randint(1, 3)):
                mutated[rng.randrange(512)] = rng.choice((0, 0x20, 0x30, 0x37, 0x38, 0x80, 0xff, rng.randrange(256)))
            if rng.random() < 0.5:
                mutated[148:156] = b"        "
                mutated[148:156] = b"%06o\0 " % (sum(mutated) & 0o777777)
            blocks.append(bytes(mutated))
    blocks += [b"", b"\0" * 512, b"\0" * 100]
    fast_count = 0
    blocks.append(old_gnu_member("d/f")[:512])
    for buf in blocks:
        assert parse(flatten_read._FastTarInfo, buf) == parse(TarfileWithGnuPrefixRule, buf), buf
        fast_count += len(buf) == 512 and isinstance(parse(tarfile.TarInfo, buf), tuple)
    assert fast_count > 100


@pytest.mark.parametrize("compress", [None, "gzip", pytest.param("zstd", marks=pytest.mark.skipif(ZSTD is None, reason="no zstd"))])
def test_compressed_layers_by_magic_bytes(compress):
    lay = layer(D("etc"), F("etc/group", b"root:x:0:\n"), compress=compress)
    tree, _blob, out = run([lay])
    assert out["etc/group"].data == b"root:x:0:\n"
    assert tree.captured("/etc/group") == b"root:x:0:\n"
    assert lay.opened[0].closed


def test_gnu_and_ustar_input_formats():
    long_name = "d/" + "n" * 150
    for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        specs = [D("d"), F(long_name if fmt == tarfile.GNU_FORMAT else "d/short", b"x")]
        _tree, _blob, out = run([layer(*specs, fmt=fmt)])
        assert out[specs[1]["name"]].data == b"x"


def test_stored_layer_reads_through_open_layer(tmp_path):
    store = BlobStore(str(tmp_path / "cache"))
    raw = tar_of([D("etc"), F("etc/passwd", b"root:x:0:0\n")])
    blob = gzip.compress(raw)
    descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(blob), "size": len(blob)}
    store.put_bytes(descriptor, blob)
    tree, _blob, out = run([fl.StoredLayer(store, descriptor, digest_of(raw))])
    assert out["etc/passwd"].data == b"root:x:0:0\n" and tree.captured("etc/passwd") == b"root:x:0:0\n"
    with pytest.raises(VerificationError):
        run([fl.StoredLayer(store, descriptor, "sha256:" + "0" * 64)])


# --- overlay semantics --------------------------------------------------------------------

def test_whiteouts_and_opaque_dirs_across_three_layers():
    l0 = layer(D("./"), D("a"), F("a/x", b"x0"), F("a/y", b"y0"), D("b"), F("b/p", b"p0"), F("b/q", b"q0"),
               F("c", b"c0"), D("d"), D("d/e"), F("d/e/f", b"f0"))
    # own-layer entries survive their layer's whiteouts and opaque marker, whatever the order
    l1 = layer(F("b/p", b"p1"), WH("b/.wh..wh..opq"), F("b/r", b"r1"), WH(".wh.c"), D("d/e", mode=0o700), F("d/e/g", b"g1"),
               WH("d/.wh.e"), WH("a/.wh.x"), F("c2", b"c2"), WH(".wh.c2"))
    l2 = layer(WH("a/.wh.y"), F("a/x", b"x2"), D("c"), F("c/z", b"z2"), WH("b/.wh.r"))
    tree, _blob, out = run([l0, l1, l2])
    files = dict((n, m.data) for n, m in out.items() if n != "__order__" and m.type == tarfile.REGTYPE)
    assert files == {"a/x": b"x2", "b/p": b"p1", "c/z": b"z2", "d/e/g": b"g1", "c2": b"c2"}
    assert sorted(n for n in out if n != "__order__") == [".", "a", "a/x", "b", "b/p", "c", "c/z", "c2", "d", "d/e", "d/e/g"]
    assert out["d/e"].info.mode == 0o700  # d/e from layer 1, not layer 0
    assert tree.lookup("c").type == "dir" and tree.lookup("b/q") is None and tree.lookup("a/y") is None
    assert not any(".wh." in n for n in names(out))


def test_opaque_root_hides_all_lower_content():
    l0 = layer(D("./", mode=0o700), D("usr"), F("usr/old", b"o"))
    l1 = layer(WH(".wh..wh..opq"), F("new", b"n"))
    _tree, _blob, out = run([l0, l1])
    assert sorted(n for n in out if n != "__order__") == [".", "new"]
    assert out["."].info.mode == 0o700  # the root directory itself is not hidden


def test_type_replacement_both_ways():
    l0 = layer(D("s"), F("s/k", b"k"), F("t", b"t0"), D("u"), F("u/old", b"o"))
    l1 = layer(F("s", b"file now"), D("t", mode=0o750), F("t/n", b"n"), S("u", "elsewhere"))
    l2 = layer(D("u", mode=0o711), F("u/m", b"m"))
    tree, _blob, out = run([l0, l1, l2])
    assert out["s"].type == tarfile.REGTYPE and out["s"].data == b"file now" and "s/k" not in out
    assert out["t"].type == tarfile.DIRTYPE and out["t"].info.mode == 0o750 and out["t/n"].data == b"n"
    # l2's directory replaces l1's symlink, whose own replacement of l0's u/ hides u/old
    assert out["u"].type == tarfile.DIRTYPE and out["u"].info.mode == 0o711 and "u/old" not in out and "u/m" in out
    assert tree.lookup("t").type == "dir" and tree.lookup("s").type == "file"


def test_directory_attributes_merge_and_implied_directories():
    l0 = layer(D("opt", mode=0o700, uid=5, mtime=100), F("opt/a", b"a", mtime=150))
    l1 = layer(D("opt", mode=0o751, uid=7, gid=8, mtime=200, pax={"SCHILY.xattr.user.k": "v"}), F("opt/b", b"b", mtime=120))
    l2 = layer(F("opt/c", b"c", mtime=300), F("new/deep/f", b"f", mtime=250))
    tree, _blob, out = run([l0, l1, l2])
    order = names(out)
    assert order.count("opt") == 1
    opt = out["opt"].info
    assert (opt.mode, opt.uid, opt.gid, opt.mtime, opt.pax_headers.get("SCHILY.xattr.user.k")) == (0o751, 7, 8, 200, "v")
    assert {"opt/a", "opt/b", "opt/c"} <= set(order)
    for implied in (".", "new", "new/deep"):
        info = out[implied].info
        assert (info.type, info.mode, info.uid, info.gid, info.mtime) == (tarfile.DIRTYPE, 0o755, 0, 0, 300)
        assert tree.lookup(implied).layer is None
    assert order[-3:] == [".", "new", "new/deep"]  # implied directories come last, sorted
    assert tree.mtime_max == 300


def test_same_path_twice_in_one_layer():
    # GNU tar's restore keeps the FIRST member of a path (--skip-old-files); Docker/containerd the last: the
    # template holds one entry per path, the last, written in a second pass that knows which
    tree, blob, out = run([layer(F("f", b"one"), F("f", b"two"), D("d", mode=0o700), D("d", mode=0o751), F("g", b"g"), S("g", "f"))])
    assert sorted(names(out)) == [".", "d", "f", "g"]  # each once
    assert out["f"].data == b"two" and out["d"].info.mode == 0o751 and out["g"].type == tarfile.SYMTYPE
    assert (tree.lookup("f").size, tree.lookup("d").mode, tree.lookup("g").type) == (3, 0o751, "symlink")
    assert tree.passes == 2 and tree.same_path_repeats == 3
    expect_error([layer(F("x", b"1"), D("x"))], "appears twice in the layer, as a directory and as a non-directory")
    expect_error([layer(D("x"), F("x/y"), F("x", b"1"))], "appears twice in the layer, as a directory and as a non-directory")


def test_same_path_three_times_and_across_types():
    tree, _blob, out = run([layer(F("a", b"1"), S("a", "x"), F("a", b"3"), F("b", b"B"), H("c", "b"), F("c", b"C"),
                                  dict(name="p", kind="fifo"), S("p", "a"))])
    assert sorted(names(out)) == [".", "a", "b", "c", "p"]
    assert (out["a"].data, out["c"].type, out["c"].data, out["p"].linkname) == (b"3", tarfile.REGTYPE, b"C", "a")
    assert tree.same_path_repeats == 4


def test_same_path_whose_middle_member_is_a_waiting_hard_link_keeps_the_last():
    # the first b is out, the link waits for the lower c, the last b must win (found by a differential fuzz
    # against a containerd-style applier)
    tree, _blob, out = run([layer(F("c", b"C0")), layer(F("b", b"b-0"), H("b", "c"), F("b", b"b-2"))])
    assert (out["b"].type, out["b"].data, names(out).count("b")) == (tarfile.REGTYPE, b"b-2", 1)
    assert tree.lookup("b").type == "file" and tree.passes == 2


def test_same_path_twice_needs_no_second_pass_when_the_first_was_not_emitted():
    # hidden by an upper layer; a hard link still waiting for a lower layer's content
    tree, _blob, out = run([layer(F("t", b"T"), F("h", b"lower")), layer(F("x", b"1"), F("x", b"2"), H("h", "t"), F("h", b"H")),
                            layer(WH(".wh.x"))])
    assert "x" not in out and out["h"].data == b"H" and tree.passes == 1 and tree.same_path_repeats == 2


@needs_gnu_tar
def test_hard_link_to_a_path_replaced_later_in_its_layer_keeps_the_old_content(tmp_path):
    # Docker: the link shares the first file's inode; the later member unlinks the name and makes a new file
    tree, blob, out = run([layer(F("t", b"one", mode=0o600, uid=3), H("h", "t"), H("h2", "h"), F("t", b"two"))])
    assert sorted(names(out)) == [".", "h", "h2", "t"]
    assert (out["h"].type, out["h"].data, out["h"].info.mode, out["h"].info.uid) == (tarfile.REGTYPE, b"one", 0o600, 3)
    assert out["h2"].type == tarfile.LNKTYPE and out["h2"].linkname == "./h" and out["t"].data == b"two"
    assert tree.rereads == 1 and tree.passes == 2
    root = extract(blob, tmp_path)
    assert (root / "t").read_bytes() == b"two" and (root / "h").read_bytes() == b"one"
    assert os.stat(str(root / "h")).st_ino == os.stat(str(root / "h2")).st_ino != os.stat(str(root / "t")).st_ino


def test_hard_link_from_an_upper_layer_takes_the_last_member_of_the_path():
    _tree, _blob, out = run([layer(F("t", b"one"), F("t", b"two")), layer(H("u", "t"))])
    assert out["u"].linkname == "./t" and out["t"].data == b"two" and names(out).count("t") == 1
    _tree, _blob, out = run([layer(F("t", b"one"), F("t", b"two")), layer(H("u", "t")), layer(WH(".wh.t"))])
    assert out["u"].type == tarfile.REGTYPE and out["u"].data == b"two" and "t" not in out


@needs_gnu_tar
def test_passwd_given_twice_is_read_as_restored(tmp_path):
    tree, blob, _out = run([layer(D("etc"), F("etc/passwd", b"root:x:0:0::/:/bin/sh\napp:x:0:0::/:/bin/sh\n"),
                                  F("etc/passwd", b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"))])
    root = extract(blob, tmp_path)
    assert (root / "etc/passwd").read_bytes() == tree.captured("etc/passwd")
    assert b"app:x:1000" in tree.captured("etc/passwd")


@needs_gnu_tar
@needs_root
def test_directory_attributes_land_whatever_the_order_of_its_entries(tmp_path):
    """GNU tar with --skip-old-files ignores a directory entry once the directory exists: given twice, or
    after something below it (an upper layer's file, or a child earlier in its own layer), its attributes
    would not land.  The template emits each directory once, with its final attributes, before its content."""
    lower = layer(D("tmp", mode=0o1777), D("root", mode=0o700), D("home/app", uid=1000, gid=1000, mode=0o750),
                  D("var", pax={"SCHILY.xattr.user.k": "v"}), D("usr"), F("usr/x", b"x"),
                  F("late/f", b"f"), D("late", mode=0o711, uid=7),
                  D("twice", mode=0o700), F("twice/f", b"f"), D("twice", mode=0o751, uid=5))
    upper = layer(F("tmp/x", b"x"), F("root/.profile", b"p"), F("home/app/data", b"d"), F("var/y", b"y"), F("usr/z", b"z"))
    tree, blob, out = run([lower, upper])
    order = names(out)
    for directory in ("tmp", "root", "home/app", "var", "late", "twice"):
        assert order.index(directory) < min(i for i, n in enumerate(order) if n.startswith(directory + "/")), directory
    root = extract(blob, tmp_path)
    for directory in ("tmp", "root", "home/app", "late", "twice", "usr"):
        st = os.stat(str(root / directory))
        entry = tree.lookup(directory)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (entry.mode, entry.uid, entry.gid), directory
    assert (tree.lookup("tmp").mode, tree.lookup("twice").uid) == (0o1777, 5)
    assert os.getxattr(str(root / "var"), "user.k") == b"v"
    assert tree.passes == 2 and order.count("twice") == 1


def test_an_ordinary_image_takes_one_pass():
    # lower directories with default attributes may come after an upper layer's content: tar's own ones match
    _tree, _blob, out = run([layer(D("./"), D("etc"), D("usr"), D("usr/bin"), F("usr/bin/a", b"a"), D("tmp", mode=0o1777)),
                             layer(F("usr/bin/b", b"b"), D("etc"), F("etc/c", b"c", mtime=5)),
                             layer(F("etc/passwd", b"p"), D("opt", mode=0o700), F("opt/x", b"x"))])
    assert _tree.passes == 1 and _tree.same_path_repeats == 0


@needs_gnu_tar
def test_same_path_twice_extracts_as_the_later(tmp_path):
    _tree, blob, _out = run([layer(F("f", b"one"), F("f", b"two"), D("d", mode=0o700), D("d", mode=0o751), F("g", b"g"), S("g", "f"))])
    root = extract(blob, tmp_path)
    assert (root / "f").read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(str(root / "d")).st_mode) == 0o751
    assert os.readlink(str(root / "g")) == "f"


def test_determinism_two_runs_byte_identical():
    def build():
        return [layer(D("./"), D("etc"), F("etc/passwd", b"root"), S("bin", "usr/bin"), F("usr/bin/sh", b"sh"), H("usr/bin/ash", "usr/bin/sh")),
                layer(F("usr/bin/sh", b"sh2", mtime=5000), WH("etc/.wh.passwd"), F("var/lib/x", b"x", pax={"SCHILY.xattr.user.a": "1"}),
                      H("var/lib/y", "usr/bin/ash"))]
    first = run(build())[1]
    second = run(build())[1]
    assert first == second
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


# --- hard links ------------------------------------------------------------------------------

def test_hardlink_into_a_lower_layer():
    l0 = layer(D("bin"), F("bin/busybox", b"BB", mode=0o755))
    l1 = layer(H("bin/sh", "bin/busybox"))
    tree, _blob, out = run([l0, l1])
    order = names(out)
    assert order.index("bin/sh") > order.index("bin/busybox")
    assert out["bin/sh"].type == tarfile.LNKTYPE and out["bin/sh"].linkname == "./bin/busybox"
    assert tree.lookup("bin/sh").linkname == "bin/busybox"


@needs_gnu_tar
def test_hardlink_to_a_symlink(tmp_path):
    l0 = layer(F("target", b"T"), S("s", "target"))
    l1 = layer(H("h", "s"))
    tree, blob, out = run([l0, l1])
    assert out["h"].type == tarfile.LNKTYPE and out["h"].linkname == "./s"
    assert tree.resolve("h") == "target"
    root = extract(blob, tmp_path)
    assert os.path.islink(str(root / "h")) and os.readlink(str(root / "h")) == "target"
    assert os.lstat(str(root / "h")).st_ino == os.lstat(str(root / "s")).st_ino


@needs_gnu_tar
def test_hardlink_whose_target_was_replaced_upstairs(tmp_path):
    l0 = layer(F("f", b"old", mode=0o600, uid=3, gid=4, mtime=111, pax={"SCHILY.xattr.user.o": "1"}))
    l1 = layer(H("h1", "f"), H("h2", "f"))
    l2 = layer(F("f", b"new"))
    tree, blob, out = run([l0, l1, l2])
    assert out["f"].data == b"new"
    h1 = out["h1"].info
    assert (out["h1"].type, out["h1"].data, h1.mode, h1.uid, h1.gid, h1.mtime) == (tarfile.REGTYPE, b"old", 0o600, 3, 4, 111)
    assert h1.pax_headers.get("SCHILY.xattr.user.o") == "1"
    assert out["h2"].type == tarfile.LNKTYPE and out["h2"].linkname == "./h1"
    assert tree.lookup("h1").type == "file" and tree.lookup("h2").linkname == "h1" and tree.rereads == 0
    root = extract(blob, tmp_path)
    assert (root / "h2").read_bytes() == b"old" and os.stat(str(root / "h1")).st_ino == os.stat(str(root / "h2")).st_ino
    assert os.stat(str(root / "f")).st_ino != os.stat(str(root / "h1")).st_ino


def test_hardlink_pair_with_one_name_removed_upstairs_rereads_the_layer():
    l0 = layer(F("usr/bin/perl5.36", b"PERL", mode=0o755), H("usr/bin/perl", "usr/bin/perl5.36"), H("usr/bin/perl2", "usr/bin/perl"))
    l1 = layer(WH("usr/bin/.wh.perl5.36"))
    tree, _blob, out = run([l0, l1])
    assert "usr/bin/perl5.36" not in out
    assert out["usr/bin/perl"].type == tarfile.REGTYPE and out["usr/bin/perl"].data == b"PERL"
    assert out["usr/bin/perl"].info.mode == 0o755
    assert out["usr/bin/perl2"].type == tarfile.LNKTYPE and out["usr/bin/perl2"].linkname == "./usr/bin/perl"
    assert tree.rereads == 1 and len(l0.opened) == 2 and len(l1.opened) == 1


def test_hardlink_chain_across_layers():
    l0 = layer(F("a", b"A"))
    l1 = layer(H("b", "a"))
    l2 = layer(H("c", "b"), F("a", b"A2"))
    tree, _blob, out = run([l0, l1, l2])
    assert out["a"].data == b"A2" and out["b"].data == b"A" and out["c"].linkname == "./b"
    assert tree.resolve("c") == "c" and tree.lookup("c").linkname == "b"


def test_hardlink_resolves_at_its_own_layer():
    # h in layer 1 links to t as it was below layer 1: layer 0's t, even though layer 1 rewrites t after h
    l0 = layer(F("t", b"lower"))
    l1 = layer(H("h", "t"), F("t", b"upper"))
    _tree, _blob, out = run([l0, l1])
    assert out["t"].data == b"upper" and out["h"].data == b"lower"


def test_later_member_wins_over_an_earlier_waiting_hardlink_of_the_same_name():
    _tree, blob, out = run([layer(F("t", b"lower"), F("p", b"P")), layer(H("h", "t"), F("h", b"file wins"), F("t", b"upper"))])
    assert out["h"].type == tarfile.REGTYPE and out["h"].data == b"file wins"
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert [i.type for i in tar.getmembers() if i.name == "./h"] == [tarfile.REGTYPE]
    # same with a link that waits for a re-read of its own layer
    l0 = layer(F("a", b"A"), H("b", "a"), F("b", b"B"))
    _tree, _blob, out = run([l0, layer(WH(".wh.a"))])
    assert out["b"].data == b"B" and "a" not in out and len(l0.opened) == 1


def test_hardlink_errors_name_the_link():
    expect_error([layer(F("x")), layer(H("h", "nothere"))], r"layer 2 of 2 \(test layer\): h: hard link target nothere does not exist")
    expect_error([layer(F("t")), layer(WH(".wh.t")), layer(H("h", "t"))], "h: hard link target t was removed")
    expect_error([layer(D("d"), F("d/t")), layer(WH("d/.wh..wh..opq")), layer(H("h", "d/t"))], "h: hard link target d/t was removed")
    expect_error([layer(H("h", "h"))], "hard link to itself")


def test_hardlink_to_a_dropped_device_is_dropped():
    tree, _blob, out = run([layer(dict(name="lib/null", kind="chr", major=1, minor=3), H("lib/null2", "lib/null"))])
    assert "lib/null" not in out and "lib/null2" not in out and tree.dropped == 2


def test_hardlink_to_dev_content_becomes_a_copy():
    _tree, _blob, out = run([layer(D("dev"), F("dev/shm/data", b"D")), layer(H("keep", "dev/shm/data"))])
    assert out["keep"].type == tarfile.REGTYPE and out["keep"].data == b"D" and "dev/shm/data" not in out


# --- metadata ----------------------------------------------------------------------------------

CAPS = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # cap_net_bind_service+ep, vfs cap v2


def meta_layer():
    caps = CAPS.decode("utf-8", "surrogateescape")
    return layer(D("./"), D("bin"),
                 F("bin/ping", b"PING", mode=0o4755, uid=1000, gid=1001, uname="bob", mtime=1234.75,
                   pax={"SCHILY.xattr.security.capability": caps, "SCHILY.xattr.user.mime": "text/x",
                        "SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t",
                        "SCHILY.acl.access": "user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::r-x", "atime": "1.5", "ctime": "2.5"}),
                 D("shared", mode=0o3777, pax={"SCHILY.acl.default": "user::rwx,group::r-x,other::r-x"}),
                 dict(name="run/fifo", kind="fifo", mode=0o600))


def test_metadata_kept_and_dropped():
    tree, _blob, out = run([meta_layer()])
    ping = out["bin/ping"].info
    assert (ping.mode, ping.uid, ping.gid, ping.uname, ping.gname, ping.mtime) == (0o4755, 1000, 1001, "", "", 1234)
    assert sorted(ping.pax_headers) == ["SCHILY.acl.access", "SCHILY.xattr.security.capability", "SCHILY.xattr.user.mime"]
    assert ping.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAPS
    assert out["shared"].info.mode == 0o3777 and "SCHILY.acl.default" in out["shared"].info.pax_headers
    assert out["run/fifo"].type == tarfile.FIFOTYPE
    assert tree.dropped_xattrs == 4  # trusted.*, security.selinux, atime, ctime
    assert tree.lookup("bin/ping").mode == 0o4755 and tree.lookup("bin/ping").uid == 1000


def global_header_layer():
    caps = CAPS.decode("utf-8", "surrogateescape")
    return layer(D("bin"), G(**{"SCHILY.xattr.security.capability": caps, "uid": "0", "gid": "0", "mtime": "5",
                                "SCHILY.xattr.user.g": "global"}),
                 F("bin/tool", b"T", mode=0o4755, uid=1000, gid=1000),
                 G(path="etc/passwd"), F("bin/other", b"O"), S("bin/link", "tool"))


def test_pax_global_headers_are_ignored_and_counted():
    tree, _blob, out = run([global_header_layer()])
    assert sorted(n for n in out if n != "__order__") == [".", "bin", "bin/link", "bin/other", "bin/tool"]
    tool = out["bin/tool"].info
    assert (tool.uid, tool.gid, tool.mtime, tool.mode, tool.pax_headers) == (1000, 1000, 1000, 0o4755, {})
    assert tree.pax_globals == 2 and tree.dropped_xattrs == 0
    assert tree.lookup("etc/passwd") is None and tree.lookup("bin/tool").uid == 1000


@needs_gnu_tar
@needs_root
def test_pax_global_capability_does_not_reach_the_restored_files(tmp_path):
    _tree, blob, _out = run([global_header_layer()])
    root = extract(blob, tmp_path)
    for name in ("bin/tool", "bin/other"):
        assert os.listxattr(str(root / name)) == [], name
    assert os.stat(str(root / "bin/tool")).st_uid == 1000


@needs_gnu_tar
@needs_root
def test_metadata_survives_proxmox_restore(tmp_path):
    _tree, blob, _out = run([meta_layer()])
    root = extract(blob, tmp_path)
    ping = str(root / "bin/ping")
    st = os.stat(ping)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1001)
    assert os.getxattr(ping, "security.capability") == CAPS
    assert os.getxattr(ping, "user.mime") == b"text/x"
    assert "trusted.overlay.opaque" not in os.listxattr(ping)
    try:
        acl = os.getxattr(ping, "system.posix_acl_access")
    except OSError as exc:
        pytest.skip("this filesystem does not keep POSIX ACLs: %s" % exc)
    assert acl  # GNU tar restored the named-user ACL entry
    assert os.getxattr(str(root / "shared"), "system.posix_acl_default")
    assert stat.S_ISFIFO(os.lstat(str(root / "run/fifo")).st_mode)


# Numbers GNU tar cannot restore as written (checked with the exact restore command): (uid_t)-1 is chown's
# "no change", so the file stays root's with its setuid bit; 2^32 and beyond, or negative, fail the restore
# and also leave the member root's; an id above 65535 fails an unprivileged container's restore (chown in
# its user namespace).  Huge mtimes are cut by the filesystem, >= 2^63 fail the restore.

@pytest.mark.parametrize("spec,message", [
    (F("x", uid=2 ** 32 - 1, mode=0o4755), "uid 4294967295 is outside 0..4294967294"),
    (F("x", gid=2 ** 32 - 1), "gid 4294967295 is outside"),
    (F("x", uid=2 ** 40), "uid 1099511627776 is outside"),
    (F("x", uid=-1, fmt=tarfile.GNU_FORMAT), "uid -1 is outside"),  # base-256
    (F("x", pax={"uid": "4294967295"}), "uid 4294967295 is outside"),
    (F("x", pax={"uid": "1e3"}), "pax record uid='1e3' is not a decimal number"),  # tarfile reads it as 0
    (F("x", pax={"gid": "\uff11\uff10"}), "pax record gid="),  # tarfile reads it as 10
    (F("x", pax={"uid": " 5"}), "pax record uid=' 5'"),
    (H("h", "x", uid=2 ** 32 - 1), "h: uid 4294967295"),
])
def test_owners_no_restore_can_take_are_refused(spec, message):
    members = [F("x")] if spec["kind"] == "hardlink" else []
    expect_error([layer(*(members + [spec]), fmt=spec.pop("fmt", tarfile.PAX_FORMAT))], message)


def numbers_layer():
    return layer(D("srv", uid=70000, gid=70001, mode=0o2775), F("srv/su", b"S", uid=100000, gid=5, mode=0o6755),
                 F("srv/sg", b"G", uid=7, gid=2 ** 32 - 2, mode=0o6755), F("srv/ok", b"K", uid=65535, gid=65535, mode=0o4755),
                 F("old", b"o", mtime=-5), F("future", b"f", mtime=2 ** 40), F("paxneg", b"n", pax={"mtime": "-7.5"}),
                 F("typed", b"t", mode=0o107755), S("srv/link", "su", uid=1 << 20))


def test_owners_beyond_65535_become_65534_without_setuid_and_mtimes_are_clamped():
    tree, _blob, out = run([numbers_layer()])
    got = dict((n, (m.info.uid, m.info.gid, m.info.mode)) for n, m in out.items() if n.startswith("srv"))
    assert got == {"srv": (65534, 65534, 0o775), "srv/su": (65534, 5, 0o2755), "srv/sg": (7, 65534, 0o4755),
                   "srv/ok": (65535, 65535, 0o4755), "srv/link": (65534, 0, 0o644)}
    assert tree.lookup("srv/su").uid == 65534 and tree.lookup("srv/su").mode == 0o2755
    assert [out[n].info.mtime for n in ("old", "future", "paxneg")] == [0, flatten_merge.MAX_MTIME, 0]
    assert tree.clamped_ids == 5 and tree.clamped_mtimes == 3
    assert out["typed"].info.mode == 0o7755


@needs_gnu_tar
@needs_root
def test_clamped_numbers_restore_as_the_tree_says(tmp_path):
    tree, blob, _out = run([numbers_layer()])
    root = extract(blob, tmp_path)
    for name in ("srv", "srv/su", "srv/sg", "srv/ok", "old", "future", "typed"):
        st = os.lstat(str(root / name))
        entry = tree.lookup(name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (entry.uid, entry.gid, entry.mode), name
        if entry.type == "file":  # (GNU tar makes symlinks last, which touches their directory)
            assert st.st_mtime == entry.mtime, name


# Named ACL entries: GNU tar --acls resolves user:NAME / group:NAME in the HOST's user database at restore
# time (acl_from_text; seen: user:daemon lands as the host's uid 1).  They take the image's own ids.

IMAGE_PASSWD = b"root:x:0:0::/root:/bin/sh\ndaemon:x:2:2::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\nbig:x:70000:70000::/:/bin/sh\n"
IMAGE_GROUP = b"root:x:0:\ndaemon:x:2:\nstaff:x:50:app\n"
NAMED_ACL = ("user::rw-,user:daemon:r--,user:app:rw-:1000,group::r--,group:staff:rw-,group:nosuch:r--,user:4242:r--,"
             "user:100000:r--,user:010:r--,user:big:r--,bogus:x:r--,mask::rw-,other::r--")
CONVERTED_ACL = "user::rw-,user:2:r--,user:1000:rw-,group::r--,group:50:rw-,user:4242:r--,mask::rw-,other::r--"


def acl_layers():
    # the ACLs come in the upper layer, read before the lower layer's /etc/passwd and /etc/group
    lower = layer(D("etc"), F("etc/passwd", IMAGE_PASSWD), F("etc/group", IMAGE_GROUP), D("srv", mode=0o750, uid=1000),
                  F("srv/file", b"f", pax={"SCHILY.acl.access": NAMED_ACL}))
    upper = layer(F("srv/new", b"n"), D("shared", mode=0o755, pax={"SCHILY.acl.default": "user::rwx,user:app:r-x,group::r-x,"
                                                                                         "mask::r-x,other::r-x"}),
                  F("data", b"d", pax={"SCHILY.acl.access": "u::rw-,u:nobody:r--,g::r--,m::r--,o::r--"}),
                  F("probe", b"p", pax={"SCHILY.acl.access": "user::rw-,user:7:r--,group::r--,mask::r--,other::r--"}))
    return [lower, upper]


def test_named_acl_entries_take_the_images_ids():
    tree, _blob, out = run(acl_layers())
    assert out["srv/file"].info.pax_headers["SCHILY.acl.access"] == CONVERTED_ACL
    assert out["shared"].info.pax_headers["SCHILY.acl.default"] == "user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::r-x"
    assert out["data"].info.pax_headers["SCHILY.acl.access"] == "user::rw-,group::r--,mask::r--,other::r--"
    assert (tree.acl_converted, tree.acl_dropped) == (4, 6) and tree.passes == 2
    # numeric entries alone need no second pass
    tree, _blob, out = run([layer(F("f", b"", pax={"SCHILY.acl.access": "user::rw-,user:7:r--,group::r--,mask::r--,other::r--"}))])
    assert tree.passes == 1 and out["f"].info.pax_headers["SCHILY.acl.access"] == "user::rw-,user:7:r--,group::r--,mask::r--,other::r--"


@needs_gnu_tar
@needs_root
def test_named_acl_entries_restore_as_the_images_users_not_the_hosts(tmp_path):
    _tree, blob, _out = run(acl_layers())
    root = extract(blob, tmp_path)
    try:
        os.getxattr(str(root / "probe"), "system.posix_acl_access")
    except OSError as exc:
        pytest.skip("this filesystem does not keep POSIX ACLs: %s" % exc)
    acl = os.getxattr(str(root / "srv/file"), "system.posix_acl_access")  # (an unknown name: tar drops it all)
    entries = sorted(struct.unpack("<HHI", acl[i:i + 8]) for i in range(4, len(acl), 8))
    named = sorted((tag, ident) for tag, perm, ident in entries if tag in (2, 8))  # ACL_USER, ACL_GROUP
    assert named == [(2, 2), (2, 1000), (2, 4242), (8, 50)]  # daemon is the image's uid 2, not the host's


# --- captures and the tree ----------------------------------------------------------------------

def test_capture_passwd_through_symlinks():
    l0 = layer(D("usr/share/base"), F("usr/share/base/passwd", b"from lower\n"), F("private/etc/group", b"grp\n"))
    l1 = layer(D("etc"), S("etc/passwd", "/usr/share/base/passwd"))
    tree, _blob, _out = run([l0, l1])
    assert tree.captured("etc/passwd") == b"from lower\n"
    assert tree.captured("/etc/group") is None  # absent
    l1 = layer(S("etc", "private/etc"))
    tree, _blob, _out = run([l0, l1])
    assert tree.captured("etc/group") == b"grp\n"
    assert tree.resolve("etc/group") == "private/etc/group" and tree.resolve("etc", follow_last=False) == "etc"


def test_capture_of_an_upper_file_with_another_name_is_reported_not_faked():
    l0 = layer(D("etc"), S("etc/passwd", "../data/pw.real"))
    l1 = layer(F("data/pw.real", b"upper\n"))  # emitted before the symlink below it is read
    tree, _blob, _out = run([l0, l1])
    with pytest.raises(FlattenError, match="was not captured"):
        tree.captured("etc/passwd")
    tree, _blob, _out = run([l0, l1], capture=("data/pw.real",))
    assert tree.captured("etc/passwd") == b"upper\n"


def test_capture_size_limit():
    tree, _blob, out = run([layer(F("etc/passwd", b"x" * 100))], limits=Limits(max_capture_bytes=10))
    assert out["etc/passwd"].data == b"x" * 100  # still emitted whole
    with pytest.raises(FlattenError, match="larger than max_capture_bytes"):
        tree.captured("etc/passwd")


def test_tree_resolve_inside_the_root():
    tree, _blob, _out = run([layer(D("a"), S("a/up", "../../../../b"), D("b"), F("b/f", b"f"), S("abs", "/b/f"),
                                   S("loop1", "loop2"), S("loop2", "loop1"), S("dangling", "nowhere"))])
    assert tree.resolve("a/up/f") == "b/f"  # '..' stops at the root
    assert tree.resolve("abs") == "b/f" and tree.resolve("abs", follow_last=False) == "abs"
    assert tree.resolve("dangling") is None and tree.resolve("b/f/x") is None and tree.resolve("/") == "."
    with pytest.raises(FlattenError, match="too many levels of symbolic links"):
        tree.resolve("loop1")


# --- reading layers -------------------------------------------------------------------------------

class TrackingLayer(BlobLayer):
    log = None

    def open(self):
        self.log.append(self.description)
        return BlobLayer.open(self)


def test_layers_opened_top_first_once_read_to_eof_and_closed():
    log = []
    raws = [tar_of([F("l%d" % i, b"x")]) for i in range(3)]
    layers = []
    for i, raw in enumerate(raws):
        lay = TrackingLayer(raw + b"\0" * (3 << 20), "L%d" % i)  # padding after the end-of-archive blocks
        lay.log = log
        layers.append(lay)
    run(layers)
    assert log == ["L2", "L1", "L0"]
    for lay in layers:
        reader = lay.opened[0]
        assert reader.closed and reader.done and reader.consumed == len(lay.blob)


def test_diff_id_failure_at_eof_makes_flatten_raise():
    good = layer(F("a", b"a"))
    # the mismatch only shows at EOF, megabytes after the end-of-archive blocks
    bad = BlobLayer(tar_of([F("b", b"b")]) + b"\0" * (3 << 20), "sha256:bad", diff_id="sha256:" + "1" * 64)
    with pytest.raises(VerificationError, match="sha256:bad"):
        run([bad, good])
    assert bad.opened[0].closed and good.opened[0].closed
    assert isinstance(VerificationError("x"), OciError)


def test_corrupt_and_truncated_layers():
    raw = tar_of([F("a", b"a" * 600), F("b", b"b")])
    garbage = raw[:1536] + b"\x7fgarbage" * 64 + raw[1536 + 512:]
    assert "invalid tar header" in expect_error([BlobLayer(garbage)], "layer 1 of 1")
    expect_error([BlobLayer(raw[:1200])], "ends inside the member's data|unexpected end of data")
    expect_error([BlobLayer(b"\x01" * 2048)], "not a tar archive")
    tree, _blob, out = run([BlobLayer(b""), BlobLayer(b"\0" * 1024)])
    assert names(out) == ["."] and tree.members == 1


def test_unsupported_member_types(tmp_path):
    expect_error([layer(dict(name="x", kind="file", type=b"Z", data=b""))], "unsupported tar member type")
    if GNU_TAR is None:
        return
    sparse = tmp_path / "sparse"
    with open(str(sparse), "wb") as handle:
        handle.truncate(1 << 20)
        handle.write(b"data")
    for fmt in ("gnu", "pax"):
        archive = tmp_path / ("s-%s.tar" % fmt)
        subprocess.run([GNU_TAR, "-S", "--format=" + fmt, "-cf", str(archive), "-C", str(tmp_path), "sparse"], check=True)
        expect_error([BlobLayer(archive.read_bytes())], "sparse files are not supported")


# --- limits -------------------------------------------------------------------------------------

def test_limits_members_total_and_names():
    files = [F("f%d" % i, b"x") for i in range(20)]
    expect_error([layer(*files)], r"more than max_members \(10\)", Limits(max_members=10))
    expect_error([layer(F("big", b"x" * 50000))], r"max_uncompressed_bytes \(20000\)", Limits(max_uncompressed_bytes=20000))
    run([layer(*files)], limits=Limits(max_members=20))


def test_expansion_ratio_checked_per_layer():
    bits = random.Random(1).randbytes(4 << 20).translate(bytes(i & 1 for i in range(256)))  # about 4.5:1 under gzip -1
    raw = tar_of([F("bits", bits)])
    blob = gzip.compress(raw, 1)
    assert 3 < len(raw) / len(blob) < 10
    lay = BlobLayer(blob)
    expect_error([lay], r"expands beyond 2.0 times its compressed size of %d bytes" % len(blob),
                 Limits(max_expansion_ratio=2.0, expansion_allowance_bytes=1 << 20))
    assert lay.opened[0].consumed < len(blob)  # stopped while streaming
    run([BlobLayer(blob)])  # the default ratio lets it through
    run([BlobLayer(raw, compressed_size=None)], limits=Limits(max_expansion_ratio=1.0, expansion_allowance_bytes=0))  # unknown size: no ratio


# --- breakout corpus (containerd's TestBreakouts cases) -----------------------------------------------

def test_breakout_absolute_symlink_then_file(probe):
    expect_error([layer(S("a", "/etc")), layer(F("a/" + probe, b"pwned"))],
                 "%s: an upper layer writes through symlink a of this layer" % ("a/" + probe))
    expect_error([layer(S("a", "/etc"), F("a/" + probe, b"pwned"))], "writes through symlink a of the same layer")
    expect_error([layer(F("a/" + probe, b"pwned"), S("a", "/etc"))], "replaces a directory with members earlier in the same layer")


def test_breakout_up_and_out_symlink_then_file(probe):
    expect_error([layer(S("a", "../../../etc")), layer(F("a/x/" + probe, b"pwned"))], "writes through symlink a")
    expect_error([layer(D("d"), S("d/a", "../../../../etc")), layer(F("d/a/" + probe, b"pwned"))], "writes through symlink d/a")


@needs_gnu_tar
def test_breakout_parent_relative_symlink_chain(tmp_path, probe):
    expect_error([layer(D("b"), S("a", "b/../.."), F("a/" + probe))], "writes through symlink a")
    # the symlinks alone are legal and stay inside the root
    _tree, blob, _out = run([layer(D("b"), S("a", "b/../.."), S("c", "a/a/a/etc"), F("plain", b"ok"))])
    root = extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert os.readlink(str(root / "a")) == "b/../.." and os.readlink(str(root / "c")) == "a/a/a/etc"


@needs_gnu_tar
def test_breakout_hardlink_with_absolute_linkname(tmp_path):
    _tree, blob, out = run([layer(D("etc"), F("etc/passwd", b"image passwd\n"), H("h", "/etc/passwd"))])
    assert out["h"].linkname == "./etc/passwd"
    root = extract(blob, tmp_path)
    assert os.stat(str(root / "h")).st_ino == os.stat(str(root / "etc/passwd")).st_ino
    assert os.stat(str(root / "h")).st_ino != os.stat("/etc/passwd").st_ino
    expect_error([layer(H("h", "/etc/passwd"))], "hard link target etc/passwd does not exist")


def test_breakout_hardlink_dotdot():
    expect_error([layer(H("h", "../../etc/passwd"))], r"\.\./\.\./etc/passwd: hard link target has a '\.\.' component")
    expect_error([layer(F("a"), H("h", "a/../a"))], "'..' component")


def test_breakout_hardlink_through_symlinked_dir():
    expect_error([layer(S("d", "/etc"), H("h", "d/passwd"))], "hard link target d/passwd passes through symlink d")
    expect_error([layer(S("d", "/etc")), layer(H("h", "d/passwd"))], "h: hard link target d/passwd passes through symlink d of layer 1")


def test_breakout_hardlink_to_directory():
    expect_error([layer(D("etc"), H("h", "etc"))], "hard link to directory etc")
    expect_error([layer(D("etc")), layer(H("h", "etc"))], "h: hard link to directory etc")
    expect_error([layer(H("h", "./"))], "hard link to the root directory")


@pytest.mark.parametrize("name,what", [(".wh...", "'..'"), (".wh..", "'.'"), (".wh.", "''"), ("a/.wh...", "'..'")])
def test_breakout_whiteout_of_dotdot_root_and_empty(name, what):
    expect_error([layer(F("a/x")), layer(WH(name))], "invalid whiteout of %s" % what)


@needs_gnu_tar
def test_breakout_whiteout_through_symlinked_parent(tmp_path, probe):
    # cross-layer: nothing is removed anywhere (whiteouts never touch the host); contained
    tree, blob, out = run([layer(S("link", "/etc")), layer(WH("link/.wh.passwd"), WH("link/.wh." + probe))])
    assert names(out) == ["link", "."] and tree.lookup("link").type == "symlink"
    extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert os.path.exists("/etc/passwd")
    expect_error([layer(S("link", "/etc"), WH("link/.wh.passwd"))], "writes through symlink link of the same layer")


@needs_gnu_tar
def test_breakout_opaque_marker_below_symlink(tmp_path, probe):
    _tree, blob, out = run([layer(S("link", "/etc")), layer(WH("link/.wh..wh..opq"))])
    assert out["link"].type == tarfile.SYMTYPE
    extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert os.listdir("/etc")
    expect_error([layer(S("link", "/etc"), WH("link/.wh..wh..opq"))], "writes through symlink link")


@needs_gnu_tar
def test_breakout_directory_entry_over_symlink(tmp_path, probe):
    tree, blob, out = run([layer(S("a", "/etc")), layer(D("a"), F("a/" + probe, b"inside"))])
    assert out["a"].type == tarfile.DIRTYPE and tree.lookup("a").type == "dir"
    root = extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert (root / "a" / probe).read_bytes() == b"inside" and not os.path.islink(str(root / "a"))


@needs_gnu_tar
def test_breakout_upper_directory_fixes_a_middle_write_through(tmp_path, probe):
    # layer 1 wrote a/x below layer 0's symlink, but layer 2 makes a a directory: the output is contained
    _tree, blob, out = run([layer(S("a", "/etc")), layer(F("a/" + probe, b"x")), layer(D("a"))])
    assert out["a"].type == tarfile.DIRTYPE
    root = extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert (root / "a" / probe).read_bytes() == b"x"


@needs_gnu_tar
def test_breakout_file_over_symlink(tmp_path, probe):
    _tree, blob, out = run([layer(S("a", "/etc/" + probe)), layer(F("a", b"regular"))])
    assert out["a"].type == tarfile.REGTYPE
    root = extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert (root / "a").read_bytes() == b"regular" and not os.path.islink(str(root / "a"))


def test_breakout_member_name_with_dotdot(probe):
    expect_error([layer(F("../" + probe))], r"\.\./%s: member name has a '\.\.' component" % probe)
    expect_error([layer(F("a/../../" + probe))], "'..' component")
    expect_error([layer(F("a/../b"))], "'..' component")  # rejected even when it stays inside (documented)


@needs_gnu_tar
def test_breakout_absolute_member_name_is_inside_the_root(tmp_path, probe):
    _tree, blob, out = run([layer(F("/etc/" + probe, b"inside"))])
    assert ("etc/" + probe) in out
    root = extract(blob, tmp_path, probes_for(probe, tmp_path))
    assert (root / "etc" / probe).read_bytes() == b"inside"


@needs_gnu_tar
@needs_root
def test_breakout_device_nodes_and_dev_content_dropped(tmp_path):
    tree, blob, out = run([layer(D("dev", mode=0o755), dict(name="dev/sda", kind="blk", major=8, minor=0),
                                 dict(name="lib/mem", kind="chr", major=1, minor=1), D("dev/shm"), F("dev/shm/x", b"x"),
                                 S("dev/fd", "/proc/self/fd"), F("etc/ok", b"ok")),
                           layer(dict(name="dev/kmsg", kind="chr", major=1, minor=11))])
    assert sorted(n for n in out if n != "__order__") == [".", "dev", "etc", "etc/ok"]
    assert tree.dropped == 6 and tree.lookup("dev").type == "dir"
    root = extract(blob, tmp_path)
    assert os.listdir(str(root / "dev")) == []
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode))


def test_breakout_nul_in_names():
    expect_error([layer(F("x", pax={"path": "etc/pass\x00wd"}))], "member name contains a NUL byte")
    expect_error([layer(S("x", "", pax={"linkpath": "/etc\x00/passwd"}))], "symlink target contains a NUL byte")


def test_breakout_very_long_names():
    expect_error([layer(F("/".join(["d" * 100] * 50)))], r"member name longer than max_path_bytes \(4096\)")
    expect_error([layer(F("a/" + "n" * 256))], r"longer than max_name_bytes \(255\)")
    expect_error([layer(F("a", b"x")), layer(H("h", "/".join(["d" * 100] * 50)))], "hard link target longer than max_path_bytes")
    expect_error([layer(S("s", "x" * 5000))], "symlink target longer than max_path_bytes")
    run([layer(F("a/" + "n" * 255, b"ok"))])


def test_breakout_xattr_bomb():
    pax = dict(("SCHILY.xattr.user.k%04d" % i, "v" * 1000) for i in range(100))
    expect_error([layer(F("x", pax=pax))], r"x: extended attributes of \d+ bytes exceed max_xattr_bytes \(65536\)")
    dropped = dict(("SCHILY.xattr.trusted.k%04d" % i, "v" * 1000) for i in range(100))
    expect_error([layer(F("x", pax=dropped))], "exceed max_xattr_bytes")


def test_breakout_huge_member_header_stops_early():
    lay = layer(F("x", pax={"comment": "c" * (8 << 20)}))
    expect_error([lay], "a member's headers exceed")
    assert lay.opened[0].consumed < len(lay.blob)


def gzip_bomb(gigabytes=1):
    header = tarfile.TarInfo("zeros")
    header.size = gigabytes << 30
    zeros = gzip.compress(b"\0" * (1 << 20), 9)  # about 1 KB: multi-member gzip keeps building it cheap
    return gzip.compress(header.tobuf(tarfile.PAX_FORMAT)) + zeros * ((gigabytes << 10) + 1)


class NullSink:
    def __init__(self):
        self.read = 0

    def add(self, info, fileobj=None):
        if fileobj is not None:
            while True:
                chunk = fileobj.read(1 << 20)
                if not chunk:
                    break
                self.read += len(chunk)


def test_breakout_gzip_bomb_stopped_by_the_ratio():
    lay = BlobLayer(gzip_bomb(), "bomb")
    sink = NullSink()
    with pytest.raises(FlattenError, match=r"layer 1 of 1 \(bomb\): expands beyond 100 times"):
        flatten([lay], sink, limits=Limits(max_expansion_ratio=100, expansion_allowance_bytes=1 << 20))
    reader = lay.opened[0]
    assert reader.consumed < len(lay.blob) // 5 and reader.closed
    assert sink.read < (200 << 20)


@pytest.mark.skipif(ZSTD is None, reason="no zstd command")
def test_breakout_zstd_bomb_stopped_by_the_default_ratio():
    header = tarfile.TarInfo("zeros")
    header.size = 2 << 30
    frame = subprocess.run([ZSTD, "-q", "-c", "-19"], input=b"\0" * (16 << 20), stdout=subprocess.PIPE, check=True).stdout
    head = subprocess.run([ZSTD, "-q", "-c"], input=header.tobuf(tarfile.PAX_FORMAT), stdout=subprocess.PIPE, check=True).stdout
    lay = BlobLayer(head + frame * 129, "zbomb")
    assert len(lay.blob) * 1000 < (2 << 30)
    with pytest.raises(FlattenError, match="expands beyond 100 times"):
        flatten([lay], NullSink())
    assert lay.opened[0].closed


# --- decompression bounds, by default ----------------------------------------------------------------
# deflate reaches about 1030:1, so the old default ratio of 1000 let every gzip bomb through. A layer
# may now expand to 100 times its compressed size, plus what is left of an allowance of 512 MiB that
# all layers of an image share (zero-filled files of real images), and the image to 32 GiB.

MIB = 1 << 20


def zeros_layer(size, name="zeros"):
    """A gzip layer of one file of ``size`` zero bytes (about 1000:1)."""
    return layer(F(name, bytes(size)), compress="gzip")


def test_decompression_bound_defaults():
    limits = Limits()
    assert (limits.max_expansion_ratio, limits.expansion_allowance_bytes, limits.max_uncompressed_bytes) \
        == (100, 512 * MIB, 32 << 30)


def test_the_default_ratio_stops_a_gzip_bomb_that_1000_let_through():
    lay = BlobLayer(gzip_bomb(2), "bomb")  # 2 GiB of zeros in about 2 MiB: 1030:1
    assert len(lay.blob) * 1000 > (2 << 30)  # the old default ratio never fired
    sink = NullSink()
    with pytest.raises(FlattenError, match=r"layer 1 of 1 \(bomb\): expands beyond 100 times its compressed size "
                                           r"of %d bytes, and the 512 MiB .* raise max_expansion_ratio" % len(lay.blob)):
        flatten([lay], sink)
    assert sink.read <= 100 * len(lay.blob) + 512 * MIB
    assert lay.opened[0].closed


def test_a_zero_filled_file_of_a_real_image_passes_by_default():
    # a lastlog of uid 1000000 (292 MB of zeros, ~1000:1) over a base layer of ordinary content
    base = layer(F("bin/app", random.Random(1).randbytes(4 * MIB)), compress="gzip")
    lastlog = BlobLayer(ZeroBomb(292 * MIB, "var/log/lastlog").blob("gzip")[0])
    sink = NullSink()
    flatten([base, lastlog], sink)
    assert sink.read == 296 * MIB


def test_the_allowance_is_shared_by_the_layers_of_an_image():
    # each layer goes about 3.6 MiB beyond its ratio's share: the third one read (the bottom one, as
    # layers are read from the top) finds the 8 MiB allowance spent
    layers = [zeros_layer(4 * MIB, "f%d" % i) for i in range(3)]
    limits = Limits(expansion_allowance_bytes=8 * MIB)
    run(layers[:2], limits=limits)
    with pytest.raises(FlattenError, match=r"layer 1 of 3 .* expands beyond 100 times"):
        run(layers, limits=Limits(expansion_allowance_bytes=8 * MIB))
    run(layers, limits=Limits(max_expansion_ratio=1000, expansion_allowance_bytes=8 * MIB))


def test_a_layer_read_twice_counts_once_and_keeps_its_cap():
    # a hard link to a file hidden above makes the flattener read the lower layer again
    l0 = layer(F("usr/bin/perl5.36", b"PERL", mode=0o755), H("usr/bin/perl", "usr/bin/perl5.36"),
               F("zeros", bytes(6 * MIB)), compress="gzip")
    l1 = layer(WH("usr/bin/.wh.perl5.36"))
    size = len(gzip.decompress(l0.blob)) + len(l1.blob)
    tree, dummy, out = run([l0, l1], limits=Limits(max_uncompressed_bytes=size,
                                                   expansion_allowance_bytes=6 * MIB + 4096))
    assert tree.rereads == 1 and len(l0.opened) == 2 and out["usr/bin/perl"].data == b"PERL"


def test_max_uncompressed_bytes_bounds_the_image():
    layers = [layer(F("a", os.urandom(MIB))), layer(F("b", os.urandom(MIB)))]
    with pytest.raises(FlattenError, match=r"layer 1 of 2 .* beyond max_uncompressed_bytes \(1572864\); "
                                           r"raise max_uncompressed_bytes"):
        run(layers, limits=Limits(max_uncompressed_bytes=3 * MIB // 2))


@pytest.mark.skipif(ZSTD is None, reason="no zstd command")
def test_the_default_ratio_stops_a_zstd_bomb():
    frame = subprocess.run([ZSTD, "-q", "-c", "-19"], input=bytes(16 * MIB), stdout=subprocess.PIPE,
                           check=True).stdout
    header = tarfile.TarInfo("zeros")
    header.size = 1 << 30
    blob = subprocess.run([ZSTD, "-q", "-c"], input=header.tobuf(tarfile.PAX_FORMAT), stdout=subprocess.PIPE,
                          check=True).stdout + frame * 64
    sink = NullSink()
    with pytest.raises(FlattenError, match="expands beyond 100 times"):
        flatten([BlobLayer(blob, "zbomb")], sink)
    assert sink.read <= 100 * len(blob) + 512 * MIB
