# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Platforms (os/architecture/variant) and choosing a manifest from an index."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import PlatformError

# uname -m -> (GOARCH, variant)
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}
# An architecture's variant when an image leaves it out (image-spec / containerd).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


class Platform:
    def __init__(self, os, architecture, variant=None):  # pylint: disable=redefined-builtin
        self.os = os
        self.architecture = architecture
        self.variant = variant

    def __str__(self):
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def __repr__(self):
        return "Platform(%r)" % str(self)

    def __eq__(self, other):
        return isinstance(other, Platform) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def as_dict(self):
        return {"os": self.os, "architecture": self.architecture, "variant": self.variant}

    def matches(self, other):
        """Does a descriptor's platform ``other`` satisfy this requested platform?"""
        if other is None or other.os != self.os or other.architecture != self.architecture:
            return False
        want = self.variant or _DEFAULT_VARIANT.get(self.architecture)
        have = other.variant or _DEFAULT_VARIANT.get(other.architecture)
        if self.variant is None:
            return True  # no variant asked for: any variant of the architecture
        return want == have


def parse_platform(text):
    parts = (text or "").strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise PlatformError("invalid platform %r: use os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"
                            % (text,))
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def host_platform(machine=None):
    machine = machine or os.uname()[4]
    arch, variant = _MACHINES.get(machine, (machine, None))
    return Platform("linux", arch, variant)


def descriptor_platform(descriptor):
    info = descriptor.get("platform")
    if not isinstance(info, dict) or not info.get("os") or not info.get("architecture"):
        return None
    return Platform(info["os"], info["architecture"], info.get("variant"))


def choose_manifest(index, wanted):
    """Pick the descriptor for ``wanted`` from an index's manifests.

    Exact variant matches win over entries that leave the variant out.
    Raises PlatformError naming the platforms the index offers.
    """
    candidates = []
    offered = []
    for desc in index.get("manifests") or []:
        plat = descriptor_platform(desc)
        if plat is None:
            continue  # attestation manifests and the like carry no platform
        offered.append(str(plat))
        if wanted.matches(plat):
            exact = wanted.variant is not None and plat.variant == wanted.variant
            candidates.append((0 if exact else 1, len(candidates), desc, plat))
    if not candidates:
        raise PlatformError("no manifest for platform %s; the image offers: %s"
                            % (wanted, ", ".join(sorted(set(offered))) or "no platforms"))
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2], candidates[0][3]
