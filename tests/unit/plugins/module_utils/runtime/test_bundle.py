"""Unit tests of the check bundle's helpers (no runtime is started)."""

import json
import os

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import bundle


SPEC = {
    "ociVersion": "1.0.0",
    "process": {"terminal": True, "args": ["sh"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}, "namespaces": [{"type": "pid"}]},
}


def test_adjust_spec_makes_a_quiet_readonly_bundle_without_resources():
    out = bundle.adjust_spec(SPEC, ["/bin/echo", "hi"], host_binds=["/usr"])
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
    assert bundle.is_static_elf(_elf(tmp_path / "static", False))
    assert not bundle.is_static_elf(_elf(tmp_path / "dynamic", True))
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not bundle.is_static_elf(str(tmp_path / "script"))
    assert not bundle.is_static_elf(str(tmp_path / "missing"))


def _trivial(tmp_path, dynamic):
    """The bundle made with a busybox that is static or not, and its config."""
    info = bundle.make_trivial_bundle(str(tmp_path / "b"), ["echo", "x"], json.dumps(SPEC),
                                      busybox=_elf(tmp_path / "busybox", dynamic))
    return info, json.loads((tmp_path / "b" / "config.json").read_text())


def test_trivial_bundle_with_static_busybox(tmp_path):
    info, config = _trivial(tmp_path, False)
    assert info["kind"] == "busybox"
    assert config["process"]["args"] == ["/bin/echo", "x"]
    assert os.readlink(str(tmp_path / "b" / "rootfs" / "bin" / "echo")) == "busybox"
    assert (tmp_path / "b" / "rootfs" / "bin" / "busybox").read_bytes() == (tmp_path / "busybox").read_bytes()


def test_trivial_bundle_falls_back_to_host_binds(tmp_path):
    info, config = _trivial(tmp_path, True)
    assert info["kind"] == "host"
    assert config["process"]["args"] == ["echo", "x"]
    binds = [m["destination"] for m in config["mounts"] if m["type"] == "bind"]
    assert "/usr" in binds
    for top in ("bin", "lib"):
        host = "/" + top
        if os.path.islink(host):
            assert os.readlink(str(tmp_path / "b" / "rootfs" / top)) == os.readlink(host)
            assert host not in binds
