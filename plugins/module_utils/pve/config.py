# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE container config: property strings, normalisation, diff.

Pure Python (no Ansible), so that it can be tested table-driven.

Formats follow the API schema (Proxmox VE 8 and 9's published API viewer data,
of which tests/pve_double/schema/apidata-{8,9}.subset.json are committed; the
``format`` of ``net[n]``, ``rootfs``, ``mp[n]``, ``features``, ``dev[n]``,
``unused[n]`` of ``PUT /nodes/{node}/lxc/{vmid}/config``; ``startup`` is
pve-common's ``pve_parse_startup_order``).  FORMATS below holds them in the
schema's own shape, and a unit test compares them with both schema files.
Parsing and printing follow pve-common's ``parse_property_string`` and
``print_property_string``: comma-separated ``key=value`` items, the default
key may be written bare; printed as the bare default key, then the required
keys sorted, then the rest sorted; booleans as 1/0; ``disk-size`` values by
``format_size`` (``8192M`` prints as ``8G``, a bare number is bytes).

Comparison is per key after normalisation: schema defaults filled in,
booleans (1/0, on/off, yes/no, true/false), sizes in bytes, numbers as
numbers, tags as sets (``;``, ``,`` or space separated), description without
trailing whitespace, and values Proxmox generates (a network interface's
``hwaddr``, a volume's ``size``) only when the desired value gives them.  A
desired volume in allocation syntax ``STORAGE:SIZE_IN_GiB`` matches the
volume Proxmox allocated for it on that storage with that size.

Which changes a running container takes at once follows pve-container's
``PVE::LXC::Config::vmconfig_hotplug_pending`` (read at commit 94f5585,
2026-02): the "fastplug" keys are written at once, cgroup limits and network
interfaces are hotplugged, a new mount point or device is hotplugged (a changed
one is not); every other change stays pending until the next start.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import json
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveError

MASK = "********"
# create-only parameters that carry secrets; never shown in results or diffs
SECRET_KEYS = ("password", "ssh-public-keys", "ssh_public_keys")


class ConfigValueError(PveError, ValueError):
    """A config value that is not valid for its key (the message names key and value)."""

    kind = "invalid_value"


def _b(default=None, optional=True):
    field = {"type": "boolean"}
    if default is not None:
        field["default"] = default
    if optional:
        field["optional"] = 1
    return field


def _s(optional=True, **extra):
    field = {"type": "string"}
    if optional:
        field["optional"] = 1
    field.update(extra)
    return field


def _i(optional=True, **extra):
    field = {"type": "integer"}
    if optional:
        field["optional"] = 1
    field.update(extra)
    return field


_MOUNT = {
    "volume": _s(optional=False, default_key=1),
    "acl": _b(), "mountoptions": _s(list=";"), "quota": dict(_b(), unset=0), "replicate": _b(1), "ro": dict(_b(), unset=0),
    "shared": _b(0),
    "size": _s(format="disk-size"),
}
# Sub-key definitions in the schema's shape.  Extra fields of our own:
# ``list`` (a ';'-separated list inside one value), ``generated`` (Proxmox
# fills it in: ignored in comparisons unless the desired value has it) and
# ``unset`` (what an absent flag means where the schema names no default).
FORMATS = {
    "net": {
        "name": _s(optional=False), "bridge": _s(), "firewall": dict(_b(), unset=0), "gw": _s(), "gw6": _s(),
        "host-managed": dict(_b(), unset=0), "hwaddr": _s(format="mac-addr", generated=1), "ip": _s(), "ip6": _s(),
        "link_down": dict(_b(), unset=0), "mtu": _i(), "rate": {"type": "number", "optional": 1}, "tag": _i(),
        "trunks": _s(list=";"), "type": _s(enum=["veth"]),
    },
    "rootfs": dict(_MOUNT, size=_s(format="disk-size", generated=1)),
    "mp": dict(_MOUNT, mp=_s(optional=False), backup=_b(), keepattrs=_b(0),
               size=_s(format="disk-size", generated=1)),
    "features": {
        "force_rw_sys": _b(0), "fuse": _b(0), "keyctl": _b(0), "mknod": _b(0), "mount": _s(list=";"),
        "nesting": _b(0),
    },
    "dev": {
        "path": _s(default_key=1), "deny-write": _b(0), "gid": _i(), "mode": _s(), "uid": _i(),
    },
    "unused": {"volume": _s(optional=False, default_key=1)},
    "startup": {"order": _i(default_key=1), "up": _i(), "down": _i()},
}

# Plain keys: type and schema default (GET .../config leaves out keys at their default).
SCALARS = {
    "arch": {"type": "string", "default": "amd64"},
    "cmode": {"type": "string", "default": "tty"},
    "console": {"type": "boolean", "default": 1},
    "cores": {"type": "integer"},
    "cpulimit": {"type": "number", "default": 0},
    "cpuunits": {"type": "integer"},  # default depends on the host's cgroup version
    "debug": {"type": "boolean", "default": 0},
    "description": {"type": "text"},
    "entrypoint": {"type": "string"},  # 9.1+: /sbin/init when unset, but only where the key exists
    "env": {"type": "nul-list"},
    "hookscript": {"type": "string"},
    "hostname": {"type": "string"},
    "memory": {"type": "integer", "default": 512},
    "nameserver": {"type": "list"},
    "onboot": {"type": "boolean", "default": 0},
    "ostype": {"type": "string"},
    "protection": {"type": "boolean", "default": 0},
    "searchdomain": {"type": "list"},
    "swap": {"type": "integer", "default": 512},
    "tags": {"type": "tags"},
    "template": {"type": "boolean", "default": 0},
    "timezone": {"type": "string"},
    "tty": {"type": "integer", "default": 2},
    "unprivileged": {"type": "boolean", "default": 0},
}

# pve-container: options written at once on a running container ($LXC_FASTPLUG_OPTIONS) ...
FASTPLUG = ("description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock")
# ... set or changed by a hotplug (cgroup limits, veth interfaces) ...
HOTPLUG_SET = ("cpulimit", "cpuunits", "memory", "swap")
# ... and deleted by a hotplug.
HOTPLUG_DELETE = ("swap", "cpulimit", "cpuunits")
# Never deleted by purge: Proxmox refuses (memory, rootfs, ostype, unprivileged) or owns them.
NEVER_PURGED = ("digest", "lock", "template", "rootfs", "memory", "ostype", "arch", "unprivileged", "lxc")

_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT](?:iB)?)?$")
_UNITS = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_ALLOCATION = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*):(\d+(?:\.\d+)?)$")
_LIST_SPLIT = re.compile(r"[;,\s]+")
_INDEXED = re.compile(r"^(net|mp|dev|unused)(\d+)$")


