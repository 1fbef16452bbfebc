"""lxcri.proxmox.oci_image through real ansible-playbook runs of the installed collection."""

import os

import pytest

from lxcri_testbed.ansible import write_play

pytestmark = pytest.mark.integration


def blob_count(cache):
    base = os.path.join(str(cache), "blobs", "sha256")
    return len(os.listdir(base)) if os.path.isdir(base) else 0


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.oci_image")
    assert run.rc == 0, run
    for word in ("registry_tls_verify", "cache_max_bytes", "would_fetch", "docker-archive"):
        assert word in run.stdout


def test_present_idempotent_check_mode_diff_inspect_absent(installed_collection, registry_image, tmp_path):
    cache = tmp_path / "cache"
    image = registry_image.refs["open"]
    play = write_play(tmp_path, "pull.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            cache_dir: %s
            registry_tls_verify: false
          register: pulled
        """ % (image, cache))

    check = installed_collection.playbook(play, check=True, diff=True)
    assert check.rc == 0, check
    result = check.task_results()[0]
    assert result["changed"] is True
    assert {b["digest"] for b in result["would_fetch"]} >= {layer["digest"] for layer in result["layers"]}
    assert not cache.exists(), "check mode created the cache (directories or lock files)"
    assert result["diff"]["before"]["manifest_digest"] is None
    assert result["diff"]["after"]["manifest_digest"] == registry_image.digest
    assert "manifest_digest" in check.stdout  # the diff is shown

    first = installed_collection.playbook(play, diff=True)
    assert first.rc == 0, first
    assert first.stats["localhost"]["changed"] == 1
    assert blob_count(cache) == 5
    res = first.task_results()[0]
    assert res["manifest_digest"] == registry_image.digest
    assert res["config"]["Entrypoint"] == ["/bin/sleep"] and res["config"]["Cmd"] == ["3600"]
    assert all(os.path.exists(layer["path"]) for layer in res["layers"])

    second = installed_collection.playbook(play)
    assert second.rc == 0, second
    assert second.stats["localhost"]["changed"] == 0
    assert second.task_results()[0]["fetched_bytes"] == 0

    recheck = installed_collection.playbook(play, check=True)
    assert recheck.stats["localhost"]["changed"] == 0
    assert recheck.task_results()[0]["would_fetch"] == []

    inspect_play = write_play(tmp_path, "inspect.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            state: inspect
            cache_dir: %s
            registry_tls_verify: false
        """ % (image, tmp_path / "other-cache"))
    inspected = installed_collection.playbook(inspect_play)
    assert inspected.rc == 0, inspected
    res = inspected.task_results()[0]
    assert res["changed"] is False and res["config"]["WorkingDir"] == "/app"
    assert res["layers"][0]["path"] is None
    assert not (tmp_path / "other-cache").exists()

    absent_play = write_play(tmp_path, "absent.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            state: absent
            cache_dir: %s
        """ % (image, cache))
    absent_check = installed_collection.playbook(absent_play, check=True)
    assert absent_check.stats["localhost"]["changed"] == 1 and blob_count(cache) == 5
    removed = installed_collection.playbook(absent_play)
    assert removed.stats["localhost"]["changed"] == 1
    assert blob_count(cache) == 0
    again = installed_collection.playbook(absent_play)
    assert again.stats["localhost"]["changed"] == 0
    nowhere = write_play(tmp_path, "absent-nowhere.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            state: absent
            cache_dir: %s
        """ % (image, tmp_path / "never"))
    untouched = installed_collection.playbook(nowhere, check=True)
    assert untouched.rc == 0 and untouched.stats["localhost"]["changed"] == 0, untouched
    assert not (tmp_path / "never").exists()


def test_credentials_are_not_logged_and_errors_guide(installed_collection, registry_image, bed, tmp_path):
    reg = bed["registry_auth"]
    play = write_play(tmp_path, "auth.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            cache_dir: %s
            registry_tls_verify: false
            registry_username: %s
            registry_password: %s
        """ % (registry_image.refs["auth"], tmp_path / "cache", reg["username"], reg["password"]))
    run = installed_collection.playbook(play, diff=True)
    assert run.rc == 0, run
    assert reg["password"] not in run.stdout + run.stderr
    assert reg["password"] not in str(run.results)

    anonymous = write_play(tmp_path, "anon.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            cache_dir: %s
            registry_tls_verify: false
        """ % (registry_image.refs["auth"], tmp_path / "cache2"))
    failed = installed_collection.playbook(anonymous)
    assert failed.rc != 0
    msg = failed.task_results()[0]["msg"]
    assert registry_image.refs["auth"] in msg and "HTTP 401" in msg
    assert "set registry_username/registry_password" in msg


@pytest.mark.parametrize("image,fragment", [
    ("docker.io/UPPER/case", "must be lower-case"),
    ("oci-layout:relative", "must be absolute"),
    ("nginx@sha1:" + "0" * 40, "not accepted"),
])
def test_bad_input_fails_before_touching_anything(installed_collection, tmp_path, image, fragment):
    run = installed_collection.module("lxcri.proxmox.oci_image",
                                      {"image": image, "cache_dir": str(tmp_path / "cache")})
    assert run.rc != 0
    assert fragment in run.data["msg"]
    assert not (tmp_path / "cache").exists()
