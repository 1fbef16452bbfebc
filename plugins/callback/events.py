# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback plugin lxcri.proxmox.events: one JSON line per task result of this collection's modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: events
type: aggregate
short_description: One JSON line per task of lxcri.proxmox, with what the module measured
description:
  - Appends one JSON object per line to O(path) for every result of a task whose module is one of this collection's
    (C(lxcri.proxmox.*)) - per host, and once for a loop (its items' figures added up). Other tasks write nothing.
  - "Each line holds: C(time) (UTC, ISO 8601), C(playbook), C(play), C(task), C(module), C(host), C(duration)
    (seconds from the task's start to this host's result), C(changed), C(failed), C(skipped), C(unreachable),
    C(items) (for a loop), C(error_kind) (when failed), and C(figures): what the module returned of bytes pulled
    (C(fetched_bytes), C(fetched_blobs)), image layers (C(layers)) and cache hits (C(cache_hits), layers not
    fetched), template members and bytes (C(template_members), C(template_bytes)), Proxmox VE API requests
    (C(api_requests)), task waits (C(task_wait_seconds), the worker tasks' C(timings) added up, and C(timings) itself),
    and ZFS processes (C(zfs_processes))."
  - It never writes module arguments, messages or any other returned value, so no secret reaches the file; a task
    with C(no_log) gets no C(figures) and no C(task) name either. Safe for AWX and Automation Controller (set O(path)
    to a directory the job may write, for example through an environment variable of the execution environment).
  - A file that cannot be written is a warning, once, never a failure of the play.
options:
  path:
    description: The file the lines are appended to (made with mode 0600 when new; its directory is made).
    type: path
    default: ~/.ansible/lxcri-events.jsonl
    env:
      - name: LXCRI_EVENTS_PATH
    ini:
      - section: callback_lxcri_events
        key: path
requirements:
  - enable it, for example C(ANSIBLE_CALLBACKS_ENABLED=lxcri.proxmox.events) or C(callbacks_enabled) in ansible.cfg
"""

import datetime
import json
import os
import time

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase

PREFIX = "lxcri.proxmox."
# top-level numeric results taken as they are
PLAIN = ("fetched_bytes", "api_requests", "zfs_processes")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def figures_of(result):
    """The figures of one module result (a dict): numbers only, from the keys listed in the documentation."""
    out = dict((key, result[key]) for key in PLAIN if _number(result.get(key)))
    fetched = result.get("fetched_blobs")
    if isinstance(fetched, list):
        out["fetched_blobs"] = len(fetched)
    layers = result.get("layers")
    if isinstance(layers, list):
        out["layers"] = len(layers)
        if isinstance(fetched, list):
            # a layer whose blob this run did not fetch came from the cache
            out["cache_hits"] = sum(1 for layer in layers if isinstance(layer, dict) and layer.get("digest")
                                    and layer["digest"] not in fetched)
    conversion = result.get("conversion")
    if isinstance(conversion, dict):
        for source, target in (("members", "template_members"), ("bytes", "template_bytes")):
            if isinstance(conversion.get(source), int):
                out[target] = conversion[source]
    timings = result.get("timings")
    if isinstance(timings, dict):
        numbers = dict((k, v) for k, v in timings.items() if _number(v))
        if numbers:
            out["timings"] = numbers
            waits = [v for k, v in numbers.items() if k not in ("total", "lock_wait")]
            out["task_wait_seconds"] = round(sum(waits), 3)
    return out


def add_up(figures):
    """The figures of a loop's items, added up (``timings`` per key)."""
    total = {}
    for item in figures:
        for key, value in item.items():
            if key == "timings":
                timings = total.setdefault("timings", {})
                for name, seconds in value.items():
                    timings[name] = round(timings.get(name, 0) + seconds, 3)
            else:
                total[key] = total.get(key, 0) + value
    return total


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lxcri.proxmox.events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.started = {}
        self.playbook = None
        self.play = None
        self.warned = False

    # -- what happens ------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(to_text(playbook._file_name))

    def v2_playbook_on_play_start(self, play):
        self.play = to_text(play.get_name()).strip()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self.started[task._uuid] = time.time()

    def v2_runner_on_ok(self, result):
        self._event(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._event(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._event(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._event(result, unreachable=True)

    # -- the line ----------------------------------------------------------------------
    @staticmethod
    def _module(task):
        for name in (getattr(task, "resolved_action", None), task.action):
            if name and to_text(name).startswith(PREFIX):
                return to_text(name)
        return None

    def _event(self, result, failed=False, skipped=False, unreachable=False):
        task = result._task
        module = self._module(task)
        if module is None:
            return
        data = result._result if isinstance(result._result, dict) else {}
        started = self.started.get(task._uuid)
        hidden = bool(task.no_log) or data.get("_ansible_no_log") is True
        line = {
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "playbook": self.playbook,
            "play": self.play,
            "task": None if hidden else to_text(task.get_name()),
            "module": module,
            "host": to_text(result._host.get_name()),
            "duration": round(time.time() - started, 3) if started else None,
            "changed": bool(data.get("changed")),
            "failed": bool(failed or data.get("failed")),
            "skipped": bool(skipped),
            "unreachable": bool(unreachable),
        }
        items = data.get("results") if isinstance(data.get("results"), list) else None
        if items is not None:
            line["items"] = len(items)
        if line["failed"]:
            kinds = [data.get("error_kind")] + [item.get("error_kind") for item in items or [] if isinstance(item, dict)]
            kinds = [to_text(kind) for kind in kinds if isinstance(kind, str)]
            if kinds:
                line["error_kind"] = kinds[0]
        if not hidden and not skipped and not unreachable:
            if items is not None:
                line["figures"] = add_up(figures_of(item) for item in items if isinstance(item, dict))
            else:
                line["figures"] = figures_of(data)
        self._write(line)

    def _write(self, line):
        path = os.path.expanduser(to_text(self.get_option("path")))
        try:
            directory = os.path.dirname(path)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            # one write of the whole line with O_APPEND: lines of parallel forks and runs do not interleave
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except (IOError, OSError) as exc:
            if not self.warned:
                self.warned = True
                self._display.warning("lxcri.proxmox.events: cannot write %s: %s; no events are recorded"
                                      % (path, to_text(exc)))
