"""lxcri.proxmox.oci_image through real ansible-playbook runs of the installed collection."""

import os
import tarfile
import time

import pytest

from lxcri_testbed.ansible import write_play
from lxcri_testbed.oci_build import (
    Layer, ZeroBomb, classic_docker_archive, gnu_tar, gzip_archive_bomb, image_blobs, layer_path, sparse_layer,
    write_image)

pytestmark = pytest.mark.integration


def blob_count(cache):
    base = os.path.join(str(cache), "blobs", "sha256")
    return len(os.listdir(base)) if os.path.isdir(base) else 0


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.oci_image")
    assert run.rc == 0, run
    for word in ("registry_tls_verify", "cache_max_bytes", "would_fetch", "docker-archive", "max_expansion_ratio",
                 "max_uncompressed_bytes"):
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


# ---------------------------------------------------------------------------
# hostile local sources: refused at once, and the cache gets nothing from outside the layout

SECRET = b"a host file outside the layout\n"


def cache_files(cache):
    """{path relative to the cache: size} of every file under it."""
    found = {}
    for top, dummy, files in os.walk(str(cache)):
        for name in files:
            found[os.path.relpath(os.path.join(top, name), str(cache))] = os.path.getsize(os.path.join(top, name))
    return found


def pull_play(tmp_path, image, cache, **options):
    lines = "".join("\n    %s: %s" % item for item in sorted(options.items()))
    return write_play(tmp_path, "pull.yml", """\
        - lxcri.proxmox.oci_image:
            image: %s
            cache_dir: %s%s
        """ % (image, cache, lines.replace("\n", "\n        ")))


@pytest.fixture
def local_image(tmp_path):
    """A two-layer image in a layout: (layout, reference, top layer descriptor)."""
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "t", [Layer().dir("bin").file("bin/a", b"a" * 5000), Layer().file("b", b"b" * 3000)],
                      {"Cmd": ["/bin/a"]})
    return layout, ref, image_blobs(layout, "t")[0]["layers"][-1]


