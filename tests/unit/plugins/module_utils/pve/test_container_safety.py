"""Operator safety of lxc_container's engine (issue 21): no silent take-over, validation before any change,
cleanup of what a failed task created, check-mode chains.  Against the recording fake of test_container.py;
the playbook-level proof is tests/integration/test_lxc_container_safety.py.
"""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import origin
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveTaskError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.snapshot import SnapshotError, SnapshotManager

from .test_container import Clock, FakePve, manager, running_ct

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
OCI = {"volid": "local:vztmpl/app.tar", "image": "127.0.0.1:5000/app:v1", "digest": DIGEST_1,
       "runtime": {"wrapper": None, "pve_entrypoint": "/app/run", "pve_env": ["PATH=/bin"], "user": "0",
                   "uid": 0, "gid": 0, "cwd": "/", "lxc_init_cmd": "/app/run", "lxc_config": []}}


def oci(**changes):
    runtime = dict(OCI["runtime"], **changes.pop("runtime", {}))
    return dict(OCI, runtime=runtime, **changes)


class Pve(FakePve):
    """The fake with deletes, stops, failing starts and snapshots."""

    def __init__(self, *args, **kw):
        FakePve.__init__(self, *args, **kw)
        self.fail_start = None
        self.shutdown_error = None
        self.snapshots = {}
        self.storages = [{"storage": "local-zfs", "type": "zfspool"}, {"storage": "local", "type": "dir"}]
        self.posts = []

    def get(self, path, params=None, **kw):
        if path == "/nodes/{node}/lxc/{vmid}/snapshot":
            self.calls.append(("GET", path))
            return [{"name": n, "snaptime": i, "parent": self.snapshots[kw["vmid"]][i - 1] if i else None}
                    for i, n in enumerate(self.snapshots.get(kw["vmid"], []))] + [{"name": "current"}]
        if path == "/nodes/{node}/storage":
            self.calls.append(("GET", path))
            return self.storages
        return FakePve.get(self, path, params, **kw)

    def post(self, path, params=None, **kw):
        self.posts.append((path, dict(params or {}, **kw)))
        if path.endswith("/status/start") and self.fail_start:
            self.calls.append(("POST", path))
            raise PveTaskError("UPID:pve1:start", self.fail_start, ["lxc-start: failed to exec init"])
        if path == "/nodes/{node}/lxc":
            upid = FakePve.post(self, path, params, **kw)
            if params.get("description"):
                self.configs[params["vmid"]]["description"] = params["description"] + "\n"  # as PVE prints it
            return upid
        if path.endswith("/status/stop"):
            self.calls.append(("POST", path))
            self.status[kw["vmid"]] = "stopped"
            return "UPID:pve1:stop"
        if path.endswith("/status/shutdown"):
            self.calls.append(("POST", path))
            if self.shutdown_error:
                raise PveTaskError("UPID:pve1:shutdown", self.shutdown_error)
            self.status[kw["vmid"]] = "stopped"
            return "UPID:pve1:shutdown"
        if path.endswith("/snapshot/{snapname}/rollback") or path.endswith("/snapshot"):
            self.calls.append(("POST", path))
            return "UPID:pve1:snapshot"
        return FakePve.post(self, path, params, **kw)

    def delete(self, path, params=None, **kw):
        self.calls.append(("DELETE", path))
        del self.configs[kw["vmid"]]
        del self.status[kw["vmid"]]
        return "UPID:pve1:delete"

    def writes(self):
        return [c for c in self.calls if c[0] != "GET"]


def recorded(hostname="web", image="127.0.0.1:5000/app:v1", digest=DIGEST_1):
    return running_ct(hostname=hostname, description="my notes\n" + origin.line_of(
        {"image": image, "digest": digest}) + "\n")


# -- the record ------------------------------------------------------------------------------------

