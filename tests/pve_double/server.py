"""The HTTPS front of the Proxmox VE API test double: /api2/json, tickets, CSRF, API tokens.

Every request is routed and validated against the schema before the backend
sees it.  Faults for tests: ``server.fail_next(status)`` answers the next
request with that status; ``server.drop_next()`` closes the next connection
without an answer.
"""

import json
import os
import secrets
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlparse

from .backend import Backend
from .schema import ApiError, Schema

DEFAULT_PASSWORD = "lxcri-double"  # documented default for the loopback-only test double
WRITE_METHODS = ("POST", "PUT", "DELETE")


def parse_multipart(content_type, body, files, tmpdir):
    """Form fields of a multipart body; file parts are saved to temp files listed in ``files``."""
    import email.parser  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields = {}
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        payload = part.get_payload(decode=True)
        if filename is not None:
            fd, path = tempfile.mkstemp(prefix="pveupload-", dir=tmpdir)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            files[name] = (filename, path)
            fields[name] = filename
        else:
            fields[name] = payload.decode("utf-8")
    return fields


def discard(files):
    """Uploaded temp files of a refused request."""
    for dummy, path in files.values():
        if os.path.exists(path):
            os.unlink(path)


def self_signed(directory):
    key, cert = os.path.join(directory, "pve-double.key"), os.path.join(directory, "pve-double.crt")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "3650", "-subj", "/CN=pve-double", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Double:
    def __init__(self, root, mode="9.1", node="pve1", user="root@pam", password=DEFAULT_PASSWORD,
                 host="127.0.0.1", port=0, zfs_root=None):
        os.makedirs(root, exist_ok=True)
        self.schema = Schema(mode)
        self.backend = Backend(root, mode, node, zfs_root)
        self.user = user
        self.password = password
        self.tickets = {}  # ticket -> (user, csrf)
        self.tokens = {}  # "user@realm!id" -> {"secret": ..., "readonly": bool}
        self.faults = []
        self.lock = threading.Lock()
        self.requests = []
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        cert, key = self_signed(root)
        self.cert = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = self.server.server_address[:2]
        self.url = "https://%s:%d/api2/json" % (self.host, self.port)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_token(self, tokenid, secret=None, readonly=False):
        secret = secret or secrets.token_hex(16)
        self.tokens[tokenid] = {"secret": secret, "readonly": readonly}
        return secret

    def fail_next(self, status=500, message="injected failure"):
        with self.lock:
            self.faults.append(("status", status, message))

    def drop_next(self):
        with self.lock:
            self.faults.append(("drop", None, None))

    def _take_fault(self):
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    # -- auth --------------------------------------------------------------------
    def login(self, params):
        username, password = params.get("username", ""), params.get("password", "")
        if "@" not in username and params.get("realm"):
            username = "%s@%s" % (username, params["realm"])
        if username != self.user or password != self.password:
            raise ApiError(401, "authentication failure")
        ticket = "PVE:%s:%08X::%s" % (username, int(time.time()), secrets.token_hex(32))
        csrf = "%08X:%s" % (int(time.time()), secrets.token_hex(16))
        self.tickets[ticket] = (username, csrf)
        return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf, "cap": {}}

    def authenticate(self, method, headers):
        """The user, or ApiError(401/403)."""
        auth = headers.get("Authorization", "")
        if auth.startswith("PVEAPIToken="):
            ident, sep, secret = auth[len("PVEAPIToken="):].rpartition("=")
            token = self.tokens.get(ident.strip())
            if not sep or token is None or not secrets.compare_digest(token["secret"], secret.strip()):
                raise ApiError(401, "authentication failure")
            if token["readonly"] and method in WRITE_METHODS:
                raise ApiError(403, "Permission check failed")
            return ident.split("!", 1)[0]
        cookies = dict(part.strip().split("=", 1) for part in headers.get("Cookie", "").split(";") if "=" in part)
        ticket = unquote(cookies.get("PVEAuthCookie", ""))
        if ticket not in self.tickets:
            raise ApiError(401, "No ticket")
        user, csrf = self.tickets[ticket]
        if method in WRITE_METHODS and headers.get("CSRFPreventionToken") != csrf:
            raise ApiError(401, "Permission denied - invalid csrf token")
        return user

    # -- dispatch -------------------------------------------------------------------
    def dispatch(self, method, path, params, headers, files=None):
        template, info, path_params = self.schema.route(method, path)
        merged = dict(params)
        merged.update(path_params)
        if template == "/access/ticket" and method == "POST":
            return self.login(self.schema.validate(info, merged))
        user = self.authenticate(method, headers)
        typed = self.schema.validate(info, merged)
        b = self.backend
        handlers = {
            ("GET", "/version"): b.version,
            ("GET", "/nodes"): b.nodes,
            ("GET", "/nodes/{node}/status"): b.node_status,
            ("GET", "/cluster/nextid"): b.nextid,
            ("GET", "/cluster/resources"): b.resources,
            ("GET", "/nodes/{node}/lxc"): b.lxc_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/config"): b.config_get,
            ("PUT", "/nodes/{node}/lxc/{vmid}/config"): b.config_put,
            ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): b.status_current,
            ("GET", "/nodes/{node}/tasks/{upid}/status"): b.task_status,
            ("GET", "/nodes/{node}/storage"): b.storage_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"): b.snapshot_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/pending"): b.pending,
            ("POST", "/nodes/{node}/lxc/{vmid}/template"): lambda p: b.lxc_template(p, None),
            ("GET", "/nodes/{node}/storage/{storage}/content"): b.storage_content,
            ("GET", "/nodes/{node}/tasks/{upid}/log"): b.task_log,
        }
        with_user = {
            ("POST", "/nodes/{node}/lxc"): b.lxc_create,
            ("DELETE", "/nodes/{node}/lxc/{vmid}"): b.lxc_delete,
            ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"): b.storage_content_delete,
            ("POST", "/nodes/{node}/lxc/{vmid}/status/start"): b.lxc_start,
            ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"): b.lxc_reboot,
            ("POST", "/nodes/{node}/lxc/{vmid}/clone"): b.lxc_clone,
            ("POST", "/nodes/{node}/storage/{storage}/oci-registry-pull"): b.oci_registry_pull,
            ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"): b.snapshot_create,
            ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"): b.snapshot_delete,
            ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback"): b.snapshot_rollback,
            ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"): b.lxc_stop,
            ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"): b.lxc_shutdown,
            ("PUT", "/nodes/{node}/lxc/{vmid}/resize"): b.lxc_resize,
        }
        key = (method, template)
        if key == ("POST", "/nodes/{node}/storage/{storage}/upload"):
            return b.storage_upload(typed, user, files or {})
        if key in handlers:
            return handlers[key](typed)
        if key in with_user:
            return with_user[key](typed, user)
        raise ApiError(501, "Method '%s %s' not implemented by the test double" % (method, path))

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status, body.get("message") if status != 200 else None)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                url = urlparse(self.path)
                params = dict(parse_qsl(url.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                files = {}
                ctype = self.headers.get("Content-Type") or ""
                if length and ctype.startswith("multipart/form-data"):
                    params.update(parse_multipart(ctype, self.rfile.read(length), files, double.backend.root))
                elif length:
                    raw = self.rfile.read(length).decode("utf-8")
                    if "json" in ctype:
                        params.update(dict((k, v if not isinstance(v, bool) else int(v))
                                           for k, v in json.loads(raw or "{}").items()))
                    else:
                        params.update(dict(parse_qsl(raw, keep_blank_values=True)))
                double.requests.append((self.command, url.path, dict(params)))
                fault = double._take_fault()
                if fault and fault[0] == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault:
                    return self._answer(fault[1], {"data": None, "message": fault[2]})
                if not url.path.startswith("/api2/json/"):
                    return self._answer(404, {"data": None, "message": "Not found"})
                try:
                    data = double.dispatch(self.command, url.path[len("/api2/json"):], params, self.headers, files)
                except ApiError as exc:
                    discard(files)
                    return self._answer(exc.status, exc.body())
                except Exception as exc:  # pylint: disable=broad-except
                    discard(files)
                    return self._answer(500, {"data": None, "message": str(exc)})
                return self._answer(200, {"data": data})

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        return Handler
