"""lxcri.proxmox.lxc_snapshot through real ansible-playbook runs against the PVE API double on ZFS."""

import json
import os
import subprocess

import pytest

from lxcri_testbed.ansible import write_pve_play
from pve_double.server import Double

pytestmark = pytest.mark.integration


@pytest.fixture(params=["9.1", "8"])
def zdouble(request, tmp_path, zfs_dataset, bed):
    instance = Double(str(tmp_path / "pve"), mode=request.param, zfs_root=zfs_dataset + "/pve").start()
    instance.add_busybox_template("base.tar.zst", tmp_path, files={"srv/data": "v1\n"})
    yield instance
    instance.kill_containers()
    instance.stop()


def state_of(double):
    return json.dumps({vmid: [ct.config, list(ct.snapshots)] for vmid, ct in sorted(double.backend.containers.items())},
                      sort_keys=True, default=str)


def zfs_snapshots(double):
    return subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r",
                           double.backend.storages["local-zfs"]["pool"]], check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.split()


def snap_play(tmp_path, double, filename, **args):
    lines = "\n".join("    %s: %s" % (k, json.dumps(v)) for k, v in args.items())
    return write_pve_play(tmp_path, double, filename, "- lxcri.proxmox.lxc_snapshot:\n%s\n  register: snap\n" % lines)


def read(path):
    with open(path) as handle:
        return handle.read()


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


