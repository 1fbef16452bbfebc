# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What earlier tasks of a check-mode run predicted for containers, so that later tasks build on it.

In check mode nothing changes, so a container that task 1 "creates" does not
exist when task 2 snapshots it, and a container that task 1 "stops" still
runs when task 2 deletes it.  Core modules' users expect such a chain to
work in check mode.  The collection's action plugins keep the predictions
as a host fact (``lxcri_check_mode_plan``) and hand it to the next task's
module (option ``check_mode_plan``); the engines read it here and return
what they predicted in turn.  Outside check mode it is never used.

An entry holds no config values (they can hold secrets): only the
container's id, hostname, node, predicted run state (``running``,
``stopped``, ``absent``), whether it exists only in the prediction
(``created``) and, once a snapshot task ran, the predicted snapshot names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def check_mode_plan_argument_spec():
    """The option the action plugin sets (doc fragment lxcri.proxmox.check_mode_plan)."""
    return dict(check_mode_plan=dict(type="dict"))


class CheckModePlan:
    def __init__(self, params, check_mode):
        self.active = bool(check_mode)
        plan = (params.get("check_mode_plan") or {}) if self.active else {}
        self.scope = "%s:%s" % (params.get("api_host") or "local", params.get("api_port") or "")
        self.entries = dict(plan.get("containers") or {})
        self.updates = {}

    def _keys(self, vmid=None, hostname=None):
        keys = []
        if vmid is not None:
            keys.append("%s|vmid:%s" % (self.scope, int(vmid)))
        if hostname:
            keys.append("%s|hostname:%s" % (self.scope, hostname))
        return keys

    def lookup(self, vmid=None, hostname=None):
        """The newest prediction for a container addressed by vmid (else hostname), or None."""
        if not self.active:
            return None
        for key in self._keys(vmid, hostname if vmid is None else None):
            entry = self.updates.get(key) or self.entries.get(key)
            if entry is not None:
                return dict(entry)
        return None

    def record(self, vmid=None, hostname=None, **entry):
        """Remember a prediction under the container's vmid and hostname (when known)."""
        if not self.active:
            return
        old = self.lookup(vmid, hostname) or {}
        old.update(entry)
        old.update(vmid=int(vmid) if vmid is not None else old.get("vmid"), hostname=hostname or old.get("hostname"))
        for key in self._keys(old.get("vmid"), old.get("hostname")):
            self.updates[key] = dict(old)

    def result(self):
        """What the module returns for the action plugin to merge into the fact (None outside check mode)."""
        if not self.active:
            return None
        return {"containers": self.updates}
