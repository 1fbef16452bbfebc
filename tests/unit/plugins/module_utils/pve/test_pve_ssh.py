"""The SSH connection mode without a node: pvesh's argument list over proxmoxer's OpenSSH session, its exit
status carried past the SSH library, upload by scp, and connect() choosing the mode."""

import hashlib
import shlex

import pytest

# proxmoxer's OpenSSH backend needs openssh-wrapper, which does not import on Python 3.13 (no 'pipes' module)
openssh_wrapper = pytest.importorskip("openssh_wrapper")
SSHError, SSHResult = openssh_wrapper.SSHError, openssh_wrapper.SSHResult
OpenSSHSession = pytest.importorskip("proxmoxer.backends.openssh").OpenSSHSession

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import (  # noqa: E402
    connect)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (  # noqa: E402
    PveApiError, PveConfigError, PveConnectionError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import LocalPveClient  # noqa: E402
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.ssh import (  # noqa: E402
    STATUS_MARK, SshPveClient, split_status)

UPID = "UPID:pve1:0002E5C1:00000001:6B02B17C:vzcreate:120:root@pam:"


class FakeConnection:
    """Plays openssh_wrapper's SSHConnection: answers (rc, stdout, stderr) per script, or raises."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.scripts = []

    def run(self, command):
        self.scripts.append(command)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, out, err = answer
        if status is not None:
            err = (err + "\n" if err else "") + "%s%d" % (STATUS_MARK, status)
        return SSHResult(command, out.encode(), err.encode(), 0)


class FakeSession:
    def __init__(self, *answers):
        self.ssh_client = FakeConnection(*answers)
        self.copied = {}

    def upload_file_obj(self, file_obj, remote_path):
        with open(file_obj, "rb") as handle:
            self.copied[remote_path] = handle.read()


def argv_of(script):
    return shlex.split(script.splitlines()[0])


def test_calls_are_pvesh_argument_lists_quoted_for_the_remote_shell():
    session = FakeSession((0, '{"version": "9.1.1"}', ""), (0, "", ""), (0, "log line\n" + '"%s"' % UPID, ""))
    client = SshPveClient("pve.example", session=session)
    assert client.version() == {"version": "9.1.1"}
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, description="it's $HOME; `x`") is None
    assert client.post("/nodes/{node}/lxc", node="pve1", vmid=120, ostemplate="local:vztmpl/a b.tar") == UPID
    scripts = session.ssh_client.scripts
    assert argv_of(scripts[0]) == ["pvesh", "get", "/version", "--output-format", "json"]
    assert argv_of(scripts[1]) == ["pvesh", "set", "/nodes/pve1/lxc/100/config", "--output-format", "json",
                                   "--description=it's $HOME; `x`"]
    assert argv_of(scripts[2])[2:] == ["/nodes/pve1/lxc", "--output-format", "json",
                                       "--ostemplate=local:vztmpl/a b.tar", "--vmid=120"]
    assert all(s.splitlines()[1] == "echo %s$? >&2" % STATUS_MARK for s in scripts)


def test_pvesh_errors_and_exit_255_are_pveshs_not_sshs():
    session = FakeSession((255, "", "400 Parameter verification failed.\nmemory: value must be at least 16\n"),
                          (2, "", "CT 999 does not exist\n"))
    client = SshPveClient("pve.example", session=session)
    with pytest.raises(PveApiError) as err:
        client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=1)
    assert err.value.status == 400 and err.value.errors == {"memory": "value must be at least 16"}
    with pytest.raises(PveApiError) as err:
        client.get("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=999)
    assert "CT 999 does not exist" in str(err.value)


def test_ssh_failures_are_connection_errors():
    client = SshPveClient("pve.example", session=FakeSession(SSHError(b"Permission denied (publickey).")))
    with pytest.raises(PveConnectionError) as err:
        client.version()
    assert "ssh root@pve.example (port 22)" in str(err.value) and "Permission denied (publickey)" in str(err.value)
    cut = SshPveClient("pve.example", session=FakeSession((None, "", "Connection closed")))
    with pytest.raises(PveConnectionError) as err:
        cut.version()
    assert "did not finish" in str(err.value) and "Connection closed" in str(err.value)
    missing = SshPveClient("pve.example", session=FakeSession((127, "", "bash: line 1: pvesh: command not found")))
    with pytest.raises(PveConfigError) as err:
        missing.version()
    assert "no pvesh on its PATH" in str(err.value)


def test_the_limits_of_local_mode_hold_over_ssh():
    client = SshPveClient("pve.example", session=FakeSession())
    assert isinstance(client, LocalPveClient)
    with pytest.raises(PveConfigError) as err:
        client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2")
    assert "NUL" in str(err.value) and "env" in str(err.value)
    assert client.session.ssh_client.scripts == []


def test_upload_goes_by_scp_with_the_checksum_and_cleans_up(tmp_path):
    src = tmp_path / "app.tar.zst"
    src.write_bytes(b"payload" * 1000)
    session = FakeSession((0, '"UPID:pve1:1:2:3:imgcopy::root@pam:"', ""), (0, "", ""))
    client = SshPveClient("pve.example", session=session)
    assert client.upload("pve1", "local", "vztmpl", str(src)).startswith("UPID:")
    [(tmp, data)] = list(session.copied.items())
    assert tmp.startswith("/var/tmp/pveupload-") and data == src.read_bytes()
    create, remove = [argv_of(s) for s in session.ssh_client.scripts]
    assert "--tmpfilename=%s" % tmp in create and "--checksum=%s" % hashlib.sha256(data).hexdigest() in create
    assert remove == ["rm", "-f", "--", tmp]


def test_split_status():
    assert split_status("warn\n%s3" % STATUS_MARK) == (3, "warn")
    assert split_status("%s0\n" % STATUS_MARK) == (0, "")
    assert split_status("no mark") == (None, "no mark")


def test_connect_chooses_the_mode(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    ssh = connect({"api_connection": "ssh", "api_host": "pve.example", "ssh_user": "admin", "ssh_port": 2222,
                   "ssh_identity_file": str(key), "wait_timeout": 100, "api_timeout": 5})
    assert isinstance(ssh, SshPveClient) and isinstance(ssh.session, OpenSSHSession)
    assert ssh.session.ssh_client.identity_file == str(key) and ssh.session.ssh_client.port == "2222"
    assert ssh.session.ssh_client.timeout == 105 and ssh.timeout == 105 and ssh.user == "admin"
    with pytest.raises(PveConfigError) as err:
        connect({"api_connection": "ssh"})
    assert "api_host" in str(err.value)
    with pytest.raises(PveConfigError) as err:
        connect({"api_connection": "ssh", "api_host": "pve.example", "ssh_identity_file": str(tmp_path / "none")})
    assert "connection ssh" in str(err.value) and "not found" in str(err.value)
    with pytest.raises(PveConfigError) as err:
        connect({"api_connection": "local"}, pvesh=str(tmp_path / "absent"))
    assert "api_connection is local" in str(err.value)
    with pytest.raises(PveConfigError) as err:
        connect({"api_connection": "https"})
    assert "api_connection is https" in str(err.value)
    with pytest.raises(PveConfigError):
        connect({"api_connection": "telnet", "api_host": "h"})
