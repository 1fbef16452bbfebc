"""The lag of /cluster/resources: decisions on name, status and template come from the node's live list.

On a real node /cluster/resources takes name, status and template from pvestatd's RRD data (pve-manager
PVE/API2Tools.pm extract_vm_stats), refreshed about every 10 s; /nodes/{node}/lxc is live (pve-container
PVE/LXC.pm vmstatus).  LaggingPve answers the cluster list from a snapshot taken at ``snapshot()``.
"""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.info import ContainerQuery, list_containers
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.listing import live_resources

from .test_container import FakePve, manager


class LaggingPve(FakePve):
    def __init__(self, *args, **kwargs):
        FakePve.__init__(self, *args, **kwargs)
        self.rrd = {}
        self.snapshot()

    def snapshot(self):
        """pvestatd's broadcast: what the cluster list will show until the next one."""
        self.rrd = dict((v, {"name": c.get("hostname") or "CT%d" % v, "status": self.status[v],
                             "template": 1 if str(c.get("template")) == "1" else 0})
                        for v, c in self.configs.items())

    def get(self, path, params=None, **kw):
        if path == "/cluster/resources":
            self.calls.append(("GET", path))
            # membership is live (vmlist); the rest is the last broadcast, or status unknown and no name
            return [dict({"type": "lxc", "vmid": v, "node": "pve1", "id": "lxc/%d" % v},
                         **self.rrd.get(v, {"status": "unknown"})) for v in sorted(self.configs)]
        return FakePve.get(self, path, params, **kw)


def test_a_container_created_since_the_last_broadcast_is_found_by_hostname_not_created_twice():
    pve = LaggingPve({150: {"hostname": "old", "memory": "256"}})
    pve.configs[151] = {"hostname": "web", "memory": "256"}  # created by an earlier task: no name in the RRD yet
    pve.status[151] = "running"
    result = manager(pve, hostname="web", memory=256, node="pve1",
                     ostemplate="local:vztmpl/a.tar.zst").run()
    assert result["vmid"] == 151 and not result["changed"]
    assert ("POST", "/nodes/{node}/lxc") not in pve.calls


def test_a_renamed_container_is_not_taken_for_its_old_name():
    pve = LaggingPve({150: {"hostname": "app", "memory": "256"}})
    pve.configs[150]["hostname"] = "app-prev"  # oci_app's upgrade renamed it; the RRD still says "app"
    pve.configs[151] = {"hostname": "app", "memory": "256"}
    pve.status[151] = "running"
    result = manager(pve, hostname="app", memory=256).run()
    assert result["vmid"] == 151 and not result["changed"]


def test_status_is_the_live_one():
    pve = LaggingPve({150: {"hostname": "web", "memory": "256"}})
    pve.status[150] = "stopped"
    pve.snapshot()
    pve.status[150] = "running"  # started since the broadcast: the cluster list still says stopped
    result = manager(pve, vmid=150, memory=256, state="started").run()
    assert not result["changed"] and ("POST", "/nodes/{node}/lxc/{vmid}/status/start") not in pve.calls


def test_a_fresh_template_is_a_template_for_a_linked_clone():
    pve = LaggingPve({200: {"hostname": "tpl", "memory": "256", "rootfs": "local-zfs:subvol-200-disk-0,size=2G"}})
    pve.configs[200]["template"] = "1"  # made a template since the broadcast
    pve.status[200] = "stopped"
    found = [r for r in live_resources(pve) if r["vmid"] == 200][0]
    assert found["template"] == 1 and found["live"] is True
    assert [r for r in pve.get("/cluster/resources") if r["vmid"] == 200][0]["template"] == 0  # the lag itself


def test_info_sees_new_and_renamed_containers_as_they_are():
    pve = LaggingPve({150: {"hostname": "app", "memory": "256", "tags": "lxcri-app-app"}})
    pve.configs[150]["hostname"] = "app-prev"
    pve.configs[151] = {"hostname": "app", "memory": "256"}
    pve.status[151] = "running"
    found = list_containers(pve, ContainerQuery(hostname="app"), with_config=False)
    assert [(c["vmid"], c["hostname"], c["status"]) for c in found] == [(151, "app", "running")]


