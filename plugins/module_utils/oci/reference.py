# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references and source strings, normalised the way Docker does.

``nginx`` -> ``docker.io/library/nginx:latest``; the first component is a
registry host only when it has a ``.`` or ``:``, is ``localhost``, or has
upper-case letters.  A reference may carry a tag and a digest; the digest
then decides what is pulled.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import parse_digest
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import InvalidReference, VerificationError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                     r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
MAX_NAME = 255


class Reference:
    """A normalised registry reference."""

    def __init__(self, domain, path, tag=None, digest=None):
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def name(self):
        return "%s/%s" % (self.domain, self.path)

    @property
    def api_host(self):
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def lookup(self):
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self):
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def with_digest(self, digest):
        return Reference(self.domain, self.path, self.tag, digest)

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(str(self))

    def __repr__(self):
        return "Reference(%r)" % str(self)


def parse_reference(text):
    """Parse and normalise a registry reference; raise InvalidReference."""
    original = text
    if not text or text != text.strip():
        raise InvalidReference("invalid image reference %r: empty or surrounded by spaces" % (original,))
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        try:
            parse_digest(digest)
        except VerificationError as exc:
            raise InvalidReference("invalid image reference %r: %s" % (original, exc))
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference("invalid image reference %r: bad tag %r" % (original, tag))
    parts = text.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, parts = first, parts[1:]
        if not _DOMAIN.match(domain):
            raise InvalidReference("invalid image reference %r: bad registry host %r" % (original, domain))
    else:
        domain = DOCKER_HUB
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and len(parts) == 1:
        parts = ["library"] + parts
    for part in parts:
        if not _COMPONENT.match(part):
            raise InvalidReference(
                "invalid image reference %r: repository component %r must be lower-case letters, "
                "digits and separators (. _ __ -)" % (original, part))
    path = "/".join(parts)
    if len(domain) + 1 + len(path) > MAX_NAME:
        raise InvalidReference("invalid image reference %r: name longer than %d characters" % (original, MAX_NAME))
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, path, tag, digest)


class Source:
    """Where an image comes from: a registry reference or a local layout/archive."""

    REGISTRY = "docker"
    OCI_LAYOUT = "oci-layout"
    OCI_ARCHIVE = "oci-archive"
    DOCKER_ARCHIVE = "docker-archive"

    def __init__(self, kind, reference=None, path=None, tag=None, digest=None, repo_tag=None):
        self.kind = kind
        self.reference = reference  # Reference, for registry sources
        self.path = path
        self.tag = tag
        self.digest = digest
        self.repo_tag = repo_tag  # docker-archive: the RepoTags entry asked for

    def __str__(self):
        if self.kind == self.REGISTRY:
            return str(self.reference)
        text = "%s:%s" % (self.kind, self.path)
        if self.kind == self.DOCKER_ARCHIVE:
            return text + (":" + self.repo_tag if self.repo_tag else "")
        if self.digest:
            return text + "@" + self.digest
        if self.tag:
            return text + ":" + self.tag
        return text


def parse_source(text):
    """Parse ``image``: a reference (optionally ``docker://``) or a local transport.

    Local transports split the path at its first ``:``, as skopeo does, so
    paths cannot contain ``:``.
    """
    if text is None:
        raise InvalidReference("no image given")
    for kind in (Source.OCI_LAYOUT, Source.OCI_ARCHIVE, Source.DOCKER_ARCHIVE):
        prefix = kind + ":"
        if text.startswith(prefix):
            rest = text[len(prefix):]
            if not rest:
                raise InvalidReference("%r: no path after %s" % (text, prefix))
            if kind != Source.DOCKER_ARCHIVE and "@" in rest:
                # /path@sha256:... (or /path:@sha256:...)
                path, dummy, digest_text = rest.partition("@")
                path = path[:-1] if path.endswith(":") else path
                ref = "@" + digest_text
            else:
                path, dummy, ref = rest.partition(":")
            if not path.startswith("/"):
                raise InvalidReference("%r: the path must be absolute" % text)
            if kind == Source.DOCKER_ARCHIVE:
                return Source(kind, path=path, repo_tag=ref or None)
            tag = digest = None
            if ref.startswith("@"):
                digest = ref[1:]
                try:
                    parse_digest(digest)
                except VerificationError as exc:
                    raise InvalidReference("%r: %s" % (text, exc))
            elif ref:
                tag = ref
            if kind == Source.OCI_ARCHIVE and digest:
                raise InvalidReference("%r: oci-archive takes a tag, not a digest" % text)
            return Source(kind, path=path, tag=tag, digest=digest)
    if text.startswith("docker://"):
        text = text[len("docker://"):]
    elif "://" in text:
        raise InvalidReference("%r: unknown transport (use a registry reference, docker://, oci-layout:, "
                               "oci-archive: or docker-archive:)" % text)
    return Source(Source.REGISTRY, reference=parse_reference(text))
