"""lxc_container's engine against a small recording fake of the API: request counts, lock waits, resize, vmids.

The fake keeps PVE's rules that matter here: the lock is a line of the config (so its release changes the
digest), a config PUT checks the lock before the digest (pve-container's update_vm_config), a resize changes
the config's size.  The playbook-level proof is tests/integration/test_lxc_container.py.
"""

import hashlib
import re

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import config as pveconfig
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError, ContainerManager
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveApiError, PveTaskError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.features import PveFeatures
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import lock_of

GIB = 1024 ** 3


class FakePve:
    """One node, containers as config dicts; records every call as (method, path)."""

    def __init__(self, containers=None, vms=(), version="9.1.1"):
        self.configs = dict(containers or {})  # vmid -> config (text values, "lock" included when held)
        self.status = dict((vmid, "running") for vmid in self.configs)
        self.vms = list(vms)
        self.version = version
        self.calls = []
        self.puts = []
        self.lock_for = {}  # vmid -> number of further lock errors its next writes get (then the lock goes)
        self.edits = {}  # vmid -> config changes another client makes, one before each of the next config PUTs
        self.nextids = []
        self.pending = {}  # vmid -> {key: pending value} left by an earlier run
        self._features = None
        self.storages = None  # GET /nodes/{node}/storage, as PVE/Storage.pm storage_info lists them
        self.user = "root@pam"  # whom Proxmox VE checks permissions for (a token: "root@pam!ci")

    def acting_user(self):
        return self.user

    def digest(self, vmid):
        text = "".join("%s: %s\n" % item for item in sorted(self.configs[vmid].items()))
        return hashlib.sha1(text.encode()).hexdigest()

    def _locked(self, vmid, path):
        config = self.configs[vmid]
        if config.get("lock"):
            self.lock_for[vmid] = self.lock_for.get(vmid, 1) - 1
            lock = config["lock"]
            if self.lock_for[vmid] <= 0:
                config.pop("lock")  # released after this answer
            raise PveApiError(500, "PUT", path, "CT is locked (%s)" % lock)

    def features(self):
        if self._features is None:
            self._features = PveFeatures.from_version_info(self.get("/version"))
        return self._features

    def get(self, path, params=None, **kw):
        self.calls.append(("GET", path))
        if path == "/cluster/resources":
            return [{"type": "lxc", "vmid": v, "node": "pve1", "name": c.get("hostname"), "status": self.status[v]}
                    for v, c in sorted(self.configs.items())] + \
                   [{"type": "qemu", "vmid": v, "node": "pve1", "name": "vm%d" % v, "status": "running"}
                    for v in self.vms]
        if path == "/nodes/{node}/lxc":  # live, as pve-container's vmstatus answers it
            return [dict({"type": "lxc", "vmid": v, "name": c.get("hostname") or "CT%d" % v, "status": self.status[v]},
                         **({"template": 1} if str(c.get("template")) == "1" else {}))
                    for v, c in sorted(self.configs.items())]
        if path == "/nodes/{node}/lxc/{vmid}/config":
            return dict(self.configs[kw["vmid"]], digest=self.digest(kw["vmid"]))
        if path == "/nodes/{node}/lxc/{vmid}/pending":  # vm_pending: every key, pending ones marked
            return [dict({"key": k, "value": v}, **({"pending": self.pending[kw["vmid"]][k]}
                                                    if k in self.pending.get(kw["vmid"], {}) else {}))
                    for k, v in sorted(self.configs[kw["vmid"]].items())]
        if path == "/nodes/{node}/lxc/{vmid}/status/current":
            return {"status": self.status[kw["vmid"]]}
        if path == "/nodes/{node}/tasks/{upid}/status":
            return {"status": "stopped", "exitstatus": "OK"}
        if path in ("/version", "/nodes/pve1/version"):  # a one-node cluster: the API host is the node
            return {"version": self.version, "release": self.version.rpartition(".")[0]}
        if path == "/cluster/nextid":
            return self.nextids.pop(0) if self.nextids else max(list(self.configs) + self.vms + [99]) + 1
        if path == "/nodes":
            return [{"node": "pve1"}]
        if path == "/nodes/{node}/storage" and self.storages is not None:
            return self.storages
        raise AssertionError("unexpected GET %s" % path)

    def put(self, path, params=None, **kw):
        self.calls.append(("PUT", path))
        vmid = kw["vmid"]
        self._locked(vmid, path)
        self.puts.append((path, dict(params)))
        if path.endswith("/config"):
            if self.edits.get(vmid):
                self.configs[vmid].update(self.edits[vmid].pop(0))
            if params.get("digest") and params["digest"] != self.digest(vmid):
                raise PveApiError(500, "PUT", path, "detected modified configuration - file changed by other user? "
                                                    "Try again.")
            self.configs[vmid].update((k, v) for k, v in params.items() if k not in ("digest", "delete"))
            return None
        if path.endswith("/resize"):
            volume = self.configs[vmid]["rootfs"].split(",")[0]
            self.configs[vmid]["rootfs"] = "%s,size=%s" % (volume, params["size"])
            return "UPID:pve1:resize"
        raise AssertionError("unexpected PUT %s" % path)

    def post(self, path, params=None, **kw):
        self.calls.append(("POST", path))
        if path == "/nodes/{node}/lxc":
            vmid = params["vmid"]
            if vmid in self.configs:
                raise PveApiError(500, "POST", path, "CT %d already exists on node 'pve1'" % vmid)
            self.configs[vmid] = {"hostname": params.get("hostname"), "rootfs": "local:%d/disk,size=8G" % vmid}
            self.status[vmid] = "stopped"
            return "UPID:pve1:create"
        if path.endswith("/status/start"):
            self._locked(kw["vmid"], path)
            self.status[kw["vmid"]] = "running"
            return "UPID:pve1:start"
        raise AssertionError("unexpected POST %s" % path)


