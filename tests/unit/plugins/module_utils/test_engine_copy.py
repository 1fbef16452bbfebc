"""Unit tests of the engine copy written for programs that run without Ansible."""

import os
import subprocess
import sys

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils import engine_copy

MODULES = (engine_copy.PREFIX + ".errors", engine_copy.PREFIX + ".runtime.errors")
RUNNER = ("import os, sys\nsys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n"
          "from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError\n"
          "print(OciRuntimeError.__module__, OciRuntimeError('x').kind)\n")


def test_files_hold_the_modules_their_packages_and_the_runner():
    files = engine_copy.engine_files(MODULES, "run.py", RUNNER)
    assert "ansible_collections/lxcri/proxmox/plugins/module_utils/runtime/errors.py" in files
    for package in ("ansible_collections", "ansible_collections/lxcri/proxmox/plugins/module_utils/runtime"):
        assert files[package + "/__init__.py"] == b""
    assert files["run.py"] == RUNNER.encode()
    with pytest.raises(ValueError, match="not one of this collection"):
        engine_copy.engine_files(["json"], "run.py", RUNNER)


def test_install_is_kept_when_unchanged_and_the_copy_runs_alone(tmp_path):
    files = engine_copy.engine_files(MODULES, "run.py", RUNNER)
    home, written = engine_copy.install(str(tmp_path), files)
    assert written and os.path.basename(home) == engine_copy.digest_of(files)[:16]
    assert engine_copy.install(str(tmp_path), files) == (home, False)
    # the copy runs with an isolated interpreter (no PYTHONPATH, no user site), as the unit runs it
    out = subprocess.run([sys.executable, "-I", "-B", os.path.join(home, "run.py")], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True, cwd="/").stdout
    assert out.split() == ["ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors", "runtime"]
    changed = dict(files, **{"run.py": b"print('other')\n"})
    other, written = engine_copy.install(str(tmp_path), changed)
    assert written and other != home and os.path.isdir(home)
    assert sorted(n for n in os.listdir(str(tmp_path)) if not n.startswith(".")) == sorted(
        [os.path.basename(home), os.path.basename(other)])


def test_an_incomplete_copy_is_replaced(tmp_path):
    files = engine_copy.engine_files(MODULES, "run.py", RUNNER)
    home = engine_copy.engine_home(str(tmp_path), files)
    os.makedirs(home)
    with open(os.path.join(home, "partial"), "w") as handle:
        handle.write("left by a killed run")
    assert engine_copy.install(str(tmp_path), files) == (home, True)
    assert not os.path.exists(os.path.join(home, "partial"))
