"""Task endpoints: a task's status and a page of its log (the tasks themselves: pve_double/tasks.py)."""

import re

from ..schema import ApiError, Response


# PVE::Tools::upid_decode
UPID = re.compile(r"^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:"
                  r"[^:\s]+:[^:\s]*:[^:\s]+:$")


class TaskEndpoints:
    """GET /nodes/{node}/tasks/{upid}/status and .../log."""

    def _task(self, params):
        """pve-manager PVE/API2/Tasks.pm read_task_status/read_task_log: a UPID that does not parse, or whose
        task file is not on this node (it names another node: the task ran there), is a parameter error."""
        upid = params["upid"]
        match = UPID.match(upid)
        if not match:
            raise ApiError(400, "Parameter verification failed.", {"upid": "unable to parse worker upid"})
        task = self.tasks.get(upid)
        if task is None or match.group(1) != params["node"]:
            raise ApiError(400, "Parameter verification failed.", {"upid": "no such task"})
        return task

    def task_status(self, params):
        return self._task(params).as_status()

    def task_log(self, params):
        """A page of the log as pve-manager's read_task_log: lines numbered from 1, ``total`` beside ``data``.

        ``limit`` 0 reads to the end; a log without lines has one "no content" line (PVE::Tools::dump_logfile).
        """
        task = self._task(params)
        start = int(params.get("start", 0))
        limit = int(params.get("limit", 50))
        lines = [{"n": i + 1, "t": line} for i, line in enumerate(list(task.lines))] or [{"n": 1, "t": "no content"}]
        return Response(lines[start:start + limit] if limit else lines[start:], total=len(lines))
