"""Proxmox VE API client without a server: paths, errors, auth flow, retries, secrets, UPIDs, features,
task waiting and the doc fragment against the argument spec."""

import email.parser
import hashlib
import json
import re

import pytest
import requests
import urllib3
import yaml

from lxcri_testbed.requests_errors import refused_error, wrapped

from ansible_collections.lxcri.proxmox.plugins.doc_fragments.pve import ModuleDocFragment
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import LocalPveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import tasks as tasks_mod
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import client as client_mod
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import (
    MultipartBody, PveClient, encode_params, fill_path, quote_segment)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import (
    PVE_MUTUALLY_EXCLUSIVE, PVE_REQUIRED_TOGETHER, connect, pve_argument_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConfigError, PveConnectionError, PveError, PveTaskError, PveTaskTimeout)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures, parse_version
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import (
    backoff_delays, parse_upid, scan_task_log, wait_task)

UPID = "UPID:pve1:0002E5C1:00000001:6B02B17C:vzcreate:120:root@pam:"
PASSWORD = "s3cret-Pass+word/="
TOKEN_SECRET = "0b5a3f2e-1111-4abc-9def-123456789abc"
TICKET = "PVE:root@pam:6B02B17C::AbC+dEf/ghI=="
CSRF = "6B02B17C:csrfTOKENvalue"


# --- paths and parameters -----------------------------------------------------------

def test_segments_are_quoted_whole():
    assert quote_segment("local:vztmpl/a b.tar.zst") == "local%3Avztmpl%2Fa%20b.tar.zst"
    path, rest = fill_path("/nodes/{node}/storage/{storage}/content/{volume}",
                           {"node": "pve1", "storage": "local", "volume": "local:vztmpl/x.tar", "content": "vztmpl"})
    assert path == "/nodes/pve1/storage/local/content/local%3Avztmpl%2Fx.tar"
    assert rest == {"content": "vztmpl"}
    path, rest = fill_path("/nodes/{node}/tasks/{upid}/status", {"node": "pve1", "upid": UPID})
    assert path == "/nodes/pve1/tasks/UPID%3Apve1%3A0002E5C1%3A00000001%3A6B02B17C%3Avzcreate%3A120%3Aroot%40pam%3A/status"
    assert rest == {}
    path, dummy = fill_path("/access/users/{userid}/token/{tokenid}", {"userid": "ci@pve", "tokenid": "a!b"})
    assert path == "/access/users/ci%40pve/token/a%21b"
    assert fill_path("version", {})[0] == "/version"
    assert fill_path("/nodes/{node}/lxc/{vmid}/config", {"node": "n", "vmid": 100})[0] == "/nodes/n/lxc/100/config"


@pytest.mark.parametrize("params", [{}, {"node": None}, {"node": ""}, {"node": ".."}, {"node": "."}])
def test_path_placeholders_need_real_values(params):
    with pytest.raises(ValueError) as err:
        fill_path("/nodes/{node}/lxc", params)
    assert "{node}" in str(err.value)


def test_parameter_encoding():
    assert encode_params({"a": True, "b": False, "c": None, "d": 5, "e": ["x", 1], "f": "t"}) == {
        "a": "1", "b": "0", "d": "5", "e": ["x", "1"], "f": "t"}


# --- a fake requests session ----------------------------------------------------------

