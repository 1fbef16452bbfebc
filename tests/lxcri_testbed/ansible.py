"""Run real ansible / ansible-playbook / ansible-doc against the installed collection.

The collection under test is built with ``ansible-galaxy collection build``
and installed with ``ansible-galaxy collection install`` from that tarball,
so integration tests exercise exactly what users install.
"""

import glob
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.dirname(sys.executable)


def _bin(name):
    path = os.path.join(BIN_DIR, name)
    return path if os.path.exists(path) else name


class AnsibleRun:
    def __init__(self, proc, data=None):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.data = data

    def __repr__(self):
        return "AnsibleRun(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout[-3000:],
                                                           self.stderr[-3000:])


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
        })
        env.update(extra)
        return env

    def _run(self, argv, env=None, timeout=600):
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env or self.env(), timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def doc(self, name, *args):
        return AnsibleRun(self._run([_bin("ansible-doc")] + list(args) + [name]))

    def module(self, name, args=None, check=False, host="localhost", inventory=None,
               extra_vars=None):
        """Run one module ad hoc; ``.data`` is the module's result dict."""
        argv = [_bin("ansible"), host, "-m", name]
        if args:
            argv += ["-a", json.dumps(args)]
        if check:
            argv.append("--check")
        if inventory:
            argv += ["-i", inventory]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = self.env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
        proc = self._run(argv, env)
        data = None
        try:
            out = json.loads(proc.stdout)
            data = out["plays"][0]["tasks"][0]["hosts"][host]
        except (ValueError, KeyError, IndexError):
            pass
        return AnsibleRun(proc, data)

    def playbook(self, playbook, check=False, diff=False, inventory=None, extra_vars=None,
                 json_output=True):
        argv = [_bin("ansible-playbook"), playbook]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if inventory:
            argv += ["-i", inventory]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = self.env()
        if json_output:
            env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
        proc = self._run(argv, env)
        data = None
        if json_output:
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                pass
        return AnsibleRun(proc, data)
