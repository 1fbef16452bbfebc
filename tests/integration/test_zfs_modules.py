"""zfs_dataset, zfs_snapshot and zfs_info on the test bed's zfs-fuse pool, through real ansible-playbook runs."""

import json
import os
import stat
import subprocess
import textwrap

import pytest

from lxcri_testbed.bed import destroy_tree

pytestmark = pytest.mark.integration


def zfs(*args):
    return subprocess.run(["zfs"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def state_of(root):
    """Everything zfs reports about the tree: compared before and after check-mode runs."""
    lines = zfs("get", "-Hp", "-r", "-o", "name,property,value,source", "all", root).splitlines()
    volatile = ("used", "available", "referenced", "usedbydataset", "usedbysnapshots", "usedbychildren",
                "compressratio", "written")
    return sorted(line for line in lines if line.split("\t")[1] not in volatile)


@pytest.fixture
def shim(tmp_path):
    """A zfs/zpool PATH shim that counts the processes modules start."""
    bindir = tmp_path / "shim"
    bindir.mkdir()
    log = tmp_path / "zfs-calls.log"
    for tool in ("zfs", "zpool"):
        path = bindir / tool
        path.write_text("#!/bin/sh\necho \"%s $*\" >> %s\nexec /usr/sbin/%s \"$@\"\n" % (tool, log, tool))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)

    class Shim:
        env = {"PATH": "%s:%s" % (bindir, os.environ["PATH"])}

        @staticmethod
        def calls(tool="zfs"):
            if not log.exists():
                return []
            return [l for l in log.read_text().splitlines() if l.startswith(tool + " ")]

        @staticmethod
        def reset():
            if log.exists():
                log.unlink()
    return Shim


class Play:
    def __init__(self, installed, tmp_path, env=None):
        self.installed = installed
        self.tmp_path = tmp_path
        self.env = env or {}
        self.count = 0

    def __call__(self, tasks, check=False, diff=False, expect_ok=True):
        self.count += 1
        path = self.tmp_path / ("play%d.yml" % self.count)
        path.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        + textwrap.indent(textwrap.dedent(tasks), "    "))
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            run = self.installed.playbook(str(path), check=check, diff=diff)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        if expect_ok:
            assert run.rc == 0, run
        return run


@pytest.fixture
def play(installed_collection, tmp_path, shim):
    return Play(installed_collection, tmp_path, shim.env)


def test_dataset_lifecycle(play, zfs_dataset, shim):
    name = zfs_dataset + "/app"
    task = """\
        - lxcri.proxmox.zfs_dataset:
            name: %s
            properties:
              quota: 100M
              compression: "on"
              atime: false
              "lxcri:owner": ops
        """ % name
    before = state_of(zfs_dataset)
    checked = play(task, check=True, diff=True)
    assert checked.stats["localhost"]["changed"] == 1
    assert state_of(zfs_dataset) == before, "check mode changed the pool"
    created = play(task, diff=True)
    assert created.task_results()[0]["created"] is True
    assert zfs("get", "-Hp", "-o", "value", "quota,atime,compression,lxcri:owner", name).split() == \
        ["104857600", "off", "on", "ops"]
    shim.reset()
    again = play(task)
    assert again.stats["localhost"]["changed"] == 0
    assert len(shim.calls("zfs")) <= 2, shim.calls("zfs")  # one batched read (+ version probe at most)

    changed = play("""\
        - lxcri.proxmox.zfs_dataset:
            name: %s
            properties: {quota: 200M, casesensitivity: insensitive}
            inherit: [atime]
        """ % name, diff=True)
    res = changed.task_results()[0]
    assert res["set"] == {"quota": "200M"} and res["inherited"] == ["atime"]
    assert res["creation_only_mismatch"] == {"casesensitivity": {"desired": "insensitive", "current": "sensitive"}}
    assert "casesensitivity is 'sensitive', not 'insensitive'" in changed.stdout + changed.stderr
    assert res["diff"]["before"]["quota"] == "104857600" and res["diff"]["after"]["quota"] == "200M"
    assert "quota" in changed.stdout  # --diff output
    assert zfs("get", "-H", "-o", "source", "atime", name).strip() in ("default", "inherited from %s" % zfs_dataset)


