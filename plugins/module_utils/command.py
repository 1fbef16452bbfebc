# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running external commands without a shell.

The engine in module_utils takes a *runner*: a callable ``runner(argv) ->
(rc, stdout, stderr)``.  Modules pass ``module_runner(module)`` so that
commands go through ``AnsibleModule.run_command``; unit tests and scripts use
``subprocess_runner``.  Argument lists only, never a shell.

``start_process`` is the one place in module_utils that starts a process
directly (``run_process`` and ``subprocess_runner`` go through it).
``AnsibleModule.run_command``, which ansible-test's pylint asks for from
ansible-core 2.21 on (``ansible-bad-function``), needs an AnsibleModule and
returns the output only when the command has ended; the engines here stream
image layers through decompressors, run the OCI runtime's agent in a child
process and run without Ansible on the node (the snapshot job, the runtime
check's probe), so they start processes here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess


class CommandNotFound(Exception):
    """The program to run does not exist."""


def start_process(argv, **popen_kwargs):
    """Start ``argv`` (a list; never a shell) and return its ``subprocess.Popen``."""
    if popen_kwargs.get("shell") or isinstance(argv, (str, bytes)):
        raise ValueError("start_process runs an argument list, never a shell: %r" % (argv,))
    # the one direct start of a process in module_utils: see the module docstring for why not run_command
    return subprocess.Popen(list(argv), **popen_kwargs)  # pylint: disable=ansible-bad-function


def run_process(argv, timeout=None, stdin=subprocess.DEVNULL, input=None, **popen_kwargs):  # pylint: disable=redefined-builtin
    """``subprocess.run(argv, check=False)`` through ``start_process``: a ``CompletedProcess``.

    ``input`` (bytes) is written to the process's stdin.  On ``timeout`` the process is killed and
    ``subprocess.TimeoutExpired`` raised, as ``subprocess.run`` does.
    """
    if input is not None:
        stdin = subprocess.PIPE
    with start_process(argv, stdin=stdin, **popen_kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def subprocess_runner(argv, timeout=60, env=None):
    """Run ``argv`` and return ``(rc, stdout, stderr)`` as text.

    A missing program is reported as rc 127, like a shell would, so callers
    handle "not installed" and "failed" the same way.
    """
    try:
        proc = run_process(argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except FileNotFoundError as exc:
        return 127, "", str(exc)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %ss: %s" % (timeout, " ".join(argv))
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def module_runner(module):
    """A runner that uses ``AnsibleModule.run_command`` (list form, no shell)."""

    def run(argv):
        if not os.path.isabs(argv[0]) and module.get_bin_path(argv[0]) is None:
            return 127, "", "%s: command not found" % argv[0]
        rc, out, err = module.run_command(list(argv), check_rc=False)
        return rc, out, err

    return run
