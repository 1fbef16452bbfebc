"""The callback plugin lxcri.proxmox.events (issue 20) in real ansible-playbook runs: one JSON line per result of
this collection's modules, with the figures they return, and nothing secret.

A registry pull with credentials (bytes, layers, then cache hits), a container created over the API double (API
requests, task waits), a metrics textfile written, left unchanged and refused, a loop, a no_log task, a skipped one
and a task of another collection (no line).
"""

import json

import pytest

from lxcri_testbed.ansible import write_pve_play

pytestmark = pytest.mark.integration


def test_one_line_per_task_result_with_figures_and_no_secret(installed_collection, registry_image, bed, tmp_path):
    from pve_double.server import Double  # pylint: disable=import-outside-toplevel
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        template = double.add_busybox_template("base.tar.zst", tmp_path)
        reg = bed["registry_auth"]
        textfile = tmp_path / "textfile"
        textfile.mkdir()
        play = write_pve_play(tmp_path, double, "play.yml", """\
            - name: Pull with credentials
              lxcri.proxmox.oci_image:
                image: %(image)s
                cache_dir: %(cache)s
                registry_tls_verify: false
                registry_username: %(user)s
                registry_password: %(password)s
              loop: [first, again]
            - name: Create a container
              lxcri.proxmox.lxc_container:
                vmid: 140
                hostname: events
                ostemplate: %(template)s
                storage: local
                state: stopped
            - name: Write metrics
              lxcri.proxmox.prometheus_textfile:
                name: events
                directory: %(textfile)s
                metrics: [{name: lxcri_events_test, value: 1}]
            - name: Write them again
              lxcri.proxmox.prometheus_textfile:
                name: events
                directory: %(textfile)s
                metrics: [{name: lxcri_events_test, value: 1}]
            - name: A metric Prometheus would refuse
              lxcri.proxmox.prometheus_textfile:
                name: events
                directory: %(textfile)s
                metrics: [{name: 1bad, value: 1}]
              ignore_errors: true
            - name: Secret task
              lxcri.proxmox.prometheus_textfile:
                name: secret
                directory: %(textfile)s
                metrics: [{name: lxcri_secret, value: 1, labels: {token: hunter2}}]
              no_log: true
            - name: Skipped
              lxcri.proxmox.zfs_info:
                name: nowhere
              when: false
            - name: Not ours
              ansible.builtin.debug:
                msg: nothing to record
            """ % {"image": registry_image.refs["auth"], "cache": tmp_path / "cache", "user": reg["username"],
                   "password": reg["password"], "template": template, "textfile": textfile})
        events = tmp_path / "events" / "lxcri.jsonl"
        run = installed_collection.playbook(play, env={
            "ANSIBLE_CALLBACKS_ENABLED": "lxcri_results,lxcri.proxmox.events", "LXCRI_EVENTS_PATH": str(events)})
        assert run.rc == 0, run.stdout[-3000:]
    finally:
        double.kill_containers()
        double.stop()
    text = events.read_text()
    assert reg["password"] not in text and "hunter2" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    by_task = dict((line["task"], line) for line in lines)
    assert [line["task"] for line in lines] == ["Pull with credentials", "Create a container", "Write metrics",
                                                "Write them again", "A metric Prometheus would refuse", None,
                                                "Skipped"]
    assert oct(events.stat().st_mode & 0o777) == "0o600"
    for line in lines:
        assert line["host"] == "localhost" and line["playbook"] == "play.yml" and line["duration"] >= 0
        assert line["module"].startswith("lxcri.proxmox.")
    pull = by_task["Pull with credentials"]
    layers = pull["figures"]["layers"]
    assert pull["module"] == "lxcri.proxmox.oci_image" and pull["items"] == 2 and pull["changed"]
    # the first item fetched every layer (and the config), the second none: its layers are cache hits
    assert pull["figures"]["fetched_bytes"] > 0 and pull["figures"]["cache_hits"] == layers // 2
    create = by_task["Create a container"]
    assert create["changed"] and create["figures"]["api_requests"] >= 3
    assert create["figures"]["timings"]["create"] > 0 and create["figures"]["task_wait_seconds"] > 0
    assert by_task["Write metrics"]["changed"] and not by_task["Write them again"]["changed"]
    refused = by_task["A metric Prometheus would refuse"]
    assert refused["failed"] and refused["error_kind"] == "metrics" and "msg" not in json.dumps(refused)
    secret = lines[5]
    assert secret["module"] == "lxcri.proxmox.prometheus_textfile" and "figures" not in secret
    assert by_task["Skipped"]["skipped"] and "figures" not in by_task["Skipped"]
