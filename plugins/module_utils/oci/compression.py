# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer decompression: gzip from the standard library, zstd from the optional
``zstandard`` module or else the ``zstd`` command (both common on Proxmox VE).

``DiffIdHasher`` is fed the compressed bytes as they arrive and hashes the
uncompressed stream, so a layer's diff_id is checked in the same pass as its
download.

Decompression is bounded (``ExpansionBound``, the modules' ``max_expansion_ratio``
and ``max_uncompressed_bytes``): deflate reaches about 1030:1 and zstd tens of
thousands to one, so a layer of a few MiB could otherwise become gigabytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import queue
import shutil
import subprocess
import threading
import zlib

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import start_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import (
    LimitError, UnsupportedError, VerificationError)

try:
    import zstandard
    HAS_ZSTANDARD = True
except ImportError:
    zstandard = None
    HAS_ZSTANDARD = False

# A faster inflater when one is importable (ISA-L, then zlib-ng); same API as zlib.
try:
    from isal import isal_zlib as fast_zlib
    INFLATER = "isal"
except ImportError:
    try:
        from zlib_ng import zlib_ng as fast_zlib
        INFLATER = "zlib-ng"
    except ImportError:
        fast_zlib = zlib
        INFLATER = "zlib"

READ_CHUNK = 1024 * 1024
COMPRESSED_STEP = 64 * 1024

# Bounds on decompression, the defaults of max_expansion_ratio and max_uncompressed_bytes.
# Real layers expand 2-10 times; deflate tops out near 1030:1 (so a ratio of 1000 never
# stops a gzip bomb) and zstd reaches tens of thousands to one. Beyond its ratio, an image
# may expand by EXPANSION_ALLOWANCE_BYTES in all: real images have some zero-filled files
# (a lastlog sized by a large uid, preallocated database files) that compress ~1000:1.
MAX_EXPANSION_RATIO = 100
EXPANSION_ALLOWANCE_BYTES = 512 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 32 * 1024 * 1024 * 1024


class ExpansionBound:
    """How far one layer may decompress: ``ratio`` times its compressed size plus
    ``allowance``, and never past ``max_bytes``."""

    def __init__(self, ratio=MAX_EXPANSION_RATIO, max_bytes=MAX_UNCOMPRESSED_BYTES,
                 allowance=EXPANSION_ALLOWANCE_BYTES):
        self.ratio = ratio
        self.max_bytes = max_bytes
        self.allowance = allowance

    def cap(self, compressed_size):
        """Uncompressed bytes a layer of ``compressed_size`` may have (None: unbounded)."""
        caps = [c for c in (self.max_bytes, self._ratio_cap(compressed_size)) if c is not None]
        return min(caps) if caps else None

    def _ratio_cap(self, compressed_size):
        return None if compressed_size is None else int(compressed_size * self.ratio) + self.allowance

    def error(self, what, compressed_size):
        ratio_cap = self._ratio_cap(compressed_size)
        if ratio_cap is None or (self.max_bytes is not None and self.max_bytes <= ratio_cap):
            return LimitError("%s expands beyond max_uncompressed_bytes (%d bytes); raise max_uncompressed_bytes "
                              "to accept it" % (what, self.max_bytes))
        return LimitError("%s expands beyond %s times its compressed size of %d bytes plus %d MiB "
                          "(max_expansion_ratio); raise max_expansion_ratio to accept it if you trust the image"
                          % (what, self.ratio, compressed_size, self.allowance >> 20))


class _Gzip:
    """Multi-member gzip, as pigz and some registries write it."""

    def __init__(self, impl=None):
        self.impl = impl or fast_zlib
        self.obj = self.impl.decompressobj(16 + zlib.MAX_WBITS)
        self.done = False

    def feed(self, data):
        out = []
        while data and not self.done:
            try:
                out.append(self.obj.decompress(data))
            except self.impl.error as exc:
                raise VerificationError("gzip layer is corrupt: %s" % exc)
            if self.obj.eof:
                data = self.obj.unused_data
                if data.strip(b"\0"):
                    self.obj = self.impl.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    self.done = bool(data)  # only zero padding follows
                    data = b""
            else:
                data = b""
        return b"".join(out)

    def finish(self):
        if not self.obj.eof and not self.done:
            raise VerificationError("gzip layer ends in the middle of a stream")


class _Zstd:
    def __init__(self):
        self.obj = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data):
        out = []
        while data:
            try:
                out.append(self.obj.decompress(data))
            except zstandard.ZstdError as exc:
                raise VerificationError("zstd layer is corrupt: %s" % exc)
            data = getattr(self.obj, "unused_data", b"") if getattr(self.obj, "eof", False) else b""
            if data:
                self.obj = zstandard.ZstdDecompressor().decompressobj()
        return b"".join(out)

    def finish(self):
        pass


