# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge an image's layers into one tar stream, without unpacking to disk.

``flatten(layers, sink)`` reads the layers TOP-DOWN, once each, streaming,
and hands every entry of the final (merged) filesystem to ``sink.add`` as
soon as it is read, so no file data is buffered and no host path is ever
created from image data.  It returns a :class:`Tree`, the final visible
filesystem (metadata only, plus a few captured small files).

Semantics are those of the OCI image spec ("applying changesets"):

* ``.wh.<name>`` whiteouts and ``.wh..wh..opq`` opaque markers act on the
  lower layers only, whatever their position in their own layer; they are
  never emitted, create nothing and imply no directory.  Other
  ``.wh..wh.*`` names (aufs metadata) are dropped.
* An upper entry replaces the same path below; a non-directory hides a whole
  lower subtree; a directory replaces a lower non-directory.  Directories
  merge: the topmost explicit entry gives the attributes.  Directories only
  implied by children are emitted at the end (0755, root, newest mtime;
  parents first, siblings by name).
* Same path twice in one layer: the later one wins, as Docker and
  containerd apply it, and the template holds the path once (Proxmox VE's
  restore, GNU tar with --skip-old-files, would keep the FIRST member).  A
  hard link made between the two keeps the earlier content.  A
  directory/non-directory conflict inside one layer is an error (appliers
  disagree: containerd's overlay snapshotter keeps the lower directory's
  content under a directory that replaced a same-layer file, a plain
  unpack does not).
* Every directory entry comes before anything below it, with the
  directory's final attributes: the restore ignores an entry for a
  directory that already exists (given twice, or made earlier for
  something below it, for instance by an upper layer, which is read first).
  Directories with the attributes tar gives the ones it makes on the way
  (0755, root, no xattrs) need nothing; mtimes are not restored for them.
  Not modelled: below a setgid directory whose attributes tar has already
  applied, a new directory inherits its group and setgid bit, and GNU tar
  leaves the inherited bit even where the entry's mode lacks it.

  Both need knowledge from later members, so a pass that meets them learns
  them (FlattenHints), stops writing, finishes reading, and raises
  FlattenRestart: the caller writes the output again from the start with
  those hints (``with_restarts``).  Images without them take one pass.
* Hard links resolve in the merged view of their own layer (earlier members
  of the layer, else the lower layers, after the layer's own whiteouts).  A
  link whose target is not emitted (hidden by an upper layer, or under
  ``dev/``) is emitted as a copy of the target (regular file with its data
  and metadata; symlink; fifo) and later links point at that copy.  When a
  link needs the data of an EARLIER hidden file of the same layer, that layer
  is read a second time (rare: a lower layer's hard-linked pair where an
  upper layer replaced or removed one name).
* Member names and hard link targets: decoded as UTF-8 with surrogateescape;
  ``./a//b/`` becomes ``a/b``; a leading ``/`` is dropped (``/etc/x`` is
  ``etc/x`` inside the root, as tar does); ANY ``..`` component is rejected;
  NUL bytes are rejected.  Symlink targets are kept verbatim: they are
  resolved inside the container.
* Anything that would be written through a non-directory on extraction (an
  entry below a symlink or file of the merged view, in the same layer or a
  lower one; a hard link whose target passes through a symlink) is an error.
  Whiteouts and opaque markers below a lower symlink are harmless and
  ignored (they remove nothing outside the image).
* Device nodes and everything below ``dev/`` are dropped (``dev`` itself is
  kept); FIFOs are kept.  Sparse members and unknown types are errors.
* Pax global headers (``g``) are skipped and counted (``Tree.pax_globals``):
  containerd and moby ignore them, and their records must not reach the
  members after them.
* Kept metadata: numeric uid/gid (names cleared), mode with
  setuid/setgid/sticky (bits above 07777, the file type some writers put
  there, are dropped), integer mtime, the pax records
  ``SCHILY.xattr.security.capability``, ``SCHILY.xattr.user.*``,
  ``SCHILY.acl.access`` and ``SCHILY.acl.default``; every other xattr or pax
  record (atime, ctime, trusted.*, security.selinux, ...) is dropped and
  counted.
* POSIX ACL records name users and groups by the image's own ids: GNU tar
  would resolve ``user:NAME`` in the host's user database (``acls``).
* Numbers the restore cannot take are refused or clamped (``numbers``): an
  owner outside 0..2^32-2 is an error (GNU tar would leave the file root's,
  or fail); an owner above 65535, which an unprivileged container cannot map,
  becomes 65534 and drops the setuid/setgid bit; an mtime outside
  0..8^11-1 is clamped.

Tracking costs memory per path, not per path byte: every path is interned
once as a node of a tree of components (``_Paths``), the sets and maps of
the merge are keyed by these nodes, ancestors are parent pointers, and a
member's metadata is dropped once it is handled (a hard link to a member
that was not emitted re-reads the layer).  What is tracked beyond the
members read (directories no member lists) is bounded by
``Limits.max_implied_dirs``, symlink targets kept for ``Tree.resolve`` by
``Limits.max_symlink_bytes``.

Layers are read with ``tarfile`` in its seekable mode over a forward-only
reader (cheaper than its stream mode's buffer copies; it never seeks back),
which counts the uncompressed bytes to enforce the expansion ratio and size
limits while streaming and bounds the size of every member header.  Pax
headers are parsed by the engine (``_pax_records``, linear in their size on
every Python); a malformed header (numbers, sizes, sparse maps, too many
extension headers) is a FlattenError naming the layer and the member (its
ordinal, header offset and, once known, name), never tarfile's bare
ValueError, IndexError or RecursionError.
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

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import (
    EXPANSION_ALLOWANCE_BYTES, HAS_ZSTANDARD, MAX_EXPANSION_RATIO, MAX_UNCOMPRESSED_BYTES, _Gzip, _Zstd)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError, UnsupportedError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import open_layer
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import parse_group, parse_passwd

READ_CHUNK = 1024 * 1024
MAX_SYMLINK_HOPS = 40
SPECULATIVE_CAPTURE_FILES = 16
_NO_LIMIT = 1 << 62

FILE, DIR, SYMLINK, FIFO, HARDLINK, DEVICE, PROXY = "file", "dir", "symlink", "fifo", "hardlink", "device", "proxy"
_REG_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_OUT_TYPE = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, FIFO: tarfile.FIFOTYPE,
             HARDLINK: tarfile.LNKTYPE}
_KIND_OF = dict([(t, FILE) for t in _REG_TYPES] + [(tarfile.DIRTYPE, DIR), (tarfile.SYMTYPE, SYMLINK), (tarfile.FIFOTYPE, FIFO),
                                                   (tarfile.LNKTYPE, HARDLINK), (tarfile.CHRTYPE, DEVICE), (tarfile.BLKTYPE, DEVICE)])
