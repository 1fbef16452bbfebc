# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run OCI bundles through libcrun (crun's ``python_crun`` binding) or the crun CLI.

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

Standard library only: this runs on stock Proxmox VE nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import glob
import json
import os
import select
import shutil
import signal as signal_module
import subprocess
import sys
import tempfile
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect

BACKENDS = ("libcrun", "cli")
MODES = ("auto", "libcrun", "cli")
# A state root of our own, so throwaway containers never mix with /run/crun's.
DEFAULT_STATE_ROOT = "/run/lxcri/crun"
LIBCRUN_RUN_OPTIONS_PREFORK = 1
CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_PRIVATE = 1 << 18
AGENT_BOOT = (
    "import sys\n"
    "from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.driver import agent_main\n"
    "sys.exit(agent_main(sys.argv[1]))\n"
)


class OciRuntimeError(LxcriError):
    """A runtime operation failed; the message says which and why."""

    kind = "runtime"


# --------------------------------------------------------------------------
# pure helpers

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


def python_crun_dir(library_path):
    """The directory holding crun's python_crun extension installed with a libcrun, or None.

    The oci_runtime role (and the test bed) install it under
    ``<prefix>/lib/python3/dist-packages``; other layouts are what detect finds.
    """
    binding = detect._python_binding(library_path)  # pylint: disable=protected-access
    if binding is None:
        libdir = os.path.dirname(os.path.realpath(library_path))
        found = sorted(glob.glob(os.path.join(libdir, "python3", "dist-packages", "python_crun*.so")))
        binding = found[0] if found else None
    return os.path.dirname(binding) if binding else None


def libcrun_prefix(library_path):
    return os.path.dirname(os.path.dirname(os.path.realpath(library_path)))


def adjust_spec(spec, args, rootfs="rootfs", host_binds=()):
    """Turn ``crun spec`` output into the trivial check bundle's config.

    No terminal (nobody is attached), ``args`` as the process, a read-only root,
    and no ``linux.resources``: a throwaway check limits nothing, and the device
    rule would need an eBPF program (cgroup v2), which wants a larger
    RLIMIT_MEMLOCK than some hosts allow.  ``host_binds``: host directories
    bind-mounted read-only at the same place (used when no static busybox exists).
    """
    spec = json.loads(json.dumps(spec))
    process = spec.setdefault("process", {})
    process["terminal"] = False
    process["args"] = list(args)
    process.setdefault("cwd", "/")
    spec["root"] = {"path": rootfs, "readonly": True}
    linux = spec.setdefault("linux", {})
    linux.pop("resources", None)
    mounts = spec.setdefault("mounts", [])
    for path in host_binds:
        mounts.append({"destination": path, "type": "bind", "source": path,
                       "options": ["rbind", "ro", "nosuid", "nodev"]})
    return spec


def is_static_elf(path):
    """Whether ``path`` is an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only: the nodes are x86_64/arm64
                return False
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except (IOError, OSError, IndexError):
        return False
    for index in range(phnum):
        if int.from_bytes(table[index * phentsize:index * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def make_trivial_bundle(directory, args, spec_text, busybox="/bin/busybox"):
    """Write a bundle into ``directory`` (created) that runs ``args``.

    The rootfs holds a static busybox as /bin/busybox with links for ``args[0]``
    when one exists on the host; otherwise it is empty and the host's /usr
    (and /bin, /lib, /lib64 as they are: directories bind-mounted, merged-/usr
    symlinks copied) is bind-mounted read-only, so any node can run it.
    Returns ``{"bundle", "rootfs", "kind"}`` with kind ``busybox`` or ``host``.
    """
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    binds = []
    if busybox and is_static_elf(busybox):
        kind = "busybox"
        shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
        name = os.path.basename(args[0])
        if name != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", name))
        args = ["/bin/" + name] + list(args[1:])
    else:
        kind = "host"
        os.rmdir(os.path.join(rootfs, "bin"))
        for top in ("usr", "bin", "sbin", "lib", "lib64"):
            host = "/" + top
            if os.path.islink(host):
                os.symlink(os.readlink(host), os.path.join(rootfs, top))
            elif os.path.isdir(host):
                os.mkdir(os.path.join(rootfs, top))
                binds.append(host)
    for sub in ("proc", "dev", "sys"):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    spec = adjust_spec(json.loads(spec_text), args, host_binds=binds)
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(spec, handle, indent=1)
    return {"bundle": directory, "rootfs": rootfs, "kind": kind}


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


# --------------------------------------------------------------------------
# the agent (child process)

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
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False)
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
            self.proc = subprocess.Popen(
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


def spec_text(crun, runner=None):
    """``crun spec`` output (the runtime's own default config) as text."""
    work = tempfile.mkdtemp(prefix="lxcri-spec-")
    try:
        run = runner or _run_argv
        rc, out, err = run([crun, "spec", "--bundle", work])
        if rc != 0:
            raise OciRuntimeError("crun spec failed (rc=%s): %s" % (rc, (err or out).strip()))
        with open(os.path.join(work, "config.json")) as handle:
            return handle.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_argv(argv):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def check_bundle(driver, crun, message="lxcri-oci-runtime-check", workdir=None, busybox="/bin/busybox",
                 container_prefix="lxcri-check"):
    """Prove ``driver`` works: a trivial bundle through run, then create/start/wait/delete.

    Returns ``{"backend", "bundle_kind", "run": {"exit_status", "output"}, "lifecycle": [states]}``;
    raises OciRuntimeError when anything fails or the output is not ``message``.
    """
    work = tempfile.mkdtemp(prefix="lxcri-check-", dir=workdir)
    suffix = "%d-%s" % (os.getpid(), os.path.basename(work).rsplit("-", 1)[-1])
    try:
        bundle = make_trivial_bundle(os.path.join(work, "bundle"), ["echo", message],
                                     spec_text(crun), busybox=busybox)
        output = os.path.join(work, "output")
        status = driver.run("%s-run-%s" % (container_prefix, suffix), bundle["bundle"], output=output)
        with open(output) as handle:
            text = handle.read().strip()
        if status != 0 or text != message:
            raise OciRuntimeError("%s backend: the check bundle exited %s and printed %r (expected 0 and %r)" % (
                driver.backend, status, text, message))
        cid = "%s-%s" % (container_prefix, suffix)
        seen = []
        driver.create(cid, bundle["bundle"], output=output)
        try:
            seen.append(driver.state(cid)["status"])
            driver.start(cid)
            seen.append(driver.wait(cid)["status"])
        finally:
            driver.delete(cid, force=True)
        if seen != ["created", "stopped"]:
            raise OciRuntimeError("%s backend: unexpected lifecycle %s" % (driver.backend, seen))
        return {"backend": driver.backend, "bundle_kind": bundle["kind"],
                "run": {"exit_status": status, "output": text}, "lifecycle": seen}
    finally:
        shutil.rmtree(work, ignore_errors=True)