class OfflineNode(LaggingPve):
    def get(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc":
            self.calls.append(("GET", path))
            raise PveApiError(595, "GET", "/nodes/pve1/lxc", "No route to host")
        return LaggingPve.get(self, path, params, **kw)


def test_an_offline_node_keeps_the_cluster_list_and_says_it_is_not_live():
    pve = OfflineNode({150: {"hostname": "web", "memory": "256"}})
    pve.snapshot()
    [entry] = live_resources(pve)
    assert entry["name"] == "web" and entry["live"] is False


def test_a_refusal_of_the_node_list_is_an_error_not_an_empty_node():
    class Forbidden(LaggingPve):
        def get(self, path, params=None, **kw):
            if path == "/nodes/{node}/lxc":
                raise PveApiError(403, "GET", "/nodes/pve1/lxc", "Permission check failed")
            return LaggingPve.get(self, path, params, **kw)

    with pytest.raises(PveApiError, match="Permission check failed"):
        live_resources(Forbidden({150: {"hostname": "web"}}))


# -- ostype: an image is created unmanaged (pve-container Setup.pm would detect, or die on, its OS) ----------

class RecordingPve(FakePve):
    def __init__(self, *args, **kwargs):
        FakePve.__init__(self, *args, **kwargs)
        self.created = []

    def post(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc":
            self.created.append(dict(params))
        return FakePve.post(self, path, params, **kw)


OCI = {"volid": "local:vztmpl/app.tar.zst", "image": "registry.example/app:1", "digest": "sha256:" + "a" * 64}


@pytest.mark.parametrize("params,ostype", [
    ({"oci": OCI}, "unmanaged"),
    ({"oci": OCI, "ostype": "alpine"}, "alpine"),  # what the user sets wins
    ({"ostemplate": "local:vztmpl/debian-12-standard.tar.zst"}, None),  # a distribution template is detected
])
def test_image_derived_creates_send_ostype_unmanaged(params, ostype):
    pve = RecordingPve()
    manager(pve, hostname="app", node="pve1", state="present", **params).run()
    assert pve.created[0].get("ostype") == ostype


class CloningPve(FakePve):
    """A template 200; its first ``busy`` clone calls meet clone_vm's 'disk' lock of a parallel clone."""

    def __init__(self, busy):
        FakePve.__init__(self, {200: {"hostname": "tpl", "template": "1", "rootfs": "local-zfs:basevol-200-disk-0"}})
        self.status[200] = "stopped"
        self.busy = busy

    def post(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc/{vmid}/clone":
            self.calls.append(("POST", path))
            if self.busy:
                self.busy -= 1
                raise PveApiError(500, "POST", "/nodes/pve1/lxc/200/clone", "CT is locked (disk)")
            newid = params["newid"]
            self.configs[newid] = {"hostname": params.get("hostname"), "rootfs": "local-zfs:basevol-200-disk-0/"
                                   "subvol-%d-disk-0" % newid}
            self.status[newid] = "stopped"
            return "UPID:pve1:clone"
        return FakePve.post(self, path, params, **kw)


def test_a_clone_waits_out_a_parallel_clone_of_the_same_template():
    pve = CloningPve(busy=2)
    result = manager(pve, hostname="inst", clone="200", node="pve1", state="present").run()
    assert result["changed"] and pve.calls.count(("POST", "/nodes/{node}/lxc/{vmid}/clone")) == 3
    assert "waited for lock disk" in result.get("actions", [])


def test_vmid_and_node_need_only_the_nodes_live_list():
    pve = LaggingPve({150: {"hostname": "web", "memory": "256"}})
    pve.configs[151] = {"hostname": "new", "memory": "256"}  # not broadcast yet
    pve.status[151] = "running"
    result = manager(pve, vmid=151, node="pve1", memory=256).run()
    assert not result["changed"] and ("GET", "/cluster/resources") not in pve.calls
    assert pve.calls == [("GET", "/nodes/{node}/lxc"), ("GET", "/nodes/{node}/lxc/{vmid}/config"),
                         ("GET", "/nodes/{node}/lxc/{vmid}/pending")]  # running: its pending changes too
    elsewhere = LaggingPve({150: {"hostname": "web", "memory": "256"}})
    with pytest.raises(Exception, match="does not exist|give ostemplate"):
        manager(elsewhere, vmid=152, node="pve1", memory=256).run()  # not on the node: the cluster list decides
    assert ("GET", "/cluster/resources") in elsewhere.calls
