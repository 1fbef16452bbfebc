"""The collection's Proxmox VE API client against the API test double, over real HTTPS."""

import hashlib
import os
import subprocess
import time
import warnings

import pytest
import urllib3

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import PveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import connect
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConnectionError, PveTaskError, PveTaskTimeout)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import parse_upid, wait_task
from pve_double.server import DEFAULT_PASSWORD, Double
from pve_double.tasks import TaskFailed

NODE = "pve1"


@pytest.fixture
def double(tmp_path):
    instance = Double(str(tmp_path / "pve"), mode="9.1").start()
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("ct\n")
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "base.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    instance.stop()


@pytest.fixture
def client(double):
    with PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD, ca_path=double.cert, timeout=10) as api:
        yield api


def logins(double):
    return len([r for r in double.requests if r[:2] == ("POST", "/api2/json/access/ticket")])


def create(client, vmid, **extra):
    return client.post("/nodes/{node}/lxc", node=NODE, vmid=vmid, ostemplate="local:vztmpl/base.tar.zst", **extra)


def test_ticket_login_then_writes_with_csrf_and_relogin(client, double):
    assert wait_task(client, NODE, create(client, 101, hostname="web1", memory=256), timeout=30).exitstatus == "OK"
    cfg = client.get("/nodes/{node}/lxc/{vmid}/config", node=NODE, vmid=101)
    assert cfg["hostname"] == "web1"
    # PUT with a CSRF token (the double answers 401 without one; a second 401 after a new login would fail)
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node=NODE, vmid=101, memory=512, digest=cfg["digest"]) is None
    assert client.get("/nodes/{node}/lxc/{vmid}/config", node=NODE, vmid=101)["memory"] == 512  # typed, as PVE
    assert logins(double) == 1
    # the ticket expires (the double forgets it): one new login, and the write goes through
    double.tickets.clear()
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node=NODE, vmid=101, onboot=True) is None
    assert logins(double) == 2
    assert client.get("/nodes/{node}/lxc/{vmid}/config", node=NODE, vmid=101)["onboot"] == 1
    assert wait_task(client, None, client.delete("/nodes/{node}/lxc/{vmid}", node=NODE, vmid=101)).exitstatus == "OK"
    assert client.get("/nodes/{node}/lxc", node=NODE) == []


def test_wrong_password_is_a_401(double):
    api = PveClient("127.0.0.1", port=double.port, password="wrong-" + DEFAULT_PASSWORD, ca_path=double.cert)
    with pytest.raises(PveApiError) as err:
        api.version()
    assert err.value.status == 401 and err.value.path == "/access/ticket"
    assert "authentication failure" in str(err.value) and "check api_user and api_password" in str(err.value)
    assert DEFAULT_PASSWORD not in str(err.value) and DEFAULT_PASSWORD not in repr(err.value)


def test_token_auth_readonly_403_and_wrong_secret(double):
    secret = double.add_token("root@pam!ci")
    readonly = double.add_token("root@pam!ro", readonly=True)
    full = PveClient("127.0.0.1", port=double.port, token_id="root@pam!ci", token_secret=secret, ca_path=double.cert)
    assert full.version()["version"] == "9.1.1"
    short = PveClient("127.0.0.1", port=double.port, user="root@pam", token_id="ci", token_secret=secret,
                      ca_path=double.cert)
    assert short.get("/nodes")[0]["node"] == NODE
    ro = PveClient("127.0.0.1", port=double.port, token_id="root@pam!ro", token_secret=readonly, ca_path=double.cert)
    assert ro.get("/nodes/{node}/lxc", node=NODE) == []
    with pytest.raises(PveApiError) as err:
        create(ro, 150)
    assert err.value.status == 403 and "Permission check failed" in str(err.value)
    assert "root@pam!ro lacks the privilege" in str(err.value) and readonly not in str(err.value)
    wrong = PveClient("127.0.0.1", port=double.port, token_id="root@pam!ci", token_secret="0" * 32,
                      ca_path=double.cert)
    with pytest.raises(PveApiError) as err:
        wrong.version()
    assert err.value.status == 401 and "api_token_secret" in str(err.value)
    assert logins(double) == 0
    assert secret not in repr(full) and secret not in repr(short)


