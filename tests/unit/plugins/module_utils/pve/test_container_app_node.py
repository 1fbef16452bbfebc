"""App containers on a real 9.1 node (issue 15): host-managed interfaces, and the import's ids verified."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerManager, import_problem
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures

NINE = PveFeatures((9, 1, 1), "9.1")
EIGHT = PveFeatures((8, 4, 1), "8.4")
RUNTIME = {"uid": 0, "gid": 0, "groups": [], "cwd": "/", "user": "0", "wrapper": None, "argv": ["/bin/app"],
           "pve_entrypoint": "/bin/app", "pve_env": "A=1", "lxc_init_cmd": "/bin/app", "lxc_config": []}
NET = "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1"
RECORD = "lxcri.proxmox: image=registry.example/app:1 digest=sha256:" + "a" * 64


def desired(features, config=None, **params):
    params.setdefault("state", "started")
    return ContainerManager(params, client=object()).desired(features=features, config=config)


def test_an_app_container_on_9_1_asks_for_host_managed_interfaces():
    """pve-container's OCI import auto-enables host-managed, and update_lxc_config brings up only host-managed
    interfaces: an image's command as init configures none."""
    oci = {"volid": "local:vztmpl/app.tar.zst", "runtime": RUNTIME}
    wanted = desired(NINE, oci=oci, net={"0": NET, "1": {"name": "eth1", "bridge": "vmbr1", "ip": "dhcp"}})
    assert wanted["net0"]["host-managed"] == "1" and wanted["net0"]["ip"] == "10.0.0.5/24"
    assert wanted["net1"]["host-managed"] == "1"


def test_the_users_host_managed_wins_and_8_and_system_containers_get_none():
    oci = {"volid": "local:vztmpl/app.tar.zst", "runtime": RUNTIME}
    assert desired(NINE, oci=oci, net={"0": NET + ",host-managed=0"})["net0"] == NET + ",host-managed=0"
    assert desired(EIGHT, oci=dict(oci, runtime=dict(RUNTIME, wrapper={"kind": "init"})), raw_lxc=True,
                   net={"0": NET})["net0"] == NET
    assert desired(NINE, ostemplate="local:vztmpl/debian-12.tar.zst", net={"0": NET})["net0"] == NET
    assert desired(EIGHT, ostemplate="local:vztmpl/debian-12.tar.zst", net={"0": NET})["net0"] == NET


WRAPPED = {"volid": "local:vztmpl/app.tar.zst", "runtime": dict(RUNTIME, wrapper={"kind": "init"})}


@pytest.mark.parametrize("net, message", [
    # an address needs the interface up, which 8 leaves to the container's init: raw lines (raw_lxc) or nothing
    (NET, "net0: Proxmox VE 8.4 brings up no interface of a container made from an image"),
    ("name=eth0,bridge=vmbr0,ip6=fd00::5/64", "run the task on the node with raw_lxc: true"),
    ("name=eth0,bridge=vmbr0,ip6=auto", "raw lxc.net.0 lines"),
    ("name=eth0,bridge=vmbr0,ip=dhcp", "net0: ip=dhcp: Proxmox VE 8.4 runs no DHCP client for a container"),
    ("name=eth0,bridge=vmbr0,ip6=dhcp", "ip6=manual if the app configures its network itself"),
])
def test_an_app_container_on_8_is_refused_an_address_it_could_never_get(net, message):
    """Proxmox VE 8 has no host-managed network and the image's command configures none; refused before any
    change, DHCP even with raw_lxc (8 never runs a client for a container)."""
    with pytest.raises(Exception) as info:
        desired(EIGHT, oci=WRAPPED, net={"0": net})
    assert message in str(info.value) and "nothing was changed" in str(info.value)
    if "dhcp" in net:
        with pytest.raises(Exception, match="runs no DHCP client"):
            desired(EIGHT, oci=WRAPPED, raw_lxc=True, net={"0": net})


def test_on_8_manual_or_down_interfaces_are_the_users_to_configure():
    for net in ("name=eth0,bridge=vmbr0,ip=manual", "name=eth0,bridge=vmbr0", NET + ",link_down=1",
                "name=eth0,bridge=vmbr0,ip=dhcp,link_down=1"):
        assert desired(EIGHT, oci=WRAPPED, net={"0": net})["net0"] == net


