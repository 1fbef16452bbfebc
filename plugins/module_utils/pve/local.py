# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE API on the node itself, through ``pvesh``.

Used when a module runs on a PVE node without ``api_host``: ``pvesh
<get|create|set|delete> <path> --output-format json --key=value ...`` as an
argument list (never a shell), as root, with no credentials at all.

pvesh differs from the HTTP API in ways this backend absorbs: path segments
are passed as they are (pvesh does not URL-decode), a worker task started
from pvesh runs in the foreground (its log goes to stdout before the JSON
UPID, and the task has ended when pvesh returns), errors arrive on stderr
as ``400 Parameter verification failed.`` + ``param: message`` lines, and an
upload takes a file already on the node (``tmpfilename`` under /var/tmp).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import hashlib
import json
import os
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.command import subprocess_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import (
    CHUNK, ApiBase, PveClient, check_upload_filename, encode_params, fill_path, merge_params, upload_checksum)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConfigError, PveError)

PVESH = "/usr/bin/pvesh"
# A value holding NUL (env) cannot be a pvesh argument: such a call goes to the node's own HTTPS API on
# localhost, with a root@pam ticket and CSRF token minted on the node as its API server makes them at login
# (pve-access-control PVE/AccessControl.pm assemble_ticket / assemble_csrf_prevention_token, with the node's
# /etc/pve/priv/authkey.key: root only); nothing is stored, and the ticket lives two hours like any other.
PERL = "/usr/bin/perl"
MINT_TICKET = ("use PVE::AccessControl; print PVE::AccessControl::assemble_ticket('root@pam'), \"\\n\", "
               "PVE::AccessControl::assemble_csrf_prevention_token('root@pam'), \"\\n\";")
LOOPBACK = {"host": "localhost", "port": 8006, "ca_path": "/etc/pve/pve-root-ca.pem"}
UPLOAD_TMP_DIR = "/var/tmp"  # PVE's upload API takes tmpfilename only as /var/tmp/pveupload-<hex>
VERBS = {"GET": "get", "POST": "create", "PUT": "set", "DELETE": "delete"}

_STATUS_LINE = re.compile(r"^(\d{3}) (.*)$")
_PARAM_LINE = re.compile(r"^([A-Za-z][\w\-\[\]]*): (.*)$")
_NO_HANDLER = re.compile(r"^no '\w+' handler (defined )?for", re.I)


def _plain(text):
    return text