def test_parameter_errors_are_surfaced(client, double):
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/{node}/lxc", node=NODE, vmid="abc", ostemplate="local:vztmpl/base.tar.zst",
                    cmode="serial", net0="name=eth0,colour=blue")
    exc = err.value
    assert exc.status == 400 and exc.message == "Parameter verification failed."
    assert set(exc.errors) == {"vmid", "cmode", "net0"}
    assert "type check ('integer') failed" in exc.errors["vmid"] and "colour" in exc.errors["net0"]
    assert "cmode:" in str(exc) and "\n" not in str(exc)
    with pytest.raises(PveApiError) as err:
        client.get("/nodes/{node}/nonsense", node=NODE)
    assert err.value.status == 501


def test_upload_with_checksum_then_listed(client, double, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "app.tar.zst"
    path.write_bytes(data)
    upid = client.upload(NODE, "local", "vztmpl", str(path))
    assert parse_upid(upid).type == "imgcopy"
    result = wait_task(client, None, upid, timeout=30)
    assert result.exitstatus == "OK"
    upload = [r for r in double.requests if r[1].endswith("/storage/local/upload")][0]
    assert upload[2]["checksum-algorithm"] == "sha256" and upload[2]["checksum"] == hashlib.sha256(data).hexdigest()
    content = client.get("/nodes/{node}/storage/{storage}/content", node=NODE, storage="local", content="vztmpl")
    entry = [c for c in content if c["volid"] == "local:vztmpl/app.tar.zst"]
    assert entry and entry[0]["size"] == len(data)
    stored = os.path.join(double.backend.storages["local"]["path"], "template", "cache", "app.tar.zst")
    with open(stored, "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()
    # a wrong checksum fails the import task, and the wait says so
    upid = client.upload(NODE, "local", "vztmpl", str(path), filename="bad.tar.zst", checksum="0" * 64)
    with pytest.raises(PveTaskError) as err:
        wait_task(client, NODE, upid, timeout=30)
    assert err.value.exitstatus.startswith("checksum mismatch")
    assert "local:vztmpl/bad.tar.zst" not in [c["volid"] for c in client.get(
        "/nodes/{node}/storage/{storage}/content", node=NODE, storage="local")]
    # the volid is one quoted path segment
    removed = client.delete("/nodes/{node}/storage/{storage}/content/{volume}", node=NODE, storage="local",
                            volume="local:vztmpl/app.tar.zst")
    assert wait_task(client, NODE, removed).exitstatus == "OK"
    assert not os.path.exists(stored)


def test_wait_task_warnings_from_the_log(client, double):
    def work(task):
        task.log("starting")
        task.log("WARN: storage 'local' is nearly full")
        task.log("done")
        return 1

    upid = double.backend.tasks.start("vzdump", 101, "root@pam", work)
    result = wait_task(client, None, upid, timeout=30)
    assert result.exitstatus == "WARNINGS: 1"
    assert result.warnings == ["WARN: storage 'local' is nearly full"]
    assert result.log_tail[-1] == "TASK WARNINGS: 1"


def test_injected_failure_fails_fast_with_the_log_tail(client, double):
    double.backend.tasks.inject("vzcreate", "unable to create CT 120 - injected storage error")
    upid = create(client, 120)
    started = time.monotonic()
    with pytest.raises(PveTaskError) as err:
        wait_task(client, NODE, upid, timeout=120)
    assert time.monotonic() - started < 10
    assert err.value.upid == upid
    assert err.value.exitstatus == "unable to create CT 120 - injected storage error"
    assert err.value.log_tail == ["TASK ERROR: unable to create CT 120 - injected storage error"]
    assert client.get("/nodes/{node}/lxc", node=NODE) == []

    def noisy(task):
        for i in range(45):
            task.log("step %d" % i)
        raise TaskFailed("command 'tar' failed: exit code 2")

    upid = double.backend.tasks.start("vzrestore", 121, "root@pam", noisy)
    with pytest.raises(PveTaskError) as err:
        wait_task(client, None, upid, timeout=120)
    assert len(err.value.log_tail) == 20
    assert err.value.log_tail[0] == "step 26" and err.value.log_tail[-1] == "TASK ERROR: command 'tar' failed: exit code 2"
    assert "step 44" in str(err.value)


def test_wait_timeout(client, double):
    double.backend.tasks.delay = 3.0
    try:
        upid = create(client, 130)
        started = time.monotonic()
        with pytest.raises(PveTaskTimeout) as err:
            wait_task(client, NODE, upid, timeout=0.6)
        assert 0.6 <= time.monotonic() - started < 2.5
        assert err.value.upid == upid and upid in str(err.value)
    finally:
        double.backend.tasks.delay = 0
    assert wait_task(client, NODE, upid, timeout=30).exitstatus == "OK"


def test_tls_ca_validation_and_unverified(double, tmp_path):
    verified = PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD, ca_path=double.cert)
    assert verified.version()["release"] == "9.1"
    system_cas = PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD)
    with pytest.raises(PveConnectionError) as err:
        system_cas.version()
    assert "127.0.0.1:%d" % double.port in str(err.value) and "certificate" in str(err.value).lower()
    other = Double(str(tmp_path / "other"), mode="9.1")  # a different self-signed cert
    try:
        wrong_ca = PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD, ca_path=other.cert)
        with pytest.raises(PveConnectionError):
            wrong_ca.version()
    finally:
        other.server.server_close()
    unverified = PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD, validate_certs=False,
                           ca_path="/nonexistent/is/ignored.pem")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert unverified.get("/nodes")[0]["node"] == NODE
    assert not [w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]
    # the suppression stays inside the client
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import requests
        requests.get(double.url + "/version", verify=False)
    assert [w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]


