"""oci_template for real: images built now, templates restored as Proxmox does and started with LXC.

Every template in the matrix is extracted with Proxmox VE's restore options
and started by real LXC with the returned runtime; the init process's
/proc/<pid>/cmdline must equal the argv byte for byte, and its environment,
cwd, uid/gid and groups must be what the runtime says.
"""

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import NAMING_DEFAULTS, identity_hash
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager
from lxcri_testbed.bed import run
from lxcri_testbed.oci_build import Layer, old_gnu_member, with_setpriv, write_image
from lxcri_testbed.pve_restore import UNPRIVILEGED_ID_MAP, restore_command

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nvideo:x:44:app\naudio:x:29:app\n"
TRICKY = ["arg0", "two  spaces", "it's", 'say "hi"', "$HOME", "back\\slash", "", "tab\there", "a=b"]
# variables LXC itself puts into init's environment
LXC_ENV = {"container", "container_ttys"}


def base_layer(shell=True, etc=True):
    layer = Layer().dir("bin").dir("tmp", mode=0o1777)
    layer.busybox(("sh", "sleep", "cat") if shell else ("sleep", "cat"))
    if etc:
        layer.dir("etc").file("etc/passwd", PASSWD).file("etc/group", GROUP)
    return layer


@pytest.fixture
def work(tmp_path, bed):
    need_tools = [t for t in ("lxc-start", "zstd", "umoci", "skopeo") if run(["which", t], check=False).returncode]
    if need_tools:
        pytest.skip("missing %s" % need_tools)
    dirs = {name: str(tmp_path / name) for name in ("layout", "dest", "cache", "roots")}
    for name in ("layout", "dest", "roots"):
        os.makedirs(dirs[name])
    return dirs


def convert(work, ref, **options):
    params = {"image": ref, "dest": work["dest"], "cache_dir": work["cache"]}
    params.update(options)
    return TemplateManager(params).run()


def restore(template, root):
    """Extract the way Proxmox VE restores a template (pve-container's COMMON_TAR_FLAGS)."""
    os.makedirs(root)
    run(restore_command(template, root))
    return root


