"""node: auto (placement.py) and migrate (ContainerManager.migrate) on a cluster of several nodes.

The cluster here is a fake of the API answers placement reads (/cluster/resources with node and storage entries, a
storage's content); the real multi-node double drives the same code in tests/integration/test_cluster.py.
"""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.placement import PlacementError, choose_node
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import ContainerError

from .test_container import Clock, FakePve, manager

GIB = 1 << 30


def node(name, mem, maxmem=16 * GIB, cpu=0.1, status="online"):
    return {"type": "node", "node": name, "id": "node/" + name, "status": status, "mem": mem, "maxmem": maxmem,
            "cpu": cpu}


def storage(node_name, name, shared=0, status="available"):
    return {"type": "storage", "node": node_name, "storage": name, "id": "storage/%s/%s" % (node_name, name),
            "status": status, "shared": shared}


class Client:
    def __init__(self, resources, content=None):
        self.resources = resources
        self.content = content or {}  # node -> [volid]
        self.calls = []

    def get(self, path, params=None, **kw):
        self.calls.append((path, kw.get("node")))
        if path == "/cluster/resources":
            return self.resources
        if path == "/nodes/{node}/storage/{storage}/content":
            if kw["node"] == "down":
                raise PveApiError(595, "GET", path, "No route to host")
            return [{"volid": v} for v in self.content.get(kw["node"], [])]
        raise AssertionError(path)


THREE = [node("pve1", 8 * GIB), node("pve2", 2 * GIB), node("pve3", 1 * GIB, status="offline")] + \
    [storage(n, "local-zfs") for n in ("pve1", "pve2", "pve3")] + [storage(n, "shared", 1) for n in ("pve1", "pve2")]


def test_the_online_node_with_most_free_memory_wins_and_an_offline_one_is_left_out():
    chosen, left_out = choose_node(Client(THREE), storages=["local-zfs"])
    assert chosen == "pve2" and left_out == {"pve3": "offline"}


def test_equal_memory_goes_by_cpu_then_by_name():
    resources = [node("b", GIB, cpu=0.5), node("c", GIB, cpu=0.1), node("a", GIB, cpu=0.1)]
    assert choose_node(Client(resources))[0] == "a"


def test_candidates_limit_the_choice_and_unknown_names_are_refused():
    assert choose_node(Client(THREE), candidates=["pve1"])[0] == "pve1"
    with pytest.raises(PlacementError, match="node_candidates names pve9, which is no node of the cluster"):
        choose_node(Client(THREE), candidates=["pve1", "pve9"])


def test_a_storage_missing_on_every_candidate_is_refused_naming_each_node():
    resources = [node("pve1", GIB), node("pve2", GIB), storage("pve1", "local-zfs", status="unknown")]
    with pytest.raises(PlacementError) as info:
        choose_node(Client(resources), storages=["local-zfs"])
    assert "pve1: storage local-zfs not available there" in str(info.value)
    assert "pve2: storage local-zfs not available there" in str(info.value)
    assert "nothing was changed" in str(info.value)


def test_a_template_on_local_storage_must_be_on_the_node_and_a_shared_one_is_not_asked_for():
    client = Client(THREE, content={"pve1": ["local:vztmpl/app.tar"]})
    chosen, left_out = choose_node(client, template="local:vztmpl/app.tar")
    assert chosen == "pve1" and left_out["pve2"] == "template local:vztmpl/app.tar is not on its local storage"
    shared = Client(THREE)
    assert choose_node(shared, template="shared:vztmpl/app.tar")[0] == "pve2"
    assert shared.calls == [("/cluster/resources", None)]


def test_a_node_that_does_not_answer_for_its_content_is_left_out():
    resources = [node("down", 0), node("pve1", 4 * GIB)]
    client = Client(resources, content={"pve1": ["local:vztmpl/a.tar"]})
    assert choose_node(client, template="local:vztmpl/a.tar")[0] == "pve1"


