"""lxcri.proxmox.lxc_container_info through real ansible-playbook runs against the Proxmox VE API double.

The double's containers are seeded directly into its backend (stopped, no LXC
needed): the module only reads, so what matters is what the API returns.
"""

import textwrap

import pytest

from lxcri_testbed.ansible import AnsibleRun, write_pve_play
from lxcri_testbed.ansible import _bin as ansible_bin
from pve_double.backend import Container
from pve_double.server import DEFAULT_PASSWORD, Double

pytestmark = pytest.mark.integration

MAC = "BC:24:11:2E:4F:6A"
SEED = {
    150: {"hostname": "alpha", "tags": "web;blue", "memory": "256",
          "net0": "name=eth0,bridge=vmbr0,hwaddr=%s,ip=dhcp,type=veth" % MAC,
          "rootfs": "local:150/subvol-150-disk-0.subvol"},
    151: {"hostname": "beta", "tags": "web", "rootfs": "local:151/subvol-151-disk-0.subvol"},
    152: {"hostname": "gamma", "tags": "db", "rootfs": "local:152/subvol-152-disk-0.subvol", "template": "1"},
    153: {"hostname": "delta", "rootfs": "local:153/subvol-153-disk-0.subvol"},
}


@pytest.fixture(params=["9.1", "8"])
def double(request, tmp_path):
    instance = Double(str(tmp_path / "pve"), mode=request.param).start()
    for vmid, config in SEED.items():
        instance.backend.containers[vmid] = Container(vmid, dict(config, arch="amd64", ostype="unmanaged"))
    yield instance
    instance.stop()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def config_gets(double):
    return sorted(int(path.split("/")[-2]) for method, path, dummy in double.requests
                  if method == "GET" and path.endswith("/config"))


def test_filters_through_the_pve_group_defaults(installed_collection, double, tmp_path):
    playbook = write_pve_play(tmp_path, double, "info.yml", ("""\
        - name: everything
          lxcri.proxmox.lxc_container_info:
        - name: tagged web
          lxcri.proxmox.lxc_container_info:
            tags: [web]
        - name: tagged web and blue, written the PVE way
          lxcri.proxmox.lxc_container_info:
            tags: ["blue;web"]
        - name: by hostname
          lxcri.proxmox.lxc_container_info:
            hostname: gamma
        - name: by vmid on its node
          lxcri.proxmox.lxc_container_info:
            vmid: 150
            node: pve1
        - name: another node
          lxcri.proxmox.lxc_container_info:
            node: pve9
        """))
    run = installed_collection.playbook(playbook)
    assert run.rc == 0, run
    every, web, blue, gamma, alpha, other = run.task_results()
    assert [c["vmid"] for c in every["containers"]] == [150, 151, 152, 153]
    assert [c["vmid"] for c in web["containers"]] == [150, 151]
    assert [c["vmid"] for c in blue["containers"]] == [150]
    assert [c["hostname"] for c in gamma["containers"]] == ["gamma"] and gamma["containers"][0]["template"] is True
    assert other["containers"] == []
    assert not any(r["changed"] for r in run.task_results())
    ct = alpha["containers"][0]
    assert (ct["vmid"], ct["node"], ct["hostname"], ct["status"], ct["tags"]) == \
        (150, "pve1", "alpha", "stopped", ["blue", "web"])
    assert ct["config"]["net0"] == "name=eth0,bridge=vmbr0,hwaddr=%s,ip=dhcp,type=veth" % MAC
    assert ct["config"]["memory"] in (256, "256") and len(ct["config"]["digest"]) == 40
    assert ct["maxmem"] == 256 * 1024 * 1024
    # configs only of the matches: 4 + 2 + 1 + 1 + 1 + 0
    assert config_gets(double) == sorted([150, 151, 152, 153, 150, 151, 150, 152, 150])


