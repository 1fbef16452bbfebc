# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE API on a node reached over SSH only: ``pvesh`` run there through a proxmoxer command backend.

The same calls as on the node itself (LocalPveClient: the argument list, its
limits such as no NUL byte in a value, pvesh's output and errors), only
carried by ``OpenSshSession``: proxmoxer's command-backend session
(``CommandBaseSession``, the base of its own OpenSSH and paramiko backends)
over the OpenSSH client run directly (``ssh``/``scp``; key or agent
authentication, never a password prompt; the user's ``~/.ssh/config`` or
``ssh_config_file``), with the argument list quoted by proxmoxer's
``shell_join``.  proxmoxer's own OpenSSH backend needs the openssh-wrapper
library, which does not import on Python 3.13 (it imports ``pipes``) and
times a call out with SIGALRM (main thread only); this session needs neither.

Two things proxmoxer's own ``request`` would get wrong here are avoided by
running the script through the session directly: it keeps only one of
stdout and stderr, and an SSH client exits 255 on a failed connection, which
is also what pvesh exits with on most API errors.  So the remote shell runs
pvesh, then writes pvesh's real exit status to stderr as its last line and
exits 0; a run without that line failed in SSH.  An upload is copied with
``scp`` to /var/tmp/pveupload-<hex> on the node.

A value pvesh cannot take as an argument (a NUL byte: ``env`` with several
entries) goes, as in local mode, to the node's own HTTPS API with a ticket
minted on the node, here through an ``ssh -L`` port forward (``https``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import os
import re
import socket
import subprocess
import tempfile
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import run_process, start_process
from ansible_collections.lxcri.proxmox.plugins.module_utils.hashing import sha256_file
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import to_text
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError, PveConnectionError, PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import LocalPveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import MISSING_LIBRARY
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.proxmoxer_import import (
    CommandBaseSession, HAS_PROXMOXER_SSH, missing_proxmoxer, shell_join)

REMOTE_PVESH = "pvesh"  # on the node's PATH (/usr/bin/pvesh on Proxmox VE), as proxmoxer calls it
DEFAULT_SSH_PORT = 22
DEFAULT_SSH_USER = "root"
STATUS_MARK = "lxcri-pvesh-exit-status:"
_STATUS_LINE = re.compile(r"(?:^|\n)%s(\d+)\s*$" % re.escape(STATUS_MARK))


def split_status(err):
    """``(exit status, stderr without the status line)``; the status is None when the line is missing."""
    match = _STATUS_LINE.search(err)
    if not match:
        return None, err
    return int(match.group(1)), err[:match.start()]


class SshError(PveError):
    """SSH itself failed: the client is missing, the connection or login failed, or the call timed out.

    The client turns it into a PveConnectionError (a call) or a PveConfigError (the settings) naming the node.
    """

    kind = "ssh"


class OpenSshSession(CommandBaseSession or object):
    """proxmoxer's command-backend session over the OpenSSH client: ``ssh`` runs a script, ``scp`` copies a file."""

    def __init__(self, host, user, config_file=None, port=DEFAULT_SSH_PORT, identity_file=None, timeout=630,
                 ssh="ssh", scp="scp"):
        if CommandBaseSession is not None:
            super(OpenSshSession, self).__init__(service="PVE", timeout=timeout)
        for what, path in (("identity file", identity_file), ("ssh config file", config_file)):
            if path and not os.path.isfile(path):
                raise SshError("%s %s not found" % (what, path))
        self.host, self.user, self.port = host, user, int(port)
        self.config_file, self.identity_file = config_file, identity_file
        self.timeout = timeout
        self.ssh, self.scp = ssh, scp

    def _options(self, port_flag):
        # BatchMode: key or agent authentication only; a password or host-key prompt fails instead of hanging
        options = ["-o", "BatchMode=yes", port_flag, str(self.port)]
        if self.config_file:
            options += ["-F", self.config_file]
        if self.identity_file:
            options += ["-i", self.identity_file]
        return options

    def _run(self, argv, script=None):
        try:
            proc = run_process(argv, timeout=self.timeout, input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise SshError("cannot run the OpenSSH client %s: %s" % (argv[0], exc)) from None
        except subprocess.TimeoutExpired:
            raise SshError("no answer within %s s (wait_timeout + api_timeout)" % self.timeout) from None
        return proc.returncode, proc.stdout, proc.stderr

    def run_script(self, script):
        """``(returncode, stdout, stderr)`` (bytes) of ``script`` run by the remote user's shell."""
        # "--" ends the options, so a host beginning with "-" is a host, never an ssh option
        argv = [self.ssh] + self._options("-p") + ["-l", self.user, "--", self.host, "/bin/sh"]
        return self._run(argv, script.encode("utf-8"))

    def _exec(self, cmd):
        """proxmoxer's backend call: ``(stdout, stderr, returncode)`` of an argument list."""
        rc, out, err = self.run_script(shell_join(cmd))
        return out, err, rc

    def forward(self, remote_host, remote_port, wait=15.0):
        """Forward a free local port on 127.0.0.1 to ``remote_host:remote_port`` as the node sees it
        (``ssh -N -L``); returns ``(local port, process)``.  The process ends when it is terminated."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
        probe.close()
        argv = ([self.ssh, "-N", "-o", "ExitOnForwardFailure=yes"] + self._options("-p")
                + ["-L", "127.0.0.1:%d:%s:%d" % (local_port, remote_host, int(remote_port)),
                   "-l", self.user, "--", self.host])
        try:
            proc = start_process(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            raise SshError("cannot run the OpenSSH client %s: %s" % (self.ssh, exc)) from None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SshError("the port forward to %s:%s ended: %s" % (
                    remote_host, remote_port, to_text(proc.stderr.read()).strip() or "exit %s" % proc.returncode))
            try:
                socket.create_connection(("127.0.0.1", local_port), timeout=1).close()
                return local_port, proc
            except OSError:
                time.sleep(0.1)
        proc.terminate()
        proc.wait()
        raise SshError("the port forward to %s:%s did not come up within %s s" % (remote_host, remote_port, wait))

    def upload_file_obj(self, file_obj, remote_path):
        """Copy the local file ``file_obj`` (a path or an open file) to ``remote_path`` on the node."""
        path = getattr(file_obj, "name", file_obj)
        host = "[%s]" % self.host if ":" in self.host else self.host
        argv = [self.scp, "-q"] + self._options("-P") + ["--", path, "%s@%s:%s" % (self.user, host, remote_path)]
        rc, dummy, err = self._run(argv)
        if rc != 0:
            raise SshError(to_text(err).strip() or "scp exited with status %d" % rc)


class SshPveClient(LocalPveClient):
    """Same interface as PveClient, answered by ``pvesh`` on ``host`` over SSH."""

    def __init__(self, host, user=DEFAULT_SSH_USER, port=DEFAULT_SSH_PORT, identity_file=None, config_file=None,
                 timeout=630, session=None, pvesh=REMOTE_PVESH, tmp_dir="/var/tmp", **https_options):
        """``https_options``: LocalPveClient's ``loopback``, ``mint`` and ``https_factory`` (the node-side
        HTTPS path for values pvesh cannot pass)."""
        if session is None:
            if not HAS_PROXMOXER_SSH:
                raise PveConfigError(missing_proxmoxer(ssh=True), kind=MISSING_LIBRARY)
            if not host:
                raise PveConfigError("connection ssh needs api_host: the node to reach over SSH")
            try:
                session = OpenSshSession(host, user or DEFAULT_SSH_USER, config_file=config_file,
                                         port=port or DEFAULT_SSH_PORT, identity_file=identity_file,
                                         timeout=int(timeout))
            except SshError as exc:
                raise PveConfigError("connection ssh: %s" % to_text(exc.args[0] if exc.args else exc)) from None
        super(SshPveClient, self).__init__(runner=self.run_remote, pvesh=pvesh, timeout=timeout, tmp_dir=tmp_dir,
                                           **https_options)
        self.session = session
        self._forward = None
        self._cleanups = []
        atexit.register(self.close)
        self.host = host
        self.port = port or DEFAULT_SSH_PORT
        self.user = user or DEFAULT_SSH_USER

    def __repr__(self):
        return "SshPveClient(%s@%s:%s)" % (self.user, self.host, self.port)

    def https(self, key=None):
        """The node's own HTTPS API (LOOPBACK: localhost:8006 as the node sees it) through an SSH port forward,
        with a root@pam ticket minted on the node (LocalPveClient._mint, run over SSH) and the node's CA
        (``/etc/pve/pve-root-ca.pem``, read over SSH into a private temporary file).  Proxmox VE's node
        certificate names 127.0.0.1 (PVE::CertHelpers gen_pve_ssl_cert: IP:127.0.0.1, IP:::1, DNS:localhost),
        the address this side connects to.  Made once; the forward and the file go when the process ends."""
        if self._https is not None:
            return self._https
        status, out, err = self.run_remote(["cat", "--", self.loopback["ca_path"]])
        if status != 0 or "BEGIN CERTIFICATE" not in out:
            detail = (err or out).strip()[-300:] or "empty"
            raise PveConfigError("pvesh cannot pass %s (its value holds NUL bytes, as env with several entries "
                                 "does), so it goes to the node's HTTPS API through an SSH port forward, checked "
                                 "with the node's CA %s, which could not be read over SSH: %s"
                                 % (key or "a value", self.loopback["ca_path"], detail))
        fd, ca_path = tempfile.mkstemp(prefix="lxcri-pve-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as handle:
            handle.write(out)
        self._cleanups.append(lambda: os.unlink(ca_path))
        try:
            local_port, proc = self.session.forward(self.loopback["host"], self.loopback["port"])
        except SshError as exc:
            raise self._ssh_failure("port forward to the node's HTTPS API (for %s)" % (key or "a value"),
                                    to_text(exc.args[0] if exc.args else exc).strip()) from None
        self._forward = proc
        self._cleanups.append(self._stop_forward)
        self._https = self.https_client("127.0.0.1", local_port, ca_path)
        return self._https

    def _stop_forward(self):
        if self._forward is not None and self._forward.poll() is None:
            self._forward.terminate()
            self._forward.wait()
        self._forward = None

    def close(self):
        """Stop the port forward and remove the CA copy (also at exit)."""
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except OSError:
                pass

    def _ssh_failure(self, what, detail):
        return PveConnectionError(self.host, self.port, "ssh %s@%s (port %s): %s: %s" % (
            self.user, self.host, self.port, what, detail or "ssh failed"))

    def run_remote(self, argv):
        """``(rc, stdout, stderr)`` of ``argv`` run on the node; PveConnectionError when SSH itself failed."""
        script = "%s\necho %s$? >&2\nexit 0\n" % (shell_join(argv), STATUS_MARK)
        try:
            returncode, out, err = self.session.run_script(script)
        except SshError as exc:
            raise self._ssh_failure(argv[1] if len(argv) > 1 else argv[0],
                                    to_text(exc.args[0] if exc.args else exc).strip()) from None
        out, err = to_text(out), to_text(err)
        status, err = split_status(err)
        if status is None:
            raise self._ssh_failure("the remote shell did not finish (exit status %s)" % returncode, err.strip())
        if status == 127 and argv[0] == self.pvesh:
            raise PveConfigError("%s@%s has no %s on its PATH: api_connection ssh needs a Proxmox VE node (%s)"
                                 % (self.user, self.host, self.pvesh, err.strip()[-200:]))
        return status, out, err

    def stage_upload(self, path_to_file, tmp):
        """Copy the file with scp to ``tmp`` on the node; its sha256 is read here first."""
        digest = sha256_file(path_to_file)
        try:
            self.session.upload_file_obj(path_to_file, tmp)
        except SshError as exc:
            raise self._ssh_failure("scp to %s" % tmp, to_text(exc.args[0] if exc.args else exc).strip()) from None
        return digest

    def remove_staged(self, tmp):
        try:
            self.run_remote(["rm", "-f", "--", tmp])
        except PveConnectionError:
            pass  # what failed before (the copy, the call) is the error to report
