"""Unit tests of the unit's runner: its pure parts (the real runs are tests/integration/test_oci_container.py)."""

import json
import os
import resource
import socket

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime import supervise
from ansible_collections.lxcri.proxmox.plugins.module_utils.runtime.errors import OciRuntimeError


def test_netns_commands():
    net = {"name": "lxcri-app", "host_if": "lxo12345678", "bridge": "vmbr0", "address": "192.0.2.10/24",
           "gateway": "192.0.2.1"}
    cmds = supervise.netns_commands(net)
    assert cmds[0] == ["link", "add", "lxo12345678", "type", "veth", "peer", "name", "eth0", "netns", "lxcri-app"]
    assert ["link", "set", "lxo12345678", "master", "vmbr0"] in cmds
    assert cmds[-2:] == [["-n", "lxcri-app", "addr", "replace", "192.0.2.10/24", "dev", "eth0"],
                         ["-n", "lxcri-app", "route", "replace", "default", "via", "192.0.2.1"]]
    assert not any("route" in c for c in supervise.netns_commands(dict(net, gateway=None)))


def test_exit_code():
    assert supervise.exit_code(3 << 8) == 3
    assert supervise.exit_code(9) == 137  # killed by SIGKILL
    assert supervise.exit_code(15) == 143


def test_runtime_bundle_makes_root_absolute_and_sets_the_open_files_limit(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = {"root": {"path": "rootfs", "readonly": True},
              "process": {"args": ["x"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]}}
    (bundle / "config.json").write_text(json.dumps(config))
    out = supervise.runtime_bundle(str(bundle), str(tmp_path / "run" / "b"))
    written = json.loads((tmp_path / "run" / "b" / "config.json").read_text())
    assert out == str(tmp_path / "run" / "b")
    assert written["root"] == {"path": str(bundle / "rootfs"), "readonly": True}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert written["process"]["rlimits"] == [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                             {"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}]
    assert json.loads((bundle / "config.json").read_text()) == config, "the bundle's own config changed"


def test_load_run_config(tmp_path):
    (tmp_path / "lxcri.json").write_text(json.dumps({"run": {"id": "lxcri-oci-a", "backend": "cli"}}))
    assert supervise.load_run_config(str(tmp_path))["id"] == "lxcri-oci-a"
    (tmp_path / "lxcri.json").write_text(json.dumps({"image": "x"}))
    with pytest.raises(OciRuntimeError, match="has no run settings"):
        supervise.load_run_config(str(tmp_path))


def test_notify_sends_one_datagram(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    try:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert supervise.notify("READY=1") is False
        assert supervise.notify("READY=1\nSTATUS=up", path) is True
        assert server.recv(100) == b"READY=1\nSTATUS=up"
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert supervise.notify("STOPPING=1") is True
        assert server.recv(100) == b"STOPPING=1"
    finally:
        server.close()


class _Ops:
    def __init__(self, states):
        self.states = list(states)

    def state(self, cid):
        value = self.states.pop(0)
        if isinstance(value, Exception):
            raise value
        return {"status": value}


def test_wait_created(monkeypatch):
    monkeypatch.setattr(supervise.time, "sleep", lambda s: None)
    assert supervise.wait_created(_Ops([OciRuntimeError("no status"), "creating", "created"]), "c")["status"] == \
        "created"
    clock = iter([0.0, 0.0, 50.0])
    monkeypatch.setattr(supervise.time, "monotonic", lambda: next(clock))
    with pytest.raises(OciRuntimeError, match="was not created within 10.0s: no status file"):
        supervise.wait_created(_Ops([OciRuntimeError("no status file")] * 3), "c")


def test_main_usage_and_errors(tmp_path, capsys):
    assert supervise.main(["start"]) == 2
    assert supervise.main(["run", str(tmp_path)]) == 1
    assert "lxcri-oci run %s" % tmp_path in capsys.readouterr().err
    assert not os.listdir(str(tmp_path))


def test_exec_argv_enters_the_running_container(monkeypatch):
    class Ops:
        def __init__(self, states):
            self.states = states

        def state(self, cid):
            return self.states[cid]

    run = {"id": "lxcri-oci-app", "state_root": "/run/lxcri/oci", "backend": "cli"}
    monkeypatch.setattr(supervise, "_ops", lambda r, w: Ops({"lxcri-oci-app": {"status": "running", "pid": 4242}}))
    assert supervise.exec_argv(run, ["wget", "-q", "x"]) == [
        "nsenter", "--target", "4242", "--all", "--root", "--wd", "--", "wget", "-q", "x"]
    with pytest.raises(OciRuntimeError, match="needs a command"):
        supervise.exec_argv(run, [])
    monkeypatch.setattr(supervise, "_ops", lambda r, w: Ops({"lxcri-oci-app": {"status": "stopped", "pid": 0}}))
    with pytest.raises(OciRuntimeError, match="is not running .stopped."):
        supervise.exec_argv(run, ["true"])


def test_main_exec_reports_a_missing_container(tmp_path, capsys):
    assert supervise.main(["exec", str(tmp_path), "--", "true"]) == 125
    assert "lxcri-oci exec %s" % tmp_path in capsys.readouterr().err