def groups_of(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("Groups:"):
                return sorted(int(g) for g in line.split()[1:])
    return []


def start(lxc_runner, root, runtime):
    """Start with exactly what the runtime says: lxc.init.cmd plus its raw lxc_config lines.

    An exec wrapper runs as ``/bin/sh /.lxcri/exec`` for a moment before its
    exec; wait for the command itself.
    """
    from lxcri_testbed.lxc import read_init
    init = lxc_runner.start(root, runtime["lxc_init_cmd"], extra=runtime["lxc_config"])
    deadline = time.time() + 10
    while runtime["wrapper"] and init.argv[1:2] == [runtime["wrapper"]["path"]] and time.time() < deadline:
        time.sleep(0.05)
        name, log = init.name, init.log
        init = read_init(init.pid)
        init.name, init.log = name, log
    return init


def _short(work, tag):
    """The first 12 hex digits of the manifest digest of ``tag`` in the test layout."""
    with open(os.path.join(work["layout"], "index.json")) as handle:
        for desc in json.load(handle)["manifests"]:
            if desc["annotations"]["org.opencontainers.image.ref.name"] == tag:
                return desc["digest"].split(":")[1][:12]
    raise AssertionError("no tag %s" % tag)


def check_init(init, runtime):
    assert init.argv == runtime["argv"], init.log
    expected_env = dict(item.split("=", 1) for item in runtime["env"])
    assert {k: init.env.get(k) for k in expected_env} == expected_env
    assert set(init.env) - set(expected_env) <= LXC_ENV | {"TERM"}
    assert init.env.get("TERM", "linux") == expected_env.get("TERM", "linux")  # Proxmox's TERM=linux, kept by wrappers
    assert init.cwd == runtime["cwd"]
    assert (init.uid, init.gid) == (runtime["uid"], runtime["gid"])
    assert groups_of(init.pid) == sorted(runtime["groups"])


# ---------------------------------------------------------------------------
# the matrix: each template started for real

def test_tricky_argv_env_named_user_missing_workdir(work, lxc_runner, tmp_path):
    ref = write_image(work["layout"], "tricky", [base_layer()], {
        "Entrypoint": ["/bin/sh", "-c", "sleep 3600; exit 0"], "Cmd": TRICKY,
        "Env": ["PATH=/bin", "GREETING=hello world", "EQ=a=b=c", "QUOTE=it's \"x\" $y \\z"],
        "WorkingDir": "/srv/missing/app", "User": "app"})
    result = convert(work, ref)
    runtime = result["runtime"]
    assert result["changed"] and result["path"].endswith(".tar.zst")
    assert (runtime["uid"], runtime["gid"], runtime["groups"]) == (1000, 1000, [29, 44])
    # LXC 5.0 splits lxc.init.cmd on whitespace only: the exact argv needs the generated exec wrapper
    assert runtime["wrapper"]["kind"] == "exec" and runtime["lxc_init_cmd"] == "/.lxcri/exec"
    root = restore(result["path"], str(tmp_path / "root"))
    st = os.stat(os.path.join(root, "srv/missing/app"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # created for the user, since LXC needs it
    check_init(start(lxc_runner, root, runtime), runtime)


def test_no_etc_numeric_user_plain_command(work, lxc_runner, tmp_path):
    ref = write_image(work["layout"], "noetc", [base_layer(etc=False)], {
        "Entrypoint": ["/bin/sleep"], "Cmd": ["3600"], "User": "1234:2345", "Volumes": {"/data/db": {}},
        "ExposedPorts": {"8080/tcp": {}}, "Labels": {"org.example": "x"}, "StopSignal": "SIGINT"})
    result = convert(work, ref)
    runtime = result["runtime"]
    assert runtime["wrapper"] is None and runtime["lxc_init_cmd"] == "/bin/sleep 3600"
    assert (runtime["volumes"], runtime["exposed_ports"], runtime["labels"]) == (
        ["/data/db"], ["8080/tcp"], {"org.example": "x"})
    assert "lxc.signal.halt = SIGINT" in runtime["lxc_config"]
    root = restore(result["path"], str(tmp_path / "root"))
    assert not os.path.exists(os.path.join(root, "etc", "passwd"))
    assert os.path.isdir(os.path.join(root, "data", "db"))  # the volume's mount point exists
    check_init(start(lxc_runner, root, runtime), runtime)


def test_user_by_name_without_passwd_is_a_clear_error(work):
    ref = write_image(work["layout"], "nouser", [base_layer(etc=False)], {"Cmd": ["/bin/sleep", "1"], "User": "app"})
    with pytest.raises(OciError, match="user 'app' is not defined in the image"):
        convert(work, ref)
    assert published(work) == []


def published(work):
    """Everything in dest but lock files: templates, sidecars and temp files."""
    return sorted(f for f in os.listdir(work["dest"]) if not f.endswith(".lock"))


def test_shell_less_image(work, lxc_runner, tmp_path):
    ref = write_image(work["layout"], "noshell", [base_layer(shell=False)], {"Entrypoint": ["/bin/sleep", "3600"]})
    result = convert(work, ref)
    runtime = result["runtime"]
    root = restore(result["path"], str(tmp_path / "root"))
    assert not os.path.lexists(os.path.join(root, "bin", "sh"))
    check_init(start(lxc_runner, root, runtime), runtime)
    # an argv LXC 5.0 cannot express, and no shell for a wrapper: refused, naming the word
    ref = write_image(work["layout"], "noshell2", [base_layer(shell=False)], {"Entrypoint": ["/bin/sleep", "36 00"]})
    with pytest.raises(OciError, match="36 00"):
        convert(work, ref)
    assert [f for f in published(work) if "noshell2" in f] == []


def test_layers_whiteouts_opaque_hardlinks_symlinks_setuid(work, lxc_runner, tmp_path):
    capability = "\x01\x00\x00\x02\x00\x20" + "\x00" * 14  # VFS_CAP_REVISION_2, cap_net_bind_service
    cap = {"SCHILY.xattr.security.capability": capability,
           "SCHILY.xattr.user.note": "kept", "SCHILY.xattr.trusted.secret": "dropped"}
    lower = base_layer().dir("usr").dir("usr/lib").symlink("lib", "usr/lib") \
        .file("usr/lib/libold.so", "old").file("usr/lib/keep.so", "keep") \
        .dir("opt").dir("opt/cache").file("opt/cache/stale", "stale").file("opt/cache/stale2", "stale") \
        .file("etc/hosts.orig", "shared content").file("usr/bin-su", "su", mode=0o4755) \
        .file("usr/cap", "cap", mode=0o755, pax=cap)
    middle = Layer().whiteout("usr/lib/libold.so").hardlink("etc/hosts.link", "etc/hosts.orig") \
        .opaque("opt/cache").file("opt/cache/fresh", "fresh")
    upper = Layer().dir("usr/lib", mode=0o750).file("usr/lib/new.so", "new") \
        .hardlink("etc/hosts.link2", "etc/hosts.link").file("etc/hosts.orig", "replaced above the links")
    ref = write_image(work["layout"], "layers", [lower, middle, upper], {"Entrypoint": ["/bin/sleep", "3600"]})
    result = convert(work, ref)
    root = restore(result["path"], str(tmp_path / "root"))
    j = os.path.join
    assert not os.path.exists(j(root, "usr/lib/libold.so"))  # whiteout
    assert sorted(os.listdir(j(root, "usr/lib"))) == ["keep.so", "new.so"]
    assert os.readlink(j(root, "lib")) == "usr/lib"  # symlink kept as written
    assert oct(os.stat(j(root, "usr/lib")).st_mode & 0o7777) == oct(0o750)  # topmost dir attributes
    assert sorted(os.listdir(j(root, "opt/cache"))) == ["fresh"]  # opaque: lower content gone, same layer kept
    # the links were made to the old content; the name itself was replaced above them
    with open(j(root, "etc/hosts.link")) as handle:
        assert handle.read() == "shared content"
    assert os.stat(j(root, "etc/hosts.link")).st_ino == os.stat(j(root, "etc/hosts.link2")).st_ino
    with open(j(root, "etc/hosts.orig")) as handle:
        assert handle.read() == "replaced above the links"
    assert os.stat(j(root, "usr/bin-su")).st_mode & 0o7777 == 0o4755
    assert os.getxattr(j(root, "usr/cap"), "user.note") == b"kept"
    assert os.getxattr(j(root, "usr/cap"), "security.capability")[:4] == b"\x01\x00\x00\x02"
    assert "trusted.secret" not in os.listxattr(j(root, "usr/cap"))
    # the same tree umoci (the reference unpacker) makes, apart from what Proxmox drops
    layout_dir = work["layout"]
    bundle = str(tmp_path / "bundle")
    run(["umoci", "unpack", "--image", "%s:layers" % layout_dir, bundle])
    assert tree_listing(j(bundle, "rootfs")) == tree_listing(root) - {"dev", "proc", "sys"}
    check_init(start(lxc_runner, root, result["runtime"]), result["runtime"])


def tree_listing(root):
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def test_target_lxc_6_quotes_instead_of_wrapping(work, lxc6_runner, tmp_path):
    """A template for LXC 6.0 keeps every word in quotes, and lxc-pve 6.0.5 (Proxmox VE 9.1's) runs exactly
    that argv, with the image's environment."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import lxcinit
    argv = ["/bin/sh", "-c", "sleep 3600; exit 0", "x", "two words", "it's", 'say "hi"', "tab\there", ""]
    ref = write_image(work["layout"], "six", [base_layer()], {"Entrypoint": argv, "Env": ["A=one two", "B="]})
    result = convert(work, ref, lxc_version="6.0")
    runtime = result["runtime"]
    assert runtime["wrapper"] is None
    assert lxcinit.split_init_cmd(runtime["lxc_init_cmd"], "6.0") == argv
    assert result["runtime"]["pve_entrypoint"] == runtime["lxc_init_cmd"]
    root = restore(result["path"], str(tmp_path / "six-root"))
    init = start(lxc6_runner, root, runtime)
    assert init.argv == argv
    assert init.env["A"] == "one two" and init.env["B"] == ""


def test_byte_identical_rebuild_and_idempotence(work):
    ref = write_image(work["layout"], "same", [base_layer()], {"Entrypoint": ["/bin/sleep", "3600"]},
                      compression="zstd")
    first = convert(work, ref)
    with open(first["path"], "rb") as handle:
        data = handle.read()
    second = convert(work, ref)
    assert not second["changed"] and second["sha256"] == first["sha256"]
    forced = convert(work, ref, force=True)
    assert forced["changed"]
    with open(forced["path"], "rb") as handle:
        assert handle.read() == data
    gz = convert(work, ref, compression="gzip")
    assert gz["path"].endswith(".tar.gz") and gz["changed"]
    with tarfile.open(gz["path"]) as tar:
        names = tar.getnames()
    assert "." in names and all(n.startswith("./") or n == "." for n in names)  # tarfile shows "./" as "."
    with tarfile.open(gz["path"]) as tar:
        assert all(m.uname == "" and m.gname == "" for m in tar.getmembers())


def test_check_mode_writes_nothing_and_absent_removes(work):
    ref = write_image(work["layout"], "check", [base_layer()], {"Entrypoint": ["/bin/sleep", "3600"]})
    cold = TemplateManager({"image": ref, "dest": work["dest"], "cache_dir": work["cache"]}, check_mode=True).run()
    # layers not cached: the runtime from the config alone; root's gid and groups come from /etc/passwd and group
    assert cold["changed"] and cold["runtime"]["argv"] == ["/bin/sleep", "3600"]
    assert cold["runtime"]["needs_layers"] == ["gid", "groups", "lxc_config"]
    assert os.listdir(work["dest"]) == [] and not os.path.exists(work["cache"])
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
    ImageManager({"image": ref, "cache_dir": work["cache"]}).run()
    before = tree_listing(work["cache"])
    result = TemplateManager({"image": ref, "dest": work["dest"], "cache_dir": work["cache"]}, check_mode=True).run()
    assert result["changed"] and result["runtime"]["argv"] == ["/bin/sleep", "3600"]  # computed from the cache
    assert "needs_layers" not in result["runtime"]
    assert os.listdir(work["dest"]) == []
    assert tree_listing(work["cache"]) == before  # reading the layers recorded nothing (no diff_id meta)
    built = convert(work, ref)
    assert built["runtime"] == result["runtime"]
    assert dict((k, v) for k, v in cold["runtime"].items() if k not in cold["runtime"]["needs_layers"] + [
        "needs_layers"]) == dict((k, v) for k, v in built["runtime"].items() if k not in cold["runtime"]["needs_layers"])
    absent = TemplateManager({"image": ref, "dest": work["dest"], "cache_dir": work["cache"], "state": "absent"},
                             check_mode=True).run()
    assert absent["changed"] and os.path.exists(built["path"])
    absent = convert(work, ref, state="absent")
    assert absent["changed"] and not os.path.exists(built["path"]) and not os.path.exists(built["sidecar"])
    assert not convert(work, ref, state="absent")["changed"]


# ---------------------------------------------------------------------------
# the oci-archive output

def test_oci_archive_is_normalised_and_read_by_skopeo_and_umoci(work, tmp_path):
    ref = write_image(work["layout"], "arch", [base_layer(), Layer().file("etc/motd", "hi")],
                      {"Entrypoint": ["/bin/sleep"], "Cmd": ["3600"], "Env": ["A=b c"], "User": "app",
                       "WorkingDir": "/srv/data", "StopSignal": "SIGQUIT"}, compression="docker-gzip")
    result = convert(work, ref, format="oci-archive")
    path = result["path"]
    assert path.endswith(".tar") and result["changed"]
    with tarfile.open(path) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("index.json").read())

        def blob(digest):
            return json.loads(tar.extractfile("blobs/sha256/" + digest.split(":")[1]).read())

        manifest = blob(index["manifests"][0]["digest"])
        config = blob(manifest["config"]["digest"])
    assert names[:2] == ["oci-layout", "index.json"]
    # Proxmox VE 9.1's rules: OCI types only, the first manifest is THE image, no nested index
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    assert len(config["rootfs"]["diff_ids"]) == 1
    # the name, not 1000:1000: pve-container 6.1's import gives a name's supplementary groups (video, audio) and
    # a uid:gid none
    assert config["config"]["User"] == "app" and config["config"]["StopSignal"] == "SIGQUIT"
    assert config["config"]["WorkingDir"] == "/srv/data"
    inspect = json.loads(run(["skopeo", "inspect", "oci-archive:%s" % path]).stdout)
    assert inspect["Env"] == ["A=b c"] and inspect["Layers"] == [manifest["layers"][0]["digest"]]
    layout = str(tmp_path / "unpacked-layout")
    os.makedirs(layout)
    run(["tar", "-xf", path, "-C", layout])
    bundle = str(tmp_path / "bundle")
    run(["umoci", "unpack", "--image", "%s:latest" % layout, bundle])  # umoci verifies every digest
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, "etc/motd")) as handle:
        assert handle.read() == "hi"
    assert os.stat(os.path.join(rootfs, "srv/data")).st_uid == 1000
    again = convert(work, ref, format="oci-archive", force=True)
    assert again["sha256"] == result["sha256"]  # reproducible


def test_oci_archive_imported_by_the_pve_double_runs_the_exact_argv(work, bed, tmp_path):
    """Proxmox VE 9.1's import (the double: String::ShellQuote's real quoting, as cmd2string does it) of our
    archives, started with lxc-pve 6.0.5: pve_import_command's three ways, each run for real.

    - plain words: the image's own Entrypoint, which the importer's quoting keeps;
    - first and last word quoted (LXC strips a quote pair around the whole value): the whole 6.0-encoded
      command as ONE word, which the importer wraps in '...' and LXC unwraps;
    - a single quote ("it's"): the exec wrapper.
    """
    from pve_double.server import DEFAULT_PASSWORD, Double
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import PveClient
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import lxcinit
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.tasks import wait_task
    from lxcri_testbed.lxc import read_init
    script = "#!/bin/sh\nsleep 3600\n"
    cases = [
        (["/bin/sh", "-c", "sleep 3600; exit 0", "x", "a=b", ""], None, None),
        (["/bin/my app", "x", "two words"], "whole", ["/bin/sh", "/bin/my app", "x", "two words"]),
        (["/bin/sh", "-c", "sleep 3600; exit 0", "x", "two words", "it's"], "exec", None),
    ]
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        cache = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
        client = PveClient("127.0.0.1", port=double.port, password=DEFAULT_PASSWORD, ca_path=double.cert)
        for number, (argv, way, seen) in enumerate(cases):
            layer = base_layer().file("bin/my app", script, mode=0o755)
            ref = write_image(work["layout"], "pve%d" % number, [layer],
                              {"Entrypoint": argv, "Env": ["GREETING=hello world"]})
            result = convert(work, ref, format="oci-archive")
            runtime = result["runtime"]
            with tarfile.open(result["path"]) as tar:
                index = json.loads(tar.extractfile("index.json").read())

                def blob(digest):
                    return json.loads(tar.extractfile("blobs/sha256/" + digest.split(":")[1]).read())
                entrypoint = blob(blob(index["manifests"][0]["digest"])["config"]["digest"])["config"]["Entrypoint"]
            if way == "exec":
                assert runtime["wrapper"]["kind"] == "exec" and entrypoint == ["/.lxcri/exec"]
            else:
                assert runtime["wrapper"] is None
                assert (len(entrypoint) == 1) == (way == "whole") and (entrypoint == argv) == (way is None)
            os.link(result["path"], os.path.join(cache, result["filename"]))
            vmid = 150 + number
            upid = client.post("/nodes/pve1/lxc", vmid=vmid, ostemplate="local:vztmpl/" + result["filename"],
                               hostname="oci%d" % number)
            wait_task(client, "pve1", upid, timeout=60)
            config = client.get("/nodes/pve1/lxc/%d/config" % vmid)
            # lxcinit's model of the importer's quoting is what String::ShellQuote wrote
            assert config["entrypoint"] == lxcinit.pve_import_value(entrypoint), config["entrypoint"]
            wait_task(client, "pve1", client.post("/nodes/pve1/lxc/%d/status/start" % vmid), timeout=60)
            state, pid = double.backend.lxc_state(double.backend.containers[vmid])
            for dummy in range(50):  # the exec wrapper's sh, just before its exec
                init = read_init(pid)
                if init.argv == (seen or argv):
                    break
                time.sleep(0.1)
            assert state == "running" and init.argv == (seen or argv), (way, init.argv)
            wait_task(client, "pve1", client.post("/nodes/pve1/lxc/%d/status/stop" % vmid), timeout=60)
    finally:
        double.kill_containers()
        double.stop()


@pytest.mark.parametrize("importer", ["6.1", "6.0"])
def test_scratch_image_with_a_user_through_each_importer(work, bed, tmp_path, importer):
    """An image FROM scratch (no /etc) that runs as 1000:1000, as an OCI archive on a 9.1 node.

    pve-container 6.1's import resolves User through /etc/passwd in the rootfs and fails the whole create when
    there is no /etc: the archive gets an empty /etc, and the app runs as 1000.  6.0.x ignores User: lxc_container
    sees the ids missing from the config, removes the container it made and says so, instead of running the app
    as root."""
    from pve_double.server import DEFAULT_PASSWORD, Double
    from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError, ContainerManager
    from lxcri_testbed.lxc import read_init
    layer = Layer().dir("bin").busybox(("sh", "sleep"))
    argv = ["/bin/sleep", "3600"]
    ref = write_image(work["layout"], "scratch", [layer], {"Entrypoint": argv, "User": "1000:1000"})
    result = convert(work, ref, format="oci-archive")
    with tarfile.open(result["path"]) as tar:
        index = json.loads(tar.extractfile("index.json").read())

        def blob(digest):
            return tar.extractfile("blobs/sha256/" + digest.split(":")[1]).read()

        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        assert json.loads(blob(manifest["config"]["digest"]))["config"]["User"] == "1000:1000"
        layer_names = tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][0]["digest"]))).getnames()
    assert "etc" in layer_names  # resolve_oci_user's abs_path('/etc/passwd') needs the directory
    double = Double(str(tmp_path / "pve"), mode="9.1", importer=importer).start()
    try:
        cache = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
        os.link(result["path"], os.path.join(cache, result["filename"]))
        params = {"api_host": "127.0.0.1", "api_port": double.port, "api_user": "root@pam",
                  "api_password": DEFAULT_PASSWORD, "ca_path": double.cert, "vmid": 160, "hostname": "scratch",
                  "state": "started", "oci": {"volid": "local:vztmpl/" + result["filename"],
                                              "runtime": result["runtime"]}}
        if importer == "6.1":
            ContainerManager(params).run()
            state, pid = double.backend.lxc_state(double.backend.containers[160])
            init = read_init(pid)
            assert state == "running" and init.argv == argv and (init.uid, init.gid) == (1000, 1000)
        else:
            with pytest.raises(ContainerError) as err:
                ContainerManager(params).run()
            message = str(err.value)
            assert "did not set the image's uid 1000 (lxc.init.uid is unset)" in message
            assert "init_wrapper: always" in message and "was removed again" in message
            assert 160 not in double.backend.containers
    finally:
        double.kill_containers()
        double.stop()


# ---------------------------------------------------------------------------
# faults: nothing half-done is ever published

def _cached_layer(work, manifest_digest_prefix=None):
    blobs = os.path.join(work["cache"], "blobs", "sha256")
    return sorted((os.path.getsize(os.path.join(blobs, b)), os.path.join(blobs, b)) for b in os.listdir(blobs))[-1][1]


def test_corrupt_or_truncated_cached_layer_publishes_nothing(work):
    big = Layer().file("data/blob", os.urandom(1 << 20))
    ref = write_image(work["layout"], "corrupt", [base_layer(), big], {"Entrypoint": ["/bin/sleep", "1"]})
    TemplateManager({"image": ref, "cache_dir": work["cache"], "dest": work["dest"], "state": "absent"}).run()
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
    ImageManager({"image": ref, "cache_dir": work["cache"]}).run()
    layer = _cached_layer(work)
    with open(layer, "r+b") as handle:  # same size, different bytes: only the diff_id check can tell
        handle.seek(os.path.getsize(layer) // 2)
        handle.write(b"\0" * 64)
    with pytest.raises(OciError):
        convert(work, ref)
    assert published(work) == []
    os.truncate(layer, os.path.getsize(layer) // 2)  # truncated: re-fetched from the source, then fine
    result = convert(work, ref)
    names = sorted([os.path.basename(result["path"]), os.path.basename(result["sidecar"])])
    assert result["changed"] and published(work) == names


CONVERT = """
import json, sys
sys.path[:0] = json.loads(sys.argv[2])
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import NAMING_DEFAULTS, identity_hash
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager
r = TemplateManager(json.loads(sys.argv[1])).run()
print(json.dumps({"changed": r["changed"], "path": r["path"], "sha256": r["sha256"]}))
"""


def _spawn(params):
    return subprocess.Popen([sys.executable, "-c", CONVERT, json.dumps(params), json.dumps(sys.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def test_kill_9_mid_conversion_leaves_nothing_and_the_next_run_succeeds(work):
    big = Layer().file("data/big", os.urandom(48 << 20))
    ref = write_image(work["layout"], "kill", [base_layer(), big], {"Entrypoint": ["/bin/sleep", "1"]},
                      compression=None)
    params = {"image": ref, "dest": work["dest"], "cache_dir": work["cache"], "compression": "gzip"}
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
    ImageManager({"image": ref, "cache_dir": work["cache"]}).run()
    proc = _spawn(params)
    deadline = time.time() + 60
    while time.time() < deadline:
        tmp = [f for f in os.listdir(work["dest"]) if f.startswith(".lxcri-tmp-")]
        if tmp and os.path.getsize(os.path.join(work["dest"], tmp[0])) > (1 << 20):
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the conversion never started writing")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert [f for f in published(work) if not f.startswith(".lxcri-tmp-")] == []  # no template, no sidecar
    result = TemplateManager(params).run()
    assert result["changed"]
    assert published(work) == sorted([os.path.basename(result["path"]), os.path.basename(result["sidecar"])])


def test_two_concurrent_conversions_build_once(work):
    big = Layer().file("data/big", os.urandom(8 << 20))
    ref = write_image(work["layout"], "race", [base_layer(), big], {"Entrypoint": ["/bin/sleep", "1"]})
    params = {"image": ref, "dest": work["dest"], "cache_dir": work["cache"]}
    procs = [_spawn(params) for dummy in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    assert sorted(o["changed"] for o in outputs) == [False, True]
    assert outputs[0]["sha256"] == outputs[1]["sha256"]


# ---------------------------------------------------------------------------
# breakouts through the whole module: refused, nothing outside dest touched

def test_hostile_image_is_refused_and_nothing_outside_changes(work, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    hostile = Layer().symlink("escape", str(tmp_path)).file("escape/victim", "owned")
    ref = write_image(work["layout"], "hostile", [base_layer(), hostile], {"Entrypoint": ["/bin/sleep", "1"]})
    with pytest.raises(OciError, match="escape"):
        convert(work, ref)
    assert victim.read_text() == "untouched"
    assert published(work) == []
    hostile = Layer().file("../../outside", "x")
    ref = write_image(work["layout"], "hostile2", [base_layer(), hostile], {"Entrypoint": ["/bin/sleep", "1"]})
    with pytest.raises(OciError, match=r"\.\."):
        convert(work, ref)
    assert published(work) == []


# ---------------------------------------------------------------------------
# what the module reads is what Proxmox VE's exact restore gives (issue 18)

APP_SCRIPT = "#!/bin/sh\necho %s > /tmp/which\nwhile :; do sleep 1; done\n"


def test_same_path_twice_and_late_directories_restore_as_read(work, lxc_runner, tmp_path):
    lower = base_layer(etc=False).dir("etc").file("etc/group", GROUP).dir("home") \
        .dir("home/app", mode=0o700, uid=1000, gid=1000).dir("root", mode=0o700)
    # one layer gives /etc/passwd and the command twice; the restore (--skip-old-files) would keep the first
    # (app as uid 0, the "first" script), Docker the second; a hard link between them keeps the first passwd.
    # It also writes into /tmp (1777) and /home/app (0700, app's), whose lower entries come after.
    upper = Layer().file("etc/passwd", PASSWD.replace("app:x:1000:1000", "app:x:0:0")) \
        .hardlink("etc/passwd.first", "etc/passwd").file("etc/passwd", PASSWD) \
        .file("bin/app", APP_SCRIPT % "first", mode=0o755).file("bin/app", APP_SCRIPT % "second", mode=0o755) \
        .file("home/app/data", "d", uid=1000, gid=1000).file("tmp/.keep", "").file("root/.profile", "")
    ref = write_image(work["layout"], "samepath", [lower, upper], {
        "Entrypoint": ["/bin/sh", "/bin/app"], "WorkingDir": "/home/app", "User": "app", "Env": ["PATH=/bin"]})
    result = convert(work, ref)
    runtime = result["runtime"]
    assert (runtime["uid"], runtime["gid"]) == (1000, 1000)
    root = restore(result["path"], str(tmp_path / "root"))
    j = os.path.join
    with open(j(root, "etc/passwd")) as handle:
        assert handle.read() == PASSWD
    with open(j(root, "etc/passwd.first")) as handle:
        assert "app:x:0:0" in handle.read()
    with open(j(root, "bin/app")) as handle:
        assert "second" in handle.read()
    for path, mode, uid in (("tmp", 0o1777, 0), ("home/app", 0o700, 1000), ("root", 0o700, 0)):
        st = os.stat(j(root, path))
        assert (oct(st.st_mode & 0o7777), st.st_uid) == (oct(mode), uid), path
    check_init(start(lxc_runner, root, runtime), runtime)
    deadline = time.time() + 10
    while not os.path.exists(j(root, "tmp/which")) and time.time() < deadline:
        time.sleep(0.1)
    with open(j(root, "tmp/which")) as handle:
        assert handle.read() == "second\n"
    assert result["conversion"]["passes"] == 2 and result["conversion"]["same_path_repeats"] == 2


def test_fullwidth_user_is_a_name_as_runc_reads_it(work, lxc_runner, tmp_path):
    passwd = PASSWD + "\uff11\uff10\uff10\uff10:x:1001:1001::/:/bin/sh\n"
    layer = base_layer(etc=False).dir("etc").file("etc/passwd", passwd).file("etc/group", GROUP)
    ref = write_image(work["layout"], "wide", [layer], {"Entrypoint": ["/bin/sleep", "3600"], "User": "\uff11\uff10\uff10\uff10"})
    result = convert(work, ref)
    assert (result["runtime"]["uid"], result["runtime"]["gid"]) == (1001, 1001)  # the user of that name, not 1000
    root = restore(result["path"], str(tmp_path / "root"))
    check_init(start(lxc_runner, root, result["runtime"]), result["runtime"])
    ref = write_image(work["layout"], "wide2", [layer], {"Entrypoint": ["/bin/sleep", "1"], "User": " 1000"})
    with pytest.raises(OciError, match="is not defined in the image"):
        convert(work, ref)


def _acl_ids(path):
    data = os.getxattr(path, "system.posix_acl_access")
    return sorted(struct.unpack("<HHI", data[i:i + 8])[::2] for i in range(4, len(data), 8)
                  if struct.unpack("<H", data[i:i + 2])[0] in (2, 8))  # (ACL_USER or ACL_GROUP, id)


def test_pax_global_header_is_ignored(work, tmp_path):
    capability = "\x01\x00\x00\x02\x00\x20" + "\x00" * 14
    layer = base_layer() \
        .global_header({"SCHILY.xattr.security.capability": capability, "uid": "0", "SCHILY.xattr.user.g": "x"}) \
        .file("bin/tool", "t", mode=0o4755, uid=1000, gid=1000).file("bin/plain", "p")
    result = convert(work, write_image(work["layout"], "global", [layer], {"Entrypoint": ["/bin/sleep", "3600"]}))
    root = restore(result["path"], str(tmp_path / "root"))
    st = os.stat(os.path.join(root, "bin/tool"))
    assert (st.st_uid, st.st_mode & 0o7777) == (1000, 0o4755)
    for name in ("bin/tool", "bin/plain"):
        assert os.listxattr(os.path.join(root, name)) == [], name
    assert result["conversion"]["pax_global_headers"] == 1


def test_owners_an_unprivileged_restore_cannot_map_become_65534(work, tmp_path):
    layer = base_layer().file("bin/far", "f", mode=0o6755, uid=100000, gid=100000).file("bin/tool", "t", uid=1000)
    result = convert(work, write_image(work["layout"], "far", [layer], {"Entrypoint": ["/bin/sleep", "3600"]}))
    root = restore(result["path"], str(tmp_path / "root"))
    st = os.stat(os.path.join(root, "bin/far"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o755)  # and no setuid nobody
    # an unprivileged container's restore runs in its user namespace, where 100000 is no owner: tar fails
    shared = tempfile.mkdtemp(prefix="lxcri-userns-")
    try:
        os.chmod(shared, 0o755)
        template = os.path.join(shared, os.path.basename(result["path"]))
        shutil.copy(result["path"], template)
        unprivileged = os.path.join(shared, "root")
        os.mkdir(unprivileged)
        os.chown(unprivileged, 100000, 100000)
        run(restore_command(template, unprivileged, id_map=UNPRIVILEGED_ID_MAP))
        assert os.stat(os.path.join(unprivileged, "bin/far")).st_uid == 100000 + 65534
        assert os.stat(os.path.join(unprivileged, "bin/tool")).st_uid == 100000 + 1000
    finally:
        shutil.rmtree(shared)
    assert result["conversion"]["clamped_ids"] == 2
    hostile = base_layer().file("bin/root-su", "x", mode=0o4755, uid=2 ** 32 - 1)  # tar would leave it root's
    ref = write_image(work["layout"], "minus1", [hostile], {"Entrypoint": ["/bin/sleep", "1"]})
    with pytest.raises(OciError, match="uid 4294967295 is outside"):
        convert(work, ref)
    assert [f for f in published(work) if "minus1" in f] == []


def _acl_ids(path):
    data = os.getxattr(path, "system.posix_acl_access")
    entries = [struct.unpack("<HHI", data[i:i + 8]) for i in range(4, len(data), 8)]
    return sorted((tag, ident) for tag, perm, ident in entries if tag in (2, 8))  # ACL_USER, ACL_GROUP


def test_named_acl_entries_take_the_images_ids_not_the_hosts(work, tmp_path):
    # the host's daemon is uid 1; the image's is 2.  GNU tar --acls would look the name up on the host.
    layer = base_layer(etc=False).dir("etc").file("etc/passwd", PASSWD + "daemon:x:2:2::/:/bin/sh\n") \
        .file("etc/group", GROUP) \
        .file("bin/acl", "a", pax={"SCHILY.acl.access": "user::rw-,user:daemon:r--,group::r--,mask::r--,other::r--"}) \
        .file("bin/probe", "p", pax={"SCHILY.acl.access": "user::rw-,user:7:r--,group::r--,mask::r--,other::r--"})
    result = convert(work, write_image(work["layout"], "acl", [layer], {"Entrypoint": ["/bin/sleep", "3600"]}))
    root = restore(result["path"], str(tmp_path / "root"))
    assert _acl_ids(os.path.join(root, "bin/probe")) == [(2, 7)]  # (the filesystem keeps ACLs)
    assert _acl_ids(os.path.join(root, "bin/acl")) == [(2, 2)]
    assert result["conversion"]["acl_entries_converted"] == 1


def test_old_gnu_header_times_are_not_a_name_prefix(work, tmp_path):
    layer = base_layer().raw(old_gnu_member("etc/motd", b"hello\n"))
    result = convert(work, write_image(work["layout"], "oldgnu", [layer], {"Entrypoint": ["/bin/sleep", "3600"]}))
    root = restore(result["path"], str(tmp_path / "root"))
    with open(os.path.join(root, "etc/motd")) as handle:
        assert handle.read() == "hello\n"
    assert sorted(os.listdir(root)) == ["bin", "etc", "tmp"]


def test_workdir_or_volume_in_the_reserved_directory_is_refused(work):
    layer = base_layer().symlink("data", "/.lxcri/data")
    for tag, config in (("rsv1", {"WorkingDir": "/.lxcri/app"}), ("rsv2", {"Volumes": {"/data/x": {}}}),
                        ("rsv3", {"Entrypoint": ["/.lxcri/exec"]})):
        ref = write_image(work["layout"], tag, [layer], dict({"Entrypoint": ["/bin/sleep", "1"]}, **config))
        with pytest.raises(OciError, match=r"in /\.lxcri, which lxcri.proxmox reserves"):
            convert(work, ref)
        assert [f for f in published(work) if tag in f] == []


# ---------------------------------------------------------------------------
# init_wrapper: always (Proxmox VE before 9.1 runs /sbin/init)

def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        return [int(p) for p in handle.read().split()]


def test_init_wrapper_always_runs_the_app_as_child_with_user_env_cwd_and_stops_it(work, lxc_runner, tmp_path):
    from lxcri_testbed.lxc import lxc_info, read_init
    lower = with_setpriv(base_layer().dir("sbin").symlink("sbin/init", "/bin/busybox"))
    app = ("trap 'echo stopped-by-TERM > /tmp/stopped; exit 0' TERM; : > /tmp/ready; "
           "while :; do sleep 1; done")
    ref = write_image(work["layout"], "wrap", [lower], {
        "Entrypoint": ["/bin/sh", "-c", app, "app", "two words", "it's"], "Env": ["PATH=/bin", "MODE=a b=c"],
        "WorkingDir": "/work", "User": "app"})
    result = convert(work, ref, init_wrapper="always")
    runtime = result["runtime"]
    assert runtime["wrapper"]["kind"] == "init" and runtime["wrapper"]["drop_tool"] == "/usr/bin/setpriv"
    assert runtime["lxc_init_cmd"] == "/sbin/init" and runtime["lxc_config"] == []
    root = restore(result["path"], str(tmp_path / "root"))
    with open(os.path.join(root, "sbin/init"), "rb") as handle:
        assert handle.read().startswith(b"#!/bin/sh\n")  # replaced the image's symlink
    init = lxc_runner.start(root, "/sbin/init")  # nothing else: what a Proxmox VE 8 node does
    deadline = time.time() + 10
    while time.time() < deadline:
        # the wrapper's child runs setpriv and a sh step before it execs the app: wait for the app itself
        kids = []
        for pid in children(init.pid):
            try:
                kids.append(read_init(pid))
            except (ProcessLookupError, FileNotFoundError):
                pass  # a short-lived child (the wrapper's probe of env --default-signal) gone since the listing
        app_procs = [k for k in kids if k.argv == runtime["argv"]]
        if app_procs:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the app never started under the init wrapper: %s" % init.log)
    proc = app_procs[0]
    assert proc.argv == runtime["argv"]
    assert proc.env == {"PATH": "/bin", "MODE": "a b=c", "TERM": "linux"}  # the image's env and Proxmox's TERM
    assert proc.cwd == "/work" and (proc.uid, proc.gid) == (1000, 1000)
    assert groups_of(proc.pid) == [29, 44]
    # a graceful stop sends SIGPWR to init, which forwards the image's stop signal (SIGTERM) to the app, once the
    # app has its trap (a TERM before it would end the shell without the mark)
    deadline = time.time() + 10
    while not os.path.exists(os.path.join(root, "tmp", "ready")) and time.time() < deadline:
        time.sleep(0.05)
    run(["lxc-stop", "-P", lxc_runner.lxc_path, "-n", init.name, "-t", "20"], timeout=40)
    assert lxc_info(lxc_runner.lxc_path, init.name)[0] == "STOPPED"
    with open(os.path.join(root, "tmp", "stopped")) as handle:
        assert handle.read() == "stopped-by-TERM\n"


def test_init_wrapper_always_without_a_drop_tool_is_refused(work):
    ref = write_image(work["layout"], "nodrop", [base_layer()], {"Cmd": ["/bin/sleep", "1"], "User": "app"})
    with pytest.raises(OciError, match="no tool that can"):
        convert(work, ref, init_wrapper="always")
    assert published(work) == []


# ---------------------------------------------------------------------------
# storage: upload to a Proxmox VE storage over the API (the test double)

def test_upload_to_storage_idempotent_and_absent(work, tmp_path):
    from pve_double.server import DEFAULT_PASSWORD, Double
    double = Double(str(tmp_path / "pve"), mode="8").start()
    try:
        ref = write_image(work["layout"], "up", [base_layer()], {"Entrypoint": ["/bin/sleep", "3600"]})
        # Proxmox VE 8 runs the app only through the generated /sbin/init
        params = {"image": ref, "storage": "local", "cache_dir": work["cache"], "api_host": "127.0.0.1",
                  "api_port": double.port, "api_user": "root@pam", "api_password": DEFAULT_PASSWORD,
                  "ca_path": double.cert, "init_wrapper": "always"}
        check = TemplateManager(dict(params), check_mode=True).run()
        name = "layout_up_%s_%s" % (_short(work, "up"), identity_hash(dict(NAMING_DEFAULTS, init_wrapper="always"))[:8])
        assert check["changed"] and check["volid"] == "local:vztmpl/%s.tar.zst" % name
        on_disk = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
        assert [f for f in os.listdir(on_disk) if f.startswith("up_")] == []
        first = TemplateManager(dict(params)).run()
        assert first["changed"] and first["volid"] == check["volid"]
        uploaded = os.path.join(on_disk, first["filename"])
        assert _sha256(uploaded) == first["sha256"]
        assert not os.path.exists(os.path.join(work["cache"], "templates", first["filename"]))  # local copy gone
        second = TemplateManager(dict(params)).run()
        assert not second["changed"] and second["runtime"] == first["runtime"]
        gone = TemplateManager(dict(params, state="absent")).run()
        assert gone["changed"] and not os.path.exists(uploaded)
        assert not TemplateManager(dict(params, state="absent")).run()["changed"]
    finally:
        double.stop()


def _sha256(path):
    import hashlib
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_oci_archive_command_survives_proxmox_import_quoting(work):
    """Proxmox VE 9.1's importer shell-quotes Entrypoint+Cmd, which LXC 6.0 does not undo (lxcinit's model)."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import lxcinit
    cases = {
        "simple": ["/bin/sleep", "3600"],
        "spaces": ["/bin/sh", "-c", "sleep 3600; exit 0", "two words"],
        "quote": ["/bin/sh", "-c", "sleep 3600", "it's"],  # the importer mangles it: the exec wrapper instead
    }
    for tag, argv in cases.items():
        ref = write_image(work["layout"], tag, [base_layer()], {"Entrypoint": argv})
        runtime = convert(work, ref, format="oci-archive")["runtime"]
        oci = runtime["oci_config"]
        imported = lxcinit.split_init_cmd(lxcinit.pve_import_value((oci["Entrypoint"] or []) + (oci["Cmd"] or [])),
                                          "6.0")
        if tag == "quote":
            assert runtime["wrapper"]["kind"] == "exec" and imported == ["/.lxcri/exec"]
        else:
            assert runtime["wrapper"] is None and imported == argv, tag


def test_unknown_layer_media_type_falls_back_to_magic_bytes(work, tmp_path):
    ref = write_image(work["layout"], "magic", [base_layer(), Layer().file("etc/motd", "zstd inside")],
                      {"Entrypoint": ["/bin/sleep", "1"]}, compression="zstd")
    # relabel the layers with a media type the engine does not know (as some registries and tools write)
    layout = work["layout"]
    with open(os.path.join(layout, "index.json")) as handle:
        index = json.load(handle)
    desc = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "magic"][0]
    manifest_path = os.path.join(layout, "blobs", "sha256", desc["digest"].split(":")[1])
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    for layer in manifest["layers"]:
        layer["mediaType"] = "application/octet-stream"
    data = json.dumps(manifest).encode()
    import hashlib
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as handle:
        handle.write(data)
    desc.update(digest="sha256:" + digest, size=len(data))
    with open(os.path.join(layout, "index.json"), "w") as handle:
        json.dump(index, handle)
    result = convert(work, ref)
    root = restore(result["path"], str(tmp_path / "root"))
    with open(os.path.join(root, "etc/motd")) as handle:
        assert handle.read() == "zstd inside"