def test_destroy_guard_rails(play, zfs_dataset):
    base = zfs_dataset
    zfs("create", base + "/tree")
    zfs("create", base + "/tree/child")
    zfs("snapshot", base + "/tree/child@s1")
    zfs("clone", base + "/tree/child@s1", base + "/elsewhere")
    absent = """\
        - lxcri.proxmox.zfs_dataset:
            name: %s/tree
            state: absent
            recursive: %s
            force: %s
        """
    for check in (True, False):
        refused = play(absent % (base, "false", "false"), check=check, expect_ok=False)
        msg = refused.task_results()[0]["msg"]
        assert "has dependents" in msg and base + "/tree/child" in msg and base + "/tree/child@s1" in msg
    refused = play(absent % (base, "true", "false"), expect_ok=False)
    msg = refused.task_results()[0]["msg"]
    assert "clones outside it" in msg and base + "/elsewhere" in msg
    before = state_of(base)
    checked = play(absent % (base, "true", "true"), check=True)
    assert sorted(checked.task_results()[0]["destroyed"]) == sorted(
        [base + "/tree", base + "/tree/child", base + "/tree/child@s1", base + "/elsewhere"])
    assert state_of(base) == before
    play(absent % (base, "true", "true"))
    assert zfs("list", "-H", "-o", "name", "-r", base).split() == [base]


@pytest.mark.parametrize("name,options,fragment", [
    ("{pool}", "", "pool's root dataset"),
    ("{root}/subvol-100-disk-0", "", "managed by Proxmox VE"),
    ("{root}/x", "allowed_roots: ['{pool}/elsewhere']", "outside allowed_roots"),
    ("nosuchpool/x", "", "pool nosuchpool does not exist"),
    ("{root}/bad name", "", "invalid dataset name"),
])
def test_dataset_refusals(play, zfs_dataset, bed, name, options, fragment):
    pool = bed["zfs"]["pool"]
    run = play("""\
        - lxcri.proxmox.zfs_dataset:
            name: "%s"
            %s
        """ % (name.format(pool=pool, root=zfs_dataset), options.format(pool=pool)), expect_ok=False)
    assert fragment in run.task_results()[0]["msg"]


def test_pve_managed_needs_the_switch(play, zfs_dataset):
    run = play("""\
        - lxcri.proxmox.zfs_dataset:
            name: %s/subvol-100-disk-0
            allow_pve_managed: true
        """ % zfs_dataset)
    assert run.task_results()[0]["created"] is True


def test_clone_and_promote(play, zfs_dataset):
    zfs("create", zfs_dataset + "/golden")
    zfs("snapshot", zfs_dataset + "/golden@v1")
    task = """\
        - lxcri.proxmox.zfs_dataset:
            name: %s/copy
            origin: %s/golden@v1
            promote: %s
        """
    play(task % (zfs_dataset, zfs_dataset, "false"))
    assert zfs("get", "-H", "-o", "value", "origin", zfs_dataset + "/copy").strip() == zfs_dataset + "/golden@v1"
    again = play(task % (zfs_dataset, zfs_dataset, "false"))
    assert again.stats["localhost"]["changed"] == 0
    promoted = play(task % (zfs_dataset, zfs_dataset, "true"))
    assert promoted.task_results()[0]["promoted"] is True
    assert zfs("get", "-H", "-o", "value", "origin", zfs_dataset + "/golden").strip() == zfs_dataset + "/copy@v1"
    assert play(task % (zfs_dataset, zfs_dataset, "true")).stats["localhost"]["changed"] == 0


def snapshot_task(**args):
    return "- lxcri.proxmox.zfs_snapshot: %s\n" % json.dumps(args)


