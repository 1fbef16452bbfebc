"""The HTTP layer of the Proxmox VE API test double: auth forms, checked results, task log pages, uploads.

Over real HTTPS against a running Double, and (uploads) the streaming
multipart parser on its own, with tiny chunks and a 64 MiB body.
"""

import hashlib
import io
import os
import subprocess
import threading
import time
import tracemalloc

import pytest
import requests
import urllib3

from pve_double.server import DEFAULT_PASSWORD, Double, MultipartError, parse_multipart

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


@pytest.fixture(params=["9.1", "8"])
def double(request, tmp_path):
    instance = Double(str(tmp_path / "pve"), mode=request.param).start()
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("ct\n")
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "mini.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    instance.stop()


def login(double):
    data = requests.post(double.url + "/access/ticket", verify=double.cert,
                         data={"username": "root@pam", "password": DEFAULT_PASSWORD}).json()["data"]
    return {"PVEAuthCookie": data["ticket"]}, {"CSRFPreventionToken": data["CSRFPreventionToken"]}


def call(double, method, path, **kwargs):
    cookies, headers = login(double)
    return requests.request(method, double.url + path, cookies=cookies, headers=headers, verify=double.cert,
                            **kwargs)


def wait(double, upid, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = call(double, "GET", "/nodes/pve1/tasks/%s/status" % upid).json()["data"]
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise AssertionError("task %s still running" % upid)


def create(double, vmid, **params):
    resp = call(double, "POST", "/nodes/pve1/lxc", data=dict(params, vmid=vmid, ostemplate="local:vztmpl/mini.tar.zst"))
    assert resp.status_code == 200, resp.text
    assert wait(double, resp.json()["data"])["exitstatus"] == "OK"


# -- empty values ----------------------------------------------------------------------

def test_an_empty_urlencoded_value_is_no_value(double):
    """pve-http-server decode_urlencoded: ``env=`` is undef, which JSONSchema skips: a create ignores it, a config
    PUT removes the key (update_pct_config + vmconfig_apply_pending), a required parameter is "missing"; a JSON
    body's "" is a defined empty string and is validated as one."""
    key = "env" if double.backend.mode.startswith("9") else "description"
    create(double, 102, **{key: ""})
    assert key not in call(double, "GET", "/nodes/pve1/lxc/102/config").json()["data"]
    value = "A=1" if key == "env" else "text"
    assert call(double, "PUT", "/nodes/pve1/lxc/102/config", data={key: value}).status_code == 200
    assert call(double, "GET", "/nodes/pve1/lxc/102/config").json()["data"][key] == value
    put = call(double, "PUT", "/nodes/pve1/lxc/102/config", data={key: "", "memory": 256})
    assert put.status_code == 200, put.text
    config = call(double, "GET", "/nodes/pve1/lxc/102/config").json()["data"]
    assert key not in config and config["memory"] == 256
    missing = call(double, "POST", "/nodes/pve1/lxc", data={"vmid": 103, "ostemplate": ""})
    assert missing.status_code == 400 and missing.json()["errors"] == {"ostemplate": "property is missing and it is "
                                                                                     "not optional"}
    if key == "env":
        as_json = call(double, "PUT", "/nodes/pve1/lxc/102/config", json={"env": ""})
        assert as_json.status_code == 400 and "env" in as_json.json()["errors"]


# -- parameters named description ------------------------------------------------------

def test_a_description_is_accepted_stored_and_returned(double):
    create(double, 101, description="made by the test")
    assert call(double, "GET", "/nodes/pve1/lxc/101/config").json()["data"]["description"] == "made by the test"
    text = "web server\nsecond line: ü"
    put = call(double, "PUT", "/nodes/pve1/lxc/101/config", data={"description": text, "memory": 256})
    assert put.status_code == 200, put.text
    config = call(double, "GET", "/nodes/pve1/lxc/101/config").json()["data"]
    assert config["description"] == text
    too_long = call(double, "PUT", "/nodes/pve1/lxc/101/config", data={"description": "x" * 8193})
    assert too_long.status_code == 400 and "description" in too_long.json()["errors"]
    assert double.response_errors == []


# -- results checked against the schema's returns ---------------------------------------

def test_a_result_that_breaks_the_returns_schema_is_a_loud_500(double):
    assert call(double, "GET", "/version").status_code == 200
    good = double.backend.version

    double.backend.version = lambda params: dict(good(params), version=9)
    resp = call(double, "GET", "/version")
    assert resp.status_code == 500
    message = resp.json()["message"]
    assert "GET /version" in message and "data.version" in message and "type check ('string')" in message
    assert double.response_errors[-1][:2] == ("GET", "/version")
    assert any("data.version" in problem for problem in double.response_errors[-1][2])

    double.backend.version = lambda params: {"version": "9.1.1", "repoid": "1a2b3c4d"}
    resp = call(double, "GET", "/version")
    assert resp.status_code == 500 and "data.release: property is missing" in resp.json()["message"]

    double.backend.lxc_list = lambda params: [{"vmid": "101", "status": "running"}]
    resp = call(double, "GET", "/nodes/pve1/lxc")
    assert resp.status_code == 500
    assert "GET /nodes/{node}/lxc" in resp.json()["message"] and "data[0].vmid" in resp.json()["message"]
    assert len(double.response_errors) == 3


def test_every_read_answers_in_the_schemas_shape(double):
    """The double's own results, container and task included, pass the check."""
    create(double, 102, hostname="shape", memory=256, net0="name=eth0,bridge=vmbr0,ip=dhcp", cores=1)
    for path in ("/version", "/nodes", "/nodes/pve1/status", "/cluster/nextid", "/cluster/resources",
                 "/nodes/pve1/lxc", "/nodes/pve1/lxc/102/config", "/nodes/pve1/lxc/102/status/current",
                 "/nodes/pve1/lxc/102/pending", "/nodes/pve1/storage", "/nodes/pve1/storage/local/content",
                 "/nodes/pve1/lxc/102/snapshot"):
        resp = call(double, "GET", path)
        assert resp.status_code == 200, (path, resp.text)
    assert double.response_errors == []


# -- task log pages -----------------------------------------------------------------------

def test_storage_content_lists_only_template_extensions_as_vztmpl(double):
    """pve-storage lists a vztmpl volume only for names matching $VZTMPL_EXT_RE_1 at their end (PVE/Storage.pm,
    PVE/Storage/Plugin.pm's $get_subdir_files): oci_template's JSON sidecar next to a template is none."""
    cache = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
    names = ["app.tar.zst.json", "app.tar.zst", "b.tar", "c.tar.gz", "d.tar.xz", "e.tar.bz2", "F.TAR.ZST",
             "g.tar.zst.tmp", "h.tar.json", "notes.txt", ".hidden.tar", "i.tgz", "j.tar.lz4"]
    for name in names:
        with open(os.path.join(cache, name), "w") as handle:
            handle.write("x")
    listed = call(double, "GET", "/nodes/pve1/storage/local/content", params={"content": "vztmpl"}).json()["data"]
    formats = dict((item["volid"], item["format"]) for item in listed)
    assert formats == {"local:vztmpl/mini.tar.zst": "tzst", "local:vztmpl/app.tar.zst": "tzst",
                       "local:vztmpl/b.tar": "tar", "local:vztmpl/c.tar.gz": "tgz", "local:vztmpl/d.tar.xz": "txz",
                       "local:vztmpl/e.tar.bz2": "tbz2", "local:vztmpl/F.TAR.ZST": "tZST"}
    everything = call(double, "GET", "/nodes/pve1/storage/local/content").json()["data"]
    assert not [item for item in everything if item["volid"].endswith((".json", ".txt", ".tmp"))]


def test_task_log_pages_carry_total(double):
    def work(task):
        for number in range(1, 121):
            task.log("line %d" % number)
        return 0

    upid = double.backend.tasks.start("test", None, "root@pam", work)
    assert wait(double, upid)["exitstatus"] == "OK"
    path = "/nodes/pve1/tasks/%s/log" % upid
    first = call(double, "GET", path).json()
    assert first["total"] == 121  # 120 lines + "TASK OK"
    assert [e["n"] for e in first["data"]] == list(range(1, 51))  # limit defaults to 50, lines count from 1
    assert first["data"][0] == {"n": 1, "t": "line 1"}
    page = call(double, "GET", path, params={"start": 100, "limit": 10}).json()
    assert page["total"] == 121 and page["data"] == [{"n": n, "t": "line %d" % n} for n in range(101, 111)]
    tail = call(double, "GET", path, params={"start": 115, "limit": 50}).json()
    assert [e["t"] for e in tail["data"]][-1] == "TASK OK" and len(tail["data"]) == 6
    everything = call(double, "GET", path, params={"limit": 0}).json()
    assert len(everything["data"]) == 121
    beyond = call(double, "GET", path, params={"start": 500}).json()
    assert beyond == {"data": [], "total": 121}
    assert call(double, "GET", path, params={"limit": -1}).status_code == 400

    started = threading.Event()
    release = threading.Event()

    def silent(task):
        started.set()
        release.wait(10)
        return 0

    quiet = double.backend.tasks.start("test", None, "root@pam", silent)
    started.wait(10)
    try:
        assert call(double, "GET", "/nodes/pve1/tasks/%s/log" % quiet).json() == {
            "data": [{"n": 1, "t": "no content"}], "total": 1}
    finally:
        release.set()


# -- API token header ------------------------------------------------------------------------

def test_api_token_values_are_url_decoded_as_pve_does(double):
    from proxmoxer import ProxmoxAPI
    secret = double.add_token("root@pam!ci", secret="5e3c0a4e-2f1b-4c1e-9a55-0123456789ab")
    odd = double.add_token("root@pam!odd", secret="s/cr t+x")

    def get(value, path="/version"):
        return requests.get(double.url + path, headers={"Authorization": value}, verify=double.cert)

    # proxmoxer's form, as it sends it
    api = ProxmoxAPI("127.0.0.1", port=double.port, user="root@pam", token_name="ci", token_value=secret,
                     verify_ssl=False)
    assert api.version.get()["version"]
    assert get("PVEAPIToken=root@pam!ci=%s" % secret).status_code == 200
    # the form pve-http-server itself sends when it proxies (create_auth_header): a space, all URL-encoded
    assert get("PVEAPIToken root%40pam%21ci%3D" + secret).status_code == 200
    assert get("PVEAPIToken=root%40pam%21ci=" + secret).status_code == 200
    # decoded: an escaped secret matches, its raw escapes are not the secret
    assert get("PVEAPIToken=root@pam!odd=s%2Fcr%20t+x").status_code == 200
    assert get("PVEAPIToken=root@pam!odd=%s" % odd).status_code == 200
    assert get("PVEAPIToken=root@pam!odd=s%252Fcr t+x").status_code == 401
    assert get("PVEAPIToken=root@pam!ci=%s; other=1" % secret).status_code == 200  # a value ends at ';'
    for wrong in ("PVEAPIToken=root@pam!ci=nope", "PVEAPIToken=root@pam!ci", "PVEAPIToken=", "Bearer x",
                  "PVEAPIToken=root@pam!nobody=%s" % secret, "XPVEAPIToken=root@pam!ci=%s" % secret):
        assert get(wrong).status_code == 401, wrong


def test_tickets_come_before_tokens_and_may_ride_in_the_authorization_header(double):
    secret = double.add_token("root@pam!ci")
    cookies, headers = login(double)
    ticket = cookies["PVEAuthCookie"]
    assert requests.get(double.url + "/nodes", verify=double.cert,
                        headers={"Authorization": "PVEAuthCookie=%s" % ticket}).status_code == 200
    # pve-http-server reads a token only when no ticket came: a stale cookie is not saved by a good token
    stale = requests.get(double.url + "/nodes", verify=double.cert, cookies={"PVEAuthCookie": "PVE:stale"},
                         headers={"Authorization": "PVEAPIToken=root@pam!ci=%s" % secret})
    assert stale.status_code == 401


def test_auth_csrf_readonly_and_faults_are_kept(double, tmp_path):
    bad = requests.post(double.url + "/access/ticket", data={"username": "root@pam", "password": "nope"},
                        verify=double.cert)
    assert bad.status_code == 401
    cookies, headers = login(double)
    no_csrf = requests.put(double.url + "/nodes/pve1/lxc/100/config", data={"memory": 256}, cookies=cookies,
                           verify=double.cert)
    assert no_csrf.status_code == 401 and "csrf" in no_csrf.reason.lower()
    readonly = double.add_token("root@pam!ro", readonly=True)
    auth = {"Authorization": "PVEAPIToken=root@pam!ro=%s" % readonly}
    assert requests.get(double.url + "/nodes", headers=auth, verify=double.cert).status_code == 200
    assert requests.post(double.url + "/nodes/pve1/lxc", data={"vmid": 150, "ostemplate": "local:vztmpl/x.tar"},
                         headers=auth, verify=double.cert).status_code == 403
    schema = call(double, "POST", "/nodes/pve1/lxc", data={"vmid": "abc", "ostemplate": "local:vztmpl/x.tar"})
    assert schema.status_code == 400 and set(schema.json()["errors"]) == {"vmid"}
    assert call(double, "GET", "/nodes/pve1/nonsense").status_code == 501
    assert call(double, "PATCH", "/version").status_code == 501
    # an injected failure or a dropped connection leaves no upload behind
    upload = {"content": (None, "vztmpl")}
    url = double.url + "/nodes/pve1/storage/local/upload"
    double.fail_next(503, "injected")
    resp = requests.post(url, files=dict(upload, filename=("a.tar", b"x" * 1000)), cookies=cookies, headers=headers,
                         verify=double.cert)
    assert resp.status_code == 503 and resp.json()["message"] == "injected"
    double.drop_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, files=dict(upload, filename=("b.tar", b"y" * 10)), cookies=cookies, headers=headers,
                      verify=double.cert)
    assert [n for n in os.listdir(double.backend.root) if n.startswith("pveupload-")] == []
    assert call(double, "GET", "/version").status_code == 200


