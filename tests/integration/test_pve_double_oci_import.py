"""The double's OCI import follows Proxmox VE 9.1's (issue 15 item 9): pve-container PVE/LXC/Create.pm
archive_is_oci_format / restore_oci_archive / resolve_oci_user and proxmox-rs proxmox-oci.

Archives are built by hand here (not by the collection), so that the rules are checked on their own.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from pve_double.backend.oci_archive import import_oci_archive, is_oci_archive
from pve_double.tasks import TaskFailed

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


class Task:
    def __init__(self):
        self.lines = []

    def log(self, line):
        self.lines.append(line)


def layer_tar(files):
    """An uncompressed layer: {name: bytes or None (a directory)}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def archive(path, config, layers, index_extra=(), prefix="", config_type=CONFIG, diff_ids=None):
    """An OCI archive: ``layers`` are (files, media type) pairs, gzip-compressed for LAYER_GZ."""
    blobs, descs, ids = {}, [], []
    for files, kind in layers:
        data = layer_tar(files)
        ids.append(sha(data))
        blob = gzip.compress(data, mtime=0) if kind == LAYER_GZ else data
        blobs[sha(blob)] = blob
        descs.append({"mediaType": kind, "digest": sha(blob), "size": len(blob)})
    image = {"architecture": "amd64", "os": "linux", "config": config,
             "rootfs": {"type": "layers", "diff_ids": ids if diff_ids is None else diff_ids(ids)}}
    cfg = json.dumps(image).encode()
    blobs[sha(cfg)] = cfg
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "layers": descs,
                           "config": {"mediaType": config_type, "digest": sha(cfg), "size": len(cfg)}}).encode()
    blobs[sha(manifest)] = manifest
    index = {"schemaVersion": 2, "manifests": list(index_extra) + [
        {"mediaType": MANIFEST, "digest": sha(manifest), "size": len(manifest)}]}
    with tarfile.open(path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":")[1], data)
    return path


BASE = {"etc": None, "etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        "etc/group": b"root:x:0:\napp:x:1001:\nvideo:x:44:app,other\naudio:x:29:app\n", "bin": None,
        "bin/app": b"v1"}


def imported(tmp_path, config, layers=None, importer="6.1", ct_config=None, **kw):
    path = archive(str(tmp_path / "img.tar"), config, layers or [(BASE, LAYER_GZ)], **kw)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    task = Task()
    keys = import_oci_archive(path, str(rootfs), task, dict(ct_config or {}), importer)
    return keys, rootfs, task


def test_detection_takes_names_exactly_as_stored_and_only_tar_files(tmp_path):
    assert is_oci_archive(archive(str(tmp_path / "a.tar"), {}, [(BASE, LAYER_GZ)]))
    # `tar -tf` prints ./index.json: no line is "index.json", so Proxmox VE restores it as a plain rootfs
    assert not is_oci_archive(archive(str(tmp_path / "b.tar"), {}, [(BASE, LAYER_GZ)], prefix="./"))
    os.rename(str(tmp_path / "a.tar"), str(tmp_path / "a.tar.zst"))
    assert not is_oci_archive(str(tmp_path / "a.tar.zst"))


def test_the_config_maps_as_restore_oci_archive_does(tmp_path):
    config = {"Entrypoint": ["/bin/sh", "-c", "echo hi"], "Cmd": ["it's", "a=b", ""], "Env": ["A=one two", "B="],
              "WorkingDir": "/srv", "Volumes": {"/data/db": {}, "/var/cache/x": {}}}
    keys, rootfs, task = imported(tmp_path, config, ct_config={"net0": "name=eth0,bridge=vmbr0,ip=dhcp",
                                                               "net1": "name=eth1,bridge=vmbr1,host-managed=0"})
    # PVE::Tools::cmd2string (String::ShellQuote, each word alone)
    assert keys["entrypoint"] == "/bin/sh -c 'echo hi' 'it'\\''s' 'a=b' ''"
    assert keys["cmode"] == "console"
    assert keys["net0"] == "name=eth0,bridge=vmbr0,ip=dhcp,host-managed=1" and "net1" not in keys
    assert "Auto-Enabling host-managed network for network device net0." in task.lines
    assert keys["env"] == "A=one two\0B=" and keys["lxc.init.cwd"] == "/srv"
    assert keys["lxc.signal.halt"] == "SIGTERM"  # the default when the image names none
    assert (rootfs / "data" / "db").is_dir() and (rootfs / "var" / "cache" / "x").is_dir()
    assert (rootfs / "bin" / "app").read_bytes() == b"v1"


