# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a container made from an image runs: argv, env, cwd, user, stop signal.

Docker's rules for combining the image config with overrides:

- argv is Entrypoint + Cmd.  Overriding ``entrypoint`` also drops the
  image's Cmd (as ``docker run --entrypoint`` does) unless ``cmd`` is given
  too; an empty list clears the field.
- env is the image's Env with overrides applied in place (a new name is
  appended, an existing one keeps its position).
- the user is resolved like runc does, from the image's own /etc/passwd and
  /etc/group (text read out of the flattened layers, never the host's NSS):
  ``name`` or ``uid`` takes the primary group from passwd (gid 0 for a uid
  passwd does not know) and the supplementary groups that list the user by
  name; ``user:group`` sets the group explicitly and no supplementary
  groups.  A name that the image does not define is an error.  A user or
  group is numeric exactly when runc's ``strconv.Atoi`` takes it: ASCII
  digits after an optional sign (``+1000`` is 1000); anything else, such as
  fullwidth digits or a leading space, is a name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re
import signal

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError

DEFAULT_STOP_SIGNAL = "SIGTERM"  # Docker's; LXC's own default (SIGPWR) is ignored by an app as PID 1
ENV_NAME = re.compile(r"^[^=\0]+$")


class ConfigError(OciError):
    """The image config or an override cannot describe a runnable container."""

    kind = "image_config"


def _words(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigError("%s must be a list of words, not the string %r (write it as [%r, ...])"
                          % (what, value, value))
    words = []
    for word in value:
        if not isinstance(word, str):
            raise ConfigError("%s: every word must be a string, got %r" % (what, word))
        if "\0" in word:
            raise ConfigError("%s: a word contains a NUL byte: %r" % (what, word))
        words.append(word)
    return words


def override_argument_spec():
    """The options that override the image's process, as oci_template and oci_container take them."""
    return dict(
        entrypoint=dict(type="list", elements="str"),
        cmd=dict(type="list", elements="str"),
        env=dict(type="raw"),
        workdir=dict(type="str"),
        user=dict(type="str"),
        stop_signal=dict(type="str"),
    )


def command_argv(image_cfg, entrypoint=None, cmd=None):
    """Entrypoint + Cmd after overrides, following ``docker run``."""
    image_entrypoint = _words(image_cfg.get("Entrypoint"), "the image's Entrypoint") or []
    image_cmd = _words(image_cfg.get("Cmd"), "the image's Cmd") or []
    entrypoint = _words(entrypoint, "entrypoint")
    cmd = _words(cmd, "cmd")
    if entrypoint is not None:
        words = entrypoint + (cmd if cmd is not None else [])
    else:
        words = image_entrypoint + (cmd if cmd is not None else image_cmd)
    if not words:
        raise ConfigError("the image has neither Entrypoint nor Cmd (after overrides): set entrypoint or cmd")
    if not words[0]:
        raise ConfigError("the command's first word (the program) is empty")
    return words


def check_env_item(item, where):
    if not isinstance(item, str):
        raise ConfigError("%s: %r is not a string" % (where, item))
    name, sep, value = item.partition("=")
    if not sep or not ENV_NAME.match(name):
        raise ConfigError("%s: %r is not NAME=value with a non-empty name" % (where, item))
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError("%s: the value of %s contains a newline or NUL, which no LXC or Proxmox config "
                          "can carry" % (where, name))
    return name, value


def merge_env(image_env, override=None):
    """The image's Env with ``override`` (a dict, or a list of NAME=value) applied."""
    merged = []
    index = {}

    def put(item, where):
        name, dummy = check_env_item(item, where)
        if name in index:
            merged[index[name]] = item
        else:
            index[name] = len(merged)
            merged.append(item)

    for item in image_env or []:
        put(item, "the image's Env")
    if override is None:
        return merged
    if isinstance(override, dict):
        items = []
        for name, value in override.items():
            if value is None:
                value = ""
            if isinstance(value, bool):
                value = "true" if value else "false"
            items.append("%s=%s" % (name, value))
    else:
        items = list(override)
    for item in items:
        put(item, "env")
    return merged


def normalize_workdir(value):
    if not value:
        return "/"
    if "\0" in value or "\n" in value:
        raise ConfigError("workdir %r contains a newline or NUL" % value)
    if not value.startswith("/"):
        # Docker resolves a relative WORKDIR against /; so does runc for cwd
        value = "/" + value
    return posixpath.normpath(value).replace("//", "/")


def normalize_signal(value):
    """``SIGTERM``, ``TERM``, ``15`` -> ``SIGTERM``."""
    if value is None or value == "":
        return DEFAULT_STOP_SIGNAL
    text = str(value).strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text)).name
        if not text.startswith("SIG"):
            text = "SIG" + text
        return signal.Signals[text].name
    except (KeyError, ValueError):
        if re.match(r"^SIGRTM(IN|AX)([+-]\d+)?$", text):
            return text
        raise ConfigError("unknown stop signal %r" % (value,))


# ---------------------------------------------------------------------------
# users

def _records(text, fields):
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < fields:
            continue
        yield parts


MAX_ID = 2 ** 32 - 2
# Go's strconv.Atoi, which runc uses to tell a uid/gid from a name: ASCII digits, one optional sign.
# (Python's str.isdigit and int() also take fullwidth and other Unicode digits.)
_ATOI = re.compile(r"\A[+-]?[0-9]+\Z")


