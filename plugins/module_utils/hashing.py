# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hashing shared by the OCI engine and the Proxmox VE client: a file's sha256, and a hashing writer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

CHUNK = 1024 * 1024


def sha256_file(path):
    """The sha256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashingWriter:
    """Passes writes on to ``target``, hashing them and counting their size.

    ``flush()`` does nothing: the bytes are the target's business (a
    compressor must not be made to flush mid-stream).  ``fileno()`` hands out
    the target's descriptor for a writer that bypasses this one (the zstd
    command's stdout): from then on ``complete`` is False, the hash no longer
    covers everything written.
    """

    def __init__(self, target, algo="sha256"):
        self.target = target
        self.algo = algo
        self.hasher = hashlib.new(algo)
        self.size = 0
        self.complete = True

    def write(self, data):
        written = self.target.write(data)
        self.hasher.update(data)
        self.size += len(data)
        return written

    def flush(self):
        pass

    def fileno(self):
        fd = self.target.fileno()
        self.target.flush()
        self.complete = False
        return fd

    def restart(self):
        """Forget what was hashed (the target is the caller's to rewind)."""
        self.hasher = hashlib.new(self.algo)
        self.size = 0

    def hexdigest(self):
        return self.hasher.hexdigest()

    def digest(self):
        """``<algo>:<hex>``, as OCI descriptors write it."""
        return "%s:%s" % (self.algo, self.hasher.hexdigest())
