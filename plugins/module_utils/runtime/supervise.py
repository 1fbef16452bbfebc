# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an ``oci_container``'s systemd unit runs: ``lxcri-oci.py prepare|run|cleanup BUNDLE``.

The unit (runtime/container.py writes it) is ``Type=notify``:

* ``prepare`` (ExecStartPre) makes the container's network namespace when it
  has one: ``ip netns add``, a veth pair with the host end on the bridge and
  ``eth0`` inside, the address and the default route;
* ``run`` (ExecStart) is the unit's main process for the container's whole
  life.  It becomes a child subreaper, enters the private cgroup2 view on a
  hybrid host (runtime/agent.py), removes a stale container of the same id,
  creates and starts the container with the recorded backend (libcrun through
  python_crun, or the crun CLI; the same operations as the runtime agent), and
  tells systemd READY=1 only once the container's process runs: a container
  that cannot start fails ``systemctl start``.  The container's stdout and
  stderr are this process's, the journal.  Signals systemd sends are
  forwarded to the container's process; the stop signal (the image's
  StopSignal, the unit's KillSignal) also starts the stop timeout, after
  which the container is killed, as ``docker stop`` does (an app as PID 1
  often ignores SIGTERM).  When the process exits the container is deleted
  and ``run`` exits with its status (128+N for a signal), so Restart= sees
  the app's outcome, or with 0 after a stop that systemd asked for;
* ``cleanup`` (ExecStopPost) force-deletes whatever is left (after a
  SIGKILL at the end of TimeoutStopSec) and removes the network namespace;
* ``exec BUNDLE -- CMD...`` (not the unit's: the module returns it as
  ``exec``) runs CMD in the running container's namespaces, root and working
  directory (``nsenter --all --root --wd``), with the pid the runtime's own
  state gives, as ``pct exec`` does for a Proxmox VE container.

Its settings are the ``run`` member of ``BUNDLE/lxcri.json``.  Imported by
the runner script in the engine copy on the node, with nothing but the
standard library, runtime/agent.py and runtime/errors.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import os
import resource
import signal as signal_module
import socket
import subprocess
import sys
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import run_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import agent
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

RECORD = "lxcri.json"
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGPWR")


def load_run_config(bundle):
    with open(os.path.join(bundle, RECORD)) as handle:
        record = json.load(handle)
    run = record.get("run")
    if not isinstance(run, dict) or not run.get("id"):
        raise OciRuntimeError("%s has no run settings" % os.path.join(bundle, RECORD))
    return run


def notify(text, address=None):
    """sd_notify(3) without libsystemd: one datagram to ``address`` (else $NOTIFY_SOCKET; nothing when unset)."""
    address = address or os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        sock.sendall(text.encode("utf-8"))
    finally:
        sock.close()
    return True


