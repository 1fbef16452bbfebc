"""A ``pct`` for the API double's containers: ``exec``, ``push``, ``pull`` and ``status`` with the real command line.

    python -m lxcri_testbed.pct_shim exec <vmid> [--keep-env 0|1] -- <command> [args...]
    python -m lxcri_testbed.pct_shim push <vmid> <file> <destination> [--user U] [--group G] [--perms P]
    python -m lxcri_testbed.pct_shim pull <vmid> <path> <destination> [--user U] [--group G] [--perms P]
    python -m lxcri_testbed.pct_shim status <vmid>

``LXCRI_PCT_ROOTS`` lists the double's node directories (``:``-separated; a one-node double's directory, or
``<dir>/nodes/<node>`` of a cluster): a container is ``<root>/etc/pve/lxc/<vmid>.conf`` (as pmxcfs has it) and
runs under ``<root>/lxc``.  ``make testbed-up`` installs ``/var/lib/lxcri-testbed/bin/pct`` running this module.

What it does as pve-container's ``src/PVE/CLI/pct.pm`` does (``exec``, ``push``, ``pull``):

- ``exec``: load_config ("Configuration file 'nodes/<node>/lxc/<vmid>.conf' does not exist"), check_running
  ("container '<vmid>' not running!"), both a Perl die: exit 255; then exec ``lxc-attach -n <vmid> --keep-env``
  (the default; ``--keep-env 0``: ``--clear-env``) with run_cli_handler's PATH; the command's exit status.
  Options go before ``--`` (Getopt::Long would take a command's ``-l`` as pct's).
- ``push``: "can only push files to a running CT" (die, 255) for a stopped or missing CT; the host file opened
  first ("failed to open <file> for reading"); then, in a child in the container's mount namespace (and user
  namespace, as root 0, for an unprivileged CT), the destination created or truncated: owner the container's
  root, mode 0666 & ~umask (an existing file keeps its mode and owner unless --user/--group/--perms), the parent
  must exist ("failed to create file: <dest>: No such file or directory").  A failure in that worker is printed,
  and pct exits 0 anyway (no exit-code handler for push/pull in the command table).
- ``pull``: "can only pull files from a running VM" (die, 255); the host file is created first (root, 0666 &
  ~umask), then the source opened in the container's mount namespace only ("failed to open <path>: <errno
  text>"), so a missing source leaves an empty host file, and pct exits 0.

Where it differs from the real ``pct``: no config lock (the real one holds the CT's config flock for 10 s at
most), no ``--keep-env`` warning, names of users and groups are read from the container's /etc/passwd and
/etc/group only (no NSS), and the worker's output is not a task log (the real one prints "TASK ERROR: ...").
"""

import ctypes
import errno
import os
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


def wrapper(directory, roots):
    """A ``pct`` command (``<directory>/pct``) that runs this shim for the double's node directories ``roots``."""
    path = os.path.join(str(directory), "pct")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\nLXCRI_PCT_ROOTS=%s PYTHONPATH=%s exec %s -m lxcri_testbed.pct_shim \"$@\"\n"
                     % (":".join(roots), tests, sys.executable))
    os.chmod(path, 0o755)
    return path


def die(message):
    """A Perl die in pct: the message on stderr, exit status 255."""
    sys.stderr.write(message + "\n")
    sys.exit(255)


def roots():
    return [root for root in os.environ.get("LXCRI_PCT_ROOTS", "").split(":") if root]


def find(vmid):
    """(root, lxc path, conf path) of the container, or (None, None, None)."""
    for root in roots():
        conf = os.path.join(root, "etc", "pve", "lxc", "%s.conf" % vmid)
        if os.path.exists(conf):
            return root, os.path.join(root, "lxc"), conf
    return None, None, None


def node_name(root):
    return os.path.basename(os.path.normpath(root)) if root and "/nodes/" in root else "pve1"


