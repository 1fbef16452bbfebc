# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the OCI engine. Every message names what failed and, where it helps, what to do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class OciError(Exception):
    """Base class; ``str(err)`` is the user-facing message."""


class InvalidReference(OciError):
    """A malformed image reference or source string."""


class VerificationError(OciError):
    """Content did not match its descriptor (size, digest, diff_id)."""


class RegistryError(OciError):
    """The registry answered with an error or could not be reached."""

    def __init__(self, message, status=None, code=None):
        OciError.__init__(self, message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Authentication required or refused."""


class PlatformError(OciError):
    """No manifest for the requested platform."""


class UnsupportedError(OciError):
    """A media type or format this engine does not handle."""
