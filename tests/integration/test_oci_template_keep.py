"""oci_template's keep: the newest N templates of a repository stay, in a directory and in a PVE storage."""

import os

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.prune import PruneError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager
from lxcri_testbed.ansible import write_pve_play
from lxcri_testbed.oci_build import Layer, write_image


def versions(layout, count):
    """``count`` images of one repository (the layout), tags v0.., each with its own digest."""
    refs = []
    for number in range(count):
        refs.append(write_image(layout, "v%d" % number, [Layer().dir("bin").busybox(("sleep",))],
                                {"Cmd": ["/bin/sleep", str(1000 + number)]}))
    return refs


def test_keep_in_a_directory_prunes_the_oldest_of_the_family_only(tmp_path, bed):
    layout, dest, cache = str(tmp_path / "app"), str(tmp_path / "dest"), str(tmp_path / "cache")
    refs = versions(layout, 4)
    built = []
    for age, ref in enumerate(refs[:3]):
        built.append(TemplateManager({"image": ref, "dest": dest, "cache_dir": cache}).run())
        os.utime(built[-1]["path"], (1700000000 + age, 1700000000 + age))
    other = TemplateManager({"image": refs[0], "dest": dest, "cache_dir": cache, "compression": "gzip"}).run()
    stranger = os.path.join(dest, "unrelated_v1_0123456789ab.tar.zst")
    open(stranger, "w").close()
    os.utime(stranger, (1600000000, 1600000000))
    params = {"image": refs[3], "dest": dest, "cache_dir": cache, "keep": 2}
    check = TemplateManager(params, check_mode=True).run()
    assert check["changed"] and check["pruned"] == [built[0]["path"], built[1]["path"]]
    assert all(os.path.exists(b["path"]) for b in built)
    result = TemplateManager(params).run()
    assert result["pruned"] == [built[0]["path"], built[1]["path"]]
    for gone in built[:2]:
        assert not os.path.exists(gone["path"]) and not os.path.exists(gone["sidecar"])
    for kept in (built[2]["path"], result["path"], other["path"], stranger):
        assert os.path.exists(kept), kept
    again = TemplateManager(params).run()
    assert not again["changed"] and again["pruned"] == []
    # the template just found stays even when it is the oldest of the family
    os.utime(result["path"], (1500000000, 1500000000))
    oldest = TemplateManager(dict(params, keep=1)).run()
    assert oldest["pruned"] == [built[2]["path"]] and os.path.exists(result["path"])


def test_keep_needs_the_default_name_and_at_least_one(tmp_path, bed):
    layout, dest, cache = str(tmp_path / "app"), str(tmp_path / "dest"), str(tmp_path / "cache")
    ref = versions(layout, 1)[0]
    with pytest.raises(PruneError, match="default template name"):
        TemplateManager({"image": ref, "dest": dest, "cache_dir": cache, "keep": 2, "name": "mine"}).run()
    assert not os.path.exists(dest)  # refused before anything was built
    with pytest.raises(PruneError, match="at least 1"):
        TemplateManager({"image": ref, "dest": dest, "cache_dir": cache, "keep": 0}).run()


def test_keep_in_a_storage_through_the_module(installed_collection, tmp_path, bed):
    from pve_double.server import Double
    layout, cache = str(tmp_path / "app"), str(tmp_path / "cache")
    refs = versions(layout, 3)
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    cache_dir = os.path.join(double.backend.storages["local"]["path"], "template", "cache")
    try:
        volids = []
        for age, ref in enumerate(refs):
            play = write_pve_play(tmp_path, double, "keep%d.yml" % age, """\
                - lxcri.proxmox.oci_template:
                    image: %s
                    storage: local
                    cache_dir: %s
                    keep: 2
                  register: uploaded
                """ % (ref, cache))
            run = installed_collection.playbook(play)
            assert run.rc == 0, run
            result = run.task_results()[0]
            volids.append(result["volid"])
            path = os.path.join(cache_dir, result["filename"])
            os.utime(path, (1700000000 + age, 1700000000 + age))
            assert result["pruned"] == ([] if age < 2 else [volids[0]]), result
        listed = sorted("local:vztmpl/" + name for name in os.listdir(cache_dir))
        assert listed == sorted(volids[1:])
        again = installed_collection.playbook(play)
        assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    finally:
        double.stop()