class Clock:
    """A clock that the fake sleep moves forward; records the sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def manager(pve, clock=None, check_mode=False, **params):
    clock = clock or Clock()
    params.setdefault("state", "started")
    params.setdefault("wait_timeout", 60)
    return ContainerManager(params, check_mode=check_mode, client=pve, sleep=clock.sleep, clock=clock)


def running_ct(**extra):
    config = {"hostname": "web", "memory": "256", "rootfs": "local-zfs:subvol-150-disk-0,size=2G"}
    config.update(extra)
    return {150: config}


# -- request economy -------------------------------------------------------------------------

def test_an_unchanged_running_container_costs_the_listing_the_live_node_list_its_config_and_pending():
    """A running container's /pending too: GET config shows pending values as applied (issue 15 item 8)."""
    pve = FakePve(running_ct())
    result = manager(pve, vmid=150, memory=256).run()
    assert not result["changed"] and pve.calls == [("GET", "/cluster/resources"), ("GET", "/nodes/{node}/lxc"),
                                                   ("GET", "/nodes/{node}/lxc/{vmid}/config"),
                                                   ("GET", "/nodes/{node}/lxc/{vmid}/pending")]
    stopped = FakePve(running_ct())
    stopped.status[150] = "stopped"
    assert not manager(stopped, vmid=150, memory=256, state="present").run()["changed"]
    assert ("GET", "/nodes/{node}/lxc/{vmid}/pending") not in stopped.calls  # a stopped CT applies at once


def test_a_change_left_pending_by_an_earlier_run_is_reported_and_applied_when_needed():
    """GET config merges pending values, so the config looks done; /pending tells, and when_needed reboots."""
    pve = FakePve(running_ct(nameserver="10.0.0.53"))
    pve.pending[150] = {"nameserver": "10.0.0.53"}
    result = manager(pve, vmid=150, nameserver="10.0.0.53").run()
    assert not result["changed"] and result["pending"] == ["nameserver"]
    assert not [call for call in pve.calls if call[0] != "GET"]

    def reboot(path, params=None, **kw):
        pve.calls.append(("POST", path))
        assert path.endswith("/status/reboot")
        pve.pending[150] = {}
        return "UPID:pve1:reboot"
    pve.post = reboot
    result = manager(pve, vmid=150, nameserver="10.0.0.53", restart="when_needed").run()
    assert result["changed"] and result["pending"] == [] and "restarted" in result["actions"]


