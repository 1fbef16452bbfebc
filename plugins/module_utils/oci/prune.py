# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci_template``'s ``keep``: the newest N templates of an image repository stay, older ones go.

A template's family is every template with a default name of the same
repository, any tag and digest, the same options hash and the same
extension: ``<repository>_<tag>_<12 hex>[_<8 hex>]<ext>``.  The newest (by
the storage's ``ctime``, or the file's mtime with ``dest``) are kept, the one
just built or found always among them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError


class PruneError(OciError):
    """``keep`` cannot be applied as asked."""

    kind = "prune"


def family_regex(repository, filename, manifest_digest):
    """The names of ``filename``'s family (``filename`` is a default name of ``repository``)."""
    short = manifest_digest.partition(":")[2][:12]
    marker = "_" + short
    at = filename.rfind(marker)
    if at < 0 or not filename.startswith(repository + "_"):
        raise PruneError("keep needs the default template name (<repository>_<tag>_<digest>), not %r" % filename)
    tail = filename[at + len(marker):]
    return re.compile(r"^%s_.+_[0-9a-f]{12}%s$" % (re.escape(repository), re.escape(tail)))


def check_keep(params):
    """Refuse ``keep`` as given before anything is built."""
    if params.get("name"):
        raise PruneError("keep works with the default template names (<repository>_<tag>_<digest>) only: "
                         "drop name")
    if params["keep"] < 1:
        raise PruneError("keep must be at least 1, not %d" % params["keep"])


def choose(entries, keep, current):
    """Names to delete from ``entries`` ((name, ctime) pairs of one family) so that ``keep`` remain.

    Newest first by ctime, then name; ``current`` always stays.
    """
    ordered = sorted(entries, key=lambda item: (item[1], item[0]), reverse=True)
    names = [name for name, dummy in ordered if name != current]
    return sorted(names[keep - 1:])


def _dest_entries(directory, regex):
    out = []
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if regex.match(entry) and os.path.isfile(path):
            out.append((entry, int(os.path.getmtime(path))))
    return out


def prune(manager, publisher, result):
    """Apply ``keep`` after ``present``; adds ``pruned`` to ``result`` (volids or paths)."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import SIDECAR_SUFFIX, name_parts  # pylint: disable=import-outside-toplevel
    params = manager.params
    repository = name_parts(manager.images.source)[0]
    regex = family_regex(repository, result["filename"], result["digest"])
    if publisher is not None:
        entries = publisher.templates(regex)
    else:
        entries = _dest_entries(params["dest"], regex) if os.path.isdir(params["dest"]) else []
    doomed = choose(entries, params["keep"], result["filename"])
    result["pruned"] = []
    for filename in doomed:
        if publisher is not None:
            result["pruned"].append(publisher.volid(filename))
            if not manager.check_mode:
                publisher.delete(filename)
        else:
            path = os.path.join(params["dest"], filename)
            result["pruned"].append(path)
            if not manager.check_mode:
                with manager._lock(filename[:-len(manager.extension)]):  # pylint: disable=protected-access
                    for candidate in (path, path + SIDECAR_SUFFIX):
                        if os.path.lexists(candidate):
                            os.unlink(candidate)
    if doomed:
        result["changed"] = True
    return result
