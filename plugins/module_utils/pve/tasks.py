# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for Proxmox VE worker tasks.

A task is polled at ``GET /nodes/{node}/tasks/{upid}/status`` until it is
``stopped``.  Its ``exitstatus`` is ``OK``, ``WARNINGS: N`` (success; the
warning lines come from the task log) or an error text: then the wait
fails at once with the tail of ``GET .../tasks/{upid}/log``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConnectionError, PveError, PveTaskError, PveTaskTimeout)

DEFAULT_WAIT_TIMEOUT = 600
LOG_TAIL = 20
LOG_PAGE = 500
LOG_MAX_PAGES = 200  # 100000 lines: enough for any task this collection starts

# PVE::Tools::upid_decode
_UPID = re.compile(r"^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
                   r"([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$")
_WARNINGS = re.compile(r"^WARNINGS: (\d+)$")

Upid = collections.namedtuple("Upid", "node pid pstart starttime type id user")


def parse_upid(upid):
    """``UPID:node:pid:pstart:starttime:type:id:user:`` -> Upid (pid, pstart, starttime as ints)."""
    match = _UPID.match(str(upid or ""))
    if not match:
        raise PveError("not a Proxmox VE task id (UPID): %r" % (upid,))
    node, pid, pstart, starttime, kind, ident, user = match.groups()
    return Upid(node, int(pid, 16), int(pstart, 16), int(starttime, 16), kind, ident, user)


def backoff_delays(start=0.1, factor=1.5, maximum=2.0):
    """Poll intervals: ``start``, growing by ``factor`` up to ``maximum``, then ``maximum`` for ever."""
    delay = start
    while True:
        yield min(delay, maximum)
        delay = min(delay * factor, maximum)


def is_warning_line(line):
    return line.startswith("WARN:") or line.lower().startswith("warning")


class TaskResult:
    """A task that ended well: ``exitstatus`` ``OK`` or ``WARNINGS: N``."""

    def __init__(self, upid, exitstatus, warnings=None, log_tail=None, status=None):
        self.upid = upid
        self.exitstatus = exitstatus
        self.warnings = list(warnings or [])
        self.log_tail = list(log_tail or [])
        self.status = dict(status or {})

    def __repr__(self):
        return "TaskResult(%r, %r, warnings=%r)" % (self.upid, self.exitstatus, self.warnings)


def scan_task_log(client, node, upid, tail=LOG_TAIL):
    """(all warning lines, the last ``tail`` lines) of a task's log, read page by page."""
    warnings = []
    last = collections.deque(maxlen=tail)
    start = 0
    for dummy in range(LOG_MAX_PAGES):
        page = client.get("/nodes/{node}/tasks/{upid}/log", node=node, upid=upid, start=start, limit=LOG_PAGE) or []
        for entry in page:
            line = str(entry.get("t", "")) if isinstance(entry, dict) else str(entry)
            if is_warning_line(line):
                warnings.append(line)
            last.append(line)
        if len(page) < LOG_PAGE:
            break
        start += len(page)
    return warnings, list(last)


def _safe_scan(client, node, upid, tail):
    """The log for an error report: a failure to read it must not hide the task's own error."""
    try:
        return scan_task_log(client, node, upid, tail)
    except (PveApiError, PveConnectionError) as exc:
        return [], ["(the task log could not be read: %s)" % exc]


def wait_task(client, node, upid, timeout=DEFAULT_WAIT_TIMEOUT, poll=2.0, sleep=time.sleep, clock=time.monotonic,
              tail=LOG_TAIL):
    """Wait for task ``upid`` on the node that runs it.

    That is the node the UPID names, not always ``node`` (the node the call was
    about): a storage upload to another node runs on the API host, which copies
    the file over (pve-manager PVE/API2/Storage/Status.pm upload), and only the
    node that runs a task has its status ("no such task" elsewhere: PVE/API2/
    Tasks.pm read_task_status).  ``node`` serves only an id that does not parse.
    Returns a TaskResult for ``OK`` and ``WARNINGS: N``; raises PveTaskError
    at once for any other exit status, PveTaskTimeout after ``timeout``
    seconds.  Polls with backoff from 0.1 s up to ``poll`` seconds.
    """
    try:
        node = parse_upid(upid).node
    except PveError:
        if not node:
            raise
    delays = backoff_delays(maximum=max(poll, 0.01))
    started = clock()
    while True:
        try:
            status = client.get("/nodes/{node}/tasks/{upid}/status", node=node, upid=upid) or {}
        except PveApiError as exc:
            if exc.status != 595:
                raise
            # the API host cannot reach the node any more: the task may go on, end, or die with the node
            raise PveApiError(exc.status, exc.method, exc.path, exc.message, hint=(
                "node %s stopped answering while its task %s ran: whether the task finished is unknown until the "
                "node is back (see its task log there); run the play again then" % (node, upid)))
        if status.get("status") == "stopped":
            break
        waited = clock() - started
        if waited >= timeout:
            raise PveTaskTimeout(upid, waited, timeout)
        sleep(min(next(delays), timeout - waited))
    exitstatus = status.get("exitstatus")
    if exitstatus == "OK":
        return TaskResult(upid, exitstatus, status=status)
    if exitstatus and _WARNINGS.match(exitstatus):
        warnings, last = _safe_scan(client, node, upid, tail)
        return TaskResult(upid, exitstatus, warnings, last, status)
    dummy, last = _safe_scan(client, node, upid, tail)
    scrub = getattr(client, "scrub", str)
    raise PveTaskError(upid, scrub(exitstatus or "stopped without an exit status"), [scrub(line) for line in last])
