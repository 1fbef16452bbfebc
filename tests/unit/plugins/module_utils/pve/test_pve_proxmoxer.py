"""The PVE client's transport is proxmoxer's HTTPS backend: its session and auth classes, wrapped where they
would change the collection's behaviour; a missing proxmoxer is reported in words."""

import os
import sys

import pytest
import requests
from proxmoxer.backends.https import ProxmoxHttpSession, ProxmoxHTTPApiTokenAuth, ProxmoxHTTPAuth

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import client as client_mod
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import proxmoxer_import
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import (
    MultipartBody, PveClient, StreamingSession, TicketAuth)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError


def test_the_session_and_auth_objects_are_proxmoxers():
    ticket = PveClient("pve.example", password="pw")
    assert isinstance(ticket.session, ProxmoxHttpSession) and isinstance(ticket.session, StreamingSession)
    assert isinstance(ticket.auth, ProxmoxHTTPAuth) and isinstance(ticket.auth, TicketAuth)
    token = PveClient("pve.example", token_id="ci@pve!bot", token_secret="sec")
    assert isinstance(token.auth, ProxmoxHTTPApiTokenAuth)
    assert token.auth.username == "ci@pve" and token.auth.token_name == "bot" and token.auth.token_value == "sec"


def test_the_ticket_auth_does_not_log_in_when_made_and_renews_through_the_client():
    logins = []
    auth = TicketAuth("root@pam", lambda: logins.append(1), timeout=5, verify_ssl=False)
    assert logins == [] and auth.get_tokens() == ("", None)
    auth.set_tokens("PVE:t", "csrf")
    assert auth.get_tokens() == ("PVE:t", "csrf")
    auth.birth_time -= client_mod.TICKET_RENEW_AFTER + 1  # proxmoxer's own age check asks for a new ticket
    request = client_mod.AuthTarget("POST")
    auth(request)
    assert logins == [1] and request.headers == {"CSRFPreventionToken": "csrf"}


def test_a_streamed_body_bypasses_proxmoxers_dict_handling(monkeypatch, tmp_path):
    seen = []

    def fake_request(self, method, url, *args, **kwargs):
        seen.append((method, args, kwargs))
        return "answer"

    monkeypatch.setattr(requests.Session, "request", fake_request)
    session = StreamingSession()
    assert session.request("POST", "https://x/api2/json/a", data={"k": "v"}, timeout=3, verify=False) == "answer"
    # proxmoxer's request passes everything on positionally: (params, data, ...)
    assert seen[-1][1][:2] == (None, {"k": "v"})
    path = tmp_path / "f"
    path.write_bytes(b"xyz")
    body = MultipartBody([("content", "vztmpl")], "filename", "f", str(path))
    assert session.request("POST", "https://x/api2/json/u", data=body, timeout=3, verify=False) == "answer"
    assert seen[-1][2]["data"] is body
    body.close()


def test_missing_proxmoxer_is_reported_in_words(monkeypatch):
    monkeypatch.setattr(client_mod, "HAS_PROXMOXER", False)
    monkeypatch.setattr(proxmoxer_import, "HAS_PROXMOXER", False)
    monkeypatch.setattr(proxmoxer_import, "PROXMOXER_IMPORT_ERROR", ImportError("No module named 'proxmoxer'"))
    with pytest.raises(PveConfigError) as err:
        PveClient("pve.example", password="pw")
    assert "the Python library 'proxmoxer' (2.0 or later) is required" in str(err.value)
    assert "python3-proxmoxer" in str(err.value) and "No module named 'proxmoxer'" in str(err.value)
    monkeypatch.setattr(proxmoxer_import, "HAS_REQUESTS", False)
    assert proxmoxer_import.missing_proxmoxer() == proxmoxer_import.missing_requests_message()  # one message


def test_missing_command_backend_is_reported_for_ssh_only(monkeypatch):
    monkeypatch.setattr(proxmoxer_import, "HAS_PROXMOXER_SSH", False)
    monkeypatch.setattr(proxmoxer_import, "PROXMOXER_SSH_IMPORT_ERROR", ImportError("No module named 'x'"))
    assert proxmoxer_import.missing_proxmoxer() is None
    text = proxmoxer_import.missing_proxmoxer(ssh=True)
    assert "proxmoxer.backends.command_base" in text and "No module named 'x'" in text


def test_ssh_mode_needs_no_openssh_wrapper():
    """proxmoxer's own OpenSSH backend needs openssh-wrapper, which does not import on Python 3.13."""
    assert proxmoxer_import.HAS_PROXMOXER_SSH
    assert proxmoxer_import.CommandBaseSession.__module__ == "proxmoxer.backends.command_base"
    assert "openssh_wrapper" not in sys.modules


def test_the_requirement_is_listed_where_installers_read_it():
    root = os.path.join(os.path.dirname(__file__), *[os.pardir] * 5)
    with open(os.path.join(root, "requirements.txt")) as handle:
        assert "proxmoxer>=2.0,<3" in handle.read().split()
