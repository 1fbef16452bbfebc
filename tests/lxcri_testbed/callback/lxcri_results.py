# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result and the stats as JSON to a file.

ansible-core's own JSON callback moved to ansible.posix; the tests need no
collection besides the one under test, and keep the normal screen output.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lxcri_results
type: aggregate
short_description: Write task results and stats as JSON to the file in LXCRI_RESULTS_FILE
description:
  - Used by the lxcri.proxmox test suite to read module results from real ansible runs.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lxcri_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.tasks = []
        self.started = {}  # task uuid -> when it started

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.time()

    def _record(self, result, status):
        start = self.started.get(result._task._uuid)
        self.tasks.append({
            "task": result.task_name if hasattr(result, "task_name") else result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "status": status,
            "seconds": round(time.time() - start, 3) if start else None,
            "result": self._convert(result._result),
        })
        # the whole file is written at the end (rewriting it after every task cost seconds per long play); a
        # failure is written at once, for a run that is then killed
        if status in ("failed", "unreachable"):
            self._write()

    def _convert(self, value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._write(stats)

    def v2_runner_on_async_failed(self, result):
        self._record(result, "failed")

    def _write(self, stats=None):
        path = os.environ.get("LXCRI_RESULTS_FILE")
        if not path:
            return
        doc = {"tasks": self.tasks, "stats": {}}
        if stats is not None:
            for host in sorted(stats.processed.keys()):
                doc["stats"][host] = stats.summarize(host)
        with open(path, "w") as handle:
            json.dump(doc, handle)
