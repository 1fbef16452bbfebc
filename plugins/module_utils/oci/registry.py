# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for the registry HTTP API v2, on ``requests``.

Authentication: anonymous, basic, and bearer tokens (``WWW-Authenticate``
challenge, token scoped to the repository, refreshed when it expires or is
refused).  Retries 429/5xx and broken connections with backoff, honouring
``Retry-After``.  A refused connection is retried only briefly (nothing
listens on the port; a registry that is just restarting is back within
seconds or not at all).  Blob downloads resume with ``Range`` when the server
allows it, and restart otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import email.utils
import random
import re
import threading
import time

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 controller, never a target here
    from urlparse import urlsplit

from ansible_collections.lxcri.proxmox.plugins.module_utils.requests_import import (
    ChunkedEncodingError, ContentDecodingError, RequestsConnectionError, SSLError, Timeout, answers_plain_http,
    connection_refused, looks_like_not_tls, name_unresolvable, require_requests, requests, transport_cause)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.authfile import Credentials
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import AuthError, RegistryError, VerificationError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import DOCKER_HUB

RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER = 60.0
CHUNK = 1024 * 1024
USER_AGENT = "lxcri.proxmox"
# The waits before trying a refused connection again (at most as many as ``retries``): under two seconds in all.
REFUSED_RETRY_DELAYS = (0.25, 0.5, 1.0)
# how long the probe that tells a plain-HTTP port from a TLS failure may take
PROBE_TIMEOUT = 5

_CHALLENGE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header):
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {params})."""
    if not header:
        return None, {}
    scheme, dummy, rest = header.strip().partition(" ")
    params = {}
    for match in _CHALLENGE.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = value.replace('\\"', '"')
    return scheme.lower(), params


def retry_after_seconds(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def host_port(url):
    """``host:port`` of ``url``, with the scheme's default port when it names none (``[v6]:port`` for IPv6)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or parts.netloc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return "%s:%d" % ("[%s]" % host if ":" in host else host, port), host, port


def _registry_message(resp):
    """The registry's own error text (errors[].code/message) for error reports."""
    try:
        body = resp.json()
        errors = body.get("errors") or []
        if errors:
            return "; ".join("%s: %s" % (e.get("code"), e.get("message")) for e in errors)
        if body.get("details"):
            return str(body["details"])
    except ValueError:
        pass
    text = (resp.text or "").strip()
    return text[:300] if text else resp.reason or ""


def _tries(retried):
    return " (%d tries)" % (retried + 1) if retried else ""


class Token:
    def __init__(self, value, expires_at, challenge):
        self.value = value
        self.expires_at = expires_at
        self.challenge = challenge  # the WWW-Authenticate parameters, to renew it