def test_snapshots_holds_and_destroy(play, zfs_dataset):
    ds = zfs_dataset
    zfs("create", ds + "/a")
    zfs("create", ds + "/a/b")
    r1 = ds + "/a@r1"
    created = play(snapshot_task(name=[r1], recursive=True, properties={"lxcri:why": "test"}))
    assert created.task_results()[0]["created"] == [r1]
    assert zfs("get", "-H", "-o", "value", "lxcri:why", ds + "/a/b@r1").strip() == "test"
    assert play(snapshot_task(name=[r1], recursive=True)).stats["localhost"]["changed"] == 0
    multi = play(snapshot_task(name=[ds + "/a@m1", ds + "/a/b@m1"]), expect_ok=False)
    assert ("this zfs (zfs-fuse) cannot take several snapshots in one command" in multi.task_results()[0]["msg"]
            and "snapshots of 2 datasets (%s/a, %s/a/b)" % (ds, ds) in multi.task_results()[0]["msg"])

    held = play(snapshot_task(name=[r1], hold="keep"))
    assert held.task_results()[0]["held"] == [r1]
    assert zfs("get", "-H", "-o", "value", "userrefs", r1).strip() == "1"
    assert play(snapshot_task(name=[r1], hold="keep")).stats["localhost"]["changed"] == 0
    refused = play(snapshot_task(name=[r1], state="absent"), expect_ok=False)
    assert "cannot destroy held snapshots" in refused.task_results()[0]["msg"]
    released = play(snapshot_task(name=[r1], release="keep"))
    assert released.task_results()[0]["released"] == [r1]
    assert play(snapshot_task(name=[r1], release="keep")).stats["localhost"]["changed"] == 0
    before = state_of(ds)
    play(snapshot_task(name=[r1], state="absent", recursive=True), check=True)
    assert state_of(ds) == before
    play(snapshot_task(name=[r1], state="absent", recursive=True))
    assert "@" not in zfs("list", "-H", "-t", "all", "-o", "name", "-r", ds)


def test_rollback(play, zfs_dataset):
    ds = zfs_dataset + "/r"
    zfs("create", ds)
    mountpoint = zfs("get", "-H", "-o", "value", "mountpoint", ds).strip()
    zfs("snapshot", ds + "@s1")
    with open(os.path.join(mountpoint, "after-s1"), "w") as handle:
        handle.write("x")
    zfs("snapshot", ds + "@s2")
    zfs("clone", ds + "@s2", zfs_dataset + "/r-clone")
    task = """\
        - lxcri.proxmox.zfs_snapshot:
            name: [%s@%s]
            state: rollback
            force: %s
        """
    newest = play(task % (ds, "s2", "false"))
    assert newest.task_results()[0]["destroyed"] == []
    refused = play(task % (ds, "s1", "false"), expect_ok=False)
    msg = refused.task_results()[0]["msg"]
    assert "not the newest snapshot" in msg and ds + "@s2" in msg and zfs_dataset + "/r-clone" in msg
    before = state_of(zfs_dataset)
    checked = play(task % (ds, "s1", "true"), check=True)
    res = checked.task_results()[0]
    assert res["destroyed"] == [ds + "@s2"] and res["destroyed_clones"] == [zfs_dataset + "/r-clone"]
    assert state_of(zfs_dataset) == before
    done = play(task % (ds, "s1", "true"))
    assert done.task_results()[0]["rolled_back_to"] == ds + "@s1"
    assert not os.path.exists(os.path.join(mountpoint, "after-s1"))
    assert zfs("list", "-H", "-t", "all", "-o", "name", "-r", zfs_dataset).split() == [zfs_dataset, ds, ds + "@s1"]


