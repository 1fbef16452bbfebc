"""oci_template's runtime in check mode before the layers are read (issue 21).

The runtime from the image config alone must agree with the runtime a
build gives on every key it does not list in ``needs_layers``, and list
exactly the keys the image's /etc/passwd, /etc/group or /bin/sh decide.
"""

import io
import tarfile

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import BlobLayer, Limits, flatten
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import (
    ConfigError, ids_without_user_files, runtime_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import store_complete
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import (
    TemplateManager, _NullSink, finish_runtime, reserved_layer)

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n"
GROUP = "root:x:0:\nbin:x:1:root\napp:x:1000:\nvideo:x:44:app\n"
TRICKY = ["/bin/sh", "-c", "sleep 1; exit 0", "two words"]


def layer(shell=True, setpriv=False, symlinks=()):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, target in symlinks:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        files = {"etc/passwd": PASSWD, "etc/group": GROUP, "bin/sleep": "x"}
        if shell:
            files["bin/sh"] = "x"
        if setpriv:
            files["usr/bin/setpriv"] = "x"
        for name in ("bin", "etc", "usr", "usr/bin"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, text in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(text.encode()))
    return BlobLayer(out.getvalue())


def both(config, overrides=None, init_wrapper="auto", lxc="5.0", archive=False, shell=True, setpriv=False,
         symlinks=()):
    """(runtime from the config alone, runtime from the layers)."""
    overrides = overrides or {}
    cold = finish_runtime(runtime_spec(config, overrides, user_files=False), None, lxc, init_wrapper,
                          pve_import=archive)
    tree = flatten([layer(shell, setpriv, symlinks), reserved_layer(init_wrapper == "always")], _NullSink(), Limits())
    spec = runtime_spec(config, overrides, PASSWD, GROUP)
    warm = finish_runtime(spec, tree, lxc, init_wrapper, pve_import=archive)
    return cold, warm


def agree(cold, warm):
    unknown = set(cold["needs_layers"])
    for key, value in warm.items():
        if key in unknown:
            continue
        if key == "wrapper" and value:
            for item, inner in value.items():
                if "wrapper.%s" % item not in unknown:
                    assert cold["wrapper"][item] == inner, item
            continue
        assert cold[key] == value, key
    assert set(cold) - {"needs_layers"} == set(warm)


@pytest.mark.parametrize("user,ids", [
    ("", (0, None, None)),
    ("0", (0, None, None)),
    ("1000", (1000, None, None)),
    ("1000:1000", (1000, 1000, [])),
    ("app", (None, None, None)),
    ("app:44", (None, 44, [])),
    ("1000:video", (1000, None, [])),
])
def test_ids_without_user_files(user, ids):
    assert ids_without_user_files(user) == ids


def test_ids_without_user_files_still_refuses_a_malformed_user():
    with pytest.raises(ConfigError, match="expected name, uid"):
        ids_without_user_files("app:")


def test_config_alone_gives_argv_env_cwd_signal_init_cmd_and_pve_keys():
    config = {"Entrypoint": ["/bin/sleep"], "Cmd": ["3600"], "Env": ["A=b c"], "WorkingDir": "/srv",
              "User": "1000:1000", "StopSignal": "SIGINT", "ExposedPorts": {"80/tcp": {}},
              "Volumes": {"/data": {}}, "Labels": {"x": "y"}}
    cold, warm = both(config)
    assert cold["needs_layers"] == []  # uid:gid is complete: nothing waits for the layers
    assert cold["lxc_init_cmd"] == "/bin/sleep 3600" and cold["pve_entrypoint"] == "/bin/sleep 3600"
    assert cold["pve_env"] == "A=b c" and cold["cwd"] == "/srv" and cold["stop_signal"] == "SIGINT"
    assert cold["lxc_config"] == warm["lxc_config"]
    agree(cold, warm)


def test_a_named_user_leaves_only_the_ids_and_the_raw_lines_null():
    cold, warm = both({"Cmd": ["/bin/sleep", "1"], "User": "app"})
    assert cold["needs_layers"] == ["uid", "gid", "groups", "lxc_config"]
    assert (cold["uid"], cold["gid"], cold["groups"], cold["lxc_config"]) == (None, None, None, None)
    assert (warm["uid"], warm["gid"], warm["groups"]) == (1000, 1000, [44])
    assert cold["argv"] == ["/bin/sleep", "1"] and cold["pve_env"] == ""
    agree(cold, warm)


def test_root_without_user_needs_the_files_for_gid_and_groups():
    cold, warm = both({"Cmd": ["/bin/sleep", "1"]})
    assert cold["uid"] == 0 and cold["needs_layers"] == ["gid", "groups", "lxc_config"]
    assert warm["groups"] == [1]  # root is a member of bin in the image's /etc/group
    agree(cold, warm)


def test_an_exec_wrapper_is_predicted_and_marked_unverified():
    cold, warm = both({"Entrypoint": TRICKY, "User": "0:0"})
    assert warm["wrapper"]["kind"] == "exec" and cold["wrapper"] == warm["wrapper"]
    assert cold["lxc_init_cmd"] == "/.lxcri/exec" and cold["needs_layers"] == ["wrapper"]  # its /bin/sh
    agree(cold, warm)


def test_never_is_refused_without_the_layers():
    with pytest.raises(OciError, match="init_wrapper is never"):
        finish_runtime(runtime_spec({"Entrypoint": TRICKY}, {}, user_files=False), None, "5.0", "never")


def test_init_wrapper_always_without_the_layers():
    cold, warm = both({"Cmd": ["/bin/sleep", "1"], "User": "app"}, init_wrapper="always", setpriv=True)
    assert cold["lxc_init_cmd"] == cold["pve_entrypoint"] == "/sbin/init" and cold["pve_env"] == ""
    assert cold["wrapper"]["kind"] == "init" and cold["wrapper"]["drop_tool"] is None
    assert warm["wrapper"]["drop_tool"] == "/usr/bin/setpriv"
    assert cold["needs_layers"] == ["uid", "gid", "groups", "wrapper.drop_tool", "wrapper.written_at", "wrapper"]
    agree(cold, warm)


def test_oci_archive_command_is_known_from_the_config():
    cold, warm = both({"Entrypoint": ["/bin/sleep"], "Cmd": ["3600"], "User": "1000:1000"}, lxc="6.0",
                      archive=True)
    assert cold["oci_command"] == warm["oci_command"]
    agree(cold, warm)


def test_check_mode_opens_a_store_only_when_it_is_complete(tmp_path):
    root = tmp_path / "cache"
    assert not store_complete(str(root))
    root.mkdir()
    assert not store_complete(str(root))  # an empty directory: opening it would create blobs/ ... locks/
    for sub in ("blobs", "meta", "pins", "locks", "tmp"):
        (root / sub).mkdir()
    assert not store_complete(str(root))  # a pull's shared lock would create locks/store.lock
    (root / "locks" / "store.lock").write_text("")
    assert store_complete(str(root))


def test_check_mode_against_an_empty_cache_directory_creates_nothing_in_it(tmp_path, monkeypatch):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import template
    cache = tmp_path / "cache"
    cache.mkdir()

    class Inspected(Exception):
        pass

    def inspect(self, source, platform=None):
        raise Inspected()

    monkeypatch.setattr(template.Puller, "inspect", inspect)
    manager = TemplateManager({"image": "registry.invalid/x:1", "dest": str(tmp_path / "dest"),
                               "cache_dir": str(cache)}, check_mode=True)
    with pytest.raises(Inspected):  # resolved without the store
        manager.present()
    assert list(cache.iterdir()) == [] and not (tmp_path / "dest").exists()


@pytest.mark.parametrize("config", [
    {"Cmd": ["/bin/sleep", "1"], "WorkingDir": "/.lxcri"},
    {"Cmd": ["/bin/sleep", "1"], "WorkingDir": "/srv/../.lxcri/app"},
    {"Cmd": ["/bin/sleep", "1"], "Volumes": {"/data": {}, "//.lxcri/data/": {}}},
    {"Cmd": ["/.lxcri/exec"]},
    {"Cmd": [".lxcri/init"], "WorkingDir": "/"},
    {"Entrypoint": ["../.lxcri/exec"], "WorkingDir": "/srv"},
])
def test_workdir_volume_or_command_in_the_reserved_directory_is_refused(config):
    for runtime in (lambda: both(config)[0], lambda: both(config, init_wrapper="always", setpriv=True)[1]):
        with pytest.raises(OciError, match=r"is in /\.lxcri, which lxcri.proxmox reserves"):
            runtime()


@pytest.mark.parametrize("config", [
    {"Cmd": ["/bin/sleep", "1"], "WorkingDir": "/work"},  # /work -> /.lxcri (the image's own, hidden)
    {"Cmd": ["/bin/sleep", "1"], "WorkingDir": "/srv/work/app"},  # /srv/work -> ../work -> /.lxcri
    {"Cmd": ["/bin/sleep", "1"], "Volumes": {"/lib/x": {}}},  # /lib -> .lxcri
    {"Cmd": ["/usr/local/bin/app"]},  # /usr/local -> /.lxcri/usr: the program is the generated exec wrapper's
])
def test_a_symlink_into_the_reserved_directory_is_followed(config):
    links = [("work", "/.lxcri"), ("srv", "/srv.real"), ("srv.real/work", "../work"), ("lib", ".lxcri"),
             ("usr/local", "/.lxcri/usr")]
    cold, dummy = both({"Cmd": ["/bin/sleep", "1"]}, symlinks=links)  # the image itself converts
    assert cold["cwd"] == "/"
    with pytest.raises(OciError, match=r"is in /\.lxcri, which lxcri.proxmox reserves"):
        both(config, symlinks=links)
    assert finish_runtime(runtime_spec(config, {}, user_files=False), None, "5.0", "auto")  # lexically elsewhere


# -- the volumes option: more volume paths, checked and made as the image's VOLUMEs ---------------------------

class RecordingSink(_NullSink):
    def __init__(self):
        self.dirs = []

    def add_dir(self, name, uid, gid, mode, mtime):
        self.dirs.append((name, uid, gid, mode))


def test_the_volumes_option_is_normalized_and_refuses_a_relative_path_or_the_root():
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import extra_volumes
    assert extra_volumes(["/srv//data/", "/srv/data", "/var/lib/../cache"]) == ["/srv/data", "/var/cache"]
    assert extra_volumes(None) == []
    for bad in ("data", "/", "/srv/.."):
        with pytest.raises(OciError, match="volumes: .* is not an absolute path other than /"):
            extra_volumes([bad])
    with pytest.raises(OciError, match="volumes: .*newline"):
        extra_volumes(["/da\nta"])


def test_a_volume_the_image_has_as_a_file_fails_the_build_and_a_missing_one_is_made():
    config = {"Cmd": ["/bin/sleep", "1"]}
    tree = flatten([layer(symlinks=[("conf", "etc")]), reserved_layer(False)], _NullSink(), Limits())
    for path in ("/etc/passwd", "/etc/passwd/sub", "/conf/group"):
        spec = dict(runtime_spec(config, {}, PASSWD, GROUP), volumes=[path])
        with pytest.raises(OciError, match="cannot create %s: /etc/(passwd|group) is a file in the image, not a "
                                           "directory" % path):
            finish_runtime(spec, tree, "5.0", "auto", sink=RecordingSink())
        with pytest.raises(OciError, match="is a file in the image"):  # check mode, the layers read: the same
            finish_runtime(spec, tree, "5.0", "auto")
    sink = RecordingSink()
    spec = dict(runtime_spec(config, {}, PASSWD, GROUP), volumes=["/conf/app.d", "/srv/data"])
    assert finish_runtime(spec, tree, "5.0", "auto", sink=sink)["volumes"] == ["/conf/app.d", "/srv/data"]
    assert ("etc/app.d", 0, 0, 0o755) in sink.dirs and ("srv", 0, 0, 0o755) in sink.dirs and \
        ("srv/data", 0, 0, 0o755) in sink.dirs


def test_the_volumes_option_names_a_variant_template_and_none_keeps_the_old_name_and_identity():
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import default_name, identity
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_source
    source = parse_source("registry.example/app:1")
    digest = "sha256:" + "a" * 64

    def params(**extra):
        return TemplateManager(dict({"image": "registry.example/app:1", "dest": "/tmp"}, **extra)).params

    plain = params()
    assert default_name(source, digest, plain) == "app_1_aaaaaaaaaaaa"
    assert default_name(source, digest, params(volumes=[])) == "app_1_aaaaaaaaaaaa"
    assert identity(plain, digest, "linux/amd64", "5.0") == identity(params(volumes=[]), digest, "linux/amd64", "5.0")
    assert "volumes" not in identity(plain, digest, "linux/amd64", "5.0")["options"]
    named = default_name(source, digest, params(volumes=["/b", "/a"]))
    assert named.startswith("app_1_aaaaaaaaaaaa_") and named == default_name(source, digest, params(volumes=["/a", "/b"]))
    assert identity(params(volumes=["/b", "/a"]), digest, "linux/amd64", "5.0")["options"]["volumes"] == ["/a", "/b"]
