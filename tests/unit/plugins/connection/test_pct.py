"""The pct connection plugin's own logic: the vmid, the pct command lines, and pct's errors read right."""

import pytest
import yaml

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible_collections.lxcri.proxmox.plugins.connection import pct


def connection(**options):
    """The plugin with its documented defaults and ``options`` (what set_options would give it)."""
    conn = pct.Connection(PlayContext(), "/dev/null")
    documented = yaml.safe_load(pct.DOCUMENTATION)["options"]
    conn._options = dict((name, spec.get("default")) for name, spec in documented.items())
    conn._options.update(dict({"remote_addr": "120"}, **options))
    return conn


class Recorder:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, args, in_data=None):
        self.calls.append((list(args), in_data))
        return self.answers.pop(0)


def test_the_vmid_comes_from_the_option_or_a_numeric_address():
    assert connection()._vmid() == "120"
    assert connection(vmid=130)._vmid() == "130"
    with pytest.raises(AnsibleError, match="give the container's vmid"):
        connection(remote_addr="web")._vmid()


@pytest.mark.parametrize("addr,node_host,vmid,host", [
    ("305@pve2.example.com", "", "305", "pve2.example.com"),
    ("305@pve2.example.com", "pve1", "305", "pve2.example.com"),  # the instance's own address wins
    ("305", "pve1", "305", "pve1"),
    ("305", "", "305", ""),
])
def test_an_address_vmid_at_host_names_the_node(addr, node_host, vmid, host):
    conn = connection(remote_addr=addr, node_host=node_host)
    assert (conn._vmid(), conn._node_host()) == (vmid, host)


@pytest.mark.parametrize("addr", ["305@", "web@pve1", "@pve1"])
def test_an_address_that_is_neither_form_is_refused(addr):
    with pytest.raises(AnsibleError, match="<vmid>@<node host>"):
        connection(remote_addr=addr)._vmid()


def test_exec_runs_sh_c_after_double_dash_and_passes_stdin():
    conn = connection(keep_env=False)
    conn._pct = Recorder([(0, b"\x00\xffout", b"")])
    assert conn.exec_command("echo 'a b'", in_data=b"module") == (0, b"\x00\xffout", b"")
    assert conn._pct.calls == [(["exec", "120", "--keep-env", "0", "--", "/bin/sh", "-c", "echo 'a b'"], b"module")]


@pytest.mark.parametrize("stderr,message", [
    (b"container '120' not running!\n", "CT 120 on this host is not running"),
    (b"Configuration file 'nodes/pve1/lxc/120.conf' does not exist\n", "CT 120 does not exist on this host"),
])
def test_pct_dying_on_a_stopped_or_missing_container_is_unreachable(stderr, message):
    conn = connection()
    conn._pct = Recorder([(255, b"", stderr)])
    with pytest.raises(AnsibleConnectionFailure, match=message):
        conn.exec_command("true")


def test_a_command_exiting_255_itself_is_its_own_result():
    conn = connection()
    conn._pct = Recorder([(255, b"", b"app error\n")])
    assert conn.exec_command("exit 255") == (255, b"", b"app error\n")


def test_push_and_pull_errors_are_read_from_stderr_as_pct_exits_0(tmp_path):
    source = tmp_path / "in"
    source.write_bytes(b"x")
    conn = connection()
    conn._pct = Recorder([(0, b"", b"failed to create file: /nope/x: No such file or directory\n")])
    with pytest.raises(AnsibleError, match="pct push of .* failed: failed to create file"):
        conn.put_file(str(source), "/nope/x")
    conn._pct = Recorder([(0, b"", b"failed to open /missing: No such file or directory\n")])
    with pytest.raises(AnsibleError, match="pct pull of /missing failed"):
        conn.fetch_file("/missing", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nothing left where the file was to go


def test_without_a_shell_the_command_is_an_argument_list():
    conn = connection(shell=False)
    conn._pct = Recorder([(0, b"ok", b"")])
    conn.exec_command("wget -qO- 'http://127.0.0.1:8080/a b'")
    assert conn._pct.calls[0][0] == ["exec", "120", "--", "wget", "-qO-", "http://127.0.0.1:8080/a b"]
