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

This module is the public entry (``flatten``, ``with_restarts`` and the
names in ``__all__``); the work is in three modules: flatten_read.py (layer
reading: header parsing, bounds on headers, ``BlobLayer``/``StoredLayer``),
flatten_tree.py and flatten_merge.py (merging: the path tree and the
``_Flattener``), flatten_write.py (tar writing: ``TarSink``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import FlattenError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_merge import FlattenHints, FlattenRestart, _Flattener
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_read import BlobLayer, Limits, StoredLayer
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_tree import MAX_SYMLINK_HOPS, Tree, TreeEntry
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_write import TarSink, open_tar_writer

__all__ = ("BlobLayer", "FlattenError", "FlattenHints", "FlattenRestart", "Limits", "MAX_SYMLINK_HOPS", "StoredLayer",
           "TarSink", "Tree", "TreeEntry", "flatten", "open_tar_writer", "with_restarts")

MAX_PASSES = 3


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
