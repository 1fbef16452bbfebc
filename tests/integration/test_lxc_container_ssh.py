"""lxcri.proxmox.lxc_container with ``api_connection: ssh``: real ansible-playbook runs, a real sshd on
127.0.0.1 (key login, throwaway keys), and pvesh on that node answered by the Proxmox VE API double."""

import json

import pytest

from lxcri_testbed.ansible import write_pve_play
from lxcri_testbed.sshd import Sshd

pytestmark = pytest.mark.integration

NODE = "pve1"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Sshd.available():
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(name="double")
def busybox(busybox_double):
    return busybox_double


def ssh_play(tmp_path, sshd, double, name, tasks):
    """A localhost playbook whose module_defaults reach the node over SSH; its pvesh talks to ``double``."""
    shim = tmp_path / "pvesh-shim.json"
    if not shim.exists():
        secret = double.add_token("root@pam!sshshim")
        shim.write_text(json.dumps({"url": double.url, "token": "root@pam!sshshim=%s" % secret, "ca": double.cert}))
    config = sshd.client_config(tmp_path / "ssh_config", {"PVESH_SHIM_CONFIG": str(shim)})
    return write_pve_play(tmp_path, double, name, tasks, defaults={
        "api_connection": "ssh", "api_host": "127.0.0.1", "ssh_port": sshd.port, "ssh_identity_file": sshd.client_key,
        "ssh_config_file": config})


def test_create_start_stop_absent_over_ssh(installed_collection, sshd, double, tmp_path):
    create = ssh_play(tmp_path, sshd, double, "create.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 130
            hostname: over-ssh
            ostemplate: local:vztmpl/base.tar.zst
            memory: 256
            description: "it's quoted; $HOME `stays` text"
            state: started
          register: ct
        """)
    first = installed_collection.playbook(create)
    assert first.rc == 0, first
    res = first.task_results()[0]
    assert res["changed"] and res["actions"] == ["created", "started"] and double.running(130)
    config = double.backend.containers[130].config
    assert config["hostname"] == "over-ssh" and config["memory"] == "256"
    assert "it's quoted; $HOME `stays` text" in config.get("description", "")
    again = installed_collection.playbook(create)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again.task_results()

    stop = ssh_play(tmp_path, sshd, double, "stop.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 130
            state: stopped
            shutdown_timeout: 2
            force_stop: true
        """)
    run = installed_collection.playbook(stop)
    assert run.rc == 0 and run.task_results()[0]["changed"], run
    assert double.running(130) is False

    gone = ssh_play(tmp_path, sshd, double, "absent.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 130
            state: absent
        """)
    run = installed_collection.playbook(gone)
    assert run.rc == 0 and run.task_results()[0]["changed"], run
    assert 130 not in double.backend.containers
    assert installed_collection.playbook(gone).stats["localhost"]["changed"] == 0
    # every call went through the shim's API token, none through a ticket
    assert not any(r[1].endswith("/access/ticket") for r in double.requests)


def test_api_errors_and_ssh_failures_read_as_such(installed_collection, sshd, double, tmp_path):
    bad = ssh_play(tmp_path, sshd, double, "bad.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 131
            hostname: bad
            ostemplate: local:vztmpl/missing.tar.zst
            state: present
        """)
    run = installed_collection.playbook(bad)
    assert run.rc != 0
    msg = run.task_results()[0]["msg"]
    assert "missing.tar.zst" in msg and 131 not in double.backend.containers, msg

    wrong_key = tmp_path / "other_key"
    wrong_key.write_text(open(sshd.host_key).read())  # a key the server does not accept
    wrong_key.chmod(0o600)
    denied = ssh_play(tmp_path, sshd, double, "denied.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 132
            state: absent
            ssh_identity_file: %s
        """ % wrong_key)
    run = installed_collection.playbook(denied)
    assert run.rc != 0
    msg = run.task_results()[0]["msg"]
    assert "ssh root@127.0.0.1 (port %d)" % sshd.port in msg and "Permission denied" in msg, msg


@pytest.mark.parametrize("busybox_double", ["9.1"], indirect=True)  # env is a Proxmox VE 9.1 key
def test_a_nul_separated_env_over_ssh_needs_the_nodes_https_api(installed_collection, sshd, double, tmp_path):
    """env with several entries cannot be a pvesh argument: over ssh it goes to the node's HTTPS API through a
    port forward, checked with the node's CA, which this machine (no Proxmox VE) lacks: refused before any
    change, naming what is missing."""
    env = ssh_play(tmp_path, sshd, double, "env.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 133
            hostname: with-env
            ostemplate: local:vztmpl/base.tar.zst
            env: [A=1, B=2]
            state: present
        """)
    run = installed_collection.playbook(env)
    assert run.rc != 0
    msg = run.task_results()[0]["msg"]
    assert "pvesh cannot pass env" in msg and "/etc/pve/pve-root-ca.pem" in msg and "over SSH" in msg, msg
    assert 133 not in double.backend.containers


@pytest.mark.parametrize("busybox_double", ["9.1"], indirect=True)
def test_env_with_several_entries_reaches_a_node_over_ssh(sshd, double, tmp_path):
    """The whole path with the node's HTTPS API standing in as the double (its port and CA as the loopback, and
    a login to it as the ticket minting, which on a node needs /etc/pve/priv/authkey.key): the CA is read and
    the ticket minted over SSH, the env goes through the ssh -L forward, everything else through pvesh."""
    import os
    import subprocess
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.ssh import SshPveClient
    from lxcri_testbed.node_https import check_env_reaches, write_mint
    shim = tmp_path / "pvesh-shim.json"
    secret = double.add_token("root@pam!sshshim")
    shim.write_text(json.dumps({"url": double.url, "token": "root@pam!sshshim=%s" % secret, "ca": double.cert}))
    config = sshd.client_config(tmp_path / "ssh_config", {"PVESH_SHIM_CONFIG": str(shim)})
    client = SshPveClient("127.0.0.1", port=sshd.port, identity_file=sshd.client_key, config_file=str(config),
                          timeout=120, mint=[write_mint(tmp_path / "mint", double)],
                          loopback={"host": "127.0.0.1", "port": double.port, "ca_path": double.cert})
    check_env_reaches(double, client, 134, "ssh-env")
    forward, ca_copy = client._forward, client._https.verify  # pylint: disable=protected-access
    assert forward.poll() is None and os.path.exists(ca_copy)
    client.close()
    assert forward.poll() is not None and not os.path.exists(ca_copy)
    assert subprocess.run(["pgrep", "-f", "127.0.0.1:[0-9]*:127.0.0.1:%d" % double.port],
                          stdout=subprocess.PIPE, check=False).returncode == 1  # no forward left behind
