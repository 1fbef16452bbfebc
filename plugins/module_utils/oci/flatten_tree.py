# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flatten's merged tree: the final visible filesystem (``Tree``) and the path maps the merge keys on.

Paths are interned once into a tree of ``_PathNode``; ``_PathMap`` and
``_PathSet`` key on those nodes, with a two-entry memo of the last lookups
checked inline by the merge loop's hot methods.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import FlattenError

MAX_SYMLINK_HOPS = 40
FILE, DIR, SYMLINK, FIFO, HARDLINK, DEVICE, PROXY = "file", "dir", "symlink", "fifo", "hardlink", "device", "proxy"


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
