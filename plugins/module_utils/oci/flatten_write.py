# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flatten's tar writing: the output members, as GNU tar restores them (``TarSink``, ``open_tar_writer``).

A member that needs no pax record is written with a plain ustar header
built in one piece (``_ustar_header``), small files together with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import tarfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_read import READ_CHUNK


_USTAR_TAIL = b"ustar\x0000" + b"\0" * 247  # empty names, device numbers, prefix
_MAX_OCTAL_8 = 0o7777777
_MAX_OCTAL_12 = 0o77777777777
_SMALL_FILE = 64 * 1024  # written with its header in one call


def _ustar_header(info):
    """The header tarfile's pax writer gives a member needing no pax record, or None.

    Same bytes as Python 3.10+'s ``TarInfo.tobuf(PAX_FORMAT)`` (a test checks it), several
    times cheaper: most members of an image take this path.
    """
    name = info.name
    if info.type == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if (info.pax_headers or len(name) > 100 or len(info.linkname) > 100 or info.uname or info.gname
            or not 0 <= info.uid <= _MAX_OCTAL_8 or not 0 <= info.gid <= _MAX_OCTAL_8
            or not 0 <= info.size <= _MAX_OCTAL_12 or not 0 <= info.mtime <= _MAX_OCTAL_12
            or info.type not in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE)
            or not isinstance(info.mtime, int)):
        return None
    try:
        name = name.encode("ascii")
        link = info.linkname.encode("ascii")
    except UnicodeEncodeError:
        return None
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (info.mode & 0o7777, info.uid, info.gid, info.size, info.mtime)
    head = b"".join((name.ljust(100, b"\0"), numbers, b"        ", info.type, link.ljust(100, b"\0"), _USTAR_TAIL))
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


class TarSink:
    """A sink writing to a ``tarfile.TarFile`` opened for writing, each name prefixed (``./`` for vztmpl).

    Members that need no pax record are written directly (same bytes as
    ``addfile``, without its per-member cost); the TarFile keeps no list of them.
    """

    fast = True

    def __init__(self, tar, prefix="./"):
        self.tar = tar
        self.prefix = prefix
        if getattr(tar, "copybufsize", None) is None:
            tar.copybufsize = READ_CHUNK

    def _name(self, name):
        if name == ".":
            return self.prefix.rstrip("/") or "."
        return self.prefix + name

    def add(self, info, fileobj=None):
        info.name = self._name(info.name)
        if info.type == tarfile.LNKTYPE:
            info.linkname = self._name(info.linkname)
        tar = self.tar
        header = _ustar_header(info) if self.fast else None
        if header is None:
            tar.addfile(info, fileobj)
            del tar.members[:]
            return
        out = tar.fileobj
        size = info.size if info.type == tarfile.REGTYPE else 0
        blocks, remainder = divmod(size, tarfile.BLOCKSIZE)
        padding = tarfile.NUL * (tarfile.BLOCKSIZE - remainder) if remainder else b""
        if 0 < size <= _SMALL_FILE:
            data = fileobj.read(size)
            if len(data) != size:
                raise OSError("unexpected end of data")
            out.write(header + data + padding)
        else:
            out.write(header)
            if size:
                tarfile.copyfileobj(fileobj, out, size, bufsize=tar.copybufsize)
                out.write(padding)
        tar.offset += (1 + blocks + bool(remainder)) * tarfile.BLOCKSIZE


class _Appender:
    """Write-only, forward-only file for TarFile's "w" mode (which only needs write and tell).

    Small writes (headers, padding, small files) are gathered into larger
    ones: a compressor behind costs much less per call that way.  tarfile's
    own stream mode ("w|") re-slices its buffer once per 10 KiB record,
    which costs more than the rest of flattening on large files.
    """

    GATHER = 256 * 1024

    def __init__(self, fileobj):
        self.fileobj = fileobj
        self.position = 0
        self.pending = bytearray()
        self.closed = False

    def write(self, data):
        size = len(data)
        self.position += size
        if size >= self.GATHER:
            self.flush()
            self.fileobj.write(data)
        else:
            self.pending += data
            if len(self.pending) >= self.GATHER:
                self.flush()
        return size

    def tell(self):
        return self.position

    def flush(self):
        if self.pending:
            self.fileobj.write(bytes(self.pending))
            del self.pending[:]
        flush = getattr(self.fileobj, "flush", None)
        if flush is not None:
            flush()


class _TarWriter(tarfile.TarFile):
    """A TarFile that flushes its gathered writes when closed (not when aborted)."""

    def close(self):
        tarfile.TarFile.close(self)
        appender = self.fileobj
        if isinstance(appender, _Appender) and not appender.closed:
            appender.flush()


def open_tar_writer(fileobj):
    """A TarFile writing flatten output to any writable (pipe, GzipFile, ...): pax, UTF-8 with
    surrogateescape (binary names round-trip).  Closing it flushes but does not close ``fileobj``."""
    return _TarWriter.open(fileobj=_Appender(fileobj), mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                           errors="surrogateescape")
