"""The HTTPS front of the Proxmox VE API test double: /api2/json, tickets, CSRF, API tokens.

Every request is routed and validated against the schema before the backend
sees it, and every successful result is checked against the endpoint's
``returns`` schema: one that does not conform is answered with a 500 naming
the endpoint and the field, and kept in ``Double.response_errors``.
Multipart uploads are parsed as they stream in, file parts written straight
to disk.  Faults for tests: ``server.fail_next(status)`` answers the next
request with that status; ``server.drop_next()`` closes the next connection
without an answer.
"""

import email.message
import email.parser
import email.utils
import json
import os
import re
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlparse

from .backend import DEFAULT_RESOURCES_LAG, Backend
from .multinode import Cluster
from .schema import ApiError, Response, Schema, check_returns

DEFAULT_PASSWORD = "lxcri-double"  # documented default for the loopback-only test double
WRITE_METHODS = ("POST", "PUT", "DELETE")


CHUNK_SIZE = 64 * 1024  # multipart bodies are read in chunks of this size
MAX_PART_HEADERS = 16 * 1024
MAX_FIELD = 1024 * 1024  # a form field (not a file) is kept in memory: bounded


class MultipartError(ValueError):
    """A malformed multipart/form-data body."""


def multipart_boundary(content_type):
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise MultipartError("no usable boundary in the Content-Type header")
    return boundary.encode("latin-1")


def _part_name(head):
    """(name, filename or None) from one part's header block."""
    headers = email.parser.Parser().parsestr(head.decode("utf-8", "replace") + "\r\n\r\n", headersonly=True)
    name = headers.get_param("name", header="content-disposition")
    filename = headers.get_param("filename", header="content-disposition")
    if name is None:
        raise MultipartError("a part has no Content-Disposition name")
    name = email.utils.collapse_rfc2231_value(name)
    return name, (None if filename is None else email.utils.collapse_rfc2231_value(filename))


def parse_multipart(content_type, stream, length, files, tmpdir, chunk_size=CHUNK_SIZE):
    """Form fields of a multipart body: ``length`` bytes read from ``stream`` in chunks of ``chunk_size``.

    The boundary is scanned for chunk by chunk (it may straddle two chunks), and
    file parts are written straight to temp files, listed in ``files`` as
    name -> (filename, path) as soon as they are opened so the caller can
    discard them; memory stays bounded by the chunk size (plus MAX_FIELD for
    form fields), whatever the upload's size.  MultipartError if malformed.
    """
    delimiter = b"\r\n--" + multipart_boundary(content_type)
    keep = len(delimiter) - 1  # bytes held back: the start of a delimiter the next chunk completes
    state = {"buf": b"\r\n", "remaining": length}  # the first delimiter has no CRLF of its own

    def fill():
        if state["remaining"] <= 0:
            raise MultipartError("the body ends before the closing boundary")
        chunk = stream.read(min(chunk_size, state["remaining"]))
        if not chunk:
            raise MultipartError("the body ends after %d of %d bytes" % (length - state["remaining"], length))
        state["remaining"] -= len(chunk)
        state["buf"] += chunk

    fields = {}
    sink, name, phase = None, None, "preamble"
    try:
        while phase != "done":
            buf = state["buf"]
            if phase in ("preamble", "body"):
                at = buf.find(delimiter)
                if at < 0:
                    cut = max(len(buf) - keep, 0)
                    if phase == "body" and cut:
                        _write(sink, buf[:cut])
                    state["buf"] = buf[cut:]
                    fill()
                    continue
                if phase == "body":
                    _write(sink, buf[:at])
                    if isinstance(sink, bytearray):
                        try:
                            fields[name] = bytes(sink).decode("utf-8")
                        except UnicodeDecodeError:
                            raise MultipartError("form field '%s' is not UTF-8" % name)
                    else:
                        sink.close()
                    sink = None
                state["buf"] = buf[at + len(delimiter):]
                phase = "boundary"
            elif phase == "boundary":  # "--" closes the body, (whitespace) CRLF opens the next part
                end = buf.find(b"\r\n")
                if buf.startswith(b"--"):
                    phase = "done"
                elif end < 0:
                    if len(buf) > 1024:
                        raise MultipartError("no line end after a boundary")
                    fill()
                elif buf[:end].strip(b" \t"):
                    raise MultipartError("unexpected data after a boundary")
                else:
                    state["buf"] = buf[end + 2:]
                    phase = "headers"
            else:  # headers
                end = -2 if buf.startswith(b"\r\n") else buf.find(b"\r\n\r\n")
                if end == -1:
                    if len(buf) > MAX_PART_HEADERS:
                        raise MultipartError("part headers longer than %d bytes" % MAX_PART_HEADERS)
                    fill()
                    continue
                name, filename = _part_name(buf[:max(end, 0)])
                state["buf"] = buf[end + 4:]
                if name in fields or name in files:
                    raise MultipartError("part '%s' appears twice" % name)
                if filename is None:
                    sink = bytearray()
                else:
                    fd, path = tempfile.mkstemp(prefix="pveupload-", dir=tmpdir)
                    files[name] = (filename, path)
                    fields[name] = filename
                    sink = os.fdopen(fd, "wb")
                phase = "body"
        while state["remaining"] > 0:  # the epilogue: read, never kept
            chunk = stream.read(min(chunk_size, state["remaining"]))
            if not chunk:
                break
            state["remaining"] -= len(chunk)
    finally:
        if sink is not None and not isinstance(sink, bytearray):
            sink.close()
    return fields


