"""The node-side HTTPS path for values pvesh cannot pass (env with several entries), with the API double as the
node's own API: a stand-in for the ticket minting and the check that such an env reaches the container.

On a node, the ticket and CSRF token are minted by ``perl -e 'use PVE::AccessControl; ...'`` with the node's
/etc/pve/priv/authkey.key; here a login to the double prints them the same way (two lines).
"""

import sys

from pve_double.server import DEFAULT_PASSWORD

ENV = ["A=1", "B=two words", "C="]


def write_mint(path, double):
    """An executable at ``path`` that prints a root@pam ticket and CSRF token of ``double``; returns its path."""
    path.write_text("""#!%s
import requests
data = requests.post("%s/access/ticket", data={"username": "root@pam", "password": "%s"}, verify="%s").json()["data"]
print(data["ticket"])
print(data["CSRFPreventionToken"])
""" % (sys.executable, double.url, DEFAULT_PASSWORD, double.cert))
    path.chmod(0o755)
    return str(path)


def check_env_reaches(double, client, vmid, hostname):
    """Create and start a container with ENV through ``client`` (lxc_container's engine): the env went by a
    write other than pvesh's, the init has it, and a second run changes nothing."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import (  # pylint: disable=import-outside-toplevel
        ContainerManager)
    from lxcri_testbed.lxc import read_init  # pylint: disable=import-outside-toplevel
    params = {"vmid": vmid, "hostname": hostname, "ostemplate": "local:vztmpl/base.tar.zst", "env": ENV,
              "entrypoint": "/bin/sh -c 'sleep 300; exit 0'", "state": "started", "wait_timeout": 120}
    since = len(double.requests)
    result = ContainerManager(params, client=client).run()
    assert result["changed"] and double.backend.containers[vmid].config["env"] == "\0".join(ENV)
    writes = [(method, path, sorted(p)) for method, path, p in double.requests[since:] if method != "GET"]
    assert any("env" in keys for dummy, dummy_path, keys in writes), writes
    state, pid = double.backend.lxc_state(double.backend.containers[vmid])
    init = read_init(pid)
    assert state == "running" and (init.env["A"], init.env["B"], init.env["C"]) == ("1", "two words", "")
    assert not ContainerManager(params, client=client).run()["changed"]
