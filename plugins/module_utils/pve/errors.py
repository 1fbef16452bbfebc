# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the Proxmox VE API client.

``str(err)`` is the message for the user.  The client removes every secret
it knows (password, API token secret, ticket, CSRF token) from the texts it
puts into these errors, so they are safe to log and to return.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError


def _one_line(text):
    return " ".join(str(text or "").split())


class PveError(LxcriError):
    """Base class of the client's errors."""

    kind = "pve"


class PveConfigError(PveError):
    """Connection options that cannot work (missing credentials, no pvesh on this host, ...)."""

    kind = "config"


class PveConnectionError(PveError):
    """The API could not be reached: refused, reset, DNS, TLS, timeout."""

    kind = "connection"

    def __init__(self, host, port, cause, retryable=False):
        self.host = host
        self.port = port
        self.cause = _one_line(cause)
        self.retryable = retryable  # a broken connection an idempotent request may try again
        PveError.__init__(self, "cannot talk to the Proxmox VE API at %s:%s: %s" % (host, port, self.cause))


class PveApiError(PveError):
    """The API answered with an error status.

    ``status`` is PVE's HTTP status (for the local ``pvesh`` backend the status
    pvesh printed, else 500 as the HTTP API would answer), ``errors`` PVE's
    per-parameter messages of a 400 answer.
    """

    kind = "api"

    def __init__(self, status, method, path, message, errors=None, hint=None, via="HTTP"):
        self.status = status
        self.method = method
        self.path = path
        self.message = _one_line(message)
        self.errors = dict((str(k), _one_line(v)) for k, v in (errors or {}).items())
        self.hint = hint
        self.via = via
        PveError.__init__(self, self._text())

    def _text(self):
        text = "Proxmox VE API %s %s failed (%s %s): %s" % (
            self.method, self.path, self.via, self.status, self.message or "no message")
        if self.errors:
            text += " [%s]" % "; ".join("%s: %s" % (k, self.errors[k]) for k in sorted(self.errors))
        if self.hint:
            text += " - %s" % self.hint
        return text


class PveTaskError(PveError):
    """A worker task ended with an error exit status."""

    kind = "task"

    def __init__(self, upid, exitstatus, log_tail=None):
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = list(log_tail or [])
        text = "Proxmox VE task %s failed: %s" % (upid, _one_line(exitstatus) or "no exit status")
        if self.log_tail:
            text += "\ntask log (last %d lines):\n%s" % (len(self.log_tail), "\n".join(self.log_tail))
        PveError.__init__(self, text)


class PveTaskTimeout(PveError):
    """A worker task was still running when the wait time was up (it goes on running on the node)."""

    kind = "task_timeout"

    def __init__(self, upid, waited, timeout=None):
        self.upid = upid
        self.waited = waited
        self.timeout = timeout
        PveError.__init__(self, "Proxmox VE task %s still running after %.1f s (wait_timeout %s s); it goes on "
                                "in the background, see the node's task log"
                          % (upid, waited, timeout if timeout is not None else "?"))
