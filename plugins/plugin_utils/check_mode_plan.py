# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of the modules that predict containers in check mode (lxc_container, lxc_snapshot).

In check mode it hands the module what earlier tasks of this run predicted
(the host fact ``lxcri_check_mode_plan``, option ``check_mode_plan``) and
merges what the module predicts in turn back into that fact; see
plugins/module_utils/pve/checkplan.py.  Outside check mode it runs the
module as the default action does.  A fact left by another run (a fact
cache) is not used: the plan names the controller process it belongs to.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

FACT = "lxcri_check_mode_plan"
OPTION = "check_mode_plan"


class CheckModePlanAction(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(CheckModePlanAction, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        args.pop(OPTION, None)
        check = bool(self._task.check_mode)
        run_id = os.getppid()  # the ansible-playbook process whose workers run the tasks
        plan = task_vars.get(FACT) or {}
        if not isinstance(plan, dict) or plan.get("run") != run_id:
            plan = {}
        if check:
            args[OPTION] = {"containers": plan.get("containers") or {}}
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_args=args, task_vars=task_vars,
                                                         wrap_async=wrap_async))
        if not wrap_async:
            # ActionBase.cleanup(force=True) removes the connection's temporary directory, as the normal action
            # does after its module (not for a module run async by the action: the async wrapper removes it)
            self.cleanup(force=True)
        update = result.pop(OPTION, None)
        if check and isinstance(update, dict) and update.get("containers"):
            containers = dict(plan.get("containers") or {})
            containers.update(update["containers"])
            facts = dict(result.get("ansible_facts") or {})
            facts[FACT] = {"run": run_id, "containers": containers}
            result["ansible_facts"] = facts
        return result