class FakeResponse:
    def __init__(self, status, body=None, reason="", text=None):
        self.status_code = status
        self.reason = reason
        self._body = body
        self.text = text if text is not None else (json.dumps(body) if body is not None else "")

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class FakeSession:
    """Answers from a script: a list of FakeResponse or exceptions, one per request; records requests."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        self.headers = {}

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        pass

    def paths(self):
        return [(m, u.split("/api2/json", 1)[1]) for m, u, k in self.calls]


def login_ok():
    return FakeResponse(200, {"data": {"ticket": TICKET, "CSRFPreventionToken": CSRF, "username": "root@pam"}})


def make_client(script, **kwargs):
    session = FakeSession(script)
    kwargs.setdefault("password", PASSWORD)
    client = PveClient("pve.example", session=session, sleep=lambda s: session.calls.append(("sleep", s, {})),
                       **kwargs)
    return client, session


def test_ticket_login_cookie_and_csrf_only_on_writes():
    client, session = make_client([login_ok(), FakeResponse(200, {"data": {"version": "9.1.1"}}),
                                   FakeResponse(200, {"data": None})])
    assert client.get("/version") == {"version": "9.1.1"}
    assert client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=512, onboot=True) is None
    login, get, put = session.calls
    assert login[0] == "POST" and login[1] == "https://pve.example:8006/api2/json/access/ticket"
    assert login[2]["data"] == {"username": "root@pam", "password": PASSWORD}
    assert "Cookie" not in login[2]["headers"]
    assert get[2]["headers"]["Cookie"] == "PVEAuthCookie=" + requests.utils.quote(TICKET, safe="")
    assert "CSRFPreventionToken" not in get[2]["headers"]
    assert put[2]["headers"]["CSRFPreventionToken"] == CSRF
    assert put[2]["data"] == {"memory": "512", "onboot": "1"}
    assert put[1].endswith("/nodes/pve1/lxc/100/config")


def test_expired_ticket_logs_in_again_once_then_fails():
    client, session = make_client([login_ok(), FakeResponse(401, None, "No ticket"), login_ok(),
                                   FakeResponse(200, {"data": "UPID:x"})])
    assert client.post("/nodes/{node}/lxc", node="pve1", vmid=101) == "UPID:x"
    assert [p for m, p in session.paths()] == ["/access/ticket", "/nodes/pve1/lxc", "/access/ticket", "/nodes/pve1/lxc"]
    client, session = make_client([login_ok(), FakeResponse(401, None, "No ticket"), login_ok(),
                                   FakeResponse(401, None, "No ticket")])
    with pytest.raises(PveApiError) as err:
        client.get("/nodes")
    assert err.value.status == 401 and "check api_user and api_password" in str(err.value)
    assert len(session.calls) == 4


def test_token_header_and_no_login():
    client, session = make_client([FakeResponse(200, {"data": []})], password=None, token_id="ci",
                                  token_secret=TOKEN_SECRET, user="auto@pve")
    client.post("/nodes/{node}/lxc", node="pve1", vmid=1)
    headers = session.calls[0][2]["headers"]
    assert headers["Authorization"] == "PVEAPIToken=auto@pve!ci=%s" % TOKEN_SECRET
    assert "CSRFPreventionToken" not in headers and "Cookie" not in headers
    full, dummy = make_client([], password=None, token_id="other@pam!t1", token_secret=TOKEN_SECRET)
    assert full.token_id == "other@pam!t1"


@pytest.mark.parametrize("kwargs,needle", [
    ({"password": None}, "credentials are required"),
    ({"token_id": "t", "token_secret": TOKEN_SECRET}, "not both"),
    ({"password": None, "token_id": "t"}, "both its id and its secret"),
])
def test_credential_rules(kwargs, needle):
    with pytest.raises(PveConfigError) as err:
        make_client([], **kwargs)
    assert needle in str(err.value)


def test_400_errors_and_reason_fallback():
    body = {"data": None, "message": "Parameter verification failed.\n",
            "errors": {"vmid": "type check ('integer') failed - got 'abc'\n", "cmode": "value 'x' not allowed"}}
    client, session = make_client([login_ok(), FakeResponse(400, body, "Parameter verification failed."),
                                   FakeResponse(500, None, "CT 100 is locked (create)", text="")])
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/{node}/lxc", node="pve1", vmid="abc")
    exc = err.value
    assert (exc.status, exc.method, exc.path) == (400, "POST", "/nodes/pve1/lxc")
    assert exc.errors == {"vmid": "type check ('integer') failed - got 'abc'", "cmode": "value 'x' not allowed"}
    assert "\n" not in str(exc)
    assert str(exc) == ("Proxmox VE API POST /nodes/pve1/lxc failed (HTTP 400): Parameter verification failed. "
                        "[cmode: value 'x' not allowed; vmid: type check ('integer') failed - got 'abc']")
    with pytest.raises(PveApiError) as err:
        client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=1)
    assert err.value.status == 500 and err.value.message == "CT 100 is locked (create)"


def test_gets_are_retried_writes_are_not():
    reset = requests.exceptions.ConnectionError("Connection aborted. ConnectionResetError(104)")
    client, session = make_client([login_ok(), FakeResponse(503, None, "Service Unavailable"), reset,
                                   FakeResponse(200, {"data": [1]})])
    assert client.get("/nodes") == [1]
    assert [c[0] for c in session.calls] == ["POST", "GET", "sleep", "GET", "sleep", "GET"]
    client, session = make_client([login_ok(), FakeResponse(502, None, "Bad Gateway"), FakeResponse(502),
                                   FakeResponse(502, None, "Bad Gateway")])
    with pytest.raises(PveApiError) as err:
        client.get("/nodes")
    assert err.value.status == 502 and len([c for c in session.calls if c[0] == "GET"]) == 3
    for answer in (reset, FakeResponse(503, None, "Service Unavailable")):
        client, session = make_client([login_ok(), answer, FakeResponse(200, {"data": "UPID:dup"})])
        with pytest.raises((PveConnectionError, PveApiError)):
            client.post("/nodes/{node}/lxc", node="pve1", vmid=100)
        assert [c[0] for c in session.calls] == ["POST", "POST"]  # login + the one write


def test_connection_errors_name_host_port_and_cause():
    client, dummy = make_client([requests.exceptions.ConnectTimeout("connect timed out")], password=None,
                                token_id="a@pve!t", token_secret=TOKEN_SECRET, port=8443, timeout=7)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    assert err.value.host == "pve.example" and err.value.port == 8443
    assert "pve.example:8443" in str(err.value) and "no answer within 7 s" in str(err.value)
    client, dummy = make_client([requests.exceptions.SSLError("certificate verify failed")], password=None,
                                token_id="a@pve!t", token_secret=TOKEN_SECRET)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    assert "certificate verify failed" in str(err.value) and "ca_path" in str(err.value)


# --- what a failed connection means ---------------------------------------------------------

WRONG_VERSION = "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
RECORD_LAYER = "[SSL] record layer failure (_ssl.c:1000)"


@pytest.fixture
def probe(monkeypatch):
    """Stands in for the plain-HTTP probe: ``probe.answer`` is what it finds, ``probe.calls`` who it asked."""
    class Probe:
        answer = True
        calls = []

        def __call__(self, host, port, timeout=3.0):
            self.calls.append((host, port, timeout))
            return self.answer
    stub = Probe()
    stub.calls = []
    monkeypatch.setattr(client_mod, "answers_plain_http", stub)
    return stub


@pytest.mark.parametrize("validate_certs", [True, False])
@pytest.mark.parametrize("ssl_text", [WRONG_VERSION, RECORD_LAYER])
def test_a_plain_http_port_is_named_not_a_certificate_problem(probe, validate_certs, ssl_text):
    client, session = make_client([wrapped(urllib3.exceptions.SSLError(ssl_text), kind=requests.exceptions.SSLError)],
                                  validate_certs=validate_certs, port=8443)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    text = str(err.value)
    assert "pve.example:8443" in text and "this port answers plain HTTP, not HTTPS" in text, text
    assert "api_host and api_port" in text and "validate_certs: false" not in text and "TLS failed" not in text
    assert PASSWORD not in text
    assert probe.calls == [("pve.example", 8443, 5)]
    assert [c[0] for c in session.calls] == ["POST"]  # the login, not repeated


def test_a_port_that_is_not_tls_nor_http_and_other_tls_failures(probe):
    probe.answer = False
    client, dummy = make_client([requests.exceptions.SSLError(WRONG_VERSION)], validate_certs=False)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    assert "the answer is not TLS" in str(err.value) and "api_port" in str(err.value)
    assert "plain HTTP" not in str(err.value) and "validate_certs: false" not in str(err.value)
    # a handshake that fails for another reason with validate_certs already false does not say to set it
    client, dummy = make_client([requests.exceptions.SSLError("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] handshake "
                                                              "failure")], validate_certs=False)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    assert "TLS failed" in str(err.value) and "validate_certs: false" not in str(err.value)
    assert "validate_certs is false" in str(err.value)
    assert probe.calls == [("pve.example", 8006, 5)]  # only the not-TLS answer is probed


def test_a_refused_connection_names_host_and_port_without_urllib3_text():
    client, session = make_client([refused_error(port=8443)] * 3, password=None, token_id="a@pve!t",
                                  token_secret=TOKEN_SECRET, port=8443)
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    text = str(err.value)
    assert "pve.example:8443 refused the connection" in text and "api_host and api_port" in text, text
    for noise in ("Max retries", "HTTPSConnection", "Errno", "NewConnectionError", "Caused by"):
        assert noise not in text, text
    sleeps = [c[1] for c in session.calls if c[0] == "sleep"]
    assert len(sleeps) == 2 and sum(sleeps) <= 2  # a GET is tried again, briefly
    client, session = make_client([refused_error()])
    with pytest.raises(PveConnectionError) as err:
        client.get("/version")
    assert "pve.example:8006 refused the connection" in str(err.value) and "POST /access/ticket" in str(err.value)


@pytest.mark.parametrize("kwargs,needles", [
    ({"user": "root"}, ["api_user 'root' has no realm", "@pam", "@pve", "root@pam"]),
    ({"user": "admin@"}, ["api_user 'admin@' is not a Proxmox VE user id", "root@pam"]),
    ({"user": "@pam"}, ["api_user '@pam' is not a Proxmox VE user id"]),
    ({"user": "root", "password": None, "token_id": "ci", "token_secret": TOKEN_SECRET},
     ["api_user (the user of an api_token_id given without one) 'root' has no realm", "root@pam"]),
    ({"password": None, "token_id": "root!ci", "token_secret": TOKEN_SECRET},
     ["the user of api_token_id 'root' has no realm", "root@pam!ci", "root@pve!ci"]),
    ({"password": None, "token_id": "ci@pve", "token_secret": TOKEN_SECRET},
     ["api_token_id 'ci@pve' is a user, not a token", "user@realm!tokenname"]),
    ({"password": None, "token_id": "root@pam!ci=" + TOKEN_SECRET, "token_secret": TOKEN_SECRET},
     ["the token name after root@pam! is not valid", "api_token_secret"]),
    ({"password": None, "token_id": "root@pam!" + TOKEN_SECRET, "token_secret": TOKEN_SECRET},
     ["the token name after root@pam! is not valid"]),
])
def test_a_user_without_a_realm_fails_before_any_request(kwargs, needles):
    session = FakeSession([])
    with pytest.raises(PveConfigError) as err:
        PveClient("pve.example", session=session, **dict({"password": PASSWORD}, **kwargs))
    for needle in needles:
        assert needle in str(err.value), str(err.value)
    assert session.calls == []
    assert PASSWORD not in str(err.value) and TOKEN_SECRET not in str(err.value)


def test_user_ids_and_token_ids_that_are_accepted():
    assert make_client([], user="john.doe@example.com@ldap-1")[0].user == "john.doe@example.com@ldap-1"
    assert make_client([], password=None, user="ci@pve", token_id="t", token_secret=TOKEN_SECRET)[0].token_id == \
        "ci@pve!t"
    # a complete token id brings its own user; api_user (maybe only its default) is not used for it
    assert make_client([], password=None, user="root", token_id="ci@pve!deploy.1",
                       token_secret=TOKEN_SECRET)[0].token_id == "ci@pve!deploy.1"
    with pytest.raises(PveConfigError) as err:
        connect({"api_host": "pve.example", "api_user": "root", "api_password": PASSWORD})
    assert "has no realm" in str(err.value) and "root@pam" in str(err.value) and PASSWORD not in str(err.value)


def test_tls_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert make_client([], ca_path=str(ca))[0].verify == str(ca)
    assert make_client([], ca_path=str(ca), validate_certs=False)[0].verify is False
    assert make_client([])[0].verify is True
    with pytest.raises(PveConfigError):
        make_client([], ca_path=str(tmp_path / "missing.pem"))
    assert make_client([], )[0].base_url == "https://pve.example:8006/api2/json"
    ipv6 = PveClient("fd00::1", password="x", session=FakeSession([]))
    assert ipv6.base_url == "https://[fd00::1]:8006/api2/json"
    with pytest.raises(PveConfigError):
        PveClient("https://pve.example:8006", password="x", session=FakeSession([]))


def test_the_acting_user_is_the_token_when_one_is_given():
    """Proxmox VE checks a token's own permissions: root@pam!ci is not root@pam (bind mounts, say)."""
    assert PveClient("pve.example", password="x", session=FakeSession([])).acting_user() == "root@pam"
    assert PveClient("pve.example", user="admin@pve", password="x", session=FakeSession([])).acting_user() == \
        "admin@pve"
    token = PveClient("pve.example", token_id="root@pam!ci", token_secret="s", session=FakeSession([]))
    assert token.acting_user() == "root@pam!ci"
    assert LocalPveClient(runner=None).acting_user() == "root@pam"