def test_net_lines_on_8_are_what_9_1_writes_for_host_managed_interfaces():
    """pve-container 9.1 update_lxc_config: ipv4/ipv6 address and gateway, then flags = up; nothing for
    link_down; indexes as the netN keys; the managed keys cover every netN's, so a removed address goes."""
    config = {"description": RECORD, "net0": NET + ",hwaddr=BC:24:11:00:00:01,type=veth",
              "net2": "name=eth2,bridge=vmbr2,ip6=fd00::5/64,gw6=fd00::1,ip=manual",
              "net10": "name=eth10,bridge=vmbr0,ip=10.9.0.2/24,link_down=1"}
    made = ContainerManager({"state": "started"}, client=object())
    made.features_for = lambda config=None: EIGHT
    lines, managed = made.net_lines(config)
    assert lines == ["lxc.net.0.ipv4.address = 10.0.0.5/24", "lxc.net.0.ipv4.gateway = 10.0.0.1",
                     "lxc.net.0.flags = up",
                     "lxc.net.2.ipv6.address = fd00::5/64", "lxc.net.2.ipv6.gateway = fd00::1",
                     "lxc.net.2.flags = up"]
    assert "lxc.net.10.flags" in managed and "lxc.net.2.ipv4.address" in managed and len(managed) == 15
    made.features_for = lambda config=None: NINE  # 9.1 writes them itself for host-managed interfaces
    assert made.net_lines(config) == ([], set())
    made.features_for = lambda config=None: EIGHT  # a system container (no image record) has its own init
    assert made.net_lines(dict(config, description="mine")) == ([], set())


def test_an_existing_app_container_keeps_what_the_importer_set():
    """Found again without oci (its description records the image): net0 as given still means host-managed."""
    config = {"hostname": "app", "entrypoint": "/bin/app", "description": RECORD,
              "net0": NET + ",host-managed=1,hwaddr=BC:24:11:00:00:01,type=veth"}
    assert desired(NINE, config=config, vmid=150, net={"0": NET})["net0"]["host-managed"] == "1"
    assert desired(NINE, config=dict(config, description="mine"), vmid=150, net={"0": NET})["net0"] == NET


IMPORTED = {"lxc": [["lxc.init.uid", "1000"], ["lxc.init.gid", "1000"], ["lxc.init.groups", "29,44"],
                    ["lxc.init.cwd", "/srv"], ["lxc.signal.halt", "SIGTERM"]]}


@pytest.mark.parametrize("runtime, config, problem", [
    (dict(RUNTIME, uid=1000, gid=1000, groups=[44, 29], cwd="/srv"), IMPORTED, None),
    # pve-container 6.0.x: the User is ignored
    (dict(RUNTIME, uid=1000, gid=1000, groups=[44, 29], cwd="/srv"), {"lxc": [["lxc.init.cwd", "/srv"]]},
     "uid 1000 (lxc.init.uid is unset); gid 1000 (lxc.init.gid is unset); supplementary groups 29,44"),
    (dict(RUNTIME, cwd="/srv"), {}, "working directory /srv (lxc.init.cwd is unset)"),
    (RUNTIME, {}, None),  # root in /: nothing to set
    # LXC start.c applies lxc.init.groups only without a user namespace: lost in an unprivileged container
    (dict(RUNTIME, uid=1000, gid=1000, groups=[44, 29], cwd="/srv"), dict(IMPORTED, unprivileged=1),
     "LXC applies lxc.init.groups only to a privileged container"),
    (dict(RUNTIME, uid=1000, gid=1000, cwd="/srv"), dict(IMPORTED, unprivileged=1), None),
    (dict(RUNTIME, uid=1000, gid=1000, wrapper={"kind": "init"}), {}, None),  # the generated init switches
])
def test_import_problem_names_what_the_import_left_out(runtime, config, problem):
    found = import_problem(runtime, config)
    if problem is None:
        assert found is None
    else:
        assert problem in found


class CreatePve:
    """Records the create's parameters; the created CT is stopped, with the config the create gave."""

    def __init__(self, existing=None):
        self.created, self.configs = None, dict(existing or {})

    def features(self):
        return NINE

    @staticmethod
    def acting_user():
        return "root@pam"

    def get(self, path, params=None, **kw):
        if path == "/cluster/resources":
            return [{"type": "lxc", "vmid": v, "node": "pve1", "status": "stopped"} for v in self.configs]
        if path == "/nodes/{node}/lxc":
            return [{"vmid": v, "name": c.get("hostname"), "status": "stopped"} for v, c in self.configs.items()]
        if path == "/nodes/{node}/lxc/{vmid}/config":
            return dict(self.configs[kw["vmid"]], digest="d")
        if path == "/nodes/{node}/tasks/{upid}/status":
            return {"status": "stopped", "exitstatus": "OK"}
        if path == "/nodes/{node}/lxc/{vmid}/status/current":
            return {"status": "stopped"}
        if path == "/nodes":
            return [{"node": "pve1"}]
        if path == "/cluster/nextid":
            return 100
        raise AssertionError(path)

    def post(self, path, params=None, **kw):
        assert path == "/nodes/{node}/lxc", path
        self.created = dict(params)
        self.configs[params["vmid"]] = {"hostname": params.get("hostname"),
                                        "unprivileged": params.get("unprivileged", 0)}
        return "UPID:pve1:00000001:00000001:00000001:vzcreate:100:root@pam:"


