"""Start a rootfs as a real LXC container and report what its init process got.

The runner writes a container config with the given ``lxc.init.*`` and
``lxc.environment`` keys, starts it with ``lxc-start``, and reads the init
process's argv, environment, working directory and ids from the host's
/proc.  Privileged containers (the test bed runs as root); ids are therefore
the same inside and outside.
"""

import os
import shutil
import time
import uuid

from .bed import BedError, run


class LxcTools:
    """One LXC installation: Debian's own (``prefix`` None: the tools on PATH) or lxc-pve 6.0.5, built by the
    test bed into its own prefix (bed.build_lxc_pve; the tools find their liblxc through their rpath).

    A container is always driven by the LXC that started it: lxc-info/-stop/-attach of another version may not
    speak its monitor's command protocol.
    """

    def __init__(self, prefix=None):
        self.prefix = prefix
        self._version = None

    def tool(self, name):
        return os.path.join(self.prefix, "bin", name) if self.prefix else name

    @property
    def version(self):
        """What ``lxc-start --version`` prints, e.g. "5.0.2" or "6.0.5"."""
        if self._version is None:
            self._version = run([self.tool("lxc-start"), "--version"]).stdout.strip()
        return self._version

    def __repr__(self):
        return "LxcTools(%r)" % (self.prefix,)


SYSTEM_LXC = LxcTools()


def lxc_pve_tools(required=True):
    """The test bed's lxc-pve 6.0.5 (the LXC of Proxmox VE 9.1); None when it is not built and not required."""
    from .bed import lxc_pve_prefix  # pylint: disable=import-outside-toplevel
    prefix = lxc_pve_prefix()
    if not os.path.exists(os.path.join(prefix, ".built")):
        if required:
            raise BedError("lxc-pve 6.0.5 is not built: run 'make testbed-up'")
        return None
    return LxcTools(prefix)


def tools_for(lxc_version):
    """The LXC installation that behaves as ``lxc_version`` ("5.0": Debian's 5.0.2, "6.0": lxc-pve 6.0.5)."""
    if str(lxc_version).partition(".")[0] == "5":
        return SYSTEM_LXC
    if str(lxc_version).startswith("6.0"):
        return lxc_pve_tools()
    raise BedError("the test bed has LXC 5.0 and 6.0, not %r" % (lxc_version,))


class InitProcess:
    """What the container's init process looked like."""

    def __init__(self, pid, argv, env, cwd, uid, gid):
        self.pid = pid
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.name = None  # container name, set by the runner
        self.log = ""
        self.host_uid, self.host_gid = uid, gid  # the host's view (read_init sets them)

    def __repr__(self):
        return "InitProcess(pid=%r, argv=%r, env=%r, cwd=%r, uid=%r, gid=%r)" % (
            self.pid, self.argv, self.env, self.cwd, self.uid, self.gid)


class StartFailed(BedError):
    def __init__(self, message, log_text):
        BedError.__init__(self, message)
        self.log = log_text


def _ids(status_text, key):
    for line in status_text.splitlines():
        if line.startswith(key + ":"):
            return [int(v) for v in line.split()[1:]]
    raise BedError("no %s line in /proc status" % key)


