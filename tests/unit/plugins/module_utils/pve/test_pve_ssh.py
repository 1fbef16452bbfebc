"""The SSH connection mode without a node: pvesh's argument list over the OpenSSH session, its exit
status carried past the SSH client, upload by scp, and connect() choosing the mode."""

import hashlib
import json
import os
import shlex
import stat
import sys

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import (  # noqa: E402
    connect)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (  # noqa: E402
    PveApiError, PveConfigError, PveConnectionError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import LocalPveClient  # noqa: E402
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.ssh import (  # noqa: E402
    STATUS_MARK, OpenSshSession, SshError, SshPveClient, split_status)

UPID = "UPID:pve1:0002E5C1:00000001:6B02B17C:vzcreate:120:root@pam:"


class FakeSession:
    """Plays OpenSshSession: answers (pvesh status, stdout, stderr) per script, or raises."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.scripts = []
        self.copied = {}

    def run_script(self, script):
        self.scripts.append(script)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, out, err = answer
        if status is not None:
            err = (err + "\n" if err else "") + "%s%d" % (STATUS_MARK, status)
        return (0 if status is not None else 255), out.encode(), err.encode()

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
    scripts = session.scripts
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
    client = SshPveClient("pve.example", session=FakeSession(SshError("Permission denied (publickey).")))
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


class FakeProc:
    def __init__(self):
        self.terminated = False

    def poll(self):
        return 0 if self.terminated else None

    def terminate(self):
        self.terminated = True

    def wait(self):
        return 0


class FakeHttps:
    made = []

    def __init__(self, host, port=None, user=None, ca_path=None, ticket_source=None):
        self.args = dict(host=host, port=port, user=user, ca_path=ca_path)
        with open(ca_path) as handle:
            self.ca = handle.read()
        self.ticket = ticket_source()
        self.requests = []
        FakeHttps.made.append(self)

    def request(self, method, path, params=None, **kwargs):
        self.requests.append((method, path, dict(params or {}, **kwargs)))
        return None


CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_value_pvesh_cannot_pass_goes_to_the_nodes_https_api_through_a_port_forward():
    """env with several entries (NUL bytes) over ssh: the node's CA and a ticket minted there, over SSH, and the
    call through an ssh -L forward to localhost:8006 as the node sees it; pvesh carries everything else."""
    session = FakeSession((0, CA, ""), (0, "PVE:root@pam:TICKET\nCSRF\n", ""), (0, "null", ""))
    forwards = []
    proc = FakeProc()
    session.forward = lambda host, port: forwards.append((host, port)) or (40123, proc)
    FakeHttps.made = []
    client = SshPveClient("pve.example", session=session, https_factory=FakeHttps)
    assert isinstance(client, LocalPveClient)
    client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2")
    client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="C=3\0D=4")  # the same forward
    client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=256)  # pvesh
    assert forwards == [("localhost", 8006)] and len(FakeHttps.made) == 1
    https = FakeHttps.made[0]
    assert https.args["host"] == "127.0.0.1" and https.args["port"] == 40123 and https.args["user"] == "root@pam"
    assert https.ca == CA and https.ticket == ("PVE:root@pam:TICKET", "CSRF")
    assert [r[2]["env"] for r in https.requests] == ["A=1\0B=2", "C=3\0D=4"]
    assert argv_of(session.scripts[0]) == ["cat", "--", "/etc/pve/pve-root-ca.pem"]
    assert argv_of(session.scripts[1])[0] == "/usr/bin/perl"
    assert "--memory=256" in argv_of(session.scripts[2])
    ca_path = https.args["ca_path"]
    assert oct(os.stat(ca_path).st_mode & 0o777) == "0o600"
    client.close()
    assert proc.terminated and not os.path.exists(ca_path)


def test_the_https_path_over_ssh_fails_clearly_and_changes_nothing():
    unreadable = SshPveClient("pve.example", session=FakeSession((1, "", "cat: /etc/pve/pve-root-ca.pem: No such file")),
                              https_factory=FakeHttps)
    with pytest.raises(PveConfigError) as err:
        unreadable.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2")
    assert "env" in str(err.value) and "pve-root-ca.pem" in str(err.value) and "No such file" in str(err.value)
    session = FakeSession((0, CA, ""))

    def refused(host, port):
        raise SshError("the port forward to localhost:8006 ended: administratively prohibited")
    session.forward = refused
    no_forward = SshPveClient("pve.example", session=session, https_factory=FakeHttps)
    with pytest.raises(PveConnectionError) as err:
        no_forward.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, env="A=1\0B=2")
    assert "port forward" in str(err.value) and "administratively prohibited" in str(err.value)
    no_forward.close()


def test_upload_goes_by_scp_with_the_checksum_and_cleans_up(tmp_path):
    src = tmp_path / "app.tar.zst"
    src.write_bytes(b"payload" * 1000)
    session = FakeSession((0, '"UPID:pve1:1:2:3:imgcopy::root@pam:"', ""), (0, "", ""))
    client = SshPveClient("pve.example", session=session)
    assert client.upload("pve1", "local", "vztmpl", str(src)).startswith("UPID:")
    [(tmp, data)] = list(session.copied.items())
    assert tmp.startswith("/var/tmp/pveupload-") and data == src.read_bytes()
    create, remove = [argv_of(s) for s in session.scripts]
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
    assert isinstance(ssh, SshPveClient) and isinstance(ssh.session, OpenSshSession)
    assert ssh.session.identity_file == str(key) and ssh.session.port == 2222
    assert ssh.session.timeout == 105 and ssh.timeout == 105 and ssh.user == "admin"
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


FAKE_CLIENT = """#!%s
import json, sys
record = {"argv": sys.argv[1:], "stdin": sys.stdin.read() if "-q" not in sys.argv else ""}
with open(%r, "a") as handle:
    handle.write(json.dumps(record) + "\\n")
sys.stdout.write("out")
sys.stderr.write("err")
sys.exit(%d)
"""


def fake_client(tmp_path, name, rc=0):
    """An ``ssh``/``scp`` stand-in that records its argument list and stdin, then exits ``rc``."""
    log = tmp_path / (name + ".log")
    path = tmp_path / name
    path.write_text(FAKE_CLIENT % (sys.executable, str(log), rc))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), log


def records(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_session_runs_the_openssh_client_without_a_shell_or_a_prompt(tmp_path):
    ssh, ssh_log = fake_client(tmp_path, "ssh")
    scp, scp_log = fake_client(tmp_path, "scp")
    key = tmp_path / "id"
    key.write_text("k")
    session = OpenSshSession("-oProxyCommand=evil", "admin", port=2222, identity_file=str(key), timeout=30,
                             ssh=ssh, scp=scp)
    assert session.run_script("pvesh get /version\n") == (0, b"out", b"err")
    assert session._exec(["pvesh", "get", "/a b"]) == (b"out", b"err", 0)
    first, second = records(ssh_log)
    assert first["argv"] == ["-o", "BatchMode=yes", "-p", "2222", "-i", str(key), "-l", "admin", "--",
                             "-oProxyCommand=evil", "/bin/sh"]
    assert first["stdin"] == "pvesh get /version\n" and shlex.split(second["stdin"]) == ["pvesh", "get", "/a b"]
    v6 = OpenSshSession("fd00::1", "root", ssh=ssh, scp=scp)
    v6.upload_file_obj(str(key), "/var/tmp/pveupload-1")
    assert records(scp_log)[0]["argv"] == ["-q", "-o", "BatchMode=yes", "-P", "22", "--", str(key),
                                           "root@[fd00::1]:/var/tmp/pveupload-1"]


def test_session_failures_name_what_failed(tmp_path):
    with pytest.raises(SshError, match="identity file .* not found"):
        OpenSshSession("pve", "root", identity_file=str(tmp_path / "none"))
    with pytest.raises(SshError, match="cannot run the OpenSSH client"):
        OpenSshSession("pve", "root", ssh=str(tmp_path / "no-ssh")).run_script("true")
    scp, dummy = fake_client(tmp_path, "scp", rc=1)
    with pytest.raises(SshError, match="err"):
        OpenSshSession("pve", "root", scp=scp).upload_file_obj(os.devnull, "/var/tmp/x")
    slow = tmp_path / "slow-ssh"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(SshError, match="no answer within 1 s"):
        OpenSshSession("pve", "root", timeout=1, ssh=str(slow)).run_script("true")
