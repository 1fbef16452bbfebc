"""Unit tests of oci_runtime_check's engine with the selection and the bundle check faked (no runtime is started)."""

import os

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import check
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError


class FakeDriver:
    backend = "libcrun"
    closed = False

    def close(self):
        self.closed = True


def runner(argv):
    if argv[1:] == ["--version"]:
        return 0, "crun version 1.8.1\ncommit: abc\n", ""
    return 127, "", "not found"


def test_the_result_and_fact_describe_the_checked_backend(tmp_path):
    drv = FakeDriver()
    seen = {}

    def select(mode, search, crun, layout, state_root):
        seen.update(mode=mode, search=search, crun=crun, layout=layout, state_root=state_root)
        return drv, {"backend": "libcrun", "reason": "it loads", "fallback_from": None,
                     "libcrun": {"library": str(tmp_path / "1.8.1" / "lib" / "libcrun.so.0")},
                     "isolation": {"private_cgroup2": True, "cgroup_manager": None}}

    def prove(driver, crun, message, workdir):
        seen.update(crun_given=crun, message=message, workdir=workdir)
        assert os.path.isdir(workdir)
        return {"backend": driver.backend, "bundle_kind": "busybox"}

    result = check.check_runtime(runner, "auto", ["/x"], crun_path="/usr/bin/crun", probe_text="hi",
                                 layout="hybrid", select=select, check=prove)
    assert drv.closed and not os.path.exists(seen["workdir"])
    assert seen["state_root"] == seen["workdir"] + "/state" and seen["message"] == "hi"
    assert result["crun"] == {"path": "/usr/bin/crun", "version": "1.8.1"}
    assert result["libcrun"]["version"] == "1.8.1"
    assert result["fact"] == {"runtime": "libcrun", "reason": "it loads", "fallback_from": None,
                              "libcrun": result["libcrun"], "crun": result["crun"], "cgroup_layout": "hybrid",
                              "private_cgroup2": True, "checked_with": "busybox"}
    assert result["check"] == {"backend": "libcrun", "bundle_kind": "busybox"}


def test_a_failure_carries_what_was_known():
    drv = FakeDriver()

    def prove(driver, crun, message, workdir):
        raise OciRuntimeError("libcrun backend: unexpected lifecycle")

    with pytest.raises(check.RuntimeCheckError, match="unexpected lifecycle") as caught:
        check.check_runtime(runner, crun_path="/usr/bin/crun", layout="v2",
                            select=lambda *a, **k: (drv, {}), check=prove)
    assert drv.closed
    assert caught.value.fields == {"crun": {"path": "/usr/bin/crun", "version": "1.8.1"}, "cgroup_layout": "v2"}