def test_secrets_never_in_messages():
    """The server echoing secrets (or the cookie) back must not put them into errors or reprs."""
    echo = "%s %s %s %s" % (PASSWORD, TICKET, requests.utils.quote(TICKET, safe=""), CSRF)
    client, dummy = make_client([login_ok(), FakeResponse(400, {"message": "bad " + echo, "errors": {"x": echo}}),
                                 FakeResponse(200, None, text="<html>%s</html>" % echo),
                                 requests.exceptions.ConnectionError("reset " + echo)])
    caught = []
    for call in (lambda: client.post("/a"), lambda: client.get("/b"), lambda: client.post("/c")):
        with pytest.raises(PveError) as err:
            call()
        caught.append(err.value)
    token_client, dummy = make_client([FakeResponse(401, {"message": "no " + TOKEN_SECRET}, "authentication failure")],
                                      password=None, token_id="t", token_secret=TOKEN_SECRET)
    with pytest.raises(PveApiError) as err:
        token_client.get("/version")
    caught.append(err.value)
    bad_login, dummy = make_client([FakeResponse(401, None, "authentication failure")])
    with pytest.raises(PveApiError) as err:
        bad_login.get("/version")
    caught.append(err.value)
    assert caught[-1].status == 401 and caught[-2].status == 401
    texts = [str(e) for e in caught] + [repr(e) for e in caught] + [repr(client), repr(token_client)]
    texts += [json.dumps(getattr(e, "errors", {})) for e in caught]
    for text in texts:
        for secret in (PASSWORD, TICKET, requests.utils.quote(TICKET, safe=""), CSRF, TOKEN_SECRET, "s3cret"):
            assert secret not in text, text
    assert "********" in str(caught[0]) and "********" in str(caught[2])


