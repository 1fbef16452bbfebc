# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flatten's layer reading: a layer's uncompressed tar as a forward-only stream of member headers.

Headers are parsed by the engine (``_FastTarInfo``; pax records by
``_pax_records``, linear in their size on every Python), every member's
headers are bounded (``Limits.header_budget``, ``MAX_EXTENSION_HEADERS``),
and a malformed header is a FlattenError naming the layer and the member.
``BlobLayer`` and ``StoredLayer`` are the layers flatten() reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import re
import shutil
import struct
import subprocess
import tarfile
import threading

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import start_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import (
    EXPANSION_ALLOWANCE_BYTES, HAS_ZSTANDARD, MAX_EXPANSION_RATIO, MAX_UNCOMPRESSED_BYTES, _Gzip, _Zstd)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import FlattenError, UnsupportedError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import open_layer

READ_CHUNK = 1024 * 1024
_NO_LIMIT = 1 << 62


class Limits:
    """Bounds on hostile input; every violation raises FlattenError naming the limit."""

    def __init__(self, max_members=2000000, max_path_bytes=4096, max_name_bytes=255,
                 max_xattr_bytes=65536, max_expansion_ratio=MAX_EXPANSION_RATIO,
                 max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES, max_capture_bytes=1 << 20,
                 expansion_allowance_bytes=EXPANSION_ALLOWANCE_BYTES, max_implied_dirs=1 << 18,
                 max_symlink_bytes=64 << 20):
        self.max_members = max_members  # members read, over all layers
        self.max_path_bytes = max_path_bytes  # a member name, link target or symlink target
        self.max_name_bytes = max_name_bytes  # one path component
        self.max_xattr_bytes = max_xattr_bytes  # per member: names + values of xattr/ACL records
        self.max_expansion_ratio = max_expansion_ratio  # uncompressed / compressed bytes, per layer ...
        self.expansion_allowance_bytes = expansion_allowance_bytes  # ... plus what all layers share beyond it
        self.max_uncompressed_bytes = max_uncompressed_bytes  # over all layers (first reads); None: unbounded
        self.max_capture_bytes = max_capture_bytes  # largest file Tree.captured() holds
        # paths tracked beyond the members read, over all layers: directories that no member lists (a member
        # ``<n>/d/d/.../f`` implies thousands) and hard link targets; each costs memory like a member
        self.max_implied_dirs = max_implied_dirs
        self.max_symlink_bytes = max_symlink_bytes  # symlink targets kept to resolve paths, over all layers

    @property
    def header_budget(self):
        """Bytes one member's headers (pax, GNU long names) may take."""
        return 2 * (self.max_path_bytes + self.max_xattr_bytes) + 1024 * 1024


