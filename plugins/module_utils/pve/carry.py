# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Proxmox VE node can carry of an image's runtime over the API alone.

One rule for both sides: ``lxc_container`` refuses a template it could not
run as the image asks, and ``oci_template`` (``require_runnable``) refuses to
upload such a template in the first place.  The facts: before 9.1 there are
no ``entrypoint``/``env`` keys (a plain template starts its own /sbin/init)
and no OCI archive import (an archive would be unpacked as the root file
system); on 9.1+ the API still cannot set ``lxc.init.uid/gid/groups`` or
``lxc.init.cwd`` on a plain template, which Proxmox VE's OCI import does set.
A template with the collection's init wrapper carries all of it itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ROOT_USERS = ("0", "0:0", "root", "root:root")


def api_refusal(features, fmt, wrapper, runtime=None, hint="or run it on the node with raw_lxc: true"):
    """``(problem, undecided)``: why a container from this template could not run the image over the API alone.

    ``features``: the node's PveFeatures; ``fmt``: ``vztmpl`` or ``oci-archive``; ``wrapper``: the template's
    init wrapper kind (``init`` or None); ``runtime``: oci_template's ``runtime`` (None: judge from the options
    alone); ``hint``: the caller's way out, appended to a problem.  ``problem`` is the reason and what to do,
    or None; ``undecided`` says what only the layers can tell (check mode, a named or unresolved user), or None.
    """
    release = features.release or ".".join(str(part) for part in features.version)
    if fmt == "oci-archive" and not features.oci_import:
        return ("Proxmox VE %s cannot import an OCI archive (9.1 added that), it would unpack the archive's files "
                "as the root file system: build format: vztmpl with init_wrapper: always instead" % release, None)
    if not features.entrypoint_env:
        if wrapper != "init":
            return ("Proxmox VE %s has no entrypoint/env container keys, so a plain template starts its own "
                    "/sbin/init, not the image's command: build it with init_wrapper: always (a generated "
                    "/sbin/init runs the command), %s" % (release, hint), None)
        return None, None
    if fmt != "vztmpl" or wrapper == "init" or runtime is None:
        return None, None
    needs = []
    user = str(runtime.get("user") or "0")
    if runtime.get("uid") is None and user not in ROOT_USERS:
        # a named user before the layers are read (check mode) is taken for a non-root one
        needs.append("user %s" % user)
    for key in ("uid", "gid"):
        if runtime.get(key):
            needs.append("%s %s" % (key, runtime[key]))
    if runtime.get("groups"):
        needs.append("supplementary groups %s" % ",".join(str(g) for g in runtime["groups"]))
    if (runtime.get("cwd") or "/") != "/":
        needs.append("working directory %s" % runtime["cwd"])
    if needs:
        return ("the image runs with %s, which the Proxmox VE API cannot set on a plain template: build it with "
                "format: oci-archive (Proxmox VE's import sets the user and working directory) or "
                "init_wrapper: always, %s" % (", ".join(needs), hint), None)
    unknown = [key for key in ("uid", "gid", "groups") if runtime.get(key) is None]
    if unknown:
        return None, ("whether the image runs as root without supplementary groups (its %s) is only known from its "
                      "/etc/passwd and /etc/group, in the layers" % "/".join(unknown))
    return None, None
