"""oci_template with ``storage``: what lxc_container could not run is refused before the upload, and a failed
upload leaves no volume (issue 21)."""

import itertools

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import TemplateError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template_storage import RAW_LXC_HINT, StorageDestination
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.carry import api_refusal
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError, ContainerManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveError, PveTaskError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures

NINE = PveFeatures((9, 1, 1), "9.1")
EIGHT = PveFeatures((8, 4, 1), "8.4")


def runtime(uid=0, gid=0, groups=(), cwd="/", user="0", wrapper=None):
    return {"uid": uid, "gid": gid, "groups": None if groups is None else list(groups), "cwd": cwd, "user": user,
            "wrapper": {"kind": wrapper, "path": "/x"} if wrapper else None, "argv": ["/bin/app"],
            "pve_entrypoint": "/bin/app", "pve_env": "", "lxc_init_cmd": "/bin/app", "lxc_config": []}


RUNTIMES = [
    runtime(),
    runtime(uid=1000, gid=1000, user="1000:1000"),
    runtime(gid=5, user="0:5"),
    runtime(groups=[1, 2]),
    runtime(cwd="/srv"),
    runtime(wrapper="exec"),
    runtime(uid=1000, gid=1000, user="app", wrapper="init"),
    runtime(uid=1000, gid=1000, cwd="/srv", user="app", wrapper="exec"),
    # check mode before the layers are read: ids null where /etc/passwd and /etc/group decide
    runtime(uid=None, gid=None, groups=None, user="app"),
    runtime(uid=0, gid=None, groups=None, user="0"),
    runtime(uid=1000, gid=None, groups=None, user="1000"),
]


def lxc_container_refuses(features, fmt, rt):
    ext = ".tar" if fmt == "oci-archive" else ".tar.zst"
    manager = ContainerManager({"state": "present", "oci": {"volid": "local:vztmpl/app" + ext, "runtime": rt}},
                               client=object())
    try:
        manager.desired(features=features, config={})
    except ContainerError:
        return True
    return False


@pytest.mark.parametrize("features,fmt,rt", list(itertools.product([NINE, EIGHT], ["vztmpl", "oci-archive"],
                                                                   RUNTIMES)))
def test_refusal_follows_lxc_container(features, fmt, rt):
    """oci_template refuses exactly what lxc_container would refuse without raw_lxc, and an OCI archive on 8.x
    (which lxc_container cannot tell from a plain template there; 8.x would unpack the archive's files)."""
    problem, dummy = api_refusal(features, fmt, (rt["wrapper"] or {}).get("kind"), rt)
    expected = lxc_container_refuses(features, fmt, rt) or (fmt == "oci-archive" and features is EIGHT)
    assert bool(problem) == expected, problem


@pytest.mark.parametrize("features,fmt,init_wrapper,fragment", [
    (EIGHT, "vztmpl", "auto", "init_wrapper: always"),
    (EIGHT, "vztmpl", "never", "init_wrapper: always"),
    (EIGHT, "oci-archive", "always", "cannot import an OCI archive"),
    (EIGHT, "vztmpl", "always", None),
    (NINE, "vztmpl", "auto", None),  # the image decides
    (NINE, "oci-archive", "auto", None),
])
def test_options_alone(features, fmt, init_wrapper, fragment):
    problem, undecided = api_refusal(features, fmt, "init" if init_wrapper == "always" else None, None, RAW_LXC_HINT)
    assert undecided is None
    if fragment is None:
        assert problem is None
    else:
        assert fragment in problem


def test_messages_say_what_to_do():
    problem = api_refusal(NINE, "vztmpl", None, runtime(uid=1000, gid=1000, cwd="/srv", user="app"), RAW_LXC_HINT)[0]
    for word in ("uid 1000", "gid 1000", "working directory /srv", "format: oci-archive", "init_wrapper: always",
                 "raw_lxc: true", "require_runnable: false"):
        assert word in problem
    problem = api_refusal(NINE, "vztmpl", None, runtime(uid=None, gid=None, groups=None, user="app"))[0]
    assert "user app" in problem
    assert "require_runnable: false" in api_refusal(EIGHT, "vztmpl", None, None, RAW_LXC_HINT)[0]
    assert "raw_lxc: true" in api_refusal(EIGHT, "vztmpl", None)[0]  # lxc_container's own way out


