"""A fault-injecting HTTP proxy in front of a real registry (test bed).

Faults are queued per request path pattern and consumed in order:

* ``status``   answer with a status (and headers, e.g. Retry-After) instead of forwarding
* ``reset``    forward, but reset the connection after ``after`` body bytes
* ``truncate`` forward with the full Content-Length, but close after ``after`` bytes
* ``corrupt``  forward the body with one byte flipped
* ``redirect`` answer 307 to this proxy's ``/_blob`` path on another host name
                (``localhost`` instead of ``127.0.0.1``), which serves the body
* ``slow``     forward at ``rate`` bytes per second
* ``ignore-range`` forward without the Range header (a server that cannot resume)

``require_token = True`` puts a bearer-token gate in front of everything:
requests without a token get a 401 challenge naming this proxy's ``/token``.
Every request is logged in ``log`` as a dict.
"""

import http.client
import re
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARD_REQUEST = ("Accept", "Range", "Authorization", "User-Agent")
FORWARD_RESPONSE = ("Content-Type", "Content-Length", "Docker-Content-Digest", "Content-Range",
                    "Accept-Ranges", "WWW-Authenticate", "Docker-Distribution-Api-Version", "Etag")


class Fault:
    def __init__(self, kind, pattern, times=1, **options):
        self.kind = kind
        self.pattern = re.compile(pattern)
        self.times = times
        self.options = options


class FaultProxy:
    def __init__(self, upstream):
        self.upstream = upstream  # "127.0.0.1:45000"
        self.faults = []
        self.log = []
        self.lock = threading.Lock()
        self.require_token = False
        self.tokens = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, kind, pattern, times=1, **options):
        with self.lock:
            self.faults.append(Fault(kind, pattern, times, **options))

    def clear(self):
        with self.lock:
            self.faults = []
            self.log = []

    def take(self, path):
        with self.lock:
            for fault in self.faults:
                if fault.times and fault.pattern.search(path):
                    fault.times -= 1
                    return fault
        return None

    def requests(self, method="GET", pattern="", status=None):
        with self.lock:
            return [e for e in self.log if e["method"] == method and re.search(pattern, e["path"])
                    and (status is None or e["status"] == status)]

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _record(self, status, fault=None):
                with proxy.lock:
                    proxy.log.append({"method": self.command, "path": self.path, "status": status,
                                      "range": self.headers.get("Range"), "fault": fault,
                                      "authorization": self.headers.get("Authorization"),
                                      "host": self.headers.get("Host")})

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                self.do_GET()

            def do_GET(self):  # noqa: N802
                if self.path.startswith("/token"):
                    token = uuid.uuid4().hex
                    proxy.tokens.add(token)
                    self._record(200, "token")
                    body = ('{"token": "%s", "expires_in": 300}' % token).encode()
                    return self._reply(200, body, {"Content-Type": "application/json"})
                upstream_path = self.path
                if self.path.startswith("/_blob"):
                    upstream_path = self.path[len("/_blob"):]
                elif proxy.require_token and self.path.startswith("/v2/"):
                    auth = self.headers.get("Authorization", "")
                    if not (auth.startswith("Bearer ") and auth[7:] in proxy.tokens):
                        self._record(401, "token-gate")
                        challenge = 'Bearer realm="http://%s/token",service="fault-proxy"' % proxy.host
                        return self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}',
                                           {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
                fault = None if self.path.startswith("/_blob") else proxy.take(self.path)
                kind = fault.kind if fault else None
                if kind == "status":
                    self._record(fault.options["status"], kind)
                    return self._reply(fault.options["status"], fault.options.get("body", b"{}"),
                                       fault.options.get("headers"))
                if kind == "redirect":
                    self._record(307, kind)
                    location = "http://localhost:%d/_blob%s" % (proxy.port, self.path)
                    return self._reply(307, b"", {"Location": location})
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = dict((k, self.headers[k]) for k in FORWARD_REQUEST if self.headers.get(k))
                if proxy.require_token or self.path.startswith("/_blob"):
                    headers.pop("Authorization", None)
                if kind == "ignore-range":
                    headers.pop("Range", None)
                conn.request(self.command, upstream_path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self._record(resp.status, kind)
                if kind == "corrupt" and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(resp.status)
                for key in FORWARD_RESPONSE:
                    if resp.getheader(key) and key != "Content-Length":
                        self.send_header(key, resp.getheader(key))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return None
                if kind in ("reset", "truncate"):
                    after = fault.options.get("after", len(body) // 2)
                    self.wfile.write(body[:after])
                    self.wfile.flush()
                    if kind == "reset":
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    self.connection.close()
                    return None
                if kind == "slow":
                    rate = fault.options.get("rate", 1024 * 1024)
                    step = max(1, rate // 20)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(step / float(rate))
                    return None
                self.wfile.write(body)
                return None

        return Handler
