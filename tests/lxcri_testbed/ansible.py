"""Run real ansible / ansible-playbook / ansible-doc against the installed collection.

The collection under test is built with ``ansible-galaxy collection build``
and installed with ``ansible-galaxy collection install`` from that tarball,
so integration tests exercise exactly what users install.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.dirname(sys.executable)


def _bin(name):
    path = os.path.join(BIN_DIR, name)
    return path if os.path.exists(path) else name


def _run_bounded(argv, env, timeout):
    """Run ``argv`` in its own session; past ``timeout`` seconds kill all of it (the module a playbook
    runs too, which would go on blocking or writing) and raise subprocess.TimeoutExpired."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


class AnsibleRun:
    """A finished ansible process; ``results`` holds what the lxcri_results callback wrote."""

    def __init__(self, proc, results=None, data=None):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results or {"tasks": [], "stats": {}}
        self.data = data

    @property
    def stats(self):
        return self.results["stats"]

    def task_results(self, host=None):
        return [t["result"] for t in self.results["tasks"] if host is None or t["host"] == host]

    def __repr__(self):
        failed = [(t["task"], t["result"].get("msg")) for t in self.results["tasks"]
                  if t["status"] != "ok"]
        return "AnsibleRun(rc=%r, failed=%r, stderr=%r, stdout=%r)" % (
            self.rc, failed, self.stderr[-2000:], self.stdout[-2000:])


class InstalledCollection:
    """A copy of lxcri.proxmox installed from a freshly built tarball."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.collections_path = os.path.join(workdir, "collections")
        build_dir = os.path.join(workdir, "dist")
        os.makedirs(build_dir, exist_ok=True)
        subprocess.run([_bin("ansible-galaxy"), "collection", "build", "--force",
                        "--output-path", build_dir, REPO_ROOT],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.tarball = glob.glob(os.path.join(build_dir, "lxcri-proxmox-*.tar.gz"))[0]
        subprocess.run([_bin("ansible-galaxy"), "collection", "install", "--force",
                        "-p", self.collections_path, self.tarball],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=self.env())
        self.path = os.path.join(self.collections_path, "ansible_collections", "lxcri", "proxmox")

    def env(self, **extra):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": self.collections_path,
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.workdir, "tmp"),
            "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
            "ANSIBLE_CALLBACKS_ENABLED": "lxcri_results",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        })
        env.update(extra)
        return env

    def _run(self, argv, env=None, timeout=600):
        env = dict(env or self.env())
        fd, results_file = tempfile.mkstemp(prefix="results-", suffix=".json", dir=self.workdir)
        os.close(fd)
        env["LXCRI_RESULTS_FILE"] = results_file
        try:
            proc = _run_bounded(argv, env, timeout)
            with open(results_file) as handle:
                text = handle.read()
            results = json.loads(text) if text else None
        finally:
            os.unlink(results_file)
        return proc, results

    def doc(self, name, *args):
        proc, dummy = self._run([_bin("ansible-doc")] + list(args) + [name])
        return AnsibleRun(proc)

    @staticmethod
    def _options(check=False, diff=False, inventory=None, extra_vars=None, verbosity=0):
        argv = ["-" + "v" * verbosity] if verbosity else []
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if inventory:
            argv += ["-i", inventory]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        return argv

    def module(self, name, args=None, host="localhost", timeout=600, env=None, prefix=(), **options):
        """Run one module ad hoc; ``.data`` is the module's result dict.

        ``options``: check, diff, inventory, extra_vars. ``env``: the whole environment (default: ours and
        the collection's, ``self.env()``). ``prefix``: words run before ``ansible`` (``nsenter ...``). Past
        ``timeout`` seconds, subprocess.TimeoutExpired (a hang fails the test).
        """
        argv = list(prefix) + [_bin("ansible"), host, "-m", name]
        if args:
            argv += ["-a", json.dumps(args)]
        proc, results = self._run(argv + self._options(**options), env=env, timeout=timeout)
        run = AnsibleRun(proc, results)
        found = run.task_results(host)
        run.data = found[-1] if found else None
        return run

    def inventory(self, inventory, *args, timeout=300):
        """``ansible-inventory -i inventory --list`` (or ``args``): (the process, the parsed JSON or None)."""
        proc, dummy = self._run([_bin("ansible-inventory"), "-i", inventory] + (list(args) or ["--list"]),
                                timeout=timeout)
        try:
            return proc, json.loads(proc.stdout)
        except ValueError:
            return proc, None

    def playbook(self, playbook, timeout=600, env=None, prefix=(), **options):
        """Run a playbook; ``options``: check, diff, inventory, extra_vars, verbosity; ``env``: more environment
        variables; ``prefix``: words run before ``ansible-playbook``. Past ``timeout`` seconds,
        subprocess.TimeoutExpired (a hang fails the test)."""
        proc, results = self._run(list(prefix) + [_bin("ansible-playbook"), playbook] + self._options(**options),
                                  env=self.env(**(env or {})), timeout=timeout)
        return AnsibleRun(proc, results)


def write_play(tmp_path, name, tasks):
    """A one-play playbook on localhost (no facts) running ``tasks`` (YAML text), written to ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + textwrap.indent(
        textwrap.dedent(tasks), "    "))
    return str(path)


def write_pve_play(tmp_path, double, name, tasks, defaults=None):
    """A localhost playbook whose ``module_defaults`` point group/lxcri.proxmox.pve at the API ``double``
    (or are ``defaults``, a dict, when given)."""
    from pve_double.server import DEFAULT_PASSWORD  # pylint: disable=import-outside-toplevel
    if defaults is None:
        defaults = {"api_host": "127.0.0.1", "api_port": double.port, "api_password": DEFAULT_PASSWORD,
                    "ca_path": double.cert}
    path = tmp_path / name
    head = textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          module_defaults:
            group/lxcri.proxmox.pve:
        """) + "".join("      %s: %s\n" % item for item in defaults.items())
    path.write_text(head + "  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    "))
    return str(path)