@pytest.mark.parametrize("reference, repository", [
    ("docker.io/library/nginx:1.27", "docker.io/library/nginx"),
    ("127.0.0.1:5000/app:v1", "127.0.0.1:5000/app"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app"),
    ("127.0.0.1:5000/app@sha256:" + "a" * 64, "127.0.0.1:5000/app"),
    ("oci-archive:/tmp/x.tar", "oci-archive:/tmp/x.tar"),
])
def test_repository_of_a_reference(reference, repository):
    assert origin.repository(reference) == repository


def test_the_record_round_trips_through_a_description_with_notes():
    record = {"image": "127.0.0.1:5000/app:v1", "digest": DIGEST_1}
    text = origin.with_record("line one\nline two\n", record)
    assert text == "line one\nline two\nlxcri.proxmox: image=127.0.0.1:5000/app:v1 digest=%s" % DIGEST_1
    assert origin.parse(text + "\n") == record and origin.strip(text) == "line one\nline two"
    assert origin.with_record(text, {"template": "local:vztmpl/a.tar.zst"}).count("lxcri.proxmox:") == 1
    assert origin.parse("no record here") is None


@pytest.mark.parametrize("have, want, what", [
    ({"image": "r/app:v1", "digest": DIGEST_1}, {"image": "r/app:v2", "digest": DIGEST_1}, []),
    ({"image": "r/app:v1", "digest": DIGEST_1}, {"image": "r/app:v2", "digest": DIGEST_2}, ["digest"]),
    ({"image": "r/app:v1", "digest": DIGEST_1}, {"image": "r/other:v1", "digest": DIGEST_1}, ["image"]),
    ({"image": "r/app:v1", "digest": DIGEST_1}, {"template": "local:vztmpl/x.tar.zst"}, ["image"]),
    ({"template": "local:vztmpl/a.tar.zst"}, {"template": "local:vztmpl/b.tar.zst"}, ["template"]),
    (None, {"image": "r/app:v1", "digest": DIGEST_1}, []),
])
def test_mismatches(have, want, what):
    assert [m[0] for m in origin.mismatches(have, want)] == what


# -- no silent take-over --------------------------------------------------------------------------

def test_a_vmid_with_another_hostname_is_refused_before_any_change():
    pve = Pve(running_ct(hostname="a"))
    with pytest.raises(ContainerError) as err:
        manager(pve, vmid=150, hostname="b", memory=512).run()
    assert "CT 150 is not the container this task describes: hostname is a, the task asks for b" in str(err.value)
    assert "Nothing was changed" in str(err.value) and "on_mismatch: update" in str(err.value)
    assert pve.writes() == [] and pve.configs[150]["hostname"] == "a"


def test_check_mode_refuses_the_take_over_too():
    pve = Pve(running_ct(hostname="a"))
    with pytest.raises(ContainerError, match="hostname is a, the task asks for b"):
        manager(pve, check_mode=True, vmid=150, hostname="b").run()


def test_on_mismatch_update_renames_and_reports_it():
    pve = Pve(running_ct(hostname="a"))
    result = manager(pve, vmid=150, hostname="b", on_mismatch="update").run()
    assert result["changed"] and pve.configs[150]["hostname"] == "b"
    assert result["mismatch"] == [{"what": "hostname", "have": "a", "want": "b"}]
    assert any("hostname is a, the task asks for b" in w for w in result["warnings_from_tasks"])


def test_another_digest_of_the_recorded_image_is_reported_not_papered_over():
    pve = Pve(recorded())
    new = oci(image="127.0.0.1:5000/app:v2", digest=DIGEST_2)
    with pytest.raises(ContainerError) as err:
        manager(pve, vmid=150, oci=new).run()
    assert "digest is %s, the task asks for %s" % (DIGEST_1, DIGEST_2) in str(err.value)
    assert "oci_app" in str(err.value) and pve.writes() == []
    result = manager(pve, vmid=150, oci=new, on_mismatch="update").run()
    assert result["mismatch"][0]["what"] == "digest"
    assert origin.parse(pve.configs[150]["description"])["digest"] == DIGEST_1  # the rootfs is still that one


def test_another_image_is_refused_and_the_same_one_is_no_change():
    pve = Pve(recorded())
    with pytest.raises(ContainerError, match="image is 127.0.0.1:5000/app:v1, the task asks for "
                                             "127.0.0.1:5000/db:v1"):
        manager(pve, vmid=150, oci=oci(image="127.0.0.1:5000/db:v1")).run()
    pve.configs[150].update(entrypoint="/app/run", env="PATH=/bin")
    result = manager(pve, vmid=150, oci=oci()).run()
    assert not result["changed"] and "mismatch" not in result


def test_a_new_container_records_its_image_and_a_user_description_keeps_the_record():
    pve = Pve()
    result = manager(pve, hostname="app", oci=oci(), node="pve1", state="present", description="team x").run()
    body = [p for path, p in pve.posts if path == "/nodes/{node}/lxc"][0]
    assert body["description"] == "team x\nlxcri.proxmox: image=127.0.0.1:5000/app:v1 digest=%s" % DIGEST_1
    vmid = result["vmid"]
    # the same task again: no change; new notes keep the record
    pve.configs[vmid].update(entrypoint="/app/run", env="PATH=/bin")
    assert not manager(pve, vmid=vmid, hostname="app", oci=oci(), description="team x",
                       state="present").run()["changed"]
    manager(pve, vmid=vmid, hostname="app", oci=oci(), description="team y", state="present").run()
    assert origin.parse(pve.configs[vmid]["description"])["digest"] == DIGEST_1
    assert pve.configs[vmid]["description"].startswith("team y\n")


# -- validation before any change -----------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"env": ["A=1\nB=2"]}, "env A: the value '1\\\\nB=2' contains a control character"),
    ({"env": ["A B=1"]}, "is not NAME=value"),
    ({"entrypoint": "/bin/app\n--x"}, "entrypoint '/bin/app\\\\n--x' contains a control character"),
    ({"oci": oci(runtime={"pve_env": ["GOOD=1", "BAD=a\rb"]})}, "env BAD"),
    ({"oci": oci(runtime={"lxc_config": ["lxc.init.cwd = /x\nlxc.hook.pre-start = /bin/evil"]}), "raw_lxc": True},
     "raw LXC line for lxc.init.cwd contains a newline"),
])
def test_values_that_would_only_fail_at_start_are_refused_before_anything(options, message):
    for check_mode in (False, True):
        pve = Pve()
        with pytest.raises(ContainerError, match=message) as err:
            manager(pve, check_mode=check_mode, hostname="new", ostemplate=None if "oci" in options else
                    "local:vztmpl/a.tar.zst", node="pve1", **options).run()
        assert "nothing was changed" in str(err.value)
        assert pve.writes() == [] and pve.configs == {}


