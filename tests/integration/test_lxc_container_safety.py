"""Operator safety of lxc_container through real ansible-playbook runs against the API double (issue 21).

No silent take-over of another container, validation before any change, removal of what a failed task
created, re-runnable stop, a shutdown timeout that says what to do, and check-mode chains carried by the
collection's action plugin from task to task.
"""

import pytest

from lxcri_testbed.ansible import write_pve_play as play

pytestmark = pytest.mark.integration

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


def oci(digest, image="127.0.0.1:5000/app:v1"):
    """An oci_template-like result for the double's busybox template (no runtime: the init is its own)."""
    return "{volid: 'local:vztmpl/base.tar.zst', image: '%s', digest: '%s'}" % (image, digest)


def test_no_silent_take_over_of_another_container(installed_collection, busybox_double, tmp_path):
    double = busybox_double
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            hostname: a
            oci: %s
            state: started
        """ % oci(DIGEST_1))
    assert installed_collection.playbook(create).rc == 0
    description = double.backend.containers[150].config["description"]
    assert "lxcri.proxmox: image=127.0.0.1:5000/app:v1 digest=%s" % DIGEST_1 in description

    takeover = play(tmp_path, double, "takeover.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            hostname: b
            memory: 1024
            state: started
        """)
    before = double.state()
    for check in (True, False):
        run = installed_collection.playbook(takeover, check=check)
        assert run.rc != 0 and "CT 150 is not the container this task describes: hostname is a, the task asks " \
            "for b" in run.stdout, run.stdout[-2000:]
    assert double.state() == before

    # another digest of the same image: reported, not papered over
    upgrade = play(tmp_path, double, "upgrade.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            hostname: a
            oci: %s
            state: started
        """ % oci(DIGEST_2, "127.0.0.1:5000/app:v2"))
    run = installed_collection.playbook(upgrade)
    assert run.rc != 0 and "digest is %s, the task asks for %s" % (DIGEST_1, DIGEST_2) in run.stdout, run.stdout
    assert double.state() == before

    # the rename is intended: on_mismatch: update does it, says so, and keeps the record
    rename = play(tmp_path, double, "rename.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            hostname: b
            on_mismatch: update
            state: started
        """)
    run = installed_collection.playbook(rename)
    assert run.rc == 0 and run.task_results()[0]["changed"], run
    assert run.task_results()[0]["mismatch"] == [{"what": "hostname", "have": "a", "want": "b"}]
    config = double.backend.containers[150].config
    assert config["hostname"] == "b" and "digest=%s" % DIGEST_1 in config["description"]

    # a shutdown that times out says what to do; with force_stop the kill is reported
    stop = play(tmp_path, double, "stop.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            state: stopped
            shutdown_timeout: 1
        """)
    run = installed_collection.playbook(stop)
    assert run.rc != 0 and "CT 150 did not stop within shutdown_timeout (1 s)" in run.stdout and \
        "Set force_stop: true" in run.stdout, run.stdout[-2000:]
    forced = play(tmp_path, double, "forced.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            state: stopped
            shutdown_timeout: 1
            force_stop: true
        """)
    run = installed_collection.playbook(forced)
    assert run.rc == 0 and not double.running(150), run
    assert "killed after shutdown_timeout (1 s): the app ignored its stop signal (force_stop)" in \
        run.task_results()[0]["actions"]


def test_bad_values_change_nothing_and_a_failed_start_leaves_nothing(installed_collection, busybox_double, tmp_path):
    double = busybox_double
    newline = play(tmp_path, double, "newline.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: bad
            ostemplate: local:vztmpl/base.tar.zst
            entrypoint: "/sbin/init\\n--evil"
            env: ["GOOD=1", "BAD=line one\\nline two"]
            state: started
        """)
    for check in (True, False):
        run = installed_collection.playbook(newline, check=check)
        assert run.rc != 0 and "contains a control character" in run.stdout and "nothing was changed" in \
            run.stdout, run.stdout[-2000:]
    assert double.backend.containers == {}

    # the start fails after the create: the container this task made is removed again
    double.backend.tasks.inject("vzstart", exitstatus="startup for container '160' failed")
    start = play(tmp_path, double, "start.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 160
            hostname: doomed
            ostemplate: local:vztmpl/base.tar.zst
            state: started
        """)
    run = installed_collection.playbook(start)
    assert run.rc != 0 and "startup for container '160' failed" in run.stdout, run.stdout[-2000:]
    assert "CT 160, created by this task, was removed again; nothing is left behind" in run.stdout
    assert double.backend.containers == {}

    # stopped on a container that does not exist is nothing to do, as absent is
    stopped = play(tmp_path, double, "stopped.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 161
            state: stopped
        """)
    run = installed_collection.playbook(stopped)
    assert run.rc == 0 and run.stats["localhost"]["changed"] == 0, run
    assert run.task_results()[0]["status"] == "absent" and double.backend.containers == {}


def test_check_mode_chains_see_what_earlier_tasks_would_do(installed_collection, busybox_double, tmp_path):
    double = busybox_double
    chain = play(tmp_path, double, "chain.yml", """\
        - name: create
          lxcri.proxmox.lxc_container:
            hostname: chained
            ostemplate: local:vztmpl/base.tar.zst
            state: started
        - name: snapshot it
          lxcri.proxmox.lxc_snapshot:
            hostname: chained
            name: before_change
        - name: stop it
          lxcri.proxmox.lxc_container:
            hostname: chained
            state: stopped
        - name: remove it
          lxcri.proxmox.lxc_container:
            hostname: chained
            state: absent
        - name: removed already
          lxcri.proxmox.lxc_container:
            hostname: chained
            state: absent
        """)
    run = installed_collection.playbook(chain, check=True, diff=True)
    assert run.rc == 0, run.stdout[-3000:]
    results = run.task_results()
    assert [r["changed"] for r in results] == [True, True, True, True, False], results
    assert results[1]["actions"] == ["created before_change"] and results[3]["actions"] == ["deleted"]
    assert all("check_mode_plan" not in r for r in results)
    assert double.backend.containers == {}

    # a real running container: stop, then absent without force, works in check mode as it would for real
    real = play(tmp_path, double, "real.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 170
            hostname: real
            ostemplate: local:vztmpl/base.tar.zst
            state: started
        """)
    assert installed_collection.playbook(real).rc == 0 and double.running(170)
    stop_then_remove = play(tmp_path, double, "stop-remove.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 170
            state: stopped
            shutdown_timeout: 1
            force_stop: true
        - lxcri.proxmox.lxc_container:
            vmid: 170
            state: absent
        """)
    before = double.state()
    run = installed_collection.playbook(stop_then_remove, check=True)
    assert run.rc == 0 and [r["changed"] for r in run.task_results()] == [True, True], run.stdout[-3000:]
    assert double.state() == before and double.running(170)
    # the same absent alone still refuses a running container, in check mode as in a real run
    remove = play(tmp_path, double, "remove.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 170
            state: absent
        """)
    run = installed_collection.playbook(remove, check=True)
    assert run.rc != 0 and "CT 170 is running; set force: true" in run.stdout, run.stdout[-2000:]
