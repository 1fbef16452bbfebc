"""An OpenSSH server on 127.0.0.1 for the SSH connection mode: key login as root, throwaway keys, its own port.

Its sessions find ``pvesh`` (tests/lxcri_testbed/pvesh_shim.py) and ``pct`` (tests/lxcri_testbed/pct_shim.py)
first on their PATH and accept the ``PVESH_SHIM_*`` and ``LXCRI_PCT_*`` variables a client sends (``SetEnv`` in
the ssh_config that ``client_config`` writes), so each test points the shims at its own API double.  Needs Debian's openssh-server (``/usr/sbin/sshd``).
"""

import os
import shutil
import socket
import subprocess
import sys
import time

SSHD = "/usr/sbin/sshd"
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pvesh_shim.py")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    def __init__(self, workdir):
        self.dir = str(workdir)
        self.port = None
        self.proc = None
        self.client_key = os.path.join(self.dir, "id_ed25519")
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")
        self.bin = os.path.join(self.dir, "bin")

    @staticmethod
    def available():
        return os.path.isfile(SSHD) and shutil.which("ssh-keygen") is not None and shutil.which("ssh") is not None

    def start(self, timeout=10.0):
        os.makedirs(self.bin, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for key in (self.client_key, self.host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        shutil.copy(self.client_key + ".pub", os.path.join(self.dir, "authorized_keys"))
        pvesh = os.path.join(self.bin, "pvesh")
        with open(pvesh, "w") as handle:
            handle.write('#!/bin/sh\nexec %s %s "$@"\n' % (sys.executable, SHIM))
        os.chmod(pvesh, 0o755)
        pct = os.path.join(self.bin, "pct")
        with open(pct, "w") as handle:
            handle.write('#!/bin/sh\nPYTHONPATH=%s exec %s -m lxcri_testbed.pct_shim "$@"\n'
                         % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), sys.executable))
        os.chmod(pct, 0o755)
        self.port = free_port()
        config = os.path.join(self.dir, "sshd_config")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_key,
                "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
                "AuthorizedKeysFile %s" % os.path.join(self.dir, "authorized_keys"),
                "StrictModes no",  # the files live under /tmp
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "AcceptEnv PVESH_SHIM_* LXCRI_PCT_*",
                "SetEnv PATH=%s:/usr/sbin:/usr/bin:/sbin:/bin" % self.bin,
                ""]))
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "sshd.log"), "w"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: %s" % open(os.path.join(self.dir, "sshd.log")).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not listen on port %d" % self.port)

    def client_config(self, path, env=None):
        """An ssh_config for this server: its host key known, batch mode, ``env`` sent with SetEnv."""
        with open(self.host_key + ".pub") as handle:
            host_key = " ".join(handle.read().split()[:2])
        known = str(path) + ".known_hosts"
        with open(known, "w") as handle:
            handle.write("[127.0.0.1]:%d %s\n" % (self.port, host_key))
        lines = ["Host *", "  UserKnownHostsFile %s" % known, "  StrictHostKeyChecking yes", "  BatchMode yes",
                 "  IdentitiesOnly yes", "  ConnectTimeout 10"]
        lines += ["  SetEnv %s=%s" % item for item in sorted((env or {}).items())]
        with open(str(path), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return str(path)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