# -- stop ---------------------------------------------------------------------------------------

def test_stop_returns_without_start_and_twice(tmp_path):
    never_started = Double(str(tmp_path / "idle"))
    stopper = threading.Thread(target=never_started.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "Double.stop() blocks when start() was never called"
    started = Double(str(tmp_path / "busy")).start()
    assert requests.get(started.url + "/version", verify=started.cert).status_code == 401
    started.stop()
    started.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(started.url + "/version", verify=started.cert, timeout=5)


# -- uploads ----------------------------------------------------------------------------------------

BOUNDARY = "lxcri-b0undary"


def multipart(fields, files, boundary=BOUNDARY, preamble=b"", epilogue=b"", padding=b""):
    body = preamble
    for name, value in fields:
        body += b"--%s%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (
            boundary.encode(), padding, name.encode(), value.encode())
    for name, filename, data in files:
        head = (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n")
        body += head % (boundary.encode(), name.encode(), filename.encode()) + data + b"\r\n"
    return body + b"--%s--\r\n" % boundary.encode() + epilogue


def parse(body, tmp_path, chunk_size, content_type="multipart/form-data; boundary=" + BOUNDARY):
    files = {}
    fields = parse_multipart(content_type, io.BytesIO(body), len(body), files, str(tmp_path), chunk_size=chunk_size)
    return fields, files


# content that looks like the delimiter without being it: CRs, LFs, dashes, the boundary's start
TRICKY = (b"\r" + b"\r\n" + b"--" + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n-" + b"--" + BOUNDARY.encode()
          + b"\n" + bytes(range(256)) + b"\r\n\r\n" + b"\r")


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 16, len(BOUNDARY) + 3, 64 * 1024])
@pytest.mark.parametrize("data", [b"", b"\r", b"\r\n", TRICKY, os.urandom(3000) + TRICKY])
def test_multipart_parser_with_boundaries_across_chunks(tmp_path, chunk_size, data):
    body = multipart([("content", "vztmpl"), ("checksum", "ab" * 32)], [("filename", "t.tar.zst", data)],
                     preamble=b"ignored preamble\r\n", epilogue=b"ignored epilogue\r\n--%s\r\n" % BOUNDARY.encode())
    fields, files = parse(body, tmp_path, chunk_size)
    assert fields == {"content": "vztmpl", "checksum": "ab" * 32, "filename": "t.tar.zst"}
    filename, path = files["filename"]
    with open(path, "rb") as handle:
        assert filename == "t.tar.zst" and handle.read() == data