def kind_of(key):
    """The format family of a config key: ``net`` for net0, ``mp`` for mp3, else the key."""
    match = _INDEXED.match(key)
    return match.group(1) if match else key


def format_of(key):
    """The sub-key definitions of a property-string key, or None for a plain key."""
    return FORMATS.get(kind_of(key))


def _default_key(fmt):
    for name, field in fmt.items():
        if field.get("default_key"):
            return name
    return None


# -- sizes and scalars ---------------------------------------------------------------------

def parse_size(text):
    """Bytes of a ``disk-size`` value (``8G``, ``512M``, ``1.5T``, ``4GiB``; a bare number is bytes), else None."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return int(text)
    match = _SIZE.match(str(text).strip())
    if not match:
        return None
    number, unit = match.group(1), match.group(2)
    return int(float(number) * (_UNITS[unit[0]] if unit else 1))


def format_size(size):
    """pve-common's ``format_size``: the largest unit that divides ``size`` (bytes) exactly."""
    size = int(size)
    for unit in ("", "K", "M", "G"):
        if size % 1024:
            return "%d%s" % (size, unit)
        size //= 1024
    return "%dT" % size


def _bool_text(value):
    """'1'/'0' for a boolean in any of PVE's spellings, else None."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) and value in (0, 1):
        return str(value)
    low = str(value).strip().lower()
    if low in _TRUE:
        return "1"
    if low in _FALSE:
        return "0"
    return None


def _check(key, name, field, value, strict):
    """The PVE text of one (sub-)value after type checks; raises ConfigValueError when ``strict``."""
    kind = field.get("type")
    where = "%s: %s" % (key, name) if name else key

    def bad(what):
        if strict:
            raise ConfigValueError("%s: %r is not %s" % (where, value, what))
        return str(value)

    if isinstance(value, (list, tuple)) and field.get("list"):
        value = field["list"].join(str(v) for v in value)
    if kind == "boolean":
        text = _bool_text(value)
        return text if text is not None else bad("a boolean (1/0, true/false, on/off, yes/no)")
    if kind == "integer":
        if isinstance(value, bool):
            return bad("an integer")
        try:
            return str(int(str(value).strip()))
        except ValueError:
            return bad("an integer")
    if kind == "number":
        if isinstance(value, bool):
            return bad("a number")
        try:
            number = float(str(value).strip())
        except ValueError:
            return bad("a number")
        return str(int(number)) if number == int(number) else repr(number)
    text = str(value)
    if field.get("format") == "disk-size":
        size = parse_size(text)
        return format_size(size) if size is not None else bad("a size (like 8G, 512M or bytes)")
    if field.get("enum") and text not in field["enum"]:
        return bad("one of %s" % ", ".join(field["enum"]))
    if strict and "," in text:
        raise ConfigValueError("%s: %r must not contain a comma" % (where, value))
    return text


# -- property strings ---------------------------------------------------------------------

def parse_property(key, text, strict=False):
    """A property string (or a dict) of ``key`` into a dict of its sub-keys.

    The bare default key is named (``local:8,size=8G`` gives ``volume``),
    aliases are resolved, booleans become ``"1"``/``"0"``.  With ``strict``
    (values from the user) unknown sub-keys, bad types, enums, duplicates and
    missing required sub-keys raise ConfigValueError; without it (values from
    Proxmox, which may be newer than this table) they are kept as they are.
    """
    fmt = format_of(key)
    if fmt is None:
        raise ConfigValueError("%s is not a property-string key" % key)
    default_key = _default_key(fmt)
    if isinstance(text, dict):
        items = [(str(k), v) for k, v in text.items() if v is not None]
    else:
        items = []
        for part in str(text).split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep:
                if default_key is None:
                    raise ConfigValueError("%s: %r has no key (expected key=value)" % (key, part))
                if any(n == default_key for n, dummy in items):
                    raise ConfigValueError("%s: %s given twice" % (key, default_key))
                items.append((default_key, part.strip()))
            elif strict and not value:
                raise ConfigValueError("%s: %s has no value" % (key, name))
            else:
                items.append((name.strip(), value.strip()))
    out = {}
    for name, value in items:
        field = fmt.get(name)
        if field is not None and field.get("alias"):
            name, field = field["alias"], fmt[field["alias"]]
        if name in out:
            raise ConfigValueError("%s: %s given twice" % (key, name))
        if field is None:
            if strict:
                raise ConfigValueError("%s: unknown setting %r (known: %s)" % (key, name, ", ".join(sorted(fmt))))
            out[name] = str(value)
            continue
        out[name] = _check(key, name, field, value, strict)
    if strict:
        missing = [n for n, f in fmt.items() if not f.get("optional") and n not in out]
        if missing:
            raise ConfigValueError("%s: %s missing" % (key, ", ".join(missing)))
    return out


def format_property(key, value):
    """A dict (or property string) as PVE prints it: the bare default key, required keys, the rest sorted."""
    if not isinstance(value, dict) and format_of(key) is None:
        return str(value)
    fmt = format_of(key)
    parsed = parse_property(key, value, strict=True)
    if kind_of(key) == "startup":
        # a plain string to PVE, stored as given; written the way the web interface writes it
        return ",".join("%s=%s" % (n, parsed[n]) for n in ("order", "up", "down") if n in parsed)
    default_key = _default_key(fmt)
    items = []
    if default_key is not None and default_key in parsed:
        items.append(parsed[default_key])
    required = sorted(n for n in parsed if n != default_key and not fmt.get(n, {"optional": 1}).get("optional"))
    rest = sorted(n for n in parsed if n != default_key and n not in required)
    for name in required + rest:
        items.append("%s=%s" % (name, parsed[name]))
    return ",".join(items)


def format_value(key, value):
    """The canonical string PVE takes for ``key`` (dicts and property strings printed, booleans 1/0, lists joined).

    Raises ConfigValueError for values PVE would refuse.
    """
    if format_of(key) is not None:
        return format_property(key, value)
    field = SCALARS.get(key, {"type": "string"})
    kind = field["type"]
    if kind == "tags":
        return ";".join(_tags(value))
    if kind == "nul-list":
        if isinstance(value, dict):
            return "\0".join("%s=%s" % (k, value[k]) for k in sorted(value))
        if isinstance(value, (list, tuple)):
            return "\0".join(str(v) for v in value)
        return str(value)
    if kind == "list":
        if isinstance(value, (list, tuple)):
            return " ".join(str(v) for v in value)
        return " ".join(v for v in _LIST_SPLIT.split(str(value)) if v)
    if kind in ("boolean", "integer", "number"):
        return _check(key, None, field, value, strict=True)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _tags(value):
    if isinstance(value, (list, tuple, set)):
        words = [str(v).strip() for v in value]
    else:
        words = _LIST_SPLIT.split(str(value))
    return sorted(set(w for w in words if w))


# -- normalisation -------------------------------------------------------------------------

def _norm_sub(field, text):
    kind = field.get("type")
    if field.get("format") == "disk-size":
        size = parse_size(text)
        return size if size is not None else text
    if kind == "boolean":
        bool_text = _bool_text(text)
        return bool_text if bool_text is not None else text
    if kind in ("integer", "number"):
        try:
            return float(text)
        except ValueError:
            return text
    if field.get("format") == "mac-addr":
        return text.upper()
    if field.get("list"):
        return tuple(v for v in str(text).split(field["list"]) if v)
    return text


def _norm_property(key, value, strict):
    fmt = format_of(key)
    parsed = parse_property(key, value, strict=strict)
    out = {}
    for name, field in fmt.items():
        if name not in parsed and ("default" in field or "unset" in field):
            parsed[name] = str(field.get("default", field.get("unset")))
    for name, text in parsed.items():
        out[name] = _norm_sub(fmt.get(name, {}), text)
    return out


def normalize(key, value, strict=False):
    """A comparable form of one config value (defaults filled in, units and spellings unified)."""
    if format_of(key) is not None:
        return _norm_property(key, value, strict)
    field = SCALARS.get(key, {"type": "string"})
    kind = field["type"]
    if value is None:
        if "default" not in field:
            return None
        value = field["default"]
    if kind == "tags":
        return tuple(_tags(value))
    if kind == "list":
        return tuple(v for v in _LIST_SPLIT.split(format_value(key, value)) if v)
    if kind == "nul-list":
        return tuple(v for v in format_value(key, value).split("\0") if v)
    if kind == "text":
        lines = [line.rstrip() for line in str(value).replace("\r\n", "\n").split("\n")]
        return "\n".join(lines).strip("\n")
    if kind == "boolean":
        text = _bool_text(value)
        return text if text is not None else str(value)
    if kind in ("integer", "number"):
        try:
            return float(str(value).strip())
        except ValueError:
            return str(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).strip()


def allocation(volume):
    """(storage, bytes) of a ``STORAGE:SIZE_IN_GiB`` allocation request, else None."""
    match = _ALLOCATION.match(str(volume))
    if not match:
        return None
    return match.group(1), int(float(match.group(2)) * 1024 ** 3)


def same(key, current, desired):
    """Does ``current`` (PVE's value, None when unset) satisfy ``desired`` (the user's)?"""
    fmt = format_of(key)
    if fmt is None:
        return normalize(key, current) == normalize(key, desired, strict=True)
    if current is None:
        return False
    want = normalize(key, desired, strict=True)
    have = normalize(key, current)
    requested = allocation(want.get("volume", "")) if "volume" in fmt else None
    if requested:
        # STORAGE:SIZE asks for a new volume; what Proxmox made of it is a volume on that storage with that size
        storage, size = requested
        want.pop("volume")
        want.pop("size", None)
        have_size = have.pop("size", None)
        if str(have.pop("volume", "")).partition(":")[0] != storage:
            return False
        if size and have_size is not None and have_size != size:
            return False
        if not size and have_size:
            return False
    for name, field in fmt.items():
        if field.get("generated") and name not in want:
            have.pop(name, None)
    return have == want


# Characters no value that ends up as an LXC config line can hold: LXC reads its config line by line, so a
# newline or carriage return would cut the value and start a line of its own.  The API's own patterns for
# ``entrypoint`` and ``env`` (``[^\x00-\x08\x10-\x1F\x7F]``, pve-container's PVE::LXC::Config) let \x09-\x0F
# through, newline included: such a value is stored, and the container then fails at its start.
_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# pve-container's env pattern: NUL-separated ``\w+=value`` items
_ENV_NAME = re.compile(r"^[A-Za-z0-9_]+$")
DESCRIPTION_MAX = 8192  # the schema's maxLength of ``description``


def check_carried(wanted):
    """Raise ConfigValueError for a value Proxmox VE would store but the container could not start with.

    Run before any change (in check mode too), so that nothing is created that then fails at its start.
    """
    for key in ("entrypoint", "hostname"):
        value = wanted.get(key)
        if value is not None and _LINE_BREAKING.search(str(value)):
            raise ConfigValueError("%s %r contains a control character (newline, carriage return, ...), which "
                                   "cannot be carried into the container's LXC config" % (key, value))
    env = wanted.get("env")
    if env is not None:
        items = env if isinstance(env, (list, tuple)) else [i for i in str(env).split("\0") if i]
        for item in items:
            name, sep, value = str(item).partition("=")
            if not sep or not _ENV_NAME.match(name):
                raise ConfigValueError("env item %r is not NAME=value with a name of letters, digits and '_' (the "
                                       "form Proxmox VE accepts)" % (item,))
            if _LINE_BREAKING.search(value):
                raise ConfigValueError("env %s: the value %r contains a control character (newline, carriage "
                                       "return, ...), which no LXC config line can carry; the container would "
                                       "be created and then fail to start" % (name, value))
    description = wanted.get("description")
    if description is not None and len(str(description)) > DESCRIPTION_MAX:
        raise ConfigValueError("description is %d characters long; Proxmox VE takes at most %d"
                               % (len(str(description)), DESCRIPTION_MAX))


def masked(config):
    """``config`` with secrets replaced by a mask (for diff and results)."""
    return dict((k, MASK if k in SECRET_KEYS else v) for k, v in (config or {}).items())


# -- restart rules -------------------------------------------------------------------------

def needs_restart(key, current=None, delete=False):
    """Does a running container take this change only at its next start (PVE keeps it pending)?

    ``current`` is the container's config before the change (a new mount
    point or device is hotplugged, a changed one is not); ``delete`` says the
    key is being removed.  ``lxc.*`` keys are raw LXC lines (always a restart).
    """
    if key.startswith("lxc.") or key == "lxc":
        return True
    kind = kind_of(key)
    if key in FASTPLUG or kind == "unused":
        return False
    if delete:
        return not (key in HOTPLUG_DELETE or kind == "net")
    if key in HOTPLUG_SET or kind == "net":
        return False
    if kind in ("mp", "dev"):
        return current is None or key in current
    return True


# -- the update plan -----------------------------------------------------------------------

class Plan:
    """What a config update sends and shows.

    ``put``: key -> canonical string (only keys that differ after
    normalisation); ``delete``: sorted keys to remove; ``pending``: sorted
    keys of ``put``/``delete`` a running container takes only at its next
    start; ``before``/``after``: the whole config before and after (secrets
    masked, ``digest`` left out), for Ansible's diff.
    """

    def __init__(self, put, delete, current=None):
        self.put = put
        self.delete = delete
        current = dict(current or {})
        self.pending = sorted([k for k in put if needs_restart(k, current)] +
                              [k for k in delete if needs_restart(k, current, delete=True)])
        before = dict((k, v) for k, v in current.items() if k != "digest")
        after = dict(before)
        for k in delete:
            after.pop(k, None)
        after.update(put)
        self.before = masked(before)
        self.after = masked(after)

    @property
    def changed(self):
        return bool(self.put or self.delete)


MANAGED_FOR_PURGE = ("cores", "cpulimit", "cpuunits", "swap", "onboot", "protection", "console", "tty", "cmode",
                     "tags", "description", "nameserver", "searchdomain", "startup", "features", "hookscript",
                     "entrypoint", "env", "timezone")


def diff(current, desired, purge=False, delete=()):
    """The update that makes ``current`` (GET .../config) satisfy ``desired`` (key -> dict, string or scalar).

    Only keys that differ after normalisation are sent, as canonical strings;
    ``None`` values are ignored.  A network interface keeps its generated MAC
    unless the desired value gives one.  Keys the user dropped are deleted
    only with ``purge`` (the keys this collection manages, and net/mp
    interfaces; never those Proxmox refuses to delete) or when listed in
    ``delete``.  Raises ConfigValueError for a desired value PVE would refuse.
    """
    current = dict(current or {})
    put = {}
    for key, value in desired.items():
        if value is None:
            continue
        if same(key, current.get(key), value):
            continue
        if kind_of(key) == "net" and current.get(key):
            want = parse_property(key, value, strict=True)
            old = parse_property(key, current[key])
            if "hwaddr" not in want and old.get("hwaddr"):
                # keep the MAC Proxmox generated for this interface
                value = dict(want, hwaddr=old["hwaddr"])
        put[key] = format_value(key, value)
    removing = set()
    for key in delete or ():
        if key in current and (key not in desired or desired[key] is None):
            removing.add(key)
    if purge:
        for key in current:
            if (key in desired and desired[key] is not None) or key in NEVER_PURGED:
                continue
            if key in MANAGED_FOR_PURGE or kind_of(key) in ("net", "mp"):
                removing.add(key)
    return Plan(put, sorted(removing), current)


# -- an app's interfaces, as the generated init of a template configures them ----------------------------------------

APP_NET_FIELDS = ("name", "ip", "gw", "ip6", "gw6")
_IFNAME = re.compile(r"^[-_.A-Za-z0-9]{1,15}$")  # pve-container's pve-lxc-network name pattern, IFNAMSIZ


def _checked_address(key, option, value):
    """``value`` of ``option`` (ip, gw, ip6, gw6) as Proxmox takes it: CIDR or dhcp/manual (auto for ip6), an
    address for a gateway; raises ConfigValueError naming the interface."""
    six = option.endswith("6")
    keywords = ("dhcp", "manual", "auto") if option == "ip6" else ("dhcp", "manual") if option == "ip" else ()
    if value in keywords:
        return value
    try:
        if option.startswith("gw"):
            parsed = ipaddress.ip_address(value)
        else:
            if "/" not in value:
                raise ValueError("no prefix length")
            parsed = ipaddress.ip_interface(value)
    except ValueError:
        raise ConfigValueError("%s: %s=%s is not %s" % (
            key, option, value, "an IPv%d address" % (6 if six else 4) if option.startswith("gw") else
            "an IPv%d address with its prefix length, or one of %s" % (6 if six else 4, "/".join(keywords))))
    if parsed.version != (6 if six else 4):
        raise ConfigValueError("%s: %s=%s is an IPv%d address" % (key, option, value, parsed.version))
    return value


def app_net(nets):
    """The interfaces an app template's generated init configures, from ``net`` as lxc_container takes it
    ({index or netN: property string or dict}): a list sorted by index of dicts with ``key`` (netN) and what of
    APP_NET_FIELDS is set; an interface with ``link_down=1`` is left out (it stays down).  Raises
    ConfigValueError for what Proxmox would refuse and for a bad address."""
    out = []
    for index, value in (nets or {}).items():
        text = str(index)
        number = text[3:] if text.startswith("net") else text
        if not number.isdigit():
            raise ConfigValueError("net: %r is not an interface index (0, 1, ... or net0, net1, ...)" % (index,))
        key = "net%d" % int(number)
        if any(item["key"] == key for item in out):
            raise ConfigValueError("net: %s given twice" % key)
        parsed = parse_property(key, value, strict=True)
        if str(parsed.get("link_down")) == "1":
            continue
        if not _IFNAME.match(parsed["name"]):
            raise ConfigValueError("%s: name=%s is not an interface name (letters, digits, - _ ., at most 15)"
                                   % (key, parsed["name"]))
        item = {"key": key, "name": parsed["name"]}
        for option in APP_NET_FIELDS[1:]:
            if parsed.get(option) not in (None, ""):
                item[option] = _checked_address(key, option, str(parsed[option]))
        out.append(item)
    return sorted(out, key=lambda item: int(item["key"][3:]))


def app_net_digest(settings):
    """A short digest of app_net's list, as a container's origin record keeps it (12 hex digits)."""
    text = json.dumps([dict((k, item[k]) for k in sorted(item)) for item in settings or []], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def volume_of(key, value):
    """The volume id of a config value of ``key`` (unusedN holds the bare id), or None."""
    if value is None:
        return None
    if key.startswith("unused"):
        return str(value)
    return parse_property("mp" if key.startswith("mp") else key, value).get("volume")


def is_storage_volume(volume):
    """A storage volume (``storage:name``), not a bind mount (a path) or a device."""
    return bool(volume) and not volume.startswith("/") and ":" in volume
