"""python -m pve_double [--port 8006] [--mode 9.1|8] [--node pve1] [--user root@pam] [--password ...] [--dir DIR]"""

import argparse
import os
import signal
import sys
import threading

from .server import DEFAULT_PASSWORD, Double


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pve_double")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PVE_DOUBLE_PORT", "8006")))
    parser.add_argument("--mode", default=os.environ.get("PVE_DOUBLE_MODE", "9.1"), choices=["9.1", "8"])
    parser.add_argument("--node", default=os.environ.get("PVE_DOUBLE_NODE", "pve1"))
    parser.add_argument("--user", default=os.environ.get("PVE_DOUBLE_USER", "root@pam"))
    parser.add_argument("--password", default=os.environ.get("PVE_DOUBLE_PASSWORD", DEFAULT_PASSWORD))
    parser.add_argument("--dir", default=os.environ.get("PVE_DOUBLE_DIR", "/var/lib/lxcri-testbed/pve-double"))
    parser.add_argument("--zfs-root", default=os.environ.get("PVE_DOUBLE_ZFS_ROOT"),
                        help="dataset for the local-zfs storage (default: <test bed pool>/pve-double when up)")
    args = parser.parse_args(argv)
    zfs_root = args.zfs_root
    if zfs_root is None:
        from lxcri_testbed.bed import load_state  # pylint: disable=import-outside-toplevel
        state = load_state()
        if state is not None:
            zfs_root = "%s/pve-double" % state["zfs"]["pool"]
    double = Double(args.dir, args.mode, args.node, args.user, args.password, port=args.port,
                    zfs_root=zfs_root).start()
    print("PVE API test double (mode %s) at %s" % (args.mode, double.url))
    print("node: %s  user: %s  storages: %s" % (args.node, args.user, ", ".join(sorted(double.backend.storages))))
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