def _write(sink, data):
    if isinstance(sink, bytearray):
        if len(sink) + len(data) > MAX_FIELD:
            raise MultipartError("a form field is longer than %d bytes" % MAX_FIELD)
        sink.extend(data)
    else:
        sink.write(data)


def auth_value(header, key):
    """``key=value`` (or ``key value``) at the start of ``header`` or after a space, up to a ``;``, URL-decoded."""
    match = re.search(r"(?:^|\s)%s(?:=| )([^;]*)" % re.escape(key), header or "")
    return unquote(match.group(1)) if match and match.group(1) else None


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


def _without_user(handler):
    """A (typed, user) route for a handler of the typed parameters alone."""
    return lambda typed, user: handler(typed)


def urlencoded(text):
    """pve-http-server PVE/APIServer/AnyEvent.pm ``decode_urlencoded``: ``split(/=/, $kv)`` drops a trailing empty
    field, so ``env=`` (or a bare ``env``) decodes to undef; JSONSchema's validate then skips the undefined value of
    an optional parameter (a required one is "missing").  None stands for undef here."""
    return dict((key, value if value != "" else None) for key, value in parse_qsl(text, keep_blank_values=True))


class Double:
    def __init__(self, root, mode="9.1", node="pve1", user="root@pam", password=DEFAULT_PASSWORD,
                 host="127.0.0.1", port=0, zfs_root=None, vmid_range=(100, 999999999), dir_storages=None,
                 resources_lag=None, lxc=None, importer=None, nodes=None, node_modes=None):
        """``nodes``: the cluster's node names, the API host first (default: ``node`` alone), each a Backend of its
        own under ``<root>/nodes/<name>`` with its ``local-zfs`` on ``<zfs_root>/<name>`` and the cluster's
        ``shared`` dir storage (multinode.py); ``node_modes``: {name: mode} for nodes that run another version
        than ``mode`` (a cluster mid-upgrade); ``resources_lag``: seconds between pvestatd's broadcasts that /cluster/resources serves (default
        $PVE_DOUBLE_RESOURCES_LAG, else 10 as on a real node; 0 reads live); ``lxc``: the LXC the node runs
        ("6.0": lxc-pve 6.0.5, "5.0": Debian's 5.0.2; default $PVE_DOUBLE_LXC, else by mode: 6.0 on 9.1, 5.0
        on 8); ``importer``: a 9.1 node's pve-container OCI import, "6.1" or "6.0" (see Backend)."""
        os.makedirs(root, exist_ok=True)
        self.schema = Schema(mode)
        if resources_lag is None:
            resources_lag = float(os.environ.get("PVE_DOUBLE_RESOURCES_LAG", DEFAULT_RESOURCES_LAG))
        nodes = list(nodes or [node])
        node_modes = dict(node_modes or {})
        if len(nodes) == 1:
            backends = {nodes[0]: Backend(root, node_modes.get(nodes[0], mode), nodes[0], zfs_root,
                                          vmid_range=vmid_range, dir_storages=dir_storages,
                                          resources_lag=resources_lag, lxc=lxc, importer=importer)}
        else:
            shared = os.path.join(root, "storage", "shared")
            backends = {}
            for name in nodes:
                node_mode = node_modes.get(name, mode)
                backends[name] = Backend(os.path.join(root, "nodes", name), node_mode, name,
                                         "%s/%s" % (zfs_root, name) if zfs_root else None, vmid_range=vmid_range,
                                         dir_storages=dir_storages if name == nodes[0] else None,
                                         resources_lag=resources_lag, lxc=lxc if node_mode == mode else None,
                                         importer=importer, shared=shared)
        self.cluster = Cluster(backends)
        self.backends = self.cluster.backends
        self.backend = self.backends[nodes[0]]  # the API host
        self.user = user
        self.password = password
        self.tickets = {}  # ticket -> (user, csrf)
        self.tokens = {}  # "user@realm!id" -> {"secret": ..., "readonly": bool}
        self.faults = []
        self.hooks = []
        self.lock = threading.Lock()
        self.requests = []
        self.response_errors = []  # (method, path template, problems): results that break the schema's returns
        self.served = set()  # (method, path template) answered with 200: which endpoints a test exercised
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
        for backend in self.backends.values():
            backend.start_pvestatd()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        for backend in self.backends.values():
            backend.stop_pvestatd()
        if self.thread is not None:  # shutdown() waits for serve_forever, which never ran otherwise
            self.server.shutdown()
            self.thread = None
        self.server.server_close()

    HALTING_INIT = "#!/bin/sh\ntrap 'exit 0' PWR TERM\n/bin/sleep 300 &\nwait\n"  # honours the halt signal
    STUBBORN_INIT = "#!/bin/sh\nexec /bin/sleep 300\n"  # sleep as PID 1 ignores it, as many apps do

    def add_busybox_template(self, name, workdir, init=HALTING_INIT, files=None, owners=None, storage="local",
                             node=None):
        """A busybox template ``<storage>:vztmpl/<name>`` (sh, sleep; /sbin/init is ``init``; ``files``: path ->
        text; ``owners``: path -> (uid, gid, mode) of files or directories, created as directories when missing)
        on ``node``'s storage (default: the API host's)."""
        rootfs = os.path.join(str(workdir), "rootfs-" + name.split(".")[0])
        for sub in ("bin", "sbin", "dev", "tmp"):
            os.makedirs(os.path.join(rootfs, sub))
        subprocess.run(["cp", "/bin/busybox", os.path.join(rootfs, "bin", "busybox")], check=True)
        for applet in ("sh", "sleep"):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        for path, text in dict(files or {}, **{"sbin/init": init}).items():
            target = os.path.join(rootfs, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as handle:
                handle.write(text)
        os.chmod(os.path.join(rootfs, "sbin", "init"), 0o755)
        for path, (uid, gid, mode) in sorted((owners or {}).items()):
            target = os.path.join(rootfs, path)
            if not os.path.exists(target):
                os.makedirs(target)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
        backend = self.backends[node or self.backend.node]
        template = os.path.join(backend.storages[storage]["path"], "template", "cache", name)
        subprocess.run(["tar", "--zstd", "-cf", template, "-C", rootfs, "."], check=True)
        return "%s:vztmpl/%s" % (storage, name)

    def kill_containers(self):
        """Stop every container at once (test teardown)."""
        for backend in self.backends.values():
            for ct in list(backend.containers.values()):
                backend._lxc(ct, "lxc-stop", "-k")  # pylint: disable=protected-access

    def state(self):
        """The whole container state (configs and snapshot names), to show that check mode changes nothing."""
        every = {}
        for backend in self.backends.values():
            every.update((vmid, [ct.config, list(ct.snapshots)] + ([backend.node] if len(self.backends) > 1 else []))
                         for vmid, ct in backend.containers.items())
        return json.dumps(dict(sorted(every.items())), sort_keys=True, default=str)

    def owner(self, vmid):
        """The Backend (node) that has CT ``vmid``."""
        return self.backends[self.cluster.owner(vmid)]

    def running(self, vmid):
        backend = self.owner(vmid)
        return backend.lxc_state(backend.containers[vmid])[0] == "running"

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

    def before_next(self, method, template, action):
        """Run ``action()`` just before the next ``METHOD template`` request is served (a concurrent edit by
        another client between a caller's read and its write, say); ``template`` as the schema spells it."""
        with self.lock:
            self.hooks.append((method, template, action))

    def _take_hook(self, method, template):
        with self.lock:
            for hook in self.hooks:
                if hook[:2] == (method, template):
                    self.hooks.remove(hook)
                    return hook[2]
        return None

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
        """The user, or ApiError(401/403); credentials are looked for as pve-http-server does.

        A ticket in the PVEAuthCookie cookie comes first, then one in the
        Authorization header; only without a ticket is an API token read from
        ``Authorization: PVEAPIToken=user@realm!id=secret``.  Both values are
        URL-decoded (PVE::APIServer::Formatter::extract_auth_value), so the
        encoded form PVE's own proxy sends (``PVEAPIToken user%40pam%21id%3D...``)
        works too; the token id ends at the last ``=`` (verify_token).
        """
        auth = headers.get("Authorization", "")
        ticket = auth_value(headers.get("Cookie", ""), "PVEAuthCookie") or auth_value(auth, "PVEAuthCookie")
        if not ticket:
            api_token = auth_value(auth, "PVEAPIToken")
            if api_token:
                ident, sep, secret = api_token.rpartition("=")
                token = self.tokens.get(ident)
                if not sep or token is None or not secrets.compare_digest(token["secret"], secret):
                    raise ApiError(401, "authentication failure")
                if token["readonly"] and method in WRITE_METHODS:
                    raise ApiError(403, "Permission check failed")
                # the token id is the request's user (PVE::RPCEnvironment: an API token of root@pam is
                # root@pam!id, which checks like check_ct_modify_config_perm do not take for root@pam)
                return ident
        if ticket not in self.tickets:
            raise ApiError(401, "No ticket")
        user, csrf = self.tickets[ticket]
        if method in WRITE_METHODS and headers.get("CSRFPreventionToken") != csrf:
            raise ApiError(401, "Permission denied - invalid csrf token")
        return user

    # -- dispatch -------------------------------------------------------------------
    def dispatch(self, method, path, params, headers, files=None):
        """The result of one API call, checked against the endpoint's ``returns`` schema."""
        template, info, path_params = self.schema.route(method, path)
        hook = self._take_hook(method, template)
        if hook is not None:
            hook()
        try:
            data, info = self._dispatch(method, path, template, info, path_params, params, headers, files)
        finally:
            if method != "GET":  # a read changes nothing to write
                for backend in self.backends.values():
                    backend.sync_conf()  # pmxcfs: the config files follow every change the API makes
        body = data.data if isinstance(data, Response) else data
        problems = check_returns(info.get("returns"), body)
        if problems:
            self.response_errors.append((method, template, problems))
            raise ApiError(500, "the double's answer to %s %s breaks the schema's returns: %s"
                           % (method, template, "; ".join(problems[:5])))
        self.served.add((method, template))
        return data

    def _dispatch(self, method, path, template, info, path_params, params, headers, files):
        merged = dict(params)
        merged.update(path_params)
        if template == "/access/ticket" and method == "POST":
            return self.login(self.schema.validate(info, merged)), info
        user = self.authenticate(method, headers)
        backend = self.backend
        if path_params.get("node") is not None:
            # pve-http-server: the API host authenticates and proxies /nodes/X/... to node X (HTTP 595 when X
            # cannot be reached), where X's own API routes and verifies the parameters
            backend = self.cluster.backend_for(path_params["node"])
            if backend is not self.backend:
                template, info, path_params = backend.schema.route(method, path)
        typed = backend.schema.validate(info, merged)
        key = (method, template)
        if key != ("PUT", "/nodes/{node}/lxc/{vmid}/config"):
            typed = dict((k, v) for k, v in typed.items() if v is not None)  # an empty value is no value
        if key == ("POST", "/nodes/{node}/storage/{storage}/upload"):
            return backend.storage_upload(typed, user, files or {}), info
        route = self._routes(backend).get(key)
        if route is not None:
            return route(typed, user), info
        raise ApiError(501, "Method '%s %s' not implemented by the test double" % (method, path))

    def _routes(self, backend=None):
        """(method, path template) -> handler(typed parameters, user), for every endpoint the double serves;
        ``/nodes/{node}/...`` handled by ``backend`` (the node's), the rest by the API host and the cluster."""
        b = backend or self.backend
        cluster = self.cluster
        handlers = {
            ("GET", "/version"): self.backend.version,
            ("GET", "/nodes/{node}/version"): b.node_version,
            ("GET", "/nodes/{node}/apt/versions"): b.apt_versions,
            ("GET", "/nodes"): cluster.nodes,
            ("GET", "/nodes/{node}/status"): b.node_status,
            ("GET", "/cluster/nextid"): cluster.nextid,
            ("GET", "/cluster/resources"): cluster.resources,
            ("GET", "/cluster/status"): cluster.status,
            ("GET", "/cluster/ha/resources"): cluster.ha_resources,
            ("GET", "/nodes/{node}/lxc"): b.lxc_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/config"): b.config_get,
            ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): b.status_current,
            ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): b.lxc_interfaces,
            ("GET", "/nodes/{node}/tasks/{upid}/status"): b.task_status,
            ("GET", "/nodes/{node}/storage"): b.storage_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"): b.snapshot_list,
            ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"): b.snapshot_config,
            ("GET", "/nodes/{node}/lxc/{vmid}/pending"): b.pending,
            ("POST", "/nodes/{node}/lxc/{vmid}/template"): lambda p: b.lxc_template(p, None),
            ("GET", "/nodes/{node}/storage/{storage}/content"): b.storage_content,
            ("GET", "/nodes/{node}/tasks/{upid}/log"): b.task_log,
        }
        with_user = {
            ("POST", "/nodes/{node}/lxc"): b.lxc_create,
            ("PUT", "/nodes/{node}/lxc/{vmid}/config"): b.config_put,
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
            ("POST", "/nodes/{node}/lxc/{vmid}/move_volume"): b.move_volume,
            ("POST", "/nodes/{node}/lxc/{vmid}/migrate"): b.lxc_migrate,
        }
        routes = dict((key, _without_user(f)) for key, f in handlers.items())
        routes.update(with_user)
        return routes

    def implemented(self):
        """The endpoints the double serves (besides them, PVE's schema has more: those answer 501)."""
        return set(self._routes()) | {("POST", "/access/ticket"), ("POST", "/nodes/{node}/storage/{storage}/upload")}

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
                params = urlencoded(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                files = {}
                ctype = self.headers.get("Content-Type") or ""
                if length and ctype.startswith("multipart/form-data"):
                    try:
                        params.update(parse_multipart(ctype, self.rfile, length, files, double.backend.root))
                    except MultipartError as exc:
                        discard(files)
                        self.close_connection = True  # the rest of the body was not read
                        return self._answer(400, {"data": None, "message": "malformed multipart body: %s" % exc})
                elif length:
                    raw = self.rfile.read(length).decode("utf-8")
                    if "json" in ctype:
                        params.update(dict((k, v if not isinstance(v, bool) else int(v))
                                           for k, v in json.loads(raw or "{}").items()))
                    else:
                        params.update(urlencoded(raw))
                double.requests.append((self.command, url.path, dict(params)))
                fault = double._take_fault()
                if fault:
                    discard(files)
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
                if isinstance(data, Response):
                    return self._answer(200, dict(data.extra, data=data.data))
                return self._answer(200, {"data": data})

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        return Handler
