# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A copy of some of this collection's module_utils on the node, for programs that run without Ansible.

A module writes the files it was shipped with (read through each module's
loader: plain files on the controller's test runs, the AnsiballZ payload on a
node) into ``ROOT/<digest>/`` as regular packages, with a runner script
beside them that puts that directory first on ``sys.path``.  The directory
name is the digest of what it holds: an unchanged copy is found and kept, a
changed collection makes a new directory, and a unit that names an older
copy keeps working until it is rewritten.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import importlib
import os
import shutil
import tempfile

PREFIX = "ansible_collections.lxcri.proxmox.plugins.module_utils"
STAMP = "ENGINE_SHA256"


def module_source(name):
    """The source text (bytes) of the already importable module ``name``."""
    module = importlib.import_module(name)
    source = module.__loader__.get_source(name)
    if source is None:
        raise ValueError("no source for %s" % name)
    return source.encode("utf-8") if not isinstance(source, bytes) else source


def engine_files(modules, runner_name, runner_text):
    """{relative path: bytes} of an engine copy: ``modules`` (dotted names under this collection's
    module_utils), an empty ``__init__.py`` for every package above them, and the runner script."""
    files = {}
    for name in modules:
        if not name.startswith(PREFIX + "."):
            raise ValueError("%s is not one of this collection's module_utils" % name)
        parts = name.split(".")
        files["/".join(parts) + ".py"] = module_source(name)
        for depth in range(1, len(parts)):
            files.setdefault("/".join(parts[:depth]) + "/__init__.py", b"")
    files[runner_name] = runner_text.encode("utf-8")
    return files


def digest_of(files):
    sha = hashlib.sha256()
    for path in sorted(files):
        sha.update(path.encode("utf-8") + b"\0" + hashlib.sha256(files[path]).hexdigest().encode("ascii") + b"\n")
    return sha.hexdigest()


def engine_home(root, files):
    return os.path.join(root, digest_of(files)[:16])


def install(root, files):
    """Write the copy under ``root`` unless it is there as it is; returns ``(home, written)``."""
    digest = digest_of(files)
    home = os.path.join(root, digest[:16])
    try:
        with open(os.path.join(home, STAMP)) as handle:
            if handle.read().strip() == digest:
                return home, False
    except (IOError, OSError):
        pass
    os.makedirs(root, mode=0o755, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    try:
        for path, data in sorted(files.items()):
            target = os.path.join(staging, path)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
            os.chmod(target, 0o644)
        with open(os.path.join(staging, STAMP), "w") as handle:
            handle.write(digest + "\n")
        os.chmod(staging, 0o755)
        if os.path.isdir(home):  # an incomplete copy (no stamp): replaced whole
            shutil.rmtree(home)
        os.rename(staging, home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return home, True
