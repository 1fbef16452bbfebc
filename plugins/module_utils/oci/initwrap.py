# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated init scripts placed in templates, for when LXC cannot run the image's command itself.

``exec_wrapper`` (``/.lxcri/exec``): the target LXC cannot be told the argv
(LXC 5.0 has no quoting, see lxcinit), but the image has ``/bin/sh``.  The
script optionally sets the exact environment, then ``exec``s the argv, so the
application is PID 1 exactly as with ``lxc.init.cmd``.

``init_wrapper`` (``/sbin/init``): Proxmox VE before 9.1 has no
``entrypoint``/``env`` options and runs ``/sbin/init``.  The script stays
PID 1 and does the runtime's work:

- cwd: ``cd`` to the image's WorkingDir (as root, before switching user, and
  once more after it, ignoring a failure there, like runc);
- user: switches to uid/gid/groups with a tool FOUND IN THE IMAGE
  (``drop_tool_candidates``; util-linux ``setpriv`` sets any groups, the
  others only what they can, and ``choose_drop_tool`` only offers a tool that
  produces exactly the requested groups);
- environment: a second ``/bin/sh -c`` step, run after the user switch (some
  tools set HOME, shells add PWD, SHLVL or PATH), unsets every exported
  variable and exports exactly the image's list, then ``exec``s the argv;
- PID 1 duties: the app runs as a child of the script.  ``lxc-stop`` and
  ``pct shutdown`` send the halt signal (SIGPWR unless ``lxc.signal.halt``
  says otherwise) to PID 1; the script traps SIGPWR, SIGTERM and SIGINT and
  sends the image's StopSignal (default SIGTERM) to the app.  It waits with
  the ``wait`` builtin, which in dash and BusyBox ash collects ANY child
  (waitpid(-1)), so orphans re-parented to PID 1 are reaped while the app
  runs (tested with real containers: tests/integration/test_initwrap.py).  When
  the app exits, the script exits with its status (128+n for a signal), which
  ends the container; processes left behind are killed by the kernel with
  the PID namespace.
- A POSIX shell starts an asynchronous command with SIGINT and SIGQUIT
  ignored (job control is off without a terminal), and a program started
  with SIGINT ignored keeps it so (Python, Go, shell scripts).  The script
  therefore starts the app through coreutils ``env --default-signal=INT,QUIT``
  (coreutils 8.31+) when ``/usr/bin/env`` supports it, which resets both to
  the default; otherwise the app starts with them ignored, which matters
  only to an app that relies on the default action of SIGINT/SIGQUIT (a
  StopSignal of SIGINT or SIGQUIT then needs an app that installs its own
  handler, as nginx and PostgreSQL do).
- stdin: an asynchronous command's stdin is /dev/null in sh; the script hands
  the app its own stdin (the console) instead.

