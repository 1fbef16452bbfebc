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
    rootfs = tmp_path / "rootfs"
    for sub in ("bin", "sbin", "dev", "tmp", "srv"):
        (rootfs / sub).mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(rootfs / "bin" / "busybox")], check=True)
    for applet in ("sh", "sleep"):
        os.symlink("busybox", str(rootfs / "bin" / applet))
    (rootfs / "sbin" / "init").write_text("#!/bin/sh\ntrap 'exit 0' PWR TERM\n/bin/sleep 300 &\nwait\n")
    os.chmod(str(rootfs / "sbin" / "init"), 0o755)
    (rootfs / "srv" / "data").write_text("v1\n")
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "base.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
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
    data = os.path.join(double.backend.volume_path(double.backend.containers[150].config["rootfs"].split(",")[0]),
                        "srv", "data")
    pool = double.backend.storages["local-zfs"]["pool"]

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
    assert result["snapshots"][0]["description"] == "before v2"
    assert "%s/subvol-150-disk-0@pre_1" % pool in zfs_snapshots(double)
    again = installed_collection.playbook(first)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again

    # the rootfs changes after the snapshot; two more snapshots; keep 2 prunes pre_1 only
    with open(data, "w") as handle:
        handle.write("v2\n")
    assert installed_collection.playbook(snap_play(tmp_path, double, "s2.yml", vmid=150, name="pre_2")).rc == 0
    assert installed_collection.playbook(snap_play(tmp_path, double, "other.yml", vmid=150, name="manual")).rc == 0
    third = installed_collection.playbook(snap_play(tmp_path, double, "s3.yml", hostname="snapme", name="pre_3",
                                                    prefix="pre_", keep=2))
    assert third.rc == 0, third
    result = third.task_results()[0]
    assert result["deleted"] == ["pre_1"] and [s["name"] for s in result["snapshots"]] == ["pre_2", "manual", "pre_3"]
    assert "%s/subvol-150-disk-0@pre_1" % pool not in zfs_snapshots(double)

    # rollback to an older snapshot: ZFS refuses, the module fails with Proxmox's message, nothing changes
    older = installed_collection.playbook(snap_play(tmp_path, double, "rb-old.yml", vmid=150, name="pre_2",
                                                    state="rollback"))
    assert older.rc != 0 and "more recent snapshots exist" in older.stdout, older.stdout[-2000:]
    missing = installed_collection.playbook(snap_play(tmp_path, double, "rb-missing.yml", vmid=150, name="nope",
                                                      state="rollback"))
    assert missing.rc != 0 and "has no snapshot 'nope' to roll back to; it has: pre_2, manual, pre_3" in \
        missing.stdout, missing.stdout[-2000:]
    # delete the newer ones, then roll back the running container to pre_2 and start it again
    for name in ("pre_3", "manual"):
        gone = installed_collection.playbook(snap_play(tmp_path, double, "rm-%s.yml" % name, vmid=150, name=name,
                                                       state="absent"))
        assert gone.rc == 0 and gone.task_results()[0]["deleted"] == [name], gone
    assert installed_collection.playbook(snap_play(tmp_path, double, "rm-again.yml", vmid=150, name="manual",
                                                   state="absent")).stats["localhost"]["changed"] == 0
    with open(data, "w") as handle:
        handle.write("v3\n")
    assert double.backend.lxc_state(double.backend.containers[150])[0] == "running"
    back = installed_collection.playbook(snap_play(tmp_path, double, "rb.yml", vmid=150, name="pre_2",
                                                   state="rollback", start=True))
    assert back.rc == 0, back
    result = back.task_results()[0]
    assert result["changed"] and result["status"] == "running" and result["newer"] == []
    with open(data) as handle:
        assert handle.read() == "v2\n"
    assert double.backend.lxc_state(double.backend.containers[150])[0] == "running"


def test_doc_renders(installed_collection):
    doc = installed_collection.doc("lxcri.proxmox.lxc_snapshot")
    assert doc.rc == 0 and "keep" in doc.stdout and "rollback" in doc.stdout
