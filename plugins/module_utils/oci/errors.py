# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the OCI engine. Every message names what failed and, where it helps, what to do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError


class OciError(LxcriError):
    """Base class; ``str(err)`` is the user-facing message."""

    kind = "oci"


class InvalidReference(OciError):
    """A malformed image reference or source string."""

    kind = "invalid_reference"


class VerificationError(OciError):
    """Content did not match its descriptor (size, digest, diff_id)."""

    kind = "verification"


class RegistryError(OciError):
    """The registry answered with an error or could not be reached."""

    kind = "registry"

    def __init__(self, message, status=None, code=None):
        OciError.__init__(self, message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Authentication required or refused."""

    kind = "auth"


class PlatformError(OciError):
    """No manifest for the requested platform."""

    kind = "platform"


class UnsupportedError(OciError):
    """A media type or format this engine does not handle."""

    kind = "unsupported"


class LimitError(OciError):
    """Input past a bound set on a resource (how far layers decompress); the message names the option to raise."""

    kind = "limit"


class NotExpressible(OciError):
    """An argv word that a given consumer (an LXC version, Proxmox VE) cannot be told exactly.

    ``word_index`` is the position in argv (None when the whole command is at
    fault), ``word`` the word itself, ``reason`` what makes it impossible.
    """

    kind = "not_expressible"

    def __init__(self, word_index, word, reason):
        if word_index is None:
            message = "the command cannot be written: %s" % reason
        else:
            message = "argv[%d] %r cannot be written: %s" % (word_index, word, reason)
        OciError.__init__(self, message)
        self.word_index = word_index
        self.word = word
        self.reason = reason


class LxcConfigError(OciError):
    """A value (environment entry, directory, signal, id) that an LXC or Proxmox VE config cannot carry."""

    kind = "lxc_config"


class WrapperError(OciError):
    """A generated init script cannot do what was asked (no tool to switch user, unusable names, ...)."""

    kind = "wrapper"


class TemplateError(OciError):
    """The template cannot be produced as asked."""

    kind = "template"


class FlattenError(OciError):
    """A layer cannot be merged safely; the message names the layer and the member."""

    kind = "flatten"