@pytest.mark.parametrize("given, sent", [(None, 1), (True, 1), (False, 0)])
def test_a_new_container_is_unprivileged_unless_told_otherwise(given, sent):
    pve = CreatePve()
    params = {"hostname": "new", "ostemplate": "local:vztmpl/t.tar.zst", "state": "present", "node": "pve1"}
    if given is not None:
        params["unprivileged"] = given
    ContainerManager(params, client=pve).run()
    assert int(pve.created["unprivileged"]) == sent


def test_unprivileged_of_an_existing_container_is_not_changed_but_refused():
    pve = CreatePve({150: {"hostname": "old", "unprivileged": 0}})
    with pytest.raises(Exception, match="CT 150 is privileged, and Proxmox VE fixes that when a container is created"):
        ContainerManager({"vmid": 150, "unprivileged": True, "state": "present"}, client=pve).run()
    assert pve.created is None
    ContainerManager({"vmid": 150, "state": "present"}, client=pve).run()  # left out: fine


# -- a template whose generated init configures the interfaces (oci_template's net) -----------------------------

BAKED = [{"key": "net0", "name": "eth0", "ip": "dhcp"}]
BAKED_OCI = {"volid": "local:vztmpl/app.tar.zst", "image": "registry.example/app:1",
             "runtime": dict(RUNTIME, wrapper={"kind": "init"}, net=BAKED)}


def test_on_8_a_template_that_configures_the_interfaces_needs_no_raw_lines():
    """DHCP and addresses that 8 refuses otherwise are the template's init's to configure: no raw_lxc, no
    host-managed; the new container records the interfaces' digest."""
    wanted = desired(EIGHT, oci=BAKED_OCI, net={"0": "name=eth0,bridge=vmbr0,ip=dhcp"})
    assert wanted["net0"] == "name=eth0,bridge=vmbr0,ip=dhcp"
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import config as pveconfig, origin
    assert origin.parse(wanted["description"])["net"] == pveconfig.app_net_digest(BAKED)
    # on 9.1 the init configures them as well: host-managed would do it twice
    assert "host-managed" not in str(desired(NINE, oci=BAKED_OCI, net={"0": "name=eth0,bridge=vmbr0,ip=dhcp"})["net0"])


@pytest.mark.parametrize("net", [
    {"0": "name=eth0,bridge=vmbr0,ip=10.0.0.5/24"},  # another address
    {"0": "name=eth1,bridge=vmbr0,ip=dhcp"},  # another name
    {"0": "name=eth0,bridge=vmbr0,ip=dhcp", "1": "name=eth1,bridge=vmbr0,ip=manual"},  # one more interface
    None,  # none: the init would fail to find eth0
])
def test_a_container_with_other_interfaces_than_the_templates_is_refused(net):
    params = {"oci": BAKED_OCI}
    if net is not None:
        params["net"] = net
    with pytest.raises(Exception) as info:
        desired(EIGHT, **params)
    assert "the template's generated init configures net0 (name=eth0,ip=dhcp)" in str(info.value) and \
        "nothing was changed" in str(info.value)


def test_later_tasks_without_oci_check_the_recorded_digest():
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import config as pveconfig
    config = {"hostname": "app", "description": RECORD + " net=" + pveconfig.app_net_digest(BAKED),
              "net0": "name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:00:00:01,type=veth"}
    # the same interface with another bridge is accepted (the init does not care about the bridge)
    assert desired(EIGHT, config=config, net={"0": "name=eth0,bridge=vmbr1,ip=dhcp"})["net0"]
    with pytest.raises(Exception, match="configures other interfaces .its record says net="):
        desired(EIGHT, config=config, net={"0": "name=eth0,bridge=vmbr0,ip=10.0.0.9/24"})


def test_on_9_1_slaac_on_a_host_managed_interface_is_refused_before_anything_is_made():
    """pve-container update_lxc_config dies at start for ip6=auto on a host-managed interface: refused at once,
    unless the user keeps the interface unmanaged or down."""
    oci = {"volid": "local:vztmpl/app.tar.zst", "runtime": RUNTIME}
    for net in ("name=eth0,bridge=vmbr0,ip6=auto", "name=eth0,bridge=vmbr0,ip6=auto,host-managed=1"):
        with pytest.raises(Exception, match="net0: ip6=auto: Proxmox VE refuses SLAAC on a host-managed interface"):
            desired(NINE, oci=oci, net={"0": net})
    for net in ("name=eth0,bridge=vmbr0,ip6=auto,host-managed=0", "name=eth0,bridge=vmbr0,ip6=auto,link_down=1"):
        assert desired(NINE, oci=oci, net={"0": net})["net0"]