class ClusterPve(FakePve):
    """FakePve with its containers on pve1 of a two-node cluster and a migrate that moves them."""

    def __init__(self, *args, **kwargs):
        FakePve.__init__(self, *args, **kwargs)
        self.where = dict((vmid, "pve1") for vmid in self.configs)

    def get(self, path, params=None, **kw):
        if path == "/cluster/resources":
            self.calls.append(("GET", path))
            return [{"type": "lxc", "vmid": v, "node": self.where[v], "name": c.get("hostname"),
                     "status": self.status[v]} for v, c in sorted(self.configs.items())]
        if path == "/nodes/{node}/lxc":
            self.calls.append(("GET", path))
            return [{"type": "lxc", "vmid": v, "name": c.get("hostname"), "status": self.status[v]}
                    for v, c in sorted(self.configs.items()) if self.where[v] == kw["node"]]
        if path == "/nodes/{node}/lxc/{vmid}/config" and self.where[kw["vmid"]] != kw["node"]:
            raise PveApiError(500, "GET", path, "Configuration file does not exist")
        return FakePve.get(self, path, params, **kw)

    def post(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc/{vmid}/migrate":
            self.calls.append(("POST", path, dict(params)))
            self.where[kw["vmid"]] = params["target"]
            return "UPID:pve1:1:1:1:vzmigrate:%s:root@pam:" % kw["vmid"]
        return FakePve.post(self, path, params, **kw)


def cluster(status="running"):
    pve = ClusterPve({150: {"hostname": "app", "memory": "256"}})
    pve.status[150] = status
    return pve


def test_a_container_on_another_node_stays_there_with_a_warning_without_migrate():
    pve = cluster()
    result = manager(pve, vmid=150, node="pve2", state="started").run()
    assert result["node"] == "pve1" and not result["changed"]
    assert "CT 150 is on node pve1, not on node pve2" in result["warnings"][0]
    assert not any(c[0] == "POST" for c in pve.calls)


def test_a_running_container_is_moved_only_with_migrate_restart():
    pve = cluster()
    with pytest.raises(ContainerError, match="set migrate_restart: true.*nothing was changed"):
        manager(pve, vmid=150, node="pve2", migrate=True, state="started").run()
    assert pve.where[150] == "pve1"
    result = manager(pve, vmid=150, node="pve2", migrate=True, migrate_restart=True, state="started").run()
    assert result["node"] == "pve2" and result["changed"]
    assert result["actions"][0] == "migrated from pve1 to pve2 (restarted)"
    migrate = [c for c in pve.calls if c[:2] == ("POST", "/nodes/{node}/lxc/{vmid}/migrate")]
    assert migrate[0][2] == {"target": "pve2", "restart": 1, "timeout": 60}
    again = manager(pve, vmid=150, node="pve2", migrate=True, migrate_restart=True, state="started").run()
    assert not again["changed"] and again["node"] == "pve2"


def test_check_mode_reports_the_move_and_reads_the_container_where_it_is():
    pve = cluster(status="stopped")
    result = manager(pve, check_mode=True, vmid=150, node="pve2", migrate=True, state="present").run()
    assert result["changed"] and result["node"] == "pve2" and result["actions"] == ["migrated from pve1 to pve2"]
    assert pve.where[150] == "pve1" and not any(c[0] == "POST" for c in pve.calls)


class HaPve(FakePve):
    """An HA-managed container: start is a hastart request; ha-manager starts it after ``rounds`` status reads."""

    def __init__(self, rounds, *args, **kwargs):
        FakePve.__init__(self, *args, **kwargs)
        self.rounds = rounds

    def post(self, path, params=None, **kw):
        if path.endswith("/status/start"):
            self.calls.append(("POST", path))
            return "UPID:pve1:000000AA:000000BB:6B000000:hastart:%s:root@pam:" % kw["vmid"]
        return FakePve.post(self, path, params, **kw)

    def get(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc/{vmid}/status/current":
            self.calls.append(("GET", path))
            self.rounds -= 1
            if self.rounds <= 0:
                self.status[kw["vmid"]] = "running"
            return {"status": self.status[kw["vmid"]]}
        return FakePve.get(self, path, params, **kw)


def test_an_ha_start_waits_until_ha_manager_has_started_the_container():
    pve = HaPve(3, {150: {"hostname": "app", "memory": "256"}})
    pve.status[150] = "stopped"
    clock = Clock()
    result = manager(pve, clock=clock, vmid=150, state="started").run()
    assert result["status"] == "running" and "waited for ha-manager" in result["actions"]
    assert clock.sleeps.count(1.0) == 2  # two rounds stopped, then running


def test_an_ha_start_that_never_happens_fails_after_wait_timeout():
    pve = HaPve(10 ** 6, {150: {"hostname": "app", "memory": "256"}})
    pve.status[150] = "stopped"
    with pytest.raises(ContainerError, match="HA-managed: ha-manager was asked to make it running"):
        manager(pve, vmid=150, state="started", wait_timeout=5).run()
