# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials from Docker ``config.json`` / containers ``auth.json`` files."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError

_HUB_KEYS = ("index.docker.io", "registry-1.docker.io")


class Credentials:
    def __init__(self, username=None, password=None, identity_token=None):
        self.username = username
        self.password = password
        self.identity_token = identity_token

    def __bool__(self):
        return bool(self.username or self.identity_token)

    __nonzero__ = __bool__

    def __repr__(self):  # never show secrets
        return "Credentials(username=%r, password=%s, identity_token=%s)" % (
            self.username, "***" if self.password else None, "***" if self.identity_token else None)


def _normalise(key):
    """``https://index.docker.io/v1/`` -> ``index.docker.io``; ``host/repo`` stays."""
    key = key.split("://", 1)[-1].rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key.rsplit("/", 1)[0]
    return key


def load_auth_file(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, IOError) as exc:
        raise OciError("cannot read auth_file %s: %s" % (path, exc))
    except ValueError as exc:
        raise OciError("auth_file %s is not valid JSON: %s" % (path, exc))


def lookup(config, domain, repository=None):
    """Credentials for ``domain`` (and optionally ``domain/repository``) from a parsed file.

    containers-auth.json allows keys narrowed to a repository; the most
    specific key wins.  Credential helpers cannot be run here and are reported.
    """
    auths = config.get("auths") or {}
    candidates = []
    if repository:
        parts = repository.split("/")
        for i in range(len(parts), 0, -1):
            candidates.append("%s/%s" % (domain, "/".join(parts[:i])))
    candidates.append(domain)
    if domain == "docker.io":
        candidates.extend(_HUB_KEYS)
    by_key = dict((_normalise(key), value) for key, value in auths.items())
    for key in candidates:
        entry = by_key.get(key)
        if entry:
            return _entry_credentials(entry, key)
    helpers = config.get("credHelpers") or {}
    if domain in helpers or config.get("credsStore"):
        if domain in helpers or not auths:
            raise OciError("the auth file names a credential helper for %s; helpers cannot run here: "
                           "give registry_username/registry_password or an auth file with 'auth' entries" % domain)
    return Credentials()


def _entry_credentials(entry, key):
    token = entry.get("identitytoken")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise OciError("the auth file entry for %s has an 'auth' value that is not base64 of user:password" % key)
        user, sep, password = decoded.partition(":")
        if not sep:
            raise OciError("the auth file entry for %s has an 'auth' value without ':'" % key)
        return Credentials(user, password, token)
    if entry.get("username"):
        return Credentials(entry.get("username"), entry.get("password"), token)
    return Credentials(identity_token=token)
