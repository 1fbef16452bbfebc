# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus node_exporter textfile metrics: render, read back, merge, and write atomically.

Standard library only: the zfs_snapshots runner carries this file to the node with the zfs engine.

A textfile (``<name>.prom`` in node_exporter's ``--collector.textfile.directory``) holds one collection's samples in
the text exposition format 0.0.4.  It is written whole to a temporary file in the same directory and renamed over
the old one, so node_exporter never reads half a file (it skips names not ending in ``.prom``, which the temporary
name does not).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re
import tempfile

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError

# Debian's prometheus-node-exporter reads this directory (its /etc/default/prometheus-node-exporter)
DEFAULT_DIR = "/var/lib/prometheus/node-exporter"
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TYPES = ("gauge", "counter", "untyped")
TARGET_LABELS = ("job", "instance")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


class MetricsError(LxcriError):
    """A metric, label or file name Prometheus would not take, or no textfile directory."""

    kind = "metrics"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape(value):
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            nxt = value[index + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _number(value):
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricsError("metric value %r is not a number" % (value,))
    return number


def _format(number):
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == int(number) and abs(number) < 1e15:
        return "%d" % int(number)
    return repr(number)


def key(name, labels):
    """The identity of a sample: its name and its sorted labels."""
    return name, tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


def check(metric):
    """Refuse (MetricsError) what Prometheus would refuse: bad names, label names, types and values."""
    name = metric.get("name")
    if not name or not NAME_RE.match(str(name)):
        raise MetricsError("metric name %r: letters, digits, _ and : only, not starting with a digit" % (name,))
    for label in metric.get("labels") or {}:
        if not LABEL_RE.match(str(label)) or str(label).startswith("__"):
            raise MetricsError("metric %s: label name %r: letters, digits and _ only, not starting with a digit "
                               "or __" % (name, label))
        if label in TARGET_LABELS:
            raise MetricsError("metric %s: label %r is Prometheus' own (its scrape target's), which would rename "
                               "this one exported_%s: choose another name" % (name, label, label))
    if (metric.get("type") or "gauge") not in TYPES:
        raise MetricsError("metric %s: type %r is not one of %s" % (name, metric.get("type"), ", ".join(TYPES)))
    _number(metric.get("value"))


def read_metrics(text):
    """The samples of a textfile as metric dicts (name, labels, value, help, type), in file order."""
    helps, types, out = {}, {}, []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(None, 3)
            if len(parts) == 4:
                (helps if parts[1] == "HELP" else types)[parts[2]] = _unescape(parts[3])
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            number = float(match.group(4))
        except ValueError:
            continue
        labels = dict((k, _unescape(v)) for k, v in _LABEL.findall(match.group(3) or ""))
        out.append({"name": match.group(1), "labels": labels, "value": number})
    for metric in out:
        metric["help"] = helps.get(metric["name"])
        metric["type"] = types.get(metric["name"]) if types.get(metric["name"]) in TYPES else "gauge"
    return out


def parse(text):
    """{(name, labels): value} of a textfile's samples (comments and unreadable lines skipped)."""
    return dict((key(m["name"], m["labels"]), m["value"]) for m in read_metrics(text))


def merge(metrics, previous_text=None, others=False):
    """The metrics to write, from ``metrics`` (dicts: name, value, labels, help, type, and ``keep`` or ``increment``)
    and the file's current content: ``keep`` takes the sample's current value when it has one (a timestamp that only
    moves when something happened), ``increment`` adds the value to it (a counter).  ``others``: the file's samples
    that ``metrics`` does not give stay (else they go)."""
    previous = parse(previous_text)
    out = []
    if others:
        given = set(key(m["name"], m.get("labels")) for m in metrics)
        out = [m for m in read_metrics(previous_text) if key(m["name"], m["labels"]) not in given]
    for metric in metrics:
        check(metric)
        metric = dict(metric)
        value = _number(metric["value"])
        old = previous.get(key(metric["name"], metric.get("labels")))
        if metric.get("increment"):
            value = (old or 0.0) + value
        elif metric.get("keep") and old is not None:
            value = old
        metric["value"] = value
        out.append(metric)
    return out


def render(metrics):
    """The exposition text: per metric name a HELP and a TYPE line, then its samples, names and labels sorted."""
    by_name = {}
    for metric in metrics:
        check(metric)
        by_name.setdefault(metric["name"], []).append(metric)
    lines = []
    for name in sorted(by_name):
        group = by_name[name]
        help_text = next((m.get("help") for m in group if m.get("help")), name)
        lines.append("# HELP %s %s" % (name, str(help_text).replace("\\", "\\\\").replace("\n", "\\n")))
        lines.append("# TYPE %s %s" % (name, group[0].get("type") or "gauge"))
        seen = set()
        for metric in sorted(group, key=lambda m: key(name, m.get("labels"))):
            ident = key(name, metric.get("labels"))
            if ident in seen:
                raise MetricsError("metric %s with labels %s is given twice" % (name, dict(ident[1])))
            seen.add(ident)
            labels = ",".join('%s="%s"' % (k, _escape(v)) for k, v in ident[1])
            lines.append("%s%s %s" % (name, "{%s}" % labels if labels else "", _format(_number(metric["value"]))))
    return "\n".join(lines) + "\n" if lines else ""


def path_of(directory, name):
    if not FILE_RE.match(str(name or "")) or str(name).endswith(".prom"):
        raise MetricsError("textfile name %r: letters, digits, _, . and - (without .prom, which is added)" % (name,))
    return os.path.join(directory, name + ".prom")


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_atomic(path, text, mode=0o644):
    """Write ``text`` to ``path`` through a temporary file in the same directory, fsynced and renamed over it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def update(directory, name, metrics, check_mode=False, others=False):
    """Merge ``metrics`` with the textfile ``<directory>/<name>.prom`` (``others``: keeping its other samples) and
    write it when it changes.

    Returns (changed, path, before, after).  A missing directory raises MetricsError (node_exporter's textfile
    directory is the package's; the caller decides whether that is an error)."""
    path = path_of(directory, name)
    if not os.path.isdir(directory):
        raise MetricsError("the textfile directory %s does not exist (is prometheus-node-exporter installed?)"
                           % directory)
    before = read(path)
    after = render(merge(metrics, before, others))
    changed = before != after
    if changed and not check_mode:
        write_atomic(path, after)
    return changed, path, before, after


def remove(directory, name, check_mode=False):
    """Remove the textfile; returns (changed, path, before)."""
    path = path_of(directory, name)
    before = read(path)
    if before is None:
        return False, path, None
    if not check_mode:
        os.unlink(path)
    return True, path, before