def test_multipart_body_streams_file_and_parses(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "t.tar.zst"
    path.write_bytes(data)
    body = MultipartBody([("content", "vztmpl"), ("checksum", "ab")], "filename", "t.tar.zst", str(path),
                         chunk=4096)
    pieces = list(body)
    raw = b"".join(pieces)
    assert len(raw) == len(body) and max(len(p) for p in pieces) <= 4096
    message = email.parser.BytesParser().parsebytes(b"Content-Type: " + body.content_type.encode() + b"\r\n\r\n" + raw)
    parts = dict((p.get_param("name", header="content-disposition"), p) for p in message.get_payload())
    assert list(parts) == ["content", "checksum", "filename"]
    assert parts["content"].get_payload(decode=True) == b"vztmpl"
    assert parts["filename"].get_param("filename", header="content-disposition") == "t.tar.zst"
    assert hashlib.sha256(parts["filename"].get_payload(decode=True)).digest() == hashlib.sha256(data).digest()
    shrinking = MultipartBody([], "filename", "t.tar.zst", str(path), size=len(data) + 10)
    with pytest.raises(PveError) as err:
        shrinking.read(-1)
    assert "shrank" in str(err.value)


def test_upload_request_is_streamed_with_checksum(tmp_path):
    path = tmp_path / "app.tar.zst"
    path.write_bytes(b"z" * 3000)
    client, session = make_client([login_ok(), FakeResponse(200, {"data": "UPID:up"})])
    assert client.upload("pve1", "local", "vztmpl", str(path)) == "UPID:up"
    method, url, kwargs = session.calls[1]
    assert url.endswith("/nodes/pve1/storage/local/upload")
    body = kwargs["data"]
    assert isinstance(body, MultipartBody) and body.size == 3000
    assert kwargs["headers"]["Content-Type"] == body.content_type
    assert kwargs["headers"]["CSRFPreventionToken"] == CSRF
    with pytest.raises(PveConfigError):
        client.upload("pve1", "local", "vztmpl", str(path), filename='a"b.tar')
    with pytest.raises(PveConfigError):
        client.upload("pve1", "local", "vztmpl", str(path), checksum="nothex")


# --- UPIDs, versions, backoff -------------------------------------------------------------

def test_upid_parsing():
    upid = parse_upid(UPID)
    assert (upid.node, upid.pid, upid.pstart, upid.starttime, upid.type, upid.id, upid.user) == (
        "pve1", 0x2E5C1, 1, 0x6B02B17C, "vzcreate", "120", "root@pam")
    token = parse_upid("UPID:node-2:000A1B2C:123456789:65F0A1B2:imgcopy::ci@pve!deploy:")
    assert token.node == "node-2" and token.id == "" and token.user == "ci@pve!deploy" and token.pstart == 0x123456789
    for bad in ("", "UPID:pve1:xyz", UPID[:-1], "UPID:-bad:0002E5C1:00000001:6B02B17C:t:1:u:", None):
        with pytest.raises(PveError):
            parse_upid(bad)


def test_versions_and_features():
    assert parse_version("9.1.1") == (9, 1, 1)
    assert parse_version("8.4") == (8, 4, 0)
    assert parse_version("pve-manager/8.4.1/1a2b3c4d") == (8, 4, 1)
    with pytest.raises(ValueError):
        parse_version("unknown")
    new = PveFeatures.from_version_info({"version": "9.1.1", "release": "9.1", "repoid": "1a2b3c4d"})
    assert new.entrypoint_env and new.oci_import and new.oci_registry_pull and new.version == (9, 1, 1)
    for text in ("9.0.11", "8.4.1"):
        old = PveFeatures.from_version_info({"version": text})
        assert not (old.entrypoint_env or old.oci_import or old.oci_registry_pull)
    assert PveFeatures.from_version_info({"version": "10.0.2"}).entrypoint_env
    assert new.as_dict()["version"] == "9.1.1"


def test_backoff_sequence():
    gen = backoff_delays()
    seq = [next(gen) for dummy in range(12)]
    assert seq[:4] == pytest.approx([0.1, 0.15, 0.225, 0.3375])
    assert seq == sorted(seq) and seq[-1] == 2.0 and seq.count(2.0) >= 3
    gen = backoff_delays(start=0.5, factor=2, maximum=1.0)
    assert [next(gen) for dummy in range(4)] == [0.5, 1.0, 1.0, 1.0]


# --- task waiting -------------------------------------------------------------------------

class FakeTaskApi:
    """Answers task status (running for ``polls`` calls) and the paged log."""

    def __init__(self, exitstatus, polls=3, lines=()):
        self.exitstatus = exitstatus
        self.polls = polls
        self.lines = list(lines)
        self.calls = []

    def get(self, path, params=None, **kwargs):
        self.calls.append((path, kwargs))
        if path.endswith("/status"):
            if self.polls > 0:
                self.polls -= 1
                return {"status": "running", "upid": kwargs["upid"]}
            return {"status": "stopped", "exitstatus": self.exitstatus}
        start, limit = kwargs["start"], kwargs["limit"]
        return [{"n": i + 1, "t": t} for i, t in enumerate(self.lines)][start:start + limit]


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def test_wait_ok_polls_with_backoff_and_node_from_upid():
    api, clock = FakeTaskApi("OK", polls=5), FakeClock()
    result = wait_task(api, None, UPID, sleep=clock.sleep, clock=clock)
    assert result.exitstatus == "OK" and result.warnings == [] and result.upid == UPID
    assert clock.sleeps == pytest.approx([0.1, 0.15, 0.225, 0.3375, 0.50625])
    assert all(kw["node"] == "pve1" for path, kw in api.calls)
    assert not [c for c in api.calls if c[0].endswith("/log")]


def test_wait_polls_the_node_that_runs_the_task_not_the_target():
    """An upload to pve2 sent to the API host pve1 runs on pve1 (pve-manager Storage/Status.pm upload)."""
    api, clock = FakeTaskApi("OK", polls=2, lines=["copy to pve2 done"]), FakeClock()
    upid = "UPID:pve1:0002E5C1:00000001:6B02B17C:imgcopy::root@pam:"
    wait_task(api, "pve2", upid, sleep=clock.sleep, clock=clock)
    assert [kw["node"] for path, kw in api.calls] == ["pve1"] * 3
    unparsed = FakeTaskApi("OK", polls=0)
    wait_task(unparsed, "pve2", "UPID:short", sleep=clock.sleep, clock=clock)  # only then the node given
    assert [kw["node"] for path, kw in unparsed.calls] == ["pve2"]
    with pytest.raises(PveError, match="not a Proxmox VE task id"):
        wait_task(unparsed, None, "UPID:short", sleep=clock.sleep, clock=clock)


def test_wait_warnings_come_from_the_whole_log():
    lines = ["WARN: early one"] + ["line %d" % i for i in range(1200)] + ["warning: late one", "TASK WARNINGS: 2"]
    api, clock = FakeTaskApi("WARNINGS: 2", polls=0, lines=lines), FakeClock()
    result = wait_task(api, "pve1", UPID, sleep=clock.sleep, clock=clock)
    assert result.exitstatus == "WARNINGS: 2"
    assert result.warnings == ["WARN: early one", "warning: late one"]
    assert result.log_tail == lines[-20:]
    assert [kw["start"] for path, kw in api.calls if path.endswith("/log")] == [0, 500, 1000]


def test_wait_failure_is_immediate_with_the_log_tail():
    lines = ["step %d" % i for i in range(40)] + ["TASK ERROR: unable to create CT 120 - disk full"]
    api, clock = FakeTaskApi("unable to create CT 120 - disk full", polls=2, lines=lines), FakeClock()
    with pytest.raises(PveTaskError) as err:
        wait_task(api, "pve1", UPID, timeout=600, sleep=clock.sleep, clock=clock)
    assert clock.now - 100.0 < 1  # two short polls, not the timeout
    assert err.value.exitstatus == "unable to create CT 120 - disk full"
    assert err.value.log_tail == lines[-20:] and len(err.value.log_tail) == 20
    assert str(err.value).startswith("Proxmox VE task %s failed: unable to create CT 120 - disk full" % UPID)
    assert "TASK ERROR: unable to create CT 120" in str(err.value)


def test_wait_failure_survives_an_unreadable_log():
    class NoLog(FakeTaskApi):
        def get(self, path, params=None, **kwargs):
            if path.endswith("/log"):
                raise PveApiError(403, "GET", path, "Permission check failed")
            return FakeTaskApi.get(self, path, params, **kwargs)

    with pytest.raises(PveTaskError) as err:
        wait_task(NoLog("command failed", polls=0), "pve1", UPID, sleep=lambda s: None)
    assert "could not be read" in err.value.log_tail[0]


def test_wait_timeout_names_upid_and_time():
    api, clock = FakeTaskApi("OK", polls=10 ** 6), FakeClock()
    with pytest.raises(PveTaskTimeout) as err:
        wait_task(api, "pve1", UPID, timeout=30, poll=2.0, sleep=clock.sleep, clock=clock)
    assert err.value.upid == UPID and err.value.waited == pytest.approx(30)
    assert UPID in str(err.value) and "30.0 s" in str(err.value)
    assert max(clock.sleeps) == 2.0 and sum(clock.sleeps) == pytest.approx(30)


def test_scan_log_keeps_tail_only():
    api = FakeTaskApi("OK", lines=["l%d" % i for i in range(7)])
    assert scan_task_log(api, "pve1", UPID, tail=3) == ([], ["l4", "l5", "l6"])
    assert tasks_mod.LOG_TAIL == 20


# --- doc fragment and argument spec -------------------------------------------------------

ANSIBLE_TYPES = {"str": "str", "int": "int", "bool": "bool", "path": "path"}


def test_fragment_matches_argument_spec():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = pve_argument_spec()
    assert sorted(doc) == sorted(spec)
    assert set(spec) == {"api_host", "api_port", "api_user", "api_password", "api_token_id", "api_token_secret",
                         "validate_certs", "ca_path", "api_timeout", "wait_timeout", "api_connection", "ssh_user",
                         "ssh_port", "ssh_identity_file", "ssh_config_file"}
    assert spec["api_connection"]["choices"] == doc["api_connection"]["choices"] == ["auto", "https", "ssh", "local"]
    for name, option in spec.items():
        documented = doc[name]
        assert documented["type"] == ANSIBLE_TYPES[option["type"]], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("required", False) == option.get("required", False), name
        description = " ".join(documented["description"])
        for variable in (option.get("fallback") or (None, []))[1]:
            assert "C(%s)" % variable in description, (name, variable)
        if "environment variable" in description:
            assert option.get("fallback"), name
    assert [n for n, o in spec.items() if o.get("no_log")] == ["api_password", "api_token_secret"]
    # every option whose name looks secret states no_log explicitly (ansible-test's no-log-needed)
    for name, option in spec.items():
        if re.search(r"pass|secret|token|key", name):
            assert "no_log" in option, name
    assert spec["api_port"]["default"] == 8006 and spec["api_timeout"]["default"] == 30
    assert spec["wait_timeout"]["default"] == 600 and spec["validate_certs"]["default"] is True
    assert pve_argument_spec() is not pve_argument_spec()
    names = set(n for group in PVE_MUTUALLY_EXCLUSIVE + PVE_REQUIRED_TOGETHER for n in group)
    assert names <= set(spec)


def test_spec_env_fallbacks_through_ansible(monkeypatch):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    monkeypatch.setenv("PROXMOX_HOST", "pve.example")
    monkeypatch.setenv("PROXMOX_TOKEN_ID", "ci@pve!t")
    monkeypatch.setenv("PROXMOX_TOKEN_SECRET", TOKEN_SECRET)
    monkeypatch.setenv("PROXMOX_VALIDATE_CERTS", "false")
    monkeypatch.setenv("PROXMOX_PORT", "8443")
    result = ArgumentSpecValidator(pve_argument_spec(), mutually_exclusive=PVE_MUTUALLY_EXCLUSIVE,
                                   required_together=PVE_REQUIRED_TOGETHER).validate({})
    assert result.error_messages == []
    params = result.validated_parameters
    assert (params["api_host"], params["api_port"], params["validate_certs"]) == ("pve.example", 8443, False)
    assert TOKEN_SECRET in result._no_log_values
    monkeypatch.setenv("PROXMOX_PASSWORD", PASSWORD)
    result = ArgumentSpecValidator(pve_argument_spec(), mutually_exclusive=PVE_MUTUALLY_EXCLUSIVE,
                                   required_together=PVE_REQUIRED_TOGETHER).validate({})
    assert "mutually exclusive" in " ".join(result.error_messages)


def test_ticket_renewed_before_it_expires():
    now = [1000.0]
    client, session = make_client([login_ok(), FakeResponse(200, {"data": 1}), FakeResponse(200, {"data": 2}),
                                   login_ok(), FakeResponse(200, {"data": 3})], clock=lambda: now[0])
    assert client.get("/a") == 1
    now[0] += 3600
    assert client.get("/b") == 2
    now[0] += 3600  # past the two hours a PVE ticket lives, less a margin
    assert client.get("/c") == 3
    assert [p for m, p in session.paths()] == ["/access/ticket", "/a", "/b", "/access/ticket", "/c"]


@pytest.mark.parametrize("name,stored", [("app+v1.tar.zst", "app_v1.tar.zst"), ("app:1.tar", "app_1.tar"),
                                         ("a b.tar", "a_b.tar")])
def test_an_upload_name_proxmox_would_change_is_refused_naming_what_it_would_become(name, stored):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import check_upload_filename
    with pytest.raises(PveConfigError) as err:
        check_upload_filename(name)
    assert repr(stored) in str(err.value)
    assert check_upload_filename("alpine_3.20_0123abcd.tar.zst") == "alpine_3.20_0123abcd.tar.zst"
