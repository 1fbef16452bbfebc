"""The registry client when it cannot talk to a registry: a port that answers plain HTTP where HTTPS was asked
for, and a refused connection (a short, bounded retry, then a message naming host and port)."""

import pytest
import requests
import urllib3

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import registry as registry_mod
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import RegistryError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_reference
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.registry import RegistryClient, host_port
from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import (
    connection_refused, transport_cause)
from lxcri_testbed.requests_errors import refused_error

WRONG_VERSION = "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
PASSWORD = "registry-pass-Xyz"
URLLIB3_NOISE = ("Max retries", "HTTPConnection", "HTTPSConnection", "Errno", "NewConnectionError", "Caused by")


class FakeSession:
    """Raises ``error`` (a callable of the URL) for every request; records the URLs."""

    def __init__(self, error):
        self.error = error
        self.urls = []
        self.headers = {}

    def request(self, method, url, **kwargs):
        self.urls.append(url)
        raise self.error(url)


def refused(url):
    """A refused connection to ``url`` the way requests reports it."""
    dummy, host, port = host_port(url)
    return refused_error(host, port, scheme=url.partition(":")[0], url=url)


def wrong_version(url):
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(
        None, url, urllib3.exceptions.SSLError(WRONG_VERSION)))


def make_client(error, **kwargs):
    session = FakeSession(error)
    sleeps = []
    kwargs.setdefault("tls_verify", True)
    client = RegistryClient(session=session, sleep=sleeps.append, **kwargs)
    return client, session, sleeps


@pytest.fixture
def probe(monkeypatch):
    calls = []

    def answers_plain_http(host, port, timeout=3.0):
        calls.append((host, port))
        return True
    monkeypatch.setattr(registry_mod, "answers_plain_http", answers_plain_http)
    return calls


def test_an_https_registry_that_answers_plain_http_says_so(probe):
    client, session, sleeps = make_client(wrong_version)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference("127.0.0.1:5000/team/app:1"), "1")
    text = str(err.value)
    assert text.startswith("registry 127.0.0.1:5000: this port answers plain HTTP, not HTTPS"), text
    assert "set registry_tls_verify: false to pull from it over plain HTTP" in text
    assert "registry_ca_path" not in text and "TLS error" not in text
    assert probe == [("127.0.0.1", 5000)] and session.urls == ["https://127.0.0.1:5000/v2/team/app/manifests/1"]
    assert sleeps == []


def test_a_mirror_given_as_https_that_answers_plain_http_is_told_to_write_http(probe):
    client, session, dummy = make_client(wrong_version, tls_verify=False, mirrors=["https://127.0.0.1:5001"])
    with pytest.raises(RegistryError) as err:
        client.request("GET", parse_reference("busybox:1"), "/v2/library/busybox/manifests/1",
                       "https://127.0.0.1:5001")
    text = str(err.value)
    assert "registry 127.0.0.1:5001: this port answers plain HTTP, not HTTPS" in text
    assert "write the mirror as http://127.0.0.1:5001 in registry_mirrors" in text


def test_other_tls_failures_keep_the_certificate_advice(probe):
    client, dummy, dummy2 = make_client(lambda url: requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"))
    with pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference("127.0.0.1:5000/team/app:1"), "1")
    assert "TLS error talking to 127.0.0.1:5000" in str(err.value) and "registry_ca_path" in str(err.value)
    assert probe == []


@pytest.mark.parametrize("tls_verify,urls", [
    (True, ["https://127.0.0.1:5999/v2/team/app/manifests/1"] * 4),
    # without verification, plain HTTP is tried too (the same port here), then the short retry
    (False, ["https://127.0.0.1:5999/v2/team/app/manifests/1"] + ["http://127.0.0.1:5999/v2/team/app/manifests/1"] * 4),
])
def test_a_refused_registry_fails_fast_naming_host_and_port(tls_verify, urls):
    client, session, sleeps = make_client(refused, tls_verify=tls_verify, retries=5, backoff=0.5,
                                          credentials=None)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference("127.0.0.1:5999/team/app:1"), "1")
    text = str(err.value)
    assert text.startswith("registry 127.0.0.1:5999 refused the connection (4 tries)"), text
    assert "check the registry's host and port" in text
    for noise in URLLIB3_NOISE:
        assert noise not in text, text
    assert session.urls == urls
    assert len(sleeps) == 3 and sum(sleeps) <= 2.0  # not the 5 retries with backoff of a broken connection


def test_a_refused_registry_without_retries_fails_at_once_and_port_defaults():
    client, session, sleeps = make_client(refused, retries=0)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference("registry.example/team/app:1"), "1")
    assert str(err.value).startswith("registry registry.example:443 refused the connection:"), str(err.value)
    assert len(session.urls) == 1 and sleeps == []


def test_other_connection_failures_are_retried_and_worded_without_urllib3_text():
    def reset(url):
        return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(
            None, url, urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))))
    client, session, sleeps = make_client(reset, retries=2, backoff=0.01)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference("127.0.0.1:5000/team/app:1"), "1")
    assert len(session.urls) == 3 and len(sleeps) == 2
    assert str(err.value).startswith("cannot reach registry 127.0.0.1:5000: ") and "Max retries" not in str(err.value)


def test_the_shared_helpers():
    error = refused("http://127.0.0.1:5999/v2/")
    assert connection_refused(error) and transport_cause(error) == "connection refused"
    assert not connection_refused(requests.exceptions.ConnectionError("reset by peer"))
    assert host_port("https://[fd00::1]/v2/") == ("[fd00::1]:443", "fd00::1", 443)
    assert host_port("http://reg.example:8080/x") == ("reg.example:8080", "reg.example", 8080)


def test_credentials_never_reach_the_messages(probe):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.authfile import Credentials
    for error in (refused, wrong_version):
        client, dummy, dummy2 = make_client(error, credentials=Credentials("user", PASSWORD), retries=1)
        with pytest.raises(RegistryError) as err:
            client.get_manifest(parse_reference("127.0.0.1:5000/team/app:1"), "1")
        assert PASSWORD not in str(err.value)