def test_a_named_user_not_resolved_yet_is_refused_on_a_plain_template_as_a_resolved_one_is():
    pve = Pve()
    plain = oci(volid="local:vztmpl/app.tar.zst", runtime={"user": "app", "uid": None, "gid": None})
    for check_mode in (True, False):
        with pytest.raises(ContainerError, match="the image runs with user app, which the Proxmox VE API cannot set on a plain "
                                                 "template"):
            manager(pve, check_mode=check_mode, hostname="new", oci=plain, node="pve1").run()
    assert pve.writes() == []


def test_a_failed_start_removes_the_container_this_task_created():
    pve = Pve()
    pve.fail_start = "startup for container '100' failed"
    with pytest.raises(ContainerError) as err:
        manager(pve, hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1", state="started").run()
    assert "startup for container '100' failed" in str(err.value)
    assert "CT 100, created by this task, was removed again; nothing is left behind" in str(err.value)
    assert pve.configs == {} and ("DELETE", "/nodes/{node}/lxc/{vmid}") in pve.calls


def test_a_refused_entrypoint_write_after_the_create_removes_the_container():
    pve = Pve()
    real_put = pve.put

    def refuse(path, params=None, **kw):
        if "entrypoint" in (params or {}):
            raise PveApiError(400, "PUT", path, "Parameter verification failed.", {"entrypoint": "invalid"})
        return real_put(path, params, **kw)
    pve.put = refuse
    with pytest.raises(ContainerError, match="created by this task, was removed again"):
        manager(pve, hostname="new", oci=oci(), node="pve1").run()
    assert pve.configs == {}


def test_when_the_undo_fails_the_message_names_what_is_left_and_how_to_remove_it():
    pve = Pve()
    pve.fail_start = "startup failed"

    def refuse(path, params=None, **kw):
        raise PveApiError(500, "DELETE", path, "CT is locked (backup)")
    pve.delete = refuse
    with pytest.raises(ContainerError) as err:
        manager(pve, hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1").run()
    assert "CT 100 was created by this task and is LEFT on node pve1" in str(err.value)
    assert "vmid: 100, state: absent, force: true" in str(err.value) and "pct destroy 100 --purge" in str(err.value)


def test_an_existing_container_is_never_removed_when_its_start_fails():
    pve = Pve(running_ct())
    pve.status[150] = "stopped"
    pve.fail_start = "startup failed"
    with pytest.raises(PveTaskError):
        manager(pve, vmid=150).run()
    assert 150 in pve.configs and ("DELETE", "/nodes/{node}/lxc/{vmid}") not in pve.calls


def test_an_image_without_env_sends_no_empty_env_and_removes_a_stale_one():
    pve = Pve()
    empty = oci(runtime={"pve_env": []})
    result = manager(pve, hostname="scratch", oci=empty, node="pve1", state="present").run()
    late = [p for path, p in pve.puts if path.endswith("/config")]
    assert late == [{"entrypoint": "/app/run"}], late
    vmid = result["vmid"]
    pve.configs[vmid].update(entrypoint="/app/run", env="OLD=1")
    again = manager(pve, vmid=vmid, hostname="scratch", oci=empty, state="present").run()
    assert again["changed"] and pve.puts[-1][1]["delete"] == "env"
    pve.configs[vmid].pop("env")
    assert not manager(pve, vmid=vmid, hostname="scratch", oci=empty, state="present").run()["changed"]


# -- re-runnable ----------------------------------------------------------------------------------

def test_stopped_on_a_missing_container_is_ok_without_a_source():
    for check_mode in (False, True):
        pve = Pve()
        result = manager(pve, check_mode=check_mode, vmid=170, state="stopped").run()
        assert not result["changed"] and result["status"] == "absent" and pve.writes() == []


def test_the_diff_does_not_show_the_digest():
    pve = Pve(running_ct())
    result = manager(pve, vmid=150, memory=512).run()
    assert "digest" not in result["diff"]["before"] and "digest" not in result["diff"]["after"]
    assert result["diff"]["before"]["memory"] == "256" and result["diff"]["after"]["memory"] == "512"


# -- stop ------------------------------------------------------------------------------------------

def test_a_shutdown_that_times_out_says_to_set_force_stop():
    pve = Pve(running_ct())
    pve.shutdown_error = "container did not stop"
    with pytest.raises(ContainerError) as err:
        manager(pve, vmid=150, state="stopped", shutdown_timeout=5).run()
    assert "CT 150 did not stop within shutdown_timeout (5 s)" in str(err.value)
    assert "Set force_stop: true" in str(err.value)


def test_force_stop_that_had_to_kill_says_the_app_ignored_its_signal():
    pve = Pve(running_ct())
    clock = Clock()
    real_post = pve.post

    def slow_shutdown(path, params=None, **kw):
        if path.endswith("/status/shutdown"):
            clock.now += 5  # the whole timeout went by: lxc-stop killed it
        return real_post(path, params, **kw)
    pve.post = slow_shutdown
    result = manager(pve, clock, vmid=150, state="stopped", shutdown_timeout=5, force_stop=True).run()
    assert result["actions"] == ["stopped", "killed after shutdown_timeout (5 s): the app ignored its stop signal "
                                            "(force_stop)"]
    quick = Pve(running_ct())
    assert manager(quick, vmid=150, state="stopped", force_stop=True).run()["actions"] == ["stopped"]


# -- check-mode chains ------------------------------------------------------------------------------

def chain(pve, tasks):
    """Run tasks in check mode as the action plugin does: each gets the plan the earlier ones left."""
    plan = {"containers": {}}
    results = []
    for kind, params in tasks:
        params = dict(params, check_mode_plan=plan)
        if kind == "snapshot":
            params.setdefault("state", "present")
            result = SnapshotManager(params, check_mode=True, client=pve, sleep=lambda s: None).run()
        else:
            result = manager(pve, check_mode=True, **params).run()
        plan["containers"].update(result.pop("check_mode_plan")["containers"])
        results.append(result)
    return results


def test_a_container_created_in_check_mode_can_be_snapshotted_stopped_and_removed_later_in_the_run():
    pve = Pve()
    results = chain(pve, [
        ("ct", {"hostname": "new", "ostemplate": "local:vztmpl/a.tar.zst", "node": "pve1", "state": "started"}),
        ("snapshot", {"hostname": "new", "name": "before"}),
        ("snapshot", {"hostname": "new", "name": "before"}),
        ("ct", {"hostname": "new", "state": "stopped"}),
        ("ct", {"hostname": "new", "state": "absent"}),
        ("ct", {"hostname": "new", "state": "absent"}),
    ])
    assert [r["changed"] for r in results] == [True, True, False, True, True, False]
    assert results[1]["actions"] == ["created before"] and results[3]["actions"] == ["stopped"]
    assert results[4]["actions"] == ["deleted"]
    assert pve.writes() == [] and pve.configs == {}


def test_stop_then_absent_works_in_check_mode_and_absent_alone_still_refuses():
    pve = Pve(running_ct())
    results = chain(pve, [("ct", {"vmid": 150, "state": "stopped"}), ("ct", {"vmid": 150, "state": "absent"})])
    assert results[1]["changed"] and results[1]["actions"] == ["deleted"] and pve.writes() == []
    with pytest.raises(ContainerError, match="CT 150 is running; set force: true"):
        chain(pve, [("ct", {"vmid": 150, "state": "absent"})])


def test_a_rename_in_check_mode_frees_the_hostname_for_a_new_container():
    pve = Pve(recorded(hostname="app"))
    new = oci(image="127.0.0.1:5000/app:v2", digest=DIGEST_2)
    results = chain(pve, [
        ("ct", {"vmid": 150, "hostname": "app-prev", "on_mismatch": "update", "state": "stopped"}),
        ("ct", {"hostname": "app", "oci": new, "node": "pve1", "state": "started"}),
    ])
    assert results[1]["actions"] == ["created", "started"] and results[1]["vmid"] is None
    assert pve.writes() == []


def test_without_a_plan_a_missing_container_still_fails_in_check_mode():
    pve = Pve()
    with pytest.raises(SnapshotError, match="no container 'ghost' in the cluster"):
        chain(pve, [("snapshot", {"hostname": "ghost", "name": "s1"})])


# -- lxc_snapshot rollback on ZFS ----------------------------------------------------------------------

@pytest.mark.parametrize("check_mode", [False, True])
def test_rollback_to_an_older_snapshot_on_zfs_is_refused_before_any_call(check_mode):
    pve = Pve(running_ct())
    pve.snapshots[150] = ["s1", "s2", "s3"]
    params = {"vmid": 150, "name": "s1", "state": "rollback", "wait_timeout": 60}
    with pytest.raises(SnapshotError) as err:
        SnapshotManager(params, check_mode=check_mode, client=pve).run()
    assert "it is not the most recent snapshot on local-zfs:subvol-150-disk-0" in str(err.value)
    assert "newer: s2, s3" in str(err.value) and pve.writes() == []
    newest = SnapshotManager(dict(params, name="s3"), check_mode=check_mode, client=pve).run()
    assert newest["changed"] and newest["actions"][-1] == "rolled back to s3"


def test_rollback_to_an_older_snapshot_on_a_dir_storage_goes_on():
    pve = Pve(running_ct(rootfs="local:150/vm-150-disk-0.raw,size=2G"))
    pve.snapshots[150] = ["s1", "s2"]
    result = SnapshotManager({"vmid": 150, "name": "s1", "state": "rollback"}, check_mode=True, client=pve).run()
    assert result["changed"] and result["newer"] == ["s2"]