def tools():
    """lxc-* tool directories to try: the test bed's lxc-pve build first, then the system's."""
    out = []
    pve = "/var/lib/lxcri-testbed/lxc-pve/current/bin"
    if os.path.isdir(pve):
        out.append(pve)
    out.append("/usr/bin")
    return out


def running(vmid, lxc_path):
    """(tool directory, init pid) of a running container, else (None, None)."""
    if not lxc_path or not os.path.isdir(os.path.join(lxc_path, str(vmid))):
        return None, None
    for directory in tools():
        proc = subprocess.run([os.path.join(directory, "lxc-info"), "-P", lxc_path, "-n", str(vmid), "-s", "-p"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
        info = dict((key.strip(), value.strip()) for key, sep, value in
                    (line.partition(":") for line in proc.stdout.splitlines()) if sep)
        if proc.returncode == 0 and info.get("State") == "RUNNING" and info.get("PID", "").isdigit():
            return directory, int(info["PID"])
    return None, None


def unprivileged(conf):
    with open(conf) as handle:
        return any(line.replace(" ", "").startswith("unprivileged:1") for line in handle)


def _setns(pid, kind, flag):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/proc/%d/ns/%s" % (pid, kind), os.O_RDONLY)
    try:
        if libc.setns(fd, flag) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)


def _ids(path, name):
    """The id of ``name`` (or a number) in a passwd/group file, or None."""
    if name.isdigit():
        return int(name)
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.strip().split(":")
                if len(fields) > 2 and fields[0] == name:
                    return int(fields[2])
    except OSError:
        pass
    return None


def _in_container(pid, userns, work):
    """Run ``work()`` in a child in the container's mount (and user) namespace; returns its exit status."""
    child = os.fork()
    if child == 0:
        try:
            if userns:
                _setns(pid, "user", CLONE_NEWUSER)
            _setns(pid, "mnt", CLONE_NEWNS)
            if userns:
                os.setgid(0)
                os.setuid(0)
            os.chdir("/")
            work()
            os._exit(0)  # pylint: disable=protected-access
        except Exception as exc:  # pylint: disable=broad-except
            sys.stderr.write("%s\n" % exc)
            sys.stderr.flush()
            os._exit(1)  # pylint: disable=protected-access
    return os.waitpid(child, 0)[1]


def parse(args, names):
    """pct's options (``--name value``) anywhere, and the positional arguments."""
    options, positional = {}, []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--") and arg[2:] in names:
            if index + 1 >= len(args):
                die("400 not enough arguments")
            options[arg[2:]] = args[index + 1]
            index += 2
        elif arg.startswith("-") and arg != "-":
            die("Unknown option: %s\n400 unable to parse option" % arg.lstrip("-"))
        else:
            positional.append(arg)
            index += 1
    return options, positional


def _mode(text):
    value = text if text.startswith("0") else "0" + text
    try:
        return int(value, 0) if value.startswith(("0x", "0X")) else int(value, 8)
    except ValueError:
        raise ValueError("invalid mode: '%s'" % text)


def _apply(path, options, root_passwd="/etc/passwd", root_group="/etc/group"):
    """--user/--group/--perms on ``path`` (names resolved in the container's files)."""
    uid = gid = -1
    if options.get("user") is not None:
        uid = _ids(root_passwd, options["user"])
        if uid is None:
            raise ValueError("failed to get uid for: %s" % options["user"])
    if options.get("group") is not None:
        gid = _ids(root_group, options["group"])
        if gid is None:
            raise ValueError("failed to get gid for: %s" % options["group"])
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    if options.get("perms") is not None:
        os.chmod(path, _mode(options["perms"]))


def cmd_exec(args):
    if "--" in args:
        split = args.index("--")
        head, command = args[:split], args[split + 1:]
    else:
        head, command = args, []
    options, positional = parse(head, ("keep-env",))
    if len(positional) != 1 or not positional[0].isdigit():
        die("400 wrong number of arguments")
    vmid = positional[0]
    root, lxc_path, dummy = find(vmid)
    if root is None:
        die("Configuration file 'nodes/%s/lxc/%s.conf' does not exist" % (node_name((roots() or [None])[0]), vmid))
    directory, dummy = running(vmid, lxc_path)
    if directory is None:
        die("container '%s' not running!" % vmid)
    if not command:
        die("missing command at /usr/share/perl5/PVE/CLI/pct.pm line 306.")
    keep = options.get("keep-env", "1") not in ("0", "false")
    env = dict(os.environ, PATH="/sbin:/bin:/usr/sbin:/usr/bin")  # run_cli_handler's PATH
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "LXCRI_PCT_ROOTS"):
        env.pop(name, None)
    argv = [os.path.join(directory, "lxc-attach"), "-P", lxc_path, "-n", vmid,
            "--keep-env" if keep else "--clear-env", "--"] + command
    os.execve(argv[0], argv, env)