class _LayerStream:
    """Forward-only reader over a layer's uncompressed tar, counting and bounding bytes."""

    def __init__(self, raw, flattener, cap):
        self.raw = raw
        self.flattener = flattener
        self.cap = cap  # uncompressed bytes this layer may have (ratio), or None
        self.buf = b""
        self.bpos = 0
        self.pos = 0
        self.count = 0
        self.eof = False
        self.header_limit = _NO_LIMIT
        self.header_block = None
        self.budget = flattener.limits.header_budget
        self.pax_globals = 0  # pax global headers skipped (_PaxGlobalHeader)

    def _fill(self, size):
        if self.eof:
            return b""
        data = self.raw.read(size)
        if not data:
            self.eof = True
            return b""
        self.count += len(data)
        self.flattener.account(len(data), self.count, self.cap)
        return data

    def begin_header(self, offset):
        self.header_limit = offset + self.budget
        self.header_block = None

    def end_header(self):
        self.header_limit = _NO_LIMIT

    def tell(self):
        return self.pos

    def read(self, size=-1):
        if size is not None and size >= 0:
            if self.pos + size > self.header_limit:
                raise FlattenError("%s: a member's headers exceed %d bytes (header at offset %d; limit: max_path_bytes and "
                                   "max_xattr_bytes)" % (self.flattener.where(), self.budget, self.header_limit - self.budget))
            end = self.bpos + size
            if end <= len(self.buf):
                data = self.buf[self.bpos:end]
                self.bpos = end
                self.pos += size
            else:
                data = self._read_more(size)
            if size == tarfile.BLOCKSIZE and self.header_block is None:
                self.header_block = data
            return data
        return self._read_more(-1)

    def _read_more(self, size):
        parts = []
        have = len(self.buf) - self.bpos
        if have:
            parts.append(self.buf[self.bpos:])
        self.buf = b""
        self.bpos = 0
        while size < 0 or have < size:
            chunk = self._fill(READ_CHUNK if size < 0 else max(size - have, READ_CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if 0 <= size < len(data):
            self.buf = data
            self.bpos = size
            data = data[:size]
        self.pos += len(data)
        return data

    def seek(self, pos, whence=io.SEEK_SET):
        if whence != io.SEEK_SET or pos < self.pos:
            raise FlattenError("internal error: backward seek in a layer stream")
        skip = pos - self.pos
        have = len(self.buf) - self.bpos
        if skip <= have:
            self.bpos += skip
            self.pos = pos
            return pos
        self.pos += have
        skip -= have
        self.buf = b""
        self.bpos = 0
        while skip > 0:
            chunk = self._fill(READ_CHUNK)
            if not chunk:
                break
            if len(chunk) > skip:
                self.buf = chunk
                self.bpos = skip
                self.pos += skip
                break
            self.pos += len(chunk)
            skip -= len(chunk)
        return self.pos

    def drain(self):
        """Read to EOF: the producer verifies the layer's diff_id there."""
        self.buf = b""
        self.bpos = 0
        while self._fill(READ_CHUNK):
            pass


_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_USTAR_MAGIC = b"ustar\0"  # ustar and pax; old GNU is "ustar  \0", v7 has none


def _text(field, encoding, errors):
    return field.partition(b"\0")[0].decode(encoding, errors)


_tarfile = tarfile  # the module, in TarInfo methods whose parameter is named tarfile


class _HeaderError(tarfile.TarError):
    """A member header refused while it is read (not a tarfile HeaderError, which tarfile may take for the end)."""


# what tarfile raises besides TarError on malformed headers, in some version or other
_UNREADABLE = (_HeaderError, ValueError, OverflowError, IndexError, RecursionError)
# extension headers (pax, GNU long names) one member may have; tarfile reads each one recursively
MAX_EXTENSION_HEADERS = 16
_PAX_INTEGER = re.compile(r"[0-9]{1,20}\Z")
_PAX_TIME = re.compile(r"([-+]?[0-9]{1,20})(?:\.([0-9]*))?\Z")


def _pax_records(buf):
    """The (keyword, value) pairs of a pax extended header, as bytes, in order.

    Records are ``"%d %s=%s\n" % (length, keyword, value)`` with ``length`` the
    record's size; trailing NUL bytes end the header.  Linear in the header's
    size: tarfile's own parser before CPython 3.11.10/3.12.6 (CVE-2024-6232)
    runs regular expressions over the whole header that are quadratic on long
    runs of digits, and converts any number of digits with int().
    """
    records = []
    pos = 0
    end = len(buf)
    while pos < end and buf[pos] != 0:
        space = buf.find(b" ", pos, pos + 21)
        digits = buf[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise _HeaderError("pax record at byte %d: its length is not 1 to 20 decimal digits and a space" % pos)
        length = int(digits)
        if length < 5 or pos + length > end or buf[pos + length - 1] != 0x0A:
            raise _HeaderError("pax record at byte %d: a length of %d does not end at a newline inside the "
                               "%d-byte header" % (pos, length, end))
        keyword, equals, value = buf[space + 1:pos + length - 1].partition(b"=")
        if not keyword or not equals:
            raise _HeaderError("pax record at byte %d: no keyword=value" % pos)
        records.append((keyword, value))
        pos += length
    return records


def _pax_number(keyword, value):
    """A pax number field as tarfile gives it (int; float for times), or _HeaderError when it is not one.

    tarfile turns a malformed number into 0 (uid 0) and takes inf, nan or any
    number of digits; GNU tar and Go refuse them.
    """
    if keyword in ("mtime", "atime", "ctime"):
        match = _PAX_TIME.match(value)
        if match is not None:
            return float("%s.%s" % (match.group(1), (match.group(2) or "0")[:9] or "0"))
    elif _PAX_INTEGER.match(value):
        return int(value)
    raise _HeaderError("pax record %s=%r is not a decimal number of at most 20 digits" % (keyword, value[:40]))


class _FastTarInfo(tarfile.TarInfo):
    """TarInfo whose block parser is one struct.unpack for ordinary headers.

    Anything else (base-256 numbers, a signed checksum, old GNU sparse, end
    blocks, malformed fields) goes to tarfile's own ``frombuf``, which also
    raises its errors; extension headers (pax, GNU long names) are processed
    by tarfile as usual.  A test compares both parsers on real and mutated
    headers.

    Unlike tarfile, both join the prefix field to the name only in a ustar
    header (magic ``ustar\\0``), as GNU tar and Go's archive/tar do: an old GNU
    header (``ustar  \\0``) has atime, ctime and sparse data there.
    """

    __slots__ = ()

    @classmethod
    def _tarfile_frombuf(cls, buf, encoding, errors):
        obj = super(_FastTarInfo, cls).frombuf(buf, encoding, errors)
        if buf[257:263] != _USTAR_MAGIC and buf[345] and obj.type not in tarfile.GNU_TYPES:
            obj.name = obj.name[len(tarfile.nts(buf[345:500], encoding, errors)) + 1:]
        if obj.type == tarfile.XGLTYPE:
            obj.__class__ = _PaxGlobalHeader
        return obj

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        if len(buf) != tarfile.BLOCKSIZE or not buf[0] or buf[156:157] == tarfile.GNUTYPE_SPARSE:
            return cls._tarfile_frombuf(buf, encoding, errors)
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, magic, uname, gname, devmajor, devminor,
         prefix) = _HEADER.unpack(buf)
        try:
            fields = (mode, uid, gid, size, mtime, chksum, devmajor, devminor)
            numbers = [int(f.partition(b"\0")[0].strip() or b"0", 8) for f in fields]
        except ValueError:
            return cls._tarfile_frombuf(buf, encoding, errors)
        if numbers[5] != sum(buf) - sum(buf[148:156]) + 256 or min(numbers) < 0:
            return cls._tarfile_frombuf(buf, encoding, errors)
        obj = cls()
        obj.name = _text(name, encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.chksum, obj.devmajor, obj.devminor = numbers
        obj.type = kind
        obj.linkname = _text(linkname, encoding, errors)
        obj.uname = _text(uname, encoding, errors)
        obj.gname = _text(gname, encoding, errors)
        if kind == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix[0] and obj.type not in tarfile.GNU_TYPES and magic[:6] == _USTAR_MAGIC:
            obj.name = _text(prefix, encoding, errors) + "/" + obj.name
        if kind == tarfile.XGLTYPE:
            obj.__class__ = _PaxGlobalHeader
        return obj

    @classmethod
    def fromtarfile(cls, tarfile):
        # tarfile reads a member's extension headers recursively: bound the chain (else RecursionError)
        depth = getattr(tarfile, "_extension_headers", 0)
        if depth > MAX_EXTENSION_HEADERS:
            raise _HeaderError("more than %d extension headers (pax, GNU long name) before one member"
                               % MAX_EXTENSION_HEADERS)
        tarfile._extension_headers = depth + 1
        try:
            return super(_FastTarInfo, cls).fromtarfile(tarfile)
        finally:
            tarfile._extension_headers = depth

    def _proc_member(self, tarfile):
        if self.size < 0:  # base-256; tarfile would read backwards or everything
            raise _HeaderError("%r: negative size %d" % (self.name[:200], self.size))
        return super(_FastTarInfo, self)._proc_member(tarfile)

    def _proc_sparse(self, tarfile):
        """Old GNU sparse: its extension blocks are skipped, unread (sparse members are refused)."""
        structs, extended, realsize = self._sparse_structs
        while extended:
            block = tarfile.fileobj.read(_tarfile.BLOCKSIZE)
            if len(block) < _tarfile.BLOCKSIZE:
                raise _HeaderError("%r: the layer ends inside the sparse map" % self.name[:200])
            extended = block[504] != 0
        self.sparse = structs
        self.offset_data = tarfile.fileobj.tell()
        tarfile.offset = self.offset_data + self._block(self.size)
        self.size = realsize
        return self

    def _proc_pax(self, tarfile):
        """A pax extended (or global) header, read with _pax_records (tarfile's own parser is quadratic on some
        Pythons).  Same results as tarfile's, except: malformed numbers are refused, and a member with GNU
        sparse records is marked sparse (refused) without reading its map."""
        size = self.size
        buf = tarfile.fileobj.read(self._block(size))
        if len(buf) < size:
            raise _HeaderError("the layer ends inside a pax header")
        records = _pax_records(buf[:size])
        pax_headers = tarfile.pax_headers if self.type == _tarfile.XGLTYPE else tarfile.pax_headers.copy()
        encoding = None
        for keyword, value in records:
            if keyword == b"hdrcharset" and encoding is None:
                encoding = tarfile.encoding if value == b"BINARY" else "utf-8"
        for keyword, value in records:
            keyword = self._decode_pax_field(keyword, "utf-8", "utf-8", tarfile.errors)
            if keyword in _tarfile.PAX_NAME_FIELDS:
                value = self._decode_pax_field(value, encoding or "utf-8", tarfile.encoding, tarfile.errors)
            else:
                value = self._decode_pax_field(value, "utf-8", "utf-8", tarfile.errors)
            pax_headers[keyword] = value
        try:
            member = self.fromtarfile(tarfile)
        except _tarfile.HeaderError as exc:
            raise _tarfile.SubsequentHeaderError(str(exc))
        if any(keyword.startswith("GNU.sparse.") for keyword in pax_headers):
            member.sparse = []
        if self.type in (_tarfile.XHDTYPE, _tarfile.SOLARIS_XHDTYPE):
            member._apply_pax_info(pax_headers, tarfile.encoding, tarfile.errors)
            member.offset = self.offset
            if "size" in pax_headers:
                offset = member.offset_data
                if member.isreg() or member.type not in _tarfile.SUPPORTED_TYPES:
                    offset += member._block(member.size)
                tarfile.offset = offset
        return member

    def _apply_pax_info(self, pax_headers, encoding, errors):
        for keyword, value in pax_headers.items():
            if keyword == "GNU.sparse.name":
                self.path = value
            elif keyword in tarfile.PAX_FIELDS:
                if keyword in tarfile.PAX_NUMBER_FIELDS:
                    try:
                        value = _pax_number(keyword, value)
                    except _HeaderError as exc:
                        raise _HeaderError("%r: %s" % (self.name[:200], exc))
                if keyword == "path":
                    value = value.rstrip("/")
                setattr(self, keyword, value)
        self.pax_headers = pax_headers.copy()


class _PaxGlobalHeader(_FastTarInfo):
    """A pax global header, skipped and counted as containerd and moby skip it; tarfile would apply its records
    (uid, path, security.capability, ...) to every later member.  (A class of its own, so that other members
    need no test of their type.)"""

    __slots__ = ()

    def _proc_member(self, tarfile):
        if self.size < 0:  # base-256, as _FastTarInfo._proc_member refuses it
            raise _HeaderError("negative size %d of a pax global header" % self.size)
        tarfile.fileobj.read(self._block(self.size))
        tarfile.fileobj.pax_globals += 1
        return _FastTarInfo.fromtarfile(tarfile)


class _Slice:
    """Exactly ``size`` bytes of member data from a layer stream."""

    def __init__(self, stream, size, what):
        self.stream = stream
        self.left = size
        self.what = what  # a string, or a callable giving it (only needed for an error)

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        if size is None or size < 0 or size > self.left:
            size = self.left
        data = self.stream.read(size)
        if len(data) < size:
            what = self.what() if callable(self.what) else self.what
            raise FlattenError("%s: the layer ends inside the member's data" % what)
        self.left -= size
        return data


class _BlobReader:
    """Uncompressed bytes of an in-memory blob (gzip, zstd or plain by magic bytes)."""

    FEED = 16 * 1024

    def __init__(self, blob, diff_id, description):
        self.blob = blob
        self.diff_id = diff_id
        self.description = description
        self.consumed = 0  # compressed bytes fed to the decoder so far
        self.hasher = hashlib.sha256()
        self.pending = bytearray()
        self.done = False
        self.closed = False
        self.proc = None
        compression = media.compression_of(None, bytes(blob[:4]))
        self.decoder = None
        if compression == "gzip":
            self.decoder = _Gzip()
        elif compression == "zstd":
            if HAS_ZSTANDARD:
                self.decoder = _Zstd()
            else:
                self._start_zstd_cli()

    def _start_zstd_cli(self):
        binary = shutil.which("zstd")
        if not binary:
            raise UnsupportedError("cannot read a zstd layer: install python3-zstandard or the zstd command")
        self.proc = start_process([binary, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)

        def feed():
            try:
                view = memoryview(self.blob)
                for start in range(0, len(view), self.FEED):
                    self.proc.stdin.write(view[start:start + self.FEED])
                    self.consumed = min(len(view), start + self.FEED)
            except (BrokenPipeError, ValueError):
                pass
            finally:
                try:
                    self.proc.stdin.close()
                except (BrokenPipeError, ValueError):
                    pass

        self.feeder = threading.Thread(target=feed)
        self.feeder.daemon = True
        self.feeder.start()

    def _next(self):
        if self.proc is not None:
            data = self.proc.stdout.read(READ_CHUNK)
            if not data:
                self.feeder.join()
                err = self.proc.stderr.read().decode("utf-8", "replace")
                if self.proc.wait() != 0:
                    raise VerificationError("%s: zstd -d failed: %s" % (self.description, err.strip()))
            return data
        while self.consumed < len(self.blob):
            piece = self.blob[self.consumed:self.consumed + self.FEED]
            self.consumed += len(piece)
            out = self.decoder.feed(bytes(piece)) if self.decoder is not None else bytes(piece)
            if out:
                return out
        if self.decoder is not None:
            self.decoder.finish()
        return b""

    def read(self, size=-1):
        while not self.done and (size is None or size < 0 or len(self.pending) < size):
            data = self._next()
            if not data:
                self.done = True
                got = "sha256:" + self.hasher.hexdigest()
                if self.diff_id is not None and got != self.diff_id:
                    raise VerificationError("%s uncompresses to %s, but the diff_id is %s"
                                            % (self.description, got, self.diff_id))
                break
            self.hasher.update(data)
            self.pending += data
        if size is None or size < 0:
            size = len(self.pending)
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    def close(self):
        self.closed = True
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                pipe.close()


class BlobLayer:
    """A layer from a blob in memory (tests, tools): compression detected by magic bytes.

    ``diff_id``, when given, is checked when the stream is read to its end,
    like the production LayerReader.  ``opened`` lists the readers handed out.
    """

    def __init__(self, blob, description="blob", diff_id=None, compressed_size=-1):
        self.blob = blob
        self.description = description
        self.diff_id = diff_id
        self.compressed_size = len(blob) if compressed_size == -1 else compressed_size
        self.opened = []

    def open(self):
        reader = _BlobReader(self.blob, self.diff_id, self.description)
        self.opened.append(reader)
        return reader


class StoredLayer:
    """A pulled layer in a BlobStore, read through ``open_layer`` (diff_id verified at EOF)."""

    def __init__(self, store, descriptor, diff_id):
        self.store = store
        self.descriptor = descriptor
        self.diff_id = diff_id
        self.description = descriptor.get("digest", "?")
        self.compressed_size = descriptor.get("size")

    def open(self):
        return open_layer(self.store, self.descriptor, self.diff_id)
