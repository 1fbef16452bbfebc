# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``oci_template`` publishes a template: a directory (``dest``) here, a Proxmox VE storage in template_storage.

Both destinations answer one interface, so the manager's ``present``,
``absent`` and ``keep`` steps are written once:

- ``lock(name, create)``: held while a template is looked up, built and published
  (a directory: an flock per template; a storage: nothing, the volume name
  says the content);
- ``staging(name)``: held around the build itself (a storage builds into a
  local work directory under its own flock);
- ``exists(filename)``, ``read_record(filename)``: the published template
  and its sidecar record;
- ``build_path(filename)``, ``publish(filename, path, record, existed)``;
- ``remove(filename)`` (check mode: what it would remove), ``delete(filename)``,
  ``family(regex)``, ``address(filename)``, ``describe(filename)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import json
import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import SIDECAR_SUFFIX
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import atomic_write


def read_record(path):
    """A sidecar record, or None when it is missing or unreadable."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_record(path, record):
    atomic_write(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


class DirLock:
    """An flock on ``<directory>/.lxcri-<name>.lock``: one build per template at a time.

    The lock file lives only while a build holds it: the holder removes it before it unlocks, and a
    waiter that got the lock on a file removed meanwhile (its inode is no longer at the path) opens the
    path again.  So no run, refused or finished, leaves a lock file in the user's directory.
    """

    def __init__(self, directory, name, enabled=True):
        self.path = os.path.join(directory, ".lxcri-%s.lock" % name)
        self.enabled = enabled
        self.fd = None

    def __enter__(self):
        while self.enabled:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
            except BaseException:
                os.close(fd)
                raise
            if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                self.fd = fd
                break
            os.close(fd)  # the holder before us removed this file: lock the one at the path now
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class DirDestination:
    """Templates in a local directory, each with its sidecar ``<template>.json``."""

    KEY = "path"  # the result field that names a template
    CHECK_KEY = "would_build"  # set in check mode when a run would change something
    checks_runtime = False  # a directory takes any template (a storage refuses what lxc_container cannot run)

    def __init__(self, directory, extension, check_mode=False):
        self.directory = directory
        self.extension = extension
        self.check_mode = check_mode

    def path(self, filename):
        return os.path.join(self.directory, filename)

    @staticmethod
    def lxc_version():
        """None: the LXC where the module runs (a directory is on the node that restores the template)."""
        return None

    @staticmethod
    def auto_format(needs_user, groups=None):
        """``format: auto`` into a directory: a plain template (vztmpl); see StorageDestination.auto_format."""
        return "vztmpl", None, "a directory takes plain templates"

    address = path

    def sidecar(self, filename):
        return self.path(filename) + SIDECAR_SUFFIX

    def describe(self, filename, present=True):
        """The result fields naming the template (``present``: its sidecar too)."""
        fields = {"path": self.path(filename)}
        if present:
            fields["sidecar"] = self.sidecar(filename)
        return fields

    def lock(self, name, create=True):
        """``create``: make the directory if needed (else, with no directory, there is nothing to lock)."""
        enabled = not self.check_mode
        if enabled and create:
            os.makedirs(self.directory, exist_ok=True)
        elif enabled:
            enabled = os.path.isdir(self.directory)
        return DirLock(self.directory, name, enabled=enabled)

    @staticmethod
    def staging(name):
        return contextlib.nullcontext()  # the template's lock is held already

    def exists(self, filename):
        return os.path.exists(self.path(filename))

    def read_record(self, filename, ident=None):
        """The sidecar of an existing template (whatever its identity: it says what the template was)."""
        return read_record(self.sidecar(filename)) if self.exists(filename) else None

    def up_to_date(self, filename, ident, record):
        """Whether the template there is the one asked for (its sidecar says so and its size matches)."""
        return (record is not None and record.get("identity") == ident
                and os.path.getsize(self.path(filename)) == record.get("size"))

    @staticmethod
    def before(ident, record):
        """What the diff shows as before."""
        return record

    def check_runnable(self, filename, runtime=None):
        """A directory refuses nothing."""

    def build_path(self, filename):
        return self.path(filename)

    def publish(self, filename, path, record, existed):
        """The template is in place (built atomically at ``path``): record it.  Returns extra result fields."""
        write_record(self.sidecar(filename), record)
        return {}

    def remove(self, filename):
        """Remove the template and its sidecar (check mode: only say so); returns what was (or would be) removed."""
        removed = []
        for candidate in (self.path(filename), self.sidecar(filename)):
            if os.path.lexists(candidate):
                removed.append(candidate)
                if not self.check_mode:
                    os.unlink(candidate)
        return removed

    def delete(self, filename):
        """Remove the template and its sidecar."""
        self.remove(filename)

    def family(self, regex):
        """(filename, mtime) of the directory's templates whose name matches ``regex``."""
        if not os.path.isdir(self.directory):
            return []
        out = []
        for entry in os.listdir(self.directory):
            path = os.path.join(self.directory, entry)
            if regex.match(entry) and os.path.isfile(path):
                out.append((entry, int(os.path.getmtime(path))))
        return out
