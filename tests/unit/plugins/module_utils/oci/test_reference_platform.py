"""Reference normalisation, source strings, platforms (pure logic)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import InvalidReference, PlatformError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.platform import (
    Platform, choose_manifest, host_platform, parse_platform)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import (
    Source, parse_reference, parse_source)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,normalised,api_host", [
    ("nginx", "docker.io/library/nginx:latest", "registry-1.docker.io"),
    ("nginx:1.27", "docker.io/library/nginx:1.27", "registry-1.docker.io"),
    ("library/nginx", "docker.io/library/nginx:latest", "registry-1.docker.io"),
    ("docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27", "registry-1.docker.io"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest", "registry-1.docker.io"),
    ("bitnami/redis:7", "docker.io/bitnami/redis:7", "registry-1.docker.io"),
    ("ghcr.io/org/app@" + D, "ghcr.io/org/app@" + D, "ghcr.io"),
    ("registry.local:5000/app:tag", "registry.local:5000/app:tag", "registry.local:5000"),
    ("localhost/app", "localhost/app:latest", "localhost"),
    ("localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000"),
    ("nginx:1.27@" + D, "docker.io/library/nginx:1.27@" + D, "registry-1.docker.io"),
    ("Registry/app", "Registry/app:latest", "Registry"),  # upper case first part: a host
    ("127.0.0.1:45000/lxcri-test/busybox:1", "127.0.0.1:45000/lxcri-test/busybox:1", "127.0.0.1:45000"),
])
def test_reference_normalisation(text, normalised, api_host):
    ref = parse_reference(text)
    assert str(ref) == normalised
    assert ref.api_host == api_host


def test_digest_decides_over_tag():
    ref = parse_reference("nginx:1.27@" + D)
    assert ref.tag == "1.27" and ref.digest == D and ref.lookup == D
    assert parse_reference("nginx").lookup == "latest"


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"),
    (" nginx", "spaces"),
    ("NGINX", "lower-case"),
    ("docker.io/Library/nginx", "lower-case"),
    ("nginx:bad tag", "bad tag"),
    ("nginx@sha256:123", "malformed sha256 digest"),
    ("nginx@md5:" + "a" * 32, "not accepted"),
    ("a" * 300, "longer than"),
    ("-bad/x", "lower-case"),
])
def test_bad_references(text, fragment):
    with pytest.raises(InvalidReference) as err:
        parse_reference(text)
    assert fragment in str(err.value)


def test_sources():
    src = parse_source("docker://nginx")
    assert src.kind == Source.REGISTRY and str(src) == "docker.io/library/nginx:latest"
    src = parse_source("oci-layout:/srv/layout:1.0")
    assert (src.kind, src.path, src.tag, src.digest) == ("oci-layout", "/srv/layout", "1.0", None)
    src = parse_source("oci-layout:/srv/layout@" + D)
    assert (src.path, src.tag, src.digest) == ("/srv/layout", None, D)
    assert str(src) == "oci-layout:/srv/layout@" + D
    src = parse_source("oci-layout:/srv/layout:@" + D)
    assert src.digest == D
    src = parse_source("oci-archive:/srv/a.tar")
    assert (src.kind, src.path, src.tag) == ("oci-archive", "/srv/a.tar", None)
    src = parse_source("docker-archive:/srv/d.tar:library/app:2")
    assert (src.kind, src.path, src.repo_tag) == ("docker-archive", "/srv/d.tar", "library/app:2")
    assert str(src) == "docker-archive:/srv/d.tar:library/app:2"


@pytest.mark.parametrize("text,fragment", [
    ("oci-layout:", "no path"),
    ("oci-layout:relative/dir", "absolute"),
    ("oci-archive:/a.tar:@" + D, "takes a tag"),
    ("ftp://x/y", "unknown transport"),
    (None, "no image"),
])
def test_bad_sources(text, fragment):
    with pytest.raises(InvalidReference) as err:
        parse_source(text)
    assert fragment in str(err.value)


def test_platform_parse_and_host():
    assert str(parse_platform("linux/arm64/v8")) == "linux/arm64/v8"
    with pytest.raises(PlatformError):
        parse_platform("linux")
    assert str(host_platform("x86_64")) == "linux/amd64"
    assert str(host_platform("aarch64")) == "linux/arm64/v8"
    assert str(host_platform("armv7l")) == "linux/arm/v7"


INDEX = {"manifests": [
    {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
    {"digest": "sha256:" + "3" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": "sha256:" + "4" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:" + "5" * 64, "platform": {"os": "unknown", "architecture": "unknown"},
     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    {"digest": "sha256:" + "6" * 64},
]}


@pytest.mark.parametrize("wanted,digit", [
    ("linux/amd64", "1"),
    ("linux/arm64", "2"),
    ("linux/arm64/v8", "2"),  # an entry without variant is arm64's default v8
    ("linux/arm/v7", "4"),
    ("linux/arm/v6", "3"),
])
def test_choose_manifest(wanted, digit):
    desc, plat = choose_manifest(INDEX, parse_platform(wanted))
    assert desc["digest"] == "sha256:" + digit * 64
    assert plat.os == "linux"


def test_choose_manifest_names_the_offered_platforms():
    with pytest.raises(PlatformError) as err:
        choose_manifest(INDEX, parse_platform("linux/s390x"))
    assert "linux/s390x" in str(err.value)
    assert "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64, unknown/unknown" in str(err.value)
    with pytest.raises(PlatformError):
        choose_manifest(INDEX, parse_platform("linux/arm64/v9"))


def test_platform_matching_rules():
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform("linux", "arm", "v7").matches(Platform("linux", "arm", "v6"))
    assert not Platform("linux", "amd64").matches(Platform("windows", "amd64"))
