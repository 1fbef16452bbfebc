"""lxcri.proxmox.lxc_container through real ansible-playbook runs against the Proxmox VE API double."""

import json
import os
import subprocess
import textwrap

import pytest

from lxcri_testbed.oci_build import Layer, write_image
from pve_double.server import DEFAULT_PASSWORD, Double

pytestmark = pytest.mark.integration

NODE = "pve1"


@pytest.fixture(params=["9.1", "8"])
def double(request, tmp_path, bed):
    instance = Double(str(tmp_path / "pve"), mode=request.param).start()
    rootfs = tmp_path / "rootfs"
    for sub in ("bin", "sbin", "dev", "tmp"):
        (rootfs / sub).mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(rootfs / "bin" / "busybox")], check=True)
    for applet in ("sh", "sleep"):
        os.symlink("busybox", str(rootfs / "bin" / applet))
    (rootfs / "sbin" / "init").write_text("#!/bin/sh\nexec /bin/sleep 300\n")
    os.chmod(str(rootfs / "sbin" / "init"), 0o755)
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "base.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
    instance.stop()


def play(tmp_path, double, name, tasks, extra_defaults=""):
    path = tmp_path / name
    path.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          module_defaults:
            group/lxcri.proxmox.pve:
              api_host: 127.0.0.1
              api_port: %d
              api_password: %s
              ca_path: %s
        %s
          tasks:
        """) % (double.port, DEFAULT_PASSWORD, double.cert, extra_defaults) + textwrap.indent(
        textwrap.dedent(tasks), "    "))
    return str(path)


def state_of(double):
    """The double's whole container state, to show check mode changes nothing."""
    return json.dumps({vmid: ct.config for vmid, ct in sorted(double.backend.containers.items())}, sort_keys=True)


def running(double, vmid):
    return double.backend.lxc_state(double.backend.containers[vmid])[0] == "running"


def test_lifecycle_idempotence_check_mode_and_diff(installed_collection, double, tmp_path):
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 120
            hostname: web1
            ostemplate: local:vztmpl/base.tar.zst
            memory: 256
            cores: 1
            tags: [web, blue]
            net:
              0: {name: eth0, bridge: vmbr0, ip: dhcp}
            password: not-in-any-log-please
            state: started
          register: ct
        """)
    check = installed_collection.playbook(create, check=True, diff=True)
    assert check.rc == 0, check
    assert check.task_results()[0]["changed"] and double.backend.containers == {}

    first = installed_collection.playbook(create, diff=True, verbosity=3)
    assert first.rc == 0, first
    res = first.task_results()[0]
    assert res["changed"] and res["vmid"] == 120 and res["status"] == "running" and running(double, 120)
    assert res["actions"] == ["created", "started"]
    assert "not-in-any-log-please" not in first.stdout + first.stderr

    second = installed_collection.playbook(create, diff=True)
    assert second.rc == 0, second
    assert second.stats["localhost"]["changed"] == 0, second.task_results()

    change = play(tmp_path, double, "change.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: web1
            memory: 512
            tags: [blue, web]
            state: started
        """)
    before = state_of(double)
    checked = installed_collection.playbook(change, check=True, diff=True)
    assert checked.rc == 0 and checked.task_results()[0]["changed"], checked
    assert state_of(double) == before  # check mode left the double untouched
    diff = checked.task_results()[0]["diff"]
    assert diff["before"]["memory"] == "256" and diff["after"]["memory"] in ("512", 512)
    writes_before = len([r for r in double.requests if r[0] == "PUT"])
    applied = installed_collection.playbook(change)
    assert applied.rc == 0 and applied.task_results()[0]["changed"], applied
    assert double.backend.containers[120].config["memory"] == "512"
    assert len([r for r in double.requests if r[0] == "PUT"]) == writes_before + 1  # one PUT, only memory

    for state, check_state in (("stopped", False), ("restarted", True), ("stopped", False), ("template", False)):
        step = play(tmp_path, double, "s-%s.yml" % state, """\
            - lxcri.proxmox.lxc_container:
                vmid: 120
                state: %s
                # sleep as PID 1 ignores SIGPWR: the graceful shutdown times out, then the stop
                shutdown_timeout: 2
                force_stop: true
            """ % state)
        run = installed_collection.playbook(step)
        assert run.rc == 0 and run.task_results()[0]["changed"], run
        assert running(double, 120) is check_state, state
        again = installed_collection.playbook(step)
        assert again.rc == 0, again
        if state != "restarted":
            assert again.stats["localhost"]["changed"] == 0, (state, again.task_results())
    assert double.backend.containers[120].config.get("template") == "1"

    gone = play(tmp_path, double, "absent.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 120
            state: absent
        """)
    run = installed_collection.playbook(gone)
    assert run.rc == 0 and run.task_results()[0]["changed"], run
    assert 120 not in double.backend.containers
    assert installed_collection.playbook(gone).stats["localhost"]["changed"] == 0


def test_failed_create_fails_fast_with_the_log_tail(installed_collection, double, tmp_path):
    double.backend.tasks.inject("vzcreate", "unable to create CT 130 - injected disk failure")
    create = play(tmp_path, double, "fail.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 130
            hostname: broken
            ostemplate: local:vztmpl/base.tar.zst
        """)
    run = installed_collection.playbook(create)
    assert run.rc != 0
    assert "injected disk failure" in run.task_results()[0]["msg"]


def test_hostname_must_be_unique_and_running_containers_need_force(installed_collection, double, tmp_path):
    for vmid in (140, 141):
        make = play(tmp_path, double, "m%d.yml" % vmid, """\
            - lxcri.proxmox.lxc_container:
                vmid: %d
                hostname: twin
                ostemplate: local:vztmpl/base.tar.zst
                state: started
            """ % vmid)
        assert installed_collection.playbook(make).rc == 0
    ambiguous = play(tmp_path, double, "amb.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: twin
            state: absent
        """)
    run = installed_collection.playbook(ambiguous)
    assert run.rc != 0 and "ambiguous" in run.task_results()[0]["msg"]
    refuse = play(tmp_path, double, "refuse.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 140
            state: absent
        """)
    run = installed_collection.playbook(refuse)
    assert run.rc != 0 and "force" in run.task_results()[0]["msg"] and 140 in double.backend.containers
    forced = play(tmp_path, double, "forced.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 140
            state: absent
            force: true
        """)
    run = installed_collection.playbook(forced)
    assert run.rc == 0 and 140 not in double.backend.containers, run