class DiffIdHasher:
    """Hashes the uncompressed content of a layer fed in compressed pieces.

    For zstd without the ``zstandard`` module the stream cannot be followed
    in-process; ``result(path)`` then runs ``zstd -dc`` on the finished file.
    """

    def __init__(self, compression, limit=None, on_limit=None):
        if compression not in (None, "gzip", "zstd"):
            raise UnsupportedError("unknown layer compression %r" % compression)
        self.compression = compression
        self.limit = limit  # uncompressed bytes at most; past them, decoding stops with ``on_limit()``
        self.on_limit = on_limit
        self.reset()

    def reset(self):
        self.hasher = hashlib.sha256()
        self.size = 0
        self.error = None  # the first decoding error; reported by result()
        if self.compression == "gzip":
            self.decoder = _Gzip()
        elif self.compression == "zstd" and HAS_ZSTANDARD:
            self.decoder = _Zstd()
        else:
            self.decoder = None

    @property
    def streaming(self):
        return self.compression is None or self.decoder is not None

    def update(self, data):
        if self.compression is None:
            self._add(data)
            return
        if self.decoder is None:
            return
        # in small compressed steps, as LayerReader does: a MiB of a bomb is a GiB at once
        for start in range(0, len(data), COMPRESSED_STEP):
            if self.error is not None:
                return
            try:
                out = self.decoder.feed(data[start:start + COMPRESSED_STEP])
            except VerificationError as exc:
                # keep going: the blob's own digest check speaks first
                self.error = exc
                return
            self._add(out)

    def _add(self, out):
        if self.error is not None:
            return
        self.hasher.update(out)
        self.size += len(out)
        if self.limit is not None and self.size > self.limit:
            self.error = self.on_limit()  # and nothing more is decoded

    def result(self, path=None):
        """``(diff_id, uncompressed_size)``; ``path`` is needed for zstd without zstandard."""
        if self.error is not None:
            raise self.error
        if self.decoder is not None:
            self.decoder.finish()
        elif self.compression == "zstd":
            return zstd_cli_digest(path, self.limit, self.on_limit)
        return "sha256:" + self.hasher.hexdigest(), self.size


