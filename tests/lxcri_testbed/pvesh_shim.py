"""``pvesh`` for the test bed: Proxmox VE's command line, answered by the API double over HTTPS.

Installed as ``pvesh`` on the PATH of the test sshd's sessions (tests/lxcri_testbed/sshd.py).  It takes the
command line pve-manager's ``PVE::CLI::pvesh`` takes and answers the way it does, as far as a client sees:

- ``pvesh [--noproxy] get|create|set|delete <api_path> [--output-format json] [options]``; an option is
  ``-key value``, ``--key value``, ``--key=value`` or ``-key=value``; a key given twice is a list; a key
  with no value (followed by another option or nothing) is a boolean flag, 1;
- the path is taken as it is (pvesh does not URL-decode); each segment is URL-quoted here for the HTTP call;
- the result's ``data`` is printed as JSON (nothing for null); a worker task runs in the foreground: its
  log goes to stdout, then the UPID as JSON; a task that failed also ends with exit status 255;
- an API error goes to stderr as ``<status> <message>`` plus ``param: message`` lines, exit status 255
  (a Perl ``die`` out of the CLI handler); an unknown verb gives the usage and 255.

Where the double is comes from the JSON file named by ``PVESH_SHIM_CONFIG`` (the test's ssh_config sends
it with ``SetEnv``): ``{"url": ".../api2/json", "token": "user@realm!id=secret", "ca": "/path/cert.pem"}``.
"""

import json
import os
import sys
import time
from urllib.parse import quote

import requests

VERBS = {"get": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
USAGE = "USAGE: pvesh get|create|set|delete <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
TASK_TIMEOUT = 600


def fail(text, status=255):
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.exit(status)


def parse_options(args):
    """``(params, output format)`` from the options after the path."""
    params, output, i = {}, None, 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            fail("400 too many arguments\n" + USAGE)
        name = arg.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif i < len(args) and not (args[i].startswith("-") and not args[i][1:].replace(".", "").isdigit()):
            value = args[i]
            i += 1
        else:
            value = "1"
        if name == "output-format":
            output = value
            continue
        params.setdefault(name, []).append(value)
    return dict((k, v[0] if len(v) == 1 else v) for k, v in params.items()), output


class Api:
    def __init__(self, config):
        self.url = config["url"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = "PVEAPIToken=%s" % config["token"]
        self.verify = config.get("ca") or True

    def call(self, method, path, params):
        url = self.url + "/".join(quote(segment, safe="") for segment in path.split("/"))
        where = "params" if method in ("GET", "DELETE") else "data"
        resp = self.session.request(method, url, timeout=60, verify=self.verify, **{where: params})
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return resp.status_code, body, resp.reason

    def wait_task(self, upid):
        node = upid.split(":")[1]
        base = "/nodes/%s/tasks/%s" % (node, upid)
        deadline = time.monotonic() + TASK_TIMEOUT
        status = {}
        while time.monotonic() < deadline:
            code, body, dummy = self.call("GET", base + "/status", {})
            status = body.get("data") or {} if code == 200 else {}
            if status.get("status") == "stopped":
                break
            time.sleep(0.2)
        code, body, dummy = self.call("GET", base + "/log", {"start": 0, "limit": 5000})
        lines = [entry.get("t", "") for entry in (body.get("data") or [])] if code == 200 else []
        return status.get("exitstatus"), lines


def error_text(status, body, reason):
    message = body.get("message") or reason or "error"
    message = message.rstrip("\n")
    head = message if status == 500 else "%d %s" % (status, message)
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    return head + "\n" + "".join("%s: %s\n" % (k, v) for k, v in sorted(errors.items()))


def main(argv):
    args = list(argv)
    while args and args[0] in ("--noproxy", "--nooutput"):
        args.pop(0)
    if len(args) < 2 or args[0] not in VERBS:
        fail("400 unknown command '%s'\n%s" % (args[0] if args else "", USAGE))
    verb, path = args[0], args[1]
    params, output = parse_options(args[2:])
    with open(os.environ["PVESH_SHIM_CONFIG"]) as handle:
        api = Api(json.load(handle))
    method = VERBS[verb]
    status, body, reason = api.call(method, path, params)
    if status == 501:
        fail("No '%s' handler defined for '%s'" % (verb, path), 1)
    if status != 200:
        fail(error_text(status, body, reason))
    data = body.get("data")
    failed = False
    if method != "GET" and isinstance(data, str) and data.startswith("UPID:"):
        exitstatus, log = api.wait_task(data)
        sys.stdout.write("".join(line + "\n" for line in log))
        failed = exitstatus is not None and exitstatus != "OK" and not exitstatus.startswith("WARNINGS")
    if data is not None:
        sys.stdout.write((json.dumps(data) if output == "json" else str(data)) + "\n")
    if failed:
        fail("task failed: %s" % data)


if __name__ == "__main__":
    main(sys.argv[1:])
