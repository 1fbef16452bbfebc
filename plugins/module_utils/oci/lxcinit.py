# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing an image's command, environment and user into an LXC (or Proxmox VE) config.

An OCI image runs ENTRYPOINT+CMD as an argv.  LXC runs ``lxc.init.cmd``, a
string; whether a given argv survives that string depends on the LXC that
reads it.  This module encodes argvs for a given LXC version, models what
that LXC does with a config value (so tests can check the round trip), and
builds the other ``lxc.init.*`` / ``lxc.environment`` lines and the Proxmox
VE ``entrypoint`` / ``env`` values.

Rules, as read in LXC's source (github lxc/lxc: stable-5.0, stable-6.0 and
main; the parts quoted are the same in stable-3.0 and stable-4.0):

1. Config file lines (src/lxc/parse.c, ``lxc_file_for_each_line_mmap``): the
   file is cut at every ``\\r``, ``\\n`` and NUL, so no value can hold any of
   them.  A line is ``key = value``, split at the first ``=``.
2. Value cleanup (src/lxc/confile.c, ``parse_line``, the same in 5.0, 6.0 and
   main): leading spaces and tabs are dropped (``lxc_char_left_gc``), then
   trailing spaces, tabs, ``\\n`` and NUL (``lxc_char_right_gc``); then, if the
   value starts with ``'`` or ``"`` and is longer than one character and ends
   with the same character, that ONE outer pair is removed.  No other quote
   or escape processing happens in the parser.  An empty value resets the key
   (``set_config_string_item``: ``lxc.init.cmd`` becomes unset and
   ``lxc-start`` runs ``/sbin/init``; ``lxc.environment`` with an empty value
   clears the whole environment list).
   Consequence for every key: a value can carry leading/trailing blanks or a
   same-quote first/last character only when wrapped in one extra pair of
   quotes, which the parser removes (``config_value``).