def zstd_cli_digest(path, limit=None, on_limit=None):
    binary = shutil.which("zstd")
    if not binary:
        raise UnsupportedError("cannot read a zstd layer: install python3-zstandard or the zstd command")
    hasher = hashlib.sha256()
    size = 0
    proc = start_process([binary, "-dcq", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            chunk = proc.stdout.read(READ_CHUNK)
            if not chunk:
                break
            hasher.update(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                proc.kill()
                raise on_limit()
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise VerificationError("zstd layer is corrupt: zstd -d failed: %s" % err.strip())
    return "sha256:" + hasher.hexdigest(), size


def diff_id_of_file(path, compression, limit=None, on_limit=None):
    """Hash a stored layer's uncompressed content (for blobs stored without that fact)."""
    hasher = DiffIdHasher(compression, limit, on_limit)
    if not hasher.streaming:
        return hasher.result(path)
    with open(path, "rb") as handle:
        while hasher.error is None:
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                break
            hasher.update(chunk)
    return hasher.result(path)


class LayerReader:
    """Reads a stored layer uncompressed, checking the diff_id when the stream ends.

    The reader used by every consumer of layers (template conversion): a
    layer whose uncompressed content does not hash to the config's diff_id
    raises VerificationError at its end, before the consumer can finish.
    ``on_verified(diff_id, size)`` is called once the check passed.
    """

    def __init__(self, path, compression, diff_id, on_verified=None):
        if compression not in (None, "gzip", "zstd"):
            raise UnsupportedError("unknown layer compression %r" % compression)
        self.path = path
        self.diff_id = diff_id
        self.on_verified = on_verified
        self.hasher = hashlib.sha256()
        self.size = 0
        self.buffer = bytearray()
        self.eof = False
        self.proc = None
        if compression == "zstd" and not HAS_ZSTANDARD:
            binary = shutil.which("zstd")
            if not binary:
                raise UnsupportedError("cannot read a zstd layer: install python3-zstandard or the zstd command")
            self.proc = start_process([binary, "-dcq", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.source = self.proc.stdout
            self.decoder = None
        else:
            self.source = open(path, "rb")
            self.decoder = {"gzip": _Gzip, "zstd": _Zstd}[compression]() if compression else None

    def read(self, size=-1):
        while not self.eof and (size is None or size < 0 or len(self.buffer) < size):
            # small compressed steps bound the memory a decompression bomb takes before the
            # consumer's ratio check stops it (gzip inflates at most ~1030:1)
            chunk = self.source.read(COMPRESSED_STEP if self.decoder is not None else READ_CHUNK)
            if not chunk:
                self._finish()
                break
            out = self.decoder.feed(chunk) if self.decoder is not None else chunk
            self.hasher.update(out)
            self.size += len(out)
            self.buffer += out
        if size is None or size < 0:
            size = len(self.buffer)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _finish(self):
        self.eof = True
        if self.decoder is not None:
            self.decoder.finish()
        if self.proc is not None:
            err = self.proc.stderr.read().decode("utf-8", "replace")
            if self.proc.wait() != 0:
                raise VerificationError("zstd layer %s is corrupt: %s" % (self.path, err.strip()))
        got = "sha256:" + self.hasher.hexdigest()
        if got != self.diff_id:
            raise VerificationError("layer %s uncompresses to %s, but the config's diff_id is %s"
                                    % (self.path, got, self.diff_id))
        if self.on_verified is not None:
            self.on_verified(got, self.size)

    def close(self):
        self.source.close()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Prefetcher:
    """Reads a LayerReader ahead in a thread: decompression and hashing (which release the GIL)
    overlap with whatever the consumer does with the bytes (tar parsing, writing).

    Errors of the reader, the diff_id check at its end included, are raised
    by ``read`` in the consumer's thread, in stream order.
    """

    DEPTH = 8  # chunks of READ_CHUNK queued ahead

    def __init__(self, reader):
        self.reader = reader
        self.queue = queue.Queue(self.DEPTH)
        self.stop = threading.Event()
        self.buffer = b""
        self.done = False
        self.thread = threading.Thread(target=self._run, name="layer-prefetch")
        self.thread.daemon = True
        self.thread.start()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            while not self.stop.is_set():
                chunk = self.reader.read(READ_CHUNK)
                if not self._put(chunk) or not chunk:
                    return
        except Exception as exc:  # pylint: disable=broad-except
            self._put(exc)

    def read(self, size=-1):
        parts = [self.buffer]
        have = len(self.buffer)
        while not self.done and (size is None or size < 0 or have < size):
            item = self.queue.get()
            if isinstance(item, Exception):
                self.done = True
                raise item
            if not item:
                self.done = True
                break
            parts.append(item)
            have += len(item)
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        if size is None or size < 0 or size >= len(data):
            self.buffer = b""
            return data
        self.buffer = data[size:]
        return data[:size]

    def close(self):
        self.stop.set()
        self.thread.join()
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# compression of outputs (templates, squashed layers)

ZSTD_LEVEL = 3
GZIP_LEVEL = 6


class _ZstdCli:
    """``zstd -T0`` in a pipe: compression runs beside the Python writer, on every core.

    zstd's multi-threaded mode gives the same bytes whatever the number of
    threads, so output stays reproducible across machines of one zstd version.
    """

    def __init__(self, fileobj, level, binary):
        self.proc = start_process([binary, "-q", "-c", "-T0", "-%d" % level], stdin=subprocess.PIPE,
                                  stdout=fileobj, stderr=subprocess.PIPE)

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:
            self.close()
            raise
        return len(data)

    def close(self):
        if self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.proc.stderr.close()
        if self.proc.wait() != 0:
            raise UnsupportedError("zstd failed (rc=%s): %s" % (self.proc.returncode, err))

    def abort(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class _ZstdModule:
    def __init__(self, fileobj, level):
        self.writer = zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(fileobj, closefd=False)

    def write(self, data):
        return self.writer.write(data)

    def close(self):
        self.writer.close()

    def abort(self):
        pass


class _GzipOut:
    """gzip with no name and mtime 0 in the header: the same input gives the same bytes."""

    def __init__(self, fileobj, level):
        self.fileobj = fileobj
        self.obj = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, data):
        out = self.obj.compress(data)
        if out:
            self.fileobj.write(out)
        return len(data)

    def close(self):
        if self.obj is not None:
            self.fileobj.write(self.obj.flush())
            self.obj = None

    def abort(self):
        self.obj = None


class _Plain:
    def __init__(self, fileobj):
        self.fileobj = fileobj

    def write(self, data):
        return self.fileobj.write(data)

    def close(self):
        pass

    def abort(self):
        pass


def compressor(fileobj, codec, level=None):
    """A write-only stream that compresses into ``fileobj`` (a real file for the zstd CLI).

    ``codec`` is ``zstd``, ``gzip`` or None.  ``close()`` finishes the
    stream (and raises if the codec failed); ``abort()`` drops it.
    """
    if codec == "zstd":
        level = ZSTD_LEVEL if level is None else level
        binary = shutil.which("zstd")
        if binary and hasattr(fileobj, "fileno"):
            fileobj.flush()
            return _ZstdCli(fileobj, level, binary)
        if HAS_ZSTANDARD:
            return _ZstdModule(fileobj, level)
        raise UnsupportedError("zstd output needs the zstd command or python3-zstandard; use compression: gzip")
    if codec == "gzip":
        return _GzipOut(fileobj, GZIP_LEVEL if level is None else level)
    if codec is None:
        return _Plain(fileobj)
    raise UnsupportedError("unknown compression %r" % codec)
