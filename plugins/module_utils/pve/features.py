# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Proxmox VE node can do, from its ``GET /version`` answer.

9.1 added the LXC config keys ``entrypoint`` and ``env``, the native import
of OCI archives given as ``ostemplate`` and ``POST .../oci-registry-pull``;
8.x has none of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError

_VERSION = re.compile(r"^\s*(?:pve-manager/)?(\d+)\.(\d+)(?:[.\-](\d+))?")

OCI_RELEASE = (9, 1)


def parse_version(text):
    """``"9.1.1"`` -> ``(9, 1, 1)``; also takes ``"8.4"`` and ``"pve-manager/8.4.1/..."``."""
    match = _VERSION.match(str(text or ""))
    if not match:
        raise ValueError("not a Proxmox VE version: %r" % (text,))
    return tuple(int(part or 0) for part in match.groups())


class PveFeatures:
    """Feature switches of one node; ``version`` is the parsed pve-manager version."""

    def __init__(self, version, release=None, info=None):
        self.version = tuple(version)
        self.release = release
        self.info = dict(info or {})

    @classmethod
    def from_version_info(cls, info):
        """From the ``data`` of ``GET /version`` (``version`` is the pve-manager version)."""
        info = info or {}
        text = info.get("version") or info.get("release")
        return cls(parse_version(text), info.get("release"), info)

    def at_least(self, *wanted):
        return self.version[:len(wanted)] >= tuple(wanted)

    @property
    def entrypoint_env(self):
        """The LXC config keys ``entrypoint`` (lxc.init.cmd) and ``env``."""
        return self.at_least(*OCI_RELEASE)

    @property
    def oci_import(self):
        """An OCI archive given as ``ostemplate`` is imported natively."""
        return self.at_least(*OCI_RELEASE)

    @property
    def oci_registry_pull(self):
        """``POST /nodes/{node}/storage/{storage}/oci-registry-pull``."""
        return self.at_least(*OCI_RELEASE)

    def as_dict(self):
        return {"version": ".".join(str(p) for p in self.version), "release": self.release,
                "entrypoint_env": self.entrypoint_env, "oci_import": self.oci_import,
                "oci_registry_pull": self.oci_registry_pull}

    def __repr__(self):
        return "PveFeatures(%s)" % ", ".join("%s=%r" % item for item in sorted(self.as_dict().items()))


# The LXC each Proxmox VE release ships (lxc-pve): 8.0 and 8.1 LXC 5.0, 8.2 and later LXC 6.0.
LXC_BY_RELEASE = (((8, 2), "6.0"), ((0, 0), "5.0"))


def node_packages(client, node):
    """{package: version} of ``node``'s important Proxmox packages (``GET /nodes/{node}/apt/versions``), or None
    where the user lacks Sys.Audit on the node."""
    try:
        packages = client.get("/nodes/%s/apt/versions" % node) or []
    except PveApiError as exc:
        if exc.status not in (403, 501):
            raise
        return None
    return dict((p.get("Package"), p.get("Version")) for p in packages if p.get("Package") and p.get("Version"))


def node_features(client, node):
    """PveFeatures of ``node`` itself (``GET /nodes/{node}/version``): in a cluster mid-upgrade it may run another
    version than the API host."""
    return PveFeatures.from_version_info(client.get("/nodes/%s/version" % node))


# pve-container 6.1.0 (2026-01) made the OCI import honour the image's User (PVE/LXC/Create.pm resolve_oci_user)
IMPORT_USER_CONTAINER = (6, 1, 0)


def import_sets_user(packages):
    """Does the node's OCI import set the image's User?  True/False from its pve-container version, None when
    unknown (``packages`` None: no Sys.Audit)."""
    try:
        return parse_version((packages or {}).get("pve-container")) >= IMPORT_USER_CONTAINER
    except ValueError:
        return None


def node_lxc_version(client, node, packages=False):
    """The LXC version ``node`` runs its containers with, e.g. ``"6.0.5"``.

    Read from the node's ``lxc-pve`` package (``GET /nodes/{node}/apt/versions``, which needs Sys.Audit on
    the node); where that is not allowed or not listed, from the node's own release (``GET
    /nodes/{node}/version``: the node, not the API host, which may run another version mid-upgrade).
    ``packages``: node_packages' answer when already read.
    """
    if packages is False:
        packages = node_packages(client, node)
    try:
        return ".".join(str(part) for part in parse_version((packages or {}).get("lxc-pve")))
    except ValueError:
        pass  # not readable or not listed
    release = node_features(client, node).version
    return next(lxc for first, lxc in LXC_BY_RELEASE if release[:2] >= first)
