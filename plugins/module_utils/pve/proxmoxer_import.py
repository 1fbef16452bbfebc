# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional ``proxmoxer`` imports: its HTTPS backend (session and auth classes) and its command backend base.

proxmoxer's backend modules end the process (``sys.exit(1)``) when their own
dependency is missing, so the HTTPS backend is imported here only after
``requests`` imported.  The SSH mode uses proxmoxer's command-backend base
(``CommandBaseSession``, ``shell_join``: standard library only) with the
OpenSSH client run directly (pve/ssh.py), not proxmoxer's OpenSSH backend,
whose openssh-wrapper library does not import on Python 3.13.  Importing the
HTTPS backend also turns off urllib3's InsecureRequestWarning for the whole
process; the warning filters are restored around the import, so only the
client's own ``validate_certs: false`` calls stay quiet.

``HAS_PROXMOXER``/``PROXMOXER_IMPORT_ERROR`` and ``HAS_PROXMOXER_SSH``/
``PROXMOXER_SSH_IMPORT_ERROR`` say what is there; the clients raise
PveConfigError with ``missing_proxmoxer()`` when it is not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import warnings

from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import (
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR, missing_requests_message)

__all__ = ("HAS_PROXMOXER", "PROXMOXER_IMPORT_ERROR", "HAS_PROXMOXER_SSH", "PROXMOXER_SSH_IMPORT_ERROR",
           "ProxmoxHttpSession", "ProxmoxHTTPAuth", "ProxmoxHTTPAuthBase", "ProxmoxHTTPApiTokenAuth", "CommandBaseSession",
           "shell_join", "missing_proxmoxer")

ProxmoxHttpSession = ProxmoxHTTPAuth = ProxmoxHTTPAuthBase = ProxmoxHTTPApiTokenAuth = CommandBaseSession = shell_join = None
HAS_PROXMOXER = False
PROXMOXER_IMPORT_ERROR = REQUESTS_IMPORT_ERROR
if HAS_REQUESTS:
    try:
        with warnings.catch_warnings():
            from proxmoxer.backends.https import (
                ProxmoxHttpSession, ProxmoxHTTPAuth, ProxmoxHTTPAuthBase, ProxmoxHTTPApiTokenAuth)
        HAS_PROXMOXER = True
        PROXMOXER_IMPORT_ERROR = None
    except ImportError as _exc:  # pragma: no cover - exercised on hosts without proxmoxer
        PROXMOXER_IMPORT_ERROR = _exc

HAS_PROXMOXER_SSH = False
PROXMOXER_SSH_IMPORT_ERROR = PROXMOXER_IMPORT_ERROR
if HAS_PROXMOXER:
    try:
        from proxmoxer.backends.command_base import CommandBaseSession, shell_join
        HAS_PROXMOXER_SSH = True
        PROXMOXER_SSH_IMPORT_ERROR = None
    except ImportError as _exc:  # pragma: no cover - a proxmoxer without its command backends
        PROXMOXER_SSH_IMPORT_ERROR = _exc


def missing_proxmoxer(ssh=False):
    """What to tell the user when the library a connection needs cannot be imported."""
    if not HAS_REQUESTS:
        return missing_requests_message()
    if not HAS_PROXMOXER:
        return ("the Python library 'proxmoxer' (2.0 or later) is required (pip install 'proxmoxer>=2.0,<3', or "
                "python3-proxmoxer on Debian): %s" % PROXMOXER_IMPORT_ERROR)
    if ssh and not HAS_PROXMOXER_SSH:
        return ("api_connection: ssh needs proxmoxer's command backends (proxmoxer.backends.command_base, in "
                "proxmoxer 2.0 or later): %s" % PROXMOXER_SSH_IMPORT_ERROR)
    return None
