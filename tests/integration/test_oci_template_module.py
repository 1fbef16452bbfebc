"""lxcri.proxmox.oci_template through real ansible-playbook runs of the installed collection."""

import os

import pytest

from lxcri_testbed.ansible import write_play, write_pve_play
from lxcri_testbed.oci_build import Layer, write_image

pytestmark = pytest.mark.integration


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.oci_template")
    assert run.rc == 0, run
    for word in ("init_wrapper", "lxc_init_cmd", "pve_entrypoint", "registry_tls_verify", "api_token_secret"):
        assert word in run.stdout


def test_present_check_mode_idempotence_diff_absent(installed_collection, registry_image, tmp_path):
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    play = write_play(tmp_path, "template.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
            registry_tls_verify: false
            env:
              EXTRA: "x = y"
          register: tmpl
        """ % (registry_image.refs["open"], dest, cache))

    check = installed_collection.playbook(play, check=True, diff=True)
    assert check.rc == 0, check
    res = check.task_results()[0]
    assert res["changed"] is True and res["size"] is None
    assert not dest.exists() or os.listdir(str(dest)) == [], "check mode wrote a template"
    assert res["diff"]["before"]["template"] is None

    first = installed_collection.playbook(play, diff=True)
    assert first.rc == 0, first
    assert first.stats["localhost"]["changed"] == 1
    res = first.task_results()[0]
    assert os.path.exists(res["path"]) and os.path.exists(res["sidecar"])
    runtime = res["runtime"]
    assert runtime["argv"] == ["/bin/sleep", "3600"]
    assert runtime["env"][-1] == "EXTRA=x = y" and "GREETING=hello world" in runtime["env"]
    assert (runtime["uid"], runtime["gid"], runtime["cwd"]) == (1000, 1000, "/app")
    assert res["diff"]["after"]["template"]["manifest_digest"] == registry_image.digest

    second = installed_collection.playbook(play, diff=True)
    assert second.rc == 0, second
    assert second.stats["localhost"]["changed"] == 0
    assert second.task_results()[0]["sha256"] == res["sha256"]

    gone = installed_collection.playbook(write_play(tmp_path, "absent.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
            registry_tls_verify: false
            env:
              EXTRA: "x = y"
            state: absent
        """ % (registry_image.refs["open"], dest, cache)))
    assert gone.rc == 0, gone
    assert gone.stats["localhost"]["changed"] == 1 and not os.path.exists(res["path"])


def test_bad_input_fails_with_a_clear_message(installed_collection, tmp_path):
    layout = str(tmp_path / "layout")
    config = {"Cmd": ["/bin/sleep", "1"], "User": "nobody"}
    ref = write_image(layout, "t", [Layer().dir("bin").busybox(("sleep",))], config)
    play = write_play(tmp_path, "bad.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
        """ % (ref, tmp_path / "dest", tmp_path / "cache"))
    run = installed_collection.playbook(play)
    assert run.rc != 0
    assert run.results["tasks"][0]["status"] == "failed"
    assert "user 'nobody' is not defined in the image" in run.task_results()[0]["msg"]
    assert [f for f in os.listdir(str(tmp_path / "dest")) if not f.endswith(".lock")] == []


def test_upload_to_a_storage_with_module_defaults_group(installed_collection, tmp_path, bed):
    """Credentials set once for group/lxcri.proxmox.pve; the secret never shows, even with -vvv."""
    from pve_double.server import DEFAULT_PASSWORD, Double
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "app", [Layer().dir("bin").busybox(("sleep",))], {"Cmd": ["/bin/sleep", "3600"]})
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        play = write_pve_play(tmp_path, double, "upload.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                format: oci-archive
                storage: local
                cache_dir: %s
              register: uploaded
            """ % (ref, tmp_path / "cache"))
        first = installed_collection.playbook(play, verbosity=3)
        assert first.rc == 0, first
        result = first.task_results()[0]
        assert result["changed"] and result["volid"] == "local:vztmpl/%s" % result["filename"]
        on_disk = os.path.join(double.backend.storages["local"]["path"], "template", "cache", result["filename"])
        assert os.path.getsize(on_disk) == result["size"]
        assert DEFAULT_PASSWORD not in first.stdout + first.stderr
        second = installed_collection.playbook(play)
        assert second.rc == 0 and second.stats["localhost"]["changed"] == 0, second
    finally:
        double.stop()