def test_a_config_with_entrypoint_spares_the_version_and_one_without_asks_once():
    oci = {"volid": "local:vztmpl/app.tar.zst",
           "runtime": {"wrapper": {"kind": "init"}, "pve_entrypoint": "/sbin/init", "pve_env": ["PATH=/bin"]}}
    pve = FakePve(running_ct(entrypoint="/sbin/init", env="PATH=/bin"))
    assert not manager(pve, vmid=150, oci=oci).run()["changed"]
    assert ("GET", "/nodes/pve1/version") not in pve.calls and len(pve.calls) == 4  # listing, node list, config, pending
    old = FakePve(running_ct(), version="8.4.1")
    assert not manager(old, vmid=150, oci=oci).run()["changed"]
    # the node's own version (the API host may run another one mid-upgrade), asked once
    assert old.calls.count(("GET", "/nodes/pve1/version")) == 1 and len(old.calls) == 5


def test_a_vmid_that_is_a_vm_is_told_apart_from_the_same_listing():
    pve = FakePve(running_ct(), vms=[151])
    with pytest.raises(ContainerError, match="vmid 151 is a virtual machine, not a container"):
        manager(pve, vmid=151).run()
    assert pve.calls == [("GET", "/cluster/resources"), ("GET", "/nodes/{node}/lxc")]


def test_vmid_range_uses_the_listing_already_read_and_lists_again_only_after_a_create():
    pve = FakePve(running_ct(), vms=[200])
    result = manager(pve, hostname="new", ostemplate="local:vztmpl/a.tar.zst", vmid_range=[150, 210],
                     node="pve1", state="present").run()
    assert result["vmid"] == 151  # 150 is a container; 200 (a VM) would be skipped too
    assert pve.calls.count(("GET", "/cluster/resources")) == 1


# -- locks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("message, lock", [
    ("Proxmox VE API PUT /nodes/pve1/lxc/105/config failed (HTTP 500): CT is locked (backup)", "backup"),
    ("CT 105 is locked (snapshot-delete)", "snapshot-delete"),
    ("VM is locked (migrate)", "migrate"),
    ("can't lock file '/run/lock/lxc/pve-config-105.conf' - got timeout",
     "config file /run/lock/lxc/pve-config-105.conf"),
    ("CT 105 already exists on node 'pve1'", None),
    ("detected modified configuration - file changed by other user? Try again.", None),
])
def test_lock_of_names_the_lock(message, lock):
    assert lock_of(Exception(message)) == lock


def test_a_lock_is_waited_out_with_backoff_and_the_config_read_again():
    pve = FakePve(running_ct(lock="backup"))
    pve.lock_for[150] = 4  # four refused writes, then the backup ends
    clock = Clock()
    ct = manager(pve, clock, vmid=150, memory=512)
    result = ct.run()
    assert result["changed"] and result["actions"] == ["waited for lock backup", "configured"]
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0] and result["timings"]["lock_wait"] == 7.5
    config_puts = [params for path, params in pve.puts if path.endswith("/config")]
    assert len(config_puts) == 1 and pve.configs[150]["memory"] == "512"
    # every wait read the config again: the write carried the digest of the config without the lock
    assert pve.calls.count(("GET", "/nodes/{node}/lxc/{vmid}/config")) == 1 + 4 + 1  # first, refreshes, result
    assert "lock" not in result["config"]


def test_a_lock_held_past_wait_timeout_fails_naming_it_and_changes_nothing():
    pve = FakePve(running_ct(lock="snapshot"))
    pve.lock_for[150] = 10 ** 6
    clock = Clock()
    with pytest.raises(ContainerError) as err:
        manager(pve, clock, vmid=150, memory=512, wait_timeout=30).run()
    assert str(err.value).startswith("configure: the container stayed locked (snapshot) for 30 s, longer than "
                                     "wait_timeout (30 s)")
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 2.5]  # backoff capped at 5 s, ends on time
    assert pve.puts == [] and pve.configs[150]["memory"] == "256"


