# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that a runtime backend works: the trivial bundle run once, then through its lifecycle.

:func:`check_bundle` proves one driver; :func:`check_runtime` is the engine of
``oci_runtime_check``: it selects a backend as :func:`driver.select_driver`
does, proves it, and returns the module's result with the ``fact`` the
oci_runtime role records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.bundle import make_trivial_bundle, spec_text
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.driver import select_driver
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError

DEFAULT_PROBE_TEXT = "lxcri-oci-runtime-check"


class RuntimeCheckError(OciRuntimeError):
    """The check failed; ``fields`` are the result keys known by then (``crun``, ``cgroup_layout``)."""

    kind = "runtime_check"

    def __init__(self, message, fields):
        super(RuntimeCheckError, self).__init__(message, **fields)
        self.fields = fields


def check_bundle(driver, crun, message=DEFAULT_PROBE_TEXT, workdir=None, busybox="/bin/busybox",
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


def check_runtime(runner, mode="auto", libcrun_search=(), crun_path=None, probe_text=DEFAULT_PROBE_TEXT,
                  layout=None, select=select_driver, check=check_bundle):
    """Select a backend (``mode`` as :func:`driver.select_driver` takes it), prove it, and describe it.

    ``runner(argv) -> (rc, out, err)`` reads versions.  The state root lives in a temporary
    directory: nothing outlives the check.  Returns the module's result without ``changed``;
    raises :class:`RuntimeCheckError` when no backend can be selected or the check fails.
    """
    crun_path = crun_path or detect.default_which("crun")
    crun_version = None
    if crun_path:
        rc, out, dummy = runner([crun_path, "--version"])
        crun_version = detect.parse_crun_version(out)["version"] if rc == 0 else None
    crun = {"path": crun_path, "version": crun_version}
    if layout is None:
        layout = detect.cgroup_layout()["layout"]
    work = tempfile.mkdtemp(prefix="lxcri-oci-runtime-check-")
    try:
        try:
            driver, selection = select(mode, libcrun_search, crun=crun_path, layout=layout,
                                       state_root=work + "/state")
            try:
                checked = check(driver, crun_path or "crun", message=probe_text, workdir=work)
            finally:
                driver.close()
        except OciRuntimeError as exc:
            raise RuntimeCheckError(str(exc), {"crun": dict(crun), "cgroup_layout": layout})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    libcrun = selection["libcrun"]
    if libcrun:
        libcrun = dict(libcrun, version=detect.libcrun_version(libcrun["library"], runner)[0])
    fact = {
        "runtime": selection["backend"],
        "reason": selection["reason"],
        "fallback_from": selection["fallback_from"],
        "libcrun": libcrun,
        "crun": crun,
        "cgroup_layout": layout,
        "private_cgroup2": selection["isolation"]["private_cgroup2"],
        "checked_with": checked["bundle_kind"],
    }
    return {"backend": selection["backend"], "reason": selection["reason"],
            "fallback_from": selection["fallback_from"], "libcrun": libcrun, "crun": crun, "cgroup_layout": layout,
            "isolation": selection["isolation"], "check": checked, "fact": fact}
