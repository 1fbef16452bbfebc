"""lxcri.proxmox.oci_template through real ansible-playbook runs of the installed collection."""

import os
import re
import time

import pytest

from lxcri_testbed import hostile_layers as hl
from lxcri_testbed.ansible import write_play, write_pve_play
from lxcri_testbed.oci_build import Layer, ZeroBomb, image_blobs, write_image

pytestmark = pytest.mark.integration


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.oci_template")
    assert run.rc == 0, run
    for word in ("init_wrapper", "lxc_init_cmd", "pve_entrypoint", "registry_tls_verify", "api_token_secret",
                 "max_expansion_ratio", "max_uncompressed_bytes"):
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
    assert res["changed"] is True and res["size"] is None and res["conversion"] is None
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
    assert res["conversion"]["passes"] == 1 and res["conversion"]["members"] > 0  # (RETURN: conversion)
    assert res["conversion"]["same_path_repeats"] == res["conversion"]["pax_global_headers"] == 0

    second = installed_collection.playbook(play, diff=True)
    assert second.rc == 0, second
    assert second.stats["localhost"]["changed"] == 0
    assert second.task_results()[0]["sha256"] == res["sha256"]
    assert second.task_results()[0]["conversion"] == res["conversion"]  # from the sidecar

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
    assert os.listdir(str(tmp_path / "dest")) == []  # nothing, not even a lock file


HOSTILE_LAYERS = {
    # a pax record whose length is a 1 MB run of digits (quadratic in tarfile before CPython 3.11.10)
    "pax-length": (lambda: hl.archive(hl.member("a"), hl.pax([b"9" * 1000000 + b" path=x\n"]), hl.member("b")),
                   "member 2 (header at offset 512): pax record at byte 0: its length is not 1 to 20 decimal digits"),
    # a uid that is not a number (tarfile: uid 0)
    "pax-uid": (lambda: hl.archive(hl.pax([("uid", "0x0")]), hl.member("f")),
                "member 1 (header at offset 0): 'f': pax record uid='0x0' is not a decimal number of at most 20 digits"),
    # members each under its own chain of 1990 unlisted directories
    "implied-dirs": (lambda: hl.TarStream(hl.deep_distinct(count=300)).read(),
                     ": the members imply more than max_implied_dirs (262144) directories that no member lists"),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE_LAYERS))
def test_a_hostile_layer_fails_with_the_engines_message(installed_collection, tmp_path, hostile):
    """Issue 18: the bounds of the layer flattener, through the module."""
    make, message = HOSTILE_LAYERS[hostile]
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "t", [Layer().dir("bin").busybox(("sleep",)), hl.RawLayer(make())],
                      {"Cmd": ["/bin/sleep", "1"]})
    play = write_play(tmp_path, "hostile.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
        """ % (ref, tmp_path / "dest", tmp_path / "cache"))
    start = time.monotonic()
    run = installed_collection.playbook(play)
    assert run.rc != 0 and run.results["tasks"][0]["status"] == "failed", run
    msg = run.task_results()[0]["msg"]
    assert re.search(r"layer 2 of 3 \(sha256:[0-9a-f]{64}\): ", msg) and message in msg, msg
    assert time.monotonic() - start < 120
    assert os.listdir(str(tmp_path / "dest")) == []  # nothing, not even a lock file


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


# ---------------------------------------------------------------------------
# issue 21: check mode with a cold cache, refusals before the upload, no failed upload left on the storage

def test_check_mode_cold_cache_returns_the_runtime_the_config_gives(installed_collection, registry_image, tmp_path):
    """The image only in the registry: check mode reads its manifest and config, returns what they tell, and
    writes nothing, not even into an existing (empty) cache directory."""
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    cache.mkdir()
    play = write_play(tmp_path, "cold.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
            registry_tls_verify: false
        """ % (registry_image.refs["open"], dest, cache))
    check = installed_collection.playbook(play, check=True)
    assert check.rc == 0, check
    cold = check.task_results()[0]["runtime"]
    assert list(cache.iterdir()) == [] and not dest.exists(), "check mode wrote into the cache or dest"
    assert cold["argv"] == ["/bin/sleep", "3600"] and cold["cwd"] == "/app" and cold["stop_signal"] == "SIGTERM"
    assert "GREETING=hello world" in cold["env"] and cold["pve_env"] == "\0".join(cold["env"])
    assert cold["lxc_init_cmd"] == cold["pve_entrypoint"] == "/bin/sleep 3600"
    assert (cold["uid"], cold["gid"], cold["groups"]) == (1000, 1000, [])  # USER 1000:1000 needs no /etc/passwd
    assert cold["needs_layers"] == []
    built = installed_collection.playbook(play)
    assert built.rc == 0, built
    runtime = built.task_results()[0]["runtime"]
    assert dict(cold, needs_layers=None) == dict(runtime, needs_layers=None)


