# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raw ``lxc.*`` lines in a container's Proxmox VE config file (``/etc/pve/lxc/<vmid>.conf``).

The API cannot set ``lxc.*`` keys; on the node they are written into the
file (pmxcfs).  Only the keys this collection manages are touched, in the
current config (before the first ``[snapshot]`` section); every other line
stays as it was.  Multi-valued keys (``lxc.environment``) are replaced as a
whole.

Two sets: the image's runtime (MANAGED_KEYS: init command, cwd, ids,
environment, halt signal), and the addresses of an app container's
interfaces on Proxmox VE 8 (``lxc.net.N.*``, net_keys, only for the
container's own netN): 8 has no host-managed network, the image's command
configures none, and LXC brings an interface up with its addresses itself
when the config says so - the lines 9.1 writes for host-managed interfaces.
pve-container 8 accepts any ``lxc.net.*`` key (PVE/LXC/Config.pm
is_valid_lxc_conf_key: "allow custom network definitions") and
update_lxc_config appends the raw lines after its own ``lxc.net.N.type``,
``veth.pair``, ``hwaddr``, ``name`` and ``mtu``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

MANAGED_KEYS = ("lxc.init.cmd", "lxc.init.cwd", "lxc.init.uid", "lxc.init.gid", "lxc.init.groups",
                "lxc.environment", "lxc.signal.halt")
DEFAULT_DIR = "/etc/pve/lxc"
# what pve-container 9.1's update_lxc_config writes for a host-managed interface, and net_lines for Proxmox VE 8
NET_SUBKEYS = ("ipv4.address", "ipv4.gateway", "ipv6.address", "ipv6.gateway", "flags")


def _key(line):
    if line.lstrip().startswith("lxc.") and ("=" in line or ":" in line):
        sep = min(i for i in (line.find("="), line.find(":")) if i >= 0)
        return line[:sep].strip()
    return None


def net_keys(index):
    """The ``lxc.net.<index>.*`` keys this collection manages for a container's ``net<index>`` (net_lines)."""
    return set("lxc.net.%d.%s" % (int(index), sub) for sub in NET_SUBKEYS)


def merged(text, lines, managed=MANAGED_KEYS):
    """``text`` (a conf file) with the ``managed`` keys replaced by ``lines``."""
    all_lines = text.splitlines()
    end = len(all_lines)
    for index, line in enumerate(all_lines):
        if line.startswith("["):
            end = index
            break
    head = [line for line in all_lines[:end] if _key(line) not in managed]
    while head and not head[-1].strip():
        head.pop()
    new = [line.replace(" = ", ": ", 1) if line.startswith("lxc.") else line for line in lines]
    out = head + new
    rest = all_lines[end:]
    if rest:
        out += [""] + rest
    return "\n".join(out) + "\n"


def check_lines(lines):
    """Raise ValueError unless every line is one ``lxc.key = value`` line that LXC reads as written."""
    for line in lines:
        key = _key(line)
        if key is None or not key.startswith("lxc.") or " " in key:
            raise ValueError("raw LXC line %r is not 'lxc.key = value'" % (line,))
        if any(ch in line for ch in "\n\r\0"):
            raise ValueError("raw LXC line for %s contains a newline, carriage return or NUL: LXC would read it "
                             "as more than one line (%r)" % (key, line))


def apply(vmid, lines, directory=DEFAULT_DIR, check_mode=False, managed=MANAGED_KEYS):
    """Write ``lines`` (``lxc.key = value``) into the container's conf in place of the ``managed`` keys; returns
    whether it changed."""
    if not os.path.isdir(directory):
        raise OSError("raw_lxc needs the module to run on the Proxmox VE node that has the container (no %s)"
                      % directory)
    path = os.path.join(directory, "%d.conf" % int(vmid))
    with open(path) as handle:
        text = handle.read()
    new = merged(text, lines, managed)
    if new == text:
        return False
    if not check_mode:
        with open(path, "w") as handle:
            handle.write(new)
    return True