def test_multipart_parser_details(tmp_path):
    # a quoted boundary, transport padding (blanks) after a boundary
    body = multipart([("content", "iso")], [("filename", "x.iso", b"data")], padding=b" \t")
    fields, files = parse(body, tmp_path, 4, content_type='multipart/form-data; boundary="%s"' % BOUNDARY)
    assert fields == {"content": "iso", "filename": "x.iso"}
    # a UTF-8 field and filename
    body = multipart([("notes", "grüße")], [("filename", "ä.tar", b"1")])
    fields, files = parse(body, tmp_path, 3)
    assert fields["notes"] == "grüße" and files["filename"][0] == "ä.tar"


@pytest.mark.parametrize("body,content_type,fragment", [
    (b"--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n" % BOUNDARY.encode(), None,
     "ends before the closing boundary"),
    (b"--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx" % BOUNDARY.encode(), None,
     "ends before the closing boundary"),
    (b"--%s\r\nContent-Disposition: form-data; name=\"a\"" % BOUNDARY.encode(), None,
     "ends before the closing boundary"),
    (b"no boundary at all", None, "ends before the closing boundary"),
    (b"--%s\r\nContent-Type: text/plain\r\n\r\nx\r\n--%s--\r\n" % (BOUNDARY.encode(), BOUNDARY.encode()), None,
     "no Content-Disposition name"),
    (b"--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--%sjunk\r\n" % (
        BOUNDARY.encode(), BOUNDARY.encode()), None, "unexpected data after a boundary"),
    (b"--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"
     b"--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ny\r\n--%s--\r\n" % (
         (BOUNDARY.encode(),) * 3), None, "appears twice"),
    (b"x", "multipart/form-data", "no usable boundary"),
])
def test_multipart_parser_refuses_malformed_bodies(tmp_path, body, content_type, fragment):
    with pytest.raises(MultipartError, match=fragment):
        parse(body, tmp_path, 5, **({"content_type": content_type} if content_type else {}))