3. LXC before 6.0 (stable-5.0 src/lxc/lxccontainer.c, ``split_init_cmd``, used
   by ``do_lxcapi_start`` when ``lxc-start`` gets no command): the cleaned
   value is cut with ``lxc_iterate_parts(p, copy, " ")``, i.e. strtok_r on the
   SPACE character only.  Runs of spaces collapse, empty words vanish, tabs
   and quotes are ordinary characters inside a word (seen on this machine's
   LXC 5.0.2: ``/x a\\tb`` gives ``a<TAB>b``; ``/x 'a b'`` gives ``'a`` and
   ``b'``).  Inexpressible: an empty word, a word containing a space.
4. LXC 6.0 and later (commit 3f45443fd "Fix start api call to split quoted
   strings in execute or init command", first in v6.0.0): ``do_lxcapi_start``
   uses ``lxc_string_split_quoted`` (src/lxc/string_utils.c).  Its state
   machine: between words ``isspace()`` characters (space, ``\\t``, ``\\n``,
   ``\\v``, ``\\f``, ``\\r``) are skipped; a word starting with ``'`` or ``"``
   runs to the next same quote and its content (possibly empty: ``''`` is an
   empty word) is the word, with nothing else processed and the character
   after the closing quote starting the next scan; any other word runs to the
   next whitespace and keeps quotes inside it literally (``a'b`` is one
   word).  There is no escape syntax ("TODO I'm *not* handling escaped
   quote"); an unterminated quoted word at the end is silently dropped.
   Inexpressible: a word that needs quoting (empty, containing whitespace, or
   starting with a quote) and contains both ``'`` and ``"``; any word with a
   line break (rule 1).
5. ``lxc.environment = NAME=value`` (``set_config_environment``): split at the
   first ``=``; a value without ``=`` is looked up in the *host's* environment
   of lxc-start, so entries here always carry ``=``.  ``lxc.init.cwd`` goes
   through ``lxc_path_simplify`` (same directory, normalised spelling);
   ``lxc.init.uid``/``gid`` are unsigned integers; ``lxc.init.groups`` a comma
   list of gids; ``lxc.signal.halt`` (``sig_parse`` in confile_utils.c) takes a
   number or a name that must start with ``SIG`` (``SIGTERM``, not ``TERM``),
   or ``SIGRTMIN+n``/``SIGRTMAX-n``.

Proxmox VE (github proxmox/pve-container at 6.1.10, pve-common for the
quoting), as relevant here:

- ``src/PVE/LXC.pm`` ``update_lxc_config`` writes
  ``lxc.init.cmd = $conf->{entrypoint}`` verbatim, no quoting or escaping, so
  the ``entrypoint`` option is simply an LXC 6.0 value (PVE 9.x ships
  lxc-pve 6.0.x): ``pve_entrypoint`` is the 6.0 encoding.  The option's schema
  (src/PVE/LXC/Config.pm) refuses control characters other than tab, and the
  ``.conf`` reader drops leading/trailing blanks of every value.
- ``env`` is NUL-separated ``NAME=value`` (schema: names ``\\w+``, values
  without control characters except tab) and is written as one
  ``lxc.environment.runtime = NAME=value`` line each (upstream that key came
  with LXC 7.0; lxc-pve 6.0 must carry it), so trailing blanks of a value are
  lost (rule 2; the line starts with the name, so it cannot be quoted).
- The 9.1 OCI importer (``src/PVE/LXC/Create.pm``) builds ``entrypoint`` from
  Entrypoint+Cmd with ``PVE::Tools::cmd2string``, i.e. String::ShellQuote:
  a word of only ``[\\w!%+,-./:=@^]`` without ``=`` stays bare, anything else is
  put in ``'...'`` with ``'`` written as ``'\\''``.  That is shell syntax, and
  LXC 6.0 is no shell: a word containing ``'`` comes out as several words
  (``it's`` -> ``'it'\\''s'`` -> ``it``, ``\\''s'``), and when the first and the
  last word both get quoted the parser's outer-quote strip (rule 2) eats the
  first and last quote and shifts every word boundary (``['/my app', 'x y']``
  -> ``'/my app' 'x y'`` -> ``/my``, ``app'``).  An argv whose first word is
  ``/sbin/init`` is not written at all (its arguments are lost).  The
  importer's control-character check uses ``[\\x00-\\x08\\x10-\\x1F\\x7F]``, the
  range that commit 2785bef corrected (to ``\\x0a``) in Config.pm only, so
  ``\\x0a``-``\\x0f`` pass it and are left to the config writer (which
  refuses ``\\n``) and reader (schema pattern).
  ``pve_import_value`` models the importer (``shell_quote_word`` reads ``\\w``
  as ASCII, so it may quote a non-ASCII word that Perl leaves bare; LXC 6.0
  reads both the same); ``pve_import_command`` picks an
  Entrypoint/Cmd for an archive such that the importer ends up with our argv
  (or says it cannot).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import (
    LxcConfigError, NotExpressible)

LXC_QUOTING_MIN = (6, 0)
DEFAULT_INIT = "/sbin/init"
QUOTES = ("'", '"')
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_LINE_ENDS = ("\r", "\n", "\0")
_PVE_CONTROL = re.compile(u"[\x00-\x08\x0a-\x1f\x7f]")
_PVE_ENV_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SHELLQUOTE_UNSAFE = re.compile(r"[^A-Za-z0-9_!%+,\-./:=@^]")
_SHELLQUOTE_RUN = re.compile(r"((?:'\\''){2,})")

# Linux signal names (the generic numbering of x86, arm, arm64, ppc, s390, riscv)
# as LXC's sig_parse knows them, without the SIG prefix.
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
    "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
    "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30,
    "SYS": 31, "UNUSED": 31,
}
SIGRTMIN = 34  # glibc's (the kernel's 32 and 33 are reserved by NPTL); Docker and LXC count from it
SIGRTMAX = 64


# ---------------------------------------------------------------------------
# versions

def parse_lxc_version(version):
    """``"6.0.4"``, ``"5.0.2-2+deb12u2"``, ``"6"``, ``(6, 0)`` -> ``(major, minor, patch)``."""
    if isinstance(version, (tuple, list)):
        parts = [int(v) for v in version]
    else:
        match = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(version))
        if not match:
            raise LxcConfigError("cannot read an LXC version from %r (expected something like 6.0.4)" % (version,))
        parts = [int(v) for v in match.groups() if v is not None]
    if not parts:
        raise LxcConfigError("cannot read an LXC version from %r" % (version,))
    return tuple((parts + [0, 0])[:3])


def compare_lxc_versions(left, right):
    """-1, 0 or 1 like cmp(), on parsed versions."""
    a, b = parse_lxc_version(left), parse_lxc_version(right)
    return (a > b) - (a < b)


def lxc_splits_quoted(lxc_version):
    """True when that LXC splits ``lxc.init.cmd`` with quote support (6.0 and later)."""
    return parse_lxc_version(lxc_version)[:2] >= LXC_QUOTING_MIN


# ---------------------------------------------------------------------------
# the config parser's value handling (rules 1 and 2)

def config_value_cleanup(value):
    """What LXC's ``parse_line`` hands to a key's setter for ``key = <value>``."""
    value = value.lstrip(" \t").rstrip(" \t\n\0")
    if len(value) > 1 and value[0] in QUOTES and value[-1] == value[0]:
        value = value[1:-1]
    return value


def config_value(text, what="the value"):
    """The text to write after ``key = `` so that LXC's parser yields exactly ``text``.

    Wraps ``text`` in one pair of double quotes when the parser would
    otherwise trim blanks or strip a quote pair of it.
    """
    for char in _LINE_ENDS:
        if char in text:
            raise LxcConfigError("%s %r contains %s, which ends an LXC config line"
                                 % (what, text, {"\r": "a carriage return", "\n": "a newline", "\0": "a NUL byte"}[char]))
    if text and (text[0] in " \t" or text[-1] in " \t" or (len(text) > 1 and text[0] in QUOTES and text[-1] == text[0])):
        return '"%s"' % text
    return text


# ---------------------------------------------------------------------------
# lxc.init.cmd (rules 3 and 4)

def _split_v5(text):
    return [word for word in text.split(" ") if word]


def _split_v6(text):
    words = []
    state = " "
    start = 0
    for pos, char in enumerate(text):
        if state == " ":
            if char in _C_SPACE:
                continue
            start = pos
            state = char if char in QUOTES else "a"
        elif state == "a":
            if char in _C_SPACE:
                words.append(text[start:pos])
                state = " "
        elif char == state:
            words.append(text[start + 1:pos])
            state = " "
    if state == "a":
        words.append(text[start:])
    return words


def split_init_cmd(value, lxc_version):
    """The argv that LXC ``lxc_version`` runs for the config line ``lxc.init.cmd = <value>``.

    A value that cleans up to nothing leaves ``lxc.init.cmd`` unset, and
    ``lxc-start`` runs ``/sbin/init``; so does a 5.0 value with no words.
    Under 6.0 a non-empty value without words gives ``[]`` (the start fails).
    """
    text = config_value_cleanup(value)
    if not text:
        return [DEFAULT_INIT]
    if lxc_splits_quoted(lxc_version):
        return _split_v6(text)
    return _split_v5(text) or [DEFAULT_INIT]


def _line_end_check(index, word):
    for char, name in (("\n", "a newline"), ("\r", "a carriage return"), ("\0", "a NUL byte")):
        if char in word:
            raise NotExpressible(index, word, "it contains %s; LXC reads its config line by line and C strings end at NUL"
                                 % name)


def _word_v5(index, word, version_text):
    _line_end_check(index, word)
    if word == "":
        raise NotExpressible(index, word, "LXC %s drops empty words from lxc.init.cmd (it splits at spaces and has no "
                                          "quoting; quoting came with LXC 6.0)" % version_text)
    if " " in word:
        raise NotExpressible(index, word, "LXC %s splits lxc.init.cmd at every space and has no quoting (quoting came "
                                          "with LXC 6.0)" % version_text)
    return word


def _word_v6(index, word, prefer='"'):
    _line_end_check(index, word)
    if word and word[0] not in QUOTES and not any(char in _C_SPACE for char in word):
        return word
    for quote in (prefer, "'" if prefer == '"' else '"'):
        if quote not in word:
            return quote + word + quote
    if not word or word[0] in QUOTES:
        why = "starts with a quote"
    else:
        why = "contains whitespace"
    raise NotExpressible(index, word, "LXC 6.0+ keeps such a word (it %s) whole only inside '...' or \"...\" and has no "
                                      "escape, but it contains both quote characters" % why)


def _inner_text(argv, lxc_version, prefer='"'):
    """The string LXC's splitter must see (before the config parser's cleanup)."""
    if not argv:
        raise NotExpressible(None, None, "the command is empty")
    if lxc_splits_quoted(lxc_version):
        return " ".join(_word_v6(i, w, prefer) for i, w in enumerate(argv))
    version_text = "%d.%d" % parse_lxc_version(lxc_version)[:2]
    return " ".join(_word_v5(i, w, version_text) for i, w in enumerate(argv))


def encode_init_cmd(argv, lxc_version):
    """The value for ``lxc.init.cmd = <value>`` that LXC ``lxc_version`` splits back into ``argv``.

    Raises NotExpressible (word index, word, reason) when that LXC cannot be
    told this argv.
    """
    argv = list(argv)
    value = config_value(_inner_text(argv, lxc_version))
    if split_init_cmd(value, lxc_version) != argv:  # a defect here, not in the input
        raise NotExpressible(None, None, "internal check failed: %r does not split back into %r" % (value, argv))
    return value


# ---------------------------------------------------------------------------
# Proxmox VE

def _pve_control_check(argv, what):
    for index, word in enumerate(argv):
        match = _PVE_CONTROL.search(word)
        if match:
            raise NotExpressible(index, word, "%s refuses control characters other than tab (found %r)"
                                 % (what, match.group(0)))


def pve_entrypoint(argv):
    """The Proxmox VE 9.1+ ``entrypoint`` value for ``argv`` (written as ``lxc.init.cmd`` for lxc-pve 6.0)."""
    argv = list(argv)
    _pve_control_check(argv, "Proxmox VE's entrypoint option")
    return encode_init_cmd(argv, LXC_QUOTING_MIN)


def shell_quote_word(word):
    """One word quoted the way String::ShellQuote 1.04 ``shell_quote`` does (PVE's cmd2string)."""
    if word == "":
        return "''"
    if "=" not in word and not _SHELLQUOTE_UNSAFE.search(word):
        return word
    quoted = word.replace("'", "'\\''")
    quoted = _SHELLQUOTE_RUN.sub(lambda m: "'\"" + "'" * (len(m.group(1)) // 4) + "\"'", quoted)
    quoted = "'" + quoted + "'"
    if quoted.startswith("''"):
        quoted = quoted[2:]
    if quoted.endswith("''"):
        quoted = quoted[:-2]
    return quoted


def pve_import_value(argv):
    """What Proxmox VE 9.1's OCI importer stores as ``entrypoint`` for Entrypoint+Cmd ``argv``.

    None when it stores nothing (empty argv, or argv[0] is ``/sbin/init``: the
    container then runs ``/sbin/init`` without arguments).  Raises
    NotExpressible for words that the importer or the config refuses.
    """
    argv = list(argv)
    _pve_control_check(argv, "Proxmox VE's OCI import and config")
    if not argv or argv[0] == DEFAULT_INIT:
        return None
    return " ".join(shell_quote_word(word) for word in argv)


def _imported_argv(words):
    value = pve_import_value(words)
    return [DEFAULT_INIT] if value is None else split_init_cmd(value, LXC_QUOTING_MIN)


def pve_import_command(argv):
    """``(entrypoint, cmd)`` for an OCI archive so that Proxmox VE 9.1's import runs exactly ``argv``.

    The importer's own quoting only survives LXC 6.0 for plain words, so the
    fallback hands it the whole 6.0-encoded command as ONE word: the importer
    wraps it in '...', and LXC's config parser strips exactly that pair.
    That works unless the command contains a single quote.  ``cmd`` is
    always None (the image's Cmd is folded into the entrypoint).
    """
    argv = list(argv)
    if not argv:
        raise NotExpressible(None, None, "the command is empty")
    _pve_control_check(argv, "Proxmox VE's OCI import and config")
    if _imported_argv(argv) == argv:
        return argv, None
    try:
        whole = [_inner_text(argv, LXC_QUOTING_MIN)]
    except NotExpressible:
        whole = None
    if whole is not None and _imported_argv(whole) == argv:
        return whole, None
    for index, word in enumerate(argv):
        if "'" in word:
            raise NotExpressible(index, word, "Proxmox VE 9.1's OCI import escapes a single quote as '\\'' (shell "
                                              "syntax), which LXC 6.0 does not undo")
    for index, word in enumerate(argv):
        if _word_v6(index, word).startswith("'"):
            raise NotExpressible(index, word, "LXC 6.0 needs this word in '...' (it contains a double quote), and "
                                              "Proxmox VE 9.1's OCI import escapes single quotes shell-style")
    raise NotExpressible(None, None, "Proxmox VE 9.1's OCI import cannot be made to produce %r" % (argv,))


def env_item_split(item):
    """``"NAME=value"`` -> ``(NAME, value)``; an entry without ``=`` is refused."""
    name, sep, value = item.partition("=")
    if not sep:
        raise LxcConfigError("environment entry %r has no '=' (LXC would copy the value of %r from the host's "
                             "environment)" % (item, item))
    return name, value


def env_value_check(name, value):
    """Refuse an environment entry that no LXC config line can carry."""
    if not name:
        raise LxcConfigError("environment entry %r has an empty name" % ("%s=%s" % (name, value)))
    if "=" in name:
        raise LxcConfigError("environment variable name %r contains '='" % name)
    for char, what in (("\0", "a NUL byte"), ("\n", "a newline"), ("\r", "a carriage return")):
        if char in name:
            raise LxcConfigError("environment variable name %r contains %s" % (name, what))
        if char in value:
            raise LxcConfigError("the value of environment variable %s contains %s, which an LXC config line cannot "
                                 "hold (LXC reads its config line by line)" % (name, what))


def pve_env(env_list):
    """The Proxmox VE 9.1+ ``env`` value: the entries, NUL-separated, checked against what PVE accepts."""
    items = []
    for item in env_list:
        name, value = env_item_split(item)
        env_value_check(name, value)
        if not _PVE_ENV_NAME.match(name):
            raise LxcConfigError("Proxmox VE's env option only takes names made of letters, digits and '_'; %r is "
                                 "not one" % name)
        match = _PVE_CONTROL.search(value)
        if match:
            raise LxcConfigError("Proxmox VE's env option refuses control characters other than tab; the value of %s "
                                 "contains %r" % (name, match.group(0)))
        if value[-1:] in (" ", "\t"):
            raise LxcConfigError("the value of %s ends with a blank, which Proxmox VE's and LXC's config readers both "
                                 "drop (the env option's lines cannot be quoted)" % name)
        items.append("%s=%s" % (name, value))
    return "\0".join(items)


# ---------------------------------------------------------------------------
# signals

def parse_signal(sig):
    """``(name, number)`` for ``15``, ``"15"``, ``"TERM"``, ``"SIGTERM"``, ``"SIGRTMIN+3"``.

    ``name`` is without the SIG prefix (``"RTMIN+3"`` for real-time signals,
    None for a plain number); numbers use the generic Linux numbering.
    """
    if isinstance(sig, int) and not isinstance(sig, bool):
        text = str(sig)
    elif isinstance(sig, str):
        text = sig.strip()
    else:
        raise LxcConfigError("a signal must be a name or a number, not %r" % (sig,))
    if text.isdigit():
        number = int(text)
        if not 0 < number <= SIGRTMAX:
            raise LxcConfigError("signal number %s is out of range 1-%d" % (text, SIGRTMAX))
        return None, number
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return name, SIGNALS[name]
    match = re.match(r"^RT(MIN|MAX)(?:([+-])(\d+))?$", name)
    if match:
        base, sign, offset = match.groups()
        offset = int(offset or 0)
        if (base == "MIN" and sign == "-") or (base == "MAX" and sign == "+"):
            raise LxcConfigError("signal %r: use RTMIN+n or RTMAX-n" % (sig,))
        number = SIGRTMIN + offset if base == "MIN" else SIGRTMAX - offset
        if not SIGRTMIN <= number <= SIGRTMAX:
            raise LxcConfigError("signal %r is outside SIGRTMIN..SIGRTMAX" % (sig,))
        return ("RT%s%s%d" % (base, "+" if base == "MIN" else "-", offset)) if offset else "RT" + base, number
    raise LxcConfigError("unknown signal %r (expected a name like SIGTERM or a number)" % (sig,))


def lxc_signal(sig):
    """``sig`` spelled the way LXC's ``lxc.signal.halt`` parser takes it (``SIGTERM``, ``SIGRTMIN+3``, ``15``)."""
    name, number = parse_signal(sig)
    return "SIG" + name if name else str(number)


# ---------------------------------------------------------------------------
# raw config lines

def lxc_config_items(cwd=None, uid=None, gid=None, env_list=(), halt_signal=None, groups=None):
    """``(key, value)`` pairs for ``lxc.init.cwd/uid/gid/groups``, ``lxc.environment`` and ``lxc.signal.halt``.

    Values are ready to write after ``key = `` (quoted where the parser
    would otherwise change them).
    """
    items = []
    if cwd is not None:
        if not cwd.startswith("/"):
            raise LxcConfigError("the working directory must be an absolute path, not %r" % (cwd,))
        items.append(("lxc.init.cwd", config_value(cwd, "the working directory")))
    for key, value in (("lxc.init.uid", uid), ("lxc.init.gid", gid)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32 - 1:
                raise LxcConfigError("%s must be an integer id in 0..4294967294, not %r" % (key, value))
            items.append((key, str(value)))
    if groups:
        for value in groups:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32 - 1:
                raise LxcConfigError("lxc.init.groups: %r is not a group id" % (value,))
        items.append(("lxc.init.groups", ",".join(str(g) for g in groups)))
    for item in env_list or ():
        name, value = env_item_split(item)
        env_value_check(name, value)
        items.append(("lxc.environment", config_value("%s=%s" % (name, value), "environment entry")))
    if halt_signal is not None:
        items.append(("lxc.signal.halt", lxc_signal(halt_signal)))
    return items


def lxc_config_lines(cwd=None, uid=None, gid=None, env_list=(), halt_signal=None, groups=None):
    """``lxc_config_items`` as ``"key = value"`` lines of an LXC config file."""
    return ["%s = %s" % item for item in lxc_config_items(cwd, uid, gid, env_list, halt_signal, groups)]
