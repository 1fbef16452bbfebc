"""oci_template's init: system (issue 22): a base image as a system container, for molecule instances.

The image's own /sbin/init is kept when it has one; otherwise a generated /sbin/init keeps the container up with a
sleep loop.  The options that shape an app's process are refused, and the name and identity of app templates stay
what they were before the option existed.
"""

import io
import tarfile

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import initwrap
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import BlobLayer, Limits, flatten
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import default_name, identity
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_source
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import runtime_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import (
    SYSTEM_SLEEP_ARGV, TemplateManager, _NullSink, finish_runtime, reserved_layer)

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:root\n"


class Sink(_NullSink):
    def __init__(self):
        _NullSink.__init__(self)
        self.files = {}

    def add_file(self, name, data, mode=0o755, uid=0, gid=0, mtime=0):
        self.files["/" + name] = data

    def add_dir(self, name, uid=0, gid=0, mode=0o755, mtime=0):
        pass


def image_tree(files=("bin/sh",), links=(), mode=0o755):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "sbin", "etc", "lib", "lib/systemd"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name in ("etc/passwd", "etc/group") + tuple(files):
            text = {"etc/passwd": PASSWD, "etc/group": GROUP}.get(name, "x")
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mode = 0o644 if name.startswith("etc/") else mode
            tar.addfile(info, io.BytesIO(text.encode()))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    # init: system hides nothing but /.lxcri (TemplateManager._layers)
    return flatten([BlobLayer(out.getvalue()), reserved_layer(False)], _NullSink(), Limits())


def system_spec():
    """What TemplateManager._spec gives with init: system: root in /, whatever the image config says."""
    config = {"User": "app", "WorkingDir": "/srv", "Entrypoint": ["/bin/app"], "Env": ["PATH=/bin", "A=1"]}
    spec = runtime_spec(config, {"entrypoint": ["/sbin/init"], "cmd": [], "workdir": "/", "user": "0"},
                        PASSWD, GROUP)
    spec["groups"] = []
    spec.update(volumes=[], image_digest="sha256:" + "a" * 64, platform="linux/amd64")
    return spec


def build(tree, sink=None):
    return finish_runtime(system_spec(), tree, "6.0", "auto", sink=sink, system=True)


@pytest.mark.parametrize("files,links", [
    (("bin/sh", "sbin/init"), ()),
    (("bin/sh", "bin/busybox"), (("sbin/init", "../bin/busybox"),)),  # BusyBox's init, relative link
    (("lib/systemd/systemd",), (("sbin/init", "/lib/systemd/systemd"),)),  # systemd's, absolute, no shell needed
])
def test_an_image_with_its_own_init_keeps_it_and_gets_no_generated_file(files, links):
    sink = Sink()
    runtime = build(image_tree(files, links), sink)
    assert runtime["init"] == "image"
    assert runtime["argv"] == ["/sbin/init"] and runtime["lxc_init_cmd"] == "/sbin/init"
    assert runtime["wrapper"] is None and runtime["lxc_config"] == []
    assert (runtime["uid"], runtime["gid"], runtime["cwd"]) == (0, 0, "/")
    assert sink.files == {}


def test_an_image_without_an_init_gets_the_generated_one_running_a_sleep_loop_as_root():
    sink = Sink()
    runtime = build(image_tree(("bin/sh",)), sink)  # debian:12, ubuntu:24.04: no /sbin/init
    assert runtime["init"] == "sleep"
    assert runtime["argv"] == list(SYSTEM_SLEEP_ARGV)
    assert runtime["wrapper"]["kind"] == "init" and runtime["lxc_init_cmd"] == initwrap.INIT_WRAPPER_PATH
    assert runtime["wrapper"]["written_at"] == "/sbin/init"
    script = sink.files["/sbin/init"].decode()
    assert "while :; do sleep 86400; done" in script
    assert runtime["wrapper"]["drop_tool"] is None  # root: no user switch
    assert (runtime["uid"], runtime["gid"], runtime["groups"], runtime["cwd"]) == (0, 0, [], "/")


def test_in_a_merged_usr_image_the_generated_init_lands_in_usr_sbin():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("usr", "usr/bin", "usr/sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        info = tarfile.TarInfo("usr/bin/sh")
        info.size, info.mode = 1, 0o755
        tar.addfile(info, io.BytesIO(b"x"))
    sink = Sink()
    runtime = build(flatten([BlobLayer(out.getvalue()), reserved_layer(False)], _NullSink(), Limits()), sink)
    assert runtime["init"] == "sleep" and runtime["wrapper"]["written_at"] == "/usr/sbin/init"
    assert "/usr/sbin/init" in sink.files


@pytest.mark.parametrize("files,links,mode,fragment", [
    (("bin/sh",), (("sbin/init", "/lib/systemd/systemd"),), 0o755, "a symlink to /lib/systemd/systemd, which the"),
    (("bin/sh", "sbin/init"), (), 0o644, "not an executable file"),
])
def test_an_init_that_cannot_run_and_cannot_be_replaced_is_refused(files, links, mode, fragment):
    with pytest.raises(OciError, match=fragment):
        build(image_tree(files, links, mode=mode))


def test_an_image_with_neither_an_init_nor_a_shell_is_refused():
    with pytest.raises(OciError, match="no /sbin/init, and no /bin/sh"):
        build(image_tree(files=("bin/app",)))


def test_check_mode_without_the_layers_cannot_tell_which_init():
    runtime = build(None)
    assert runtime["init"] is None and "init" in runtime["needs_layers"]


@pytest.mark.parametrize("options,fragment", [
    ({"entrypoint": ["/bin/app"]}, "entrypoint do not apply"),
    ({"user": "app", "workdir": "/srv"}, "workdir, user do not apply"),
    ({"init_wrapper": "always"}, "init_wrapper do not apply"),
    ({"net": {"0": "name=eth0,ip=dhcp"}}, "net do not apply"),
    ({"format": "oci-archive"}, "plain template"),
])
def test_options_that_shape_an_app_are_refused(options, fragment):
    with pytest.raises(OciError, match=fragment):
        TemplateManager(dict({"image": "registry.example/debian:12", "dest": "/tmp", "init": "system"}, **options))


def test_a_system_template_is_a_plain_one_with_its_own_name_and_app_names_stay():
    source = parse_source("registry.example/debian:12")
    digest = "sha256:" + "a" * 64
    app = TemplateManager({"image": "registry.example/debian:12", "dest": "/tmp"})
    system = TemplateManager({"image": "registry.example/debian:12", "dest": "/tmp", "init": "system",
                              "format": "auto"})
    assert system.params["format"] == "vztmpl" and system.extension == ".tar.zst"
    assert default_name(source, digest, app.params) == "debian_12_aaaaaaaaaaaa"
    assert default_name(source, digest, system.params).startswith("debian_12_aaaaaaaaaaaa_")
    assert "init" not in identity(app.params, digest, "linux/amd64", "6.0")["options"]
    assert identity(system.params, digest, "linux/amd64", "6.0")["options"]["init"] == "system"