_KEEP_PAX = ("SCHILY.xattr.security.capability", "SCHILY.acl.access", "SCHILY.acl.default")
_KEEP_PAX_PREFIX = "SCHILY.xattr.user."
_XATTR_PREFIXES = ("SCHILY.xattr.", "SCHILY.acl.", "LIBARCHIVE.xattr.")
# records tarfile turns into TarInfo fields (not "dropped")
_CONSUMED_PAX = frozenset(("path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "hdrcharset"))
_OPAQUE = ".wh..wh..opq"
# Owners: a template carries container-view ids, and an unprivileged container maps 0..65535 (restored inside
# its user namespace, chown to any other id fails and fails the restore).  (uid_t)-1 tells chown "no change",
# so GNU tar leaves such a file root's, setuid bit included; beyond it tar refuses the member.
MAX_CONTAINER_ID = 65535
OVERFLOW_ID = 65534  # the kernel's overflowuid/overflowgid: how an unmapped id shows inside a user namespace
MAX_ID = 2 ** 32 - 2
MAX_MTIME = 8 ** 11 - 1  # the largest ustar mtime (year 2242): no pax record, and every filesystem keeps it
# POSIX ACL text (GNU tar's SCHILY.acl.*), as libacl's acl_from_text reads it
_ACL_SEPARATORS = re.compile(r"[,\n]")
_ACL_TAGS = {"user": "user", "u": "user", "group": "group", "g": "group", "mask": "mask", "m": "mask",
             "other": "other", "o": "other"}
_ACL_PERMS = re.compile(r"\A[rwx-]{1,3}\Z")
_ACL_ID = re.compile(r"\A(?:0|[1-9][0-9]{0,9})\Z")  # decimal as libacl's strtol(base 0) also reads it
_ACL_NUMERIC_START = "0123456789+- \t"  # other forms strtol reads as a number (octal, hex, signed)


class FlattenError(OciError):
    """A layer cannot be merged safely; the message names the layer and the member."""

    kind = "flatten"


MAX_PASSES = 3


class FlattenHints:
    """What a pass learned that the output must know before it reaches the members concerned.

    ``dups``: {layer index: {path: ordinal of its last member in that layer}} for non-directories given more
    than once in a layer (only the last is emitted); ``dirs``: {directory: (mode, uid, gid, mtime, pax
    records)} for directories to emit with these final attributes before anything below them; ``acl_ids``:
    ({user name: uid}, {group name: gid}) from the image's own /etc/passwd and /etc/group, or None while
    unknown.  ``passes``: how many passes were made so far.
    """

    def __init__(self):
        self.dups = {}
        self.dirs = {}
        self.acl_ids = None
        self.passes = 0

    def merged(self, learned):
        out = FlattenHints()
        out.passes = self.passes + 1
        for index in set(self.dups) | set(learned.dups):
            out.dups[index] = dict(self.dups.get(index, {}))
            out.dups[index].update(learned.dups.get(index, {}))
        out.dirs = dict(self.dirs)
        out.dirs.update(learned.dirs)
        out.acl_ids = learned.acl_ids if learned.acl_ids is not None else self.acl_ids
        return out


class FlattenRestart(Exception):
    """The output written so far would restore differently from the tree: write it again from the start,
    flattening with ``hints`` (``with_restarts`` does it)."""

    def __init__(self, hints):
        Exception.__init__(self, "flatten needs another pass")
        self.hints = hints


def with_restarts(attempt):
    """``attempt(hints)`` flattens (passing ``hints`` on) into fresh output and returns what it built; it is
    called again, with what the pass learned, while flatten raises FlattenRestart."""
    hints = None
    for dummy in range(MAX_PASSES):
        try:
            return attempt(hints)
        except FlattenRestart as restart:
            hints = restart.hints
    raise FlattenError("internal error: the layers still needed another pass after %d" % MAX_PASSES)


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


# --- the merged tree ---------------------------------------------------------------


class TreeEntry:
    """One path of the final filesystem, as emitted."""

    __slots__ = ("type", "mode", "uid", "gid", "mtime", "_link", "size", "layer")

    def __init__(self, kind, mode, uid, gid, mtime, linkname=None, size=0, layer=None):
        self.type = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self._link = linkname  # symlink: target verbatim; hardlink: canonical name it links to (maybe interned)
        self.size = size
        self.layer = layer  # index (bottom first) of the layer it came from; None if implied

    @property
    def linkname(self):
        link = self._link
        return link if link is None or isinstance(link, str) else str(link)

    def __repr__(self):
        return "TreeEntry(%s, %o, %d:%d, %r)" % (self.type, self.mode, self.uid, self.gid, self.linkname)


def _clean(path):
    """Lexical canonical form of a path given by a caller (not image data)."""
    parts = [p for p in path.split("/") if p and p != "."]
    return "/".join(parts) or "."


class _PathNode:
    """One canonical path, interned: its parent node and its last component.

    Hashes by identity; ``str()`` rebuilds the path (for messages and output).
    """

    __slots__ = ("parent", "name", "children")

    def __init__(self, parent, name):
        self.parent = parent
        self.name = name
        self.children = None  # component -> _PathNode

    def __str__(self):
        parts = []
        node = self
        while node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts)) or "."

    __repr__ = __str__


class _Paths:
    """The canonical paths seen, as a tree of components.

    Tracking keys on these nodes, so a path costs one node and its last
    component however long it is (200k members under a 4 KB directory
    chain share the chain), and ancestors are parent pointers, never
    rebuilt strings.  Finding a path costs its length: the recently used
    directories are cached by their full path (a bounded cache), else the
    path is walked from the root.
    """

    CACHE = 1024

    def __init__(self):
        self.root = _PathNode(None, ".")
        self.count = 0  # nodes made (besides the root)
        self.dirs = {}  # recently used directory path -> node
        self.names = {}  # recently used directory node -> path
        self.last_path = self.last_node = None  # the last path found (the same string is looked up repeatedly)
        self.other_path = self.other_node = None  # the one before

    def _new(self, parent, name):
        node = _PathNode(parent, name)
        if parent.children is None:
            parent.children = {}
        parent.children[name] = node
        self.count += 1
        return node

    def _dir(self, path, create):
        node = self.dirs.get(path)
        if node is not None:
            return node
        # the nearest cached ancestor a few levels up, else the root
        node, start, cut = self.root, 0, len(path)
        for dummy in range(4):
            cut = path.rfind("/", 0, cut)
            if cut < 0:
                break
            cached = self.dirs.get(path[:cut])
            if cached is not None:
                node, start = cached, cut + 1
                break
        for name in path[start:].split("/"):
            children = node.children
            child = children.get(name) if children is not None else None
            if child is None:
                if not create:
                    return None
                child = self._new(node, name)
            node = child
        if len(self.dirs) >= self.CACHE:
            self.dirs.clear()
        self.dirs[path] = node
        return node

    def _node(self, path, create):
        if path.__class__ is _PathNode:
            return path
        if path is self.last_path:
            return self.last_node
        if path is self.other_path:  # a member's name and its parent's alternate
            self.other_path, self.other_node, self.last_path, self.last_node = \
                self.last_path, self.last_node, path, self.other_node
            return self.last_node
        if path == ".":
            return self.root
        cut = path.rfind("/")
        if cut < 0:
            parent = self.root
        else:
            parent = self._dir(path[:cut], create)
            if parent is None:
                return None
        name = path[cut + 1:]
        children = parent.children
        node = children.get(name) if children is not None else None
        if node is None:
            if not create:
                return None
            node = self._new(parent, name)
        self.other_path, self.other_node = self.last_path, self.last_node
        self.last_path, self.last_node = path, node
        return node

    def path(self, node):
        """The path of a node (a string as given)."""
        if node.__class__ is not _PathNode:
            return node
        parent = node.parent
        if parent is None:
            return "."
        if parent.parent is None:
            return node.name
        prefix = self.names.get(parent)
        if prefix is None:
            prefix = str(parent)
            if len(self.names) >= self.CACHE:
                self.names.clear()
            self.names[parent] = prefix
        return prefix + "/" + node.name

    def find(self, path):
        """The node of a canonical path (or a node), None when never interned."""
        return self._node(path, False)

    def intern(self, path):
        return self._node(path, True)

    def lineage(self, path):
        """The nodes of a canonical path and of its ancestors, nearest first, ending with the root."""
        node = self._node(path, True)
        while node is not None:
            yield node
            node = node.parent

    def ancestors(self, path):
        """The interned proper ancestors of a canonical path, nearest first, ending with the root."""
        node = self._node(path, False)
        if node is not None:
            node = node.parent
        else:
            cut = path.rfind("/")
            node = self._dir(path[:cut], False) if cut > 0 else self.root
            if node is None:  # the deepest ancestor interned
                node = self.root
                for name in path.split("/")[:-1]:
                    child = node.children.get(name) if node.children is not None else None
                    if child is None:
                        break
                    node = child
        while node is not None:
            yield node
            node = node.parent