def test_a_fifo_blob_fails_at_once(installed_collection, local_image, tmp_path):
    layout, ref, layer = local_image
    blob = layer_path(layout, "t")
    os.unlink(blob)
    # the same playbook failing at once on a missing blob: what ansible-playbook itself costs on this machine
    # just now (about 1.2 s when idle, several seconds beside other xdist workers)
    start = time.monotonic()
    missing = installed_collection.playbook(pull_play(tmp_path, ref, tmp_path / "cache-missing",
                                                      keep_corrupt="true"), timeout=30)
    baseline = time.monotonic() - start
    assert missing.rc != 0, missing
    os.mkfifo(blob)
    try:
        start = time.monotonic()
        run = installed_collection.playbook(pull_play(tmp_path, ref, tmp_path / "cache", keep_corrupt="true"),
                                            timeout=30)
        elapsed = time.monotonic() - start
    finally:  # a reader blocked on the FIFO (the bug) gets its end of file
        try:
            os.close(os.open(blob, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert run.rc != 0, run
    assert "is a FIFO, not a regular file: refused without reading it" in run.task_results()[0]["msg"]
    # a reader blocked on the FIFO would wait for the 30 s timeout; refusing it costs no more than a missing blob
    assert elapsed < baseline + 3.8, "the playbook took %.1f s, %.1f s with a missing blob" % (elapsed, baseline)
    assert not os.path.exists(str(tmp_path / "cache" / "corrupt"))


@pytest.mark.parametrize("target", ["outside", "/dev/zero"])
def test_a_blob_linked_out_of_the_layout_is_not_read_not_even_for_keep_corrupt(installed_collection, local_image,
                                                                               tmp_path, target):
    layout, ref, layer = local_image
    if target == "outside":
        target = str(tmp_path / "outside")
        with open(target, "wb") as handle:
            handle.write(SECRET)
    blob = layer_path(layout, "t")
    os.unlink(blob)
    os.symlink(target, blob)
    cache = tmp_path / "cache"
    run = installed_collection.playbook(pull_play(tmp_path, ref, cache, keep_corrupt="true"), timeout=30)
    assert run.rc != 0, run
    assert "is a symbolic link leading out of the layout" in run.task_results()[0]["msg"]
    assert sum(cache_files(cache).values()) < 65536 and not os.path.exists(str(cache / "corrupt"))
    for rel in cache_files(cache):
        with open(os.path.join(str(cache), rel), "rb") as handle:
            assert SECRET not in handle.read()


@pytest.mark.parametrize("kind", ["oci-layout", "oci-archive"])
def test_a_blob_longer_than_its_descriptor_costs_only_its_size(installed_collection, local_image, tmp_path, kind):
    layout, ref, layer = local_image
    with open(layer_path(layout, "t"), "ab") as handle:
        handle.write(os.urandom(32 << 20))
    if kind == "oci-archive":
        ref = "oci-archive:%s:t" % gnu_tar(layout, str(tmp_path / "image.tar"))
    cache = tmp_path / "cache"
    run = installed_collection.playbook(pull_play(tmp_path, ref, cache, keep_corrupt="true"))
    assert run.rc != 0, run
    assert "more than the %d bytes the descriptor says" % layer["size"] in run.task_results()[0]["msg"]
    kept = dict((name, size) for name, size in cache_files(cache).items() if name.startswith("corrupt"))
    assert list(kept.values()) == [layer["size"]]  # it was all 32 MiB


def test_sparse_archive_members_are_refused(installed_collection, local_image, tmp_path):
    layout, dummy, dummy2 = local_image
    blob = sparse_layer(layout, "t", 256 << 20)
    archive = gnu_tar(layout, str(tmp_path / "image.tar"), sparse=True)
    cache = tmp_path / "cache"
    run = installed_collection.playbook(pull_play(tmp_path, "oci-archive:%s:t" % archive, cache))
    assert run.rc != 0, run  # it pulled, writing 256 MiB into the cache
    assert "is sparse: it stores" in run.task_results()[0]["msg"]
    assert "expands to %d" % os.path.getsize(blob) in run.task_results()[0]["msg"]
    assert sum(cache_files(cache).values()) < (1 << 20)

    layer = str(tmp_path / "layer.tar")
    info = tarfile.TarInfo("big")
    info.size = 256 << 20
    with open(layer, "wb") as handle:
        handle.write(info.tobuf(tarfile.PAX_FORMAT))
        handle.truncate(512 + (256 << 20) + 1024)
    saved = classic_docker_archive(str(tmp_path), str(tmp_path / "save.tar"), [layer],
                                   {"architecture": "amd64", "os": "linux"}, sparse=True)
    run = installed_collection.playbook(pull_play(tmp_path, "docker-archive:%s" % saved, tmp_path / "cache2"))
    assert run.rc != 0, run
    assert "0/layer.tar is sparse" in run.task_results()[0]["msg"]


def test_verify_diff_ids_stops_a_gzip_bomb_unless_the_ratio_is_raised(installed_collection, tmp_path):
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "bomb", [Layer().dir("bin"), ZeroBomb(1 << 30)], {"Cmd": ["/bin/sh"]})
    bomb = image_blobs(layout, "bomb")[0]["layers"][-1]
    run = installed_collection.playbook(pull_play(tmp_path, ref, tmp_path / "cache", verify_diff_ids="true"))
    assert run.rc != 0, run
    msg = run.task_results()[0]["msg"]
    assert "layer %s expands beyond 100 times its compressed size of %d bytes" % (bomb["digest"], bomb["size"]) in msg
    assert "raise max_expansion_ratio" in msg
    assert not [name for name in cache_files(tmp_path / "cache") if name.startswith(("blobs/", "tmp/", "corrupt/"))
                and bomb["digest"].split(":")[1] in name]
    run = installed_collection.playbook(pull_play(tmp_path, ref, tmp_path / "cache", verify_diff_ids="true",
                                                  max_expansion_ratio=2000))
    assert run.rc == 0, run
    assert run.task_results()[0]["layers"][-1]["diff_id_verified"] is True
    run = installed_collection.playbook(pull_play(tmp_path, ref, tmp_path / "cache3", verify_diff_ids="true",
                                                  max_expansion_ratio=2000, max_uncompressed_bytes="512M"))
    assert run.rc != 0 and "raise max_uncompressed_bytes" in run.task_results()[0]["msg"], run


def test_a_compressed_archive_bomb_is_refused_unless_the_ratio_is_raised(installed_collection, local_image, tmp_path):
    layout, dummy, dummy2 = local_image
    archive = gzip_archive_bomb(layout, str(tmp_path / "image.tar.gz"))
    run = installed_collection.playbook(pull_play(tmp_path, "oci-archive:%s:t" % archive, tmp_path / "cache"))
    assert run.rc != 0, run  # it decompressed the whole GiB to list the members
    msg = run.task_results()[0]["msg"]
    assert "archive %s (gzip) expands beyond 100 times its compressed size" % archive in msg
    assert "raise max_expansion_ratio" in msg
    run = installed_collection.playbook(pull_play(tmp_path, "oci-archive:%s:t" % archive, tmp_path / "cache",
                                                  max_expansion_ratio=2000))
    assert run.rc == 0, run
