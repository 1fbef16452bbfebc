"""The test bed itself works: ZFS datasets, registries with the test image, LXC runner."""

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest

from lxcri_testbed.lxc import StartFailed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _get(url, accept=None, auth=None):
    req = urllib.request.Request(url)
    if accept:
        req.add_header("Accept", accept)
    if auth:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_up_removes_stale_scratch_datasets_but_not_a_live_runs(zfs_dataset, bed):
    """`make test` runs the test bed's `up` again for each stage it starts, beside the integration stage: its
    datasets (their owner, the pid that made them, alive) stay; one whose owner is gone goes."""
    import uuid
    from lxcri_testbed import OWNER_PROPERTY
    from lxcri_testbed.bed import remove_stale_datasets
    child = subprocess.Popen(["true"])
    child.wait()
    stale = "%s/t-stale-%s" % (bed["zfs"]["pool"], uuid.uuid4().hex[:8])
    subprocess.run(["zfs", "create", "-o", "%s=%d" % (OWNER_PROPERTY, child.pid), stale], check=True)
    remove_stale_datasets()
    names = subprocess.run(["zfs", "list", "-H", "-o", "name", "-d", "1", bed["zfs"]["pool"]],
                           stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    assert zfs_dataset in names and stale not in names, names
    owner = subprocess.run(["zfs", "get", "-H", "-o", "value", OWNER_PROPERTY, zfs_dataset], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.strip()
    assert owner == str(os.getpid())


def test_zfs_dataset_is_real_and_scratch(zfs_dataset, bed):
    assert zfs_dataset.startswith(bed["zfs"]["pool"] + "/t-")
    mountpoint = subprocess.run(["zfs", "get", "-H", "-o", "value", "mountpoint", zfs_dataset],
                                stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    with open(os.path.join(mountpoint, "probe"), "w") as handle:
        handle.write("x" * 4096)
    subprocess.run(["zfs", "snapshot", zfs_dataset + "@s1"], check=True)
    listing = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", zfs_dataset],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    assert listing == [zfs_dataset + "@s1"]
    mark = subprocess.run(["zfs", "get", "-H", "-o", "value", "lxcri:testbed", bed["zfs"]["pool"]],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert mark == "yes"


def test_open_registry_serves_the_test_image(registry_image, bed):
    repo, tag = registry_image.refs["open"].split("/", 1)[1].rsplit(":", 1)
    status, headers, body = _get("%s/v2/%s/manifests/%s" % (bed["registry"]["url"], repo, tag),
                                 accept=OCI_MANIFEST)
    assert status == 200
    assert headers["Docker-Content-Digest"] == registry_image.digest
    manifest = json.loads(body)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert len(manifest["layers"]) == registry_image.layers == 3
    config = registry_image.image_config()["config"]
    assert config["Entrypoint"] == ["/bin/sleep"]
    assert config["Cmd"] == ["3600"]
    assert config["WorkingDir"] == "/app"
    assert config["User"] == "1000:1000"
    assert "GREETING=hello world" in config["Env"]


def test_auth_registry_requires_credentials(registry_image, bed):
    reg = bed["registry_auth"]
    repo, tag = registry_image.refs["auth"].split("/", 1)[1].rsplit(":", 1)
    url = "%s/v2/%s/manifests/%s" % (reg["url"], repo, tag)
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(url, accept=OCI_MANIFEST)
    assert err.value.code == 401
    assert "Basic" in err.value.headers["WWW-Authenticate"]
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(url, accept=OCI_MANIFEST, auth=(reg["username"], "wrong"))
    assert err.value.code == 401
    status, headers, dummy = _get(url, accept=OCI_MANIFEST, auth=(reg["username"], reg["password"]))
    assert status == 200
    assert headers["Docker-Content-Digest"] == registry_image.digest


def test_lxc_runner_reports_init_argv_env_cwd_and_ids(lxc_runner, image_rootfs, registry_image):
    cfg = registry_image.config
    env = dict(item.split("=", 1) for item in cfg["env"])
    init = lxc_runner.start(image_rootfs, " ".join(cfg["entrypoint"] + cfg["cmd"]),
                            cwd=cfg["workdir"], uid=1000, gid=1000, env=env)
    assert init.argv == ["/bin/sleep", "3600"]
    assert init.cwd == "/app"
    assert (init.uid, init.gid) == (1000, 1000)
    assert init.env["GREETING"] == "hello world"
    assert init.env["APP_MODE"] == "test"
    assert init.env["container"] == "lxc"
    # layer 3's whiteout removed the file from layer 1
    assert not os.path.exists(os.path.join(image_rootfs, "etc", "obsolete.conf"))


def test_lxc_runner_defaults_to_root_in_rootdir(lxc_runner, image_rootfs):
    init = lxc_runner.start(image_rootfs, "/bin/hold a b")
    assert init.argv == ["/bin/sh", "/bin/hold", "a", "b"]
    assert (init.uid, init.gid) == (0, 0)
    assert init.cwd == "/"


def test_lxc_5_splits_init_cmd_on_whitespace_only(lxc_runner, image_rootfs):
    """DESIGN.md: LXC 5.0 keeps quotes as characters; 6.0 would give ['a b']."""
    version = subprocess.run(["lxc-start", "--version"], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.strip()
    if not version.startswith("5."):
        pytest.skip("this checks LXC 5.x behaviour; found %s" % version)
    init = lxc_runner.start(image_rootfs, "/bin/hold 'a b' \"c\"")
    assert init.argv == ["/bin/sh", "/bin/hold", "'a", "b'", '"c"']


def test_lxc_runner_reports_a_missing_cwd_as_start_failure(lxc_runner, image_rootfs):
    with pytest.raises(StartFailed) as err:
        lxc_runner.start(image_rootfs, "/bin/hold", cwd="/does/not/exist")
    assert 'Could not change directory to "/does/not/exist"' in err.value.log
