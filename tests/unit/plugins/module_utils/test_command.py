"""command.py: the one place module_utils starts processes, and its runners."""

import ast
import os
import subprocess
import sys

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils import command

MODULE_UTILS = os.path.join(os.path.dirname(command.__file__))
# what ansible-test's pylint (ansible-core 2.21+, ansible-bad-function) flags in module_utils
STARTERS = {"subprocess": {"Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput", "run"},
            "os": {"popen", "system", "posix_spawn", "posix_spawnp", "spawnl", "spawnle", "spawnlp", "spawnlpe",
                   "spawnv", "spawnve", "spawnvp", "spawnvpe"}}


def _direct_starts(path):
    tree = ast.parse(open(path).read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in STARTERS:
            out += ["%s:%d from %s import %s" % (path, node.lineno, node.module, a.name)
                    for a in node.names if a.name in STARTERS[node.module]]
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.attr in STARTERS.get(node.value.id, ())):
            out.append("%s:%d %s.%s" % (path, node.lineno, node.value.id, node.attr))
    return out


def test_only_command_py_starts_processes_directly():
    found = []
    for root, dummy, files in os.walk(MODULE_UTILS):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") and path != command.__file__:
                found += _direct_starts(path)
    assert found == []
    # and command.py itself does it exactly once, in start_process
    assert [line.split(" ", 1)[1] for line in _direct_starts(command.__file__)] == ["subprocess.Popen"]


def test_run_process_returns_the_output_and_status():
    proc = command.run_process([sys.executable, "-c", "import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (3, b"out", b"err")


def test_run_process_kills_on_timeout_like_subprocess_run():
    with pytest.raises(subprocess.TimeoutExpired):
        command.run_process([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5,
                            stdout=subprocess.PIPE)


@pytest.mark.parametrize("argv,kwargs", [("echo hi", {}), (b"echo hi", {}), (["echo", "hi"], {"shell": True})])
def test_start_process_never_runs_a_shell(argv, kwargs):
    with pytest.raises(ValueError, match="never a shell"):
        command.start_process(argv, **kwargs)


def test_subprocess_runner_reports_missing_program_and_timeout():
    assert command.subprocess_runner(["/nonexistent/lxcri-no-such-program"])[0] == 127
    rc, dummy, err = command.subprocess_runner([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert rc == 124 and "timed out" in err
