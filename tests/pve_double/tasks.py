"""Asynchronous worker tasks with real UPIDs, logs, exit statuses and injected faults."""

import os
import threading
import time


class TaskFailed(Exception):
    """Raised by a task's work to end it with this exitstatus text."""


class Task:
    def __init__(self, node, kind, ident, user, serial):
        self.node = node
        self.type = kind
        self.id = str(ident or "")
        self.user = user
        self.pid = os.getpid() * 16 + serial % 16
        self.pstart = serial
        self.starttime = int(time.time())
        fields = (node, self.pid, self.pstart, self.starttime, kind, self.id, user)
        self.upid = "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % fields
        self.status = "running"
        self.exitstatus = None
        self.lines = []
        self.done = threading.Event()

    def log(self, text):
        self.lines.append(str(text))

    def as_status(self):
        data = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
                "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.user,
                "status": self.status}
        if self.status == "stopped":
            data["exitstatus"] = self.exitstatus
        return data


class TaskManager:
    def __init__(self, node):
        self.node = node
        self.tasks = {}
        self.lock = threading.Lock()
        self.serial = 0
        self.faults = []  # [kind, exitstatus, remaining]
        self.delay = 0.0  # seconds every task waits first ("slow tasks down")
        self.after = None  # called when any task ends, before its status says so (the backend syncs its files)

    def inject(self, kind, exitstatus="command failed (injected)", times=1):
        with self.lock:
            self.faults.append([kind, exitstatus, times])

    def _take_fault(self, kind):
        with self.lock:
            for fault in self.faults:
                if fault[0] in (kind, "*") and fault[2] > 0:
                    fault[2] -= 1
                    return fault[1]
        return None

    def start(self, kind, ident, user, work, cleanup=None):
        """Run ``work(task)`` in a thread; its return value is a warning count (or None).

        ``cleanup(task)`` runs after any failure, injected ones included, so a
        failed task leaves what a failed PVE worker leaves: nothing half done.
        """
        with self.lock:
            self.serial += 1
            task = Task(self.node, kind, ident, user, self.serial)
            self.tasks[task.upid] = task
        fault = self._take_fault(kind)

        def runner():
            try:
                if self.delay:
                    time.sleep(self.delay)
                if fault is not None:
                    raise TaskFailed(fault)
                warnings = work(task)
                task.exitstatus = "WARNINGS: %d" % warnings if warnings else "OK"
            except Exception as exc:  # pylint: disable=broad-except
                task.log("TASK ERROR: %s" % exc)
                task.exitstatus = str(exc) or type(exc).__name__
                if cleanup is not None:
                    cleanup(task)
            else:
                task.log("TASK %s" % task.exitstatus)
            if self.after is not None:
                self.after()
            task.status = "stopped"
            task.done.set()

        threading.Thread(target=runner, daemon=True).start()
        return task.upid

    def get(self, upid):
        return self.tasks.get(upid)
