"""The inventory plugin lxcri.proxmox.pve through real ansible-inventory and ansible-playbook runs against the
Proxmox VE API double (issue 16): containers as hosts, grouped by node, status, tag and oci_app app, with the
image the collection recorded, addresses from a running container's interfaces or a stopped one's config,
compose/keyed_groups/groups, and a play that runs on the discovered containers (through lxc-attach on the
node)."""

import json
import textwrap

import pytest

from pve_double.backend import Container
from pve_double.server import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "ab" * 32
SEED = {
    150: {"hostname": "web", "tags": "lxcri;lxcri-app-web;lxcri-digest-abababababab",
          "description": "lxcri.proxmox: image=registry.example/web:2 digest=%s" % DIGEST,
          "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2E:4F:6A,ip=192.0.2.10/24,gw=192.0.2.1,type=veth",
          "rootfs": "local:150/subvol-150-disk-0.subvol"},
    151: {"hostname": "web-prev", "tags": "lxcri;lxcri-app-web", "rootfs": "local:151/subvol-151-disk-0.subvol",
          "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2E:4F:6B,ip=dhcp,ip6=fd00::11/64,type=veth"},
    152: {"hostname": "base", "tags": "golden", "template": "1", "rootfs": "local:152/subvol-152-disk-0.subvol"},
    153: {"hostname": "web", "rootfs": "local:153/subvol-153-disk-0.subvol"},  # a second "web"
}


def plain(value):
    """ansible-inventory's JSON with the unsafe markers (``{"__ansible_unsafe": ...}``) taken off."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return plain(value["__ansible_unsafe"])
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def source(double, tmp_path, extra=""):
    path = tmp_path / "cluster.pve.yml"
    path.write_text(textwrap.dedent("""\
        plugin: lxcri.proxmox.pve
        api_host: 127.0.0.1
        api_port: %d
        api_user: root@pam
        api_password: %s
        ca_path: %s
        """) % (double.port, DEFAULT_PASSWORD, double.cert) + textwrap.dedent(extra))
    return str(path)


def test_containers_are_hosts_grouped_by_node_status_tag_and_app(installed_collection, busybox_double, tmp_path,
                                                                 bridge):
    double = busybox_double
    for vmid, config in SEED.items():
        double.backend.containers[vmid] = Container(vmid, dict(config, arch="amd64", ostype="unmanaged"))
    # a running one, whose addresses come from its interfaces; its vmid differs per mode, as the host side of its
    # interface is named veth<vmid>i0 and the two modes may run at once on two xdist workers
    live_id = 160 if double.backend.mode.startswith("9") else 161
    net = "name=eth0,bridge=%s,ip=%s,gw=%s" % (bridge.name, bridge.address(30), bridge.host)
    live = installed_collection.module("lxcri.proxmox.lxc_container", {
        "api_host": "127.0.0.1", "api_port": double.port, "api_user": "root@pam", "api_password": DEFAULT_PASSWORD,
        "ca_path": double.cert, "vmid": live_id, "hostname": "live", "ostemplate": "local:vztmpl/base.tar.zst",
        "net": {"0": net}, "tags": ["lxcri-app-live"], "state": "started"})
    assert live.rc == 0, live.data

    proc, listed = installed_collection.inventory(source(double, tmp_path, """\
        compose:
          app_label: "'app ' ~ pve_vmid"
        groups:
          golden_ones: "'golden' in pve_tags"
        keyed_groups:
          - key: pve_image | default('none', true) | regex_replace('[:@].*$', '')
            prefix: image
        """))
    assert proc.returncode == 0 and listed, proc.stderr
    hostvars = plain(listed["_meta"]["hostvars"])
    assert hostvars, proc.stderr
    assert sorted(hostvars) == ["live", "web", "web-153", "web-prev"]  # no template; the second web renamed
    web = hostvars["web"]
    assert (web["pve_vmid"], web["pve_node"], web["pve_status"]) == (150, "pve1", "stopped")
    assert web["pve_image"] == "registry.example/web:2" and web["pve_digest"] == DIGEST
    assert web["pve_ips"] == ["192.0.2.10"] and web["ansible_host"] == "192.0.2.10"
    assert web["app_label"] == "app 150"
    assert hostvars["web-prev"]["pve_ips"] == ["fd00::11"] and hostvars["web-prev"]["ansible_host"] == "fd00::11"
    assert "ansible_host" not in hostvars["web-153"] and hostvars["web-153"]["pve_image"] is None
    live = hostvars["live"]
    assert live["pve_status"] == "running" and live["pve_ips"] == [bridge.address(30).split("/")[0]], live
    assert sorted(listed["pve_app_web"]["hosts"]) == ["web", "web-prev"]
    assert listed["pve_app_live"]["hosts"] == ["live"]
    assert sorted(listed["pve_status_stopped"]["hosts"]) == ["web", "web-153", "web-prev"]
    assert sorted(listed["pve_node_pve1"]["hosts"]) == ["live", "web", "web-153", "web-prev"]
    assert sorted(listed["pve_tag_lxcri_app_web"]["hosts"]) == ["web", "web-prev"]
    assert listed["image_registry_example_web"]["hosts"] == ["web"]
    assert "golden_ones" not in listed or not listed["golden_ones"].get("hosts")

    # templates on request, named by vmid
    proc, listed = installed_collection.inventory(source(double, tmp_path, """\
        include_templates: true
        host_name: vmid
        interfaces: false
        groups:
          golden_ones: "'golden' in pve_tags"
        """))
    assert proc.returncode == 0, proc.stderr
    hostvars = plain(listed["_meta"]["hostvars"])
    assert sorted(hostvars) == ["150", "151", "152", "153", str(live_id)]
    assert listed["golden_ones"]["hosts"] == ["152"] and hostvars["152"]["pve_template"]
    assert hostvars[str(live_id)]["pve_ips"] == [bridge.address(30).split("/")[0]]  # from its config

    # a play on the discovered app containers, each reached through lxc-attach on its node
    attach = [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path]
    play = write(tmp_path, "on_apps.yml", """\
        - hosts: pve_app_live
          gather_facts: false
          tasks:
            - name: Read the init's command line in the container
              ansible.builtin.command:
                argv: %s
              delegate_to: localhost
              register: cmdline
              changed_when: false
            - name: Check it
              ansible.builtin.assert:
                that:
                  - cmdline.stdout | length > 0
                  - pve_vmid == %d
        """ % (json.dumps(attach + ["-n", "{{ pve_vmid }}", "--", "/bin/busybox", "cat", "/proc/1/cmdline"]), live_id))
    run = installed_collection.playbook(play, inventory=source(double, tmp_path))
    assert run.rc == 0 and run.stats["live"]["ok"] == 2, run.task_results()


def test_bad_credentials_fail_the_inventory_with_the_reason(installed_collection, busybox_double, tmp_path):
    path = write(tmp_path, "bad.pve.yml", """\
        plugin: lxcri.proxmox.pve
        api_host: 127.0.0.1
        api_port: %d
        api_user: root@pam
        api_password: wrong
        ca_path: %s
        """ % (busybox_double.port, busybox_double.cert))
    proc, dummy = installed_collection.inventory(path)
    assert "lxcri.proxmox.pve" in proc.stderr and "wrong" not in proc.stderr, proc.stderr
    assert "authentication failure" in proc.stderr.lower() or "401" in proc.stderr, proc.stderr
