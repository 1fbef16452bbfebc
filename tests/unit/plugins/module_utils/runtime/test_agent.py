"""Unit tests of the runtime agent's pure logic: crun command lines and the protocol (no agent is started)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import agent
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError


def test_cli_argv_shapes():
    assert agent.cli_argv("/usr/bin/crun", "/r", "create", "c1", bundle="/b", log="/l") == [
        "/usr/bin/crun", "--root", "/r", "--log=file:/l", "create", "--bundle", "/b", "c1"]
    assert agent.cli_argv("crun", "/r", "delete", "c1", force=True) == ["crun", "--root", "/r", "delete", "--force", "c1"]
    assert agent.cli_argv("crun", "/r", "delete", "c1") == ["crun", "--root", "/r", "delete", "c1"]
    assert agent.cli_argv("crun", "/r", "kill", "c1", signal="KILL")[-2:] == ["c1", "KILL"]
    assert agent.cli_argv("crun", "/r", "kill", "c1")[-1] == "TERM"
    assert agent.cli_argv("crun", "/r", "run", "c", bundle="/b", cgroup_manager="disabled")[3:5] == [
        "--cgroup-manager=disabled", "run"]
    with pytest.raises(ValueError):
        agent.cli_argv("crun", "/r", "create", "c1")
    with pytest.raises(ValueError):
        agent.cli_argv("crun", "/r", "exec", "c1")


def test_messages_round_trip_and_reject_garbage():
    assert agent.decode_message(agent.encode_message({"ok": True, "result": [1]})) == {"ok": True, "result": [1]}
    with pytest.raises(OciRuntimeError):
        agent.decode_message(b"not json")
    with pytest.raises(OciRuntimeError):
        agent.decode_message(b"[1, 2]")
