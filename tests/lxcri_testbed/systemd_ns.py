"""A real systemd, the host's own /lib/systemd/systemd, as PID 1 of private PID and mount namespaces.

This machine's PID 1 is not systemd, and oci_container's units must really be
started, stopped and restarted by systemd.  ``SystemdNamespace`` boots the
host's systemd in ``unshare --pid --mount`` with a tmpfs of its own on /run
(so its sockets, runtime units, /run/netns and crun's state are its own; the
host's /run/zfs, where zfs-fuse listens, is bound into it).  Its mounts are
slaves of the host's: what the host mounts below a shared mount (zfs-fuse
mounts datasets in its own, the host's, namespace; see
``share_mounts_below``) shows up inside, nothing made inside leaks out.  It
has the environment variable ``container``
set (systemd then acts as a container's init).  It starts one target of its own: journald and nothing
else.  Every unit that sysinit, local-fs, sockets, timers and paths pull in
from the host's unit directories is masked in /run/systemd/system.control
(the highest precedence): unmasked, ``systemd-tmpfiles-setup`` would empty
the host's /tmp, ``systemd-sysusers`` edit /etc/passwd, ``systemd-sysctl``
set kernel parameters.

``run(argv)`` runs a command inside its mount and PID namespaces (``nsenter -m -p``):
systemctl and journalctl find this systemd there, and an ansible run so
prefixed manages its units.  ``stop()`` kills its PID 1, which ends every
process of the namespace, containers included.
"""

import glob
import os
import shlex
import shutil
import signal
import subprocess
import time

