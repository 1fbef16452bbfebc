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
