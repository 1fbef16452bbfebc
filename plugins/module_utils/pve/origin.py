# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a container was built from, recorded in its description (the Notes of the Proxmox VE GUI).

``lxc_container`` writes one line at create time::

    lxcri.proxmox: image=docker.io/library/nginx:1.27 digest=sha256:3b7c...

(``template=local:vztmpl/x.tar.zst`` for a plain template; ``net=<digest>`` when
the template's generated init configures interfaces, see config.app_net).  Proxmox VE keeps
the description as comment lines of the config file and copies it to clones,
so a linked clone of a template carries its image too.  The line is read back
to refuse taking a container over for another image, and by anyone listing
containers (the inventory).  Pure functions, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import app_net_digest

PREFIX = "lxcri.proxmox:"
_LINE = re.compile(r"^lxcri\.proxmox:((?:\s+[a-z]+=\S+)+)\s*$")
_FIELD = re.compile(r"([a-z]+)=(\S+)")
FIELDS = ("image", "digest", "template", "net")


def record_of(oci=None, ostemplate=None):
    """The record (dict) for a container made from ``oci`` (oci_template's result) or ``ostemplate``, else None."""
    if oci:
        record = {}
        if oci.get("image"):
            record["image"] = str(oci["image"])
        if oci.get("digest"):
            record["digest"] = str(oci["digest"])
        if not record and oci.get("volid"):
            record["template"] = str(oci["volid"])
        if record and (oci.get("runtime") or {}).get("net"):
            # the interfaces its generated init configures, as a digest (config.app_net_digest)
            record["net"] = app_net_digest(oci["runtime"]["net"])
        return record or None
    if ostemplate:
        return {"template": str(ostemplate)}
    return None


def line_of(record):
    """``record`` as its description line (no whitespace can enter a value)."""
    return PREFIX + "".join(" %s=%s" % (key, "".join(str(record[key]).split()))
                            for key in FIELDS if record.get(key))


def parse(description):
    """The record in a container's description (dict), else None."""
    for line in str(description or "").splitlines():
        match = _LINE.match(line.strip())
        if match:
            return dict(_FIELD.findall(match.group(1)))
    return None


def strip(description):
    """``description`` without its record line (and the blank lines that ended with it)."""
    lines = [line for line in str(description or "").splitlines() if not _LINE.match(line.strip())]
    return "\n".join(lines).strip("\n")


def with_record(description, record):
    """The description text: ``description`` (the user's notes, may be empty) then the record's line."""
    text = strip(description)
    if not record:
        return text
    return (text + "\n" if text else "") + line_of(record)


def repository(reference):
    """The repository of an image reference: ``docker.io/library/nginx:1.27@sha256:..`` -> ``docker.io/library/nginx``."""
    ref = str(reference or "").split("@", 1)[0]
    head, sep, tail = ref.rpartition(":")
    if sep and "/" not in tail:
        ref = head
    return ref


def mismatches(record, wanted):
    """What differs between the recorded origin and the one asked for: a list of (what, have, want).

    ``what`` is ``image`` (another repository, or another kind of source), ``digest`` (the same repository at
    another digest: a new version) or ``template`` (another template volume).  Fields only one side knows are
    not compared.
    """
    if not record or not wanted:
        return []
    out = []
    if ("image" in record) != ("image" in wanted) and ("template" in record or "template" in wanted):
        have = record.get("image") or record.get("template")
        want = wanted.get("image") or wanted.get("template")
        return [("image", have, want)]
    if "image" in record and "image" in wanted:
        if repository(record["image"]) != repository(wanted["image"]):
            out.append(("image", record["image"], wanted["image"]))
        elif record.get("digest") and wanted.get("digest") and record["digest"] != wanted["digest"]:
            out.append(("digest", record["digest"], wanted["digest"]))
    elif "template" in record and "template" in wanted and record["template"] != wanted["template"]:
        out.append(("template", record["template"], wanted["template"]))
    return out
