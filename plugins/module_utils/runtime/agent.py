# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime agent: the child process that does all libcrun and crun work (see driver.py for why).

The parent (:class:`driver.CrunDriver`) starts it as ``python -c AGENT_BOOT CONFIG``
with the parent's ``sys.path`` as ``PYTHONPATH``: this module is imported by
its full name, so it must stay importable on its own (standard library and
runtime/errors.py only, never the parent side) and must not load libcrun or
read a request before :class:`_LibcrunOps` is made (libcrun's constructor may
re-execute the process).  Inside an Ansible module it is found because
driver.py imports it: that import is what puts this file into the module's
payload.

Protocol: JSON lines over two pipes passed as extra file descriptors
(:func:`encode_message`/:func:`decode_message`); every request gets one
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": text}``.

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import os
import select
import signal as signal_module
import subprocess
import sys
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import run_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

# Run the agent: its module path is the one this file has in the collection.
AGENT_BOOT = (
    "import sys\n"
    "from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.agent import agent_main\n"
    "sys.exit(agent_main(sys.argv[1]))\n"
)
LIBCRUN_RUN_OPTIONS_PREFORK = 1
CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_PRIVATE = 1 << 18


def cli_argv(crun, state_root, command, container_id, bundle=None, log=None,
             cgroup_manager=None, force=False, signal=None):
    """The argument list of one crun CLI call (no shell is involved)."""
    if command not in ("create", "start", "state", "kill", "delete", "run"):
        raise ValueError("unknown crun command %r" % (command,))
    argv = [crun, "--root", state_root]
    if log:
        argv.append("--log=file:" + log)
    if cgroup_manager:
        argv.append("--cgroup-manager=" + cgroup_manager)
    argv.append(command)
    if command in ("create", "run"):
        if not bundle:
            raise ValueError("crun %s needs a bundle" % command)
        argv.extend(["--bundle", bundle])
    if command == "delete" and force:
        argv.append("--force")
    argv.append(container_id)
    if command == "kill":
        argv.append(signal or "TERM")
    return argv


def encode_message(obj):
    return (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8")


def decode_message(line):
    try:
        msg = json.loads(line.decode("utf-8"))
    except ValueError:
        raise OciRuntimeError("runtime agent sent garbage: %r" % line[:200])
    if not isinstance(msg, dict):
        raise OciRuntimeError("runtime agent sent a non-object: %r" % line[:200])
    return msg


class _LibcrunError(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char_p)]


