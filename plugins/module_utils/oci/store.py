# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A content-addressed blob store with atomic writes, file locks, pins and LRU pruning.

Layout under ``root``::

    blobs/<algo>/<hex>      verified content, immutable; mtime = last use
    meta/<algo>/<hex>.json  facts learnt while verifying (diff_id, uncompressed size)
    pins/<key>.json         images kept by name: manifest digest and every blob they use
    locks/                  one lock file per blob, plus store.lock
    tmp/                    partial downloads (per process; never read as content)
    corrupt/                bad downloads kept for inspection when asked

Pulls hold ``store.lock`` shared, pruning holds it exclusive, so a blob that
a pull has found or written is never evicted before the pull pins it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.hashing import HashingWriter
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import parse_digest
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError, VerificationError

DEFAULT_CACHE_DIR = "/var/cache/lxcri/oci"
STALE_TMP_SECONDS = 24 * 3600
# tmp/<hex16>-<pid>-<random>; a name without a readable pid is stale
_BLOB_TMP = re.compile(r"^(?:[^-]*-(?P<pid>\d+)(?=-|$))?")


def _sync(fd):
    """Data (and the size) on disk before the rename makes it visible."""
    getattr(os, "fdatasync", os.fsync)(fd)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644):
    """Write ``data`` to ``path`` via a temp file, fsync and rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def pid_alive(pid):
    """True while process ``pid`` exists (also when it is another user's)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def sweep_tmp(directory, pattern, max_age=None, now=None):
    """Delete the temp files in ``directory`` that their writer left behind.

    ``pattern`` (a compiled regex matched at the start of each name) picks
    the temp files and captures the writing process's id as group ``pid``;
    other names are left alone.  A temp file goes when its name has no pid,
    when that process is gone, or when it is older than ``max_age`` seconds.
    """
    now = now or time.time()
    for name in os.listdir(directory):
        match = pattern.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        pid = match.group("pid")
        alive = pid is not None and pid_alive(int(pid))
        if not alive or (max_age is not None and now - os.path.getmtime(path) > max_age):
            try:
                os.unlink(path)
            except OSError:
                pass


class BlobWriter(HashingWriter):
    """A temp file that hashes what is written; ``reset()`` starts over (for restarts).

    With ``max_size`` (the descriptor's size), a write that would take the
    blob past it is refused, and the bytes past it never reach the disk:
    whatever the source (a registry, a layout directory, an archive), a blob
    costs the cache at most the size its descriptor gives.
    """

    def __init__(self, handle, path, algo, observer=None, max_size=None, name="blob"):
        HashingWriter.__init__(self, handle, algo)
        self.handle = handle
        self.path = path
        self.observer = observer  # e.g. a decompressor computing the diff_id
        self.max_size = max_size
        self.name = name

    def write(self, data):
        if self.max_size is not None and self.size + len(data) > self.max_size:
            self._write(data[:self.max_size - self.size])  # what keep_corrupt keeps: the blob's declared length
            raise VerificationError("blob %s: more than the %d bytes the descriptor says" % (self.name, self.max_size))
        return self._write(data)

    def _write(self, data):
        written = HashingWriter.write(self, data)
        if self.observer is not None:
            self.observer.update(data)
        return written

    def reset(self):
        self.handle.seek(0)
        self.handle.truncate()
        self.restart()
        if self.observer is not None:
            self.observer.reset()


class BlobStore:
    def __init__(self, root=DEFAULT_CACHE_DIR):
        self.root = root
        for sub in ("blobs", "meta", "pins", "locks", "tmp"):
            path = os.path.join(root, sub)
            try:
                os.makedirs(path, 0o755, exist_ok=True)
            except OSError as exc:
                raise OciError("cannot create cache directory %s: %s" % (path, exc))

    # -- paths --------------------------------------------------------------
    def path(self, digest):
        algo, value = parse_digest(digest)
        return os.path.join(self.root, "blobs", algo, value)

    def _meta_path(self, digest):
        algo, value = parse_digest(digest)
        return os.path.join(self.root, "meta", algo, value + ".json")

    def _pin_path(self, key):
        return os.path.join(self.root, "pins", hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")

    # -- locks --------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, name, exclusive=True):
        path = os.path.join(self.root, "locks", name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def lock_blob(self, digest):
        algo, value = parse_digest(digest)
        return self._flock("%s-%s.lock" % (algo, value))

    def using(self):
        """Held (shared) by a pull for its whole duration."""
        return self._flock("store.lock", exclusive=False)

    def exclusive(self):
        return self._flock("store.lock", exclusive=True)

    # -- blobs --------------------------------------------------------------
    def has(self, digest, size=None):
        try:
            st = os.stat(self.path(digest))
        except OSError:
            return False
        return size is None or st.st_size == size

    def read(self, digest, limit=None):
        with open(self.path(digest), "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise VerificationError("%s is larger than the %d bytes allowed" % (digest, limit))
        return data

    def touch(self, digest):
        try:
            os.utime(self.path(digest), None)
        except OSError:
            pass

    @contextlib.contextmanager
    def writer(self, descriptor, observer=None, keep_corrupt=False, check=None):
        """Write a blob: yields a BlobWriter; on exit verifies size and digest and commits.

        ``check(writer)`` may raise to refuse the content (e.g. a diff_id
        mismatch) before it is committed.  Nothing unverified ever reaches
        ``blobs/``; a rejected temp file is deleted, or moved to ``corrupt/``
        when ``keep_corrupt`` is set.
        """
        digest = descriptor["digest"]
        algo, value = parse_digest(digest)
        fd, tmp = tempfile.mkstemp(prefix="%s-%d-" % (value[:16], os.getpid()),
                                   dir=os.path.join(self.root, "tmp"))
        handle = os.fdopen(fd, "wb")
        size = descriptor.get("size")
        bounded = isinstance(size, int) and not isinstance(size, bool)
        writer = BlobWriter(handle, tmp, algo, observer, size if bounded else None, digest)
        committed = False
        try:
            yield writer
            handle.flush()
            _sync(handle.fileno())
            handle.close()
            size = descriptor.get("size")
            if size is not None and writer.size != size:
                raise VerificationError("blob %s: got %d bytes, the descriptor says %d"
                                        % (digest, writer.size, size))
            if writer.digest() != digest:
                raise VerificationError("blob %s: content hashes to %s" % (digest, writer.digest()))
            if check is not None:
                check(writer)
            final = self.path(digest)
            os.makedirs(os.path.dirname(final), 0o755, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.rename(tmp, final)
            _fsync_dir(os.path.dirname(final))
            committed = True
        except VerificationError:
            if not handle.closed:
                handle.close()
            if keep_corrupt and os.path.exists(tmp):
                corrupt = os.path.join(self.root, "corrupt")
                os.makedirs(corrupt, 0o755, exist_ok=True)
                shutil.move(tmp, os.path.join(corrupt, "%s-%s-%d" % (algo, value, int(time.time()))))
            raise
        finally:
            if not handle.closed:
                handle.close()
            if not committed and os.path.exists(tmp):
                os.unlink(tmp)

    def put_bytes(self, descriptor, data):
        """Store small verified content (manifests, configs)."""
        with self.lock_blob(descriptor["digest"]):
            if self.has(descriptor["digest"], descriptor.get("size")):
                return False
            with self.writer(descriptor) as out:
                out.write(data)
            return True

    # -- facts learnt about blobs -------------------------------------------
    def get_meta(self, digest):
        try:
            with open(self._meta_path(digest)) as handle:
                return json.load(handle)
        except (OSError, IOError, ValueError):
            return {}

    def set_meta(self, digest, meta):
        path = self._meta_path(digest)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        atomic_write(path, json.dumps(meta, sort_keys=True).encode("utf-8"))

    # -- pins -----------------------------------------------------------------
    def get_pin(self, key):
        try:
            with open(self._pin_path(key)) as handle:
                return json.load(handle)
        except (OSError, IOError, ValueError):
            return None

    def pin(self, key, record):
        record = dict(record, key=key, pinned_at=int(time.time()))
        atomic_write(self._pin_path(key), json.dumps(record, sort_keys=True, indent=1).encode("utf-8"))

    def unpin(self, key):
        try:
            os.unlink(self._pin_path(key))
            return True
        except OSError:
            return False

    def pins(self):
        found = []
        directory = os.path.join(self.root, "pins")
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(directory, name)) as handle:
                        found.append(json.load(handle))
                except (OSError, IOError, ValueError):
                    continue
        return found

    # -- housekeeping -----------------------------------------------------
    def blobs(self):
        """[(digest, size, mtime)] of every stored blob."""
        found = []
        base = os.path.join(self.root, "blobs")
        for algo in sorted(os.listdir(base)):
            for value in os.listdir(os.path.join(base, algo)):
                st = os.stat(os.path.join(base, algo, value))
                found.append(("%s:%s" % (algo, value), st.st_size, st.st_mtime))
        return found

    def remove_stale_tmp(self, now=None):
        """Partial downloads of processes that are gone, or older than a day."""
        sweep_tmp(os.path.join(self.root, "tmp"), _BLOB_TMP, STALE_TMP_SECONDS, now)

    def remove_blob(self, digest):
        """Delete a blob and its facts; True when the blob itself was there."""
        removed = False
        with self.lock_blob(digest):
            for path in (self.path(digest), self._meta_path(digest)):
                try:
                    os.unlink(path)
                    removed = removed or path == self.path(digest)
                except OSError:
                    pass
        return removed

    def prune(self, max_bytes=None, keep=()):
        """Evict least-recently-used blobs that no pin references.

        With ``max_bytes`` None, every unpinned blob goes; otherwise the oldest
        go until the store holds at most ``max_bytes``.  Returns the evicted digests.
        """
        with self.exclusive():
            pinned = set(keep)
            for record in self.pins():
                pinned.update(record.get("blobs") or [])
            blobs = self.blobs()
            total = sum(size for dummy, size, dummy2 in blobs)
            evicted = []
            for digest, size, dummy in sorted(blobs, key=lambda b: b[2]):
                if digest in pinned:
                    continue
                if max_bytes is not None and total <= max_bytes:
                    break
                self.remove_blob(digest)
                total -= size
                evicted.append(digest)
            return evicted

    def total_bytes(self):
        return sum(size for dummy, size, dummy2 in self.blobs())


def store_complete(root):
    """Whether a blob store is at ``root`` with all its directories and its lock file.

    Check mode opens a store only then: BlobStore() creates what is missing,
    and a pull's shared lock creates ``locks/store.lock``.
    """
    subdirs = ("blobs", "meta", "pins", "locks", "tmp")
    return all(os.path.isdir(os.path.join(root, sub)) for sub in subdirs) and \
        os.path.isfile(os.path.join(root, "locks", "store.lock"))
