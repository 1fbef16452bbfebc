"""Hostile layers for the flattener's bounds (issue 18): stress shapes made on the fly, and raw tar headers.

Stress shapes are streams: the tar is produced member by member as it is read, so a
1 GB layer costs its reader nothing to hold.

* ``wide``: many members with long names (a long chain of listed directories, then a
  distinct leaf each): tracking that keeps every full path grows with members x path
  length.
* ``deep``: members under very deep distinct parents below one shared chain
  (``d/d/.../d/<n>/f``, nothing listed): rebuilding every ancestor per member costs
  depth x path length per member.
* ``deep_distinct``: the same depth, each member under its own chain from the top
  (``<n>/d/.../d/f``): every member implies ``depth`` new directories.

``StreamLayer`` gives a shape to ``flatten`` as a layer, or to ``oci_build.write_image``,
which it streams into the layout's blobs (bench/convert's stress images).  ``header``,
``pax`` and ``archive`` write tar bytes by hand, so that a test can put any value into any
field (tarfile refuses to write malformed headers); ``RawLayer`` carries such bytes into
``oci_build.write_image``.  ``measure`` runs code in a fresh Python and reads its peak RSS.
"""

import json
import os
import subprocess
import sys
import tarfile
import time

BLOCK = tarfile.BLOCKSIZE
MTIME = 1700000000


def _file(name, data=b""):
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.mtime = MTIME
    info.size = len(data)
    return info, data


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = MTIME
    return info, None


def _encode(info, data=None):
    out = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if data:
        out += data + b"\0" * (-len(data) % BLOCK)
    return out


def wide(count=200000, name_bytes=4000, component=200):
    """``count`` empty files whose names are about ``name_bytes`` long: a chain of listed
    ``component``-byte directories, then a distinct 64-byte leaf each."""
    leaf = 64
    chain = []
    while (len(chain) + 1) * (component + 1) + leaf <= name_bytes:
        chain.append(("%03d" % len(chain)).ljust(component, "w"))
    for depth in range(1, len(chain) + 1):
        yield _encode(*_dir("/".join(chain[:depth])))
    prefix = "/".join(chain) + "/"
    # every member's bytes are the first one's with its number changed (the number is past the
    # 100 bytes of the ustar name field, in the pax record only, so no checksum changes)
    template = bytearray(_encode(*_file(prefix + "00000000".ljust(leaf, "l"))))
    at = template.index(b"00000000" + b"l" * (leaf - 8))
    for number in range(count):
        template[at:at + 8] = b"%08d" % number
        yield bytes(template)


def deep(count=20000, depth=1990, component="d"):
    """``count`` empty files ``d/d/.../d/<n>/f``: ``depth`` shared directories, then a distinct
    directory each, none of them listed."""
    prefix = (component + "/") * depth
    for number in range(count):
        yield _encode(*_file("%s%05d/f" % (prefix, number)))


def deep_distinct(count=20000, depth=1990):
    """``count`` empty files ``<n>/d/.../d/f``: each under its own chain of ``depth`` unlisted
    directories."""
    suffix = "d/" * depth
    for number in range(count):
        yield _encode(*_file("%05d/%sf" % (number, suffix)))


SHAPES = {"wide": wide, "deep": deep, "deep_distinct": deep_distinct}


