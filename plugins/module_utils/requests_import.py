# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional ``requests`` import, shared by the Proxmox VE API client and the registry client.

Both clients call ``require_requests(their error class)`` before talking
HTTP, so a missing ``requests`` is reported one way everywhere: that error
class, ``kind`` ``missing_library``, the message ``missing_requests_message()``.
Without requests the exception names stand for a class nothing raises, so
importing them (and naming them in ``except``) still works.

Also what both clients need to explain a failed connection in words: a
refused connection, a name that does not resolve, a port that answers plain
HTTP where HTTPS was expected (``transport_cause``, ``connection_refused``,
``looks_like_not_tls``, ``answers_plain_http``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import platform
import re
import socket
import sys

__all__ = ("HAS_REQUESTS", "REQUESTS_IMPORT_ERROR", "requests", "RequestsConnectionError", "ChunkedEncodingError",
           "ContentDecodingError", "SSLError", "Timeout", "answers_plain_http", "connection_refused",
           "exception_chain", "looks_like_not_tls", "missing_requests_message", "name_unresolvable",
           "require_requests", "transport_cause")

try:
    import requests
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ChunkedEncodingError, ContentDecodingError, SSLError, Timeout
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised on hosts without requests
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = _exc

    def _stand_in(name):
        return type(name, (Exception,), {"__doc__": "Stands in for requests.exceptions.%s; never raised." % name})

    RequestsConnectionError, ChunkedEncodingError, ContentDecodingError, SSLError, Timeout = (
        _stand_in(name) for name in ("ConnectionError", "ChunkedEncodingError", "ContentDecodingError", "SSLError",
                                     "Timeout"))


MISSING_LIBRARY = "missing_library"  # the ``kind`` of the error require_requests raises


def missing_requests_message():
    """What to tell the user when ``requests`` does not import: where it is missing, how to get it."""
    return ("the Python library 'requests' is required on %s (Python %s) and does not import (%s): install "
            "python3-requests (Debian, Proxmox VE) or pip install requests for that Python"
            % (platform.node() or "this host", sys.executable or "?", REQUESTS_IMPORT_ERROR))


def require_requests(error_class):
    """Raise ``error_class`` (an engine error class) with kind ``missing_library`` unless ``requests`` imports."""
    if not HAS_REQUESTS:
        error = error_class(missing_requests_message())
        error.kind = MISSING_LIBRARY
        raise error


# -- what a failed connection means, for messages ------------------------------------------------------------
# Shared by both clients: urllib3 nests the real cause (a refused connection, a failed name lookup) two or three
# exceptions deep and wraps it in "HTTPSConnectionPool(...): Max retries exceeded with url: ..." text that says
# nothing to a user.

# What OpenSSL says when the bytes it got back are not a TLS record: the peer speaks something else (OpenSSL 1.1
# and 3.0 say "wrong version number", 3.2 and later "record layer failure").
NOT_TLS_MARKERS = ("wrong version number", "wrong_version_number", "record layer failure", "record_layer_failure",
                   "unknown protocol", "packet length too long")
_WRAPPER_PREFIX = re.compile(r"^(?:<[^>]*>|\w+\((?:host|pool)=[^)]*\)):\s*")
_FAILED_PREFIX = re.compile(r"^Failed to establish a new connection:\s*")


def exception_chain(exc, limit=12):
    """``exc`` and what it wraps (``args[0]``, urllib3's ``reason``, ``__cause__``, ``__context__``), outermost first."""
    seen, queue, out = set(), [exc], []
    while queue and len(out) < limit:
        item = queue.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        out.append(item)
        queue.extend([item.args[0] if item.args else None, getattr(item, "reason", None),
                      item.__cause__, item.__context__])
    return out


def connection_refused(exc):
    """True when the connection was refused (nothing listens on the port, or a firewall rejects it)."""
    for item in exception_chain(exc):
        if isinstance(item, ConnectionRefusedError) or getattr(item, "errno", None) == errno.ECONNREFUSED:
            return True
    return "connection refused" in str(exc).lower()


def name_unresolvable(exc):
    """True when the host name could not be resolved."""
    if any(isinstance(item, socket.gaierror) for item in exception_chain(exc)):
        return True
    text = str(exc).lower()
    return "failed to resolve" in text or "name or service not known" in text or "nodename nor servname" in text


def transport_cause(exc):
    """The useful words of a requests/urllib3 exception, without the connection pool wrapper text."""
    if connection_refused(exc):
        return "connection refused"
    for item in exception_chain(exc):
        if isinstance(item, socket.gaierror):
            return "cannot resolve the host name (%s)" % (item.strerror or item)
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    text = str(reason if reason is not None else exc)
    return _FAILED_PREFIX.sub("", _WRAPPER_PREFIX.sub("", text)) or text


def looks_like_not_tls(exc):
    """True when a TLS failure reads as "the peer's answer was not TLS" (rather than a certificate problem)."""
    text = str(exc).lower()
    return any(marker in text for marker in NOT_TLS_MARKERS)


def answers_plain_http(host, port, timeout=3.0):
    """True when ``host:port`` answers a plain HTTP request with an HTTP status line.

    One short ``HEAD /`` over a plain TCP connection, used only to explain a failed TLS handshake.  Any error
    (refused, reset, silence within ``timeout``) means "not shown to be plain HTTP".
    """
    netloc = "[%s]" % host if ":" in host and not host.startswith("[") else host
    request = ("HEAD / HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: lxcri.proxmox\r\nConnection: close\r\n\r\n"
               % (netloc, int(port))).encode("ascii")
    try:
        with contextlib.closing(socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)) as sock:
            sock.sendall(request)
            answer = b""
            while len(answer) < 5:
                piece = sock.recv(5 - len(answer))
                if not piece:
                    break
                answer += piece
    except (OSError, ValueError, UnicodeError):
        return False
    return answer == b"HTTP/"
