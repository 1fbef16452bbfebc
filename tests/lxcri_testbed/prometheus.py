"""Debian's prometheus-node-exporter and prometheus on 127.0.0.1, for the metrics tests (issue 20).

node_exporter runs only its textfile collector, on a directory of the test's own; Prometheus scrapes it every
second into a throwaway TSDB.  ``query(expr)`` asks Prometheus' HTTP API (``/api/v1/query``), as a dashboard
or an alert rule would.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

from .sshd import free_port

NODE_EXPORTER = "prometheus-node-exporter"
PROMETHEUS = "prometheus"


def available():
    return bool(shutil.which(NODE_EXPORTER) and shutil.which(PROMETHEUS))


class PrometheusStack:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.textfile_dir = os.path.join(self.workdir, "textfile")
        self.procs = []
        self.exporter_port = self.prometheus_port = None

    def start(self, timeout=60.0):
        os.makedirs(self.textfile_dir, exist_ok=True)
        self.exporter_port = free_port()
        self._spawn("node-exporter", [NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % self.exporter_port,
                                      "--collector.disable-defaults", "--collector.textfile",
                                      "--collector.textfile.directory=%s" % self.textfile_dir])
        config = os.path.join(self.workdir, "prometheus.yml")
        with open(config, "w") as handle:
            handle.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                         "  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                         % self.exporter_port)
        self.prometheus_port = free_port()
        self._spawn("prometheus", [PROMETHEUS, "--config.file=%s" % config,
                                   "--storage.tsdb.path=%s" % os.path.join(self.workdir, "tsdb"),
                                   "--web.listen-address=127.0.0.1:%d" % self.prometheus_port])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.prometheus_port, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited: %s" % (proc.args[0], self._log(proc)))
            time.sleep(0.3)
        raise RuntimeError("prometheus was not ready in %.0f s: %s" % (timeout, self._log(self.procs[-1])))

    def _spawn(self, name, argv):
        log = open(os.path.join(self.workdir, name + ".log"), "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        proc.log_path = log.name
        self.procs.append(proc)

    @staticmethod
    def _log(proc):
        with open(proc.log_path) as handle:
            return handle.read()[-2000:]

    def query(self, expr):
        """The result vector of an instant query: [{"metric": {...}, "value": [time, "value"]}]."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.prometheus_port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.loads(answer.read().decode())
        if body.get("status") != "success":
            raise RuntimeError("query %s: %s" % (expr, body))
        return body["data"]["result"]

    def wait(self, expr, predicate, timeout=30.0):
        """Query until ``predicate(result)`` holds (a scrape is a second away); returns the result."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise AssertionError("%s: %s after %.0f s" % (expr, result, timeout))

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
