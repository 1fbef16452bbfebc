"""The directory destination (oci_template with ``dest``) and prune over a destination."""

import os
import re

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.destination import DirDestination, write_record
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.prune import prune

DIGEST = "sha256:3b7c9e0a1f2d" + "0" * 52
FAMILY = ["nginx_1.25_aaaaaaaaaaaa.tar.zst", "nginx_1.26_bbbbbbbbbbbb.tar.zst", "nginx_1.27_3b7c9e0a1f2d.tar.zst"]


def populate(directory):
    for age, filename in enumerate(FAMILY):
        path = os.path.join(str(directory), filename)
        with open(path, "wb") as handle:
            handle.write(b"t")
        write_record(path + ".json", {"size": 1})
        os.utime(path, (1000 + age, 1000 + age))
    with open(os.path.join(str(directory), "other_1_cccccccccccc.tar.zst"), "wb") as handle:
        handle.write(b"o")


def test_family_lists_templates_not_sidecars(tmp_path):
    populate(tmp_path)
    dest = DirDestination(str(tmp_path), ".tar.zst")
    regex = re.compile(r"^nginx_.+_[0-9a-f]{12}\.tar\.zst$")
    assert sorted(dest.family(regex)) == [(name, 1000 + age) for age, name in enumerate(FAMILY)]
    assert DirDestination(str(tmp_path / "missing"), ".tar.zst").family(regex) == []


def test_remove_in_check_mode_only_says_so(tmp_path):
    populate(tmp_path)
    path = str(tmp_path / FAMILY[0])
    assert DirDestination(str(tmp_path), ".tar.zst", check_mode=True).remove(FAMILY[0]) == [path, path + ".json"]
    assert os.path.exists(path)
    assert DirDestination(str(tmp_path), ".tar.zst").remove(FAMILY[0]) == [path, path + ".json"]
    assert not os.path.lexists(path) and not os.path.lexists(path + ".json")


def test_lock_on_a_missing_directory_creates_it_only_when_asked(tmp_path):
    dest = DirDestination(str(tmp_path / "d"), ".tar.zst")
    with dest.lock("x", create=False):
        assert not os.path.exists(str(tmp_path / "d"))
    with dest.lock("x"):
        assert os.path.exists(str(tmp_path / "d" / ".lxcri-x.lock"))
    assert os.listdir(str(tmp_path / "d")) == []  # the lock file lives only while the lock is held
    with DirDestination(str(tmp_path / "e"), ".tar.zst", check_mode=True).lock("x"):
        assert not os.path.exists(str(tmp_path / "e"))


def test_prune_keeps_the_newest_and_the_current(tmp_path):
    populate(tmp_path)
    result = {"filename": FAMILY[2], "digest": DIGEST, "changed": False}
    dest = DirDestination(str(tmp_path), ".tar.zst", check_mode=True)
    prune(dest, 2, "nginx", result, check_mode=True)
    assert result["pruned"] == [str(tmp_path / FAMILY[0])] and result["changed"]
    assert os.path.exists(str(tmp_path / FAMILY[0]))
    result = {"filename": FAMILY[2], "digest": DIGEST, "changed": False}
    prune(DirDestination(str(tmp_path), ".tar.zst"), 1, "nginx", result)
    assert result["pruned"] == [str(tmp_path / FAMILY[0]), str(tmp_path / FAMILY[1])]
    assert sorted(os.listdir(str(tmp_path))) == [FAMILY[2], FAMILY[2] + ".json", "other_1_cccccccccccc.tar.zst"]


def test_the_lock_excludes_and_leaves_no_file_however_runs_overlap(tmp_path):
    import threading
    import time
    dest = DirDestination(str(tmp_path), ".tar.zst")
    inside, overlaps, errors = [], [], []

    def build(n):
        try:
            for dummy in range(20):
                with dest.lock("app"):
                    if inside:
                        overlaps.append(n)
                    inside.append(n)
                    time.sleep(0.001)
                    inside.remove(n)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and overlaps == []  # never two holders, though each release removed the file
    assert os.listdir(str(tmp_path)) == []
