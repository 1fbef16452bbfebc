"""zfs_snapshot's engine: every refusal comes before the first write, in check mode as in a real run;
a forced rollback or destroy names everything -R takes with it; zfs-fuse's one-name snapshot is named."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.cli import CliDriver
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.snapshot import SnapshotManager

from . import standin_libzfs_core


class FakeZfsCommand:
    """Answers the zfs reads from an in-memory pool (names in creation order) and records every other call."""

    def __init__(self, names, held=(), origins=None, openzfs=False):
        self.names = list(names)
        self.held = set(held)
        self.origins = dict(origins or {})
        self.openzfs = openzfs
        self.writes = []

    def props(self, name):
        values = {"type": "snapshot" if "@" in name else "filesystem", "creation": "1700000000",
                  "origin": self.origins.get(name, "-"), "written": "0" if "@" not in name else "-"}
        if "@" in name:
            values["userrefs"] = "1" if name in self.held else "0"
        return values

    def __call__(self, argv):
        argv = list(argv)
        if tuple(argv[:2]) == ("zfs", "version"):
            return (0, "zfs-2.2.7\n", "") if self.openzfs else (2, "", "unrecognized command 'version'")
        if tuple(argv[:2]) == ("zpool", "list"):
            return (0, argv[-1] + "\n", "") if any(n.split("/")[0] == argv[-1] for n in self.names) else (1, "", "")
        if tuple(argv[:2]) == ("zfs", "get"):
            recursive = "-r" in argv
            start = argv.index("-r") + 1 if recursive else 5
            wanted, roots = argv[start], argv[start + 1:]
            lines = []
            for name in self.names:
                if not any(name == r or (recursive and (name.startswith(r + "/") or name.startswith(r + "@")))
                           for r in roots):
                    continue
                for prop, value in sorted(self.props(name).items()):
                    if wanted == "all" or prop in wanted.split(","):
                        lines.append("%s\t%s\t%s\t-" % (name, prop, value))
            return 0, "\n".join(lines) + "\n", ""
        self.writes.append(argv)
        return 0, "", ""


def tree():
    """p/a@s1 @s2 (s2 cloned to p/ac, whose @c1 is held and cloned to p/acc), p/h@h1 @h2 (h2 held),
    p/t/k@x held under p/t@x, p/t/k@e, p/v@__base__."""
    names = ["p", "p/a", "p/a@s1", "p/a@s2", "p/ac", "p/ac@c1", "p/acc", "p/h", "p/h@h1", "p/h@h2",
             "p/t", "p/t/k", "p/t@x", "p/t/k@x", "p/t/k@e", "p/v", "p/v@__base__", "p/w", "p/w@w1", "p/w@w2"]
    return FakeZfsCommand(names, held={"p/ac@c1", "p/h@h2", "p/t/k@x"},
                          origins={"p/ac": "p/a@s2", "p/acc": "p/ac@c1"})


def without_kmod(zfs):
    zfs.cli.sys_version_path = "/nonexistent/sys/module/zfs/version"  # the host's ZFS must not matter
    return zfs


def cli_zfs(command):
    return without_kmod(Zfs(command, "cli"))


def refusal(params, check_mode, command=None):
    command = command or tree()
    with pytest.raises(ZfsError) as err:
        SnapshotManager(cli_zfs(command), params, check_mode=check_mode).run()
    return err.value, command


REFUSALS = [
    ({"name": ["p/a@s1"], "state": "rollback"}, "not the newest snapshot"),
    ({"name": ["p/h@h1"], "state": "rollback", "force": True}, "newer snapshots it would destroy are held (p/h@h2)"),
    ({"name": ["p/a@s1"], "state": "rollback", "force": True}, "clones with held snapshots (p/ac@c1)"),
    ({"name": ["p/h@h2"], "state": "absent"}, "cannot destroy held snapshots (p/h@h2)"),
    ({"name": ["p/a@s2"], "state": "absent"}, "clones depend on them (p/ac, p/acc)"),
    ({"name": ["p/a@s2"], "state": "absent", "force": True}, "clones with held snapshots (p/ac@c1)"),
    ({"name": ["p/t@x"], "state": "absent", "recursive": True}, "cannot destroy held snapshots (p/t/k@x)"),
    ({"name": ["p/t@e"], "recursive": True}, "descendants already have a snapshot of that name (p/t/k@e)"),
    ({"name": ["p/a@m1", "p/a@m2"]}, "this zfs (zfs-fuse) cannot take several snapshots in one command"),
    ({"name": ["p/a@s1"], "hold": "x" * 256}, "the tag is 256 characters long"),
    ({"name": ["p/a"], "prefix": "auto_", "max_age": "soon"}, "max_age 'soon'"),
    ({"name": ["p/a@n"], "properties": {"quota": "1G"}}, "must be user properties"),
    ({"name": ["p/v@__base__"], "state": "absent"}, "managed by Proxmox VE"),
    ({"name": ["p/a@s1"], "state": "absent", "allowed_roots": ["p/elsewhere"]}, "outside allowed_roots"),
    ({"name": ["p/missing@s"]}, "dataset p/missing does not exist"),
    ({"name": ["p/a@bad name"]}, "invalid snapshot name"),
    ({"name": ["p/t@" + "x" * 250], "recursive": True}, "longer than 255 characters: p/t/k@xxx"),
]


@pytest.mark.parametrize("params,fragment", REFUSALS, ids=[str(i) for i in range(len(REFUSALS))])
def test_check_mode_makes_every_refusal_of_a_real_run_before_any_write(params, fragment):
    real, real_command = refusal(params, check_mode=False)
    checked, checked_command = refusal(params, check_mode=True)
    assert fragment in str(real)
    assert (str(checked), checked.kind) == (str(real), real.kind)
    assert real_command.writes == [] and checked_command.writes == []


def test_two_snapshots_of_one_dataset_are_refused_on_openzfs_too_before_libzfs_core_is_called():
    standin = standin_libzfs_core.make()
    command = tree()
    command.openzfs = True
    for check_mode in (True, False):
        zfs = without_kmod(Zfs(command, "libzfs_core", import_module=lambda name: standin))
        with pytest.raises(ZfsError) as err:
            SnapshotManager(zfs, {"name": ["p/a@m1", "p/a@m2"]}, check_mode=check_mode).run()
        assert "at most one snapshot of a dataset in one transaction" in str(err.value)
        assert "p/a (p/a@m1, p/a@m2)" in str(err.value)
    assert standin.state["calls"] == [] and command.writes == []
    # several datasets in one transaction is what libzfs_core is for
    for dataset in (b"p", b"p/a", b"p/h"):
        standin.state["datasets"][dataset] = {"origin": None}
    zfs = without_kmod(Zfs(command, "libzfs_core", import_module=lambda name: standin))
    result = SnapshotManager(zfs, {"name": ["p/a@m1", "p/h@m1"]}).run()
    assert result["created"] == ["p/a@m1", "p/h@m1"]


def test_zfs_fuse_refusal_names_what_it_refuses():
    fuse = CliDriver(FakeZfsCommand(["p"]), sys_version_path="/nonexistent")
    with pytest.raises(ZfsError) as err:
        fuse.snapshot(["p/a@m1", "p/a@m2"])
    assert err.value.kind == "unsupported"
    assert str(err.value) == (
        "this zfs (zfs-fuse) cannot take several snapshots in one command: its zfs snapshot accepts one "
        "dataset@snapname; asked for 2 snapshots of the one dataset p/a (p/a@m1, p/a@m2); take them in separate "
        "tasks (no ZFS takes two snapshots of one dataset in one transaction)")
    with pytest.raises(ZfsError) as err:
        fuse.snapshot(["p/a@m1", "p/b@m1"])
    assert "asked for snapshots of 2 datasets (p/a, p/b)" in str(err.value)
    assert "recursive: true" in str(err.value)
    assert fuse.runner.writes == []


def test_forced_rollback_lists_later_snapshots_and_every_dependent_clone_in_check_mode_and_diff():
    command = tree()
    command.held.discard("p/ac@c1")
    result = SnapshotManager(cli_zfs(command), {"name": ["p/a@s1"], "state": "rollback", "force": True},
                             check_mode=True).run()
    assert command.writes == []
    assert result["changed"] is True
    assert result["destroyed"] == ["p/a@s2"]
    assert result["destroyed_clones"] == ["p/ac", "p/acc"]  # the clone of the clone goes too (-R)
    assert result["diff"]["before"]["snapshots"] == {"p/a": ["p/a@s1", "p/a@s2"]}
    assert result["diff"]["after"]["snapshots"] == {"p/a": ["p/a@s1"]}
    assert result["diff"]["before"]["clones"] == ["p/ac", "p/ac@c1", "p/acc"]
    assert result["diff"]["after"]["clones"] == []
    real = SnapshotManager(cli_zfs(command), {"name": ["p/a@s1"], "state": "rollback", "force": True}).run()
    assert real["destroyed"] == result["destroyed"] and real["diff"] == result["diff"]
    assert command.writes[-1] == ["zfs", "rollback", "-R", "p/a@s1"]
    # zfs-fuse does not unmount what -R removes: the whole chain is unmounted first, deepest first
    assert [w[-1] for w in command.writes if w[1] == "unmount"] == ["p/acc", "p/ac"]


def test_destroy_diff_drops_the_destroyed_snapshots():
    command = tree()
    result = SnapshotManager(cli_zfs(command), {"name": ["p/w@w1"], "state": "absent"}, check_mode=True).run()
    assert result["destroyed"] == ["p/w@w1"]
    assert result["diff"]["after"]["snapshots"] == {"p/w": ["p/w@w2"]}
    assert "clones" not in result["diff"]["before"]


def test_forced_destroy_takes_clones_of_descendant_snapshots_with_minus_capital_r():
    command = FakeZfsCommand(["p", "p/t", "p/t/k", "p/t@x", "p/t/k@x", "p/c"], origins={"p/c": "p/t/k@x"})
    refused, dummy = refusal({"name": ["p/t@x"], "state": "absent", "recursive": True}, False, command)
    assert "clones depend on them (p/c)" in str(refused)
    result = SnapshotManager(cli_zfs(command), {"name": ["p/t@x"], "state": "absent", "recursive": True,
                                                "force": True}).run()
    assert result["destroyed"] == ["p/t/k@x", "p/t@x"] and result["destroyed_clones"] == ["p/c"]
    assert command.writes[-1] == ["zfs", "destroy", "-r", "-R", "p/t@x"]


def test_forced_rollback_refuses_to_destroy_a_clone_outside_allowed_roots():
    command = tree()
    command.held.discard("p/ac@c1")
    refused, dummy = refusal({"name": ["p/a@s1"], "state": "rollback", "force": True, "allowed_roots": ["p/a"]},
                             True, command)
    assert "refusing to destroy p/ac" in str(refused) and "as a clone" in str(refused)
    assert command.writes == []


def test_retention_does_not_prune_what_the_task_just_held():
    command = FakeZfsCommand(["p", "p/a"])
    result = SnapshotManager(cli_zfs(command), {"name": ["p/a"], "prefix": "auto_", "hold": "keep",
                                                "keep_last": 0}, clock=lambda: 1700000000).run()
    new = "p/a@auto_2023-11-14_22.13.20"
    assert result["created"] == [new] and result["held"] == [new] and result["pruned"] == []
    assert result["retention"]["p/a"]["skipped"] == {new: "held"}


def test_the_same_name_twice_is_one_snapshot():
    command = FakeZfsCommand(["p", "p/a"])
    result = SnapshotManager(cli_zfs(command), {"name": ["p/a@s", "p/a@s"]}).run()
    assert result["created"] == ["p/a@s"] and command.writes == [["zfs", "snapshot", "p/a@s"]]