def test_sbin_init_keeps_the_systems_own_init_and_network(tmp_path):
    keys, dummy, dummy_task = imported(tmp_path, {"Entrypoint": ["/sbin/init"], "Cmd": ["--log-level=info"]},
                                       ct_config={"net0": "name=eth0,bridge=vmbr0"})
    assert not set(keys) & {"entrypoint", "cmode", "net0"}


@pytest.mark.parametrize("user, ids", [
    ("app", {"lxc.init.uid": "1000", "lxc.init.gid": "1001", "lxc.init.groups": "44,29"}),
    ("1000", {"lxc.init.uid": "1000", "lxc.init.gid": "1001", "lxc.init.groups": "44,29"}),
    ("app:video", {"lxc.init.uid": "1000", "lxc.init.gid": "44"}),  # a group given: no supplementary groups
    ("1000:5", {"lxc.init.uid": "1000", "lxc.init.gid": "5"}),
    ("4242", {"lxc.init.uid": "4242"}),  # not in /etc/passwd: no gid, no groups
    # an unknown name sets no uid or gid (the app would run as root), and an empty group list ("" is defined)
    ("nobody", {"lxc.init.groups": ""}),
])
def test_user_is_resolved_by_6_1_and_ignored_by_6_0(tmp_path, user, ids):
    (tmp_path / "new").mkdir()
    keys, dummy, dummy_task = imported(tmp_path / "new", {"User": user})
    assert dict((k, v) for k, v in keys.items() if k.startswith("lxc.init.") and k != "lxc.init.cwd") == ids
    (tmp_path / "old").mkdir()
    keys, dummy, dummy_task = imported(tmp_path / "old", {"User": user}, importer="6.0")
    assert not [k for k in keys if k in ("lxc.init.uid", "lxc.init.gid", "lxc.init.groups")]


def test_user_needs_an_etc_directory_and_a_valid_form(tmp_path):
    for number, (user, layers, message) in enumerate([
            ("1000", [({"bin": None, "bin/app": b"x"}, LAYER_GZ)], "cannot resolve /etc/passwd path in container rootfs"),
            ("a:b:c", None, "OCI config value for 'User' has an invalid format")]):
        (tmp_path / str(number)).mkdir()
        with pytest.raises(TaskFailed, match=message):
            imported(tmp_path / str(number), {"User": user}, layers)


def test_control_characters_as_the_importer_checks_them(tmp_path):
    """[\\x00-\\x08\\x10-\\x1F\\x7F] is refused; \\x09-\\x0F (tab, newline, CR) pass (commit f7b2a27)."""
    (tmp_path / "bad").mkdir()
    with pytest.raises(TaskFailed, match="OCI config array-value for 'Env' contains forbidden control characters!"):
        imported(tmp_path / "bad", {"Env": ["A=\x1b[0m"]})
    (tmp_path / "ok").mkdir()
    keys, dummy, dummy_task = imported(tmp_path / "ok", {"Env": ["A=x\ty\nz"]})
    assert keys["env"] == "A=x\ty\nz"


def test_manifest_choice_media_types_and_diff_ids(tmp_path):
    docker = {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:" + "0" * 64}
    nested = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + "1" * 64}
    (tmp_path / "first").mkdir()
    keys, dummy, dummy_task = imported(tmp_path / "first", {"Cmd": ["/bin/app"]}, index_extra=[docker, nested])
    assert keys["entrypoint"] == "/bin/app"  # the first OCI manifest entry; the others skipped, not followed
    (tmp_path / "cfg").mkdir()
    with pytest.raises(TaskFailed, match="Error while parsing OCI image: Wrong media type"):
        imported(tmp_path / "cfg", {}, config_type="application/vnd.docker.container.image.v1+json")
    # layers apply in rootfs.diff_ids order, not the manifest's
    layers = [(dict(BASE, **{"bin/app": b"first"}), LAYER_GZ), ({"bin/app": b"second"}, LAYER_TAR)]
    (tmp_path / "order").mkdir()
    dummy_keys, rootfs, task = imported(tmp_path / "order", {}, layers, diff_ids=lambda ids: [ids[1], ids[0]])
    assert (rootfs / "bin" / "app").read_bytes() == b"first"
    (tmp_path / "docker").mkdir()
    with pytest.raises(TaskFailed, match="Unknown layer digest sha256:[0-9a-f]{64} found in rootfs.diff_ids"):
        imported(tmp_path / "docker", {}, [(BASE, "application/vnd.docker.image.rootfs.diff.tar.gzip")])
