# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module run's work on a container over the Proxmox VE API, shared by the engines that change containers.

:class:`PveSession` holds what ``lxc_container`` (pve/container.py) and
``lxc_snapshot`` (pve/snapshot.py) both need: the client, the cluster's
resource listing (read once per run), finding the container by vmid or by a
unique hostname (in check mode as earlier tasks predicted it, checkplan.py),
its node, waiting for worker tasks, waiting out a locked container, and the
record of the run: ``actions``, ``changed``, ``warnings`` (from tasks) and
``timings``.  :meth:`PveSession.perform` is the one place that records a
change and skips it in check mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.checkplan import CheckModePlan
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveError, PveTaskError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import node_features
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import live_resources, node_entry
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.placement import choose_node
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import DEFAULT_WAIT_TIMEOUT, wait_task

# "CT is locked (backup)" (pve-guest-common's check_lock), "CT 105 is locked (snapshot)", "VM is locked (...)":
# another task holds the container; "can't lock file '/run/lock/lxc/pve-config-105.conf' - got timeout": another
# API call held the config file's flock longer than PVE waits for it (10 s)
LOCKED = re.compile(r"\bis locked \((?P<lock>[\w-]+)\)|can't lock file '(?P<file>[^']+)' - got timeout")


class ContainerError(PveError):
    """The container cannot be brought into the asked state; the message says why."""

    kind = "container"


def lock_of(exc):
    """The name of the lock an API or task error reports (``backup``, ``config file ...``), else None."""
    match = LOCKED.search(str(exc))
    if match is None:
        return None
    return match.group("lock") or "config file %s" % match.group("file")