def test_rollback_keeping_newer_snapshots_copies_the_files_back_from_a_temporary_clone(play, zfs_dataset):
    """keep_newer: the dataset's files become the older snapshot's (owners, modes, links, a removed file back, a
    later one gone), the newer snapshots stay, and the temporary clone is gone; check mode changes nothing; the
    clone must be within allowed_roots, and a leftover one is refused."""
    ds = zfs_dataset + "/k"
    zfs("create", ds)
    mountpoint = zfs("get", "-H", "-o", "value", "mountpoint", ds).strip()
    os.makedirs(os.path.join(mountpoint, "sub"))
    with open(os.path.join(mountpoint, "sub", "kept"), "w") as handle:
        handle.write("one\n")
    os.chown(os.path.join(mountpoint, "sub", "kept"), 101000, 101000)
    os.chmod(os.path.join(mountpoint, "sub", "kept"), 0o640)
    os.symlink("sub/kept", os.path.join(mountpoint, "link"))
    os.chown(mountpoint, 101000, 101000)
    os.chmod(mountpoint, 0o750)
    zfs("snapshot", ds + "@s1")
    os.unlink(os.path.join(mountpoint, "sub", "kept"))
    with open(os.path.join(mountpoint, "later"), "w") as handle:
        handle.write("two\n")
    os.chmod(mountpoint, 0o755)
    zfs("snapshot", ds + "@s2")
    with open(os.path.join(mountpoint, "later"), "w") as handle:
        handle.write("three\n")
    task = snapshot_task(name=[ds + "@s1"], state="rollback", keep_newer=True, allowed_roots=[zfs_dataset])

    outside = play(snapshot_task(name=[ds + "@s1"], state="rollback", keep_newer=True, allowed_roots=[ds]),
                   expect_ok=False)
    assert "refusing to make the copy-back rollback's temporary clone %s.lxcri-copy: outside allowed_roots" % ds \
        in outside.task_results()[0]["msg"], outside.task_results()[0]
    before = state_of(zfs_dataset)
    checked = play(task, check=True).task_results()[0]
    assert checked["changed"] and checked["kept_newer"] == [ds + "@s2"] and checked["destroyed"] == []
    assert state_of(zfs_dataset) == before and os.path.exists(os.path.join(mountpoint, "later"))

    done = play(task).task_results()[0]
    assert done["copied_back"] and done["rolled_back_to"] == ds + "@s1" and done["kept_newer"] == [ds + "@s2"]
    assert sorted(os.listdir(mountpoint)) == ["link", "sub"]
    info = os.stat(os.path.join(mountpoint, "sub", "kept"))
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (101000, 101000, 0o640)
    assert os.readlink(os.path.join(mountpoint, "link")) == "sub/kept"
    info = os.stat(mountpoint)
    assert (info.st_uid, info.st_mode & 0o7777) == (101000, 0o750)
    assert zfs("list", "-H", "-t", "all", "-o", "name", "-r", zfs_dataset).split() == \
        [zfs_dataset, ds, ds + "@s1", ds + "@s2"]

    zfs("clone", ds + "@s2", ds + ".lxcri-copy")
    leftover = play(task, expect_ok=False).task_results()[0]
    assert "%s.lxcri-copy exists (left by an interrupted copy-back?)" % ds in leftover["msg"], leftover
    assert sorted(os.listdir(mountpoint)) == ["link", "sub"]
    assert destroy_tree(ds + ".lxcri-copy")
    zfs("create", ds + "/child")
    nested = play(task, expect_ok=False).task_results()[0]
    assert "it has child datasets (%s/child), whose mountpoints a copy-back of its files would cross" % ds in \
        nested["msg"], nested
    assert sorted(os.listdir(mountpoint)) == ["child", "link", "sub"]


def test_retention_with_held_cloned_reserved_and_foreign_snapshots(play, zfs_dataset, shim, request):
    ds = zfs_dataset + "/ret"
    zfs("create", ds)
    for i in range(6):
        zfs("snapshot", "%s@auto_2026-01-0%d_00.00.00" % (ds, i + 1))
    zfs("snapshot", ds + "@manual")
    zfs("snapshot", ds + "@__base__")
    zfs("hold", "keep", ds + "@auto_2026-01-01_00.00.00")
    request.addfinalizer(lambda: subprocess.run(["zfs", "release", "keep", ds + "@auto_2026-01-01_00.00.00"],
                                                check=False))
    zfs("clone", ds + "@auto_2026-01-02_00.00.00", zfs_dataset + "/ret-clone")
    task = """\
        - lxcri.proxmox.zfs_snapshot:
            name: [%s]
            prefix: auto_
            create: %s
            keep_last: 2
        """
    before = state_of(zfs_dataset)
    checked = play(task % (ds, "false"), check=True)
    res = checked.task_results()[0]
    assert state_of(zfs_dataset) == before
    # all six share one creation second here, so keep_last ranks them by name: 05 and 06 stay
    assert res["pruned"] == ["%s@auto_2026-01-0%d_00.00.00" % (ds, i) for i in (3, 4)]
    skipped = res["retention"][ds]["skipped"]
    assert skipped[ds + "@auto_2026-01-01_00.00.00"] == "held"
    assert skipped[ds + "@auto_2026-01-02_00.00.00"].startswith("has clones")
    assert skipped[ds + "@__base__"] == "reserved by Proxmox VE"
    assert skipped[ds + "@manual"] == "outside the prefix auto_"
    shim.reset()
    pruned = play(task % (ds, "false"))
    assert pruned.task_results()[0]["pruned"] == res["pruned"]
    left = zfs("list", "-H", "-t", "snapshot", "-o", "name", "-r", ds).split()
    assert ds + "@auto_2026-01-03_00.00.00" not in left and ds + "@auto_2026-01-01_00.00.00" in left
    again = play(task % (ds, "false"))
    assert again.stats["localhost"]["changed"] == 0
    created = play(task % (ds, "true"))
    new = created.task_results()[0]["created"][0]
    assert new.startswith(ds + "@auto_") and new in zfs("list", "-H", "-t", "snapshot", "-o", "name", "-r", ds)