def _enter_private_cgroup2():
    """Private mount namespace with a cgroup2-only /sys/fs/cgroup (hybrid hosts).

    unshare(CLONE_NEWNS) needs a single-threaded process: the agent is one.
    ``/`` is made recursively private first, so the cgroup2 mount (and any
    mount crun makes) never propagates to the host's namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for call, args in (("unshare", (CLONE_NEWNS,)),
                       ("mount", (None, b"/", None, MS_REC | MS_PRIVATE, None)),
                       ("mount", (b"none", b"/sys/fs/cgroup", b"cgroup2", 0, None))):
        if getattr(libc, call)(*args) != 0:
            err = ctypes.get_errno()
            raise OciRuntimeError("%s%r failed: %s" % (call, args, os.strerror(err)))


MS_BIND = 4096
CGROUP_ROOT = "/sys/fs/cgroup"


def _v1_hierarchies(mountinfo_text):
    """The names of the cgroup v1 hierarchies mounted right below /sys/fs/cgroup (mountinfo's text)."""
    names = []
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and right.split()[:1] == ["cgroup"] and \
                os.path.dirname(fields[4]) == CGROUP_ROOT:
            names.append(os.path.basename(fields[4]))
    return names


def _enter_private_cgroup_v1():
    """Private mount namespace whose /sys/fs/cgroup shows the v1 hierarchies only (hybrid hosts whose cgroup2
    holds no controller, when limits are asked for): a tmpfs with each v1 hierarchy bound in (and the
    ``cpu,cpuacct``-style symlinks), no ``unified``, so crun sees a v1 host and applies limits there.

    The hierarchies are opened before the tmpfs hides them and bound in from /proc/self/fd.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def call(name, *args):
        if getattr(libc, name)(*args) != 0:
            err = ctypes.get_errno()
            raise OciRuntimeError("%s%r failed: %s" % (name, args, os.strerror(err)))

    call("unshare", CLONE_NEWNS)
    call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
    with open("/proc/self/mountinfo") as handle:
        hierarchies = _v1_hierarchies(handle.read())
    if not hierarchies:
        raise OciRuntimeError("no cgroup v1 hierarchy below %s" % CGROUP_ROOT)
    links = {}
    for name in os.listdir(CGROUP_ROOT):
        path = os.path.join(CGROUP_ROOT, name)
        if os.path.islink(path) and os.readlink(path) in hierarchies:
            links[name] = os.readlink(path)
    fds = dict((name, os.open(os.path.join(CGROUP_ROOT, name), os.O_RDONLY | os.O_DIRECTORY))
               for name in hierarchies)
    try:
        call("mount", b"cgroup-v1-view", CGROUP_ROOT.encode(), b"tmpfs", 0, b"mode=0755")
        for name, fd in sorted(fds.items()):
            target = os.path.join(CGROUP_ROOT, name)
            os.mkdir(target, 0o755)
            call("mount", ("/proc/self/fd/%d" % fd).encode(), target.encode(), None, MS_BIND, None)
        for name, target in sorted(links.items()):
            os.symlink(target, os.path.join(CGROUP_ROOT, name))
    finally:
        for fd in fds.values():
            os.close(fd)


def enter_cgroup_view(config):
    """The cgroup view a configuration asks for: ``private_cgroup2`` or ``private_cgroup_v1`` (see above)."""
    if config.get("private_cgroup_v1"):
        _enter_private_cgroup_v1()
    elif config.get("private_cgroup2"):
        _enter_private_cgroup2()


class _LibcrunOps:
    """libcrun through python_crun, plus ctypes for what the binding lacks.

    python_crun (crun 1.8) maps ``create`` to a full run and has no ``start``;
    libcrun itself exports both, so they are called through ctypes with the
    binding's own context and container objects (PyCapsule pointers).
    """

    def __init__(self, config):
        # Loading libcrun may re-execute this process (see the module docstring):
        # it happens here, before the first request is read.
        self.lib = ctypes.CDLL(config["libcrun"], mode=ctypes.RTLD_GLOBAL)
        sys.path.insert(0, config["python_crun_dir"])
        import python_crun  # pylint: disable=import-error,import-outside-toplevel
        self.crun = python_crun
        self.root = config["state_root"]
        capsule = ctypes.pythonapi.PyCapsule_GetPointer
        capsule.restype = ctypes.c_void_p
        capsule.argtypes = [ctypes.py_object, ctypes.c_char_p]
        self._capsule = capsule
        err_p = ctypes.POINTER(ctypes.POINTER(_LibcrunError))
        self.lib.libcrun_container_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, err_p]
        self.lib.libcrun_container_start.argtypes = [ctypes.c_void_p, ctypes.c_char_p, err_p]
        self.lib.libcrun_error_release.argtypes = [err_p]
        self.info = {"library": config["libcrun"], "python_crun": getattr(python_crun, "__file__", None)}

    def _context(self, container_id, bundle=None):
        kwargs = {"state-root": self.root}
        if bundle:
            kwargs["bundle"] = bundle
        return self.crun.make_context(container_id, **kwargs)

    def _check(self, ret, err, what):
        if ret >= 0:
            return ret
        message = "%s failed (%d)" % (what, ret)
        if err:
            text = err.contents.msg.decode("utf-8", "replace") if err.contents.msg else ""
            if err.contents.status:
                text += ": " + os.strerror(err.contents.status)
            message = "%s: %s" % (what, text)
            self.lib.libcrun_error_release(ctypes.byref(err))
        raise OciRuntimeError(message)

    def create(self, container_id, bundle):
        ctx = self._context(container_id, bundle)
        ctr = self.crun.load_from_file(os.path.join(bundle, "config.json"))
        err = ctypes.POINTER(_LibcrunError)()
        ret = self.lib.libcrun_container_create(
            self._capsule(ctx, b"crun-context"), self._capsule(ctr, b"crun-container"),
            LIBCRUN_RUN_OPTIONS_PREFORK, ctypes.byref(err))
        self._check(ret, err, "libcrun_container_create")

    def start(self, container_id):
        ctx = self._context(container_id)
        err = ctypes.POINTER(_LibcrunError)()
        ret = self.lib.libcrun_container_start(self._capsule(ctx, b"crun-context"),
                                               container_id.encode("utf-8"), ctypes.byref(err))
        self._check(ret, err, "libcrun_container_start")

    def state(self, container_id):
        return json.loads(self.crun.status(self._context(container_id), container_id))

    def kill(self, container_id, signal):
        self.crun.kill(self._context(container_id), container_id, signal)

    def delete(self, container_id, force):
        self.crun.delete(self._context(container_id), container_id, bool(force))

    def run(self, container_id, bundle):
        ctx = self._context(container_id, bundle)
        ctr = self.crun.load_from_file(os.path.join(bundle, "config.json"))
        return self.crun.run(ctx, ctr)


class _CliOps:
    """The crun command, one process per operation."""

    def __init__(self, config):
        self.crun = config["crun"]
        self.root = config["state_root"]
        self.cgroup_manager = config.get("cgroup_manager")
        self.log = os.path.join(config["workdir"], "crun.log")
        self.info = {"crun": self.crun}

    def _call(self, command, container_id, output_fd=None, **kwargs):
        argv = cli_argv(self.crun, self.root, command, container_id, log=self.log,
                        cgroup_manager=self.cgroup_manager, **kwargs)
        with open(self.log, "w"):
            pass
        # A created container inherits crun's stdout and stderr and keeps them
        # open: they must be a file, never a pipe that run() would wait on.
        if output_fd is not None:
            sink = output_fd
        elif command in ("create", "run"):
            sink = subprocess.DEVNULL
        else:
            sink = subprocess.PIPE
        proc = run_process(argv, stdout=sink, stderr=sink)
        if command == "run":
            if proc.returncode == 0 or not self._log_text():
                return proc.returncode, None
        if proc.returncode != 0:
            text = self._log_text() or (proc.stderr or b"").decode("utf-8", "replace").strip()
            raise OciRuntimeError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode, text))
        return proc.returncode, proc.stdout

    def _log_text(self):
        try:
            with open(self.log) as handle:
                return handle.read().strip()
        except (IOError, OSError):
            return ""

    def create(self, container_id, bundle):
        self._call("create", container_id, output_fd=self.output_fd, bundle=bundle)

    def start(self, container_id):
        self._call("start", container_id)

    def state(self, container_id):
        dummy, out = self._call("state", container_id)
        return json.loads(out.decode("utf-8"))

    def kill(self, container_id, signal):
        self._call("kill", container_id, signal=signal)

    def delete(self, container_id, force):
        self._call("delete", container_id, force=force)

    def run(self, container_id, bundle):
        rc, dummy = self._call("run", container_id, output_fd=self.output_fd, bundle=bundle)
        return rc

    output_fd = None


def _reap_children():
    """Reap exited children (containers may be reparented to the agent)."""
    while True:
        try:
            pid, dummy = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait_stopped(ops, container_id, timeout):
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        _reap_children()
        state = ops.state(container_id)
        if state.get("status") == "stopped":
            return state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OciRuntimeError("container %s still %s after %ss" % (container_id, state.get("status"), timeout))
        pid = state.get("pid")
        pidfd_open = getattr(os, "pidfd_open", None)
        if pid and pidfd_open is not None:
            try:
                fd = pidfd_open(pid)
            except OSError:
                continue  # gone already
            try:
                select.select([fd], [], [], min(remaining, 1.0))
            finally:
                os.close(fd)
        else:
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)


class _Redirect:
    """Point fds 1 and 2 at a file while a container is spawned (it inherits them)."""

    def __init__(self, fd):
        self.fd = fd
        self.saved = []

    def __enter__(self):
        if self.fd is not None:
            self.saved = [os.dup(1), os.dup(2)]
            os.dup2(self.fd, 1)
            os.dup2(self.fd, 2)
        return self

    def __exit__(self, *exc):
        for target, saved in zip((1, 2), self.saved):
            os.dup2(saved, target)
            os.close(saved)
        return False


def _serve(ops, rfd, wfd):
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(rfd, 65536)
            if not chunk:
                return 0
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        req = json.loads(line.decode("utf-8"))
        op = req.get("op")
        if op == "quit":
            os.write(wfd, encode_message({"ok": True}))
            return 0
        out_fd = None
        try:
            if req.get("output"):
                out_fd = os.open(req["output"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            ops.output_fd = out_fd
            cid = req.get("id")
            result = None
            if op == "create":
                os.chdir(req["bundle"])  # as crun does: a relative root.path is the bundle's
                with _Redirect(out_fd if isinstance(ops, _LibcrunOps) else None):
                    ops.create(cid, req["bundle"])
            elif op == "start":
                ops.start(cid)
            elif op == "state":
                result = ops.state(cid)
            elif op == "kill":
                ops.kill(cid, req.get("signal") or "TERM")
            elif op == "delete":
                ops.delete(cid, req.get("force", False))
            elif op == "wait":
                result = _wait_stopped(ops, cid, req.get("timeout", 30))
            elif op == "run":
                os.chdir(req["bundle"])
                with _Redirect(out_fd if isinstance(ops, _LibcrunOps) else None):
                    result = ops.run(cid, req["bundle"])
                _reap_children()
            else:
                raise OciRuntimeError("unknown operation %r" % (op,))
            reply = {"ok": True, "result": result}
        except Exception as exc:  # pylint: disable=broad-except
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        finally:
            ops.output_fd = None
            if out_fd is not None:
                os.close(out_fd)
            os.chdir("/")
        os.write(wfd, encode_message(reply))


def agent_main(config_text):
    """Entry point of the agent process (see the module docstring)."""
    config = json.loads(config_text)
    rfd, wfd = config["req_fd"], config["resp_fd"]
    try:
        if config["backend"] == "libcrun":
            ops = _LibcrunOps(config)
        else:
            ops = _CliOps(config)
        if config.get("private_cgroup2"):
            _enter_private_cgroup2()
        signal_module.signal(signal_module.SIGPIPE, signal_module.SIG_DFL)
    except Exception as exc:  # pylint: disable=broad-except
        os.write(wfd, encode_message({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}))
        return 1
    os.write(wfd, encode_message({"ok": True, "result": dict(ops.info, pid=os.getpid())}))
    return _serve(ops, rfd, wfd)
