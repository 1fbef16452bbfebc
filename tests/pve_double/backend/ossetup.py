"""OS detection at create: pve-container src/PVE/LXC/Setup.pm ``new`` and ``autodetect_type``.

PVE/API2/LXC.pm create_vm runs ``PVE::LXC::Setup->new($conf, $rootdir)`` after the archive (or OCI image) is
unpacked, for every create: with ``ostype: unmanaged`` nothing is detected; otherwise the ID of the image's
os-release picks the setup plugin, then fallback files; an unknown ID with an /etc/os-release and no
fallback dies "unable to detect OS distribution", which fails the create task.
"""

import os

# Setup.pm $plugins and $plugin_alias
PLUGINS = ("alpine", "archlinux", "centos", "debian", "devuan", "fedora", "gentoo", "openeuler", "opensuse",
           "ubuntu", "nixos", "unmanaged")
ALIASES = {"opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse", "opensuse-slowroll": "opensuse",
           "openEuler": "openeuler", "arch": "archlinux", "sles": "opensuse", "rocky": "centos",
           "almalinux": "centos"}
# Setup.pm autodetect_type's fallback checks, in order: (path in the rootfs, type)
FALLBACKS = (("etc/debian_version", "debian"), ("etc/devuan_version", "devuan"), ("etc/SuSE-brand", "opensuse"),
             ("etc/SuSE-release", "opensuse"), ("etc/fedora-release", "fedora"), ("etc/centos-release", "centos"),
             ("etc/redhat-release", "centos"), ("etc/arch-release", "archlinux"), ("etc/alpine-release", "alpine"),
             ("etc/gentoo-release", "gentoo"), ("etc/openEuler-release", "openeuler"))


class OsDetectError(Exception):
    pass


def _inside(rootfs, path):
    """``path`` (absolute in the container) resolved as in a chroot: symlinks never leave ``rootfs``."""
    parts, resolved, hops = [p for p in path.split("/") if p], [], 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(rootfs, *(resolved + [part]))
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                return os.path.join(rootfs, ".symlink-loop\0")  # ELOOP, as in the chroot: no such file
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(rootfs, *resolved)


def _is_file(rootfs, path):
    return os.path.isfile(_inside(rootfs, path))


def os_release(rootfs):
    """Setup.pm get_ct_os_release: /etc/os-release, else /usr/lib/os-release, parsed (quotes removed)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        real = _inside(rootfs, path)
        if os.path.isfile(real):
            out = {}
            with open(real, errors="replace") as handle:
                for line in handle:
                    key, sep, value = line.strip().partition("=")
                    if sep and key and not key.startswith("#"):
                        out[key] = value.strip().strip("'\"")
            return out
    return {}


def detect_ostype(rootfs, conf, warn):
    """The ostype Setup.pm's ``new`` settles on; raises OsDetectError as its autodetect_type dies."""
    if conf.get("ostype") == "unmanaged":
        return "unmanaged"
    ident = os_release(rootfs).get("ID")
    found = None
    if ident:
        found = ident if ident in PLUGINS else ALIASES.get(ident)
        if found is None:
            warn("unknown ID '%s' in /etc/os-release file, trying fallback detection" % ident)
    if found is None:
        lsb = _inside(rootfs, "/etc/lsb-release")
        if os.path.isfile(lsb) and any(line.strip().lower() == "distrib_id=ubuntu" for line in open(lsb, errors="replace")):
            found = "ubuntu"
    if found is None:
        for path, kind in FALLBACKS:
            if _is_file(rootfs, "/" + path):
                found = kind
                break
    if found is None and os.path.isdir(_inside(rootfs, "/nix/store")):
        found = "nixos"
    if found is None:
        if _is_file(rootfs, "/etc/os-release"):
            raise OsDetectError("unable to detect OS distribution")
        warn("/etc/os-release file not found and autodetection failed, falling back to 'unmanaged'")
        found = "unmanaged"
    expected = conf.get("ostype") or found
    if found != expected:
        warn("got unexpected ostype (%s != %s)" % (found, expected))
    return found