def _target(args, kind):
    options, positional = parse(args, ("user", "group", "perms"))
    if len(positional) != 3 or not positional[0].isdigit():
        die("400 wrong number of arguments")
    vmid, source, dest = positional
    root, lxc_path, conf = find(vmid)
    directory, pid = running(vmid, lxc_path) if root else (None, None)
    if pid is None:
        die("can only push files to a running CT" if kind == "push" else
            "can only pull files from a running VM at /usr/share/perl5/PVE/CLI/pct.pm line 520.")
    return options, vmid, source, dest, conf, pid


def cmd_push(args):
    options, dummy, source, dest, conf, pid = _target(args, "push")
    try:
        handle = open(source, "rb")
    except OSError:
        sys.stderr.write("failed to open %s for reading\n" % source)
        return 0
    userns = unprivileged(conf)

    def work():
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise OSError("failed to create file: %s: %s" % (dest, os.strerror(exc.errno)))
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        _apply(dest, options)

    _in_container(pid, userns, work)
    handle.close()
    return 0  # as pct: a failure in the worker is printed, the exit status stays 0


def cmd_pull(args):
    options, dummy, source, dest, dummy_conf, pid = _target(args, "pull")
    try:
        out = open(dest, "wb")  # created on the host first: root, 0666 & ~umask
    except OSError as exc:
        sys.stderr.write("failed to create file: %s: %s\n" % (dest, os.strerror(exc.errno or errno.EIO)))
        return 0
    try:
        _apply(dest, options)
    except (OSError, ValueError) as exc:
        sys.stderr.write("%s\n" % exc)
        out.close()
        return 0
    read_end, write_end = os.pipe()

    def work():
        os.close(read_end)
        try:
            source_fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise OSError("failed to open %s: %s" % (source, os.strerror(exc.errno)))
        while True:
            chunk = os.read(source_fd, 1 << 20)
            if not chunk:
                break
            os.write(write_end, chunk)

    child = os.fork()
    if child == 0:
        status = _in_container(pid, False, work)
        os._exit(0 if status == 0 else 1)  # pylint: disable=protected-access
    os.close(write_end)
    while True:
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            break
        out.write(chunk)
    os.close(read_end)
    out.close()
    os.waitpid(child, 0)
    return 0


def cmd_status(args):
    if len(args) != 1 or not args[0].isdigit():
        die("400 wrong number of arguments")
    root, lxc_path, dummy = find(args[0])
    if root is None:
        die("Configuration file 'nodes/%s/lxc/%s.conf' does not exist" % (node_name((roots() or [None])[0]), args[0]))
    print("status: %s" % ("running" if running(args[0], lxc_path)[1] else "stopped"))
    return 0


def main(argv):
    commands = {"exec": cmd_exec, "push": cmd_push, "pull": cmd_pull, "status": cmd_status}
    if not argv or argv[0] not in commands:
        die("ERROR: unknown command 'pct %s'" % " ".join(argv[:1]))
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
