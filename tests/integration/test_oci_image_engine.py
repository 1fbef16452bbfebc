"""The OCI acquisition engine against real registries, real tools' archives and injected faults."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import (
    AuthError, OciError, PlatformError, UnsupportedError, VerificationError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import open_layer
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_reference
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.registry import RegistryClient
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.authfile import Credentials
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.sources import RegistrySource

from lxcri_testbed import TEST_REPO_NS, images
from lxcri_testbed.proxy import FaultProxy

COLLECTIONS_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                ".cache", "collections")


@pytest.fixture(scope="session")
def catalog(bed, registry_image, tmp_path_factory):
    """Every image and source the tests pull, built now with umoci/skopeo/own code."""
    work = tmp_path_factory.mktemp("catalog")
    cat = {"single": registry_image, "work": str(work)}
    images.push_image(registry_image, bed["registry_token"], TEST_REPO_NS + "/busybox", "token")
    multi = images.build_multiplatform(str(work / "multi"))
    images.push_multiplatform(multi, bed["registry"], TEST_REPO_NS + "/multi-oci", "oci")
    images.push_multiplatform(multi, bed["registry"], TEST_REPO_NS + "/multi-docker", "docker", docker_format=True)
    cat["multi"] = multi
    cat["oci_archive"] = images.skopeo_archive(registry_image, "oci-archive", str(work / "skopeo-oci.tar"), "1")
    cat["docker_archive"] = images.skopeo_archive(registry_image, "docker-archive",
                                                  str(work / "skopeo-docker.tar"), "lxcri/busybox:1")
    cat["docker_oci"] = images.docker_oci_archive(multi, str(work / "docker-oci.tar"), "docker.io/lxcri/app:2", "2")
    big = images.build_image(str(work / "big"), tag="big", big_bytes=24 * 1024 * 1024)
    images.push_image(big, bed["registry"], TEST_REPO_NS + "/big", "open")
    cat["big"] = big
    # Docker Hub's name for the single image, served by the open registry acting as a mirror
    images.push_image(registry_image, bed["registry"], "library/busybox", "hub-mirror")
    return cat


@pytest.fixture
def proxy(bed):
    fault_proxy = FaultProxy(bed["registry"]["host"]).start()
    yield fault_proxy
    fault_proxy.stop()


def pull(image, cache, **params):
    params.setdefault("registry_tls_verify", False)
    options = params.pop("client_options", None)
    return ImageManager(dict(params, image=image, cache_dir=str(cache)), client_options=options).run()


def all_blobs_verify(cache):
    base = os.path.join(str(cache), "blobs", "sha256")
    names = os.listdir(base) if os.path.isdir(base) else []
    for name in names:
        with open(os.path.join(base, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == name, "corrupt blob in cache: %s" % name
    return names


def layer_file(cache, result, path):
    """Read ``path`` from the pulled layers (top layer wins), straight from the cache."""
    found = None
    for layer in result["layers"]:
        with tarfile.open(layer["path"], "r:*") as tar:
            for member in tar.getmembers():
                if member.name.lstrip("./") == path and member.isfile():
                    found = tar.extractfile(member).read()
    return found


# --- sources and manifest types ---------------------------------------------------

def source_cases(cat, bed):
    single = cat["single"]
    return {
        "registry-open": ("%s" % single.refs["open"], {}),
        "registry-basic-auth": (single.refs["auth"], {"registry_username": bed["registry_auth"]["username"],
                                                      "registry_password": bed["registry_auth"]["password"]}),
        "registry-token-auth": (single.refs["token"], {"registry_username": bed["registry_token"]["username"],
                                                       "registry_password": bed["registry_token"]["password"]}),
        "registry-by-digest": ("%s@%s" % (single.refs["open"].rsplit(":", 1)[0], single.digest), {}),
        "oci-layout-umoci": ("oci-layout:%s:%s" % (single.layout, single.tag), {}),
        "oci-layout-digest": ("oci-layout:%s@%s" % (single.layout, single.manifest()[0]), {}),
        "oci-archive-skopeo": ("oci-archive:%s:1" % cat["oci_archive"], {}),
        "docker-archive-skopeo": ("docker-archive:%s" % cat["docker_archive"], {}),
        "docker-archive-skopeo-tagged": ("docker-archive:%s:lxcri/busybox:1" % cat["docker_archive"], {}),
    }


@pytest.mark.parametrize("case", ["registry-open", "registry-basic-auth", "registry-token-auth",
                                  "registry-by-digest", "oci-layout-umoci", "oci-layout-digest",
                                  "oci-archive-skopeo", "docker-archive-skopeo", "docker-archive-skopeo-tagged"])
def test_every_source_pulls_verified_and_once(catalog, bed, tmp_path, case):
    image, params = source_cases(catalog, bed)[case]
    first = pull(image, tmp_path, verify_diff_ids=True, **params)
    assert first["changed"] is True and first["fetched_bytes"] > 0
    assert first["config"]["Entrypoint"] == ["/bin/sleep"]
    assert first["config"]["WorkingDir"] == "/app"
    assert first["config"]["User"] == "1000:1000"
    assert "GREETING=hello world" in first["config"]["Env"]
    assert len(first["layers"]) == 3
    assert all(layer["uncompressed_size"] > 0 and layer["diff_id_verified"] for layer in first["layers"])
    assert first["uncompressed_size"] == sum(layer["uncompressed_size"] for layer in first["layers"])
    stored = all_blobs_verify(tmp_path)
    assert len(stored) == 5  # manifest, config, 3 layers
    # the whiteout in layer 3 and the busybox in layer 1 are really there
    assert layer_file(tmp_path, first, "app/data/version") == b"3\n"
    second = pull(image, tmp_path, **params)
    assert second["changed"] is False and second["fetched_bytes"] == 0
    assert second["manifest_digest"] == first["manifest_digest"]
    if case.startswith("registry") or case.startswith("oci-"):
        assert first["manifest_digest"] == catalog["single"].digest


@pytest.mark.parametrize("repo,media_type", [
    ("multi-oci", "application/vnd.oci.image.manifest.v1+json"),
    ("multi-docker", "application/vnd.docker.distribution.manifest.v2+json"),
])
@pytest.mark.parametrize("platform,marker", [(None, "amd64"), ("linux/amd64", "amd64"),
                                             ("linux/arm64", "arm64"), ("linux/arm64/v8", "arm64")])
def test_index_and_manifest_list_choose_the_platform(catalog, bed, tmp_path, repo, media_type, platform, marker):
    if platform is None and os.uname().machine not in ("x86_64", "amd64"):
        pytest.skip("the default platform case expects an amd64 host")
    result = pull("%s/%s/%s:multi" % (bed["registry"]["host"], TEST_REPO_NS, repo), tmp_path, platform=platform)
    assert result["media_type"] == media_type
    assert result["platform"]["architecture"] == marker
    assert result["index_digest"] is not None
    assert layer_file(tmp_path, result, "etc/lxcri-marker") == (marker + "\n").encode()
    if repo.endswith("oci"):
        assert result["manifest_digest"] == catalog["multi"].manifests["linux/" + marker]
        assert result["index_digest"] == catalog["multi"].index_digest


def test_missing_platform_names_the_offered_ones(catalog, bed, tmp_path):
    with pytest.raises(PlatformError) as err:
        pull("%s/%s/multi-oci:multi" % (bed["registry"]["host"], TEST_REPO_NS), tmp_path, platform="linux/s390x")
    assert "linux/s390x" in str(err.value) and "linux/amd64, linux/arm64/v8" in str(err.value)
    with pytest.raises(PlatformError) as err:
        pull(catalog["single"].refs["open"], tmp_path, platform="linux/arm64")
    assert "is for linux/amd64 only" in str(err.value)
    assert not os.listdir(str(tmp_path / "blobs")) or all_blobs_verify(tmp_path) == []


def test_docker_oci_save_format_with_nested_index(catalog, tmp_path):
    result = pull("docker-archive:%s:lxcri/app:2" % catalog["docker_oci"], tmp_path, platform="linux/arm64")
    assert result["manifest_digest"] == catalog["multi"].manifests["linux/arm64"]
    assert layer_file(tmp_path, result, "etc/lxcri-marker") == b"arm64\n"
    with pytest.raises(OciError) as err:
        pull("docker-archive:%s:lxcri/other:1" % catalog["docker_oci"], tmp_path)
    assert "no image named 'docker.io/lxcri/other:1'" in str(err.value)
    assert "docker.io/lxcri/app:2" in str(err.value)


def test_deferred_diff_id_check_happens_while_reading(catalog, tmp_path):
    """By default a pull checks digests only; every layer read checks the diff_id."""
    result = pull(catalog["single"].refs["open"], tmp_path)
    assert [layer["diff_id_verified"] for layer in result["layers"]] == [False, False, False]
    assert result["uncompressed_size"] is None
    store = BlobStore(str(tmp_path))
    for layer, entry in zip(catalog["single"].manifest()[1]["layers"], result["layers"]):
        with open_layer(store, layer, entry["diff_id"]) as reader:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                names = [member.name for member in tar]
            reader.read()  # drain the tar's zero padding to reach the end of the stream
        assert names
    again = pull(catalog["single"].refs["open"], tmp_path)
    assert again["changed"] is False
    assert all(layer["diff_id_verified"] for layer in again["layers"])
    assert again["uncompressed_size"] == sum(layer["uncompressed_size"] for layer in again["layers"]) > 0


def lying_layout(catalog, tmp_path):
    """A copy of the single image whose config claims a wrong diff_id for layer 2."""
    import shutil
    layout = tmp_path / "lying"
    shutil.copytree(catalog["single"].layout, str(layout))
    blobs = layout / "blobs" / "sha256"
    digest, manifest = catalog["single"].manifest()
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    config["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
    config_bytes = json.dumps(config).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    (blobs / config_digest).write_bytes(config_bytes)
    manifest["config"] = dict(manifest["config"], digest="sha256:" + config_digest, size=len(config_bytes))
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest_bytes)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifest_digest,
        "size": len(manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return layout, manifest


def test_a_lying_diff_id_is_caught_at_pull_when_asked(catalog, tmp_path):
    layout, manifest = lying_layout(catalog, tmp_path)
    with pytest.raises(VerificationError) as err:
        pull("oci-layout:%s:1" % layout, tmp_path / "cache", verify_diff_ids=True)
    assert "the config's diff_id is sha256:" + "0" * 64 in str(err.value)
    assert manifest["layers"][1]["digest"].split(":")[1] not in all_blobs_verify(tmp_path / "cache")


def test_a_lying_diff_id_is_caught_when_the_layer_is_read(catalog, tmp_path):
    layout, manifest = lying_layout(catalog, tmp_path)
    pull("oci-layout:%s:1" % layout, tmp_path / "cache")
    store = BlobStore(str(tmp_path / "cache"))
    with pytest.raises(VerificationError) as err:
        with open_layer(store, manifest["layers"][1], "sha256:" + "0" * 64) as reader:
            while reader.read(65536):
                pass
    assert "the config's diff_id is sha256:" + "0" * 64 in str(err.value)
    assert store.get_meta(manifest["layers"][1]["digest"]) == {}


def test_docker_schema1_is_refused_clearly(tmp_path):
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    body = json.dumps({"schemaVersion": 1, "name": "x/y", "tag": "1", "fsLayers": [], "history": []}).encode()
    digest = hashlib.sha256(body).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(body)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "digest": "sha256:" + digest,
        "size": len(body), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    with pytest.raises(UnsupportedError) as err:
        pull("oci-layout:%s:1" % layout, tmp_path / "cache")
    assert "schema 1 is not supported" in str(err.value)


def test_a_lying_layout_is_caught(catalog, tmp_path):
    """A layout whose blob does not match its descriptor: nothing enters the cache."""
    import shutil
    layout = tmp_path / "layout"
    shutil.copytree(catalog["single"].layout, str(layout))
    digest, manifest = catalog["single"].manifest()
    victim = manifest["layers"][1]["digest"].split(":")[1]
    path = layout / "blobs" / "sha256" / victim
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as err:
        pull("oci-layout:%s:1" % layout, tmp_path / "cache")
    assert victim in str(err.value)
    assert victim not in all_blobs_verify(tmp_path / "cache")
    assert os.listdir(str(tmp_path / "cache" / "tmp")) == []


# --- auth ---------------------------------------------------------------------------

def test_auth_errors_say_what_to_do(catalog, bed, tmp_path):
    with pytest.raises(AuthError) as err:
        pull(catalog["single"].refs["auth"], tmp_path)
    assert "HTTP 401" in str(err.value) and "set registry_username/registry_password" in str(err.value)
    with pytest.raises(AuthError) as err:
        pull(catalog["single"].refs["token"], tmp_path, registry_username="lxcri", registry_password="wrong")
    assert "refused the credentials" in str(err.value) and "wrong" not in str(err.value)


def test_auth_file(catalog, bed, tmp_path):
    import base64
    auth = base64.b64encode(b"%s:%s" % (bed["registry_auth"]["username"].encode(),
                                        bed["registry_auth"]["password"].encode())).decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"http://%s" % bed["registry_auth"]["host"]: {"auth": auth}}}))
    result = pull(catalog["single"].refs["auth"], tmp_path / "cache", auth_file=str(path))
    assert result["changed"] is True


def test_bearer_token_is_renewed_when_it_expires(catalog, bed):
    control = bed["registry_token"]["token_service"]["control"]
    urllib.request.urlopen(urllib.request.Request(control + "/ttl?seconds=2", method="POST"))
    try:
        client = RegistryClient(credentials=Credentials(bed["registry_token"]["username"],
                                                        bed["registry_token"]["password"]), tls_verify=False)
        src = RegistrySource(client, parse_reference(catalog["single"].refs["token"]))
        body, dummy, dummy2 = src.root()
        manifest = json.loads(body)
        assert client.stats["token_requests"] == 1
        time.sleep(2.5)  # the registry now refuses the first token (exp passed)
        data = src.blob_bytes(manifest["config"], 1 << 20)
        assert json.loads(data)["config"]["WorkingDir"] == "/app"
        assert client.stats["token_requests"] == 2
    finally:
        urllib.request.urlopen(urllib.request.Request(control + "/ttl?seconds=300", method="POST"))


def test_docker_hub_mirror(catalog, bed, tmp_path):
    result = pull("busybox:1", tmp_path, registry_mirrors=["http://%s" % bed["registry"]["host"]])
    assert result["image"] == "docker.io/library/busybox:1"
    assert result["manifest_digest"] == catalog["single"].digest


# --- faults ---------------------------------------------------------------------------

def recorded_sleep():
    waits = []
    return waits, {"sleep": waits.append, "backoff": 0.01}


def proxied(proxy, catalog, name="single"):
    image = catalog[name]
    return "%s/%s" % (proxy.host, image.refs["open"].split("/", 1)[1])


def test_429_with_retry_after_is_honoured(catalog, proxy, tmp_path):
    waits, options = recorded_sleep()
    proxy.add("status", r"/manifests/", status=429, headers={"Retry-After": "1"})
    result = pull(proxied(proxy, catalog), tmp_path, client_options=options)
    assert result["changed"] is True
    assert waits == [1.0]
    assert [e["status"] for e in proxy.requests(pattern="/manifests/")][:2] == [429, 200]


def test_500_on_a_blob_is_retried(catalog, proxy, tmp_path):
    waits, options = recorded_sleep()
    proxy.add("status", r"/blobs/", times=2, status=500)
    result = pull(proxied(proxy, catalog), tmp_path, client_options=options)
    assert result["changed"] is True and len(waits) == 2
    all_blobs_verify(tmp_path)


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_broken_blob_download_resumes_with_range(catalog, proxy, tmp_path, kind):
    waits, options = recorded_sleep()
    layer = catalog["big"].manifest()[1]["layers"][-1]["digest"]
    proxy.add(kind, layer, after=5 * 1024 * 1024)
    result = pull(proxied(proxy, catalog, "big"), tmp_path, client_options=options)
    assert result["changed"] is True
    requests = proxy.requests(pattern=layer)
    assert len(requests) == 2
    # a reset may drop bytes in flight: the resume starts where the client really was
    assert requests[0]["range"] is None
    resumed_at = int(requests[1]["range"][len("bytes="):-1])
    assert 0 < resumed_at <= 5 * 1024 * 1024
    if kind == "truncate":
        assert resumed_at == 5 * 1024 * 1024
    assert layer.split(":")[1] in all_blobs_verify(tmp_path)


@pytest.mark.parametrize("keep", [False, True])
def test_wrong_digest_fails_cleanly(catalog, proxy, tmp_path, keep):
    waits, options = recorded_sleep()
    layer = catalog["single"].manifest()[1]["layers"][0]["digest"]
    proxy.add("corrupt", layer, times=100)
    with pytest.raises(VerificationError) as err:
        pull(proxied(proxy, catalog), tmp_path, client_options=options, keep_corrupt=keep)
    assert layer in str(err.value) and "hashes to" in str(err.value)
    assert layer.split(":")[1] not in all_blobs_verify(tmp_path)
    assert os.listdir(str(tmp_path / "tmp")) == []
    kept = os.listdir(str(tmp_path / "corrupt")) if os.path.isdir(str(tmp_path / "corrupt")) else []
    assert len(kept) == (1 if keep else 0)


def test_401_then_token_then_success(catalog, proxy, tmp_path):
    proxy.require_token = True
    result = pull(proxied(proxy, catalog), tmp_path)
    assert result["changed"] is True
    assert len(proxy.requests(pattern=r"^/token")) == 1
    assert proxy.requests(status=401)[0]["fault"] == "token-gate"


def test_redirect_to_blob_storage_drops_the_credentials(catalog, proxy, tmp_path):
    proxy.require_token = True
    proxy.add("redirect", r"/blobs/", times=10)
    result = pull(proxied(proxy, catalog), tmp_path)
    assert result["changed"] is True
    served = proxy.requests(pattern=r"^/_blob")
    assert len(served) == 4  # config + 3 layers
    assert all(entry["authorization"] is None for entry in served)
    assert all(entry["host"].startswith("localhost:") for entry in served)


def test_a_digest_reference_costs_no_network_the_second_time(catalog, proxy, tmp_path):
    ref = "%s@%s" % (proxied(proxy, catalog).rsplit(":", 1)[0], catalog["single"].digest)
    pull(ref, tmp_path)
    proxy.clear()
    again = pull(ref, tmp_path)
    assert again["changed"] is False
    assert proxy.log == []
    tagged = pull(proxied(proxy, catalog), tmp_path)
    assert tagged["changed"] is False
    assert [e["path"] for e in proxy.log] == ["/v2/%s/busybox/manifests/1" % TEST_REPO_NS]


PULL_SCRIPT = """
import json, sys
sys.path.insert(0, %r)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import open_layer
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import BlobStore
result = ImageManager({"image": sys.argv[1], "cache_dir": sys.argv[2], "registry_tls_verify": False}).run()
print(json.dumps({"changed": result["changed"], "fetched": result["fetched_blobs"]}))
""" % COLLECTIONS_ROOT


def start_pull(image, cache):
    return subprocess.Popen([sys.executable, "-c", PULL_SCRIPT, image, str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def test_kill_9_mid_pull_leaves_no_corrupt_entry(catalog, proxy, tmp_path):
    layer = catalog["big"].manifest()[1]["layers"][-1]
    proxy.add("slow", layer["digest"], rate=4 * 1024 * 1024)
    proc = start_pull(proxied(proxy, catalog, "big"), tmp_path)
    deadline = time.time() + 30
    while not proxy.requests(pattern=layer["digest"]) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # well inside the ~6 s slow transfer
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert layer["digest"].split(":")[1] not in all_blobs_verify(tmp_path)
    leftovers = os.listdir(str(tmp_path / "tmp"))
    assert leftovers, "expected the killed pull's partial file"
    rerun = start_pull(proxied(proxy, catalog, "big"), tmp_path)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert layer["digest"] in json.loads(out)["fetched"]
    assert layer["digest"].split(":")[1] in all_blobs_verify(tmp_path)
    assert os.listdir(str(tmp_path / "tmp")) == []  # the dead process's partial file was cleaned up


def test_parallel_processes_download_each_blob_once(catalog, proxy, tmp_path):
    manifest = catalog["big"].manifest()[1]
    for layer in manifest["layers"]:
        proxy.add("slow", layer["digest"], times=10, rate=16 * 1024 * 1024)
    procs = [start_pull(proxied(proxy, catalog, "big"), tmp_path) for dummy in range(4)]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for dummy, err in outputs]
    fetched = [json.loads(out)["fetched"] for out, dummy in outputs]
    for layer in manifest["layers"]:
        assert len(proxy.requests(pattern=layer["digest"], status=200)) == 1
        assert sum(layer["digest"] in f for f in fetched) == 1
    assert len(all_blobs_verify(tmp_path)) == 2 + len(manifest["layers"])


def test_cache_max_bytes_evicts_unpinned_lru_only(catalog, bed, tmp_path):
    first = pull(catalog["single"].refs["open"], tmp_path)
    pull("%s/%s/multi-oci:multi" % (bed["registry"]["host"], TEST_REPO_NS), tmp_path, platform="linux/arm64")
    ImageManager({"image": "%s/%s/multi-oci:multi" % (bed["registry"]["host"], TEST_REPO_NS),
                  "cache_dir": str(tmp_path),
                  "platform": "linux/arm64", "state": "absent"}).run()
    store_before = set(all_blobs_verify(tmp_path))
    result = pull(catalog["single"].refs["open"], tmp_path, cache_max_bytes=1)
    kept = set(all_blobs_verify(tmp_path))
    pinned = set(d.split(":")[1] for d in [first["manifest_digest"], first["config_digest"]]
                 + [layer["digest"] for layer in first["layers"]])
    assert pinned <= kept
    assert kept == pinned
    assert set(d.split(":")[1] for d in result["removed_blobs"]) == (store_before - pinned)


def test_a_server_that_ignores_range_gets_a_restart(catalog, proxy, tmp_path):
    waits, options = recorded_sleep()
    layer = catalog["big"].manifest()[1]["layers"][-1]["digest"]
    proxy.add("truncate", layer, after=3 * 1024 * 1024)
    proxy.add("ignore-range", layer)
    result = pull(proxied(proxy, catalog, "big"), tmp_path, client_options=options)
    assert result["changed"] is True
    first, second = proxy.requests(pattern=layer)
    assert second["range"] == "bytes=%d-" % (3 * 1024 * 1024) and second["status"] == 200
    assert layer.split(":")[1] in all_blobs_verify(tmp_path)


def test_tls_registry_with_a_private_ca(registry_image, bed, tmp_path):
    reg = bed["registry_tls"]
    images.push_image(registry_image, reg, TEST_REPO_NS + "/busybox", "tls")
    image = registry_image.refs["tls"]
    with pytest.raises(OciError) as err:
        pull(image, tmp_path / "a", registry_tls_verify=True)
    assert "TLS error talking to %s" % reg["host"] in str(err.value) and "registry_ca_path" in str(err.value)
    assert pull(image, tmp_path / "b", registry_tls_verify=True, registry_ca_path=reg["ca"])["changed"] is True
    assert pull(image, tmp_path / "c", registry_tls_verify=False)["changed"] is True


def test_plain_http_only_when_asked(registry_image, tmp_path):
    with pytest.raises(OciError) as err:
        pull(registry_image.refs["open"], tmp_path, registry_tls_verify=True, retries=0)
    assert "registry_tls_verify: false" in str(err.value)
    assert not os.listdir(str(tmp_path / "blobs"))


@pytest.mark.parametrize("verify", [True, False])
def test_zstd_layers(registry_image, bed, tmp_path, verify):
    """Layers recompressed by the zstd command; diff_ids are checked without the zstandard module."""
    zimage = images.zstd_variant(registry_image, str(tmp_path / "work"))
    dest = images.push_image(zimage, bed["registry"], TEST_REPO_NS + "/busybox-zstd", "open")
    result = pull(dest, tmp_path / "cache", verify_diff_ids=verify)
    assert {layer["media_type"] for layer in result["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert [layer["diff_id"] for layer in result["layers"]] == registry_image.image_config()["rootfs"]["diff_ids"]
    if not verify:
        store = BlobStore(str(tmp_path / "cache"))
        for layer, entry in zip(zimage.manifest()[1]["layers"], result["layers"]):
            with open_layer(store, layer, entry["diff_id"]) as reader:
                while reader.read(1 << 20):
                    pass
        result = pull(dest, tmp_path / "cache")
    assert all(layer["diff_id_verified"] for layer in result["layers"])


def test_oversized_documents_are_refused(tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"manifests": [], "pad": "%s"}' % ("x" * (5 * 1024 * 1024)))
    with pytest.raises(VerificationError) as err:
        pull("oci-layout:%s" % layout, tmp_path / "cache")
    assert "index.json is more than the 4194304 bytes allowed" in str(err.value)