def test_zfs_info_is_one_process_for_many_snapshots(play, zfs_dataset, shim):
    ds = zfs_dataset + "/info"
    zfs("create", ds)
    zfs("set", "quota=1G", ds)
    for i in range(40):
        zfs("snapshot", "%s@s%02d" % (ds, i))
    shim.reset()
    run = play("""\
        - lxcri.proxmox.zfs_info:
            name: %s
        """ % zfs_dataset)
    res = run.task_results()[0]
    assert len(shim.calls("zfs")) == 1, shim.calls("zfs")
    assert len(res["snapshots"]) == 40
    info = [d for d in res["datasets"] if d["name"] == ds][0]
    assert info["properties"]["quota"] == {"value": 1073741824, "source": {"kind": "local", "from": None}}
    assert info["properties"]["compressratio"]["value"] == 1.0
    assert isinstance(res["snapshots"][0]["properties"]["creation"]["value"], int)


def refusing_tree(ds, request):
    """{ds}/a@s1 @s2 (s2 cloned to a-clone, whose @c1 is held and cloned to a-clone2), {ds}/h@h1 @h2 (h2 held),
    {ds}/t@x with {ds}/t/k@x held and {ds}/t/k@e, {ds}/v@__base__."""
    for name in ("a", "h", "t", "t/k", "v"):
        zfs("create", "%s/%s" % (ds, name))
    for snap in ("a@s1", "a@s2", "h@h1", "h@h2", "t/k@e", "v@__base__"):
        zfs("snapshot", "%s/%s" % (ds, snap))
    zfs("snapshot", "-r", ds + "/t@x")
    zfs("clone", ds + "/a@s2", ds + "/a-clone")
    zfs("snapshot", ds + "/a-clone@c1")
    zfs("clone", ds + "/a-clone@c1", ds + "/a-clone2")
    for snap in ("a-clone@c1", "h@h2", "t/k@x"):
        zfs("hold", "keep", "%s/%s" % (ds, snap))
        request.addfinalizer(lambda snap=snap: subprocess.run(["zfs", "release", "keep", "%s/%s" % (ds, snap)],
                                                              check=False))


def test_check_mode_makes_every_refusal_of_the_real_run_and_neither_changes_anything(play, zfs_dataset, bed,
                                                                                     request):
    ds = zfs_dataset
    refusing_tree(ds, request)
    long_name = ds + "/t@" + "x" * (255 - len(ds + "/t@"))  # 255 characters; its descendant's would be 257
    cases = [
        (dict(name=[ds + "/a@s1"], state="rollback"), "not the newest snapshot"),
        (dict(name=[ds + "/h@h1"], state="rollback", force=True),
         "newer snapshots it would destroy are held (%s/h@h2)" % ds),
        (dict(name=[ds + "/a@s1"], state="rollback", force=True), "clones with held snapshots (%s/a-clone@c1)" % ds),
        (dict(name=[ds + "/h@h2"], state="absent"), "cannot destroy held snapshots (%s/h@h2)" % ds),
        (dict(name=[ds + "/a@s2"], state="absent"), "clones depend on them (%s/a-clone, %s/a-clone2)" % (ds, ds)),
        (dict(name=[ds + "/a@s2"], state="absent", force=True), "clones with held snapshots (%s/a-clone@c1)" % ds),
        (dict(name=[ds + "/t@x"], state="absent", recursive=True), "cannot destroy held snapshots (%s/t/k@x)" % ds),
        (dict(name=[ds + "/t@e"], recursive=True), "descendants already have a snapshot of that name (%s/t/k@e)" % ds),
        (dict(name=[ds + "/a@m1", ds + "/a@m2"]),
         "this zfs (zfs-fuse) cannot take several snapshots in one command: its zfs snapshot accepts one "
         "dataset@snapname; asked for 2 snapshots of the one dataset %s/a (%s/a@m1, %s/a@m2)" % (ds, ds, ds)),
        (dict(name=[ds + "/a@m1", ds + "/h@m1"]), "asked for snapshots of 2 datasets (%s/a, %s/h)" % (ds, ds)),
        (dict(name=[ds + "/a@s1"], hold="x" * 256), "the tag is 256 characters long"),
        (dict(name=[ds + "/a"], prefix="auto_", max_age="soon"), "max_age 'soon'"),
        (dict(name=[ds + "/a@n1"], properties={"quota": "1G"}), "must be user properties"),
        (dict(name=[long_name], recursive=True), "longer than 255 characters: %s/t/k@" % ds),
        (dict(name=[ds + "/v@__base__"], state="absent"), "managed by Proxmox VE"),
        (dict(name=[ds + "/a@s1"], state="absent", allowed_roots=[bed["zfs"]["pool"] + "/elsewhere"]),
         "outside allowed_roots"),
        (dict(name=[ds + "/missing@s1"]), "dataset %s/missing does not exist" % ds),
        (dict(name=[ds + "/a@bad name"]), "invalid snapshot name"),
    ]
    tasks = "".join(snapshot_task(**args) + "  ignore_errors: true\n" for args, dummy in cases)
    before = state_of(ds)
    messages = {}
    for check in (True, False):
        run = play(tasks, check=check)
        results = run.task_results()
        assert len(results) == len(cases), run
        messages[check] = [r.get("msg", "(no failure: %r)" % r) for r in results]
        assert state_of(ds) == before, "a refused task changed the pool (check=%s)" % check
    wrong = [(fragment, messages[True][i], messages[False][i]) for i, (dummy, fragment) in enumerate(cases)
             if fragment not in messages[False][i] or messages[True][i] != messages[False][i]]
    assert not wrong, "\n".join("expected %r\n  check: %s\n  real:  %s" % w for w in wrong)


