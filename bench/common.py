"""Shared pieces of the benchmarks: the debootstrap'ed rootfs, OCI layouts built
from it with umoci, the collection's import path, and timing helpers.

Imported by bench/pull/run.py and bench/convert/run.py (they put bench/ on sys.path).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, "tests"))

from lxcri_testbed.bed import run  # noqa: E402

BENCH_DIR = "/var/lib/lxcri-bench"
ROOTFS = os.path.join(BENCH_DIR, "minbase")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")


def collections_root():
    """A collection root where ``ansible_collections.lxcri.proxmox`` is this checkout
    (the same generated link tests/conftest.py makes)."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "lxcri", "proxmox")
    if os.path.realpath(link) != REPO:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO, link)
    return COLLECTIONS


def ensure_rootfs():
    """A Debian bookworm minbase (about 200 MB), debootstrap'ed once."""
    if os.path.isdir(os.path.join(ROOTFS, "usr", "bin")):
        return ROOTFS
    os.makedirs(BENCH_DIR, exist_ok=True)
    run(["debootstrap", "--variant=minbase", "bookworm", ROOTFS, "http://deb.debian.org/debian"], timeout=1800)
    return ROOTFS


def copy_from_rootfs(names):
    """A populate step copying top-level entries of the minbase rootfs."""
    def populate(root):
        for name in names:
            run(["cp", "-a", os.path.join(ROOTFS, name), os.path.join(root, name)])
    return populate


def repack(populate):
    """A layer made by umoci: unpack the image so far, let ``populate(rootfs)`` change
    it, repack (umoci writes whiteouts for what was deleted)."""
    def step(ref):
        bundle = tempfile.mkdtemp(dir=BENCH_DIR)
        os.rmdir(bundle)
        try:
            run(["umoci", "unpack", "--image", ref, bundle])
            populate(os.path.join(bundle, "rootfs"))
            run(["umoci", "repack", "--image", ref, bundle], timeout=900)
        finally:
            shutil.rmtree(bundle, ignore_errors=True)
    return step


def raw_layer(write_tar):
    """A hand-written layer: ``write_tar(path)`` writes an uncompressed tar that
    ``umoci raw add-layer`` appends verbatim (gzip-compressed)."""
    def step(ref):
        work = tempfile.mkdtemp(dir=BENCH_DIR)
        try:
            path = os.path.join(work, "layer.tar")
            write_tar(path)
            run(["umoci", "raw", "add-layer", "--image", ref, path], timeout=900)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return step


def build_layout(layout, tag, steps, cmd="/bin/bash"):
    """(Re)build the OCI layout ``layout`` with one layer per step, then set Cmd."""
    ensure_rootfs()
    shutil.rmtree(layout, ignore_errors=True)
    ref = "%s:%s" % (layout, tag)
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", ref])
    for step in steps:
        step(ref)
    run(["umoci", "config", "--image", ref, "--config.cmd=" + cmd])
    return ref


def timed(argv, stdout=subprocess.PIPE, **kwargs):
    """Run ``argv``; return (wall seconds, its stdout unless redirected). Exits with its
    stderr when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc=%d): %s" % (argv[0], proc.returncode, proc.stderr.strip()))
    return elapsed, proc.stdout