class TarStream:
    """A binary file-like producing a tar from an iterator of member bytes as it is read."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buf = bytearray()
        self.done = False

    def read(self, size=-1):
        while not self.done and (size is None or size < 0 or len(self.buf) < size):
            chunk = next(self.chunks, None)
            if chunk is None:
                self.done = True
                self.buf += b"\0" * (2 * BLOCK)
            else:
                self.buf += chunk
        if size is None or size < 0:
            size = len(self.buf)
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def close(self):
        self.chunks = iter(())


class StreamLayer:
    """A layer for ``flatten`` whose uncompressed tar is made while it is read (no expansion
    ratio bound: ``compressed_size`` is None)."""

    compressed_size = None
    diff_id = None

    def __init__(self, shape, description=None, **params):
        self.shape = shape
        self.params = params
        self.description = description or "%s stress layer" % shape

    def open(self):
        return TarStream(SHAPES[self.shape](**self.params))

    def put_blob(self, layout, compression):
        """Write the layer into an OCI layout's blobs as it is made (for ``oci_build.write_image``):
        returns (digest, size, diff_id)."""
        import gzip
        import hashlib
        blobs = os.path.join(layout, "blobs", "sha256")
        tmp = os.path.join(blobs, ".stress-layer.tmp")
        raw = hashlib.sha256()
        with open(tmp, "wb") as out:
            packed = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) if compression else out
            if compression not in (None, "gzip", "docker-gzip"):
                raise ValueError("stress layers are written plain or gzip, not %s" % compression)
            stream = self.open()
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                raw.update(chunk)
                packed.write(chunk)
            if packed is not out:
                packed.close()
        packed = hashlib.sha256()
        with open(tmp, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                packed.update(chunk)
        os.rename(tmp, os.path.join(blobs, packed.hexdigest()))
        return "sha256:" + packed.hexdigest(), os.path.getsize(os.path.join(blobs, packed.hexdigest())), \
            "sha256:" + raw.hexdigest()


# ---------------------------------------------------------------------------
# raw headers

# ustar field offsets and widths (POSIX; GNU's old sparse area at 386)
FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12),
          "mtime": (136, 12), "chksum": (148, 8), "type": (156, 1), "linkname": (157, 100), "magic": (257, 8),
          "uname": (265, 32), "gname": (297, 32), "devmajor": (329, 8), "devminor": (337, 8), "prefix": (345, 155)}


def checksum(block):
    """``block`` (512 bytes) with its checksum field computed."""
    block = bytearray(block)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def header(name, size=0, kind=tarfile.REGTYPE, fmt=tarfile.PAX_FORMAT, raw=None, linkname="", fix_checksum=True):
    """A member's header as tarfile writes it in ``fmt`` (with pax or GNU extension headers for
    long names); ``raw`` maps field names (or byte offsets) of its last 512-byte block to the
    exact bytes to put there."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MTIME
    info.linkname = linkname
    blocks = info.tobuf(fmt, "utf-8", "surrogateescape")
    block = bytearray(blocks[-BLOCK:])
    for field, value in (raw or {}).items():
        start, width = FIELDS[field] if field in FIELDS else (field, len(value))
        value = value.ljust(width, b"\0")  # a longer value runs on into the next fields
        block[start:start + len(value)] = value
    block = bytes(block[:BLOCK])
    return blocks[:-BLOCK] + (checksum(block) if fix_checksum else block)


def pax(records, kind=tarfile.XHDTYPE, size=None, raw=None):
    """A pax extended header (``kind`` b"g" for a global one) holding ``records`` verbatim:
    a list of (keyword, value) pairs or of complete record byte strings."""
    data = b"".join(r if isinstance(r, bytes) else record(*r) for r in records)
    return (header("././@PaxHeader", len(data) if size is None else size, kind, raw=raw)
            + data + b"\0" * (-len(data) % BLOCK))


def record(keyword, value):
    """One well-framed pax record."""
    keyword = keyword.encode() if isinstance(keyword, str) else keyword
    value = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    body = b" " + keyword + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def member(name, data=b"", **kw):
    """A header plus its data blocks."""
    return header(name, len(data), **kw) + data + b"\0" * (-len(data) % BLOCK)


def archive(*parts):
    """Tar bytes: the parts, then the two end blocks."""
    return b"".join(parts) + b"\0" * (2 * BLOCK)


class RawLayer:
    """A layer for ``oci_build.write_image`` given as tar bytes."""

    def __init__(self, data):
        self.data = data

    def tar_bytes(self):
        return self.data


# ---------------------------------------------------------------------------
# measuring

def measure(code, args=(), timeout=600, python=None, env=None):
    """Run ``code`` in a fresh Python (``sys.argv[1:]`` = ``args``); it leaves a dict in ``result``.

    Returns that dict plus ``seconds`` (the child's wall clock, start-up included) and
    ``peak_rss_mb`` (the high-water mark of the child's own memory, VmHWM: its ``ru_maxrss`` is at least
    the parent's size at the fork, which Linux carries over the exec in the process's maxrss).
    """
    runner = ("import json, resource, sys\n"
              "sys.argv = [sys.argv[0]] + sys.argv[2:]\n"
              "result = {}\n"
              "exec(compile(%r, '<measured>', 'exec'))\n"
              "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
              "result['peak_rss_mb'] = round(int(hwm[0]) / 1024.0, 1)\n"
              "print(json.dumps(result))\n" % code)
    start = time.monotonic()
    proc = subprocess.run([python or sys.executable, "-c", runner, "-"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False,
                          env=dict(os.environ, **(env or {})))
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError("measured child failed (rc %d): %s" % (proc.returncode, proc.stderr[-3000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds"] = round(seconds, 3)
    return result
