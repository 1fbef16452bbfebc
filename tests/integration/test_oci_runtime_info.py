"""oci_runtime_info through real ansible / ansible-playbook / ansible-doc runs,
from the collection built into a tarball and installed with ansible-galaxy.

Expected values come from independent sources (dpkg, the kernel's view of
/sys/fs/cgroup, the test bed), not from the module's own parsers.
"""

import os
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.integration

MODULE = "lxcri.proxmox.oci_runtime_info"


def dpkg_version(package):
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], stdout=subprocess.PIPE,
                          universal_newlines=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", path], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()


def expected_cgroup_layout():
    root = fs_type("/sys/fs/cgroup")
    if root == "cgroup2fs":
        return "v2"
    has_v1 = any(fs_type(os.path.join("/sys/fs/cgroup", d)) == "cgroupfs"
                 for d in os.listdir("/sys/fs/cgroup")
                 if os.path.isdir(os.path.join("/sys/fs/cgroup", d)))
    unified = os.path.isdir("/sys/fs/cgroup/unified") and fs_type("/sys/fs/cgroup/unified") == "cgroup2fs"
    return "hybrid" if has_v1 and unified else ("v1" if has_v1 else "none")


def test_ansible_doc_renders(installed_collection):
    run = installed_collection.doc(MODULE)
    assert run.rc == 0, run
    for word in ("libcrun_search_paths", "crun_path", "preferred_runtime", "cgroup", "EXAMPLES"):
        assert word in run.stdout
    listing = installed_collection.doc("lxcri.proxmox", "--list")
    assert MODULE in listing.stdout, listing


def test_reports_the_real_host(installed_collection, bed):
    run = installed_collection.module(MODULE, {"libcrun_search_paths": [bed["libcrun"]["library"]]})
    assert run.rc == 0, run
    res = run.data
    assert res["changed"] is False

    # libcrun: the test bed's build, loaded for real through ctypes
    assert res["libcrun"]["loaded"] is True
    assert res["libcrun"]["path"] == os.path.realpath(bed["libcrun"]["library"])
    assert res["libcrun"]["version"] == bed["libcrun"]["version"]
    assert res["libcrun"]["python_binding"].endswith(".so")
    assert res["preferred_runtime"] == "libcrun"

    # crun CLI: Debian's package
    crun = res["crun"]
    assert crun["present"] is True and crun["path"] == "/usr/bin/crun"
    assert dpkg_version("crun").startswith(crun["version"] + "-")
    features = subprocess.run(["crun", "features"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=False)
    assert crun["features_supported"] is (features.returncode == 0)

    assert res["cgroup"]["layout"] == expected_cgroup_layout()
    assert res["lxc"]["present"] is True
    assert res["lxc"]["version"] in dpkg_version("lxc")

    zfs = res["zfs"]["cli"]
    assert zfs["implementation"] == "zfs-fuse"
    assert zfs["pool_version"] == 23
    assert zfs["usable"] is True  # the test bed's zfs-fuse daemon is up
    assert res["zfs"]["libzfs_core"]["importable"] is False

    assert res["proxmox"]["is_node"] is False
    assert res["proxmox"]["version"] is None


def test_check_mode_and_a_library_that_is_not_libcrun(installed_collection, tmp_path):
    libz = subprocess.run(["sh", "-c", "ldconfig -p | awk '/libz.so.1 /{print $NF; exit}'"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert libz, "libz.so.1 not in the linker cache"
    playbook = tmp_path / "play.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - lxcri.proxmox.oci_runtime_info:
                libcrun_search_paths: [%s]
              register: info
            - ansible.builtin.assert:
                that:
                  - info is not changed
                  - info.libcrun.tried[0].path == '%s'
                  - "info.libcrun.tried[0].error is match('not libcrun. missing symbols')"
                  - info.crun.present
    """ % (libz, libz)))
    run = installed_collection.playbook(str(playbook), check=True)
    assert run.rc == 0, run
    stats = run.stats["localhost"]
    assert stats["failures"] == 0 and stats["changed"] == 0 and stats["ok"] == 2


def test_runs_under_the_nodes_system_python(installed_collection, tmp_path):
    """A stock node has Debian's python3 with nothing but the standard library."""
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("node ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    run = installed_collection.module(MODULE, host="node", inventory=str(inventory))
    assert run.rc == 0, run
    assert run.data["crun"]["present"] is True
    assert run.data["cgroup"]["layout"] == expected_cgroup_layout()


def test_bad_option_is_a_clear_error(installed_collection):
    run = installed_collection.module(MODULE, {"libcrun_path": "/x"})
    assert run.rc != 0
    assert "Unsupported parameters" in run.data["msg"] and "libcrun_path" in run.data["msg"]


@pytest.mark.parametrize("group,ok", [("pve", True), ("no_such_group", False)])
def test_pve_action_group_resolves(installed_collection, tmp_path, group, ok):
    """module_defaults: group/lxcri.proxmox.pve is accepted (ansible rejects unknown groups)."""
    playbook = tmp_path / "group.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          module_defaults:
            group/lxcri.proxmox.%s:
              api_host: pve.invalid
          tasks:
            - lxcri.proxmox.oci_runtime_info:
    """ % group))
    run = installed_collection.playbook(str(playbook))
    if ok:
        assert run.rc == 0, run
    else:
        assert run.rc != 0
        assert "could not resolve the module_defaults group lxcri.proxmox.no_such_group" in run.stdout + run.stderr
