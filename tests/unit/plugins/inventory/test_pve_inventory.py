"""The inventory plugin's pure parts: hosts, variables and groups from list_containers' entries."""

from ansible_collections.lxcri.proxmox.plugins.inventory.pve import config_ips, hosts_of, running_ips, safe

DIGEST = "sha256:" + "cd" * 32


def entry(vmid, hostname, **extra):
    base = {"vmid": vmid, "node": "pve2", "hostname": hostname, "status": "stopped", "template": False, "tags": [],
            "config": {}, "origin": None}
    base.update(extra)
    return base


def test_addresses_come_from_interfaces_else_from_the_config():
    assert running_ips([{"name": "lo", "inet": ["127.0.0.1/8"]},
                        {"name": "eth0", "inet": ["10.0.0.5/24"], "inet6": ["fe80::1/64", "fd00::5/64"]}]) == \
        ["10.0.0.5", "fd00::5"]
    assert config_ips({"net1": "name=eth1,ip=dhcp,ip6=auto", "net0": "name=eth0,ip=10.1.0.2/16,ip6=fd01::2/64",
                       "mp0": "ip=1.2.3.4"}) == ["10.1.0.2", "fd01::2"]


def test_hosts_groups_and_variables():
    record = {"image": "x/db:1", "digest": DIGEST}
    found = hosts_of([
        entry(200, "db", status="running", tags=["lxcri", "lxcri-app-db.main"], origin=record,
              interfaces=[{"name": "eth0", "inet": [], "inet6": ["fd00::9/64"]}],
              config={"net0": "name=eth0,ip=10.9.0.9/24"}),
        entry(201, "db"),
        entry(202, "golden", template=True),
    ])
    assert [name for name, dummy, dummy2 in found] == ["db", "db-201"]
    name, variables, groups = found[0]
    assert variables == {"pve_vmid": 200, "pve_node": "pve2", "pve_status": "running",
                         "pve_tags": ["lxcri", "lxcri-app-db.main"], "pve_ips": ["fd00::9"], "pve_image": "x/db:1",
                         "pve_digest": DIGEST, "pve_template": False, "ansible_host": "fd00::9"}
    assert groups == ["pve_node_pve2", "pve_status_running", "pve_tag_lxcri", "pve_tag_lxcri_app_db_main",
                      "pve_app_db_main"]
    assert "ansible_host" not in found[1][1]
    named = hosts_of([entry(202, "golden", template=True)], prefix="px_", host_name="vmid", include_templates=True)
    assert named[0][0] == "202" and named[0][1]["px_template"] and "px_status_stopped" in named[0][2]


def test_group_names_are_safe():
    assert safe("lxcri-app-web.v2") == "lxcri_app_web_v2" and safe("pve1") == "pve1"
