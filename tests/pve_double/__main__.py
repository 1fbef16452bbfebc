"""python -m pve_double [--port 8006] [--mode 9.1|8] [--node pve1 | --nodes pve1,pve2,pve3 [--node-mode pve3=8]]
                      [--user root@pam] [--password ...] [--dir DIR] [--fresh] [--detach --pidfile FILE]
   python -m pve_double --stop --pidfile FILE [--dir DIR]

In the foreground it serves until SIGINT/SIGTERM.  With ``--detach`` it
starts in the background (for molecule and ``make demo``), returns once it
answers, and writes its pid to ``--pidfile``; ``--stop`` ends such an
instance and removes what it left: its containers (stopped), the datasets
under its zfs root and its directory.  ``--fresh`` does that cleanup before
starting, since the double keeps its state in memory and a restart would
otherwise find volumes it does not know.  ``--nodes`` makes a cluster of
those nodes in one process (multinode.py), the first the API host.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from .server import DEFAULT_PASSWORD, Double

MARK = ".pve-double"  # a directory the double made, and may remove


def default_zfs_root(args):
    if args.zfs_root is not None:
        return args.zfs_root or None
    from lxcri_testbed.bed import load_state  # pylint: disable=import-outside-toplevel
    state = load_state()
    if state is None:
        return None
    suffix = os.path.basename(os.path.normpath(args.dir))
    return "%s/%s" % (state["zfs"]["pool"], suffix)


def cleanup(directory, zfs_root):
    """Stop the containers a previous instance started and remove its volumes and directory."""
    from lxcri_testbed.bed import destroy_tree  # pylint: disable=import-outside-toplevel
    from lxcri_testbed.lxc import SYSTEM_LXC, lxc_pve_tools  # pylint: disable=import-outside-toplevel
    lxc_paths = [os.path.join(directory, "lxc")]
    nodes_dir = os.path.join(directory, "nodes")
    if os.path.isdir(nodes_dir):  # a cluster's nodes
        lxc_paths += [os.path.join(nodes_dir, node, "lxc") for node in os.listdir(nodes_dir)]
    for lxc_path in filter(os.path.isdir, lxc_paths):
        # the instance ran its containers with one of the two LXCs: each stops what it started
        for tools in filter(None, (SYSTEM_LXC, lxc_pve_tools(required=False))):
            for name in os.listdir(lxc_path):
                subprocess.run([tools.tool("lxc-stop"), "-P", lxc_path, "-n", name, "-k"], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if zfs_root and subprocess.run(["zfs", "list", "-H", zfs_root], check=False, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL).returncode == 0:
        if not destroy_tree(zfs_root):
            raise SystemExit("pve_double: could not destroy %s (busy?)" % zfs_root)
    if os.path.isdir(directory):
        if not os.path.exists(os.path.join(directory, MARK)):
            raise SystemExit("pve_double: refusing to remove %s: the double did not make it" % directory)
        shutil.rmtree(directory)


def _alive(pid):
    """A running process (a zombie whose parent never reaps it counts as gone)."""
    try:
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IOError, IndexError):
        return False


def stop(pidfile, directory, zfs_root):
    if pidfile and os.path.exists(pidfile):
        with open(pidfile) as handle:
            pid = int(handle.read().strip() or 0)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for dummy in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        os.unlink(pidfile)
    cleanup(directory, zfs_root)
    print("PVE API test double stopped; %s removed" % directory)


def serve(args, zfs_root, ready=None):
    os.makedirs(args.dir, exist_ok=True)
    open(os.path.join(args.dir, MARK), "w").close()
    double = Double(args.dir, args.mode, args.node, args.user, args.password, port=args.port,
                    zfs_root=zfs_root, vmid_range=args.vmid_range, dir_storages=dict(args.dir_storage),
                    resources_lag=args.resources_lag, lxc=args.lxc, importer=args.importer, nodes=args.nodes,
                    node_modes=dict(args.node_mode)).start()
    storages = []
    for name, info in sorted(double.backend.storages.items()):
        storages.append("%s (%s%s)" % (name, info["type"], ", shared" if info.get("shared") else ""))
    nodes = ", ".join("%s (%s)" % (name, backend.mode) for name, backend in double.backends.items())
    lines = ["PVE API test double (mode %s) at %s" % (args.mode, double.url),
             "node%s: %s  user: %s  storages: %s" % ("s" if len(double.backends) > 1 else "", nodes, args.user,
                                                     ", ".join(storages))]
    if ready is not None:
        ready("\n".join(lines))
    else:
        print("\n".join(lines))
        sys.stdout.flush()
    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop_event.set())
    signal.signal(signal.SIGINT, lambda *a: stop_event.set())
    stop_event.wait()
    double.stop()


def detach(args, zfs_root):
    """Fork a server into the background; return once it is listening."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)  # pylint: disable=protected-access
        devnull = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(args.dir, "double.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)

        def ready(text):
            with open(args.pidfile, "w") as handle:
                handle.write("%d\n" % os.getpid())
            os.write(write_fd, text.encode() + b"\n")
            os.close(write_fd)

        try:
            serve(args, zfs_root, ready)
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_fd)
    os.waitpid(pid, 0)
    chunks = []
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    text = b"".join(chunks).decode()
    if not text:
        with open(os.path.join(args.dir, "double.log")) as handle:
            raise SystemExit("pve_double did not start:\n" + handle.read()[-2000:])
    print(text.rstrip())
    return 0