def test_root_with_unknown_groups_is_undecided_not_refused():
    problem, undecided = api_refusal(NINE, "vztmpl", None, runtime(uid=0, gid=None, groups=None))
    assert problem is None and "/etc/group" in undecided


# ---------------------------------------------------------------------------
# the publisher, against a fake API client

class FakeClient:
    def __init__(self, features=NINE, listed=(), upload_error=None, delete_error=None, list_error=None):
        self._features = features
        self.listed = list(listed)
        self.upload_error = upload_error
        self.delete_error = delete_error
        self.list_error = list_error
        self.calls = []

    def features(self):
        return self._features

    def get(self, path, **kwargs):
        self.calls.append(("GET", path))
        if path.endswith("/content"):
            if self.list_error:
                raise self.list_error
            return [{"volid": volid, "size": size} for volid, size in self.listed]
        if path.endswith("/status"):
            return {"status": "stopped", "exitstatus": "OK"}
        if path == "/nodes":
            return [{"node": "pve1"}]
        if path == "/nodes/pve1/version":  # the node's own version (check_runnable asks the node, not the API host)
            node = getattr(self, "node_features", None) or self._features
            return {"version": ".".join(str(p) for p in node.version), "release": node.release}
        raise AssertionError(path)

    def delete(self, path, **kwargs):
        self.calls.append(("DELETE", kwargs.get("volume")))
        if self.delete_error:
            raise self.delete_error
        self.listed = [item for item in self.listed if item[0] != kwargs.get("volume")]
        return None

    def upload(self, *args, **kwargs):
        self.calls.append(("UPLOAD", kwargs.get("filename")))
        if self.upload_error:
            raise self.upload_error
        return None


class FakeManager:
    def __init__(self, check_mode=False, **params):
        self.params = dict({"storage": "local", "node": "pve1", "cache_dir": "/nonexistent", "format": "vztmpl",
                            "init_wrapper": "auto", "require_runnable": True}, **params)
        self.check_mode = check_mode
        self.warnings = []


def publisher(monkeypatch, client, **params):
    return StorageDestination(FakeManager(**params), client=client)


VOLID = "local:vztmpl/app.tar.zst"
FAILED = PveTaskError("UPID:pve1:imgcopy", "import failed: scp: connection lost")


def test_a_failed_upload_removes_what_the_storage_lists(monkeypatch, tmp_path):
    client = FakeClient(listed=[(VOLID, 4096)], upload_error=FAILED)
    pub = publisher(monkeypatch, client)
    with pytest.raises(PveError) as caught:
        pub._upload(str(tmp_path / "app.tar.zst"), "app.tar.zst", VOLID, "ab" * 32, 10000)
    assert ("DELETE", VOLID) in client.calls and client.listed == []
    assert "connection lost" in str(caught.value)
    assert "removed local:vztmpl/app.tar.zst (4096 of 10000 bytes)" in str(caught.value)


def test_a_failed_upload_that_left_nothing_is_reported_as_it_was(monkeypatch, tmp_path):
    client = FakeClient(upload_error=FAILED)
    with pytest.raises(PveError) as caught:
        publisher(monkeypatch, client)._upload(str(tmp_path / "x"), "app.tar.zst", VOLID, "ab" * 32, 1)
    assert caught.value is FAILED and not [c for c in client.calls if c[0] == "DELETE"]


def test_a_leftover_that_cannot_be_removed_is_named_with_the_command(monkeypatch, tmp_path):
    client = FakeClient(listed=[(VOLID, 1)], upload_error=FAILED,
                        delete_error=PveApiError(500, "DELETE", "/x", "storage is offline"))
    with pytest.raises(PveError, match="pvesm free local:vztmpl/app.tar.zst"):
        publisher(monkeypatch, client)._upload(str(tmp_path / "x"), "app.tar.zst", VOLID, "ab" * 32, 9)
    client = FakeClient(upload_error=FAILED, list_error=PveApiError(500, "GET", "/x", "timeout"))
    with pytest.raises(PveError, match="pvesm list local"):
        publisher(monkeypatch, client)._upload(str(tmp_path / "x"), "app.tar.zst", VOLID, "ab" * 32, 9)


