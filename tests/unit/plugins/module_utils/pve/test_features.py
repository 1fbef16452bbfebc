"""The LXC a node runs, read over the API for oci_template's lxc_version: auto with a storage (issue 15 item 0)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import node_lxc_version


class FakeClient:
    """Answers GET by path; an exception instance is raised."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def get(self, path, params=None, **kwargs):
        self.asked.append(path)
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def packages(**versions):
    return [{"Package": name.replace("_", "-"), "Version": version} for name, version in versions.items()]


@pytest.mark.parametrize("lxc_pve, expected", [("6.0.5-3", "6.0.5"), ("6.0.0-1", "6.0.0"), ("5.0.2-4", "5.0.2")])
def test_the_nodes_lxc_pve_package_decides(lxc_pve, expected):
    client = FakeClient({"/nodes/pve2/apt/versions": packages(pve_manager="9.1.1", lxc_pve=lxc_pve)})
    assert node_lxc_version(client, "pve2") == expected
    assert client.asked == ["/nodes/pve2/apt/versions"]  # the target node, not the API host's /version


@pytest.mark.parametrize("release, expected", [("9.1.1", "6.0"), ("8.4.1", "6.0"), ("8.2.2", "6.0"),
                                               ("8.1.4", "5.0"), ("8.0.3", "5.0")])
def test_without_sys_audit_the_nodes_release_decides(release, expected):
    client = FakeClient({"/nodes/pve1/apt/versions": PveApiError(403, "GET", "/nodes/pve1/apt/versions",
                                                                 "Permission check failed (/nodes/pve1, Sys.Audit)"),
                         "/nodes/pve1/version": {"version": release, "release": release[:3]}})
    assert node_lxc_version(client, "pve1") == expected
    assert client.asked == ["/nodes/pve1/apt/versions", "/nodes/pve1/version"]


def test_a_list_without_lxc_pve_falls_back_and_other_errors_are_raised():
    client = FakeClient({"/nodes/pve1/apt/versions": packages(pve_manager="8.1.4"),
                         "/nodes/pve1/version": {"version": "8.1.4", "release": "8.1"}})
    assert node_lxc_version(client, "pve1") == "5.0"
    down = FakeClient({"/nodes/pve1/apt/versions": PveApiError(595, "GET", "/nodes/pve1/apt/versions",
                                                               "no route to host")})
    with pytest.raises(PveApiError):
        node_lxc_version(down, "pve1")
