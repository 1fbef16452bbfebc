# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional ``proxmoxer`` imports: its HTTPS backend (session and auth classes) and its OpenSSH backend.

proxmoxer's backend modules end the process (``sys.exit(1)``) when their own
dependency is missing, so each is imported here only after that dependency
imported: ``requests`` for HTTPS, ``openssh_wrapper`` for SSH.  Importing the
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
           "ProxmoxHttpSession", "ProxmoxHTTPAuth", "ProxmoxHTTPAuthBase", "ProxmoxHTTPApiTokenAuth", "OpenSSHSession", "shell_join",
           "SSHError", "missing_proxmoxer")

ProxmoxHttpSession = ProxmoxHTTPAuth = ProxmoxHTTPAuthBase = ProxmoxHTTPApiTokenAuth = OpenSSHSession = shell_join = None
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
        # proxmoxer's OpenSSH backend runs ssh through openssh_wrapper (PyPI openssh-wrapper), which imports the
        # 'pipes' module that Python 3.13 dropped
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # openssh_wrapper's 'import pipes'
            from openssh_wrapper import SSHError
            from proxmoxer.backends.openssh import OpenSSHSession
            from proxmoxer.backends.command_base import shell_join
        HAS_PROXMOXER_SSH = True
        PROXMOXER_SSH_IMPORT_ERROR = None
    except ImportError as _exc:  # pragma: no cover - exercised on hosts without openssh-wrapper
        PROXMOXER_SSH_IMPORT_ERROR = _exc

if not HAS_PROXMOXER_SSH:
    SSHError = type("SSHError", (Exception,), {"__doc__": "Stands in for openssh_wrapper.SSHError; never raised."})


def missing_proxmoxer(ssh=False):
    """What to tell the user when the library a connection needs cannot be imported."""
    if not HAS_REQUESTS:
        return missing_requests_message()
    if not HAS_PROXMOXER:
        return ("the Python library 'proxmoxer' (2.0 or later) is required (pip install 'proxmoxer>=2.0,<3', or "
                "python3-proxmoxer on Debian): %s" % PROXMOXER_IMPORT_ERROR)
    if ssh and not HAS_PROXMOXER_SSH:
        return ("connection: ssh needs proxmoxer's OpenSSH backend and its library 'openssh-wrapper' (pip install "
                "openssh-wrapper; it runs on Python 3.12 or older): %s" % PROXMOXER_SSH_IMPORT_ERROR)
    return None
