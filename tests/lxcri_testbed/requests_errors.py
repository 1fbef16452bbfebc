"""Transport errors built the way requests and urllib3 nest them, for units of the clients' messages."""

import requests
import urllib3


def wrapped(reason, url="/api2/json/version", kind=requests.exceptions.ConnectionError):
    """A requests exception the way requests and urllib3 nest it: ConnectionError(MaxRetryError(reason))."""
    return kind(urllib3.exceptions.MaxRetryError(None, url, reason))


def refused_error(host="pve.example", port=8006, scheme="https", url="/api2/json/version"):
    """A refused connection the way requests reports it: ConnectionError(MaxRetryError(NewConnectionError))."""
    connection = "HTTPSConnection" if scheme == "https" else "HTTPConnection"

    class Conn:
        def __str__(self):
            return "%s(host='%s', port=%d)" % (connection, host, port)
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as cause:
        reason = urllib3.exceptions.NewConnectionError(
            Conn(), "Failed to establish a new connection: [Errno 111] Connection refused")
        reason.__cause__ = cause
    return wrapped(reason, url)
