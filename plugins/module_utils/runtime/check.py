# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that a runtime backend works: the trivial bundle run once, then through its lifecycle."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.bundle import make_trivial_bundle, spec_text
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError


def check_bundle(driver, crun, message="lxcri-oci-runtime-check", workdir=None, busybox="/bin/busybox",
                 container_prefix="lxcri-check"):
    """Prove ``driver`` works: a trivial bundle through run, then create/start/wait/delete.

    Returns ``{"backend", "bundle_kind", "run": {"exit_status", "output"}, "lifecycle": [states]}``;
    raises OciRuntimeError when anything fails or the output is not ``message``.
    """
    work = tempfile.mkdtemp(prefix="lxcri-check-", dir=workdir)
    suffix = "%d-%s" % (os.getpid(), os.path.basename(work).rsplit("-", 1)[-1])
    try:
        bundle = make_trivial_bundle(os.path.join(work, "bundle"), ["echo", message],
                                     spec_text(crun), busybox=busybox)
        output = os.path.join(work, "output")
        status = driver.run("%s-run-%s" % (container_prefix, suffix), bundle["bundle"], output=output)
        with open(output) as handle:
            text = handle.read().strip()
        if status != 0 or text != message:
            raise OciRuntimeError("%s backend: the check bundle exited %s and printed %r (expected 0 and %r)" % (
                driver.backend, status, text, message))
        cid = "%s-%s" % (container_prefix, suffix)
        seen = []
        driver.create(cid, bundle["bundle"], output=output)
        try:
            seen.append(driver.state(cid)["status"])
            driver.start(cid)
            seen.append(driver.wait(cid)["status"])
        finally:
            driver.delete(cid, force=True)
        if seen != ["created", "stopped"]:
            raise OciRuntimeError("%s backend: unexpected lifecycle %s" % (driver.backend, seen))
        return {"backend": driver.backend, "bundle_kind": bundle["kind"],
                "run": {"exit_status": status, "output": text}, "lifecycle": seen}
    finally:
        shutil.rmtree(work, ignore_errors=True)
