# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run OCI bundles through libcrun (crun's ``python_crun`` binding) or the crun CLI: the parent side.

One interface, two backends: :class:`CrunDriver` with ``backend="libcrun"`` or
``backend="cli"``; :func:`select_driver` picks libcrun when it loads and falls
back to the CLI, saying why.

All runtime work happens in a child process, the *agent*, never in the
caller's process, for two reasons:

* libcrun has an ELF constructor (CVE-2019-5736 protection) that re-executes
  the process loading it from a sealed memfd copy of its executable, with the
  argv read back from /proc/self/cmdline.  Done to an Ansible module (whose
  code may have come on stdin) or to a test runner, that would restart or
  break it.  The agent loads libcrun before reading any request, so its
  re-execution only restarts an agent that has done nothing yet; and when
  loading fails outright (the constructor calls ``_exit``, an ABI mismatch
  crashes the interpreter) only the agent dies and the driver falls back to
  the CLI.
* On a *hybrid* cgroup host (v1 controllers plus a cgroup2 mount) crun
  refuses to run.  The agent then enters a private mount namespace
  (``unshare(CLONE_NEWNS)``, ``/`` made recursively private so nothing
  propagates back to the host) and mounts a cgroup2 filesystem over
  /sys/fs/cgroup, so crun sees a cgroup2-only host.  The caller keeps the
  host's view; crun processes the agent spawns inherit the agent's.

The agent talks JSON lines over two pipes passed as extra file descriptors;
the containers' stdio goes to a file named per request, never to a pipe (a
detached container would hold the pipe open) or to the agent's protocol.

This module is the parent side (the driver and the choice of backend); the
agent's code is runtime/agent.py, the check bundle's files runtime/bundle.py,
the proof that a backend works runtime/check.py.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import start_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect
# The agent's module is imported here, not only named in AGENT_BOOT: this import is what ships it in an
# Ansible module's payload, where the agent process finds it through the PYTHONPATH it is given.
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.agent import (
    AGENT_BOOT, decode_message, encode_message)
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

BACKENDS = ("libcrun", "cli")
MODES = ("auto", "libcrun", "cli")
# A state root of our own, so throwaway containers never mix with /run/crun's.
DEFAULT_STATE_ROOT = "/run/lxcri/crun"


# --------------------------------------------------------------------------
# the plan and libcrun's files

def isolation_plan(layout):
    """How to run crun on a host with the given cgroup layout (see detect.cgroup_layout).

    ``private_cgroup2``: run in a private mount namespace with cgroup2 mounted on
    /sys/fs/cgroup (hybrid hosts, which crun refuses as they are).
    ``cgroup_manager``: the CLI's ``--cgroup-manager`` (None: crun's default,
    cgroupfs).  Without any cgroup filesystem the CLI runs with cgroups disabled;
    the python_crun binding has no such switch.
    """
    if layout == "hybrid":
        return {"private_cgroup2": True, "cgroup_manager": None,
                "note": "hybrid cgroups: private mount namespace with a cgroup2-only /sys/fs/cgroup"}
    if layout == "none":
        return {"private_cgroup2": False, "cgroup_manager": "disabled",
                "note": "no cgroup filesystem: cgroups disabled (CLI only)"}
    return {"private_cgroup2": False, "cgroup_manager": None,
            "note": "cgroup %s: crun runs as is" % layout}


def python_crun_dir(library_path):
    """The directory holding crun's python_crun extension installed with a libcrun, or None.

    The oci_runtime role (and the test bed) install it under
    ``<prefix>/lib/python3/dist-packages``; other layouts are what detect finds.
    """
    binding = detect.python_binding(library_path)
    if binding is None:
        libdir = os.path.dirname(os.path.realpath(library_path))
        found = sorted(glob.glob(os.path.join(libdir, "python3", "dist-packages", "python_crun*.so")))
        binding = found[0] if found else None
    return os.path.dirname(binding) if binding else None


def libcrun_prefix(library_path):
    return os.path.dirname(os.path.dirname(os.path.realpath(library_path)))


# --------------------------------------------------------------------------
# the driver (caller side)

