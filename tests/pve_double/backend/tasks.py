"""Task endpoints: a task's status and a page of its log (the tasks themselves: pve_double/tasks.py)."""

from ..schema import ApiError, Response


class TaskEndpoints:
    """GET /nodes/{node}/tasks/{upid}/status and .../log."""

    def task_status(self, params):
        task = self.tasks.get(params["upid"])
        if task is None:
            raise ApiError(500, "unable to parse worker upid '%s'" % params["upid"])
        return task.as_status()

    def task_log(self, params):
        """A page of the log as pve-manager's read_task_log: lines numbered from 1, ``total`` beside ``data``.

        ``limit`` 0 reads to the end; a log without lines has one "no content" line (PVE::Tools::dump_logfile).
        """
        task = self.tasks.get(params["upid"])
        if task is None:
            raise ApiError(500, "unable to parse worker upid '%s'" % params["upid"])
        start = int(params.get("start", 0))
        limit = int(params.get("limit", 50))
        lines = [{"n": i + 1, "t": line} for i, line in enumerate(list(task.lines))] or [{"n": 1, "t": "no content"}]
        return Response(lines[start:start + limit] if limit else lines[start:], total=len(lines))
