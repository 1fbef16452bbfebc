# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the Proxmox VE API modules; the argument spec is
    # plugins/module_utils/pve/connection.py pve_argument_spec().  Every module
    # that takes them is in the action group pve (meta/runtime.yml), so the
    # action_group attribute is documented here; a module's own attributes
    # (check_mode, diff_mode, ...) are merged with it.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name or address of a Proxmox VE node to talk to over its HTTPS API.
      - When omitted and the module runs on a Proxmox VE node (C(/usr/bin/pvesh) exists), the module
        uses C(pvesh) on that node as root, and the credentials below are not needed.
      - When omitted on any other host, the module fails.
      - If not set, the environment variable C(PROXMOX_HOST) is used.
    type: str
  api_port:
    description:
      - Port of the API.
      - If not set, the environment variable C(PROXMOX_PORT) is used.
    type: int
    default: 8006
  api_user:
    description:
      - User to log in as, with its realm (C(user@realm)), such as C(root@pam) (a Linux user of the node)
        or C(admin@pve) (a Proxmox VE user). A name without a realm, such as C(root), is refused before
        any request.
      - Also the user of an API token whose O(api_token_id) is given without one.
      - If not set, the environment variable C(PROXMOX_USER) is used.
    type: str
    default: root@pam
  api_password:
    description:
      - Password of O(api_user), for ticket authentication.
      - Mutually exclusive with O(api_token_id) and O(api_token_secret). With O(api_host) set, either
        this or an API token is required.
      - If not set, the environment variable C(PROXMOX_PASSWORD) is used.
    type: str
  api_token_id:
    description:
      - API token id, either complete (C(user@realm!tokenid)) or only C(tokenid), which is then
        combined with O(api_user). The user needs its realm here too (C(root@pam!ci), not C(root!ci)).
      - Only the id; the secret goes in O(api_token_secret), not after an C(=).
      - Requires O(api_token_secret).
      - If not set, the environment variable C(PROXMOX_TOKEN_ID) is used.
    type: str
  api_token_secret:
    description:
      - Secret (UUID) of the API token O(api_token_id).
      - If not set, the environment variable C(PROXMOX_TOKEN_SECRET) is used.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the API. Set to V(false) only for test systems; a node's
        self-signed certificate can be verified with O(ca_path) instead.
      - The API speaks only HTTPS. A port that answers plain HTTP is reported as such, whatever this is
        set to.
      - If not set, the environment variable C(PROXMOX_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_path:
    description:
      - CA certificate file (PEM) to verify the API's certificate against, for example a copy of
        C(/etc/pve/pve-root-ca.pem). Used only when O(validate_certs) is V(true).
      - If not set, the environment variable C(PROXMOX_CA_PATH) is used.
    type: path
  api_timeout:
    description:
      - Seconds to wait for the API to answer one request (HTTP timeout).
    type: int
    default: 30
  wait_timeout:
    description:
      - Seconds to wait for a Proxmox VE task (create, start, upload, ...) to end. A task still running
        then fails the module; it goes on running on the node.
      - A task that fails fails the module at once, with the end of the task log.
      - Also how long a container that another task has locked (C(CT 105 is locked (backup))) is waited for.
    type: int
    default: 600
  api_connection:
    description:
      - How the module reaches the Proxmox VE API.
      - V(auto) uses HTTPS when O(api_host) is set, else C(pvesh) on this node (see O(api_host)).
      - V(https) always uses the HTTPS API of O(api_host), with O(api_user) and a password or API token.
      - V(local) always runs C(pvesh) on this host, which must be a Proxmox VE node, as root.
      - V(ssh) runs C(pvesh) on the node O(api_host) over SSH, for nodes reached over SSH only, through
        proxmoxer's OpenSSH backend (the C(ssh) client, key or agent authentication, no password prompt).
        O(ssh_user), O(ssh_port), O(ssh_identity_file) and O(ssh_config_file) say how to log in; the node's
        host key must already be known (C(known_hosts), or O(ssh_config_file)). The API credentials are not
        used, since pvesh runs as the SSH user, normally root.
      - A value that holds a NUL byte (a container's C(env) with more than one entry, Proxmox VE 9.1) cannot be
        a pvesh argument. With V(local) such a call goes to the node's own HTTPS API on C(localhost:8006) as
        C(root@pam), with a ticket and CSRF token the node makes for it as its login does (Perl
        C(PVE::AccessControl), with the node's key in C(/etc/pve/priv), readable by root only), checked against
        C(/etc/pve/pve-root-ca.pem); nothing is stored and nothing else changes. With V(ssh) the same call goes
        through an SSH port forward (C(ssh -L) from a free port on this host's 127.0.0.1 to the node's
        C(localhost:8006)), with the ticket made on the node and its CA read over SSH into a private temporary
        file; the forward and the file end with the module. The node's sshd must allow TCP forwarding (its
        default).
      - If not set, the environment variable C(PROXMOX_CONNECTION) is used.
    type: str
    choices: [auto, https, ssh, local]
    default: auto
  ssh_user:
    description:
      - User to log in as on O(api_host) when O(api_connection=ssh).
    type: str
    default: root
  ssh_port:
    description:
      - SSH port of O(api_host) when O(api_connection=ssh).
    type: int
    default: 22
  ssh_identity_file:
    description:
      - Private key file for the SSH login when O(api_connection=ssh) (C(ssh -i)). Without it, C(ssh) uses
        its defaults (the agent, C(~/.ssh/id_*)).
    type: path
  ssh_config_file:
    description:
      - C(ssh_config) file to use instead of C(~/.ssh/config) when O(api_connection=ssh) (C(ssh -F)), for
        example to name a C(UserKnownHostsFile).
    type: path
requirements:
  - proxmoxer 2.0 or later and requests (Python libraries), on the host that runs the module, when the
    module talks HTTPS to O(api_host)
  - for O(api_connection=ssh), proxmoxer and the OpenSSH client (C(ssh), C(scp)); key or agent authentication
attributes:
  action_group:
    description: Use C(group/lxcri.proxmox.pve) in C(module_defaults) to set the connection options once.
    support: full
    membership: [lxcri.proxmox.pve]
"""