class CrunDriver:
    """One OCI runtime backend, driven through an agent process.

    ``backend``: ``libcrun`` (needs ``libcrun`` and ``python_crun_dir``) or ``cli``
    (needs ``crun``).  ``private_cgroup2`` and ``cgroup_manager`` come from
    :func:`isolation_plan`.  Operations raise :class:`OciRuntimeError`.
    """

    def __init__(self, backend, crun=None, libcrun=None, python_crun_dir=None,
                 state_root=DEFAULT_STATE_ROOT, private_cgroup2=False, cgroup_manager=None,
                 python=None, timeout=120):
        if backend not in BACKENDS:
            raise ValueError("backend must be one of %s" % ", ".join(BACKENDS))
        if backend == "cli" and not crun:
            raise OciRuntimeError("the CLI backend needs the crun executable")
        if backend == "libcrun" and not (libcrun and python_crun_dir):
            raise OciRuntimeError("the libcrun backend needs libcrun and its python_crun binding")
        self.backend = backend
        self.config = {
            "backend": backend, "crun": crun, "libcrun": libcrun, "python_crun_dir": python_crun_dir,
            "state_root": state_root, "private_cgroup2": bool(private_cgroup2),
            "cgroup_manager": cgroup_manager if backend == "cli" else None,
        }
        self.python = python or sys.executable
        self.timeout = timeout
        self.proc = None
        self.info = None
        self._wfd = self._rfd = None
        self._workdir = None
        self._buf = b""

    # -- agent plumbing

    def open(self):
        if self.proc is not None:
            return self.info
        self._workdir = tempfile.mkdtemp(prefix="lxcri-crun-agent-")
        os.makedirs(self.config["state_root"], mode=0o700, exist_ok=True)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        config = dict(self.config, req_fd=req_r, resp_fd=resp_w, workdir=self._workdir)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.pop("_LIBCONTAINER_CLONED_BINARY", None)
        log = open(os.path.join(self._workdir, "agent.log"), "wb")
        try:
            self.proc = start_process(
                [self.python, "-c", AGENT_BOOT, json.dumps(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                pass_fds=(req_r, resp_w), cwd="/")
        except OSError as exc:
            self._cleanup()
            raise OciRuntimeError("cannot start the runtime agent (%s): %s" % (self.python, exc))
        finally:
            log.close()
            os.close(req_r)
            os.close(resp_w)
        self._wfd, self._rfd = req_w, resp_r
        try:
            self.info = self._reply("start")
        except OciRuntimeError:
            self.close()
            raise
        return self.info

    def _agent_log(self):
        try:
            with open(os.path.join(self._workdir, "agent.log"), "rb") as handle:
                return handle.read()[-2000:].decode("utf-8", "replace").strip()
        except (IOError, OSError, TypeError):
            return ""

    def _reply(self, what):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            ready = select.select([self._rfd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                raise OciRuntimeError("%s backend: no answer to %s within %ss" % (self.backend, what, self.timeout))
            chunk = os.read(self._rfd, 65536)
            if not chunk:
                rc = self.proc.wait()
                log = self._agent_log()
                raise OciRuntimeError("%s backend: the runtime agent died during %s (exit status %s)%s" % (
                    self.backend, what, rc, (": " + log) if log else ""))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg = decode_message(line)
        if not msg.get("ok"):
            raise OciRuntimeError("%s backend: %s" % (self.backend, msg.get("error")))
        return msg.get("result")

    def _call(self, op, **kwargs):
        self.open()
        req = dict(kwargs, op=op)
        try:
            os.write(self._wfd, encode_message(req))
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
        return self._reply(op)

    def close(self):
        if self.proc is not None:
            try:
                os.write(self._wfd, encode_message({"op": "quit"}))
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self._cleanup()

    def _cleanup(self):
        for fd in (self._wfd, self._rfd):
            if fd is not None:
                os.close(fd)
        self._wfd = self._rfd = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- the runtime interface

    def create(self, container_id, bundle, output=None):
        """Create the container from ``bundle`` (an absolute directory); its stdio goes to ``output``."""
        self._call("create", id=container_id, bundle=os.path.abspath(bundle), output=output)

    def start(self, container_id):
        self._call("start", id=container_id)

    def state(self, container_id):
        """The OCI state: ``{"id", "pid", "status", "bundle", ...}``."""
        return self._call("state", id=container_id)

    def kill(self, container_id, signal="TERM"):
        self._call("kill", id=container_id, signal=signal)

    def delete(self, container_id, force=False):
        self._call("delete", id=container_id, force=force)

    def wait(self, container_id, timeout=30):
        """Wait until the container has stopped; returns its last state."""
        return self._call("wait", id=container_id, timeout=timeout)

    def run(self, container_id, bundle, output=None):
        """Create, start and wait for the container (libcrun's and crun's own ``run``,
        which remove it afterwards); returns the process's exit status."""
        return self._call("run", id=container_id, bundle=os.path.abspath(bundle), output=output)


# --------------------------------------------------------------------------
# selection

def libcrun_choice(search=(), find_library=None):
    """The first libcrun candidate that has a python_crun binding beside it.

    Looks at files only (loading libcrun here would re-execute this process).
    Returns ``(choice or None, [skipped reasons])``, choice = {library, prefix, python_crun_dir}.
    """
    kwargs = {} if find_library is None else {"find_library": find_library}
    skipped = []
    for candidate in detect.libcrun_candidates(search, **kwargs):
        if not os.path.isabs(candidate):
            skipped.append("%s: found by the dynamic linker, no python_crun beside it" % candidate)
            continue
        if not os.path.exists(candidate):
            skipped.append("%s: does not exist" % candidate)
            continue
        binding = python_crun_dir(candidate)
        if not binding:
            skipped.append("%s: no python_crun binding in its prefix" % candidate)
            continue
        return {"library": candidate, "prefix": libcrun_prefix(candidate), "python_crun_dir": binding}, skipped
    return None, skipped


def select_driver(mode="auto", libcrun_search=(), crun=None, layout=None, state_root=DEFAULT_STATE_ROOT,
                  python=None, driver_class=CrunDriver, which=detect.default_which, find_library=None):
    """Pick and open a backend.

    ``mode``: ``auto`` (libcrun when it loads, else the CLI), ``libcrun`` (libcrun
    or fail) or ``cli``.  Returns ``(driver, selection)`` with selection =
    ``{"backend", "reason", "fallback_from", "libcrun", "crun", "isolation", "agent"}``.
    """
    if mode not in MODES:
        raise ValueError("mode must be one of %s" % ", ".join(MODES))
    if layout is None:
        layout = detect.cgroup_layout()["layout"]
    plan = isolation_plan(layout)
    crun = crun or which("crun")
    selection = {"backend": None, "reason": None, "fallback_from": None, "libcrun": None,
                 "crun": crun, "isolation": dict(plan, cgroup_layout=layout), "agent": None}
    common = dict(state_root=state_root, private_cgroup2=plan["private_cgroup2"], python=python)
    failure = None
    if mode in ("auto", "libcrun"):
        choice, skipped = libcrun_choice(libcrun_search, find_library)
        if choice is None:
            failure = "no libcrun with a python_crun binding found" + (
                " (%s)" % "; ".join(skipped) if skipped else "")
        else:
            selection["libcrun"] = choice
            driver = driver_class("libcrun", libcrun=choice["library"],
                                  python_crun_dir=choice["python_crun_dir"], **common)
            try:
                selection["agent"] = driver.open()
            except OciRuntimeError as exc:
                failure = "libcrun at %s failed to load: %s" % (choice["library"], exc)
            else:
                selection["backend"] = "libcrun"
                selection["reason"] = "libcrun %s and python_crun load" % choice["library"]
                return driver, selection
        if mode == "libcrun":
            raise OciRuntimeError(failure)
        selection["fallback_from"] = "libcrun"
    if not crun:
        raise OciRuntimeError("crun not found in PATH" + ("; " + failure if failure else ""))
    driver = driver_class("cli", crun=crun, cgroup_manager=plan["cgroup_manager"], **common)
    selection["agent"] = driver.open()
    selection["backend"] = "cli"
    selection["reason"] = failure if failure else "the CLI was asked for (mode cli)"
    return driver, selection
