"""A small Proxmox VE API client for tests of the double: ticket login, calls, task waits (on the node the UPID
names) and task logs."""

import time

import requests

from pve_double.server import DEFAULT_PASSWORD


class Api:
    def __init__(self, double):
        self.url = double.url
        self.session = requests.Session()
        self.session.verify = False  # the double's self-signed certificate (its CA handling is tested elsewhere)
        self.session.trust_env = False
        requests.packages.urllib3.disable_warnings()
        login = self.session.post(self.url + "/access/ticket", verify=False,
                                  data={"username": "root@pam", "password": DEFAULT_PASSWORD}).json()["data"]
        self.session.cookies.set("PVEAuthCookie", login["ticket"])
        self.session.headers["CSRFPreventionToken"] = login["CSRFPreventionToken"]

    def call(self, method, path, **data):
        arguments = {"params": data} if method == "GET" else {"data": data}
        resp = self.session.request(method, self.url + path, verify=False, **arguments)
        return resp.status_code, resp.json()

    def task(self, method, path, **data):
        """The exitstatus of the task the call starts."""
        status, body = self.call(method, path, **data)
        assert status == 200, body
        return self.wait(body["data"])

    def wait(self, upid):
        """The exitstatus of task ``upid``, asked of the node that runs it (the UPID's node)."""
        node = upid.split(":")[1]
        for dummy in range(600):
            state = self.call("GET", "/nodes/%s/tasks/%s/status" % (node, upid))[1]["data"]
            if state["status"] == "stopped":
                return state["exitstatus"]
            time.sleep(0.1)
        raise AssertionError("task did not end")

    def log(self, upid):
        node = upid.split(":")[1]
        return [line["t"] for line in self.call("GET", "/nodes/%s/tasks/%s/log" % (node, upid), limit=0)[1]["data"]]