class RegistryClient:
    """Talks to one or more registries; keeps tokens and scheme choices per host."""

    def __init__(self, credentials=None, tls_verify=True, ca_path=None, mirrors=(), timeout=60,
                 retries=5, backoff=0.5, sleep=time.sleep, clock=time.time, session=None,
                 credentials_for=None):
        require_requests(RegistryError)
        self._session = session  # one given session (tests), else one per thread
        self._local = threading.local()
        self.credentials = credentials or Credentials()
        self.credentials_for = credentials_for  # callable(domain, repo) -> Credentials, e.g. from an auth file
        self.tls_verify = tls_verify
        self.ca_path = ca_path
        if not tls_verify:
            # the user asked for unverified TLS; urllib3 would warn on every request
            import urllib3  # pylint: disable=import-outside-toplevel
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.mirrors = list(mirrors or ())
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        self.tokens = {}  # (host, scope) -> Token
        self.basic = {}  # host -> True when the host answered with a Basic challenge
        self.schemes = {}  # host -> "https" | "http"
        self.stats = {"requests": 0, "retries": 0, "token_requests": 0, "bytes": 0}
        self.lock = threading.Lock()  # guards tokens across download threads

    # -- plumbing -------------------------------------------------------------
    @property
    def session(self):
        """requests sessions are not thread-safe: parallel layer downloads get one each."""
        if self._session is not None:
            return self._session
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def _verify(self):
        if not self.tls_verify:
            return False
        return self.ca_path or True

    def _creds(self, ref):
        if self.credentials:
            return self.credentials
        if self.credentials_for is not None:
            return self.credentials_for(ref.domain, ref.path)
        return Credentials()

    def _hosts(self, ref):
        """API hosts to try: Docker Hub mirrors first, for docker.io references."""
        if ref.domain == DOCKER_HUB and self.mirrors:
            return list(self.mirrors) + [ref.api_host]
        return [ref.api_host]

    def _url(self, host, path):
        if "://" in host:  # a mirror given with its scheme
            return host.rstrip("/") + path
        scheme = self.schemes.get(host, "https")
        return "%s://%s%s" % (scheme, host, path)

    def _send(self, method, url, headers, stream=False, allow_redirects=True):
        self.stats["requests"] += 1
        return self.session.request(method, url, headers=headers, stream=stream, timeout=self.timeout,
                                    verify=self._verify(), allow_redirects=allow_redirects)

    def _retry_refused(self, refused):
        """After the ``refused``-th refused connection: wait briefly and say to try again, or False when done.

        Nothing listens there; a registry that is (re)starting gets a few short tries, bounded in total
        (REFUSED_RETRY_DELAYS), not the backoff meant for an overloaded one.
        """
        if refused >= min(self.retries, len(REFUSED_RETRY_DELAYS)):
            return False
        self.stats["retries"] += 1
        self.sleep(REFUSED_RETRY_DELAYS[refused])
        return True

    def _wait(self, attempt, resp=None):
        delay = None
        if resp is not None:
            delay = retry_after_seconds(resp.headers.get("Retry-After"), self.clock())
        if delay is None:
            delay = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
        self.stats["retries"] += 1
        self.sleep(min(delay, MAX_RETRY_AFTER))

    def request(self, method, ref, path, host, accept=None, stream=False, extra_headers=None):
        """One API request with auth, scheme fallback and retries; returns the final response."""
        headers = dict(extra_headers or {})
        if accept:
            headers["Accept"] = accept
        scope = "repository:%s:pull" % ref.path
        refreshed = False
        attempt = refused = 0
        while True:
            url = self._url(host, path)
            self._authorize(headers, host, scope, ref)
            try:
                resp = self._send(method, url, headers, stream=stream)
            except SSLError as exc:
                if not self.tls_verify and self.schemes.get(host) is None and "://" not in host:
                    self.schemes[host] = "http"  # tls_verify=false also allows plain HTTP
                    continue
                raise RegistryError(self._tls_failure(host, url, exc))
            except (RequestsConnectionError, Timeout) as exc:
                if (not self.tls_verify and self.schemes.get(host) is None and "://" not in host
                        and url.startswith("https://")):
                    self.schemes[host] = "http"
                    continue
                if connection_refused(exc):
                    if self._retry_refused(refused):
                        refused += 1
                        continue
                    raise RegistryError("registry %s refused the connection%s: nothing listens there; check the "
                                        "registry's host and port (in the image reference or registry_mirrors) and "
                                        "that the registry runs" % (host_port(url)[0], _tries(refused)))
                if attempt < self.retries and not name_unresolvable(exc):
                    self._wait(attempt)
                    attempt += 1
                    continue
                raise RegistryError("cannot reach registry %s: %s" % (host_port(url)[0], transport_cause(exc)))
            if self.schemes.get(host) is None and "://" not in host:
                self.schemes[host] = "https" if url.startswith("https://") else "http"
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                if self._challenge(resp, host, scope, ref):
                    resp.close()
                    continue
            if resp.status_code in RETRY_STATUS and attempt < self.retries:
                self._wait(attempt, resp)
                resp.close()
                attempt += 1
                continue
            return resp

    def _tls_failure(self, host, url, exc):
        """The message for a failed TLS handshake: a port that answers plain HTTP, or a certificate problem."""
        where, hostname, port = host_port(url)
        if looks_like_not_tls(exc):
            if answers_plain_http(hostname, port, min(self.timeout, PROBE_TIMEOUT)):
                if "://" in host:
                    how = "write the mirror as http://%s in registry_mirrors to use it over plain HTTP" % (
                        host.split("://", 1)[1])
                elif not self.tls_verify:  # it answered HTTPS earlier in this run
                    how = "check the registry's host and port"
                else:
                    how = ("set registry_tls_verify: false to pull from it over plain HTTP (only for a registry "
                           "you trust, such as a local test registry)")
                return "registry %s: this port answers plain HTTP, not HTTPS; %s" % (where, how)
            return ("registry %s: the answer is not TLS (%s); check the registry's host and port"
                    % (where, transport_cause(exc)))
        return ("TLS error talking to %s: %s (set registry_ca_path for a private CA, or registry_tls_verify: false "
                "to skip verification)" % (host, transport_cause(exc)))

    def _authorize(self, headers, host, scope, ref):
        headers.pop("Authorization", None)
        with self.lock:
            token = self.tokens.get((host, scope))
            if token is not None and token.expires_at <= self.clock():
                self._fetch_token(host, scope, ref, token.challenge)
                token = self.tokens.get((host, scope))
        if token is not None:
            headers["Authorization"] = "Bearer " + token.value
        elif self.basic.get(host):
            creds = self._creds(ref)
            if creds.username:
                pair = ("%s:%s" % (creds.username, creds.password or "")).encode("utf-8")
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")

    def _challenge(self, resp, host, scope, ref):
        """React to a 401: returns True when the request should be retried."""
        scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate"))
        creds = self._creds(ref)
        if scheme == "basic":
            if not creds.username or self.basic.get(host):
                return False
            self.basic[host] = True
            return True
        if scheme == "bearer" and params.get("realm"):
            params.setdefault("scope", scope)
            with self.lock:
                self._fetch_token(host, scope, ref, params)
            return True
        return False

    def _fetch_token(self, host, scope, ref, challenge):
        creds = self._creds(ref)
        query = {"scope": challenge.get("scope") or scope}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        auth = None
        attempt = refused = 0
        while True:
            self.stats["token_requests"] += 1
            try:
                if creds.identity_token:
                    form = dict(query, grant_type="refresh_token", refresh_token=creds.identity_token,
                                client_id=USER_AGENT)
                    resp = self.session.post(challenge["realm"], data=form, timeout=self.timeout,
                                             verify=self._verify())
                else:
                    if creds.username:
                        auth = (creds.username, creds.password or "")
                    resp = self.session.get(challenge["realm"], params=dict(query, client_id=USER_AGENT),
                                            auth=auth, timeout=self.timeout, verify=self._verify())
            except (RequestsConnectionError, Timeout) as exc:
                if connection_refused(exc):
                    if self._retry_refused(refused):
                        refused += 1
                        continue
                    raise AuthError("the token service %s for %s: %s refused the connection%s"
                                    % (challenge["realm"], host, host_port(challenge["realm"])[0], _tries(refused)))
                if attempt < self.retries and not name_unresolvable(exc):
                    self._wait(attempt)
                    attempt += 1
                    continue
                raise AuthError("cannot reach the token service %s for %s: %s"
                                % (challenge["realm"], host, transport_cause(exc)))
            if resp.status_code in RETRY_STATUS and attempt < self.retries:
                self._wait(attempt, resp)
                attempt += 1
                continue
            break
        if resp.status_code in (401, 403):
            raise AuthError("the token service %s refused %s (HTTP %d: %s): %s"
                            % (challenge["realm"], "the credentials" if creds else "anonymous access",
                               resp.status_code, _registry_message(resp),
                               "check registry_username/registry_password" if creds else
                               "authentication required: set registry_username/registry_password or auth_file"),
                            status=resp.status_code)
        if resp.status_code != 200:
            raise AuthError("the token service %s answered HTTP %d: %s"
                            % (challenge["realm"], resp.status_code, _registry_message(resp)), status=resp.status_code)
        try:
            body = resp.json()
        except ValueError:
            raise AuthError("the token service %s did not answer JSON" % challenge["realm"])
        value = body.get("token") or body.get("access_token")
        if not value:
            raise AuthError("the token service %s answered without a token" % challenge["realm"])
        try:
            lifetime = int(body.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60
        # renew a little early so a token never expires in flight
        self.tokens[(host, scope)] = Token(value, self.clock() + max(lifetime - 10, lifetime * 0.9), challenge)

    def _error(self, resp, ref, what):
        message = _registry_message(resp)
        status = resp.status_code
        if status == 401:
            creds = self._creds(ref)
            hint = ("the registry refused the credentials: check registry_username/registry_password"
                    if creds else "authentication required: set registry_username/registry_password or auth_file")
            return AuthError("%s: %s: the registry answered HTTP 401 (%s); %s" % (ref, what, message, hint),
                             status=status)
        if status == 403:
            return AuthError("%s: %s: the registry answered HTTP 403 (%s); the account may lack pull access"
                             % (ref, what, message), status=status)
        if status == 404:
            return RegistryError("%s: %s not found: the registry answered HTTP 404 (%s); check the repository "
                                 "name, tag or digest" % (ref, what, message), status=status)
        return RegistryError("%s: %s: the registry answered HTTP %d (%s)" % (ref, what, status, message),
                             status=status)

    # -- API ------------------------------------------------------------------
    def get_manifest(self, ref, lookup, limit=media.MAX_MANIFEST_BYTES):
        """Fetch a manifest or index by tag or digest.

        Returns ``(body, media_type, header_digest)``; the caller verifies.
        """
        last_error = None
        for host in self._hosts(ref):
            try:
                resp = self.request("GET", ref, "/v2/%s/manifests/%s" % (ref.path, lookup), host,
                                    accept=media.ACCEPT_MANIFESTS, stream=True)
            except RegistryError as exc:
                last_error = exc
                continue
            try:
                if resp.status_code != 200:
                    last_error = self._error(resp, ref, "manifest %s" % lookup)
                    if host != ref.api_host and resp.status_code in (404, 401, 403) + RETRY_STATUS:
                        continue  # a mirror that lacks it: ask the next one / the hub
                    raise last_error
                body = self._read_limited(resp, limit, "%s: manifest %s" % (ref, lookup))
                media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
                return body, media_type, resp.headers.get("Docker-Content-Digest")
            finally:
                resp.close()
        raise last_error

    @staticmethod
    def _read_limited(resp, limit, what):
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise VerificationError("%s is %s bytes, more than the %d allowed" % (what, declared, limit))
        chunks = []
        total = 0
        for chunk in resp.iter_content(65536):
            total += len(chunk)
            if total > limit:
                raise VerificationError("%s is more than the %d bytes allowed" % (what, limit))
            chunks.append(chunk)
        return b"".join(chunks)

    def fetch_blob(self, ref, descriptor, writer, host=None):
        """Download a blob into ``writer`` (a BlobWriter), resuming when possible.

        The writer hashes as it goes; the caller verifies size and digest.
        """
        digest = descriptor["digest"]
        size = descriptor.get("size")
        hosts = [host] if host else self._hosts(ref)
        last_error = None
        for api_host in hosts:
            attempt = 0
            while True:
                headers = {}
                if writer.size:
                    headers["Range"] = "bytes=%d-" % writer.size
                resp = self.request("GET", ref, "/v2/%s/blobs/%s" % (ref.path, digest), api_host,
                                    stream=True, extra_headers=headers)
                try:
                    if resp.status_code == 416 and size is not None and writer.size >= size:
                        return  # already complete
                    if resp.status_code not in (200, 206):
                        last_error = self._error(resp, ref, "blob %s" % digest)
                        break
                    if resp.status_code == 200 and writer.size:
                        writer.reset()  # the server ignored Range: start over
                    try:
                        for chunk in resp.iter_content(CHUNK):
                            writer.write(chunk)  # a BlobWriter refuses bytes past the descriptor's size
                            self.stats["bytes"] += len(chunk)
                    except (ChunkedEncodingError, ContentDecodingError, RequestsConnectionError, Timeout) as exc:
                        last_error = RegistryError("%s: blob %s: connection broke after %d bytes: %s"
                                                   % (ref, digest, writer.size, exc))
                    else:
                        if size is None or writer.size >= size:
                            return
                        last_error = RegistryError("%s: blob %s: body ended after %d of %d bytes"
                                                   % (ref, digest, writer.size, size))
                finally:
                    resp.close()
                if attempt >= self.retries:
                    raise last_error
                self._wait(attempt)
                attempt += 1
        raise last_error