def _vmid_range(text):
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or not 100 <= int(low) <= int(high):
        raise argparse.ArgumentTypeError("give LOW-HIGH with 100 <= LOW <= HIGH, not %r" % text)
    return int(low), int(high)


def _dir_storage(text):
    name, sep, path = text.partition("=")
    if not sep or not name or not path.startswith("/"):
        raise argparse.ArgumentTypeError("give NAME=/absolute/path, not %r" % text)
    return name, path


def _nodes(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names) or not all(re.match(r"^[a-zA-Z][a-zA-Z0-9-]*$", n) for n in names):
        raise argparse.ArgumentTypeError("give distinct node names separated by commas, not %r" % text)
    return names


def _node_mode(text):
    name, sep, mode = text.partition("=")
    if not sep or mode not in ("9.1", "8"):
        raise argparse.ArgumentTypeError("give NODE=9.1 or NODE=8, not %r" % text)
    return name, mode


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pve_double")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PVE_DOUBLE_PORT", "8006")))
    parser.add_argument("--mode", default=os.environ.get("PVE_DOUBLE_MODE", "9.1"), choices=["9.1", "8"])
    parser.add_argument("--node", default=os.environ.get("PVE_DOUBLE_NODE", "pve1"))
    parser.add_argument("--nodes", type=_nodes, default=None, metavar="N1,N2,...",
                        help="a cluster of these nodes (the first is the API host), instead of --node alone")
    parser.add_argument("--node-mode", type=_node_mode, action="append", default=[], metavar="NODE=MODE",
                        help="a node of --nodes that runs another version than --mode (repeatable)")
    parser.add_argument("--lxc", default=os.environ.get("PVE_DOUBLE_LXC"), choices=["6.0", "5.0"],
                        help="the LXC the node runs: 6.0 (lxc-pve 6.0.5, the test bed's build) or 5.0 (Debian's "
                             "5.0.2); default 6.0 in 9.1 mode, 5.0 in 8 mode (as 8.0/8.1; 6.0 as 8.2+)")
    parser.add_argument("--importer", default=os.environ.get("PVE_DOUBLE_IMPORTER"), choices=["6.1", "6.0"],
                        help="a 9.1 node's pve-container OCI import: 6.1 (6.1.0+, honours the image's User; "
                             "default) or 6.0 (9.1.0's 6.0.18, ignores it)")
    parser.add_argument("--resources-lag", type=float, default=None, metavar="SECONDS",
                        help="seconds between pvestatd's broadcasts that /cluster/resources serves (default "
                             "$PVE_DOUBLE_RESOURCES_LAG, else 10 as on a real node; 0 reads live)")
    parser.add_argument("--user", default=os.environ.get("PVE_DOUBLE_USER", "root@pam"))
    parser.add_argument("--password", default=os.environ.get("PVE_DOUBLE_PASSWORD", DEFAULT_PASSWORD))
    parser.add_argument("--dir", default=os.environ.get("PVE_DOUBLE_DIR", "/var/lib/lxcri-testbed/pve-double"))
    parser.add_argument("--zfs-root", default=os.environ.get("PVE_DOUBLE_ZFS_ROOT"),
                        help="dataset for the local-zfs storage (default: <test bed pool>/<basename of --dir> "
                             "when the test bed is up; empty: no zfspool storage)")
    parser.add_argument("--vmid-range", type=_vmid_range, default=(100, 999999999), metavar="LOW-HIGH",
                        help="the ids /cluster/nextid hands out (default 100-999999999)")
    parser.add_argument("--dir-storage", type=_dir_storage, action="append", default=[], metavar="NAME=PATH",
                        help="another dir storage (repeatable)")
    parser.add_argument("--fresh", action="store_true", help="remove a previous instance's leftovers first")
    parser.add_argument("--detach", action="store_true", help="run in the background (needs --pidfile)")
    parser.add_argument("--pidfile")
    parser.add_argument("--stop", action="store_true", help="stop the instance in --pidfile and clean up")
    args = parser.parse_args(argv)
    args.dir = os.path.abspath(args.dir)
    unknown = [name for name, dummy in args.node_mode if name not in (args.nodes or [args.node])]
    if unknown:
        parser.error("--node-mode names %s, which is not a node" % ", ".join(unknown))
    zfs_root = default_zfs_root(args)
    if args.stop:
        stop(args.pidfile, args.dir, zfs_root)
        return 0
    if args.pidfile and os.path.exists(args.pidfile):
        with open(args.pidfile) as handle:
            old = int(handle.read().strip() or 0)
        if old and _alive(old):
            raise SystemExit("pve_double: already running as pid %d (%s)" % (old, args.pidfile))
    if args.fresh:
        cleanup(args.dir, zfs_root)
    os.makedirs(args.dir, exist_ok=True)
    open(os.path.join(args.dir, MARK), "w").close()
    if args.detach:
        if not args.pidfile:
            parser.error("--detach needs --pidfile")
        return detach(args, zfs_root)
    serve(args, zfs_root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
