# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of the Proxmox VE modules and the client they make.

``pve_argument_spec()`` matches the doc fragment ``lxcri.proxmox.pve``
(a unit test holds them together).  Modules merge it into their own spec
and call ``connect(module.params)``; without ``api_host``, on a Proxmox VE
node, the client runs ``pvesh`` through ``command.subprocess_runner``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import (
    DEFAULT_PORT, DEFAULT_TIMEOUT, DEFAULT_USER, PveClient)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import PVESH, LocalPveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.ssh import (
    DEFAULT_SSH_PORT, DEFAULT_SSH_USER, SshPveClient)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import DEFAULT_WAIT_TIMEOUT

# For AnsibleModule(mutually_exclusive=..., required_together=...).  Note that
# Ansible applies the environment fallbacks before these checks; connect()
# checks the same rules for callers without AnsibleModule.
PVE_MUTUALLY_EXCLUSIVE = [("api_password", "api_token_id"), ("api_password", "api_token_secret")]
PVE_REQUIRED_TOGETHER = [("api_token_id", "api_token_secret")]
CONNECTIONS = ("auto", "https", "ssh", "local")


def pve_argument_spec():
    """A new dict of the connection options (see the doc fragment lxcri.proxmox.pve)."""
    return dict(
        api_host=dict(type="str", fallback=(env_fallback, ["PROXMOX_HOST"])),
        api_port=dict(type="int", default=DEFAULT_PORT, fallback=(env_fallback, ["PROXMOX_PORT"])),
        api_user=dict(type="str", default=DEFAULT_USER, fallback=(env_fallback, ["PROXMOX_USER"])),
        api_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_PASSWORD"])),
        api_token_id=dict(type="str", no_log=False, fallback=(env_fallback, ["PROXMOX_TOKEN_ID"])),
        api_token_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_TOKEN_SECRET"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PROXMOX_VALIDATE_CERTS"])),
        ca_path=dict(type="path", fallback=(env_fallback, ["PROXMOX_CA_PATH"])),
        api_timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        wait_timeout=dict(type="int", default=DEFAULT_WAIT_TIMEOUT),
        api_connection=dict(type="str", default="auto", choices=list(CONNECTIONS),
                            fallback=(env_fallback, ["PROXMOX_CONNECTION"])),
        ssh_user=dict(type="str", default=DEFAULT_SSH_USER),
        ssh_port=dict(type="int", default=DEFAULT_SSH_PORT),
        ssh_identity_file=dict(type="path"),
        ssh_config_file=dict(type="path"),
    )


def connect(params, runner=None, session=None, pvesh=PVESH):
    """The client the options ask for (``api_connection``).

    ``auto``: PveClient (HTTPS) with ``api_host``, else pvesh on this PVE
    node; ``https``, ``local`` and ``ssh`` (pvesh on ``api_host`` over SSH)
    choose one.  Raises PveConfigError with a message for the user when the
    options cannot work.
    """
    host = params.get("api_host")
    api_timeout = params.get("api_timeout") or DEFAULT_TIMEOUT
    mode = params.get("api_connection") or "auto"
    if mode not in CONNECTIONS:
        raise PveConfigError("api_connection must be one of %s, not %r" % (", ".join(CONNECTIONS), mode))
    # pvesh runs worker tasks in the foreground: allow it the task's time
    pvesh_timeout = (params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT) + api_timeout
    if mode == "ssh":
        if not host:
            raise PveConfigError("api_connection is ssh: set api_host (or PROXMOX_HOST) to the node to reach over SSH")
        return SshPveClient(host, user=params.get("ssh_user"), port=params.get("ssh_port"),
                            identity_file=params.get("ssh_identity_file"), config_file=params.get("ssh_config_file"),
                            timeout=pvesh_timeout)
    if mode == "local" or (mode == "auto" and not host):
        if not LocalPveClient.available(pvesh):
            if mode == "local":
                raise PveConfigError("api_connection is local but this host is not a Proxmox VE node (no %s)" % pvesh)
            raise PveConfigError("api_host (or PROXMOX_HOST) is not set and this host is not a Proxmox VE node "
                                 "(no %s): set api_host and credentials to use the API over the network" % pvesh)
        return LocalPveClient(runner=runner, pvesh=pvesh, timeout=pvesh_timeout)
    if not host:
        raise PveConfigError("api_connection is https: set api_host (or PROXMOX_HOST) and credentials")
    password = params.get("api_password")
    token_id = params.get("api_token_id")
    token_secret = params.get("api_token_secret")
    if password and (token_id or token_secret):
        raise PveConfigError("api_password and api_token_id/api_token_secret are mutually exclusive "
                             "(check the PROXMOX_* environment variables too)")
    if bool(token_id) != bool(token_secret):
        raise PveConfigError("api_token_id and api_token_secret must be given together")
    if not password and not token_id:
        raise PveConfigError("api_host is set: give api_password, or api_token_id and api_token_secret")
    return PveClient(host, port=params.get("api_port") or DEFAULT_PORT, user=params.get("api_user") or DEFAULT_USER,
                     password=password, token_id=token_id, token_secret=token_secret,
                     validate_certs=params.get("validate_certs") is not False, ca_path=params.get("ca_path"),
                     timeout=api_timeout, session=session)