def test_no_warnings_key_passed_to_exit_json(play, zfs_dataset, request):
    snap = zfs_dataset + "@w1"
    zfs("snapshot", snap)
    zfs("hold", "other", snap)
    request.addfinalizer(lambda: subprocess.run(["zfs", "release", "other", snap], check=False))
    # zfs-fuse cannot list holds: in check mode the module cannot tell whether the tag is there, and warns
    run = play(snapshot_task(name=[snap], hold="keep"), check=True)
    output = run.stdout + run.stderr
    assert "already has holds that this zfs cannot list; hold keep may exist" in output
    assert "Passing `warnings` to `exit_json`" not in output and "DEPRECATION" not in output, output


def test_forced_rollback_diff_shows_what_it_destroys(play, zfs_dataset):
    ds = zfs_dataset + "/r"
    zfs("create", ds)
    for snap in ("s1", "s2", "s3"):
        zfs("snapshot", "%s@%s" % (ds, snap))
    zfs("clone", ds + "@s2", zfs_dataset + "/r-clone")
    zfs("snapshot", zfs_dataset + "/r-clone@c1")
    zfs("clone", zfs_dataset + "/r-clone@c1", zfs_dataset + "/r-clone2")
    task = snapshot_task(name=[ds + "@s1"], state="rollback", force=True)
    doomed_snapshots = [ds + "@s2", ds + "@s3"]
    doomed_clones = [zfs_dataset + "/r-clone", zfs_dataset + "/r-clone2"]
    before = state_of(zfs_dataset)
    checked = play(task, check=True, diff=True)
    assert state_of(zfs_dataset) == before
    res = checked.task_results()[0]
    assert res["destroyed"] == doomed_snapshots and res["destroyed_clones"] == doomed_clones
    assert res["diff"]["before"]["snapshots"] == {ds: [ds + "@s1"] + doomed_snapshots}
    assert res["diff"]["after"]["snapshots"] == {ds: [ds + "@s1"]}
    assert res["diff"]["before"]["clones"] == sorted(doomed_clones + [zfs_dataset + "/r-clone@c1"])
    assert res["diff"]["after"]["clones"] == []
    for name in doomed_snapshots + doomed_clones + [zfs_dataset + "/r-clone@c1"]:
        assert '-        "%s"' % name in checked.stdout or '-            "%s"' % name in checked.stdout, \
            checked.stdout  # shown as removed by --diff
    done = play(task, diff=True)
    assert done.task_results()[0]["destroyed_clones"] == doomed_clones
    assert zfs("list", "-H", "-t", "all", "-o", "name", "-r", zfs_dataset).split() == [zfs_dataset, ds, ds + "@s1"]
