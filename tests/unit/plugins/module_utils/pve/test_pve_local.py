"""The local pvesh backend with a fake runner, and connect() choosing a backend from the options."""

import hashlib
import json
import os

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import PveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConfigError, PveTaskError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import (
    LocalPveClient, parse_pvesh_output, pvesh_error)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import wait_task

UPID = "UPID:pve1:0002E5C1:00000001:6B02B17C:vzcreate:120:root@pam:"


class FakeRunner:
    """Plays pvesh: answers (rc, stdout, stderr) in order and records every argv."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.argvs = []
        self.seen_files = {}

    def __call__(self, argv):
        self.argvs.append(list(argv))
        for arg in argv:
            if arg.startswith("--tmpfilename="):
                path = arg.split("=", 1)[1]
                with open(path, "rb") as handle:
                    self.seen_files[path] = handle.read()
        return self.answers.pop(0)


def test_verbs_paths_and_arguments():
    runner = FakeRunner((0, '{"version": "9.1.1", "release": "9.1"}\n', ""), (0, "", ""),
                        (0, '"UPID:pve1:1:2:3:imgdel::root@pam:"\n', ""), (0, "[]", ""))
    client = LocalPveClient(runner=runner, pvesh="/usr/bin/pvesh")
    assert client.features().entrypoint_env
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=512, onboot=True,
                      delete=["net1", "mp0"], description="-starts with a dash") is None
    assert client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node="pve1", storage="local",
                         volume="local:vztmpl/a b.tar.zst").startswith("UPID:")
    assert client.post("/nodes/{node}/lxc", {"ssh-public-keys": "k"}, node="pve1", vmid=101, unset=None) == []
    assert runner.argvs == [
        ["/usr/bin/pvesh", "get", "/version", "--output-format", "json"],
        ["/usr/bin/pvesh", "set", "/nodes/pve1/lxc/100/config", "--output-format", "json",
         "--delete=net1", "--delete=mp0", "--description=-starts with a dash", "--memory=512", "--onboot=1"],
        # pvesh takes path segments as they are: no URL quoting
        ["/usr/bin/pvesh", "delete", "/nodes/pve1/storage/local/content/local:vztmpl/a b.tar.zst",
         "--output-format", "json"],
        ["/usr/bin/pvesh", "create", "/nodes/pve1/lxc", "--output-format", "json", "--ssh-public-keys=k",
         "--vmid=101"],
    ]


def test_foreground_task_output_before_the_json():
    out = "extracting archive '/var/lib/vz/template/cache/x.tar.zst'\nTotal bytes read: 1\n\"%s\"\n" % UPID
    assert parse_pvesh_output(out) == UPID
    assert parse_pvesh_output("") is None
    assert parse_pvesh_output(json.dumps({"a": [1, 2]}, indent=2)) == {"a": [1, 2]}
    with pytest.raises(Exception) as err:
        parse_pvesh_output("no json here\nat all")
    assert "no JSON" in str(err.value)


def test_pvesh_errors():
    err = pvesh_error("POST", "/nodes/pve1/lxc", 255, "",
                      "400 Parameter verification failed.\nvmid: type check ('integer') failed - got 'abc'\n"
                      "net0: invalid format - property 'colour' not allowed\n\n"
                      "pvesh create <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    assert (err.status, err.method, err.path, err.message) == (400, "POST", "/nodes/pve1/lxc",
                                                               "Parameter verification failed.")
    assert err.errors == {"vmid": "type check ('integer') failed - got 'abc'",
                          "net0": "invalid format - property 'colour' not allowed"}
    assert "(pvesh 400)" in str(err) and "\n" not in str(err)
    plain = pvesh_error("PUT", "/nodes/pve1/lxc/999/config", 2, "",
                        "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n")
    assert plain.status == 500 and plain.message == "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    assert pvesh_error("GET", "/x", 1, "", "No 'get' handler defined for '/x'\n").status == 501
    assert pvesh_error("GET", "/x", 3, "", "").message == "pvesh exited with 3"


def test_failed_call_raises_but_a_printed_upid_goes_to_the_task_waiter():
    runner = FakeRunner((2, "", "CT 120 already exists on node 'pve1'\n"),
                        (1, "extracting...\n\"%s\"\n" % UPID, "unable to create CT 120 - disk full\n"),
                        (0, json.dumps({"status": "stopped", "exitstatus": "unable to create CT 120 - disk full"}), ""),
                        (0, json.dumps([{"n": 1, "t": "extracting..."},
                                        {"n": 2, "t": "TASK ERROR: unable to create CT 120 - disk full"}]), ""))
    client = LocalPveClient(runner=runner)
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/{node}/lxc", node="pve1", vmid=120)
    assert "already exists" in str(err.value)
    upid = client.post("/nodes/{node}/lxc", node="pve1", vmid=120)
    assert upid == UPID
    with pytest.raises(PveTaskError) as err:
        wait_task(client, None, upid, sleep=lambda s: None)
    assert err.value.log_tail[-1] == "TASK ERROR: unable to create CT 120 - disk full"
    assert runner.argvs[2][1:3] == ["get", "/nodes/pve1/tasks/%s/status" % UPID]
    assert "--start=0" in runner.argvs[3] and "--limit=500" in runner.argvs[3]


def test_nul_bytes_cannot_go_through_argv():
    with pytest.raises(PveConfigError) as err:
        LocalPveClient(runner=FakeRunner()).argv("PUT", "/nodes/pve1/lxc/100/config", {"env": "A=1\0B=2"})
    assert "env" in str(err.value) and "api_host" in str(err.value)


class FakeHttps:
    """Stands in for PveClient: records how it was made and what it was asked."""

    made = []

    def __init__(self, host, **kwargs):
        self.host, self.kwargs, self.calls = host, kwargs, []
        FakeHttps.made.append(self)

    def request(self, method, path, params=None, **kwargs):
        self.calls.append((method, path, dict(params or {}, **kwargs), self.kwargs["ticket_source"]()))
        return None


def test_a_nul_value_goes_to_the_nodes_own_https_api_with_a_minted_ticket():
    """pvesh takes parameters as arguments, which cannot hold NUL: env with two entries goes to localhost:8006
    as root@pam, with a ticket and CSRF token the node makes (PVE::AccessControl), the node's CA; the rest stays
    on pvesh."""
    FakeHttps.made = []
    runner = FakeRunner((0, "PVE:root@pam:6B14::sig\nABCD1234:csrf\n", ""), (0, "", ""))
    client = LocalPveClient(runner=runner, https_factory=FakeHttps)
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2") is None
    https = FakeHttps.made[0]
    assert (https.host, https.kwargs["port"], https.kwargs["user"], https.kwargs["ca_path"]) == \
        ("localhost", 8006, "root@pam", "/etc/pve/pve-root-ca.pem")
    method, path, params, tokens = https.calls[0]
    assert (method, path, params["env"], params["vmid"]) == ("PUT", "/nodes/{node}/lxc/{vmid}/config", "A=1\0B=2",
                                                             100)
    assert tokens == ("PVE:root@pam:6B14::sig", "ABCD1234:csrf")
    assert runner.argvs[0][0] == "/usr/bin/perl" and "assemble_ticket('root@pam')" in runner.argvs[0][2]
    client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=256)
    assert runner.argvs[1][:3] == ["/usr/bin/pvesh", "set", "/nodes/pve1/lxc/100/config"]


def test_a_ticket_that_cannot_be_made_is_a_clear_error(tmp_path):
    runner = FakeRunner((2, "", "Can't locate PVE/AccessControl.pm in @INC"))
    ca = tmp_path / "pve-root-ca.pem"
    ca.write_text("not read before the ticket\n")
    client = LocalPveClient(runner=runner, loopback={"ca_path": str(ca)})
    with pytest.raises(PveConfigError) as err:
        client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2")
    assert "localhost:8006" in str(err.value) and "PVE/AccessControl.pm" in str(err.value)


def test_upload_copies_to_a_pveupload_file_with_checksum(tmp_path):
    data = os.urandom(300000)
    src = tmp_path / "app.tar.zst"
    src.write_bytes(data)
    spool = tmp_path / "spool"
    spool.mkdir()
    runner = FakeRunner((0, '"UPID:pve1:1:2:3:imgcopy::root@pam:"', ""), (255, "", "storage 'nope' does not exist\n"))
    client = LocalPveClient(runner=runner, tmp_dir=str(spool))
    assert client.upload("pve1", "local", "vztmpl", str(src)).startswith("UPID:")
    argv = runner.argvs[0]
    assert argv[:3] == ["/usr/bin/pvesh", "create", "/nodes/pve1/storage/local/upload"]
    options = dict(a[2:].split("=", 1) for a in argv[5:])
    assert options["content"] == "vztmpl" and options["filename"] == "app.tar.zst"
    assert options["checksum-algorithm"] == "sha256" and options["checksum"] == hashlib.sha256(data).hexdigest()
    tmp = options["tmpfilename"]
    assert os.path.dirname(tmp) == str(spool) and os.path.basename(tmp).startswith("pveupload-")
    assert runner.seen_files[tmp] == data
    # refused before the task ran: the copy is not left behind
    with pytest.raises(PveApiError):
        client.upload("pve1", "nope", "vztmpl", str(src), filename="other.tar.zst", checksum=False)
    assert "--checksum" not in " ".join(runner.argvs[1]) and "--filename=other.tar.zst" in runner.argvs[1]
    assert os.listdir(str(spool)) == []


def test_connect_picks_the_backend(tmp_path):
    pvesh = tmp_path / "pvesh"
    pvesh.write_text("#!/bin/sh\nexit 0\n")
    pvesh.chmod(0o755)
    local = connect({"api_host": None, "wait_timeout": 100, "api_timeout": 5}, runner=FakeRunner(), pvesh=str(pvesh))
    assert isinstance(local, LocalPveClient) and local.pvesh == str(pvesh) and local.timeout == 105
    with pytest.raises(PveConfigError) as err:
        connect({}, pvesh=str(tmp_path / "absent"))
    assert "not a Proxmox VE node" in str(err.value) and "api_host" in str(err.value)
    remote = connect({"api_host": "pve.example", "api_port": 8443, "api_user": "ci@pve", "api_token_id": "deploy",
                      "api_token_secret": "x" * 36, "validate_certs": False, "api_timeout": 9})
    assert isinstance(remote, PveClient) and remote.token_id == "ci@pve!deploy"
    assert remote.base_url == "https://pve.example:8443/api2/json" and remote.verify is False and remote.timeout == 9
    assert connect({"api_host": "h", "api_password": "p"}).verify is True


@pytest.mark.parametrize("params,needle", [
    ({"api_password": "p", "api_token_id": "t", "api_token_secret": "s"}, "mutually exclusive"),
    ({"api_token_id": "t"}, "together"),
    ({"api_token_secret": "s"}, "together"),
    ({}, "give api_password, or api_token_id and api_token_secret"),
])
def test_connect_credential_rules(params, needle):
    params = dict(params, api_host="pve.example")
    with pytest.raises(PveConfigError) as err:
        connect(params)
    assert needle in str(err.value)
