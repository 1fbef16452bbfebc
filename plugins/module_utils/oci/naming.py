# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and identity of templates: what ``oci_template`` calls a template and how it tells two builds apart.

A default name is ``<repository>_<tag>_<short digest>[_<options hash>]``
plus the extension of the format; the identity (image digest, platform,
every option that shapes the output, the engine version) is what a sidecar
records, so an unchanged template is found again without any work.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import TemplateError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import Source

# Bump when the bytes produced for the same image and options change.
ENGINE_VERSION = 2  # 2: wrappers keep Proxmox VE's TERM=linux
EXTENSIONS = {("vztmpl", "zstd"): ".tar.zst", ("vztmpl", "gzip"): ".tar.gz", ("oci-archive", None): ".tar"}
SIDECAR_SUFFIX = ".json"
# what Proxmox VE keeps in an uploaded file's name (pve-storage PVE/Storage.pm normalize_content_filename)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
OUTPUT_OPTIONS = ("format", "compression", "entrypoint", "cmd", "env", "workdir", "user", "stop_signal",
                  "init_wrapper", "lxc_version", "net", "volumes", "init")
NAMING_DEFAULTS = {"entrypoint": None, "cmd": None, "env": None, "workdir": None, "user": None, "stop_signal": None,
                   "init_wrapper": "auto", "net": None, "volumes": None}


def _safe(text):
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return text or "image"


def default_name(source, manifest_digest, params=None):
    """``<repository>_<tag>_<short digest>[_<options hash>]``, safe for Proxmox volume names.

    The options hash is added when an option that changes the content
    differs from its default, so variants of one image never share a name.
    """
    options = dict((key, (params or {}).get(key, value)) for key, value in NAMING_DEFAULTS.items())
    options["volumes"] = sorted(set(options["volumes"])) if options["volumes"] else None
    if ((params or {}).get("init") or "app") != "app":
        options["init"] = params["init"]  # added later: only when set, so the names of app templates stay
    suffix = ""
    if options != NAMING_DEFAULTS:
        suffix = "_" + identity_hash(options)[:8]
    return _base_name(source, manifest_digest) + suffix


def _base_name(source, manifest_digest):
    repo, tag = name_parts(source)
    short = manifest_digest.partition(":")[2][:12]
    return "%s_%s_%s" % (repo, tag, short)


def name_parts(source):
    """The (repository, tag) parts of a default template name, made safe for volume names."""
    if source.kind == Source.REGISTRY:
        ref = source.reference
        repo = ref.path[len("library/"):] if ref.path.startswith("library/") else ref.path
        tag = ref.tag or "digest"
    else:
        repo = os.path.basename(source.path.rstrip("/"))
        for ext in (".tar", ".tar.gz"):
            if repo.endswith(ext):
                repo = repo[:-len(ext)]
        tag = source.tag or (source.repo_tag or "").rpartition(":")[2] or "image"
    return _safe(repo.replace("/", "-")), _safe(tag)


def check_name(name):
    if not NAME_RE.match(name) or len(name) > 200:
        raise TemplateError("name %r: use letters, digits and . _ - only (Proxmox VE keeps only those in an uploaded file's name), "
                            "at most 200 characters, without the extension" % name)
    for ext in (".tar", ".tar.gz", ".tar.zst", ".tar.xz"):
        if name.endswith(ext):
            raise TemplateError("name %r: give it without the extension %s (format and compression add it)"
                                % (name, ext))


def identity(params, manifest_digest, platform, lxc_target):
    options = dict((key, params.get(key)) for key in OUTPUT_OPTIONS)
    options["lxc_version"] = lxc_target
    if options["net"] is None:
        del options["net"]  # added later: the identity of a template without it stays what it was
    if options["volumes"]:
        options["volumes"] = sorted(set(options["volumes"]))
    else:
        del options["volumes"]  # likewise
    if (options.get("init") or "app") == "app":
        del options["init"]  # likewise
    if params["format"] != "vztmpl":
        options["compression"] = None
    return {"manifest_digest": manifest_digest, "platform": str(platform), "options": options,
            "engine": ENGINE_VERSION}


def identity_hash(ident):
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