Known differences from an OCI runtime: with bash as ``/bin/sh`` the app also
gets ``SHLVL=0`` (bash's ``exec`` exports it); a name that the shell keeps
readonly cannot be exported.  Environment names must be shell identifiers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import LxcConfigError, WrapperError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.lxcinit import env_item_split, parse_signal

EXEC_WRAPPER_PATH = "/.lxcri/exec"
INIT_WRAPPER_PATH = "/sbin/init"
INIT_COPY_PATH = "/.lxcri/init"
WRAPPER_MODE = 0o755
SHELL = "/bin/sh"
SIGNAL_RESET = ("/usr/bin/env", "--default-signal=INT,QUIT")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A tool to switch user, as a candidate to look for: ``paths`` in the order
# tried; ``argv`` the prefix before the command, with {path} {uid} {gid}
# {groups} (setpriv's groups option) {user} {inner} placeholders; ``groups``
# what the tool leaves as supplementary groups: "any" (exactly those asked),
# "gid" (just the gid), "none" (none), "account" (the image's groups of the
# account named {user}, as initgroups(3) builds them); ``busybox`` whether a
# BusyBox applet of that name works ("no": BusyBox's lacks the options,
# "only": only BusyBox's takes these arguments, "yes").
DropToolSpec = namedtuple("DropToolSpec", "name paths argv groups busybox")
# A tool found in an image: the spec's fields with one path (and the account for su).
DropTool = namedtuple("DropTool", "name path argv groups user")

_CANDIDATES = (
    DropToolSpec("setpriv", ("/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"),
                 ("{path}", "--reuid={uid}", "--regid={gid}", "{groups}", "--"), "any", "no"),
    DropToolSpec("su-exec", ("/sbin/su-exec", "/usr/sbin/su-exec", "/usr/local/bin/su-exec", "/usr/bin/su-exec",
                             "/bin/su-exec"),
                 ("{path}", "{uid}:{gid}"), "gid", "no"),
    DropToolSpec("gosu", ("/usr/local/bin/gosu", "/usr/bin/gosu", "/usr/sbin/gosu", "/bin/gosu"),
                 ("{path}", "{uid}:{gid}"), "none", "no"),
    DropToolSpec("chpst", ("/usr/bin/chpst", "/bin/chpst", "/usr/sbin/chpst", "/sbin/chpst"),
                 ("{path}", "-u", "{uid}:{gid}"), "gid", "only"),
    # su runs the shell step itself: "-c {inner} -- {user}" is followed by "sh" and the argv.
    DropToolSpec("su", ("/bin/su", "/usr/bin/su"),
                 ("{path}", "-p", "-s", SHELL, "-c", "{inner}", "--", "{user}"), "account", "yes"),
)


def drop_tool_candidates():
    """The tools to look for in an image, in order of preference (DropToolSpec tuples; ``[0]`` is the name)."""
    return list(_CANDIDATES)


def _tool_groups(rule, gid, account_groups=None):
    """The supplementary groups a tool leaves (a set), or None when it sets any asked for or gid is unknown."""
    if rule == "gid":
        return None if gid is None else {gid}
    if rule == "none":
        return set()
    if rule == "account":
        return set(account_groups or ())
    return None


def choose_drop_tool(exists, gid=None, groups=None, account=None, is_busybox=None):
    """The first candidate present in the image that yields exactly ``groups`` (a DropTool), or None.

    ``exists(path)`` says whether the image has an executable at ``path``;
    ``is_busybox(path)``, when given, whether that is a BusyBox applet
    (BusyBox's setpriv lacks the options used here, and only BusyBox's chpst
    takes numeric ``uid:gid``; without ``is_busybox`` chpst is not chosen).
    ``gid`` and ``groups`` (supplementary gids), when given, rule out tools
    that cannot produce exactly them.  ``account`` is ``(name, primary_gid,
    groups)`` of the target uid in the image's passwd/group, groups as
    initgroups(3) builds them (the primary gid plus the groups listing the
    name); su is only offered with it, and only when it matches.
    """
    wanted = None if groups is None else set(groups)
    for spec in _CANDIDATES:
        user, account_groups = None, None
        if spec.groups == "account":
            if account is None:
                continue
            user, primary, account_groups = account
            if gid is not None and primary != gid:
                continue
        produced = _tool_groups(spec.groups, gid, account_groups)
        if wanted is not None and produced is not None and produced != wanted:
            continue
        for path in spec.paths:
            if not exists(path):
                continue
            busybox = is_busybox(path) if is_busybox is not None else None
            if (spec.busybox == "no" and busybox) or (spec.busybox == "only" and not busybox):
                continue
            return DropTool(spec.name, path, spec.argv, spec.groups, user)
    return None


# ---------------------------------------------------------------------------
# script pieces

def sh_quote(word):
    """``word`` as one single-quoted sh word (``'`` written as ``'\\''``)."""
    if "\0" in word:
        raise WrapperError("%r contains a NUL byte, which no command line can carry" % (word,))
    return "'" + word.replace("'", "'\\''") + "'"


def _words(words):
    return " ".join(sh_quote(word) for word in words)


def _check_argv(argv):
    argv = list(argv)
    if not argv:
        raise WrapperError("the command is empty")
    for word in argv:
        if not isinstance(word, str):
            raise WrapperError("every word of the command must be a string, got %r" % (word,))
        if "\0" in word:
            raise WrapperError("argv word %r contains a NUL byte" % (word,))
    if argv[0].startswith("-"):
        raise WrapperError("the command %r starts with '-', which sh's exec would take as an option" % (argv[0],))
    return argv


def _env_items(env):
    items = []
    for item in env:
        try:
            name, value = env_item_split(item)
        except LxcConfigError as exc:
            raise WrapperError(str(exc))
        if not _IDENTIFIER.match(name):
            raise WrapperError("environment variable name %r is not a shell identifier; a shell script cannot set it"
                               % (name,))
        if "\0" in value:
            raise WrapperError("the value of environment variable %s contains a NUL byte" % name)
        items.append((name, value))
    return items


# Unsets every exported variable (names from ``export -p``; bash prints
# ``declare -x`` outside POSIX mode).  Lines of multi-line values that happen
# to look like ``export NAME`` only unset another name, which the exports
# after this reset anyway or which should not be there.
_ENV_RESET = """set -f
IFS='
'
for _lx_v in $(export -p); do
case $_lx_v in
'export '*|'declare -x '*)
_lx_v=${_lx_v#export }; _lx_v=${_lx_v#declare -x }; _lx_v=${_lx_v%%=*}
case $_lx_v in ''|[!A-Za-z_]*|*[!A-Za-z0-9_]*) ;; *) command unset "$_lx_v" 2>/dev/null ;; esac ;;
esac
done
unset IFS _lx_v
set +f
"""


def _env_block(env):
    lines = [_ENV_RESET]
    for name, value in _env_items(env):
        lines.append("export %s\n" % sh_quote("%s=%s" % (name, value)))
    return "".join(lines)


def exec_wrapper(argv, env=None):
    """A ``#!/bin/sh`` script that ``exec``s exactly ``argv``; with ``env`` (a list of ``NAME=value``)
    it first makes the environment exactly that list (the shell itself adds PWD, and BusyBox ash SHLVL and
    PATH, to what LXC passes)."""
    argv = _check_argv(argv)
    parts = ["#!/bin/sh\n",
             "# Generated by lxcri.proxmox: runs the image's command as init; LXC could not be given it directly.\n"]
    if env is not None:
        parts.append(_env_block(env))
    parts.append("exec %s\n" % _words(argv))
    return "".join(parts).encode("utf-8", "surrogateescape")


def _kill_option(stop_signal):
    name, number = parse_signal("SIGTERM" if stop_signal is None else stop_signal)
    if name and not name.startswith("RT"):
        return "-" + name, "SIG" + name
    return "-%d" % number, "signal %d" % number


def _drop_argv(tool, uid, gid, groups, inner):
    if groups:
        groups_opt = "--groups=" + ",".join(str(g) for g in groups)
    else:
        groups_opt = "--clear-groups"
    values = {"path": tool.path, "uid": uid, "gid": gid, "groups": groups_opt, "user": tool.user or "",
              "inner": inner}
    return [word.format(**values) for word in tool.argv]


def _check_id(what, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32 - 1:
        raise WrapperError("%s must be an integer id, not %r" % (what, value))
    return value


# ---------------------------------------------------------------------------
# the network of an app container before Proxmox VE 9.1

DHCP_SCRIPT_PATH = "/.lxcri/udhcpc"
# The commands the generated init configures interfaces with, in the order looked for; BusyBox's multi-call
# binary serves both when the image has no applet link (Debian's busybox package installs none).
IP_PATHS = ("/sbin/ip", "/usr/sbin/ip", "/bin/ip", "/usr/bin/ip")
DHCP_PATHS = ("/sbin/udhcpc", "/usr/sbin/udhcpc", "/bin/udhcpc", "/usr/bin/udhcpc")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")
# udhcpc: DHCPDISCOVER 5 times 2 s apart before the app starts, then on in the background (-b); it stays to renew
DHCP_OPTIONS = ("-b", "-t", "5", "-T", "2", "-A", "10")


def choose_net_tools(exists, dhcp=False):
    """``(ip argv prefix, udhcpc argv prefix or None)`` for the interfaces, from what the image has
    (``exists(path)``); a prefix is None when the image lacks the command."""
    def find(paths, applet):
        for path in paths:
            if exists(path):
                return [path]
        for path in BUSYBOX_PATHS:
            if exists(path):
                return [path, applet]
        return None
    return find(IP_PATHS, "ip"), (find(DHCP_PATHS, "udhcpc") if dhcp else None)


def net_needs_dhcp(net):
    return any(item.get("ip") == "dhcp" for item in net or ())


def _check_net(net):
    for item in net:
        if item.get("ip6") == "dhcp":
            raise WrapperError("%s: ip6=dhcp: the generated init runs no DHCPv6 client; use ip6=auto (SLAAC) or a "
                               "static address" % item["key"])
        for option in ("ip", "ip6", "gw", "gw6", "name"):
            if "\0" in str(item.get(option, "")) or "\n" in str(item.get(option, "")):
                raise WrapperError("%s: %s has a line break or NUL" % (item["key"], option))


def _net_block(net, ip_cmd, dhcp_cmd):
    """sh lines that configure ``net`` (config.app_net's list) as root before the app starts; a failure ends
    the init with a message on the console."""
    ip = _words(ip_cmd)
    lines = ["# the network: Proxmox VE before 9.1 configures none in a container made from an image\n",
             "_lx_net() { echo \"lxcri init: cannot configure $1\" >&2; exit 1; }\n",
             "%s link set dev lo up 2>/dev/null\n" % ip]
    for item in net:
        dev = sh_quote(item["name"])
        label = sh_quote("%s (%s)" % (item["key"], item["name"]))
        lines.append("%s link set dev %s up || _lx_net %s\n" % (ip, dev, label))
        for family, addr_key, gw_key in (("-4", "ip", "gw"), ("-6", "ip6", "gw6")):
            address = item.get(addr_key)
            if address not in (None, "dhcp", "manual", "auto"):
                scope = " scope global" if family == "-6" else ""
                lines.append("{ %s %s addr flush dev %s%s && %s %s addr add %s dev %s; } || _lx_net %s\n"
                             % (ip, family, dev, scope, ip, family, sh_quote(address), dev, label))
            gateway = item.get(gw_key)
            if gateway and address not in ("dhcp", "manual"):
                # a gateway outside the subnet gets a route of its own first, as LXC's gateway setup does
                gw = sh_quote(gateway)
                lines.append("%s %s route replace default via %s dev %s 2>/dev/null || { %s %s route replace %s dev %s "
                             "&& %s %s route replace default via %s dev %s; } || _lx_net %s\n"
                             % (ip, family, gw, dev, ip, family, gw, dev, ip, family, gw, dev, label))
        if item.get("ip") == "dhcp":
            lines.append("%s -i %s -s %s %s || _lx_net %s\n"
                         % (_words(dhcp_cmd), dev, sh_quote(DHCP_SCRIPT_PATH), _words(DHCP_OPTIONS), label))
    lines.append("unset -f _lx_net\n")
    return "".join(lines)


def dhcp_script(ip_cmd):
    """udhcpc's event script (``DHCP_SCRIPT_PATH``): applies a lease with ``ip_cmd`` (a renewal with the same
    address keeps it, so connections survive), the router as the default route and the DNS servers."""
    ip = _words(ip_cmd)
    return "".join([
        "#!/bin/sh\n",
        "# Generated by lxcri.proxmox: udhcpc's event script for the generated init (%s).\n" % INIT_WRAPPER_PATH,
        "case \"$1\" in\n",
        "deconfig)\n",
        "%s -4 addr flush dev \"$interface\"\n" % ip,
        "%s link set dev \"$interface\" up ;;\n" % ip,
        "bound|renew)\n",
        "case \"$(%s -4 addr show dev \"$interface\")\" in\n" % ip,
        "*\" $ip/${mask:-32} \"*) ;;\n",
        "*) %s -4 addr flush dev \"$interface\"; %s -4 addr add \"$ip/${mask:-32}\" dev \"$interface\" ;;\n" % (ip, ip),
        "esac\n",
        "for _r in $router; do %s -4 route replace default via \"$_r\" dev \"$interface\" && break; done\n" % ip,
        "if [ -n \"$dns\" ]; then\n",
        "{ [ -z \"$domain\" ] || echo \"search $domain\"; for _s in $dns; do echo \"nameserver $_s\"; done; } "
        "> /etc/resolv.conf 2>/dev/null\n",
        "fi ;;\n",
        "esac\n",
        "exit 0\n",
    ]).encode("utf-8", "surrogateescape")


def init_wrapper(argv, env, cwd, uid, gid, groups, stop_signal, drop_tool, net=None, net_tools=None):
    """The ``/sbin/init`` script for Proxmox VE before 9.1 (see the module doc for what it does).

    ``env`` is the image's ``NAME=value`` list (exactly what the app gets),
    ``cwd`` an absolute directory, ``groups`` the supplementary gids,
    ``stop_signal`` the image's StopSignal (None: SIGTERM), ``drop_tool`` a
    DropTool from ``choose_drop_tool`` or None; it is required unless the
    app runs as uid 0, gid 0 without supplementary groups (LXC's own init
    credentials).  ``net`` (pve config.app_net's list) are interfaces the
    script configures as root before the app starts, with ``net_tools`` from
    ``choose_net_tools`` (Proxmox VE before 9.1 configures none).
    """
    argv = _check_argv(argv)
    if not isinstance(cwd, str) or not cwd.startswith("/") or "\0" in cwd:
        raise WrapperError("the working directory must be an absolute path, not %r" % (cwd,))
    uid = _check_id("uid", uid)
    gid = _check_id("gid", gid)
    groups = [_check_id("a supplementary group", g) for g in (groups or ())]
    kill_option, signal_text = _kill_option(stop_signal)
    net_text = ""
    if net:
        _check_net(net)
        ip_cmd, dhcp_cmd = net_tools or (None, None)
        if not ip_cmd or (net_needs_dhcp(net) and not dhcp_cmd):
            raise WrapperError("configuring the interfaces needs %s, and none was given"
                               % ("ip and udhcpc" if net_needs_dhcp(net) else "ip"))
        net_text = _net_block(net, ip_cmd, dhcp_cmd)
    inner = "cd %s 2>/dev/null\n%sexec \"$@\"\n" % (sh_quote(cwd), _env_block(env or ()))
    switch = uid != 0 or gid != 0 or bool(groups)
    if switch and drop_tool is None:
        raise WrapperError("the app runs as uid %d gid %d groups %s, and no tool to switch to them was given"
                           % (uid, gid, groups))
    if switch:
        drop_tool = DropTool(*drop_tool)
        produced = _tool_groups(drop_tool.groups, gid) if drop_tool.groups != "account" else None
        if produced is not None and produced != set(groups):
            raise WrapperError("%s leaves the supplementary groups %s, not %s; use setpriv"
                               % (drop_tool.name, sorted(produced), sorted(set(groups))))
        if drop_tool.groups == "account" and not drop_tool.user:
            raise WrapperError("su needs the account name of uid %d" % uid)
        command = _drop_argv(drop_tool, uid, gid, groups, inner)
        if drop_tool.groups != "account":
            command += [SHELL, "-c", inner]
        tool_text = "switches to uid %d gid %d with %s" % (uid, gid, drop_tool.path)
    else:
        command = [SHELL, "-c", inner]
        tool_text = "stays uid 0"
    command += ["sh"] + argv
    script = [
        "#!/bin/sh\n",
        "# Generated by lxcri.proxmox: init of a container made from an OCI image (copy: %s).\n" % INIT_COPY_PATH,
        "# Stays PID 1: runs the app as its child (%s), sends it %s on SIGPWR, SIGTERM\n" % (tool_text, signal_text),
        "# or SIGINT, reaps orphans while waiting, and exits with the app's status.\n",
        "cd %s || exit 1\n" % sh_quote(cwd),
        "{ command exec 3<&0; } 2>/dev/null || exec 3</dev/null\n",
        "_lx_pid=\n",
        "_lx_stop=\n",
        "trap '_lx_stop=1; [ -z \"$_lx_pid\" ] || kill %s \"$_lx_pid\" 2>/dev/null' PWR TERM INT\n" % kill_option,
        net_text,
        "set -- %s\n" % _words(command),
        "# a child of sh starts with SIGINT and SIGQUIT ignored; coreutils env (8.31+) resets them\n",
        "if %s %s -c : 2>/dev/null; then\n" % (_words(SIGNAL_RESET), SHELL),
        "set -- %s \"$@\"\n" % _words(SIGNAL_RESET),
        "fi\n",
        "\"$@\" <&3 3<&- &\n",
        "_lx_pid=$!\n",
        "exec 3<&-\n",
        "[ -z \"$_lx_stop\" ] || kill %s \"$_lx_pid\" 2>/dev/null\n" % kill_option,
        "# wait returns 128+n when a trapped signal arrives, too; go on until the app is gone\n",
        "while :; do\n",
        "wait \"$_lx_pid\"\n",
        "_lx_rc=$?\n",
        "kill -0 \"$_lx_pid\" 2>/dev/null || break\n",
        "done\n",
        "# its status, if the shell collected it while running a trap (127: already reported above)\n",
        "wait \"$_lx_pid\" 2>/dev/null\n",
        "_lx_w=$?\n",
        "[ \"$_lx_w\" -eq 127 ] || _lx_rc=$_lx_w\n",
        "exit \"$_lx_rc\"\n",
    ]
    return "".join(script).encode("utf-8", "surrogateescape")
