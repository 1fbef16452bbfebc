"""lxcri.proxmox.lxc_volume through real ansible runs against the PVE API double on ZFS (issue 17): a mount point's
data handed from one container to another, idempotence, check mode and diff, and Proxmox VE's refusals said
before any change."""

import json
import os
import subprocess

import pytest

from lxcri_testbed.ansible import write_pve_play

pytestmark = pytest.mark.integration


def volume_play(tmp_path, double, filename, **args):
    lines = "\n".join("    %s: %s" % (k, json.dumps(v)) for k, v in args.items())
    return write_pve_play(tmp_path, double, filename, "- lxcri.proxmox.lxc_volume:\n%s\n  register: moved\n" % lines)


def result(run):
    return [t["result"] for t in run.results["tasks"] if t["task"] == "lxcri.proxmox.lxc_volume"][-1]


def test_a_volume_moves_with_its_data_once_and_refusals_change_nothing(installed_collection, zdouble91, tmp_path):
    double = zdouble91
    template = double.add_busybox_template("vol.tar.zst", tmp_path, files={"data/seed": "seed\n"})
    create = write_pve_play(tmp_path, double, "cts.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: "{{ item }}"
            hostname: "app{{ item }}"
            ostemplate: %s
            storage: local-zfs
            disk_size: 1
            mounts: {"0": "local-zfs:1,mp=/data"}
            state: stopped
          loop: [161, 162]
        """ % template)
    made = installed_collection.playbook(create)
    assert made.rc == 0, made
    source = double.backend.containers[161].config["mp0"]
    assert source.startswith("local-zfs:subvol-161-disk-1,"), source
    with open(os.path.join(double.backend.volume_path("local-zfs:subvol-161-disk-1"), "mark"), "w") as handle:
        handle.write("161's data\n")

    # refused before any change: the target key is in use; a snapshot of the source references the volume
    taken = installed_collection.playbook(volume_play(tmp_path, double, "inuse.yml", vmid=161, volume="mp0",
                                                      target_vmid=162))
    assert taken.rc != 0 and "CT 162 has mp0 already" in result(taken)["msg"], result(taken)
    snap = write_pve_play(tmp_path, double, "snap.yml", """\
        - lxcri.proxmox.lxc_snapshot: {vmid: 161, name: before}
        """)
    assert installed_collection.playbook(snap).rc == 0
    state = json.dumps({v: ct.config for v, ct in double.backend.containers.items()}, sort_keys=True)
    used = installed_collection.playbook(volume_play(tmp_path, double, "used.yml", vmid=161, volume="mp0",
                                                     target_vmid=162, target_volume="mp1"))
    assert used.rc != 0 and "is in its snapshots before" in result(used)["msg"] and \
        result(used)["error_kind"] == "volume", result(used)
    checked = installed_collection.playbook(volume_play(tmp_path, double, "used.yml", vmid=161, volume="mp0",
                                                        target_vmid=162, target_volume="mp1"), check=True)
    assert checked.rc != 0 and "is in its snapshots before" in result(checked)["msg"]
    assert json.dumps({v: ct.config for v, ct in double.backend.containers.items()}, sort_keys=True) == state
    drop = write_pve_play(tmp_path, double, "drop.yml", """\
        - lxcri.proxmox.lxc_snapshot: {vmid: 161, name: before, state: absent}
        """)
    assert installed_collection.playbook(drop).rc == 0

    # a running source's mount point is refused (Proxmox VE: "Cannot move in-use volume ...")
    move = volume_play(tmp_path, double, "move.yml", vmid=161, volume="mp0", target_vmid=162, target_volume="mp1")
    start = write_pve_play(tmp_path, double, "start.yml", "- lxcri.proxmox.lxc_container: {vmid: 161, state: started}\n")
    assert installed_collection.playbook(start).rc == 0
    running = installed_collection.playbook(move)
    assert running.rc != 0 and "CT 161 is running" in result(running)["msg"], result(running)
    stop = write_pve_play(tmp_path, double, "stop.yml", "- lxcri.proxmox.lxc_container: {vmid: 161, state: stopped}\n")
    assert installed_collection.playbook(stop).rc == 0

    # check mode and diff report the move and change nothing
    state = json.dumps({v: ct.config for v, ct in double.backend.containers.items()}, sort_keys=True)
    checked = installed_collection.playbook(move, check=True, diff=True)
    assert checked.rc == 0 and result(checked)["changed"], result(checked)
    assert json.dumps({v: ct.config for v, ct in double.backend.containers.items()}, sort_keys=True) == state

    # the move: the data goes with the volume, renamed to the target's next free disk name
    run = installed_collection.playbook(move, diff=True)
    assert run.rc == 0, result(run)
    got = result(run)
    assert got["changed"] and got["source_volid"] == "local-zfs:subvol-161-disk-1" and \
        got["target_volid"] == "local-zfs:subvol-162-disk-2", got
    assert got["diff"]["before"]["source"]["mp0"] == source and got["diff"]["after"]["source"]["mp0"] is None
    assert "mp0" not in double.backend.containers[161].config
    assert double.backend.containers[162].config["mp1"].startswith("local-zfs:subvol-162-disk-2,mp=/data")
    with open(os.path.join(double.backend.volume_path("local-zfs:subvol-162-disk-2"), "mark")) as handle:
        assert handle.read() == "161's data\n"
    again = installed_collection.playbook(move)
    assert again.rc == 0 and not result(again)["changed"], result(again)


def test_a_larger_mount_point_grows_in_place_and_a_smaller_one_is_refused(installed_collection, zdouble91, tmp_path):
    """lxc_container with a bigger STORAGE:SIZE for an existing mount point: Proxmox VE would allocate a new,
    empty volume (the old one kept only as unusedN); the module resizes the one the data is on instead, and
    refuses a smaller size before any change."""
    double = zdouble91
    template = double.add_busybox_template("grow.tar.zst", tmp_path)
    pool = double.backend.storages["local-zfs"]["pool"]

    def play(size):
        return write_pve_play(tmp_path, double, "grow%d.yml" % size, """\
            - lxcri.proxmox.lxc_container:
                vmid: 163
                hostname: grow
                ostemplate: %s
                storage: local-zfs
                disk_size: 1
                mounts: {"0": "local-zfs:%d,mp=/data"}
                state: stopped
            """ % (template, size))
    assert installed_collection.playbook(play(1)).rc == 0
    with open(os.path.join(double.backend.volume_path("local-zfs:subvol-163-disk-1"), "mark"), "w") as handle:
        handle.write("kept\n")
    grown = installed_collection.playbook(play(2))
    assert grown.rc == 0, grown
    config = double.backend.containers[163].config
    assert config["mp0"].startswith("local-zfs:subvol-163-disk-1,") and "size=2G" in config["mp0"], config
    assert not [k for k in config if k.startswith("unused")], config
    with open(os.path.join(double.backend.volume_path("local-zfs:subvol-163-disk-1"), "mark")) as handle:
        assert handle.read() == "kept\n"
    assert subprocess.run(["zfs", "get", "-H", "-o", "value", "refquota", pool + "/subvol-163-disk-1"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip() == "2G"
    again = installed_collection.playbook(play(2))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    before = dict(config)
    shrunk = installed_collection.playbook(play(1))
    assert shrunk.rc != 0 and "mp0 is 2G and 1G was asked: Proxmox VE cannot shrink a volume" in \
        [t["result"]["msg"] for t in shrunk.results["tasks"] if t["status"] == "failed"][0]
    assert double.backend.containers[163].config == before