def test_check_mode_cold_cache_leaves_null_only_what_needs_the_layers(installed_collection, tmp_path):
    layout = str(tmp_path / "layout")
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n"
    ref = write_image(layout, "named", [Layer().dir("bin").busybox(("sh", "sleep")).dir("etc")
                                        .file("etc/passwd", passwd).file("etc/group", "app:x:1000:\nvideo:x:44:app\n")],
                      {"Entrypoint": ["/bin/sh", "-c", "sleep 3600; exit 0"], "User": "app", "WorkingDir": "/srv",
                       "StopSignal": "SIGINT"})
    play = write_play(tmp_path, "named.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s
            lxc_version: "6.0"
        """ % (ref, tmp_path / "dest", tmp_path / "cache"))
    check = installed_collection.playbook(play, check=True)
    assert check.rc == 0, check
    cold = check.task_results()[0]["runtime"]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "dest").exists()
    assert cold["needs_layers"] == ["uid", "gid", "groups", "lxc_config"]
    assert (cold["uid"], cold["gid"], cold["groups"], cold["lxc_config"]) == (None, None, None, None)
    assert cold["user"] == "app" and cold["cwd"] == "/srv" and cold["stop_signal"] == "SIGINT"
    assert cold["lxc_init_cmd"] == cold["pve_entrypoint"] == '/bin/sh -c "sleep 3600; exit 0"'
    built = installed_collection.playbook(play).task_results()[0]["runtime"]
    assert (built["uid"], built["gid"], built["groups"]) == (1000, 1000, [44])
    for key in set(built) - set(cold["needs_layers"]):
        assert cold[key] == built[key], key


def _uploads(double):
    return [r for r in double.requests if r[0] == "POST" and r[1].endswith("/upload")]


def _storage_files(double):
    return sorted(os.listdir(os.path.join(double.backend.storages["local"]["path"], "template", "cache")))


def test_storage_refuses_before_pulling_what_proxmox_ve_8_cannot_run(installed_collection, registry_image, tmp_path):
    from pve_double.server import Double
    double = Double(str(tmp_path / "pve"), mode="8").start()
    cache = tmp_path / "cache"
    try:
        play = write_pve_play(tmp_path, double, "eight.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
                format: vztmpl
            """ % (registry_image.refs["open"], cache))
        for check in (True, False):
            run = installed_collection.playbook(play, check=check)
            assert run.rc != 0, run
            msg = run.task_results()[0]["msg"]
            assert "lxc_container could not run it on node pve1: Proxmox VE 8.1 has no entrypoint/env" in msg
            assert "init_wrapper: always" in msg and "require_runnable: false" in msg
            assert _uploads(double) == [] and _storage_files(double) == []
            assert not (cache / "blobs" / "sha256").exists() or os.listdir(str(cache / "blobs" / "sha256")) == []
        archive = installed_collection.playbook(write_pve_play(tmp_path, double, "eight-oci.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
                format: oci-archive
                init_wrapper: always
            """ % (registry_image.refs["open"], cache)), check=True)
        assert archive.rc != 0 and "cannot import an OCI archive" in archive.task_results()[0]["msg"], archive
        # raw_lxc on the node can carry it: the user says so
        allowed = installed_collection.playbook(write_pve_play(tmp_path, double, "eight-raw.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
                format: vztmpl
                require_runnable: false
            """ % (registry_image.refs["open"], cache)))
        assert allowed.rc == 0 and allowed.task_results()[0]["changed"], allowed
        assert _storage_files(double) == [allowed.task_results()[0]["filename"]]
        # the default (format auto) picks what an 8 node runs, a plain template with the generated init; that
        # init must switch to uid 1000, which this image has no tool for: refused, saying what is missing and why
        default = installed_collection.playbook(write_pve_play(tmp_path, double, "eight-auto.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
            """ % (registry_image.refs["open"], cache)))
        msg = default.task_results()[0]["msg"]
        assert default.rc != 0 and "must switch to uid 1000" in msg, default
        assert "(format auto chose vztmpl with init_wrapper always: Proxmox VE 8.1 on node pve1 has no OCI import" \
            in msg, msg
    finally:
        double.stop()


def test_storage_on_9_1_refuses_a_plain_template_of_a_user_or_workdir(installed_collection, registry_image, tmp_path):
    """USER 1000:1000 and WORKDIR /app: the config tells, so check mode refuses too; oci-archive carries them."""
    from pve_double.server import Double
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        play = write_pve_play(tmp_path, double, "nine.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
                format: vztmpl
            """ % (registry_image.refs["open"], tmp_path / "cache"))
        for check in (True, False):
            run = installed_collection.playbook(play, check=check)
            assert run.rc != 0, run
            msg = run.task_results()[0]["msg"]
            assert "the image runs with uid 1000, gid 1000, working directory /app" in msg, msg
            for hint in ("format: oci-archive", "init_wrapper: always", "raw_lxc: true", "require_runnable: false"):
                assert hint in msg
            assert _uploads(double) == [] and _storage_files(double) == []
        assert not os.path.exists(str(tmp_path / "cache" / "templates"))  # refused before the build
        archive = installed_collection.playbook(write_pve_play(tmp_path, double, "nine-oci.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                registry_tls_verify: false
                storage: local
                cache_dir: %s
                format: oci-archive
            """ % (registry_image.refs["open"], tmp_path / "cache")))
        assert archive.rc == 0, archive
        assert _storage_files(double) == [archive.task_results()[0]["filename"]]
    finally:
        double.stop()


def test_storage_refuses_after_the_build_what_only_the_layers_tell(installed_collection, tmp_path):
    """Root with supplementary groups (its /etc/group): check mode without the layers warns; the real run builds,
    sees the groups and refuses before the upload, leaving nothing on the storage or in the cache's templates."""
    from pve_double.server import Double
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "root", [Layer().dir("bin").busybox(("sh", "sleep")).dir("etc")
                                       .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
                                       .file("etc/group", "root:x:0:\nwheel:x:10:root\n")],
                      {"Cmd": ["/bin/sleep", "3600"]})
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        play = write_pve_play(tmp_path, double, "root.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                storage: local
                cache_dir: %s
                format: vztmpl
            """ % (ref, tmp_path / "cache"))
        check = installed_collection.playbook(play, check=True)
        assert check.rc == 0, check
        result = check.task_results()[0]
        assert result["changed"] and result["runtime"]["needs_layers"] == ["gid", "groups", "lxc_config"]
        assert "check mode cannot tell yet whether lxc_container can run" in " ".join(result.get("warnings", [])) + \
            check.stdout + check.stderr
        run = installed_collection.playbook(play)
        assert run.rc != 0, run
        assert "supplementary groups 10" in run.task_results()[0]["msg"]
        assert _uploads(double) == [] and _storage_files(double) == []
        leftovers = [f for f in os.listdir(str(tmp_path / "cache" / "templates")) if not f.endswith(".lock")]
        assert leftovers == []  # no local copy, no sidecar record
    finally:
        double.stop()


def test_an_upload_cut_off_midway_leaves_no_volume(installed_collection, tmp_path):
    """The node's copy breaks halfway and its own cleanup fails too (pve-storage's upload to another node: scp,
    then 'rm -f' over ssh): the module removes the partial volume and says so; the next run uploads it whole."""
    from pve_double.server import Double
    from pve_double.tasks import TaskFailed
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "cut", [Layer().dir("bin").busybox(("sh", "sleep"))], {"Cmd": ["/bin/sleep", "3600"]})
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    backend = double.backend
    whole = backend.storage_upload

    def cut_off(params, user, files):
        name, tmp = os.path.basename(files["filename"][0]), files["filename"][1]
        target = os.path.join(backend.storages[params["storage"]]["path"], "template", "cache", name)

        def work(task):
            with open(tmp, "rb") as source, open(target, "wb") as out:
                out.write(source.read(os.path.getsize(tmp) // 2))
            os.unlink(tmp)
            raise TaskFailed("import failed: scp: connection lost; cleanup failed: ssh: connect to host: timeout")

        return backend.tasks.start("imgcopy", None, user, work)

    try:
        play = write_pve_play(tmp_path, double, "cut.yml", """\
            - lxcri.proxmox.oci_template:
                image: %s
                storage: local
                format: oci-archive
                cache_dir: %s
            """ % (ref, tmp_path / "cache"))
        backend.storage_upload = cut_off
        run = installed_collection.playbook(play)
        assert run.rc != 0, run
        msg = run.task_results()[0]["msg"]
        assert "connection lost" in msg and "that the failed upload left on the storage" in msg, msg
        assert _storage_files(double) == []
        backend.storage_upload = whole
        again = installed_collection.playbook(play)
        assert again.rc == 0 and again.task_results()[0]["changed"], again
        result = again.task_results()[0]
        on_disk = os.path.join(backend.storages["local"]["path"], "template", "cache", result["filename"])
        assert os.path.getsize(on_disk) == result["size"]
    finally:
        double.stop()


# ---------------------------------------------------------------------------
# decompression bounds, by default, with options to raise them

def _template_play(tmp_path, ref, **options):
    lines = "".join("\n            %s: %s" % item for item in sorted(options.items()))
    return write_play(tmp_path, "bounds.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            dest: %s
            cache_dir: %s%s
        """ % (ref, tmp_path / "dest", tmp_path / "cache", lines))


def _templates(tmp_path):
    dest = str(tmp_path / "dest")
    return [f for f in os.listdir(dest) if not f.endswith(".lock")] if os.path.isdir(dest) else []


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_bomb_layer_is_refused_by_default_and_converts_when_the_ratio_is_raised(installed_collection, tmp_path,
                                                                                  compression):
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "bomb", [Layer().dir("bin").busybox(("sleep",)), ZeroBomb(1 << 30)],
                      {"Cmd": ["/bin/sleep", "1"]}, compression=compression)
    bomb = image_blobs(layout, "bomb")[0]["layers"][-1]
    run = installed_collection.playbook(_template_play(tmp_path, ref))
    assert run.rc != 0, run  # gzip: 1 GiB from 1 MiB was converted
    msg = run.task_results()[0]["msg"]
    assert "%s): expands beyond 100 times its compressed size of %d bytes" % (bomb["digest"], bomb["size"]) in msg
    assert "raise max_expansion_ratio" in msg
    assert _templates(tmp_path) == []
    if compression == "gzip":  # deflate's 1030:1 passes 2000; zstd's does not
        run = installed_collection.playbook(_template_play(tmp_path, ref, max_expansion_ratio=2000))
        assert run.rc == 0, run
        assert len(_templates(tmp_path)) == 2  # the template and its sidecar


def test_max_uncompressed_bytes_bounds_the_image(installed_collection, tmp_path):
    layout = str(tmp_path / "layout")
    ref = write_image(layout, "big", [Layer().dir("bin").busybox(("sleep",)), Layer().file("data", os.urandom(3 << 20))],
                      {"Cmd": ["/bin/sleep", "1"]})
    run = installed_collection.playbook(_template_play(tmp_path, ref, max_uncompressed_bytes="2M"))
    assert run.rc != 0, run
    assert "the layers expand beyond max_uncompressed_bytes (2097152); raise max_uncompressed_bytes" \
        in run.task_results()[0]["msg"]
    assert _templates(tmp_path) == []
    run = installed_collection.playbook(_template_play(tmp_path, ref, max_uncompressed_bytes="lots"))
    assert run.rc != 0 and "max_uncompressed_bytes: " in run.task_results()[0]["msg"], run
    run = installed_collection.playbook(_template_play(tmp_path, ref, max_uncompressed_bytes="8M"))
    assert run.rc == 0, run