def test_check_runnable_refuses_warns_or_is_switched_off(monkeypatch):
    pub = publisher(monkeypatch, FakeClient(features=EIGHT))
    with pytest.raises(TemplateError, match="app.tar.zst would not be uploaded to local: lxc_container could not "
                                            "run it on node pve1: Proxmox VE 8.4 has no entrypoint/env"):
        pub.check_runnable("app.tar.zst")
    publisher(monkeypatch, FakeClient(features=EIGHT), require_runnable=False).check_runnable("app.tar.zst")
    checking = publisher(monkeypatch, FakeClient(), check_mode=True)
    checking.check_runnable("app.tar.zst", runtime(uid=0, gid=None, groups=None))
    assert len(checking.manager.warnings) == 1 and "the real run checks it" in checking.manager.warnings[0]
    real = publisher(monkeypatch, FakeClient())
    real.check_runnable("app.tar.zst", runtime(uid=0, gid=None, groups=None))  # the build tells, later
    assert real.manager.warnings == []


def test_check_runnable_asks_the_node_that_gets_the_template_not_the_api_host(monkeypatch):
    client = FakeClient(features=NINE)  # the API host runs 9.1 ...
    client.node_features = EIGHT  # ... the node whose storage gets the template still 8.4 (a cluster mid-upgrade)
    with pytest.raises(TemplateError, match="could not run it on node pve1: Proxmox VE 8.4 has no entrypoint/env"):
        publisher(monkeypatch, client).check_runnable("app.tar.zst")


# -- format: auto (issue 15, secure defaults) ------------------------------------------------

class NodeClient:
    """/nodes/pve1/version and /nodes/pve1/apt/versions of a node."""

    def __init__(self, version, container=None):
        self.version, self.container, self.asked = version, container, []

    def get(self, path, params=None, **kwargs):
        self.asked.append(path)
        if path == "/nodes/pve1/version":
            return {"version": self.version, "release": self.version.rpartition(".")[0]}
        if path == "/nodes/pve1/apt/versions":
            if self.container is None:
                raise PveApiError(403, "GET", path, "Permission check failed (/nodes/pve1, Sys.Audit)")
            return [{"Package": "pve-container", "Version": self.container}, {"Package": "lxc-pve", "Version": "6.0.5-3"}]
        raise AssertionError(path)


class Owner:
    def __init__(self):
        self.params = {"storage": "local", "node": "pve1", "cache_dir": "/nonexistent", "wait_timeout": None}
        self.check_mode = False
        self.warnings = []


@pytest.mark.parametrize("version, container, needs_user, expected", [
    ("9.1.1", "6.1.10", True, ("oci-archive", None)),
    ("9.1.1", "6.0.18", True, ("vztmpl", "always")),   # 9.1.0's import ignores User
    ("9.1.1", "6.0.18", False, ("oci-archive", None)),  # root: nothing to ignore
    ("9.1.1", None, True, ("oci-archive", None)),       # no Sys.Audit: taken as 6.1+ (lxc_container verifies)
    ("8.4.1", "5.2.6", False, ("vztmpl", "always")),    # no entrypoint/env: the generated init runs the app
    ("8.1.4", None, True, ("vztmpl", "always")),
])
def test_auto_format_follows_the_nodes_version_and_import(version, container, needs_user, expected):
    client = NodeClient(version, container)
    dest = StorageDestination(Owner(), None, client=client)
    fmt, wrapper, why = dest.auto_format(needs_user)
    assert (fmt, wrapper) == expected, why
    assert "/version" not in client.asked  # the storage's node, not the API host
    if container is None and needs_user and fmt == "oci-archive":
        assert "not readable without Sys.Audit" in why


