"""Local mode (on the node, no api_host) with an env of several entries (issue 15 item 10).

pvesh takes parameters as arguments, and an argument cannot hold NUL, so ``env`` with two entries can never
pass through it.  LocalPveClient sends such a call to the node's own HTTPS API on localhost, as root@pam with
a ticket and CSRF token minted on the node (PVE::AccessControl assemble_ticket / assemble_csrf_prevention_token).

Here the node is the API double: pvesh is the test bed's pvesh shim (pve-manager's command line, answered by
the double), and the minting, which needs the node's /etc/pve/priv/authkey.key, is stood in for by a login to
the double that prints the ticket and token the same way.  Everything else is the real code path.
"""

import json
import os
import stat
import sys

import pytest

from pve_double.server import Double

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(os.path.dirname(HERE), "lxcri_testbed", "pvesh_shim.py")


def script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def nine(tmp_path, bed):
    instance = Double(str(tmp_path / "pve"), mode="9.1").start()
    instance.add_busybox_template("base.tar.zst", tmp_path)
    yield instance
    instance.kill_containers()
    instance.stop()


def test_env_with_several_entries_reaches_a_local_node(nine, tmp_path, monkeypatch):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.command import subprocess_runner
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.local import LocalPveClient
    from lxcri_testbed.node_https import check_env_reaches, write_mint
    double = nine
    secret = double.add_token("root@pam!shim")
    config = tmp_path / "shim.json"
    config.write_text(json.dumps({"url": double.url, "token": "root@pam!shim=%s" % secret, "ca": double.cert}))
    monkeypatch.setenv("PVESH_SHIM_CONFIG", str(config))
    pvesh = script(tmp_path / "pvesh", "#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, SHIM))
    client = LocalPveClient(runner=lambda argv: subprocess_runner(argv, timeout=120), pvesh=pvesh,
                            mint=[write_mint(tmp_path / "mint", double)],
                            loopback={"host": "127.0.0.1", "port": double.port, "ca_path": double.cert})
    # the env goes over HTTPS with the minted ticket; everything else through pvesh (the shim's token)
    check_env_reaches(double, client, 150, "local")