def test_config_false_is_one_call_and_check_mode_changes_nothing(installed_collection, double, tmp_path):
    playbook = write_pve_play(tmp_path, double, "light.yml", ("""\
        - lxcri.proxmox.lxc_container_info:
            tags: [web]
            config: false
        """))
    before = {vmid: dict(ct.config) for vmid, ct in double.backend.containers.items()}
    run = installed_collection.playbook(playbook, check=True)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert [c["vmid"] for c in result["containers"]] == [150, 151] and result["changed"] is False
    assert all("config" not in c for c in result["containers"])
    api = [(m, p) for m, p, dummy in double.requests if p != "/api2/json/access/ticket"]
    # one cluster call for the containers, and the version for ``pve``
    # the cluster list, the node's live list (pvestatd's data in the cluster list lags), the version
    assert api == [("GET", "/api2/json/cluster/resources"), ("GET", "/api2/json/nodes/pve1/lxc"),
                   ("GET", "/api2/json/version")]
    assert result["pve"]["version"] == double.backend.version({})["version"]
    assert result["pve"]["entrypoint_env"] is double.backend.mode.startswith("9")
    assert {vmid: dict(ct.config) for vmid, ct in double.backend.containers.items()} == before


def test_a_wrong_password_fails_clearly_and_stays_secret(installed_collection, double, tmp_path):
    playbook = write(tmp_path, "bad.yml", """\
        - hosts: localhost
          gather_facts: false
          tasks:
            - lxcri.proxmox.lxc_container_info:
                api_host: 127.0.0.1
                api_port: %d
                api_password: wrong-password-value-xyz
                ca_path: %s
        """ % (double.port, double.cert))
    run = installed_collection.playbook(playbook, verbosity=3)
    assert run.rc != 0
    msg = run.task_results()[0]["msg"]
    assert "401" in msg and "authentication failure" in msg and "check api_user and api_password" in msg, msg
    assert "wrong-password-value-xyz" not in run.stdout + run.stderr + repr(run.results)


def test_secrets_from_the_environment_stay_out_of_vvv_output(installed_collection, double, tmp_path):
    """PROXMOX_* variables of the controller reach the module (env fallbacks) and never its -vvv output.

    (Ansible's own ``environment:`` keyword prints its values at -vvv, so the
    variables are set for ansible-playbook itself, as AWX and CI jobs do.)
    """
    secret = double.add_token("root@pam!info")
    playbook = write(tmp_path, "env.yml", """\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: a token from PROXMOX_* variables
              lxcri.proxmox.lxc_container_info:
                vmid: 151
            - name: a password given next to the token of the environment is a clear error
              lxcri.proxmox.lxc_container_info:
                api_password: %s
              ignore_errors: true
        """ % DEFAULT_PASSWORD)
    env = installed_collection.env(PROXMOX_HOST="127.0.0.1", PROXMOX_PORT=str(double.port), PROXMOX_CA_PATH=double.cert,
                                   PROXMOX_TOKEN_ID="root@pam!info", PROXMOX_TOKEN_SECRET=secret)
    proc, results = installed_collection._run([ansible_bin("ansible-playbook"), playbook, "-vvv"], env=env)
    run = AnsibleRun(proc, results)
    assert run.rc == 0, run
    found, clash = run.task_results()
    assert [c["hostname"] for c in found["containers"]] == ["beta"]
    assert run.results["tasks"][1]["status"] != "ok"
    assert "mutually exclusive" in clash["msg"] and "PROXMOX_" in clash["msg"], clash
    output = run.stdout + run.stderr + repr(run.results)
    assert secret not in output and DEFAULT_PASSWORD not in output
    assert any(path.endswith("/cluster/resources") for dummy, path, dummy2 in double.requests)


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.lxc_container_info")
    assert run.rc == 0, run
    for word in ("hostname", "tags", "config", "api_token_secret", "maxmem", "group/lxcri.proxmox.pve"):
        assert word in run.stdout, word
