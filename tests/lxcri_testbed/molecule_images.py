"""A Debian-like base image for the molecule platform's tests, built on the spot (no download).

BusyBox for the userland, this machine's own Python 3 (the interpreter, its shared libraries and a trimmed standard
library) so that Ansible modules run in it, and Debian's marks (``/etc/debian_version``, ``/etc/os-release`` with
``ID=debian``), so Proxmox VE sets it up as Debian (hostname, hosts, interfaces).  No ``/sbin/init``: the collection's
``oci_template init: system`` gives it the generated init that keeps it up.  The image config is a Docker base image's
(``CMD ["bash"]``-like: ``CMD ["/bin/sh"]``).

    python -m lxcri_testbed.molecule_images [--registry HOST:PORT] [--repository NAME] [--tag TAG]

pushes it to the test bed's open registry and prints the reference.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

from .oci_build import Layer, write_image

REPOSITORY = "lxcri-molecule/debian-like"
APPLETS = ("sh", "ash", "sleep", "cat", "cp", "mv", "rm", "ln", "ls", "mkdir", "rmdir", "chmod", "chown", "chgrp",
           "touch", "echo", "printf", "test", "[", "true", "false", "id", "whoami", "env", "uname", "hostname", "date",
           "kill", "ps", "pidof", "grep", "sed", "tr", "cut", "head", "tail", "wc", "sort", "stat", "readlink",
           "dirname", "basename", "mktemp", "find", "xargs", "tar", "gzip", "sha1sum", "sha256sum", "md5sum", "wget",
           "su", "setsid", "nohup", "start-stop-daemon", "which", "seq", "expr", "awk", "tee", "sync", "du", "df")
# what Ansible's modules do not need from the standard library (and what would only make the image big)
TRIM = ("__pycache__", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
        "sqlite3", "unittest", "distutils", "site-packages", "dist-packages", "config-3.", "sitecustomize.py",
        "_test", "xxlimited", "_xxtestfuzz", "_ctypes_test")


def _libraries(paths):
    """The shared libraries (real paths) that ``paths`` load, by ldd."""
    found = set()
    for path in paths:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(parts[2])
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return sorted(found)


def _add_file(layer, dirs, path, target=None, mode=None):
    """``path`` of this machine at ``target`` (default the same path) in the image, with its parents."""
    target = (target or path).lstrip("/")
    parts = target.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        directory = "/".join(parts[:depth])
        if directory not in dirs:
            dirs.add(directory)
            layer.dir(directory)
    with open(path, "rb") as handle:
        layer.file(target, handle.read(), mode=mode if mode is not None else os.stat(path).st_mode & 0o7777)


def image_layer():
    layer = Layer()
    dirs = set()
    for name, mode in (("bin", 0o755), ("sbin", 0o755), ("etc", 0o755), ("etc/network", 0o755), ("etc/init.d", 0o755), ("root", 0o700),
                       ("tmp", 0o1777), ("var", 0o755), ("var/lib", 0o755), ("var/tmp", 0o1777), ("run", 0o755), ("home", 0o755),
                       ("usr", 0o755), ("usr/bin", 0o755), ("usr/local", 0o755), ("usr/local/bin", 0o755)):
        layer.dir(name, mode=mode)
        dirs.add(name)
    layer.busybox(APPLETS)
    python = os.path.realpath("/usr/bin/python3")  # the system interpreter, never a venv's
    version = os.path.basename(python)  # python3.11
    stdlib = "/usr/lib/" + version
    _add_file(layer, dirs, python, "/usr/bin/" + version, mode=0o755)
    layer.symlink("usr/bin/python3", version)
    modules = []
    for root, subdirs, files in os.walk(stdlib):
        subdirs[:] = sorted(d for d in subdirs if not any(d.startswith(t) for t in TRIM))
        for name in sorted(files):
            if any(name.startswith(t) for t in TRIM) or name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            if os.path.islink(path) and not os.path.exists(path):
                continue
            _add_file(layer, dirs, path, mode=0o755 if name.endswith(".so") else 0o644)
            if name.endswith(".so"):
                modules.append(path)
    for library in _libraries([python] + modules):
        _add_file(layer, dirs, library, mode=0o755)
    for loader in glob.glob("/lib64/ld-linux*.so*"):
        _add_file(layer, dirs, os.path.realpath(loader), loader, mode=0o755)
    layer.file("etc/debian_version", "12.8\n")
    layer.file("etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm), lxcri test build"\nNAME="Debian GNU/Linux"\n'
               'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    layer.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    layer.file("etc/hostname", "localhost\n")
    return layer


def build(layout, tag="12"):
    config = {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    write_image(layout, tag, [image_layer()], config)


def push(registry, repository=REPOSITORY, tag="12"):
    """Build and push the image; returns its reference."""
    with tempfile.TemporaryDirectory(prefix="lxcri-molecule-") as tmp:
        layout = os.path.join(tmp, "layout")
        build(layout, tag)
        ref = "%s/%s:%s" % (registry, repository, tag)
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:%s" % (layout, tag),
                        "docker://" + ref], check=True)
    return ref


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m lxcri_testbed.molecule_images")
    parser.add_argument("--registry", help="HOST:PORT (default: the test bed's open registry)")
    parser.add_argument("--repository", default=REPOSITORY)
    parser.add_argument("--tag", default="12")
    args = parser.parse_args(argv)
    registry = args.registry
    if not registry:
        from .bed import load_state  # pylint: disable=import-outside-toplevel
        state = load_state()
        if state is None:
            raise SystemExit("the test bed is not up: make testbed-up")
        registry = state["registry"]["host"]
    print(push(registry, args.repository, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
