"""What the clients and the modules say when the connection itself is wrong, over real sockets on 127.0.0.1.

* a port that answers plain HTTP where the Proxmox VE API or a registry is asked for over HTTPS: "this port
  answers plain HTTP, not HTTPS", never "TLS failed ... set validate_certs: false" (with validate_certs true
  or false alike);
* a port nothing listens on: a failure within seconds that names host and port, without urllib3's
  "Max retries exceeded" text;
* ``api_user`` without a realm: refused before any request.
"""

import http.server
import socket
import threading
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import RegistryError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_reference
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.registry import RegistryClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import PveClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError, PveConnectionError
from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import answers_plain_http
from lxcri_testbed.ansible import write_play

pytestmark = pytest.mark.integration

PASSWORD = "conn-test-Pass-4711"
TOKEN_SECRET = "7d0c4a1e-2222-4abc-9def-0123456789ab"
PLAIN = "this port answers plain HTTP, not HTTPS"
URLLIB3_NOISE = ("Max retries", "HTTPConnection", "HTTPSConnection", "Errno", "NewConnectionError", "Caused by")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Any request gets a small HTML page, as a web service that is not the API would answer; the server's
    ``seen`` lists the request lines (a TLS handshake is not one: http.server answers it 400 by itself)."""

    def _answer(self):
        self.server.seen.append(self.requestline)
        body = b"<html>not the Proxmox VE API</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def plain_http():
    """A plain HTTP server (python http.server) on an ephemeral 127.0.0.1 port; yields the server (``.port``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen = []
    server.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port():
    """A 127.0.0.1 port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def no_secret(text):
    assert PASSWORD not in text and TOKEN_SECRET not in text


# --- the clients -------------------------------------------------------------------------------

def test_the_probe_tells_plain_http_from_nothing(plain_http, closed_port):
    assert answers_plain_http("127.0.0.1", plain_http.port)
    assert not answers_plain_http("127.0.0.1", closed_port)


@pytest.mark.parametrize("validate_certs", [True, False])
@pytest.mark.parametrize("auth", ["password", "token"])
def test_pve_client_on_a_plain_http_port(plain_http, validate_certs, auth):
    if auth == "password":
        credentials = {"password": PASSWORD}
    else:
        credentials = {"token_id": "root@pam!ci", "token_secret": TOKEN_SECRET}
    api = PveClient("127.0.0.1", port=plain_http.port, validate_certs=validate_certs, timeout=10, **credentials)
    started = time.monotonic()
    with pytest.raises(PveConnectionError) as err:
        api.version()
    assert time.monotonic() - started < 10
    text = str(err.value)
    assert "127.0.0.1:%d" % plain_http.port in text and PLAIN in text, text
    assert "api_host and api_port" in text
    assert "validate_certs: false" not in text and "TLS failed" not in text
    no_secret(text)
    assert plain_http.seen and all(line.startswith("HEAD / ") for line in plain_http.seen)  # only the probe


def test_pve_client_refused_fails_fast_naming_host_and_port(closed_port):
    for credentials in ({"password": PASSWORD}, {"token_id": "root@pam!ci", "token_secret": TOKEN_SECRET}):
        api = PveClient("127.0.0.1", port=closed_port, timeout=30, **credentials)
        started = time.monotonic()
        with pytest.raises(PveConnectionError) as err:
            api.version()  # a GET with a token: tried again briefly
        assert time.monotonic() - started < 5
        text = str(err.value)
        assert "127.0.0.1:%d refused the connection" % closed_port in text, text
        for noise in URLLIB3_NOISE:
            assert noise not in text, text
        no_secret(text)


def test_pve_client_user_without_a_realm_asks_nothing(plain_http):
    with pytest.raises(PveConfigError) as err:
        PveClient("127.0.0.1", port=plain_http.port, user="root", password=PASSWORD)
    assert "has no realm" in str(err.value) and "@pam" in str(err.value) and "@pve" in str(err.value)
    assert plain_http.seen == []


def test_registry_given_as_https_on_a_plain_http_port(plain_http):
    ref = parse_reference("127.0.0.1:%d/lxcri-test/none:1" % plain_http.port)
    client = RegistryClient(tls_verify=True, timeout=10)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(ref, "1")
    text = str(err.value)
    assert text.startswith("registry 127.0.0.1:%d: %s" % (plain_http.port, PLAIN)), text
    assert "registry_tls_verify: false" in text and "registry_ca_path" not in text
    # without verification the client falls back to plain HTTP itself and talks to the server
    plain_http.seen[:] = []
    body, dummy, dummy2 = RegistryClient(tls_verify=False, timeout=10).get_manifest(ref, "1")
    assert b"not the Proxmox VE API" in body
    assert plain_http.seen == ["GET /v2/lxcri-test/none/manifests/1 HTTP/1.1"]


@pytest.mark.parametrize("tls_verify", [True, False])
def test_registry_refused_fails_fast_naming_host_and_port(closed_port, tls_verify):
    ref = parse_reference("127.0.0.1:%d/lxcri-test/none:1" % closed_port)
    client = RegistryClient(tls_verify=tls_verify, retries=5, timeout=60)
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        client.get_manifest(ref, "1")
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert text.startswith("registry 127.0.0.1:%d refused the connection" % closed_port), text
    for noise in URLLIB3_NOISE:
        assert noise not in text, text


# --- the modules through ansible-playbook --------------------------------------------------------

@pytest.mark.parametrize("validate_certs", [True, False])
def test_lxc_container_info_on_a_plain_http_port(installed_collection, plain_http, tmp_path, validate_certs):
    play = write_play(tmp_path, "plain.yml", """\
        - lxcri.proxmox.lxc_container_info:
            api_host: 127.0.0.1
            api_port: %d
            api_password: %s
            validate_certs: %s
        """ % (plain_http.port, PASSWORD, "true" if validate_certs else "false"))
    run = installed_collection.playbook(play)
    assert run.rc != 0, run
    msg = run.task_results()[0]["msg"]
    assert "127.0.0.1:%d" % plain_http.port in msg and PLAIN in msg, msg
    assert "validate_certs: false" not in msg and "TLS failed" not in msg
    no_secret(run.stdout + run.stderr + repr(run.results))


def test_lxc_container_info_user_without_a_realm(installed_collection, plain_http, tmp_path):
    play = write_play(tmp_path, "realm.yml", """\
        - lxcri.proxmox.lxc_container_info:
            api_host: 127.0.0.1
            api_port: %d
            api_user: root
            api_password: %s
        """ % (plain_http.port, PASSWORD))
    run = installed_collection.playbook(play)
    assert run.rc != 0, run
    msg = run.task_results()[0]["msg"]
    assert "api_user 'root' has no realm" in msg and "root@pam" in msg and "@pve" in msg, msg
    assert plain_http.seen == []  # refused before any request
    no_secret(run.stdout + run.stderr + repr(run.results))


def test_oci_image_against_a_refused_registry(installed_collection, closed_port, tmp_path):
    play = write_play(tmp_path, "refused.yml", """\
        - lxcri.proxmox.oci_image:
            image: 127.0.0.1:%d/lxcri-test/none:1
            cache_dir: %s
            registry_tls_verify: false
            registry_username: user
            registry_password: %s
        """ % (closed_port, tmp_path / "cache", PASSWORD))
    started = time.monotonic()
    run = installed_collection.playbook(play)
    assert run.rc != 0, run
    msg = run.task_results()[0]["msg"]
    assert "registry 127.0.0.1:%d refused the connection" % closed_port in msg, msg
    for noise in URLLIB3_NOISE:
        assert noise not in msg, msg
    no_secret(run.stdout + run.stderr + repr(run.results))
    assert time.monotonic() - started < 60  # ansible-playbook's own start-up included; the retry is seconds


def test_oci_image_against_a_plain_http_port_given_as_https(installed_collection, plain_http, tmp_path):
    play = write_play(tmp_path, "plain-registry.yml", """\
        - lxcri.proxmox.oci_image:
            image: 127.0.0.1:%d/lxcri-test/none:1
            cache_dir: %s
        """ % (plain_http.port, tmp_path / "cache"))
    run = installed_collection.playbook(play)
    assert run.rc != 0, run
    msg = run.task_results()[0]["msg"]
    assert "registry 127.0.0.1:%d: %s" % (plain_http.port, PLAIN) in msg, msg
    assert "registry_tls_verify: false" in msg
