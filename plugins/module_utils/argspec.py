# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engines' defaults, read from the modules' argument specs.

A module's options are written once, as an argument spec beside its engine
(``*_argument_spec()``); a doc fragment or the module's DOCUMENTATION
describes them (unit and sanity tests hold the two together).  An engine
called without Ansible (tests, bench, the snapshot job) fills in what its
caller left out from the same spec, not from a copy of its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy


def defaults_of(spec, leave_out=()):
    """``{option: default}`` of an argument spec (None where it has none), without the options in ``leave_out``."""
    return dict((name, copy.deepcopy(option.get("default"))) for name, option in spec.items() if name not in leave_out)


def with_defaults(params, defaults):
    """A new dict of ``params`` over ``defaults``: an option left out or given as None takes its default."""
    merged = dict(defaults)
    merged.update(dict((key, value) for key, value in (params or {}).items() if value is not None or key not in merged))
    return merged
