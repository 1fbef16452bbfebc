# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flatten's merging: the layers read top-down into one stream of members (``_Flattener``), as the module
doc of flatten.py describes; ``FlattenHints`` and ``FlattenRestart`` carry what one pass learned to the next.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import re
import tarfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import FlattenError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_read import _UNREADABLE, Limits, _FastTarInfo, _HeaderError, _LayerStream, _Slice
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten_tree import (
    DEVICE, DIR, FIFO, FILE, HARDLINK, PROXY, SYMLINK, Tree, TreeEntry, _clean, _PathMap, _PathSet)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import parse_group, parse_passwd

SPECULATIVE_CAPTURE_FILES = 16
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
