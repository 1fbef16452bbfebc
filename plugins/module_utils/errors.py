# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error model of the engines, and the one way a module reports it.

Every engine error (oci, pve, zfs, runtime, the ZFS snapshot job) derives from
:class:`LxcriError`: ``str(err)`` is the message for the user, ``kind`` a short
word that classifies it for callers and tests (``error_kind`` in a failed
module's result), ``result_fields`` what else the failed result carries.

:func:`fail_module` turns such an error into ``module.fail_json``.  Standard
library only: the node-side modules import this on a stock Proxmox VE node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback


class LxcriError(Exception):
    """Base of the engines' errors.

    ``LxcriError(msg, kind=None, **result_fields)``: without ``kind`` the
    class's own ``kind`` applies; ``result_fields`` go into the failed module
    result beside ``msg``.
    """

    kind = "failed"

    def __init__(self, msg, kind=None, **result_fields):
        Exception.__init__(self, msg)
        if kind is not None:
            self.kind = kind
        self.result_fields = result_fields


def failure_result(exc, engine=None, **fields):
    """The keyword arguments of ``fail_json`` (except ``msg``) for the engine error ``exc``.

    ``error_kind`` is ``exc.kind``; ``actions`` is ``engine.actions`` (what was
    done before the error) when the engine keeps such a list; ``fields`` are
    the module's own additions (the image, the dataset name, ...).
    """
    result = dict(getattr(exc, "result_fields", None) or {})
    result.update(fields)
    result["error_kind"] = getattr(exc, "kind", None) or LxcriError.kind
    actions = getattr(engine, "actions", None)
    if isinstance(actions, list):
        result["actions"] = list(actions)
    return result


def fail_module(module, exc, engine=None, **fields):
    """``module.fail_json`` for the engine error ``exc`` (call it inside the ``except`` block).

    The message is ``str(exc)`` unchanged; the traceback goes into
    ``exception`` (shown by Ansible at -vvv / when tracebacks are enabled).
    """
    module.fail_json(msg=str(exc), exception=traceback.format_exc(), **failure_result(exc, engine, **fields))