@pytest.mark.parametrize("mode,version,new", [("9.1", (9, 1, 1), True), ("8", (8, 1, 4), False)])
def test_version_and_features(tmp_path, mode, version, new):
    instance = Double(str(tmp_path / ("pve" + mode)), mode=mode).start()
    try:
        api = connect({"api_host": "127.0.0.1", "api_port": instance.port, "api_password": DEFAULT_PASSWORD,
                       "ca_path": instance.cert, "validate_certs": True})
        features = api.features()
        assert features.version == version
        assert features.entrypoint_env is new and features.oci_import is new and features.oci_registry_pull is new
        assert api.features() is features
        assert len([r for r in instance.requests if r[1] == "/api2/json/version"]) == 1
    finally:
        instance.stop()


def test_transport_faults_retry_reads_only(client, double):
    assert client.version()
    double.fail_next(502, "bad gateway")
    assert client.get("/nodes")[0]["node"] == NODE
    double.fail_next(503, "busy")
    double.fail_next(503, "busy")
    assert client.get("/nodes")[0]["node"] == NODE
    double.fail_next(500, "injected")
    with pytest.raises(PveApiError) as err:
        client.get("/nodes")
    assert err.value.status == 500 and "injected" in str(err.value)
    double.drop_next()
    assert client.get("/nodes")[0]["node"] == NODE
    before = len([r for r in double.requests if r[0] == "POST" and r[1].endswith("/lxc")])
    double.drop_next()
    with pytest.raises(PveConnectionError) as err:
        create(client, 140)
    assert "127.0.0.1:%d" % double.port in str(err.value) and "POST /nodes/pve1/lxc" in str(err.value)
    assert len([r for r in double.requests if r[0] == "POST" and r[1].endswith("/lxc")]) == before + 1
    assert client.get("/nodes/{node}/lxc", node=NODE) == []
    double.fail_next(503, "busy")
    with pytest.raises(PveApiError) as err:
        create(client, 141)
    assert err.value.status == 503
    assert client.get("/nodes/{node}/lxc", node=NODE) == []


def test_connection_refused_names_host_and_port(tmp_path):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = PveClient("127.0.0.1", port=port, password="x", timeout=3, backoff=(0.01,))
    started = time.monotonic()
    with pytest.raises(PveConnectionError) as err:
        api.version()
    assert time.monotonic() - started < 3
    assert err.value.port == port and "127.0.0.1:%d refused the connection" % port in str(err.value)
    assert "api_host and api_port" in str(err.value)
    for noise in ("Max retries", "HTTPSConnection", "Errno", "Caused by"):
        assert noise not in str(err.value)