def test_other_errors_are_not_retried():
    pve = FakePve(running_ct())
    clock = Clock()
    ct = manager(pve, clock, vmid=150)

    def refuse():
        raise PveApiError(500, "PUT", "/x", "detected modified configuration - file changed by other user?")
    with pytest.raises(PveApiError):
        ct.session.locked_retry("configure", refuse)
    assert clock.sleeps == [] and ct.session.actions == []


def test_a_concurrent_edit_is_planned_again_keeping_the_other_clients_keys():
    pve = FakePve(running_ct())
    pve.edits[150] = [{"description": "theirs", "memory": "1024"}]  # lands between our read and our write
    result = manager(pve, vmid=150, memory=512, cores=2).run()
    assert result["changed"] and result["actions"] == ["re-planned after a concurrent edit", "configured"], result
    config_puts = [params for path, params in pve.puts if path.endswith("/config")]
    assert len(config_puts) == 2 and config_puts[0]["digest"] != config_puts[1]["digest"]
    assert config_puts[1] == {"memory": "512", "cores": "2", "digest": config_puts[1]["digest"]}, config_puts
    assert pve.configs[150]["memory"] == "512" and pve.configs[150]["description"] == "theirs"


def test_a_concurrent_edit_that_made_our_change_leaves_nothing_to_do():
    pve = FakePve(running_ct())
    pve.edits[150] = [{"memory": "512"}]
    result = manager(pve, vmid=150, memory=512).run()
    assert not result["changed"] and result["actions"] == ["re-planned after a concurrent edit"], result
    assert len([path for path, params in pve.puts if path.endswith("/config")]) == 1


def test_a_config_that_keeps_changing_fails_after_the_replans_naming_why():
    pve = FakePve(running_ct())
    pve.edits[150] = [{"description": "edit %d" % n} for n in range(10)]
    with pytest.raises(ContainerError) as err:
        manager(pve, vmid=150, memory=512).run()
    assert str(err.value).startswith("configure: the config of CT 150 changed under every one of 4 writes")
    assert "another client keeps editing it; this step changed nothing" in str(err.value)
    assert pve.configs[150]["memory"] == "256" and len(pve.edits[150]) == 6


def test_a_lock_reported_by_the_worker_task_is_waited_out_too():
    pve = FakePve(running_ct())
    clock = Clock()
    ct = manager(pve, clock, vmid=150)
    answers = [PveTaskError("UPID:pve1:start", "CT is locked (create)"), "done"]

    def start():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    assert ct.session.locked_retry("start", start) == "done" and ct.session.actions == ["waited for lock create"]


def test_a_stopped_locked_container_is_started_after_the_lock_goes():
    pve = FakePve(running_ct(lock="backup"))
    pve.status[150] = "stopped"
    pve.lock_for[150] = 2
    result = manager(pve, vmid=150).run()
    assert result["actions"] == ["started", "waited for lock backup"] and pve.status[150] == "running"


# -- rootfs size ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options, grow", [
    ({"disk_size": 2}, None),
    ({"disk_size": 3}, 3 * GIB),
    ({"rootfs": "local-zfs:4"}, 4 * GIB),
    ({"rootfs": {"volume": "local-zfs:subvol-150-disk-0", "size": "2560M"}}, 2560 * 1024 ** 2),
    ({"rootfs": "local-zfs:subvol-150-disk-0,size=2G"}, None),
])
def test_rootfs_growth(options, grow):
    pve = FakePve(running_ct())
    ct = manager(pve, vmid=150, **options)
    wanted = ct.desired()
    assert ct.rootfs_size(pve.configs[150], wanted)[1] == grow