def is_numeric(text):
    """Whether runc reads ``text`` (a USER part) as a number rather than a name."""
    return _ATOI.match(text) is not None


def _field_id(text):
    """A passwd/group id field as an int, or None when it is not one."""
    if not is_numeric(text):
        return None
    value = int(text)
    return value if 0 <= value <= MAX_ID else None


def parse_passwd(text):
    """[(name, uid, gid)] from /etc/passwd text; malformed lines are skipped."""
    found = []
    for parts in _records(text, 4):
        uid, gid = _field_id(parts[2]), _field_id(parts[3])
        if uid is not None and gid is not None:
            found.append((parts[0], uid, gid))
    return found


def parse_group(text):
    """[(name, gid, [members])] from /etc/group text."""
    found = []
    for parts in _records(text, 3):
        gid = _field_id(parts[2])
        if gid is not None:
            members = [m.strip() for m in parts[3].split(",")] if len(parts) > 3 else []
            found.append((parts[0], gid, [m for m in members if m]))
    return found


def _id(text, what):
    value = int(text)
    if not 0 <= value <= MAX_ID:
        raise ConfigError("%s %s is out of range" % (what, text))
    return value


def _user_parts(spec):
    spec = spec or "0"  # not stripped: runc takes " 1000" as a name
    user, sep, group = spec.partition(":")
    if not user or (sep and not group):
        raise ConfigError("user %r: expected name, uid, name:group or uid:gid" % spec)
    return user, sep, group


def ids_without_user_files(spec):
    """``(uid, gid, groups)`` as far as the USER spec alone gives them; None where the image's files decide.

    Without /etc/passwd and /etc/group (check mode before the layers are
    read): a name needs passwd for its uid, a uid without a group takes its
    primary group from passwd and its supplementary groups from group, and a
    named group needs group.  ``uid:gid`` is known in full (no supplementary
    groups, as with any explicit group).
    """
    user, sep, group = _user_parts(spec)
    uid = _id(user, "uid") if is_numeric(user) else None
    if not sep:
        return uid, None, None
    return uid, (_id(group, "gid") if is_numeric(group) else None), []


def resolve_user(spec, passwd_text, group_text):
    """``(uid, gid, [supplementary gids])`` for a USER spec, from the image's files.

    ``passwd_text``/``group_text`` are the image's /etc/passwd and /etc/group
    as text, or None when the image has none.
    """
    user, sep, group = _user_parts(spec)
    passwd = parse_passwd(passwd_text)
    groups = parse_group(group_text)
    name = None
    if is_numeric(user):
        uid = _id(user, "uid")
        gid = 0
        for entry in passwd:
            if entry[1] == uid:
                name, gid = entry[0], entry[2]
                break
    else:
        for entry in passwd:
            if entry[0] == user:
                name, uid, gid = entry
                break
        else:
            where = "its /etc/passwd" if passwd_text is not None else "no /etc/passwd"
            raise ConfigError("user %r is not defined in the image (%s); give a numeric uid instead" % (user, where))
    if group:
        if is_numeric(group):
            gid = _id(group, "gid")
        else:
            for entry in groups:
                if entry[0] == group:
                    gid = entry[1]
                    break
            else:
                where = "its /etc/group" if group_text is not None else "no /etc/group"
                raise ConfigError("group %r is not defined in the image (%s); give a numeric gid instead"
                                  % (group, where))
        return uid, gid, []
    supplementary = []
    if name is not None:
        for gname, ggid, members in groups:
            if name in members and ggid != gid and ggid not in supplementary:
                supplementary.append(ggid)
    return uid, gid, sorted(supplementary)


def needs_user_files(spec):
    """Whether resolving ``spec`` needs the image's passwd/group."""
    user, dummy, group = (spec or "0").partition(":")
    return not (is_numeric(user) and is_numeric(group))


# ---------------------------------------------------------------------------
# everything together

def runtime_spec(config, overrides, passwd_text=None, group_text=None, user_files=True):
    """The process spec as a dict.

    ``config`` is the image config's ``config`` member; ``overrides`` the
    module options entrypoint, cmd, env, workdir, user, stop_signal (None
    meaning "keep the image's").  ``user_files=False``: the image's
    /etc/passwd and /etc/group are not at hand (its layers were not read),
    so ``uid``, ``gid`` and ``groups`` are None where they would decide.
    """
    config = config or {}
    user = overrides.get("user")
    if user is None:
        user = config.get("User") or ""
    if user_files:
        uid, gid, groups = resolve_user(user, passwd_text, group_text)
    else:
        uid, gid, groups = ids_without_user_files(user)
    volumes = sorted(normalize_workdir(v) for v in (config.get("Volumes") or {}))
    return {
        "argv": command_argv(config, overrides.get("entrypoint"), overrides.get("cmd")),
        "env": merge_env(config.get("Env"), overrides.get("env")),
        "cwd": normalize_workdir(overrides.get("workdir") if overrides.get("workdir") is not None
                                 else config.get("WorkingDir")),
        "user": user or "0",
        "uid": uid,
        "gid": gid,
        "groups": groups,
        "stop_signal": normalize_signal(overrides.get("stop_signal") or config.get("StopSignal")),
        "volumes": volumes,
        "exposed_ports": sorted(config.get("ExposedPorts") or {}),
        "labels": dict(config.get("Labels") or {}),
    }