def parse_pvesh_output(out):
    """The JSON result of a pvesh call; task output printed before it is skipped."""
    text = (out or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    last = text.splitlines()[-1].strip()
    try:
        return json.loads(last)
    except ValueError:
        raise PveError("pvesh printed no JSON result: %s" % text[-300:])


def _nul_keys(params):
    """The parameters (encoded: strings or lists of them) whose value holds a NUL byte, sorted."""
    return [key for key, values in sorted(params.items())
            if any("\0" in value for value in (values if isinstance(values, list) else [values]))]


def pvesh_error(method, path, rc, out, err):
    """A PveApiError from a failed pvesh run (its stderr, or stdout when stderr is empty)."""
    lines = [line.rstrip() for line in (err or out or "").strip().splitlines()]
    status, message, errors = 500, "", {}
    if lines and _STATUS_LINE.match(lines[0]):
        match = _STATUS_LINE.match(lines[0])
        status, message = int(match.group(1)), match.group(2)
        for line in lines[1:]:
            if not line.strip() or line.startswith(("pvesh ", "USAGE:")):
                break
            param = _PARAM_LINE.match(line)
            if param:
                errors[param.group(1)] = param.group(2)
            else:
                message += " " + line.strip()
    else:
        message = " ".join(line.strip() for line in lines if line.strip()) or "pvesh exited with %d" % rc
        if _NO_HANDLER.match(message):
            status = 501
    return PveApiError(status, method, path, message[:2000], errors, via="pvesh")


class LocalPveClient(ApiBase):
    """Same interface as PveClient, answered by ``pvesh`` on this node."""

    def __init__(self, runner=None, pvesh=PVESH, timeout=630, tmp_dir=UPLOAD_TMP_DIR, loopback=None,
                 mint=(PERL, "-e", MINT_TICKET), https_factory=None):
        """``loopback`` (host, port, ca_path), ``mint`` (the argv printing a ticket and a CSRF token) and
        ``https_factory`` (PveClient by default) make the HTTPS path for values pvesh cannot pass."""
        self.pvesh = pvesh
        self.loopback = dict(LOOPBACK, **(loopback or {}))
        self.mint = list(mint)
        self.https_factory = https_factory
        self._https = None
        self.timeout = timeout
        self.runner = runner or (lambda argv: subprocess_runner(argv, timeout=self.timeout))
        self.tmp_dir = tmp_dir
        self.host = "localhost"
        self.port = "pvesh"

    def __repr__(self):
        return "LocalPveClient(%s)" % self.pvesh

    def argv(self, method, path, params):
        nul = _nul_keys(params)
        if nul:
            raise PveConfigError("pvesh cannot pass %s: its value holds NUL bytes (as 'env' does); use the "
                                 "HTTPS API for this (api_host with credentials, api_connection auto or https)" % nul[0])
        argv = [self.pvesh, VERBS[method], path, "--output-format", "json"]
        for key in sorted(params):
            for value in params[key] if isinstance(params[key], list) else [params[key]]:
                # --key=value: a value starting with '-' is never taken for an option
                argv.append("--%s=%s" % (key, value))
        return argv

    def _mint(self):
        rc, out, err = self.runner(self.mint)
        lines = (out or "").split()
        if rc != 0 or len(lines) != 2:
            raise PveConfigError("a value that pvesh cannot pass (env with several entries) goes to this node's "
                                 "HTTPS API on %s:%s, with a root@pam ticket made on the node by %s; that failed "
                                 "(exit %s): %s" % (self.loopback["host"], self.loopback["port"], self.mint[0], rc,
                                                    (err or out or "").strip()[-300:] or "no ticket printed"))
        return lines[0], lines[1]

    def https_client(self, host, port, ca_path):
        """A client of the node's HTTPS API at ``host:port`` as root@pam, with tickets from ``_mint``."""
        factory = self.https_factory or PveClient
        return factory(host, port=port, user="root@pam", ca_path=ca_path, ticket_source=self._mint)

    def https(self, key=None):
        """The node's own HTTPS API (see LOOPBACK), made once; ``key``: the parameter pvesh could not pass."""
        if self._https is None:
            self._https = self.https_client(self.loopback["host"], self.loopback["port"], self.loopback["ca_path"])
        return self._https

    def request(self, method, path, params=None, **kwargs):
        method = method.upper()
        if method not in VERBS:
            raise ValueError("unsupported method %s" % method)
        filled, rest = fill_path(path, merge_params(params, kwargs), quote_fn=_plain)
        encoded = encode_params(rest)
        nul = _nul_keys(encoded)
        if nul:
            return self.https(nul[0]).request(method, path, params, **kwargs)
        rc, out, err = self.runner(self.argv(method, filled, encoded))
        if rc != 0:
            # a foreground worker that failed may still have printed its UPID: let the
            # caller's wait_task report the task's own error and log
            try:
                result = parse_pvesh_output(out)
            except PveError:
                result = None
            if isinstance(result, str) and result.startswith("UPID:"):
                return result
            raise pvesh_error(method, filled, rc, out, err)
        return parse_pvesh_output(out)

    def upload(self, node, storage, content, path_to_file, filename=None, checksum=True):
        """Put the file on the node as /var/tmp/pveupload-<hex> (hashing it on the way) and import it; returns the UPID."""
        filename = check_upload_filename(filename or os.path.basename(path_to_file))
        if not os.path.isfile(path_to_file):
            raise PveConfigError("no such file to upload: %s" % path_to_file)
        given = None if checksum is True else upload_checksum(path_to_file, checksum)
        tmp = "%s/pveupload-%s" % (self.tmp_dir, binascii.hexlify(os.urandom(16)).decode("ascii"))
        try:
            digest = self.stage_upload(path_to_file, tmp)
            params = {"content": content, "filename": filename, "tmpfilename": tmp}
            if checksum is True:
                given = digest
            if given:
                params.update({"checksum-algorithm": "sha256", "checksum": given})
            return self.post("/nodes/{node}/storage/{storage}/upload", params, node=node, storage=storage)
        finally:
            # the import task removes it; not when pvesh refused the call before the task
            self.remove_staged(tmp)

    def stage_upload(self, path_to_file, tmp):
        """Copy the file to ``tmp`` on the node; returns its sha256 hex digest."""
        digest = hashlib.sha256()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as target, open(path_to_file, "rb") as source:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
                target.write(chunk)
        return digest.hexdigest()

    def remove_staged(self, tmp):
        if os.path.exists(tmp):
            os.unlink(tmp)

    @staticmethod
    def available(pvesh=PVESH):
        return os.path.isfile(pvesh) and os.access(pvesh, os.X_OK)
