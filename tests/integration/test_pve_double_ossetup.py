"""The double detects the OS at create as pve-container's PVE/LXC/Setup.pm does (pure part, no containers)."""

import os

import pytest

from pve_double.backend.ossetup import OsDetectError, detect_ostype


def rootfs(tmp_path, files=None, links=None):
    root = tmp_path / "rootfs"
    for path, text in (files or {}).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path, target in (links or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, str(root / path))
    root.mkdir(exist_ok=True)
    return str(root)


@pytest.mark.parametrize("files,links,expected", [
    ({"etc/os-release": 'ID=debian\nVERSION_ID="12"\n'}, {}, "debian"),
    ({"usr/lib/os-release": "ID='alpine'\n"}, {"etc/os-release": "../usr/lib/os-release"}, "alpine"),
    ({"usr/lib/os-release": "ID=ubuntu\n"}, {"etc/os-release": "/usr/lib/os-release"}, "ubuntu"),  # chroot view
    ({"etc/os-release": "ID=rocky\n"}, {}, "centos"),  # Setup.pm $plugin_alias
    ({"etc/os-release": "ID=mystery\n", "etc/debian_version": "12\n"}, {}, "debian"),  # fallback files
    ({"etc/lsb-release": "DISTRIB_ID=Ubuntu\n"}, {}, "ubuntu"),
    ({"usr/lib/os-release": "ID=wolfi\n"}, {}, "unmanaged"),  # no /etc/os-release: falls back with a warning
    ({"bin/app": "x"}, {}, "unmanaged"),  # FROM scratch
])
def test_detection_follows_setup_pm(tmp_path, files, links, expected):
    warnings = []
    assert detect_ostype(rootfs(tmp_path, files, links), {}, warnings.append) == expected


@pytest.mark.parametrize("ident", ["wolfi", "chainguard", "amzn"])
def test_an_unknown_id_with_etc_os_release_fails_the_create(tmp_path, ident):
    root = rootfs(tmp_path, {"etc/os-release": "ID=%s\n" % ident})
    warnings = []
    with pytest.raises(OsDetectError, match="unable to detect OS distribution"):
        detect_ostype(root, {}, warnings.append)
    assert warnings == ["unknown ID '%s' in /etc/os-release file, trying fallback detection" % ident]
    assert detect_ostype(root, {"ostype": "unmanaged"}, warnings.append) == "unmanaged"  # nothing detected


def test_a_symlink_cannot_read_the_hosts_files(tmp_path):
    # /etc/os-release -> /etc/hostname-of-host: resolved inside the rootfs, where it does not exist
    root = rootfs(tmp_path, {}, {"etc/os-release": "/../../../../etc/os-release"})
    assert detect_ostype(root, {}, lambda text: None) == "unmanaged"


def test_a_given_ostype_that_differs_is_warned_about(tmp_path):
    warnings = []
    root = rootfs(tmp_path, {"etc/os-release": "ID=alpine\n"})
    assert detect_ostype(root, {"ostype": "debian"}, warnings.append) == "alpine"
    assert warnings == ["got unexpected ostype (alpine != debian)"]
