"""The runtime driver running real bundles through libcrun (python_crun) and the crun CLI."""

import os
import shutil
import time
import uuid

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect, driver
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.bundle import make_trivial_bundle, spec_text
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.check import check_bundle


@pytest.fixture
def libcrun(bed):
    lib = bed["libcrun"]["library"]
    return {"library": lib, "python_crun_dir": driver.python_crun_dir(lib)}


@pytest.fixture
def drivers(bed, libcrun, tmp_path):
    crun = shutil.which("crun")
    assert crun, "the test bed installs crun"
    plan = driver.isolation_plan(detect.cgroup_layout()["layout"])
    root = str(tmp_path / "state")
    made = {
        "libcrun": driver.CrunDriver("libcrun", libcrun=libcrun["library"], python_crun_dir=libcrun["python_crun_dir"],
                                     state_root=root, private_cgroup2=plan["private_cgroup2"]),
        "cli": driver.CrunDriver("cli", crun=crun, state_root=root, private_cgroup2=plan["private_cgroup2"],
                                 cgroup_manager=plan["cgroup_manager"]),
    }
    yield made
    for drv in made.values():
        drv.close()


def bundle(tmp_path, args, busybox="/bin/busybox"):
    directory = str(tmp_path / ("bundle-" + uuid.uuid4().hex[:8]))
    return make_trivial_bundle(directory, args, spec_text(shutil.which("crun")), busybox=busybox)


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_run_returns_output_and_exit_status(drivers, tmp_path, backend):
    drv = drivers[backend]
    out = str(tmp_path / "out")
    ok = bundle(tmp_path, ["echo", "hello-" + backend])
    assert drv.run("t-ok-" + backend, ok["bundle"], output=out) == 0
    with open(out) as handle:
        assert handle.read() == "hello-%s\n" % backend
    failing = bundle(tmp_path, ["sh", "-c", "exit 7"])
    assert drv.run("t-fail-" + backend, failing["bundle"], output=str(tmp_path / "out2")) == 7


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_lifecycle(drivers, tmp_path, backend):
    drv = drivers[backend]
    b = bundle(tmp_path, ["sh", "-c", "echo $$; sleep 60"])
    cid = "t-life-" + backend
    out = str(tmp_path / "out")
    drv.create(cid, b["bundle"], output=out)
    state = drv.state(cid)
    assert state["status"] == "created" and state["id"] == cid
    assert os.path.realpath(state["bundle"]) == os.path.realpath(b["bundle"])
    drv.start(cid)
    assert drv.state(cid)["status"] == "running"
    deadline = time.monotonic() + 10
    while not os.path.getsize(out) and time.monotonic() < deadline:
        time.sleep(0.01)
    drv.kill(cid, "KILL")
    assert drv.wait(cid, timeout=10)["status"] == "stopped"
    drv.delete(cid)
    with pytest.raises(driver.OciRuntimeError):
        drv.state(cid)
    with open(out) as handle:
        assert handle.read().strip() == "1"  # the container's own PID namespace


def test_both_backends_share_the_runtime_state(drivers, tmp_path):
    b = bundle(tmp_path, ["sh", "-c", "sleep 60"])
    drivers["libcrun"].create("t-shared", b["bundle"])
    assert drivers["cli"].state("t-shared")["status"] == "created"
    drivers["cli"].start("t-shared")
    assert drivers["libcrun"].state("t-shared")["status"] == "running"
    drivers["libcrun"].delete("t-shared", force=True)
    with pytest.raises(driver.OciRuntimeError, match="t-shared"):
        drivers["cli"].state("t-shared")


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_errors_are_reported(drivers, tmp_path, backend):
    with pytest.raises(driver.OciRuntimeError, match="no-such-container"):
        drivers[backend].start("no-such-container")
    b = bundle(tmp_path, ["true"])
    drivers[backend].create("t-twice", b["bundle"])
    try:
        with pytest.raises(driver.OciRuntimeError):
            drivers[backend].create("t-twice", b["bundle"])
    finally:
        drivers[backend].delete("t-twice", force=True)


@pytest.mark.parametrize("backend", ["libcrun", "cli"])
def test_check_with_host_binds(drivers, tmp_path, backend):
    result = check_bundle(drivers[backend], shutil.which("crun"), message="m-" + backend, busybox=None,
                          workdir=str(tmp_path))
    assert result["bundle_kind"] == "host"
    assert result["run"] == {"exit_status": 0, "output": "m-" + backend}
    assert result["lifecycle"] == ["created", "stopped"]


def test_caller_keeps_its_mount_namespace(drivers, tmp_path):
    before = os.readlink("/proc/self/ns/mnt")
    cgroup_before = detect.cgroup_layout()
    drivers["libcrun"].run("t-ns", bundle(tmp_path, ["true"])["bundle"])
    agent = drivers["libcrun"].proc.pid
    assert os.readlink("/proc/self/ns/mnt") == before
    assert detect.cgroup_layout() == cgroup_before
    if cgroup_before["layout"] == "hybrid":
        assert os.readlink("/proc/%d/ns/mnt" % agent) != before


def test_selection_falls_back_to_the_cli_when_libcrun_does_not_load(bed, tmp_path):
    prefix = tmp_path / "9.9.9"
    (prefix / "lib" / "python3" / "dist-packages").mkdir(parents=True)
    (prefix / "lib" / "libcrun.so.0").write_bytes(b"not an ELF file")
    (prefix / "lib" / "python3" / "dist-packages" / "python_crun.so").write_bytes(b"")
    drv, sel = driver.select_driver("auto", [str(prefix / "lib" / "libcrun.so.0")], state_root=str(tmp_path / "s"),
                                    find_library=lambda name: None)
    try:
        assert sel["backend"] == "cli" and sel["fallback_from"] == "libcrun"
        assert "failed to load" in sel["reason"] and "9.9.9" in sel["reason"]
        assert check_bundle(drv, shutil.which("crun"))["backend"] == "cli"
    finally:
        drv.close()
    with pytest.raises(driver.OciRuntimeError, match="failed to load"):
        driver.select_driver("libcrun", [str(prefix / "lib" / "libcrun.so.0")], find_library=lambda name: None)


def test_selection_prefers_the_test_bed_libcrun(bed, tmp_path):
    drv, sel = driver.select_driver("auto", [bed["libcrun"]["library"]], state_root=str(tmp_path / "s"))
    try:
        assert sel["backend"] == "libcrun" and sel["fallback_from"] is None
        assert sel["agent"]["python_crun"].endswith("python_crun.so")
        result = check_bundle(drv, shutil.which("crun"))
        assert result["run"]["output"] == "lxcri-oci-runtime-check"
    finally:
        drv.close()