def _ip(argv, check=True):
    proc = run_process(["ip"] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and proc.returncode != 0:
        raise OciRuntimeError("ip %s failed: %s" % (" ".join(argv), proc.stderr.decode("utf-8", "replace").strip()))
    return proc.returncode == 0


def netns_commands(net):
    """The ``ip`` argument lists that make ``net``'s namespace (after a ``netns add`` of ``net['name']``)."""
    name, host_if = net["name"], net["host_if"]
    cmds = [["link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
            ["link", "set", host_if, "master", net["bridge"]],
            ["link", "set", host_if, "up"],
            ["-n", name, "link", "set", "lo", "up"],
            ["-n", name, "link", "set", "eth0", "up"]]
    if net.get("address"):
        cmds.append(["-n", name, "addr", "replace", net["address"], "dev", "eth0"])
    if net.get("gateway"):
        cmds.append(["-n", name, "route", "replace", "default", "via", net["gateway"]])
    return cmds


def prepare(run):
    net = run.get("netns")
    if not net:
        return 0
    _ip(["netns", "del", net["name"]], check=False)  # a namespace left by a killed unit
    _ip(["link", "del", net["host_if"]], check=False)
    _ip(["netns", "add", net["name"]])
    for argv in netns_commands(net):
        _ip(argv)
    return 0


def _ops(run, workdir):
    config = dict(run, workdir=workdir)
    if run["backend"] == "libcrun":
        return agent._LibcrunOps(config)  # pylint: disable=protected-access
    return agent._CliOps(config)  # pylint: disable=protected-access


def cleanup(run):
    workdir = os.path.join(run["state_root"], ".work-" + run["id"])
    os.makedirs(workdir, exist_ok=True)
    try:
        ops = _ops(run, workdir)  # first: loading libcrun may re-execute this process (runtime/agent.py)
        agent.enter_cgroup_view(run)
        try:
            ops.delete(run["id"], True)
        except Exception:  # pylint: disable=broad-except
            pass  # nothing left (python_crun raises its own errors)
    finally:
        net = run.get("netns")
        if net:
            _ip(["netns", "del", net["name"]], check=False)
            _ip(["link", "del", net["host_if"]], check=False)
    return 0


def runtime_bundle(bundle, directory):
    """A copy of ``bundle``'s config.json in ``directory`` (made), with the root made absolute and the open-files
    limit set to this process's hard limit (the unit's LimitNOFILE as systemd could apply it: crun would
    otherwise set its own, which a node without CAP_SYS_RESOURCE refuses); returns ``directory``."""
    with open(os.path.join(bundle, "config.json")) as handle:
        config = json.load(handle)
    root = config.setdefault("root", {})
    root["path"] = os.path.join(bundle, root.get("path") or "rootfs")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    process = config.setdefault("process", {})
    limits = [item for item in process.get("rlimits") or [] if item.get("type") != "RLIMIT_NOFILE"]
    process["rlimits"] = limits + [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, "config.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(config, handle)
    os.rename(tmp, os.path.join(directory, "config.json"))
    return directory


def _say(text):
    """One line to stderr, the unit's journal."""
    sys.stderr.write("lxcri-oci: %s\n" % text)
    sys.stderr.flush()


def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_created(ops, cid, timeout=10.0):
    """Until the runtime's state says ``created``: libcrun's create (PREFORK) returns when its forked child
    has started, and a failure of that child is only printed (to the journal): no state ever appears."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            state = ops.state(cid)
        except Exception as exc:  # pylint: disable=broad-except
            state = {"status": str(exc)}
        if state.get("status") in ("created", "running"):
            return state
        if time.monotonic() > deadline:
            raise OciRuntimeError("container %s was not created within %ss: %s" % (cid, timeout, state.get("status")))
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def run_container(run, bundle):
    """Create, start and supervise the container; returns the unit's exit status."""
    cid = run["id"]
    workdir = os.path.join(run["state_root"], ".work-" + cid)
    os.makedirs(workdir, exist_ok=True)
    ops = _ops(run, workdir)  # first: loading libcrun may re-execute this process, with its environment
    # crun and libcrun relay an app's own sd_notify when NOTIFY_SOCKET is set, and `start` then waits for the
    # app's READY=1, which an image's program never sends: the socket is this process's alone
    notify_socket = os.environ.pop("NOTIFY_SOCKET", None)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    agent.enter_cgroup_view(run)
    if os.path.exists(os.path.join(run["state_root"], cid)):
        try:
            ops.delete(cid, True)  # a container left by a killed runner; python_crun raises its own errors
        except Exception:  # pylint: disable=broad-except
            pass
    os.chdir(bundle)
    runtime = runtime_bundle(bundle, os.path.join(run["state_root"], ".bundle-" + cid))
    ops.output_fd = 1  # the CLI's created container keeps crun's stdout and stderr: the journal's stream
    started = []

    stop_signal = run.get("stop_signal") or "SIGTERM"
    stopping = []

    def forward(signum, frame):  # pylint: disable=unused-argument
        # runs in the main thread between bytecodes, also while os.waitpid blocks (PEP 475 resumes it after)
        if not started:
            raise SystemExit(128 + signum)  # stopped before the container ran: cleanup (ExecStopPost) deletes it
        name = signal_module.Signals(signum).name
        if signum == signal_module.SIGALRM:
            name = "SIGKILL"  # the stop timeout passed: as docker stop does
            _say("%s did not stop within %ss, killing it" % (cid, run.get("stop_timeout")))
        elif name == stop_signal and not stopping:
            stopping.append(name)
            signal_module.alarm(int(run.get("stop_timeout") or 10))
        try:
            ops.kill(cid, name)
        except Exception as exc:  # pylint: disable=broad-except
            _say("forwarding %s: %s" % (name, exc))

    for name in FORWARDED + ("SIGALRM",) + ((stop_signal,) if stop_signal not in FORWARDED else ()):
        signal_module.signal(getattr(signal_module, name), forward)
    ops.create(cid, runtime)
    wait_created(ops, cid)
    ops.start(cid)
    pid = ops.state(cid).get("pid")
    started.append(pid)
    notify("READY=1\nSTATUS=container %s runs as pid %s (%s)" % (cid, pid, run["backend"]), notify_socket)
    _say("container %s started, pid %s, backend %s" % (cid, pid, run["backend"]))
    status = None
    while status is None:
        try:
            reaped, raw = os.waitpid(pid, 0)
        except ChildProcessError:
            # not (yet) this process's child: wait through the runtime's state
            state = agent._wait_stopped(ops, cid, 10 ** 9)  # pylint: disable=protected-access
            status = (state.get("exit_status") or 0) << 8
            break
        if reaped == pid:
            status = raw
    try:
        ops.delete(cid, True)
    except Exception as exc:  # pylint: disable=broad-except
        _say("deleting %s: %s" % (cid, exc))
    code = exit_code(status)
    after = " after %s" % stopping[0] if stopping else ""
    _say("container %s exited with status %s%s" % (cid, code, after))
    # a stop that systemd asked for is a clean end, whatever the app made of the signal
    return 0 if stopping else code


def exec_argv(run, command):
    """The nsenter argv that runs ``command`` in the running container ``run['id']``."""
    if not command:
        raise OciRuntimeError("exec needs a command after --")
    workdir = os.path.join(run["state_root"], ".work-" + run["id"])
    ops = _ops(run, workdir)  # first, as in run_container: loading libcrun may re-execute this process
    agent.enter_cgroup_view(run)
    state = ops.state(run["id"])
    if state.get("status") != "running" or not state.get("pid"):
        raise OciRuntimeError("container %s is not running (%s)" % (run["id"], state.get("status") or "no state"))
    return ["nsenter", "--target", str(state["pid"]), "--all", "--root", "--wd", "--"] + list(command)


def main(argv):
    if len(argv) >= 3 and argv[0] == "exec" and argv[2] == "--":
        try:
            command = exec_argv(load_run_config(argv[1]), argv[3:])
            sys.stdout.flush()
            os.execvp(command[0], command)
        except (OciRuntimeError, OSError, ValueError) as exc:
            sys.stderr.write("lxcri-oci exec %s: %s\n" % (argv[1], exc))
            return 125  # as docker exec: the command did not run
    if len(argv) != 2 or argv[0] not in ("prepare", "run", "cleanup"):
        sys.stderr.write("usage: lxcri-oci.py prepare|run|cleanup BUNDLE, or exec BUNDLE -- CMD...\n")
        return 2
    command, bundle = argv
    try:
        run = load_run_config(bundle)
        if command == "prepare":
            return prepare(run)
        if command == "cleanup":
            return cleanup(run)
        return run_container(run, bundle)
    except (OciRuntimeError, OSError, ValueError) as exc:
        sys.stderr.write("lxcri-oci %s %s: %s\n" % (command, bundle, exc))
        return 1
