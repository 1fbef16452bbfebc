# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE container config: property strings, normalisation, diff.

Formats follow the API schema's ``format`` definitions of the LXC config
(``pve-ct-network`` for ``net[n]``, ``pve-ct-rootfs``/``pve-ct-mountpoint``,
``pve-ct-features``, ``pve-startup-order``): comma-separated ``key=value``
items, with one default key that may be written without its name
(``local-zfs:8,size=8G`` is ``volume=local-zfs:8,size=8G``).

Comparison is per key after normalisation: booleans (1/0, on/off, yes/no,
true/false), sizes (``8G`` = ``8192M``), tags as sets, numbers as numbers,
and a network interface's ``hwaddr`` only when the desired value gives one
(Proxmox generates it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

MASK = "********"
SECRET_KEYS = ("password",)

# key pattern -> (default key, {sub-key: kind})
FORMATS = {
    "net": ("name", {"name": "str", "bridge": "str", "hwaddr": "mac", "ip": "str", "ip6": "str", "gw": "str",
                     "gw6": "str", "firewall": "bool", "link_down": "bool", "mtu": "int", "rate": "num", "tag": "int",
                     "trunks": "str", "type": "str"}),
    "rootfs": ("volume", {"volume": "str", "size": "size", "acl": "bool", "mountoptions": "str", "quota": "bool",
                          "replicate": "bool", "ro": "bool", "shared": "bool"}),
    "mp": ("volume", {"volume": "str", "mp": "str", "size": "size", "acl": "bool", "backup": "bool",
                      "mountoptions": "str", "quota": "bool", "replicate": "bool", "ro": "bool", "shared": "bool"}),
    "features": (None, {"fuse": "bool", "keyctl": "bool", "mknod": "bool", "mount": "str", "nesting": "bool",
                        "force_rw_sys": "bool"}),
    "startup": ("order", {"order": "int", "up": "int", "down": "int"}),
}
SCALARS = {"cores": "int", "cpulimit": "num", "cpuunits": "int", "memory": "int", "swap": "int", "onboot": "bool",
           "protection": "bool", "unprivileged": "bool", "template": "bool", "console": "bool", "tty": "int",
           "tags": "tags", "description": "text"}
# Keys a running container takes only at its next start (pve-container applies the others at once:
# see PVE::LXC::Config's hotplug handling of cores, cpulimit, cpuunits, memory, swap, net, mp and the
# pure metadata keys).
NEEDS_RESTART = ("rootfs", "features", "arch", "ostype", "cmode", "console", "tty", "unprivileged", "entrypoint",
                 "env", "hookscript", "nameserver", "searchdomain", "hostname")
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.I)
_UNITS = {"": 1024 ** 3, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def kind_of(key):
    """The format family of a config key: ``net`` for net0, ``mp`` for mp3, else the key."""
    match = re.match(r"^(net|mp|unused)(\d+)$", key)
    return match.group(1) if match else key


def parse_property(key, text):
    """A property string into a dict of its sub-keys (the default key filled in)."""
    if isinstance(text, dict):
        return dict((k, v) for k, v in text.items() if v is not None)
    default_key, dummy = FORMATS.get(kind_of(key), (None, {}))
    out = {}
    for item in str(text).split(","):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            if default_key is None:
                raise ValueError("%s: %r has no key (expected key=value)" % (key, item))
            name, value = default_key, name
        out[name.strip()] = value.strip()
    return out


def format_property(key, value):
    """A dict back into a property string: the default key first, the rest sorted."""
    if not isinstance(value, dict):
        return str(value)
    default_key, subkeys = FORMATS.get(kind_of(key), (None, {}))
    items = []
    if default_key is not None and value.get(default_key) is not None:
        items.append("%s=%s" % (default_key, _text(value[default_key])))
    for name in sorted(value):
        if name != default_key and value[name] is not None:
            items.append("%s=%s" % (name, _text(value[name])))
    return ",".join(items)


def _text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def format_value(key, value):
    """The string PVE takes for ``key`` (dicts formatted, booleans 1/0, tag lists joined)."""
    if isinstance(value, dict):
        return format_property(key, value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return (";" if key == "tags" else ",").join(str(v) for v in value)
    return str(value)


def _size(text):
    match = _SIZE.match(str(text).strip())
    if not match:
        return str(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _norm(kind, value):
    text = _text(value).strip()
    if kind == "bool":
        low = text.lower()
        return "1" if low in _TRUE else "0" if low in _FALSE else low
    if kind == "int":
        try:
            return int(float(text))
        except ValueError:
            return text
    if kind == "num":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "size":
        return _size(text)
    if kind == "mac":
        return text.upper()
    if kind == "tags":
        return tuple(sorted(set(t for t in re.split(r"[;,\s]+", text) if t)))
    if kind == "text":
        return text.rstrip()
    return text


def normalize(key, value):
    """A comparable form of one config value."""
    kind = kind_of(key)
    if kind in FORMATS:
        dummy, subkeys = FORMATS[kind]
        parsed = parse_property(key, value)
        return dict((name, _norm(subkeys.get(name, "str"), v)) for name, v in parsed.items())
    if isinstance(value, (list, tuple)):
        value = format_value(key, value)
    return _norm(SCALARS.get(key, "str"), value)


def same(key, current, desired):
    """Does ``current`` (PVE's value) satisfy ``desired`` (the user's)?"""
    if current is None:
        return False
    have, want = normalize(key, current), normalize(key, desired)
    if isinstance(want, dict):
        if kind_of(key) == "net" and "hwaddr" not in want:
            have = dict(have)
            have.pop("hwaddr", None)
        return have == want
    return have == want


class Plan:
    """What a config update sends: ``put`` (key -> string), ``delete`` (keys)."""

    def __init__(self, put, delete):
        self.put = put
        self.delete = delete

    @property
    def changed(self):
        return bool(self.put or self.delete)


MANAGED_FOR_PURGE = tuple(SCALARS) + ("nameserver", "searchdomain", "startup", "features", "hookscript", "cmode",
                                      "entrypoint", "env")


def diff(current, desired, purge=False, delete=()):
    """The update that makes ``current`` (GET .../config) satisfy ``desired``.

    Only keys that differ after normalisation are sent.  Keys the user
    dropped are deleted only with ``purge`` (those this module manages, and
    net/mp interfaces) or when listed in ``delete``.
    """
    put = {}
    for key, value in desired.items():
        if value is None:
            continue
        if not same(key, current.get(key), value):
            if kind_of(key) == "net" and isinstance(value, dict) and "hwaddr" not in value and current.get(key):
                # keep the MAC Proxmox generated for this interface
                old = parse_property(key, current[key])
                if old.get("hwaddr"):
                    value = dict(value, hwaddr=old["hwaddr"])
            put[key] = format_value(key, value)
    removing = []
    for key in delete or ():
        if key in current and key not in desired:
            removing.append(key)
    if purge:
        for key in current:
            if key in desired or key in removing or key in ("digest", "template", "rootfs", "arch", "ostype"):
                continue
            if key in MANAGED_FOR_PURGE or kind_of(key) in ("net", "mp"):
                removing.append(key)
    return Plan(put, sorted(removing))


def needs_restart(key):
    return key in NEEDS_RESTART or key.startswith("lxc.")


def masked(config):
    """``config`` with secrets replaced by a mask (for diff and results)."""
    return dict((k, MASK if k in SECRET_KEYS else v) for k, v in (config or {}).items())