@pytest.mark.parametrize("version, container, needs_user, groups, expected", [
    ("9.1.1", "6.1.10", True, [44], ("vztmpl", "always")),     # lxc.init.groups is lost unprivileged
    ("9.1.1", "6.1.10", True, [], ("oci-archive", None)),
    ("9.1.1", "6.1.10", True, None, ("oci-archive", None)),     # not known (check mode without the layers)
    ("9.1.1", "6.1.10", False, [44], ("oci-archive", None)),    # root: never asked
    ("9.1.1", "6.0.18", True, [44], ("vztmpl", "always")),
    ("8.4.1", "5.2.6", True, [44], ("vztmpl", "always")),
])
def test_auto_format_asks_for_the_users_groups_only_when_they_decide(version, container, needs_user, groups, expected):
    """The user's supplementary groups need the layers (a pass over them): asked only where an OCI archive
    would otherwise be chosen for a non-root user."""
    asked = []

    def user_groups():
        asked.append(1)
        return groups
    dest = StorageDestination(Owner(), None, client=NodeClient(version, container))
    fmt, wrapper, why = dest.auto_format(needs_user, user_groups)
    assert (fmt, wrapper) == expected, why
    assert bool(asked) == (needs_user and version.startswith("9") and container.startswith("6.1"))
    if groups:
        assert fmt == "oci-archive" or "supplementary groups 44" in why or "ignores the image's User" in why \
            or "no OCI import" in why
    if groups is None and needs_user and fmt == "oci-archive":
        assert "not known without its layers" in why


class ClusterClient:
    """Three nodes with node-local ``local`` storages; node pve2's uploads fail."""

    def __init__(self, has=(), fail_on=None, offline=()):
        self.content = dict((node, [VOLID] if node in has else []) for node in ("pve1", "pve2", "pve3"))
        self.fail_on = fail_on
        self.offline = offline
        self.calls = []

    def get(self, path, **kwargs):
        node = kwargs.get("node")
        if path == "/nodes":
            return [{"node": n, "status": "offline" if n in self.offline else "online"} for n in sorted(self.content)]
        if path == "/nodes/{node}/storage":
            return [{"storage": "local", "shared": 0}]
        if path.endswith("/content"):
            return [{"volid": v} for v in self.content[node]]
        if path.endswith("/version"):
            return {"version": "9.1.1", "release": "9.1"}
        if path.endswith("/status"):
            return {"status": "stopped", "exitstatus": "OK"}
        raise AssertionError(path)

    def upload(self, node, storage, content, path, filename=None, checksum=None):
        self.calls.append(("UPLOAD", node))
        if node == self.fail_on:
            raise FAILED
        self.content[node].append("%s:vztmpl/%s" % (storage, filename))

    def delete(self, path, **kwargs):
        self.content[kwargs["node"]].remove(kwargs["volume"])


def cluster_publisher(client, **params):
    return StorageDestination(FakeManager(nodes=["all"], **params), client=client)


def test_nodes_get_one_upload_each_where_it_is_missing(tmp_path):
    client = ClusterClient(has=("pve1",))
    pub = cluster_publisher(client)
    assert pub.nodes == ["pve1", "pve2", "pve3"] and pub.missing("app.tar.zst") == ["pve2", "pve3"]
    path = tmp_path / "app.tar.zst"
    path.write_bytes(b"x")
    pub.workdir = str(tmp_path)
    out = pub.publish("app.tar.zst", str(path), {"runtime": None, "sha256": "ab" * 32, "size": 1}, False)
    assert out["uploaded_to"] == ["pve2", "pve3"] and client.calls == [("UPLOAD", "pve2"), ("UPLOAD", "pve3")]
    assert pub.exists("app.tar.zst") and not path.exists()


def test_a_failed_upload_to_a_later_node_names_the_nodes_that_have_it(tmp_path):
    client = ClusterClient(fail_on="pve2")
    pub = cluster_publisher(client)
    path = tmp_path / "app.tar.zst"
    path.write_bytes(b"x")
    pub.workdir = str(tmp_path)
    with pytest.raises(PveError) as caught:
        pub.publish("app.tar.zst", str(path), {"runtime": None, "sha256": "ab" * 32, "size": 1}, False)
    assert "the upload to node pve2 failed" in str(caught.value) and "Nodes pve1 have the complete" in str(caught.value)
    assert client.content["pve2"] == [] and client.content["pve3"] == [] and not path.exists()


def test_an_offline_or_unknown_node_is_refused_before_anything():
    with pytest.raises(PveError, match="node pve3 is offline.*nothing was uploaded"):
        cluster_publisher(ClusterClient(offline=("pve3",)))
    with pytest.raises(PveError, match="nodes names pve9, which the cluster does not have"):
        StorageDestination(FakeManager(nodes=["pve1", "pve9"]), client=ClusterClient())
