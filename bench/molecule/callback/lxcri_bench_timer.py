# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/molecule's task timer: ``<seconds> <task name>`` per task, appended to $LXCRI_BENCH_TIMER_FILE at the end."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lxcri_bench_timer
type: aggregate
short_description: Task wall times for bench/molecule
description: Appends each task's wall time to the file that C(LXCRI_BENCH_TIMER_FILE) names.
"""

import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lxcri_bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.started = None
        self.name = None
        self.rows = []

    def _close(self):
        if self.started is not None:
            self.rows.append((time.monotonic() - self.started, self.name))
            self.started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.started, self.name = time.monotonic(), task.name or task.get_name()

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("LXCRI_BENCH_TIMER_FILE")
        if path:
            with open(path, "a") as handle:
                for seconds, name in self.rows:
                    handle.write("%.3f %s\n" % (seconds, name))