class _PathKeyed:
    """What _PathMap and _PathSet share: keys are interned nodes, found from a path string or a node (the
    last path looked up is memoised by the _Paths); iterating yields path strings."""

    __slots__ = ("paths", "data")

    def __init__(self, paths, data):
        self.paths = paths
        self.data = data

    def __contains__(self, path):
        paths = self.paths
        node = paths.last_node if path is paths.last_path else paths.find(path)
        return node is not None and node in self.data

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        return (str(node) for node in list(self.data))


class _PathMap(_PathKeyed):
    """A dict keyed by canonical paths (strings or interned nodes); iterating yields path strings."""

    __slots__ = ()

    def __init__(self, paths):
        _PathKeyed.__init__(self, paths, {})  # _PathNode -> value

    def items(self):
        return [(str(node), value) for node, value in self.data.items()]

    def get(self, path, default=None):
        paths = self.paths
        node = paths.last_node if path is paths.last_path else paths.find(path)
        return default if node is None else self.data.get(node, default)

    def __getitem__(self, path):
        node = self.paths.find(path)
        if node is None:
            raise KeyError(path)
        return self.data[node]

    def __setitem__(self, path, value):
        paths = self.paths
        self.data[paths.last_node if path is paths.last_path else paths.intern(path)] = value

    def __delitem__(self, path):
        node = self.paths.find(path)
        if node is None:
            raise KeyError(path)
        del self.data[node]

    def pop(self, path, *default):
        node = self.paths.find(path)
        if node is None:
            if default:
                return default[0]
            raise KeyError(path)
        return self.data.pop(node, *default)

    def setdefault(self, path, default=None):
        return self.data.setdefault(self.paths.intern(path), default)


class _PathSet(_PathKeyed):
    """A set of canonical paths (strings or interned nodes); iterating yields path strings."""

    __slots__ = ()

    def __init__(self, paths):
        _PathKeyed.__init__(self, paths, set())  # _PathNode

    def add(self, path):
        self.data.add(self.paths.intern(path))

    def discard(self, path):
        node = self.paths.find(path)
        if node is not None:
            self.data.discard(node)

    def update(self, paths):
        if isinstance(paths, _PathSet):
            self.data.update(paths.data)
        else:
            for path in paths:
                self.add(path)


