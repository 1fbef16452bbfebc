"""Unit tests of the runtime driver's pure logic: the isolation plan and the choice of backend (no runtime is started)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import detect, driver


@pytest.fixture(autouse=True)
def no_host_libcrun(monkeypatch):
    """Only the candidates a test names, not a libcrun the role built on this host."""
    monkeypatch.setattr(detect, "DEFAULT_LIBCRUN_GLOBS", ())


def test_isolation_plan_per_layout():
    assert driver.isolation_plan("hybrid")["private_cgroup2"] is True
    assert driver.isolation_plan("hybrid")["cgroup_manager"] is None
    assert driver.isolation_plan("v2") == {"private_cgroup2": False, "cgroup_manager": None,
                                           "note": "cgroup v2: crun runs as is"}
    assert driver.isolation_plan("v1")["private_cgroup2"] is False
    assert driver.isolation_plan("none")["cgroup_manager"] == "disabled"


def _prefix(tmp_path, version, binding=True):
    lib = tmp_path / version / "lib"
    (lib / "python3" / "dist-packages").mkdir(parents=True)
    (lib / "libcrun.so.0").write_bytes(b"")
    if binding:
        (lib / "python3" / "dist-packages" / "python_crun.so").write_bytes(b"")
    return str(lib / "libcrun.so.0")


def test_libcrun_choice_needs_a_binding_and_prefers_newer(tmp_path):
    _prefix(tmp_path, "1.8.1")
    _prefix(tmp_path, "1.10.0", binding=False)
    choice, skipped = driver.libcrun_choice([str(tmp_path / "*" / "lib" / "libcrun.so.0")],
                                            find_library=lambda name: "libcrun.so.1")
    assert choice["prefix"] == str(tmp_path / "1.8.1")
    assert choice["python_crun_dir"] == str(tmp_path / "1.8.1" / "lib" / "python3" / "dist-packages")
    assert any("1.10.0" in s and "no python_crun" in s for s in skipped)
    none, skipped = driver.libcrun_choice([], find_library=lambda name: "libcrun.so.1")
    assert none is None
    assert any("dynamic linker" in s for s in skipped)


class FakeDriver:
    """Records construction; opening fails for the backends named in ``broken``."""

    broken = ()
    made = []

    def __init__(self, backend, **kwargs):
        self.backend = backend
        self.kwargs = kwargs
        FakeDriver.made.append(self)

    def open(self):
        if self.backend in self.broken:
            raise driver.OciRuntimeError("agent died: boom")
        return {"pid": 1}


@pytest.fixture
def fake(tmp_path):
    FakeDriver.made = []
    FakeDriver.broken = ()
    return _prefix(tmp_path, "1.8.1")


def _select(mode, lib, **kwargs):
    return driver.select_driver(mode, [lib], crun="/usr/bin/crun", layout="hybrid", driver_class=FakeDriver,
                                find_library=lambda name: None, **kwargs)


def test_select_prefers_libcrun(fake):
    drv, sel = _select("auto", fake)
    assert drv.backend == "libcrun" and sel["backend"] == "libcrun"
    assert sel["fallback_from"] is None
    assert drv.kwargs["private_cgroup2"] is True
    assert drv.kwargs["libcrun"] == fake


def test_select_falls_back_when_libcrun_fails_to_load(fake):
    FakeDriver.broken = ("libcrun",)
    drv, sel = _select("auto", fake)
    assert drv.backend == "cli"
    assert sel["fallback_from"] == "libcrun"
    assert "failed to load" in sel["reason"] and "boom" in sel["reason"]
    assert [d.backend for d in FakeDriver.made] == ["libcrun", "cli"]


def test_select_libcrun_mode_fails_instead_of_falling_back(fake):
    FakeDriver.broken = ("libcrun",)
    with pytest.raises(driver.OciRuntimeError, match="boom"):
        _select("libcrun", fake)


def test_select_cli_mode_and_missing_libcrun(tmp_path):
    FakeDriver.made = []
    FakeDriver.broken = ()
    drv, sel = _select("cli", str(tmp_path / "none.so"))
    assert drv.backend == "cli" and sel["reason"] == "the CLI was asked for (mode cli)"
    assert [d.backend for d in FakeDriver.made] == ["cli"]
    drv, sel = _select("auto", str(tmp_path / "none.so"))
    assert drv.backend == "cli" and sel["reason"].startswith("no libcrun with a python_crun binding")


def test_select_without_crun_fails_with_both_reasons(tmp_path):
    with pytest.raises(driver.OciRuntimeError, match="crun not found.*no libcrun"):
        driver.select_driver("auto", [], crun=None, layout="v2", driver_class=FakeDriver,
                             which=lambda name: None, find_library=lambda name: None)


def test_driver_argument_checks():
    with pytest.raises(ValueError):
        driver.CrunDriver("runc")
    with pytest.raises(driver.OciRuntimeError):
        driver.CrunDriver("cli")
    with pytest.raises(driver.OciRuntimeError):
        driver.CrunDriver("libcrun", libcrun="/x.so")
    assert driver.CrunDriver("libcrun", libcrun="/x.so", python_crun_dir="/d",
                             cgroup_manager="disabled").config["cgroup_manager"] is None