SYSTEMD = "/lib/systemd/systemd"
TARGET = "lxcri-test.target"
# pulled in by a service's default dependencies (sysinit.target) or by basic.target; masked whatever the host has
ALWAYS_MASKED = (
    "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.service", "systemd-tmpfiles-clean.timer", "systemd-sysusers.service",
    "systemd-sysctl.service", "systemd-modules-load.service", "systemd-remount-fs.service",
    "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service", "systemd-journal-flush.service",
    "systemd-random-seed.service", "systemd-machine-id-commit.service", "systemd-firstboot.service",
    "systemd-binfmt.service", "systemd-hwdb-update.service", "ldconfig.service", "systemd-udevd.service",
    "systemd-udev-trigger.service", "systemd-pstore.service", "systemd-boot-system-token.service",
    "e2scrub_reap.service", "postgresql.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "systemd-timesyncd.service", "getty.target", "cron.service", "ssh.service", "systemd-logind.service")
WANTS = ("sysinit.target", "local-fs.target", "sockets.target", "timers.target", "paths.target", "basic.target",
         "multi-user.target")
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")

BOOT = r"""#!/bin/bash
set -e
mount --make-rslave /
# the copies of ZFS datasets' mounts (zfs-fuse's are FUSE mounts) would keep each of them busy: zfs-fuse refuses to
# destroy a dataset while any namespace holds it, so every one goes but those kept (their ancestors and descendants)
findmnt -rn -t fuse.zfs,zfs -o TARGET | sort -r | while read -r target; do
  target=$(printf '%%b' "$target")
  keep=no
  for kept in %(keep)s; do
    case "$target/" in "$kept/"*) keep=yes ;; esac
    case "$kept/" in "$target/"*) keep=yes ;; esac
  done
  [ "$keep" = yes ] || umount -l "$target" 2>/dev/null || true
done
mkdir -p %(hostrun)s
mount --bind /run %(hostrun)s
mount -t tmpfs -o mode=0755 tmpfs /run
if [ -d %(hostrun)s/zfs ]; then mkdir -p /run/zfs; mount --bind %(hostrun)s/zfs /run/zfs; fi
# systemctl enable writes below /etc/systemd/system: the namespace's own copy, never the host's
mkdir -p %(etc)s
cp -a /etc/systemd/system/. %(etc)s/
mount --bind %(etc)s /etc/systemd/system
mkdir -p /run/systemd/system /run/systemd/system.control
for unit in %(masked)s; do ln -sf /dev/null "/run/systemd/system.control/$unit"; done
cat > /run/systemd/system/%(target)s <<'EOF'
[Unit]
Description=lxcri test boot: journald only
Wants=systemd-journald.service
After=systemd-journald.service
EOF
echo ready > %(marker)s
exec env container=lxcri-test %(systemd)s --system --unit=%(target)s --log-target=console
"""


def masked_units():
    """ALWAYS_MASKED and every unit the host's WANTS targets pull in."""
    found = set(ALWAYS_MASKED)
    for directory in UNIT_DIRS:
        for target in WANTS:
            for path in glob.glob(os.path.join(directory, target + ".wants", "*")):
                name = os.path.basename(path)
                # services, sockets, timers and paths only: mounts and targets stay as the namespace has them
                if name.rsplit(".", 1)[-1] in ("service", "socket", "timer", "path") and \
                        not name.startswith("systemd-journald"):
                    found.add(name)
    return sorted(found)


def share_mounts_below(path):
    """Make the host's mount at ``path`` shared, so that mounts the host makes below it (zfs-fuse's datasets)
    propagate into a SystemdNamespace started afterwards."""
    subprocess.run(["mount", "--make-shared", path], check=True)


def available():
    """Why a SystemdNamespace cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("unshare", "nsenter", "systemctl", "journalctl"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    if not os.path.exists(SYSTEMD):
        return "%s is not installed" % SYSTEMD
    return None


class SystemdNamespace:
    """``keep_mounts``: ZFS mountpoints whose mounts the namespace keeps (with what the host later mounts below
    them, once ``share_mounts_below`` made them shared); every other dataset's mount is dropped from its copy of
    the host's mounts, so that the host can destroy those datasets while the namespace runs."""

    def __init__(self, workdir, keep_mounts=()):
        self.workdir = str(workdir)
        self.keep_mounts = [os.path.normpath(str(path)) for path in keep_mounts]
        self.proc = None
        self.pid = None

    def start(self, timeout=60):
        os.makedirs(self.workdir, exist_ok=True)
        marker = os.path.join(self.workdir, "booted")
        script = os.path.join(self.workdir, "boot.sh")
        with open(script, "w") as handle:
            handle.write(BOOT % {"masked": " ".join(masked_units()), "target": TARGET, "systemd": SYSTEMD,
                                 "marker": marker, "hostrun": os.path.join(self.workdir, "hostrun"),
                                 "keep": " ".join(shlex.quote(path) for path in self.keep_mounts),
                                 "etc": os.path.join(self.workdir, "etc-systemd-system")})
        os.chmod(script, 0o755)
        self.log = open(os.path.join(self.workdir, "systemd.log"), "wb")
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--propagation", "slave", "--mount-proc", script],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("systemd's namespace ended at once: %s" % self.log_text())
            self.pid = self.pid or self._child()
            if self.pid and os.path.exists(marker):
                rc = self.run(["systemctl", "is-system-running"], check=False)
                if rc.stdout.strip() in ("running", "degraded"):
                    rc = self.run(["systemctl", "is-active", "systemd-journald.service"], check=False)
                    if rc.stdout.strip() == "active":
                        return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("systemd did not come up in %ss: %s" % (timeout, self.log_text()))

    def _child(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as handle:
                children = handle.read().split()
        except (IOError, OSError):
            return None
        return int(children[0]) if children else None

    def log_text(self):
        try:
            with open(os.path.join(self.workdir, "systemd.log"), "rb") as handle:
                return handle.read()[-3000:].decode("utf-8", "replace")
        except (IOError, OSError):
            return ""

    @property
    def prefix(self):
        """Words that run a command in the namespaces (systemd takes no connection from a process it cannot see)."""
        return ["nsenter", "-t", str(self.pid), "-m", "-p"]

    def run(self, argv, check=True, timeout=120):
        return subprocess.run(self.prefix + list(argv), check=check, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        self.pid = None