def read_init(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = [w.decode("utf-8", "surrogateescape") for w in handle.read().split(b"\0")[:-1]]
    with open("/proc/%d/environ" % pid, "rb") as handle:
        env = {}
        for item in handle.read().split(b"\0"):
            if item:
                key, dummy, value = item.decode("utf-8", "surrogateescape").partition("=")
                env[key] = value
    # The container pivoted into its rootfs, so the host sees cwd relative to it.
    cwd = os.readlink("/proc/%d/cwd" % pid)
    with open("/proc/%d/status" % pid) as handle:
        status = handle.read()
    uid = _ids(status, "Uid")
    gid = _ids(status, "Gid")
    # the container's own view: an unprivileged container's uid 1000 is 101000 on the host
    init = InitProcess(pid, argv, env, cwd, inside(pid, "uid", uid[1]), inside(pid, "gid", gid[1]))
    init.host_uid, init.host_gid = uid[1], gid[1]
    return init


def inside(pid, kind, host_id):
    """``host_id`` as process ``pid``'s user namespace sees it (/proc/PID/uid_map or gid_map); 65534 (the
    overflow id) when unmapped."""
    with open("/proc/%d/%s_map" % (pid, kind)) as handle:
        for line in handle:
            first, outside, count = (int(field) for field in line.split())
            if outside <= host_id < outside + count:
                return first + host_id - outside
    return 65534


def container_ids(pid):
    """(uid, gid, supplementary gids) of process ``pid`` as its container sees them."""
    with open("/proc/%d/status" % pid) as handle:
        status = handle.read()
    groups = sorted(inside(pid, "gid", g) for g in _ids(status, "Groups"))
    return inside(pid, "uid", _ids(status, "Uid")[1]), inside(pid, "gid", _ids(status, "Gid")[1]), groups


def config_lines(name, rootfs, init_cmd, cwd=None, uid=None, gid=None, env=None, extra=(), net=None):
    """A minimal privileged LXC config around ``lxc.init.*`` and ``lxc.environment``.

    Shared by the runner and the PVE API test double, which starts what it
    creates the same way.  ``env`` is a mapping; ``extra`` are raw lines;
    ``net`` are ``lxc.net.*`` lines replacing the default empty network.
    """
    # by default an empty network namespace with its loopback up, as apps expect
    lines = [
        "lxc.uts.name = %s" % name,
        "lxc.rootfs.path = dir:%s" % rootfs,
    ] + list(net or ["lxc.net.0.type = empty", "lxc.net.0.flags = up"]) + [
        "lxc.apparmor.profile = unconfined",
        "lxc.console.path = none",
        "lxc.tty.max = 0",
        "lxc.pty.max = 0",
        "lxc.mount.auto = proc:mixed sys:mixed",
        "lxc.init.cmd = %s" % init_cmd,
    ]
    if cwd is not None:
        lines.append("lxc.init.cwd = %s" % cwd)
    if uid is not None:
        lines.append("lxc.init.uid = %d" % uid)
    if gid is not None:
        lines.append("lxc.init.gid = %d" % gid)
    for key, value in (env or {}).items():
        if "\n" in key + value:
            raise ValueError("lxc.environment cannot hold a newline: %r" % key)
        lines.append("lxc.environment = %s=%s" % (key, value))
    lines.extend(extra)
    return lines


def ensure_mountpoints(rootfs):
    """LXC mounts /dev (autodev), /proc and /sys inside the rootfs; an OCI rootfs may lack them."""
    for mnt in ("dev", "proc", "sys"):
        path = os.path.join(rootfs, mnt)
        if not os.path.lexists(path):
            os.makedirs(path)


def lxc_info(lxc_path, name, tools=SYSTEM_LXC):
    """``(state, pid)`` from lxc-info: state as LXC prints it ("RUNNING", "STOPPED", ...), pid or None."""
    info = run([tools.tool("lxc-info"), "-P", lxc_path, "-n", name, "-s", "-p"], check=False)
    # "State:          RUNNING" and "PID:            1234"
    fields = dict(line.split(":", 1) for line in info.stdout.splitlines() if ":" in line)
    pid = fields.get("PID", "").strip()
    return fields.get("State", "").strip(), (int(pid) if pid.isdigit() else None)


class LxcRunner:
    """Runs containers under its own lxcpath and removes them afterwards."""

    def __init__(self, lxc_path, tools=SYSTEM_LXC):
        self.lxc_path = lxc_path
        self.tools = tools
        self.names = []

    def start(self, rootfs, init_cmd, cwd=None, uid=None, gid=None, env=None, extra=(),
              timeout=15):
        """Start the container; return its InitProcess or raise StartFailed with the log."""
        name = "lxcri-t-%s" % uuid.uuid4().hex[:10]
        cdir = os.path.join(self.lxc_path, name)
        os.makedirs(cdir)
        self.names.append(name)
        ensure_mountpoints(rootfs)
        with open(os.path.join(cdir, "config"), "w") as handle:
            handle.write("\n".join(config_lines(name, rootfs, init_cmd, cwd, uid, gid, env, extra)) + "\n")
        logfile = os.path.join(cdir, "lxc.log")
        proc = run([self.tools.tool("lxc-start"), "-P", self.lxc_path, "-n", name, "-d", "-l", "INFO",
                    "-o", logfile], check=False, timeout=timeout)
        if proc.returncode != 0:
            raise StartFailed("lxc-start %s failed: %s" % (name, proc.stderr.strip()),
                              self._log(logfile))
        deadline = time.time() + timeout
        while time.time() < deadline:
            state, pid = lxc_info(self.lxc_path, name, self.tools)
            if state == "RUNNING" and pid is not None:
                try:
                    init = read_init(pid)
                except (OSError, BedError):
                    init = None  # init exec'ing or gone; ask LXC again
                # Until the exec, the init pid still runs lxc-start's code.
                if init is not None and not (init.argv and "lxc-start" in init.argv[0]):
                    init.name = name
                    init.log = self._log(logfile)
                    return init
            elif state == "STOPPED":
                raise StartFailed("container %s stopped right after start" % name,
                                  self._log(logfile))
            time.sleep(0.1)
        raise StartFailed("container %s not running after %ss" % (name, timeout),
                          self._log(logfile))

    @staticmethod
    def _log(path):
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self, name):
        run([self.tools.tool("lxc-stop"), "-P", self.lxc_path, "-n", name, "-k"], check=False, timeout=30)
        shutil.rmtree(os.path.join(self.lxc_path, name), ignore_errors=True)

    def cleanup(self):
        while self.names:
            self.stop(self.names.pop())
