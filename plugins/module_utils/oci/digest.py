# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Digests: parsing with a fixed set of algorithms, and verifying streams."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import VerificationError

# image-spec registers sha256 and sha512; anything else is refused rather
# than trusted (an unknown algorithm cannot be verified).
ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


def parse_digest(text):
    """Return ``(algorithm, hex)`` or raise VerificationError."""
    match = _DIGEST.match(text or "")
    if not match:
        raise VerificationError("malformed digest %r" % (text,))
    algo, value = match.groups()
    if algo not in ALGORITHMS:
        raise VerificationError("digest algorithm %r is not accepted (only %s): %s"
                                % (algo, ", ".join(sorted(ALGORITHMS)), text))
    if len(value) != ALGORITHMS[algo] or not re.match(r"^[a-f0-9]+$", value):
        raise VerificationError("malformed %s digest %r" % (algo, text))
    return algo, value


def new_hasher(digest):
    algo, dummy = parse_digest(digest)
    return hashlib.new(algo)


def digest_of(data, algo="sha256"):
    return "%s:%s" % (algo, hashlib.new(algo, data).hexdigest())


def verify_bytes(data, descriptor, what):
    """Check ``data`` against a descriptor's size and digest."""
    expected_size = descriptor.get("size")
    if expected_size is not None and len(data) != expected_size:
        raise VerificationError("%s: size %d does not match the descriptor's %d (%s)"
                                % (what, len(data), expected_size, descriptor.get("digest")))
    algo, value = parse_digest(descriptor.get("digest"))
    actual = hashlib.new(algo, data).hexdigest()
    if actual != value:
        raise VerificationError("%s: digest %s:%s does not match the descriptor's %s"
                                % (what, algo, actual, descriptor.get("digest")))