class Tree:
    """The final visible filesystem written to the sink."""

    def __init__(self):
        self.entries = _PathMap(_Paths())  # canonical path -> TreeEntry
        self.members = 0  # entries given to the sink
        self.bytes = 0  # regular-file data bytes given to the sink
        self.read_bytes = 0  # uncompressed layer bytes read (re-reads included)
        self.dropped = 0  # device nodes, dev/ content, aufs metadata, links to dropped devices
        self.dropped_xattrs = 0  # pax records dropped (xattrs, atime, ctime, ...) over all members read
        self.mtime_max = 0
        self.rereads = 0  # layers read twice for a hard link (see module doc)
        self.passes = 1  # passes over the layers (2 when the first learned what its output got wrong)
        self.same_path_repeats = 0  # members of a path given earlier in the same layer (one entry is emitted)
        self.pax_globals = 0  # pax global headers ('g'), ignored as containerd and moby ignore them
        self.clamped_ids = 0  # uid/gid above 65535 set to 65534 (setuid/setgid bit dropped with it)
        self.clamped_mtimes = 0  # mtimes outside 0..8^11-1 set to the nearer end
        self.acl_converted = 0  # ACL entries naming a user or group, given the image's id for it
        self.acl_dropped = 0  # ACL entries dropped: unknown name, id beyond 65535, other numeric form, malformed
        self._captures = {}
        self._too_big = set()

    def lookup(self, path):
        return self.entries.get(_clean(path))

    def _content(self, entry):
        hops = 0
        while entry is not None and entry.type == HARDLINK:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            entry = self.entries.get(entry.linkname)
        return entry

    def resolve(self, path, follow_last=True):
        """Canonical path after resolving symlinks inside the image root, or None if missing.

        Absolute symlink targets are relative to the image root and ``..``
        stops at the root, as inside the container.
        """
        todo = list(reversed(path.split("/")))
        cur = []
        hops = 0
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if cur:
                    cur.pop()
                continue
            cur.append(comp)
            entry = self._content(self.entries.get("/".join(cur)))
            if entry is None:
                return None
            more = any(c not in ("", ".") for c in todo)
            if entry.type == SYMLINK and (more or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise FlattenError("%s: too many levels of symbolic links" % path)
                cur.pop()
                if entry.linkname.startswith("/"):
                    cur = []
                todo.extend(reversed(entry.linkname.split("/")))
            elif more and entry.type != DIR:
                return None
        return "/".join(cur) or "."

    def captured(self, path):
        """Bytes of a captured regular file (symlinks and hard links followed), None when absent."""
        real = self.resolve(path)
        if real is None:
            return None
        entry = self.entries[real]
        hops = 0
        while entry.type == HARDLINK and hops < MAX_SYMLINK_HOPS:
            hops += 1
            real = entry.linkname
            entry = self.entries.get(real)
            if entry is None:
                return None
            if entry.type == SYMLINK:
                return self.captured(real)
        if entry.type != FILE:
            return None
        if real in self._captures:
            return self._captures[real]
        if real in self._too_big:
            raise FlattenError("%s (%s) is larger than max_capture_bytes" % (path, real))
        raise FlattenError("%s (%s) was not captured while flattening: it was emitted before it was known "
                           "to be needed (pass it in capture=)" % (path, real))


# --- layer readers ------------------------------------------------------------------


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
        self.proc = subprocess.Popen([binary, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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


# --- the flattener -------------------------------------------------------------------


class _Node:
    """The content a non-directory path holds in one layer.

    Hard links share their target's node (``forward``); ``name`` is the output
    name carrying the content once emitted; ``waiters`` are link names to emit
    as hard links to it once it has one.
    """

    __slots__ = ("kind", "name", "info", "xattrs", "forward", "waiters", "ordinal", "live", "refetch")

    def __init__(self, kind, info=None, xattrs=None, ordinal=None):
        self.kind = kind
        self.name = None
        self.info = info
        self.xattrs = xattrs
        self.forward = None
        self.waiters = None
        self.ordinal = ordinal
        self.live = False  # its data is at the layer stream's position right now
        self.refetch = None  # link names waiting for the data of a re-read


class _Waiting(dict):
    """Link names waiting for content, in arrival order, used as a list whose membership test and removal
    (a later member of the same name, forget_waiter) cost O(1), not the length of the list."""

    __slots__ = ()

    def extend(self, names):
        for name in names:
            self[name] = None

    def remove(self, name):
        del self[name]

    def first(self):
        return next(iter(self))


def _target(node):
    while node.forward is not None:
        node = node.forward
    return node


def _parent(name):
    i = name.rfind("/")
    return name[:i] if i > 0 else "."


def _ancestors(name):
    """Proper ancestors of a canonical name, nearest first, ending with "."."""
    out = []
    while name != ".":
        name = _parent(name)
        out.append(name)
    return out


class _DiscardSink:
    """Where a pass writes once it knows its output will be written again."""

    @staticmethod
    def add(info, fileobj=None):
        pass


class _Flattener:
    def __init__(self, layers, sink, limits, capture, hints=None):
        self.layers = list(layers)
        self.sink = sink
        self.hints = hints or FlattenHints()
        self.learned = FlattenHints()  # what this pass finds that its output got wrong
        self.restart = False
        self.need_acl_ids = False  # an ACL names a user or group, and the image's ids are not known yet
        self.early_pending = set(self.hints.dirs)  # hinted directories not emitted yet
        self.early_clear = set()  # directories with no hinted directory left to emit at or above them
        self.limits = limits or Limits()
        self.tree = Tree()
        self.taken = self.tree.entries  # visible paths of the layers read so far
        self.paths = self.taken.paths  # every path tracked below is interned here
        self.hide_all = _PathSet(self.paths)  # a path and its subtree are hidden below (whiteout, hidden non-directory)
        self.hide_children = _PathSet(self.paths)  # a directory's lower content is hidden (opaque marker)
        self.emitted_parents = _PathMap(self.paths)  # directory -> one emitted path below it
        self.pending = _PathMap(self.paths)  # link target path -> [(layer index, proxy node)]
        self.capture = set(_clean(c) for c in capture)
        self.capture_prefixes = set()
        for path in self.capture:
            self.capture_prefixes.update(_ancestors(path))
        self.capture_basenames = set(c.rpartition("/")[2] for c in self.capture)
        self.speculative = 0
        self.total = 0  # uncompressed bytes of the layers' first reads
        self.counting = True  # False while a layer is re-read
        self.allowance = self.limits.expansion_allowance_bytes  # what is left of it
        self.caps = {}  # layer index -> its cap on the first read (a re-read has the same)
        self.symlink_bytes = 0
        self.read_count = 0
        self.index = None
        self.stream = None

    # errors and limits

    def where(self, index=None):
        index = self.index if index is None else index
        return "layer %d of %d (%s)" % (index + 1, len(self.layers), self.layers[index].description)

    def fail(self, path, message, index=None):
        raise FlattenError("%s: %s: %s" % (self.where(index), path, message))

    def account(self, size, layer_count, cap):
        if self.counting:
            self.total += size
        self.tree.read_bytes += size
        if cap is not None and layer_count > cap:
            raise FlattenError("%s: expands beyond %s times its compressed size of %d bytes, and the %d MiB the image "
                               "may take beyond that are spent (max_expansion_ratio); raise max_expansion_ratio to "
                               "accept it if you trust the image"
                               % (self.where(), self.limits.max_expansion_ratio, self.layers[self.index].compressed_size,
                                  self.limits.expansion_allowance_bytes >> 20))
        if self.limits.max_uncompressed_bytes is not None and self.total > self.limits.max_uncompressed_bytes:
            raise FlattenError("%s: the layers expand beyond max_uncompressed_bytes (%d); raise max_uncompressed_bytes "
                               "to accept a larger image" % (self.where(), self.limits.max_uncompressed_bytes))

    def canon(self, name, what="member name"):
        if "\x00" in name:
            self.fail(repr(name), "%s contains a NUL byte" % what)
        limits = self.limits
        if len(name) * 4 > limits.max_path_bytes and len(name.encode("utf-8", "surrogateescape")) > limits.max_path_bytes:
            self.fail(name[:200] + "...", "%s longer than max_path_bytes (%d)" % (what, limits.max_path_bytes))
        parts = name.split("/")
        wrapped = "/%s/" % name  # substring tests instead of scans of a list of thousands of parts
        if "//" in wrapped or "/./" in wrapped:
            parts = [p for p in parts if p and p != "."]
        if "/../" in wrapped:
            self.fail(name, "%s has a '..' component" % what)
        if parts and max(map(len, parts)) * 4 > limits.max_name_bytes:  # a loop per component only then
            for part in parts:
                if len(part) * 4 > limits.max_name_bytes and len(part.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
                    self.fail(name[:200], "a component of the %s is longer than max_name_bytes (%d)" % (what, limits.max_name_bytes))
        return "/".join(parts) or "."

    def xattrs(self, info, name):
        """(kept pax records or None); checks max_xattr_bytes and counts dropped records."""
        kept = None
        size = 0
        for key, value in info.pax_headers.items():
            if key in _CONSUMED_PAX:
                continue
            if key.startswith(_XATTR_PREFIXES):
                size += len(key) + len(value)
            if key in _KEEP_PAX or key.startswith(_KEEP_PAX_PREFIX):
                if kept is None:
                    kept = {}
                kept[key] = value
            else:
                self.tree.dropped_xattrs += 1
        if size * 4 > self.limits.max_xattr_bytes:
            size = sum(len(k.encode("utf-8", "surrogateescape")) + len(v.encode("utf-8", "surrogateescape"))
                       for k, v in info.pax_headers.items() if k.startswith(_XATTR_PREFIXES))
            if size > self.limits.max_xattr_bytes:
                self.fail(name, "extended attributes of %d bytes exceed max_xattr_bytes (%d)" % (size, self.limits.max_xattr_bytes))
        if kept is not None and ("SCHILY.acl.access" in kept or "SCHILY.acl.default" in kept):
            self.acls(kept)
        return kept

    def acls(self, records, count=True):
        """Rewrite the POSIX ACL records in ``records`` so that the restore looks nothing up on the host.

        GNU tar --acls hands the text to acl_from_text, which resolves ``user:NAME``/``group:NAME`` in the
        HOST's user database (and reads ids with strtol: 010 is 8).  A name becomes the id the image's own
        /etc/passwd or /etc/group gives it; an entry naming no such user or group, with an id beyond
        65535 (which an unprivileged container cannot map: the restore would drop the whole ACL) or in
        another numeric form, or malformed, is dropped; both are counted.  Extra fields after the
        permissions (star's ``:uid``) are dropped, as GNU tar drops them.  While the image's ids are not
        known yet (the first pass), names are left as they are and another pass is asked for.
        """
        for key in ("SCHILY.acl.access", "SCHILY.acl.default"):
            text = records.get(key)
            if text is None:
                continue
            entries = []
            for entry in _ACL_SEPARATORS.split(text):
                entry = entry.strip()
                if not entry or entry.startswith("#"):
                    continue
                fields = [field.strip() for field in entry.split(":")]
                tag = _ACL_TAGS.get(fields[0])
                if len(fields) == 2 and tag in ("mask", "other"):
                    fields.insert(1, "")
                qualifier = fields[1] if len(fields) > 2 else None
                if tag is None or qualifier is None or not _ACL_PERMS.match(fields[2]) or (qualifier and tag not in ("user", "group")):
                    self.tree.acl_dropped += count
                    continue
                if qualifier and not _ACL_ID.match(qualifier):
                    ids = self.hints.acl_ids
                    if ids is None:
                        if qualifier[0] not in _ACL_NUMERIC_START:
                            self.need_acl_ids = True
                            self.learn()
                            entries.append(entry)
                            continue
                    elif qualifier[0] not in _ACL_NUMERIC_START:
                        ident = ids[1 if tag == "group" else 0].get(qualifier)
                        if ident is not None and ident <= MAX_CONTAINER_ID:
                            self.tree.acl_converted += count
                            entries.append("%s:%d:%s" % (tag, ident, fields[2]))
                            continue
                    self.tree.acl_dropped += count
                    continue
                if qualifier and int(qualifier) > MAX_CONTAINER_ID:
                    self.tree.acl_dropped += count
                    continue
                entries.append("%s:%s:%s" % (tag, qualifier, fields[2]))
            if entries:
                records[key] = ",".join(entries)
            else:
                del records[key]

    def image_ids(self):
        """({user name: uid}, {group name: gid}) from the image's /etc/passwd and /etc/group, the first line of a
        name winning as getpwnam's; empty when the image has none (or they were not captured)."""
        maps = ({}, {})
        for index, path, parse in ((0, "etc/passwd", parse_passwd), (1, "etc/group", parse_group)):
            try:
                data = self.tree.captured(path)
            except FlattenError:
                data = None
            for record in parse(data.decode("utf-8", "replace") if data is not None else None):
                maps[index].setdefault(record[0], record[1])
        return maps

    def numbers(self, info, name):
        """Refuse owners no restore can take; clamp those an unprivileged container cannot map, and mtimes.

        An owner outside 0..2^32-2 is an error (a pax uid/gid record that is not a decimal number, which
        tarfile reads as 0, is refused by the header parser, _pax_number).  One above 65535 becomes 65534, the id an unmapped owner shows as, and the
        member loses its setuid (setgid) bit with it.  An mtime outside 0..8^11-1 (or not a number) is set
        to the nearer end.  ``Tree.clamped_ids`` and ``Tree.clamped_mtimes`` count them.
        """
        for field, bit in (("uid", 0o4000), ("gid", 0o2000)):
            value = getattr(info, field)
            if not 0 <= value <= MAX_ID:
                self.fail(name, "%s %d is outside 0..%d: restoring it would fail, or leave the file owned by root"
                          % (field, value, MAX_ID))
            if value > MAX_CONTAINER_ID:
                setattr(info, field, OVERFLOW_ID)
                info.mode &= ~bit
                self.tree.clamped_ids += 1
        mtime = info.mtime
        if not 0 <= mtime <= MAX_MTIME:
            info.mtime = MAX_MTIME if mtime > MAX_MTIME else 0  # NaN and negative: 0
            self.tree.clamped_mtimes += 1

    # output

    def out_info(self, name, kind, info, xattrs):
        out = tarfile.TarInfo(name)
        out.type = _OUT_TYPE[kind]
        out.mode = info.mode & 0o7777
        out.uid = info.uid
        out.gid = info.gid
        out.uname = ""
        out.gname = ""
        out.mtime = int(info.mtime)
        if kind == SYMLINK:
            out.linkname = info.linkname
        elif kind == FILE:
            out.size = info.size
        if xattrs:
            out.pax_headers = dict(xattrs)
        return out

    def record(self, name, kind, out, layer):
        old = self.taken.get(name)
        if old is not None and old.type == HARDLINK:
            layer = old.layer  # a link name keeps the layer it came from (it hides what is below it)
        link = out.linkname or None
        if kind == HARDLINK and link is not None:
            link = self.paths.intern(link)
        elif kind == SYMLINK and link is not None:
            self.symlink_bytes += len(link)
            if self.symlink_bytes > self.limits.max_symlink_bytes:
                self.fail(name, "symlink targets take more than max_symlink_bytes (%d) in all" % self.limits.max_symlink_bytes)
        entry = TreeEntry(kind, out.mode, out.uid, out.gid, out.mtime, link, out.size, layer)
        self.taken[name] = entry
        if out.mtime > self.tree.mtime_max:
            self.tree.mtime_max = out.mtime
        return entry

    def emit(self, out, fileobj=None):
        if self.early_pending:
            self.emit_early_parents(out.name)
        self.sink.add(out, fileobj)
        self.tree.members += 1

    # what GNU tar's --skip-old-files restore would get wrong: learned in one pass, right in the next

    def learn(self):
        """This pass's output would restore differently from the tree: finish the pass to learn everything
        (writing nothing more), then ask for another."""
        if not self.restart:
            self.restart = True
            self.sink = _DiscardSink()

    def dir_out(self, name, attributes):
        mode, uid, gid, mtime, pax = attributes
        out = tarfile.TarInfo(name)
        out.type = tarfile.DIRTYPE
        out.mode, out.uid, out.gid, out.mtime = mode, uid, gid, mtime
        out.uname = out.gname = ""
        if pax:
            out.pax_headers = dict(pax)
            self.acls(out.pax_headers, count=False)  # learned before the image's ids were (the member counts)
        return out

    def emit_early(self, name):
        self.early_pending.discard(name)
        self.emit(self.dir_out(name, self.hints.dirs[name]))

    def emit_early_parents(self, name):
        """Emit the hinted directories above ``name`` that are not out yet, outermost first."""
        chain = []
        while name != ".":
            name = _parent(name)
            if name in self.early_clear:
                break
            chain.append(name)
        for directory in reversed(chain):
            if directory in self.early_pending:
                self.emit_early(directory)
            self.early_clear.add(directory)

    def emit_dir(self, name, out, before):
        """Emit a directory once, before anything below it.

        The restore (GNU tar, --skip-old-files) ignores an entry for a directory that already exists: a
        directory given again later in its layer, or whose explicit entry comes after something below it
        (written by an upper layer, or earlier in its own layer), would keep the first entry's attributes,
        or those of a directory tar made on the way (0755, root).  Such a directory is learned with its
        final attributes, and the next pass emits it with them before anything below it.  ``before``: the
        tree entry of the same directory given earlier in this layer, or None.
        """
        hinted = self.hints.dirs.get(name) if self.hints.dirs else None
        if hinted is not None:
            if name in self.early_pending:
                self.emit_early(name)
            return
        if before is not None:
            changed = (before.mode, before.uid, before.gid, before.mtime) != (out.mode, out.uid, out.gid, out.mtime)
            if name != "." and (changed or out.pax_headers or name in self.dir_xattrs):
                self.learned.dirs[name] = (out.mode, out.uid, out.gid, out.mtime, dict(out.pax_headers))
                self.learn()
            return
        if out.pax_headers:
            self.dir_xattrs.add(name)
        if (name in self.emitted_parents and name != "."
                and (out.pax_headers or out.mode != 0o755 or out.uid != 0 or out.gid != 0)):
            # (the root exists before any restore: its entry never applies, wherever it comes)
            self.learned.dirs[name] = (out.mode, out.uid, out.gid, out.mtime, dict(out.pax_headers))
            self.learn()
        self.emit(out)

    def mark_parents(self, name):
        parents = self.emitted_parents
        child = self.paths.intern(name)
        for name in self.paths.ancestors(child):
            if name in parents:
                return
            parents[name] = child

    def emit_file(self, name, info, xattrs, layer, what):
        """Emit a regular file whose data is at the stream's position."""
        out = self.out_info(name, FILE, info, xattrs)
        data = _Slice(self.stream, info.size, what)
        capture = name in self.capture
        if not capture and name.rpartition("/")[2] in self.capture_basenames and self.speculative < SPECULATIVE_CAPTURE_FILES:
            capture = info.size <= self.limits.max_capture_bytes
            self.speculative += capture
        if capture:
            if info.size <= self.limits.max_capture_bytes:
                blob = data.read()
                self.tree._captures[name] = blob
                self.tree._too_big.discard(name)
                data = io.BytesIO(blob)
            else:
                self.tree._too_big.add(name)
                self.tree._captures.pop(name, None)
        self.record(name, FILE, out, layer)
        self.emit(out, data)
        self.tree.bytes += info.size

    def emit_link(self, name, target, layer):
        dest = self.taken.get(target)
        out = tarfile.TarInfo(name)
        out.type = tarfile.LNKTYPE
        out.linkname = self.paths.path(target)
        out.uname = out.gname = ""
        if dest is not None:
            out.mode, out.uid, out.gid, out.mtime = dest.mode, dest.uid, dest.gid, dest.mtime
        entry = self.taken.get(name)
        if entry is None or entry.type == HARDLINK:
            self.record(name, HARDLINK, out, layer)
        self.emit(out)

    def materialize(self, node, name, layer):
        """Emit ``name`` as a copy of a node that was not emitted under its own name."""
        info = node.info
        if node.kind == FILE:
            self.emit_file(name, info, node.xattrs, layer, name)
        else:
            out = self.out_info(name, node.kind, info, node.xattrs)
            self.record(name, node.kind, out, layer)
            self.emit(out)
        node.name = self.paths.intern(name)

    def attach(self, node, names, layer):
        """Make the link ``names`` hold ``node``'s content (now or once it is known)."""
        node = _target(node)
        if node.kind == PROXY:
            node.waiters.extend(self.paths.intern(name) for name in names)
            return
        if node.kind == DEVICE:
            for name in names:
                self.tree.dropped += 1
                self.taken.pop(name, None)
                self.hide_all.add(name)
            return
        names = [self.paths.path(name) for name in names]
        if not names:
            return
        if node.name is None and node.refetch is None:
            if node.live:  # a node keeps its member's metadata only while it is read (else: a re-read)
                self.materialize(node, names.pop(0), layer)
            else:
                node.refetch = _Waiting()
                self.refetch.append(node)
        if node.name is None:
            node.refetch.extend(self.paths.intern(name) for name in names)
            return
        for name in names:
            self.emit_link(name, node.name, layer)

    # per layer

    def run(self):
        for index in range(len(self.layers) - 1, -1, -1):
            self.index = index
            self.begin_layer()
            self.read_layer(index, self.member)
            if self.refetch:
                self.reread(index)
            self.end_layer(index)
        for target, groups in sorted(self.pending.items()):
            for from_layer, proxy in groups:
                if proxy.waiters:
                    self.fail(proxy.waiters.first(), "hard link target %s does not exist" % target, from_layer)
        self.emit_implied()
        if self.restart:
            if self.need_acl_ids:
                self.learned.acl_ids = self.image_ids()
            raise FlattenRestart(self.hints.merged(self.learned))
        self.tree.passes = self.hints.passes + 1
        return self.tree

    def begin_layer(self):
        paths = self.paths
        self.cur = _PathMap(paths)  # path -> DIR or _Node, for this layer's members so far
        self.layer_parents = _PathSet(paths)  # directories with members below them in this layer (no non-dir above)
        self.hidden_cache = _PathMap(paths)
        self.whiteouts = _PathSet(paths)
        self.opaques = _PathSet(paths)
        self.hidden_nondirs = _PathSet(paths)
        self.resolved_here = _PathSet(paths)
        self.link_parents = set()  # nodes of directories above hard link targets, with no non-directory of this layer
        self.refetch = []
        self.dir_xattrs = set()  # directories of this layer emitted with pax records
        self.layer_dups = self.hints.dups.get(self.index)  # (pass 2) path -> ordinal of its last member
        self.ordinal = 0

    def read_layer(self, index, handle, count=1):
        layer = self.layers[index]
        cap = None
        share = int(layer.compressed_size * self.limits.max_expansion_ratio) if layer.compressed_size else None
        if share is not None:
            # its ratio's share, plus what the layers read so far left of the image's allowance
            cap = self.caps.setdefault(index, share + self.allowance)
        self.counting = bool(count)
        raw = layer.open()
        try:
            stream = _LayerStream(raw, self, cap)
            self.stream = stream
            stream.begin_header(0)
            try:
                tar = tarfile.TarFile(fileobj=stream, mode="r", encoding="utf-8", errors="surrogateescape",
                                      tarinfo=_FastTarInfo)
            except tarfile.ReadError as exc:
                if str(exc) != "empty file":
                    raise FlattenError("%s: not a tar archive: %s" % (self.where(), exc))
                tar = None
            except _UNREADABLE as exc:
                raise self.header_error(exc, 0, 0)
            ordinal = 0
            while tar is not None:
                stream.begin_header(tar.offset)
                try:
                    info = tar.next()
                except _UNREADABLE as exc:
                    raise self.header_error(exc, ordinal, tar.offset)
                except tarfile.TarError as exc:
                    raise FlattenError("%s: corrupt tar after %d members: %s" % (self.where(), ordinal, exc))
                stream.end_header()
                del tar.members[:]
                if info is None:
                    block = stream.header_block
                    if block and block.strip(b"\0"):
                        raise FlattenError("%s: invalid tar header at offset %d (after %d members)"
                                           % (self.where(), tar.offset, ordinal))
                    break
                ordinal += 1
                self.read_count += count
                if self.read_count > self.limits.max_members:
                    raise FlattenError("%s: more than max_members (%d) members" % (self.where(), self.limits.max_members))
                if stream.pos < info.offset_data:
                    stream.seek(info.offset_data)
                handle(info, ordinal)
                if self.paths.count - self.read_count > self.limits.max_implied_dirs:
                    self.fail(info.name, "the members imply more than max_implied_dirs (%d) directories that no member "
                              "lists" % self.limits.max_implied_dirs)
            stream.end_header()
            stream.drain()
            if count:
                self.tree.pax_globals += stream.pax_globals
            if share is not None and count:
                self.allowance -= max(0, stream.count - share)
        finally:
            self.stream = None
            raw.close()

    def header_error(self, exc, ordinal, offset):
        """A member header that cannot be read, as the engine's error (tarfile also raises bare ValueError & co)."""
        detail = str(exc) if isinstance(exc, _HeaderError) else "unreadable header (%s: %s)" % (type(exc).__name__, exc)
        return FlattenError("%s: member %d (header at offset %d): %s" % (self.where(), ordinal + 1, offset, detail))

    def children_hidden(self, directory):
        """Is the lower content of ``directory`` hidden by the layers above this one?"""
        cache = self.hidden_cache
        result = cache.get(directory)
        if result is not None:
            return result
        chain = []
        for name in self.paths.lineage(directory):
            result = cache.get(name)
            if result is not None:
                break
            entry = self.taken.get(name)
            if (name in self.hide_all or name in self.hide_children
                    or (entry is not None and entry.type != DIR and entry.layer != self.index)):
                result = True
                break
            chain.append(name)
        else:
            result = False
        for name in chain:
            cache[name] = result
        return result

    def check_parents(self, name, parent):
        """No member of this layer may go through a non-directory of the same layer."""
        if parent in self.layer_parents:
            return
        for directory in self.paths.lineage(parent):
            if directory in self.layer_parents:
                break
            node = self.cur.get(directory)
            if node is not None and node is not DIR:
                kind = "symlink" if _target(node).kind == SYMLINK else "non-directory"
                self.fail(name, "writes through %s %s of the same layer" % (kind, directory))
            self.layer_parents.add(directory)

    def member(self, info, ordinal):
        name = self.canon(info.name)
        index = self.index
        parent = _parent(name) if name != "." else None
        base = name.rpartition("/")[2]
        if base.startswith(".wh."):
            self.whiteout(name, parent, base)
            return
        self.paths.intern(name)  # the lookups of name below find it at once
        itype = info.type
        if itype in _REG_TYPES:
            kind = FILE
        elif itype == tarfile.DIRTYPE:
            kind = DIR
        elif itype == tarfile.SYMTYPE:
            kind = SYMLINK
        elif itype == tarfile.LNKTYPE:
            kind = HARDLINK
        elif itype == tarfile.FIFOTYPE:
            kind = FIFO
        elif itype in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            kind = DEVICE
        elif itype == tarfile.GNUTYPE_SPARSE:
            self.fail(name, "sparse files are not supported")
        else:
            self.fail(name, "unsupported tar member type %r" % itype)
        if info.sparse is not None:
            self.fail(name, "sparse files are not supported")
        if name == "." and kind != DIR:
            self.fail(name, "the root is not a directory")
        if parent is not None:
            self.check_parents(name, parent)
        if not (0 <= info.uid <= MAX_CONTAINER_ID and 0 <= info.gid <= MAX_CONTAINER_ID
                and 0 <= info.mtime <= MAX_MTIME) or ("uid" in info.pax_headers or "gid" in info.pax_headers):
            self.numbers(info, name)
        xattrs = self.xattrs(info, name) if info.pax_headers else None

        under_dev = name.startswith("dev/")
        previous = self.cur.get(name)
        if previous is not None:
            self.tree.same_path_repeats += 1
            if (previous is DIR) != (kind == DIR):
                self.fail(name, "appears twice in the layer, as a directory and as a non-directory")
        last = self.layer_dups.get(name) if self.layer_dups else None
        superseded = last is not None and last != ordinal
        if last is not None:
            # (a later pass) only the last member of the path counts; the earlier ones are in this layer, for
            # the hard links between them, but are not emitted and do not take the path
            visible = not (superseded or under_dev or kind == DEVICE or (parent is not None and self.children_hidden(parent))
                           or name in self.hide_all or name in self.taken)
        elif previous is not None:
            visible = name in self.taken and self.taken[name].layer == index
            if kind == DIR:
                visible = visible and self.taken[name].type == DIR
            else:
                waited = self.forget_waiter(previous, self.paths.intern(name))
                learned = self.learned.dups.get(index)
                if (visible and not waited) or name in self.resolved_here or (learned and name in learned):
                    # the earlier member is out (or an upper layer's hard link took it): only another pass can
                    # leave it out, as GNU tar's restore keeps the FIRST member of a path
                    self.learned.dups.setdefault(index, {})[name] = ordinal
                    self.learn()
        elif under_dev or kind == DEVICE:
            visible = False
        else:
            entry = self.taken.get(name)
            visible = not ((parent is not None and self.children_hidden(parent))
                           or name in self.hide_all or entry is not None)
        if under_dev or kind == DEVICE:
            self.tree.dropped += 1

        if kind == DIR:
            self.cur[name] = DIR
            for from_layer, proxy in self.pending.get(name, ()):
                if from_layer > index and proxy.waiters:
                    self.fail(proxy.waiters.first(), "hard link to directory %s" % name, from_layer)
            if visible:
                out = self.out_info(name, DIR, info, xattrs)
                before = self.taken.get(name) if previous is not None else None
                self.record(name, DIR, out, index)
                self.emit_dir(name, out, before)
                if name != ".":
                    self.mark_parents(name)
            return

        if name in self.layer_parents:
            self.fail(name, "a non-directory replaces a directory with members earlier in the same layer")
        if self.link_parents and self.paths.find(name) in self.link_parents:
            self.link_parents = set()  # checked before it was a non-directory
        if visible and name in self.emitted_parents:
            kind_word = "symlink" if kind == SYMLINK else "non-directory"
            self.fail(self.emitted_parents[name], "an upper layer writes through %s %s of this layer" % (kind_word, name))
        if kind == SYMLINK:
            if "\x00" in info.linkname:
                self.fail(name, "symlink target contains a NUL byte")
            if len(info.linkname) > self.limits.max_path_bytes:
                self.fail(name, "symlink target longer than max_path_bytes (%d)" % self.limits.max_path_bytes)
        if not visible:
            self.hidden_nondirs.add(name)

        if kind == HARDLINK:
            node = self.hardlink(name, info)
            if name in self.capture:
                self.add_capture(self.canon(info.linkname, "hard link target"))
            self.cur[name] = node
            if visible:
                self.taken[name] = TreeEntry(HARDLINK, info.mode & 0o7777, info.uid, info.gid, int(info.mtime), None, 0, index)
                self.mark_parents(name)
                self.attach(node, [name], index)
        else:
            node = _Node(kind, info, xattrs, ordinal)
            self.cur[name] = node
            if visible:
                if kind == FILE:
                    self.emit_file(name, info, xattrs, index, lambda: "%s: %s" % (self.where(), name))
                else:
                    out = self.out_info(name, kind, info, xattrs)
                    self.record(name, kind, out, index)
                    self.emit(out)
                    if kind == SYMLINK and (name in self.capture or name in self.capture_prefixes):
                        self.follow_capture(name, info.linkname)
                node.name = self.paths.intern(name)
                self.mark_parents(name)
        groups = self.pending.get(name) if not superseded else None
        if groups:
            mine = [g for g in groups if g[0] > index]
            if mine:
                rest = [g for g in groups if g[0] <= index]
                if rest:
                    self.pending[name] = rest
                else:
                    del self.pending[name]
                self.resolved_here.add(name)
                node = self.cur[name]
                node.live = kind != HARDLINK
                try:
                    for _from_layer, proxy in mine:
                        proxy.forward = node
                        waiters, proxy.waiters = proxy.waiters, _Waiting()
                        if waiters:
                            self.attach(node, waiters, index)
                finally:
                    node.live = False
        if kind != HARDLINK:
            node.info = node.xattrs = None  # not kept: a later hard link to it re-reads the layer (attach)

    @staticmethod
    def forget_waiter(previous, name):
        """A later member of the same name wins over an earlier hard link still waiting for its content
        (nothing was emitted for it); returns whether there was one."""
        node = _target(previous)
        if node.kind == PROXY and name in node.waiters:
            node.waiters.remove(name)
            return True
        if node.refetch and name in node.refetch:
            node.refetch.remove(name)
            return True
        return False

    def hardlink(self, name, info):
        """The node a hard link member shares: its target's, or a proxy for a lower layer's."""
        target = self.canon(info.linkname, "hard link target")
        if target == name:
            self.fail(name, "hard link to itself")
        if target == ".":
            self.fail(name, "hard link to the root directory")
        node = self.cur.get(target)
        if node is DIR:
            self.fail(name, "hard link to directory %s" % target)
        if node is not None:
            return node
        checked = []
        for directory in self.paths.ancestors(target):
            if directory in self.layer_parents.data or directory in self.link_parents:
                break  # it and its ancestors are not non-directories of this layer (check_parents, below)
            up = self.cur.data.get(directory)
            if up is not None and up is not DIR:
                kind = "symlink" if _target(up).kind == SYMLINK else "non-directory"
                self.fail(name, "hard link target %s passes through %s %s" % (target, kind, directory))
            checked.append(directory)
        self.link_parents.update(checked)
        proxy = _Node(PROXY)
        proxy.waiters = _Waiting()
        self.pending.setdefault(target, []).append((self.index, proxy))
        return proxy

    def whiteout(self, name, parent, base):
        if parent is None:
            self.fail(name, "invalid whiteout")
        self.check_parents(name, parent)
        if base == _OPAQUE:
            self.opaques.add(parent)
            return
        if base.startswith(".wh..wh."):
            self.tree.dropped += 1  # aufs metadata
            return
        hidden = base[4:]
        if hidden in ("", ".", ".."):
            self.fail(name, "invalid whiteout of %r" % hidden)
        self.whiteouts.add(hidden if parent == "." else parent + "/" + hidden)

    def end_layer(self, index):
        """Check links waiting for lower layers against this layer's removals, then merge its hiding."""
        # directories checked (with their ancestors): not removed here; and no non-directory of this layer either
        kept, solid = set(), set()
        for target in list(self.pending.data):
            groups = self.pending[target]
            keep = []
            for from_layer, proxy in groups:
                if not proxy.waiters:
                    continue
                if target in self.whiteouts:
                    self.fail(proxy.waiters.first(), "hard link target %s was removed (whiteout in %s)"
                              % (target, self.where(index)), from_layer)
                checked = []
                for directory in self.paths.ancestors(target):
                    if directory in (solid if from_layer > index else kept):
                        break
                    checked.append(directory)
                    if directory in self.whiteouts.data or directory in self.opaques.data:
                        self.fail(proxy.waiters.first(), "hard link target %s was removed (whiteout in %s)"
                                  % (target, self.where(index)), from_layer)
                    node = self.cur.data.get(directory)
                    if from_layer > index and node is not None and node is not DIR:
                        kind = "symlink" if _target(node).kind == SYMLINK else "non-directory"
                        self.fail(proxy.waiters.first(), "hard link target %s passes through %s %s of %s"
                                  % (target, kind, directory, self.where(index)), from_layer)
                kept.update(checked)
                if from_layer > index:
                    solid.update(checked)
                keep.append((from_layer, proxy))
            if keep:
                self.pending[target] = keep
            else:
                del self.pending[target]
        self.hide_all.update(self.whiteouts)
        self.hide_all.update(self.hidden_nondirs)
        self.hide_children.update(self.opaques)
        self.cur = None

    def reread(self, index):
        """Second read of a layer for hard links to an earlier member hidden above (rare)."""
        self.tree.rereads += 1
        wanted = dict((node.ordinal, node) for node in self.refetch if node.refetch)
        self.refetch = []
        if not wanted:
            return
        last = max(wanted)

        def handle(info, ordinal):
            node = wanted.get(ordinal)
            if node is None:
                return
            if _KIND_OF.get(info.type) != node.kind:
                raise FlattenError("%s: changed between two reads (member %d)" % (self.where(), ordinal))
            names = node.refetch
            node.refetch = None
            node.live = True
            node.info = info
            node.xattrs = self.xattrs(info, self.canon(info.name)) if info.pax_headers else None
            try:
                self.attach(node, names, index)
            finally:
                node.live = False
                node.info = node.xattrs = None

        self.read_layer(index, handle, count=0)
        for node in wanted.values():
            if node.name is None:
                raise FlattenError("%s: member %d not found on a second read (of %d)" % (self.where(), node.ordinal, last))

    # captures

    def add_capture(self, path):
        if path in self.capture or len(self.capture) >= 64:
            return
        self.capture.add(path)
        self.capture_prefixes.update(_ancestors(path))

    def follow_capture(self, name, linkname):
        """A symlink at or above a captured path: capture where it points, lexically."""
        base = [] if linkname.startswith("/") else name.split("/")[:-1]
        for part in linkname.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if base:
                    base.pop()
            else:
                base.append(part)
        target = "/".join(base) or "."
        for path in list(self.capture):
            if path == name or path.startswith(name + "/"):
                rest = path[len(name):]
                self.add_capture(_clean(target + rest))

    def implied(self):
        """Directories with emitted content and no entry, parents first, siblings by name; the root always
        (an image always has a root directory).  Walks the interned tree: one path string per level at a time."""
        parents = self.emitted_parents.data
        taken = self.taken.data
        root = self.paths.root

        def below(node):
            children = node.children
            if not children:
                return iter(())
            return iter(sorted((c for c in children.values() if c in parents), key=lambda c: c.name))

        if root not in taken:
            yield root, "."
        stack = [("", below(root))]
        while stack:
            prefix, todo = stack[-1]
            node = next(todo, None)
            if node is None:
                stack.pop()
                continue
            name = prefix + node.name
            if node not in taken:
                yield node, name
            stack.append((name + "/", below(node)))

    def emit_implied(self):
        mtime = self.tree.mtime_max
        for node, name in self.implied():
            out = tarfile.TarInfo(name)
            out.type = tarfile.DIRTYPE
            out.mode = 0o755
            out.uid = out.gid = 0
            out.uname = out.gname = ""
            out.mtime = mtime
            self.taken[node] = TreeEntry(DIR, 0o755, 0, 0, mtime, None, 0, None)
            self.emit(out)


def flatten(layers, sink, limits=None, capture=("etc/passwd", "etc/group"), hints=None):
    """Merge ``layers`` (bottom first, diff_ids order) into ``sink``; return the final Tree.

    Each layer needs ``description``, ``compressed_size`` (int or None) and
    ``open()`` returning a binary file-like of its UNCOMPRESSED tar; layers
    are opened one at a time, top first, read to EOF and closed.  ``sink.add(info,
    fileobj=None)`` receives fresh TarInfo objects with canonical names ("."
    or "etc/passwd"); regular files come with a file-like of exactly
    ``info.size`` bytes, hard links name an entry emitted earlier.
    ``capture``: canonical paths whose bytes ``Tree.captured`` returns.

    Raises FlattenRestart when what was given to ``sink`` would restore differently from the returned
    tree (see the module doc): flatten again into a fresh sink with its ``hints`` (``with_restarts``).
    """
    return _Flattener(layers, sink, limits, capture, hints).run()