@pytest.mark.parametrize("options, message", [
    ({"disk_size": 1}, "rootfs is 2G and 1G was asked: Proxmox VE cannot shrink a volume"),
    ({"rootfs": "local-zfs:1"}, "cannot shrink"),
    ({"rootfs": "local:8"}, "rootfs is on local-zfs; moving it to local is not done by this module"),
    ({"rootfs": "local-zfs:subvol-999-disk-0"}, "another volume (local-zfs:subvol-999-disk-0) cannot be set"),
])
def test_rootfs_refusals(options, message):
    pve = FakePve(running_ct())
    with pytest.raises(ContainerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        manager(pve, vmid=150, **options).run()
    assert pve.puts == []


def test_config_is_written_before_the_resize_that_changes_its_digest():
    pve = FakePve(running_ct())
    result = manager(pve, vmid=150, disk_size=5, memory=300).run()
    assert [path.rpartition("/")[2] for path, dummy in pve.puts] == ["config", "resize"]
    assert pve.puts[1][1] == {"disk": "rootfs", "size": "5G"}
    assert result["actions"] == ["configured", "resized"] and result["config"]["rootfs"].endswith("size=5G")


def test_check_mode_predicts_the_resize_and_writes_nothing():
    pve = FakePve(running_ct())
    result = manager(pve, check_mode=True, vmid=150, disk_size=5).run()
    assert result["changed"] and result["actions"] == ["resized"] and pve.puts == []
    assert result["diff"]["before"]["rootfs"].endswith("size=2G") and result["diff"]["after"]["rootfs"].endswith(
        "size=5G")


# -- vmid allocation ---------------------------------------------------------------------------

def test_a_collision_on_nextid_takes_the_next_answer():
    pve = FakePve(running_ct())
    pve.nextids = [150, 152]  # 150 was handed to someone else too and exists by now
    result = manager(pve, hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1", state="present").run()
    assert result["vmid"] == 152 and pve.calls.count(("POST", "/nodes/{node}/lxc")) == 2


def test_a_given_vmid_that_exists_is_not_replaced_by_another():
    pve = FakePve(running_ct())
    ct = manager(pve, vmid=150, hostname="x")

    def make(vmid):
        raise PveApiError(500, "POST", "/nodes/pve1/lxc", "CT %d already exists on node 'pve1'" % vmid)
    with pytest.raises(PveApiError, match="already exists"):
        ct._create_with(make)


# -- storages: a new volume's storage must be usable on the node, said before any change ----------------------

STORAGES = [
    {"storage": "local", "content": "vztmpl,iso,backup", "enabled": 1, "active": 1},
    {"storage": "local-zfs", "content": "rootdir,images", "enabled": 1, "active": 1},
    {"storage": "elsewhere", "content": "rootdir", "enabled": 0, "active": 0},  # storage.cfg nodes: pve2
    {"storage": "nfs", "content": "rootdir,images", "enabled": 1, "active": 0},  # its server does not answer
]


@pytest.mark.parametrize("storage, mount, message", [
    ("elsewhere", None, "storage 'elsewhere' is disabled, or not available on node pve1"),
    ("local", None, "storage 'local' holds no container volumes (its content has no rootdir)"),
    ("nope", None, "storage 'nope' does not exist"),
    ("local-zfs", "nfs:2,mp=/data", "storage 'nfs' is not active on node pve1"),
])
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_new_containers_volume_on_a_storage_the_node_cannot_use_is_refused_before_any_change(
        storage, mount, message, check_mode):
    pve = FakePve()
    pve.storages = STORAGES
    params = dict(hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1", state="present", storage=storage,
                  disk_size=2)
    if mount:
        params["mounts"] = {"0": mount}
    with pytest.raises(ContainerError, match="the new container: cannot allocate its volumes on node pve1: %s.*"
                                             "nothing was changed" % re.escape(message)):
        manager(pve, check_mode=check_mode, **params).run()
    assert not [call for call in pve.calls if call[0] != "GET"] and pve.configs == {}


def test_a_new_mount_point_of_an_existing_container_on_an_unusable_storage_is_refused_before_any_change():
    pve = FakePve(running_ct())
    pve.storages = STORAGES
    before = dict(pve.configs[150])
    with pytest.raises(ContainerError, match="CT 150: cannot allocate its volumes on node pve1: storage 'nfs' is not "
                                             "active"):
        manager(pve, vmid=150, mounts={"0": "nfs:1,mp=/data"}).run()
    assert pve.puts == [] and pve.configs[150] == before


def test_a_usable_storage_costs_one_listing_and_an_existing_volume_none():
    pve = FakePve()
    pve.storages = STORAGES
    manager(pve, hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1", state="present",
            storage="local-zfs", mounts={"0": "local-zfs:1,mp=/data"}).run()
    assert pve.calls.count(("GET", "/nodes/{node}/storage")) == 1 and 100 in pve.configs
    pve = FakePve(with_mp())
    pve.storages = None  # any listing would fail the test
    manager(pve, vmid=150, mounts={"0": "local-zfs:subvol-150-disk-1,mp=/data,size=2G"}).run()


# -- bind mounts: root@pam's only, said before any change ---------------------------------------------------------

@pytest.mark.parametrize("check_mode", [True, False])
@pytest.mark.parametrize("user", ["root@pam!ci", "admin@pve"])
def test_a_bind_mount_by_anyone_but_root_at_pam_is_refused_before_any_change(user, check_mode):
    pve = FakePve()
    pve.user = user
    with pytest.raises(ContainerError, match=r"the new container: mp0 \(/srv/data\): Proxmox VE allows bind and device "
                                             r"mount points to root@pam only .* acts as %s\..*nothing was changed"
                                             % re.escape(user)):
        manager(pve, check_mode=check_mode, hostname="new", ostemplate="local:vztmpl/a.tar.zst", node="pve1",
                state="present", mounts={"0": "/srv/data,mp=/data"}).run()
    assert not [call for call in pve.calls if call[0] != "GET"] and pve.configs == {}
    pve = FakePve(running_ct())
    pve.user = user
    with pytest.raises(ContainerError, match=r"CT 150: mp1 \(/dev/net/tun\)"):
        manager(pve, check_mode=check_mode, vmid=150, mounts={"1": "/dev/net/tun,mp=/dev/net/tun"}).run()
    assert pve.puts == []


def test_root_at_pam_binds_and_a_token_keeps_a_bind_mount_it_does_not_change():
    pve = FakePve(running_ct())
    manager(pve, vmid=150, mounts={"0": "/srv/data,mp=/data"}).run()
    assert pve.configs[150]["mp0"] == "/srv/data,mp=/data"
    pve.user = "root@pam!ci"
    result = manager(pve, vmid=150, mounts={"0": "/srv/data,mp=/data"}, memory=1024).run()
    assert result["changed"] and pve.configs[150]["mp0"] == "/srv/data,mp=/data"
    assert pve.configs[150]["memory"] == "1024"


# -- mount point sizes: an existing volume is never swapped for a new, empty one -----------------------------

def with_mp(**extra):
    return running_ct(mp0="local-zfs:subvol-150-disk-1,mp=/data,size=2G", **extra)


@pytest.mark.parametrize("mounts, grow", [
    ({"0": "local-zfs:2,mp=/data"}, None),
    ({"0": "local-zfs:3,mp=/data"}, 3 * GIB),
    ({"0": "local-zfs:subvol-150-disk-1,mp=/data,size=4G"}, 4 * GIB),
    ({"0": {"volume": "local-zfs:3", "mp": "/data", "backup": 1}}, 3 * GIB),
])
def test_a_mount_point_grows_through_a_resize_and_keeps_its_volume(mounts, grow):
    pve = FakePve(with_mp())
    result = manager(pve, vmid=150, mounts=mounts).run()
    puts = [(path.rpartition("/")[2], body) for path, body in pve.puts]
    resizes = [body for name, body in puts if name == "resize"]
    assert resizes == ([{"disk": "mp0", "size": pveconfig.format_size(grow)}] if grow else [])
    for name, body in puts:  # the volume is never replaced by an allocation
        assert name != "config" or "local-zfs:subvol-150-disk-1" in body.get("mp0", "local-zfs:subvol-150-disk-1")
    assert ("resized mp0" in result["actions"]) == bool(grow)


@pytest.mark.parametrize("mounts, message", [
    ({"0": "local-zfs:1,mp=/data"}, "mp0 is 2G and 1G was asked: Proxmox VE cannot shrink a volume"),
    ({"0": "local:2,mp=/data"}, "mp0 is the volume local-zfs:subvol-150-disk-1 on local-zfs; .* asks for one on local"),
])
def test_a_mount_point_is_never_shrunk_or_swapped_for_a_new_volume(mounts, message):
    pve = FakePve(with_mp())
    with pytest.raises(ContainerError, match=message):
        manager(pve, vmid=150, mounts=mounts).run()
    assert pve.puts == []