@pytest.mark.slow(60)
def test_create_retention_rollback_and_delete(installed_collection, zdouble, tmp_path):
    double = zdouble
    create = write_pve_play(tmp_path, double, "ct.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 150
            hostname: snapme
            ostemplate: local:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            state: started
        """)
    assert installed_collection.playbook(create).rc == 0
    ct = double.backend.containers[150]
    data = os.path.join(double.backend.volume_path(ct.config["rootfs"].split(",")[0]), "srv", "data")
    dataset = "%s/subvol-150-disk-0" % double.backend.storages["local-zfs"]["pool"]

    def play(filename, **args):
        return installed_collection.playbook(snap_play(tmp_path, double, filename, **args))

    # create: check mode changes nothing, shows the diff; then created; a re-run changes nothing
    first = snap_play(tmp_path, double, "s1.yml", vmid=150, name="pre_1", description="before v2", prefix="pre_",
                      keep=2)
    before = state_of(double)
    check = installed_collection.playbook(first, check=True, diff=True)
    assert check.rc == 0 and check.task_results()[0]["changed"], check
    assert state_of(double) == before and not [s for s in zfs_snapshots(double) if "@pre_" in s]
    assert check.task_results()[0]["diff"] == {"before": {"snapshots": []}, "after": {"snapshots": ["pre_1"]}}
    run = installed_collection.playbook(first)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["changed"] and [s["name"] for s in result["snapshots"]] == ["pre_1"]
    assert result["snapshots"][0]["description"] == "before v2" and result["snapshots"][0]["parent"] is None
    assert dataset + "@pre_1" in zfs_snapshots(double)
    again = installed_collection.playbook(first)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again

    # the rootfs changes after the snapshot; two more snapshots; keep 2 prunes pre_1 only (check mode first)
    write(data, "v2\n")
    assert play("s2.yml", vmid=150, name="pre_2").rc == 0
    assert play("other.yml", vmid=150, name="manual").rc == 0
    third = snap_play(tmp_path, double, "s3.yml", hostname="snapme", name="pre_3", prefix="pre_", keep=2)
    before = state_of(double)
    check = installed_collection.playbook(third, check=True, diff=True)
    assert check.rc == 0, check
    result = check.task_results()[0]
    assert result["changed"] and result["deleted"] == ["pre_1"]
    assert result["diff"] == {"before": {"snapshots": ["pre_1", "pre_2", "manual"]},
                              "after": {"snapshots": ["pre_2", "manual", "pre_3"]}}
    assert state_of(double) == before and dataset + "@pre_1" in zfs_snapshots(double)
    run = installed_collection.playbook(third)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["deleted"] == ["pre_1"] and [s["name"] for s in result["snapshots"]] == ["pre_2", "manual", "pre_3"]
    assert [s["parent"] for s in result["snapshots"]][1:] == ["pre_2", "manual"]
    assert dataset + "@pre_1" not in zfs_snapshots(double) and dataset + "@pre_3" in zfs_snapshots(double)

    # rollback to an older snapshot: ZFS refuses; the module says so before any change, in check mode too
    older_play = snap_play(tmp_path, double, "rb-old.yml", vmid=150, name="pre_2", state="rollback")
    before = state_of(double)
    for check in (True, False):
        older = installed_collection.playbook(older_play, check=check)
        assert older.rc != 0 and "can't rollback CT 150 to 'pre_2': it is not the most recent snapshot on " \
            "local-zfs:subvol-150-disk-0" in older.stdout and "newer: manual, pre_3" in older.stdout, \
            older.stdout[-2000:]
    assert state_of(double) == before
    missing = play("rb-missing.yml", vmid=150, name="nope", state="rollback")
    assert missing.rc != 0 and "has no snapshot 'nope' to roll back to; it has: pre_2, manual, pre_3" in \
        missing.stdout, missing.stdout[-2000:]
    bad = play("bad-name.yml", vmid=150, name="pre.4")
    assert bad.rc != 0 and "'pre.4' is not a Proxmox VE snapshot name" in bad.stdout, bad.stdout[-2000:]
    nobody = play("nobody.yml", hostname="nobody", name="pre_4")
    assert nobody.rc != 0 and "no container 'nobody' in the cluster" in nobody.stdout, nobody.stdout[-2000:]

    # absent: check mode changes nothing; then deleted; a re-run changes nothing
    gone = snap_play(tmp_path, double, "rm-pre_3.yml", vmid=150, name="pre_3", state="absent")
    before = state_of(double)
    check = installed_collection.playbook(gone, check=True, diff=True)
    assert check.rc == 0 and check.task_results()[0]["deleted"] == ["pre_3"], check
    assert state_of(double) == before and dataset + "@pre_3" in zfs_snapshots(double)
    run = installed_collection.playbook(gone)
    assert run.rc == 0 and run.task_results()[0]["deleted"] == ["pre_3"], run
    assert dataset + "@pre_3" not in zfs_snapshots(double)
    assert installed_collection.playbook(gone).stats["localhost"]["changed"] == 0

    # a failed worker task fails the module at once with the end of the task log: the ZFS snapshot behind
    # "manual" is gone, so deleting it fails in the task; put it back, then the delete goes through
    subprocess.run(["zfs", "destroy", dataset + "@manual"], check=True)
    broken = play("rm-manual.yml", vmid=150, name="manual", state="absent")
    assert broken.rc != 0 and "zfs destroy %s@manual failed" % dataset in broken.stdout, broken.stdout[-2000:]
    subprocess.run(["zfs", "snapshot", dataset + "@manual"], check=True)
    run = play("rm-manual.yml", vmid=150, name="manual", state="absent")
    assert run.rc == 0 and run.task_results()[0]["deleted"] == ["manual"], run

    # rollback of the running container: check mode changes nothing
    write(data, "v3\n")
    assert double.backend.lxc_state(ct)[0] == "running"
    back = snap_play(tmp_path, double, "rb.yml", vmid=150, name="pre_2", state="rollback")
    before = state_of(double)
    check = installed_collection.playbook(back, check=True, diff=True)
    assert check.rc == 0, check
    result = check.task_results()[0]
    assert result["changed"] and result["status"] == "stopped" and result["newer"] == []
    assert state_of(double) == before and read(data) == "v3\n" and double.backend.lxc_state(ct)[0] == "running"
    # Proxmox VE stops the running container and rolls back; without start it stays stopped
    run = installed_collection.playbook(back)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["changed"] and result["status"] == "stopped" and read(data) == "v2\n"
    assert double.backend.lxc_state(ct)[0] == "stopped"
    assert result["diff"] == {"before": {"snapshots": ["pre_2"]}, "after": {"snapshots": ["pre_2"]}}
    # a rollback always changes something (the rootfs is reverted), and start starts it in the same task
    write(data, "v4\n")
    run = play("rb-start.yml", vmid=150, name="pre_2", state="rollback", start=True)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["changed"] and result["status"] == "running" and read(data) == "v2\n"
    assert double.backend.lxc_state(ct)[0] == "running"
    assert [name for name in result["timings"] if name != "total"] == ["rollback pre_2"]  # no separate start


def test_a_container_with_a_bind_mount_is_refused_before_any_change(installed_collection, zdouble, tmp_path):
    """Proxmox VE has no snapshot of a container with a bind mount (has_feature); the module says so first, naming
    the mount point, in check mode too."""
    double = zdouble
    shared = tmp_path / "shared"
    shared.mkdir()
    create = write_pve_play(tmp_path, double, "ct.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 151
            hostname: bound
            ostemplate: local:vztmpl/base.tar.zst
            storage: local-zfs
            disk_size: 1
            mounts: {"0": "%s,mp=/shared"}
            state: stopped
        """ % shared)
    assert installed_collection.playbook(create).rc == 0
    assert double.backend.containers[151].config["mp0"].startswith(str(shared))
    before = state_of(double)
    play = snap_play(tmp_path, double, "s.yml", vmid=151, name="before")
    for check in (True, False):
        run = installed_collection.playbook(play, check=check)
        msg = run.task_results()[0]["msg"]
        assert run.rc != 0 and "cannot snapshot CT 151" in msg and "mp0 (%s)" % shared in msg, run
        assert state_of(double) == before and zfs_snapshots(double) == []


def test_doc_renders(installed_collection):
    doc = installed_collection.doc("lxcri.proxmox.lxc_snapshot")
    assert doc.rc == 0 and "keep" in doc.stdout and "rollback" in doc.stdout
