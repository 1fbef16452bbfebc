"""Unit tests of the runtime driver's pure logic (no runtime is started)."""

import json
import os

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


def test_cli_argv_shapes():
    assert driver.cli_argv("/usr/bin/crun", "/r", "create", "c1", bundle="/b", log="/l") == [
        "/usr/bin/crun", "--root", "/r", "--log=file:/l", "create", "--bundle", "/b", "c1"]
    assert driver.cli_argv("crun", "/r", "delete", "c1", force=True) == ["crun", "--root", "/r", "delete", "--force", "c1"]
    assert driver.cli_argv("crun", "/r", "delete", "c1") == ["crun", "--root", "/r", "delete", "c1"]
    assert driver.cli_argv("crun", "/r", "kill", "c1", signal="KILL")[-2:] == ["c1", "KILL"]
    assert driver.cli_argv("crun", "/r", "kill", "c1")[-1] == "TERM"
    assert driver.cli_argv("crun", "/r", "run", "c", bundle="/b", cgroup_manager="disabled")[3:5] == [
        "--cgroup-manager=disabled", "run"]
    with pytest.raises(ValueError):
        driver.cli_argv("crun", "/r", "create", "c1")
    with pytest.raises(ValueError):
        driver.cli_argv("crun", "/r", "exec", "c1")


SPEC = {
    "ociVersion": "1.0.0",
    "process": {"terminal": True, "args": ["sh"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}, "namespaces": [{"type": "pid"}]},
}


def test_adjust_spec_makes_a_quiet_readonly_bundle_without_resources():
    out = driver.adjust_spec(SPEC, ["/bin/echo", "hi"], host_binds=["/usr"])
    assert out["process"]["terminal"] is False
    assert out["process"]["args"] == ["/bin/echo", "hi"]
    assert out["root"] == {"path": "rootfs", "readonly": True}
    assert "resources" not in out["linux"]
    assert out["linux"]["namespaces"] == [{"type": "pid"}]
    assert out["mounts"][-1] == {"destination": "/usr", "type": "bind", "source": "/usr",
                                 "options": ["rbind", "ro", "nosuid", "nodev"]}
    assert SPEC["process"]["terminal"] is True  # the input is not modified


def _elf(path, interp):
    """A minimal 64-bit little-endian ELF header with one program header."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2
    header[5] = 1
    header[32:40] = (64).to_bytes(8, "little")
    header[54:56] = (56).to_bytes(2, "little")
    header[56:58] = (1).to_bytes(2, "little")
    phdr = bytearray(56)
    phdr[:4] = (3 if interp else 1).to_bytes(4, "little")
    path.write_bytes(bytes(header) + bytes(phdr))
    return str(path)


def test_is_static_elf(tmp_path):
    assert driver.is_static_elf(_elf(tmp_path / "static", False))
    assert not driver.is_static_elf(_elf(tmp_path / "dynamic", True))
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not driver.is_static_elf(str(tmp_path / "script"))
    assert not driver.is_static_elf(str(tmp_path / "missing"))


def test_trivial_bundle_with_static_busybox(tmp_path):
    busybox = _elf(tmp_path / "busybox", False)
    info = driver.make_trivial_bundle(str(tmp_path / "b"), ["echo", "x"], json.dumps(SPEC), busybox=busybox)
    assert info["kind"] == "busybox"
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/echo", "x"]
    assert os.readlink(str(tmp_path / "b" / "rootfs" / "bin" / "echo")) == "busybox"
    assert (tmp_path / "b" / "rootfs" / "bin" / "busybox").read_bytes() == (tmp_path / "busybox").read_bytes()


def test_trivial_bundle_falls_back_to_host_binds(tmp_path):
    dynamic = _elf(tmp_path / "busybox", True)
    info = driver.make_trivial_bundle(str(tmp_path / "b"), ["echo", "x"], json.dumps(SPEC), busybox=dynamic)
    assert info["kind"] == "host"
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["process"]["args"] == ["echo", "x"]
    binds = [m["destination"] for m in config["mounts"] if m["type"] == "bind"]
    assert "/usr" in binds
    for top in ("bin", "lib"):
        host = "/" + top
        if os.path.islink(host):
            assert os.readlink(str(tmp_path / "b" / "rootfs" / top)) == os.readlink(host)
            assert host not in binds


def test_messages_round_trip_and_reject_garbage():
    assert driver.decode_message(driver.encode_message({"ok": True, "result": [1]})) == {"ok": True, "result": [1]}
    with pytest.raises(driver.OciRuntimeError):
        driver.decode_message(b"not json")
    with pytest.raises(driver.OciRuntimeError):
        driver.decode_message(b"[1, 2]")


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
