# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running external commands without a shell.

The engine in module_utils takes a *runner*: a callable ``runner(argv) ->
(rc, stdout, stderr)``.  Modules pass ``module_runner(module)`` so that
commands go through ``AnsibleModule.run_command``; unit tests and scripts use
``subprocess_runner``.  Argument lists only, never a shell.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess


class CommandNotFound(Exception):
    """The program to run does not exist."""


def subprocess_runner(argv, timeout=60, env=None):
    """Run ``argv`` and return ``(rc, stdout, stderr)`` as text.

    A missing program is reported as rc 127, like a shell would, so callers
    handle "not installed" and "failed" the same way.
    """
    try:
        proc = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=env,
            check=False,
        )
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