class PveSession:
    def __init__(self, params, check_mode=False, client=None, sleep=time.sleep, clock=time.monotonic):
        self.params = params
        self.check_mode = check_mode
        self.client = client or connect(params)
        self.sleep = sleep
        self.clock = clock
        self.warnings = []
        self.timings = {}
        self.changed = False
        self.actions = []
        self.check_plan = CheckModePlan(params, check_mode)
        self._resources = None
        self._node_features = {}
        self.placement = None  # node: auto's choice, {"node": ..., "left_out": {node: why}}

    # -- the record of the run -----------------------------------------------------------

    def act(self, what):
        """Record a change (``what`` goes into ``actions``; the run is ``changed``)."""
        self.actions.append(what)
        self.changed = True

    def perform(self, what, call):
        """Record the change ``what``, then make it with ``call()`` unless in check mode; returns what it returns."""
        self.act(what)
        if self.check_mode:
            return None
        return call()

    def note(self, what):
        """Record in ``actions``, once, something that happened on the way and is no change by itself."""
        if what not in self.actions:
            self.actions.append(what)

    def finish(self, result, started):
        """The module result: ``result`` with the record of the run (and, in check mode, the predictions)."""
        self.timings["total"] = round(time.monotonic() - started, 3)
        result.update(changed=self.changed, actions=self.actions, warnings_from_tasks=self.warnings,
                      timings=self.timings)
        requests = getattr(self.client, "requests", None)
        if isinstance(requests, int) and not isinstance(requests, bool):
            result["api_requests"] = requests
        if self.check_plan.active:
            result["check_mode_plan"] = self.check_plan.result()
        return result

    # -- tasks and locks -----------------------------------------------------------------

    def wait(self, node, upid, what):
        """Wait for the worker task ``upid`` (nothing when None); its time goes into ``timings[what]``."""
        if not upid:
            return None
        started = time.monotonic()
        result = wait_task(self.client, node, upid, timeout=self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        self.timings[what] = round(time.monotonic() - started, 3)
        self.warnings.extend(result.warnings)
        return result

    def task(self, node, what, call):
        """Run ``call()`` (it returns a UPID) and wait for its task, waiting out a locked container."""
        return self.locked_retry(what, lambda: self.wait(node, call(), what))

    def locked_retry(self, what, action, refresh=None):
        """Run ``action()``; while Proxmox VE says the container is locked, wait and retry until wait_timeout.

        The lock may be reported by the API call or by the worker task (both raise with the message).
        ``refresh()`` runs after each wait, before the next try: taking and releasing a lock changes the
        config's digest, so a config write must read the config again.  Waiting is no change; it is
        reported in ``actions`` (``waited for lock NAME``) and ``timings.lock_wait``.
        """
        deadline = self.clock() + (self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        delay, started = 0.5, self.clock()
        while True:
            try:
                return action()
            except (PveApiError, PveTaskError) as exc:
                lock = lock_of(exc)
                if lock is None:
                    raise
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise ContainerError("%s: the container stayed locked (%s) for %.0f s, longer than wait_timeout "
                                         "(%s s): another task holds it; this step changed nothing"
                                         % (what, lock, self.clock() - started,
                                            self.params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT))
                self.note("waited for lock %s" % lock)
                slept = self.clock()
                self.sleep(min(delay, remaining))
                self.timings["lock_wait"] = round(self.timings.get("lock_wait", 0) + self.clock() - slept, 3)
                delay = min(delay * 2, 5.0)
                if refresh is not None:
                    refresh()

    # -- the cluster and the container ----------------------------------------------------

    def features(self, node=None):
        """PveFeatures of ``node`` (``GET /nodes/{node}/version``, once per node and run): in a cluster mid-upgrade
        the node that runs the container may run another version than the API host.  Without a node: the API
        host's."""
        if node is None:
            return self.client.features()
        if node not in self._node_features:
            self._node_features[node] = node_features(self.client, node)
        return self._node_features[node]

    def resources(self):
        """The cluster's guests with live name, status and template (listing.py), read once per run (until
        something is created): /cluster/resources alone lags by pvestatd's interval on a real node."""
        if self._resources is None:
            self._resources = live_resources(self.client)
        return self._resources

    def find(self):
        """The container (a /cluster/resources entry) or None; by vmid, else by unique hostname.

        In check mode, what earlier tasks of the run predicted counts (checkplan.py): a container they
        deleted is gone, one they created exists (``phantom``), one they stopped or started has that status.
        """
        found = self.find_listed()
        if found is not None and self.params.get("vmid") is None:
            renamed = self.check_plan.lookup(found["vmid"])
            if renamed and renamed.get("hostname") not in (None, self.params.get("hostname")):
                found = None  # an earlier task of this check run renamed it: the hostname is free
        vmid = found["vmid"] if found else self.params.get("vmid")
        entry = self.check_plan.lookup(vmid, None if vmid is not None else self.params.get("hostname"))
        if entry is None:
            return found
        if entry.get("status") == "absent":
            return None
        if found is not None:
            # as the earlier tasks leave it: its status, and its name when one of them renamed it
            return dict(found, status=entry.get("status") or found.get("status"),
                        name=entry.get("hostname") or found.get("name"))
        if entry.get("created"):
            return {"vmid": entry.get("vmid"), "node": entry.get("node"), "name": entry.get("hostname"),
                    "status": entry.get("status"), "type": "lxc", "phantom": True}
        return None

    def find_listed(self):
        """The container as /cluster/resources lists it (dict) or None; by vmid, else by unique hostname."""
        vmid, hostname = self.params.get("vmid"), self.params.get("hostname")
        if vmid is not None and self.params.get("node") not in (None, "", "auto"):
            # the node's live list alone answers for a container on the node given: one request
            on_node = node_entry(self.client, self.params["node"], vmid)
            if on_node is not None:
                return on_node
        listing = self.resources()
        resources = [r for r in listing if r.get("type") == "lxc"]
        if vmid is not None:
            found = [r for r in resources if int(r["vmid"]) == int(vmid)]
            if not found and any(int(r["vmid"]) == int(vmid) for r in listing):
                raise ContainerError("vmid %s is a virtual machine, not a container" % vmid)
            return found[0] if found else None
        if not hostname:
            raise ContainerError("give vmid or hostname to address the container")
        found = [r for r in resources if r.get("name") == hostname]
        if len(found) > 1:
            raise ContainerError("hostname %r is ambiguous: containers %s carry it; address one by vmid"
                                 % (hostname, ", ".join(str(r["vmid"]) for r in found)))
        return found[0] if found else None

    def find_by_vmid(self, vmid):
        """The listing entry of a container this run just created (the listing is read again)."""
        self._resources = None
        for r in self.resources():
            if int(r["vmid"]) == int(vmid):
                return r
        raise ContainerError("CT %s vanished after it was created" % vmid)

    def node(self, found=None, storages=(), template=None):
        """The node of ``found``, else where a new container goes: ``node``, the only node of a one-node cluster,
        or with ``node: auto`` the least-loaded online node (placement.py) among ``node_candidates`` that has the
        ``storages`` and the ``template``."""
        if found is not None:
            return found["node"]
        wanted = self.params.get("node")
        candidates = self.params.get("node_candidates")
        if wanted and wanted != "auto":
            if candidates and wanted not in candidates:
                raise ContainerError("node %s is not among node_candidates (%s); nothing was changed"
                                     % (wanted, ", ".join(candidates)))
            return wanted
        if wanted == "auto":
            if self.placement is None:
                node, left_out = choose_node(self.client, candidates, sorted(set(storages)), template)
                self.placement = {"node": node, "left_out": left_out}
            return self.placement["node"]
        nodes = [n["node"] for n in self.client.get("/nodes") or []]
        if len(nodes) != 1:
            raise ContainerError("the cluster has several nodes (%s): give node, or node: auto to place the container "
                                 "on the online node with the most free memory" % ", ".join(sorted(nodes)))
        return nodes[0]

    def config_of(self, node, vmid):
        return self.client.get("/nodes/{node}/lxc/{vmid}/config", node=node, vmid=vmid) or {}

    def pending_keys(self, node, vmid):
        """The keys with a change waiting for the next start (``GET .../pending``: a ``pending`` value or a
        ``delete`` mark; pve-container vm_pending)."""
        items = self.client.get("/nodes/{node}/lxc/{vmid}/pending", node=node, vmid=vmid) or []
        return sorted(item["key"] for item in items if "pending" in item or item.get("delete"))

    def status_of(self, node, vmid):
        return (self.client.get("/nodes/{node}/lxc/{vmid}/status/current", node=node, vmid=vmid) or {}).get("status")
