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


def prune(dest, keep, repository, result, check_mode=False):
    """Apply ``keep`` after ``present`` at ``dest`` (a destination.py interface); adds ``pruned`` to ``result``
    (what the destination calls the templates: paths or volids)."""
    regex = family_regex(repository, result["filename"], result["digest"])
    doomed = choose(dest.family(regex), keep, result["filename"])
    result["pruned"] = []
    for filename in doomed:
        result["pruned"].append(dest.address(filename))
        if not check_mode:
            with dest.lock(filename[:-len(dest.extension)]):
                dest.delete(filename)
    if doomed:
        result["changed"] = True
    return result