class GeneratedUpload(io.RawIOBase):
    """A multipart body with a ``size`` bytes file part, made while it is read (never held whole)."""

    def __init__(self, size, block):
        super().__init__()
        head = (b"--%s\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nvztmpl\r\n"
                b"--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"big.tar\"\r\n\r\n"
                % (BOUNDARY.encode(), BOUNDARY.encode()))
        tail = b"\r\n--%s--\r\n" % BOUNDARY.encode()
        self.parts = [(head, len(head)), (None, size), (tail, len(tail))]
        self.block = block
        self.length = sum(n for dummy, n in self.parts)
        self.offset = 0
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        start = self.offset
        for data, length in self.parts:
            if start < length:
                count = min(size if size >= 0 else length, length - start)
                if data is None:
                    at = start % len(self.block)
                    out = self.block[at:at + min(count, len(self.block) - at)]
                    self.digest.update(out)
                else:
                    out = data[start:start + count]
                self.offset += len(out)
                return out
            start -= length
        return b""


def test_a_64_mib_upload_is_parsed_in_bounded_memory(tmp_path):
    block = os.urandom(1 << 20) + b"\r\n--" + BOUNDARY[:-2].encode()  # a near-delimiter in every block
    body = GeneratedUpload(64 << 20, block)
    files = {}
    tracemalloc.start()
    try:
        fields = parse_multipart("multipart/form-data; boundary=" + BOUNDARY, body, body.length, files,
                                 str(tmp_path), chunk_size=64 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fields == {"content": "vztmpl", "filename": "big.tar"}
    assert peak < 1 << 20, "parsing a 64 MiB upload peaked at %d bytes" % peak
    path = files["filename"][1]
    assert os.path.getsize(path) == 64 << 20
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == body.digest.hexdigest()


def test_upload_over_http_streams_to_the_storage_with_checksum(double, tmp_path):
    data = os.urandom(3 << 20) + TRICKY
    checksum = hashlib.sha256(data).hexdigest()
    body = multipart([("content", "vztmpl"), ("checksum-algorithm", "sha256"), ("checksum", checksum)],
                     [("filename", "streamed.tar", data)])
    (tmp_path / "body").write_bytes(body)
    cookies, headers = login(double)
    with open(str(tmp_path / "body"), "rb") as handle:  # a file object: requests streams it with Content-Length
        resp = requests.post(double.url + "/nodes/pve1/storage/local/upload", data=handle, cookies=cookies,
                             verify=double.cert, headers=dict(headers, **{
                                 "Content-Type": "multipart/form-data; boundary=" + BOUNDARY}))
    assert resp.status_code == 200, resp.text
    upid = resp.json()["data"]
    assert wait(double, upid)["exitstatus"] == "OK"
    log = call(double, "GET", "/nodes/pve1/tasks/%s/log" % upid).json()
    assert "checksum verified" in [e["t"] for e in log["data"]]
    stored = os.path.join(double.backend.storages["local"]["path"], "template", "cache", "streamed.tar")
    with open(stored, "rb") as handle:
        assert handle.read() == data
    # a malformed body: 400, nothing left behind, and the double keeps answering
    broken = body[:len(body) // 2]
    resp = requests.post(double.url + "/nodes/pve1/storage/local/upload", data=broken, cookies=cookies,
                         verify=double.cert, headers=dict(headers, **{
                             "Content-Type": "multipart/form-data; boundary=" + BOUNDARY,
                             "Content-Length": str(len(broken))}))
    assert resp.status_code == 400 and "malformed multipart body" in resp.json()["message"]
    assert [n for n in os.listdir(double.backend.root) if n.startswith("pveupload-")] == []
    assert call(double, "GET", "/version").status_code == 200


# -- /cluster/resources lags as pvestatd's broadcast does -------------------------------

def test_cluster_resources_serve_pvestatds_last_broadcast_and_node_lists_are_live(double):
    """pve-manager PVE/API2/Cluster.pm resources + API2Tools.pm extract_vm_stats; pve-container vmstatus."""
    assert double.backend.resources_lag == 10.0  # the default, as pvestatd's $updatetime
    double.backend.broadcast()
    create(double, 101, hostname="fresh", tags="a")
    listed = [r for r in call(double, "GET", "/cluster/resources").json()["data"] if r.get("vmid") == 101]
    assert listed == [{"id": "lxc/101", "vmid": 101, "node": "pve1", "type": "lxc", "status": "unknown",
                       "tags": "a"}]  # member of the vmlist at once; no name, status unknown; tags read live
    live = call(double, "GET", "/nodes/pve1/lxc").json()["data"]
    assert [(c["vmid"], c["name"], c["status"]) for c in live] == [(101, "fresh", "stopped")]
    assert "template" not in live[0] and "lock" not in live[0]  # vmstatus sets them only when there
    double.backend.broadcast()  # the next round
    [entry] = [r for r in call(double, "GET", "/cluster/resources").json()["data"] if r.get("vmid") == 101]
    assert (entry["name"], entry["status"], entry["template"], entry["maxcpu"]) == ("fresh", "stopped", 0, os.cpu_count())
    put = call(double, "PUT", "/nodes/pve1/lxc/101/config", data={"hostname": "renamed"})
    assert put.status_code == 200, put.text
    [entry] = [r for r in call(double, "GET", "/cluster/resources").json()["data"] if r.get("vmid") == 101]
    assert entry["name"] == "fresh"  # until the next broadcast
    assert [c["name"] for c in call(double, "GET", "/nodes/pve1/lxc").json()["data"]] == ["renamed"]


def test_pvestatd_broadcasts_on_its_own_and_stops_with_the_double(tmp_path):
    instance = Double(str(tmp_path / "pve"), resources_lag=0.2)
    rounds = []
    real = instance.backend.broadcast
    instance.backend.broadcast = lambda: rounds.append(time.monotonic()) or real()
    instance.start()
    time.sleep(1.1)
    instance.stop()
    assert 4 <= len(rounds) <= 7  # one at start, then one every 0.2 s
    done = len(rounds)
    time.sleep(0.5)
    assert len(rounds) == done
    live = Double(str(tmp_path / "live"), resources_lag=0)
    live.backend.broadcast = lambda: rounds.append("live")
    live.start()
    live.stop()
    assert "live" not in rounds  # lag 0: /cluster/resources reads live, no broadcasts


# -- OS detection at create (pve-container PVE/API2/LXC.pm create_vm -> PVE::LXC::Setup->new) -----------

def test_create_detects_the_os_and_fails_on_an_unknown_one_unless_unmanaged(double, tmp_path):
    rootfs = tmp_path / "wolfi"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text("ID=wolfi\nNAME=Wolfi\n")
    template = os.path.join(double.backend.storages["local"]["path"], "template", "cache", "wolfi.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    resp = call(double, "POST", "/nodes/pve1/lxc", data={"vmid": 120, "ostemplate": "local:vztmpl/wolfi.tar.zst"})
    status = wait(double, resp.json()["data"])
    assert status["exitstatus"] == "unable to detect OS distribution"
    assert 120 not in double.backend.containers  # the failed create leaves nothing
    resp = call(double, "POST", "/nodes/pve1/lxc",
                data={"vmid": 121, "ostemplate": "local:vztmpl/wolfi.tar.zst", "ostype": "unmanaged"})
    assert wait(double, resp.json()["data"])["exitstatus"] == "OK"
    (rootfs / "etc" / "os-release").write_text('ID="debian"\n')
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    resp = call(double, "POST", "/nodes/pve1/lxc", data={"vmid": 122, "ostemplate": "local:vztmpl/wolfi.tar.zst"})
    assert wait(double, resp.json()["data"])["exitstatus"] == "OK"
    assert call(double, "GET", "/nodes/pve1/lxc/122/config").json()["data"]["ostype"] == "debian"
