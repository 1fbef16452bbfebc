# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Proxmox VE REST API (``/api2/json``), on proxmoxer's HTTPS backend.

Paths are templates in the schema's own notation: variable segments are
``{name}`` placeholders filled from the parameters and URL-quoted whole
(a volid, an UPID or a token id holds ``:``, ``/``, ``@`` and ``!``)::

    client.get("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100)
    client.put("/nodes/{node}/lxc/{vmid}/config", node="pve1", vmid=100, memory=512)
    client.delete("/nodes/{node}/lxc/{vmid}", {"destroy-unreferenced-disks": True}, node="pve1", vmid=100)

Parameters whose names are not Python identifiers go in the dict argument;
``None`` values are left out, booleans sent as 1/0.  Each call returns the
``data`` member of PVE's answer.  Authentication is a
ticket (``POST /access/ticket``, cookie ``PVEAuthCookie`` and the
``CSRFPreventionToken`` header on writes, one new login when PVE refuses an
expired ticket) or an API token (``Authorization: PVEAPIToken=...``).  GETs
are retried after a broken connection or a 502/503; writes never are, PVE
does not make them idempotent.

The transport is proxmoxer's (``proxmoxer.backends.https``): its session
class and its auth classes make the token header, the ticket cookie and the
CSRF header.  What proxmoxer does not do, or would do differently, stays
here: whole-segment quoting, retries, scrubbing, the streamed upload, and
the login itself (proxmoxer logs in when its auth object is made, with a
bare ``requests.post`` and its own error text; this client logs in once,
lazily, through its session, and keeps its messages).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time
import uuid
import warnings

try:
    from urllib.parse import quote, quote_plus
except ImportError:  # pragma: no cover - Python 2 controller, never a target here
    from urllib import quote, quote_plus

try:
    from urllib3.exceptions import InsecureRequestWarning
except ImportError:  # pragma: no cover
    InsecureRequestWarning = None

from ansible_collections.lxcri.proxmox.plugins.module_utils.hashing import sha256_file
from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import (
    RequestsConnectionError, SSLError, Timeout, answers_plain_http, connection_refused, looks_like_not_tls,
    MISSING_LIBRARY, require_requests, requests, transport_cause)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import (
    PveApiError, PveConfigError, PveConnectionError, PveError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.proxmoxer_import import (
    HAS_PROXMOXER, ProxmoxHTTPApiTokenAuth, ProxmoxHTTPAuth, ProxmoxHTTPAuthBase, ProxmoxHttpSession,
    missing_proxmoxer)

DEFAULT_PORT = 8006
DEFAULT_USER = "root@pam"
DEFAULT_TIMEOUT = 30
USER_AGENT = "lxcri.proxmox"
RETRY_STATUS = (502, 503)
# PVE tickets live two hours; log in again a little before that instead of
# provoking a refusal.
TICKET_RENEW_AFTER = 6600
CHUNK = 1024 * 1024
MASK = "********"

# Proxmox VE's own rules (PVE::Auth::Plugin): a user id is name@realm, the name without white space, ':' or '/';
# realms and token names start with a letter, then letters, digits, '.', '-' and '_'.
_REALM = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_USER_NAME = re.compile(r"^[^\s:/]+$")
_TOKEN_NAME = _REALM
# how long the probe that tells a plain-HTTP port from a TLS failure may take
PROBE_TIMEOUT = 5
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")
_BAD_FILENAME = re.compile(r'[/\\"\r\n\x00]')
_NOT_KEPT = re.compile(r"[^a-zA-Z0-9_.-]")  # pve-storage normalize_content_filename


def to_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def quote_segment(value):
    """One path segment, quoted whole: ``local:vztmpl/a b.tar`` -> ``local%3Avztmpl%2Fa%20b.tar``."""
    return quote(to_text(value), safe="")


def fill_path(path, params, quote_fn=quote_segment):
    """Fill the ``{name}`` placeholders of ``path`` from ``params``.

    Returns ``(path, the parameters left over)``; a placeholder without a
    value, an empty value, ``.`` or ``..`` raise ValueError.
    """
    rest = dict(params or {})

    def fill(match):
        name = match.group(1)
        value = rest.pop(name, None)
        if value is None:
            raise ValueError("API path %s needs a value for {%s}" % (path, name))
        text = to_text(value)
        if text in ("", ".", ".."):
            raise ValueError("API path %s: %r is not a valid value for {%s}" % (path, text, name))
        return quote_fn(text)

    filled = _PLACEHOLDER.sub(fill, path)
    if not filled.startswith("/"):
        filled = "/" + filled
    return filled, rest


def encode_value(value):
    """PVE's form encoding: booleans as 1/0, lists as repeated values."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return [encode_value(item) for item in value]
    return to_text(value)


def encode_params(params):
    """Parameters as PVE takes them; ``None`` means "not given" and is left out."""
    return dict((str(k), encode_value(v)) for k, v in (params or {}).items() if v is not None)


def merge_params(params, kwargs):
    merged = dict(params or {})
    merged.update(kwargs)
    return merged


def check_userid(userid, option="api_user", tail=""):
    """``userid`` when it is a Proxmox VE user id (``name@realm``); else PveConfigError saying what is wrong.

    PVE logs nobody in without a realm, so this is checked before any request: a bare ``root`` would only
    come back as PVE's "authentication failure".  ``tail`` ends the examples (``!ci`` for a token id).
    """
    text = to_text(userid)
    name, at, realm = text.rpartition("@")
    if not at:
        raise PveConfigError("%s %r has no realm: a Proxmox VE user is name@realm, with @pam for a Linux user of the "
                             "node or @pve for a Proxmox VE user (e.g. %s@pam%s or %s@pve%s)"
                             % (option, text, text or "root", tail, text or "root", tail))
    if not _USER_NAME.match(name) or not _REALM.match(realm):
        raise PveConfigError("%s %r is not a Proxmox VE user id: name@realm, the name without spaces, ':' or '/', "
                             "the realm such as pam or pve (e.g. root@pam%s)" % (option, text, tail))
    return text


def full_token_id(token_id, user):
    """The complete token id ``user@realm!tokenname``: ``token_id`` as given, or ``user!token_id``.

    The token name is never echoed in a message: a token pasted as ``user@realm!name=secret`` would put the
    secret there.
    """
    text = to_text(token_id)
    if "!" in text:
        owner, dummy, name = text.rpartition("!")
        check_userid(owner, "the user of api_token_id", "!" + name if _TOKEN_NAME.match(name) else "!tokenname")
    else:
        if "@" in text:
            raise PveConfigError("api_token_id %r is a user, not a token: give user@realm!tokenname "
                                 "(e.g. root@pam!ci), or the token name alone with api_user" % text)
        owner, name = check_userid(user, "api_user (the user of an api_token_id given without one)"), text
    if not _TOKEN_NAME.match(name):
        raise PveConfigError("api_token_id: the token name after %s! is not valid (a letter, then letters, digits, "
                             "'.', '-' or '_'); the form is user@realm!tokenname, and the secret goes in "
                             "api_token_secret" % owner)
    return "%s!%s" % (owner, name)


def check_upload_filename(filename):
    """The name the file gets on the storage; refused when Proxmox VE would store it under another name.

    pve-storage's upload keeps only ``[a-zA-Z0-9_.-]`` (PVE/Storage.pm normalize_content_filename, every other
    byte becomes ``_``), so a volume id built from another name would name a file that is not there.
    """
    if not filename or len(filename) > 255 or _BAD_FILENAME.search(filename):
        raise PveConfigError("not a usable upload file name: %r (a base name without quotes or control "
                             "characters, at most 255 characters)" % (filename,))
    stored = _NOT_KEPT.sub("_", filename)
    if stored != filename:
        raise PveConfigError("upload file name %r: Proxmox VE stores uploads with only letters, digits, '_', '.' "
                             "and '-' in the name, so it would become %r; give a name of those characters"
                             % (filename, stored))
    return filename


def upload_checksum(path, checksum):
    """``checksum``: True (compute sha256), False/None (none) or a sha256 hex digest given by the caller."""
    if checksum is True:
        return sha256_file(path)
    if not checksum:
        return None
    text = to_text(checksum).lower()
    if not re.match(r"^[0-9a-f]{64}$", text):
        raise PveConfigError("checksum must be True, False or a sha256 hex digest, not %r" % (checksum,))
    return text


class ApiBase:
    """The verbs, version and features, shared by the HTTP client and the local pvesh backend."""

    _features = None
    requests = 0  # requests made through the verbs (a module's api_requests)

    def request(self, method, path, params=None, **kwargs):
        raise NotImplementedError

    def get(self, path, params=None, **kwargs):
        self.requests += 1
        return self.request("GET", path, params, **kwargs)

    def post(self, path, params=None, **kwargs):
        self.requests += 1
        return self.request("POST", path, params, **kwargs)

    def put(self, path, params=None, **kwargs):
        self.requests += 1
        return self.request("PUT", path, params, **kwargs)

    def delete(self, path, params=None, **kwargs):
        self.requests += 1
        return self.request("DELETE", path, params, **kwargs)

    def acting_user(self):
        """Whom Proxmox VE checks permissions for: ``root@pam`` here (pvesh on the node runs as root@pam, and the
        local backends log in with a root@pam ticket)."""
        return DEFAULT_USER

    def version(self):
        """``GET /version``: ``{"version": "9.1.1", "release": "9.1", "repoid": ...}``."""
        return self.get("/version")

    def features(self):
        """PveFeatures of this node (asked once, then cached)."""
        if self._features is None:
            self._features = PveFeatures.from_version_info(self.version())
        return self._features

    def scrub(self, text):
        return to_text(text)


class MultipartBody:
    """A multipart/form-data body streamed from a file, with its length known up front.

    Form fields first, the file part last (PVE's upload handler takes the
    fields before the file).  requests sends it with Content-Length, reading
    it piecewise, so the file is never held in memory.
    """

    def __init__(self, fields, file_field, filename, path, size=None, boundary=None, chunk=CHUNK):
        self.boundary = boundary or "lxcri-" + uuid.uuid4().hex
        self.path = path
        self.size = os.path.getsize(path) if size is None else size
        self.chunk = chunk
        head = []
        for name, value in fields:
            head.append('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                        % (self.boundary, name, to_text(value)))
        head.append('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                    'Content-Type: application/octet-stream\r\n\r\n' % (self.boundary, file_field, filename))
        self._head = "".join(head).encode("utf-8")
        self._tail = ("\r\n--%s--\r\n" % self.boundary).encode("ascii")
        self.length = len(self._head) + self.size + len(self._tail)
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done
        self._pos = 0
        self._left = self.size
        self._handle = None

    @property
    def content_type(self):
        return "multipart/form-data; boundary=%s" % self.boundary

    def __len__(self):
        return self.length

    def _from_bytes(self, data, want, next_stage):
        piece = data[self._pos:self._pos + want]
        self._pos += len(piece)
        if self._pos >= len(data):
            self._stage, self._pos = next_stage, 0
        return piece

    def _from_file(self, want):
        if self._left == 0:
            self.close()
            self._stage = 2
            return b""
        if self._handle is None:
            self._handle = open(self.path, "rb")
        piece = self._handle.read(min(want, self._left))
        if not piece:
            self.close()
            raise PveError("%s shrank while it was being uploaded (%d of %d bytes sent)"
                           % (self.path, self.size - self._left, self.size))
        self._left -= len(piece)
        return piece

    def read(self, size=-1):
        want = self.length if size is None or size < 0 else size
        out = []
        while want > 0 and self._stage < 3:
            if self._stage == 0:
                piece = self._from_bytes(self._head, want, 1)
            elif self._stage == 1:
                piece = self._from_file(want)
            else:
                piece = self._from_bytes(self._tail, want, 3)
            out.append(piece)
            want -= len(piece)
        return b"".join(out)

    def __iter__(self):
        while True:
            piece = self.read(self.chunk)
            if not piece:
                return
            yield piece

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class AuthTarget:
    """The part of a request proxmoxer's auth objects read and set: the method, the headers, the client cert."""

    def __init__(self, method):
        self.method = method
        self.headers = {}
        self.cert = None


class TicketAuth(ProxmoxHTTPAuth if HAS_PROXMOXER else object):
    """proxmoxer's ticket auth (the CSRF header on writes, renewal by age) with the client's own login.

    ``ProxmoxHTTPAuth.__init__`` would log in at once with a bare ``requests.post`` and proxmoxer's own error
    text; this one is made empty and filled by ``set_tokens`` after the client's login, and a renewal that
    proxmoxer asks for goes through ``relogin`` (the client's ``login``).
    """

    renew_age = TICKET_RENEW_AFTER

    def __init__(self, username, relogin, **kwargs):
        # ProxmoxHTTPAuth's own __init__ would log in: only the common part of proxmoxer's auth objects runs
        ProxmoxHTTPAuthBase.__init__(self, **kwargs)  # pylint: disable=non-parent-init-called
        self.username = username
        self.base_url = ""
        self.relogin = relogin
        self.pve_auth_ticket = ""
        self.csrf_prevention_token = None
        self.birth_time = time.monotonic()

    def _get_new_tokens(self, password=None, otp=None, otptype=None):
        self.relogin()

    def set_tokens(self, ticket, csrf):
        self.pve_auth_ticket, self.csrf_prevention_token = ticket, csrf
        self.birth_time = time.monotonic()


class StreamingSession(ProxmoxHttpSession if HAS_PROXMOXER else object):
    """proxmoxer's session; a streamed body (MultipartBody) goes to requests as it is.

    proxmoxer's ``request`` copies a dict body to look for file objects in it, which a stream is not.
    """

    def request(self, method, url, params=None, data=None, **kwargs):
        if data is not None and not isinstance(data, dict):
            return requests.Session.request(self, method, url, params=params, data=data, **kwargs)
        return super(StreamingSession, self).request(method, url, params=params, data=data, **kwargs)


class PveClient(ApiBase):
    """The Proxmox VE API over HTTPS; see the module docstring."""

    def __init__(self, host, port=DEFAULT_PORT, user=DEFAULT_USER, password=None, token_id=None, token_secret=None,
                 validate_certs=True, ca_path=None, timeout=DEFAULT_TIMEOUT, session=None, retries=2,
                 backoff=(0.25, 1.0), sleep=time.sleep, clock=time.monotonic, ticket_source=None):
        """``ticket_source``: instead of a password, a callable giving ``(ticket, csrf_token)`` for ``user``
        (LocalPveClient's loopback mints them on the node)."""
        require_requests(PveConfigError)
        if not HAS_PROXMOXER:
            raise PveConfigError(missing_proxmoxer(), kind=MISSING_LIBRARY)
        if not host:
            raise PveConfigError("the Proxmox VE API host is required")
        if "://" in host or "/" in host:
            raise PveConfigError("api_host is a host name or address, not a URL: %s" % host)
        if password and (token_id or token_secret):
            raise PveConfigError("give either a password or an API token, not both")
        if bool(token_id) != bool(token_secret):
            raise PveConfigError("an API token needs both its id and its secret")
        if not password and not token_secret and ticket_source is None:
            raise PveConfigError("credentials are required: a password or an API token id and secret")
        if validate_certs and ca_path and not os.path.isfile(ca_path):
            raise PveConfigError("ca_path %s is not a file" % ca_path)
        self.host = host
        self.port = int(port or DEFAULT_PORT)
        self.user = user or DEFAULT_USER
        self._password = password or None
        self._ticket_source = ticket_source
        self._token_secret = token_secret or None
        self._secrets = set(s for s in (self._password, self._token_secret) if s)
        self.token_id = None
        try:
            if token_id:
                self.token_id = full_token_id(token_id, self.user)
            else:
                check_userid(self.user)
        except PveConfigError as exc:
            raise PveConfigError(self.scrub(str(exc))) from None  # a secret pasted in the wrong option stays hidden
        self.verify = (ca_path or True) if validate_certs else False
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.session = session if session is not None else StreamingSession()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.retries = retries
        self.backoff = tuple(backoff)
        self.sleep = sleep
        self.clock = clock
        self._ticket_time = None
        if self.token_id:
            owner, dummy, name = self.token_id.rpartition("!")
            self.auth = ProxmoxHTTPApiTokenAuth(owner, name, self._token_secret, timeout=self.timeout,
                                                verify_ssl=self.verify)
        else:
            self.auth = TicketAuth(self.user, self.login, timeout=self.timeout, verify_ssl=self.verify)
        netloc = "[%s]" % host if ":" in host and not host.startswith("[") else host
        self.base_url = "https://%s:%d/api2/json" % (netloc, self.port)

    def acting_user(self):
        """An API token acts as itself (``root@pam!ci`` is not root@pam to Proxmox VE's permission checks)."""
        return self.token_id or self.user

    def __repr__(self):
        auth = "token %s" % self.token_id if self.token_id else "ticket as %s" % self.user
        return "PveClient(%s:%d, %s)" % (self.host, self.port, auth)

    # -- secrets ----------------------------------------------------------------
    def scrub(self, text):
        """``text`` with every secret this client holds (in plain and URL-encoded form) masked."""
        text = to_text(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            for form in (secret, quote(secret, safe=""), quote_plus(secret)):
                text = text.replace(form, MASK)
        return text

    # -- plumbing ---------------------------------------------------------------
    def _auth_headers(self, method):
        """The headers proxmoxer's auth object sets on a request, and the ticket cookie it holds.

        They go in ``headers=`` of each call rather than as the session's ``auth`` hook, so that every
        request carries exactly what it is seen to carry (the unit tests look at it).
        """
        request = AuthTarget(method)
        self.auth(request)
        ticket, dummy = self.auth.get_tokens()
        if ticket:
            request.headers["Cookie"] = "PVEAuthCookie=%s" % quote(ticket, safe="")
        return request.headers

    def _send(self, method, path, params=None, body=None, headers=None, auth=True):
        """One HTTP exchange; transport failures become PveConnectionError (``retryable`` for a broken connection)."""
        all_headers = {"Accept": "application/json"}
        if auth:
            all_headers.update(self._auth_headers(method))
        all_headers.update(headers or {})
        kwargs = {"headers": all_headers, "timeout": self.timeout, "verify": self.verify, "allow_redirects": False}
        if method in ("GET", "DELETE"):
            kwargs["params"] = params
        else:
            kwargs["data"] = body if body is not None else params
        where = "%s %s" % (method, path)
        try:
            with warnings.catch_warnings():
                if self.verify is False and InsecureRequestWarning is not None:
                    # the user chose validate_certs: false; say nothing per request, here only
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                return self.session.request(method, self.base_url + path, **kwargs)
        except SSLError as exc:
            raise PveConnectionError(self.host, self.port, self.scrub("%s: %s" % (where, self._tls_failure(exc))))
        except Timeout as exc:
            raise PveConnectionError(self.host, self.port, self.scrub(
                "%s: no answer within %s s (api_timeout): %s" % (where, self.timeout, transport_cause(exc))))
        except RequestsConnectionError as exc:
            if connection_refused(exc):
                cause = ("%s:%d refused the connection: check api_host and api_port (%d unless changed on the node) "
                         "and that pveproxy runs there" % (self.host, self.port, DEFAULT_PORT))
            else:
                cause = transport_cause(exc)
            raise PveConnectionError(self.host, self.port, self.scrub("%s: %s" % (where, cause)), retryable=True)

    def _tls_failure(self, exc):
        """What a failed TLS handshake means: a port that is not TLS at all, or a certificate problem."""
        cause = transport_cause(exc)
        if looks_like_not_tls(exc):
            if answers_plain_http(self.host, self.port, min(self.timeout, PROBE_TIMEOUT)):
                return ("this port answers plain HTTP, not HTTPS: the Proxmox VE API (pveproxy) speaks only HTTPS, "
                        "on port %d unless changed; check that api_host and api_port name the API and not another "
                        "service (validate_certs does not matter here)" % DEFAULT_PORT)
            return ("the answer is not TLS (%s): the Proxmox VE API speaks HTTPS, on port %d unless changed; check "
                    "that api_host and api_port name the API (validate_certs does not matter here)"
                    % (cause, DEFAULT_PORT))
        if self.verify is False:
            return ("TLS failed: %s (validate_certs is false, so the certificate is not checked; check that "
                    "api_port is the API's HTTPS port)" % cause)
        return ("TLS failed: %s (point ca_path at the node's CA certificate, e.g. a copy of "
                "/etc/pve/pve-root-ca.pem, or set validate_certs: false)" % cause)

    def _ticket_stale(self):
        return self._ticket_time is None or self.clock() - self._ticket_time > TICKET_RENEW_AFTER

    def _hint(self, status, path):
        if status == 401:
            if path == "/access/ticket" or not self.token_id:
                return "check api_user and api_password"
            return "check api_token_id and api_token_secret"
        if status == 403:
            return ("%s lacks the privilege for this call (a privilege-separated API token needs its own ACL "
                    "entries)" % (self.token_id or self.user))
        if status == 501:
            return "this Proxmox VE version does not have this API call"
        if status == 595 and path.startswith("/nodes/"):
            # pve-http-server's proxy: the API host could not reach the node the call is for
            node = path.split("/")[2]
            return ("node %s does not answer the API host (offline, or its network or pveproxy is down): nothing "
                    "can be done there until it is back" % node)
        return None

    def _error(self, method, path, resp):
        try:
            body = resp.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        message = message or resp.reason or "HTTP error %d" % resp.status_code
        errors = body.get("errors") if isinstance(body, dict) and isinstance(body.get("errors"), dict) else {}
        errors = dict((k, self.scrub(v)) for k, v in errors.items())
        return PveApiError(resp.status_code, method, path, self.scrub(message), errors, self._hint(resp.status_code, path))

    def _result(self, method, path, resp):
        if 200 <= resp.status_code < 300:
            try:
                body = resp.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise PveApiError(resp.status_code, method, path, "the answer is not Proxmox VE's JSON: %s"
                                  % self.scrub((resp.text or "")[:200]))
            return body.get("data")
        raise self._error(method, path, resp)

    @property
    def _logs_in(self):
        """Whether this client gets tickets (a password or a ticket source; not with an API token)."""
        return self._password is not None or self._ticket_source is not None

    def login(self):
        """Get a ticket and CSRF token with the password, or from the ticket source (nothing to do with an API
        token)."""
        if self._password is None and self._ticket_source is not None:
            ticket, csrf = self._ticket_source()
            self.auth.set_tokens(ticket, csrf)
            self._ticket_time = self.clock()
            self._secrets.update((ticket, csrf))
            return
        if self._password is None:
            return
        resp = self._send("POST", "/access/ticket", {"username": self.user, "password": self._password}, auth=False)
        data = self._result("POST", "/access/ticket", resp) or {}
        if data.get("NeedTFA"):
            raise PveConfigError("%s needs a second factor to log in; use an API token instead" % self.user)
        ticket, csrf = data.get("ticket"), data.get("CSRFPreventionToken")
        if not ticket or not csrf:
            raise PveApiError(resp.status_code, "POST", "/access/ticket", "the answer holds no ticket")
        self.auth.set_tokens(ticket, csrf)
        self._ticket_time = self.clock()
        self._secrets.update((ticket, csrf))

    def _call(self, method, path, params=None, body_factory=None, headers=None):
        relogged = False
        attempt = 0
        while True:
            if self._logs_in and self._ticket_stale():
                self.login()
            body = body_factory() if body_factory is not None else None
            try:
                resp = self._send(method, path, params, body, headers)
            except PveConnectionError as exc:
                if method == "GET" and exc.retryable and attempt < self.retries:
                    self.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
                    attempt += 1
                    continue
                raise
            finally:
                if body is not None:
                    body.close()
            if resp.status_code == 401 and self._logs_in and not relogged:
                # the ticket expired (or PVE restarted its key): a 401 means nothing was done, so
                # logging in again and repeating is safe even for a write
                relogged = True
                self._ticket_time = None
                continue
            if method == "GET" and resp.status_code in RETRY_STATUS and attempt < self.retries:
                self.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
                attempt += 1
                continue
            return self._result(method, path, resp)

    # -- API ----------------------------------------------------------------------
    def request(self, method, path, params=None, **kwargs):
        """``method`` on ``path`` (a ``{name}`` template) with ``params``/keywords; returns ``data``."""
        method = method.upper()
        filled, rest = fill_path(path, merge_params(params, kwargs))
        return self._call(method, filled, encode_params(rest))

    def upload(self, node, storage, content, path_to_file, filename=None, checksum=True):
        """Upload a file into a storage (``vztmpl``, ``iso``, ``import``); returns the UPID of the import task.

        ``checksum=True`` reads the file once beforehand for its sha256, which
        PVE verifies in the task; a hex digest string is used as given; False
        sends none.  The file is streamed, never loaded whole.
        """
        filename = check_upload_filename(filename or os.path.basename(path_to_file))
        if not os.path.isfile(path_to_file):
            raise PveConfigError("no such file to upload: %s" % path_to_file)
        fields = [("content", content)]
        digest = upload_checksum(path_to_file, checksum)
        if digest:
            fields += [("checksum-algorithm", "sha256"), ("checksum", digest)]
        size = os.path.getsize(path_to_file)
        boundary = "lxcri-" + uuid.uuid4().hex
        filled, dummy = fill_path("/nodes/{node}/storage/{storage}/upload", {"node": node, "storage": storage})

        def body():
            return MultipartBody(fields, "filename", filename, path_to_file, size, boundary)

        self.requests += 1
        return self._call("POST", filled, body_factory=body,
                          headers={"Content-Type": "multipart/form-data; boundary=%s" % boundary})

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
