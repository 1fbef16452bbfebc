"""The Proxmox VE API test double itself, over real HTTPS, with proxmoxer and raw requests."""

import os
import subprocess
import threading
import time

import pytest
import requests
import urllib3

from pve_double.server import DEFAULT_PASSWORD, Double

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


@pytest.fixture(params=["9.1", "8"])
def double(request, tmp_path):
    instance = Double(str(tmp_path / "pve"), mode=request.param).start()
    instance.add_busybox_template("test.tar.zst", tmp_path, init=Double.STUBBORN_INIT,
                                  files={"bin/hello": "#!/bin/sh\necho hello\n", "dev/shm/.keep": ""})
    yield instance
    instance.stop()


@pytest.fixture
def api(double):
    from proxmoxer import ProxmoxAPI
    return ProxmoxAPI("127.0.0.1", port=double.port, user="root@pam", password=DEFAULT_PASSWORD, verify_ssl=False)


def wait(api, upid, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = api.nodes("pve1").tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise AssertionError("task %s still running" % upid)


def login(double):
    resp = requests.post(double.url + "/access/ticket", data={"username": "root@pam", "password": DEFAULT_PASSWORD},
                         verify=double.cert)
    data = resp.json()["data"]
    return {"PVEAuthCookie": data["ticket"]}, data["CSRFPreventionToken"]


def test_auth_ticket_csrf_and_tokens(double):
    bad = requests.post(double.url + "/access/ticket", data={"username": "root@pam", "password": "nope"},
                        verify=double.cert)
    assert bad.status_code == 401
    assert requests.get(double.url + "/nodes", verify=double.cert).status_code == 401
    cookies, csrf = login(double)
    assert requests.get(double.url + "/nodes", cookies=cookies, verify=double.cert).json()["data"][0]["node"] == "pve1"
    put = requests.put(double.url + "/nodes/pve1/lxc/100/config", data={"memory": 256}, cookies=cookies,
                       verify=double.cert)
    assert put.status_code == 401 and "csrf" in put.reason.lower()
    secret = double.add_token("root@pam!ci")
    readonly = double.add_token("root@pam!ro", readonly=True)
    ok = requests.get(double.url + "/version", headers={"Authorization": "PVEAPIToken=root@pam!ci=%s" % secret},
                      verify=double.cert)
    assert ok.status_code == 200
    denied = requests.post(double.url + "/nodes/pve1/lxc", data={"vmid": 150, "ostemplate": "local:vztmpl/x.tar"},
                           headers={"Authorization": "PVEAPIToken=root@pam!ro=%s" % readonly}, verify=double.cert)
    assert denied.status_code == 403
    wrong = requests.get(double.url + "/version", headers={"Authorization": "PVEAPIToken=root@pam!ci=wrong"},
                         verify=double.cert)
    assert wrong.status_code == 401


def test_schema_rejections_over_http(double):
    cookies, csrf = login(double)
    headers = {"CSRFPreventionToken": csrf}
    resp = requests.post(double.url + "/nodes/pve1/lxc", cookies=cookies, headers=headers, verify=double.cert,
                         data={"vmid": "abc", "ostemplate": "local:vztmpl/test.tar.zst", "cmode": "serial",
                               "net0": "name=eth0,colour=blue"})
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert set(errors) == {"vmid", "cmode", "net0"}
    entry = requests.post(double.url + "/nodes/pve1/lxc", cookies=cookies, headers=headers, verify=double.cert,
                          data={"vmid": 150, "ostemplate": "local:vztmpl/test.tar.zst", "entrypoint": "/bin/hello"})
    if double.schema.mode == "8":
        assert entry.status_code == 400 and "entrypoint" in entry.json()["errors"]
    else:
        assert entry.status_code == 200 and entry.json()["data"].startswith("UPID:pve1:")
    unknown = requests.get(double.url + "/nodes/pve1/nonsense", cookies=cookies, verify=double.cert)
    assert unknown.status_code == 501


def test_create_configure_delete_cycle(api, double):
    assert api.cluster.nextid.get() == 100
    upid = api.nodes("pve1").lxc.post(vmid=101, ostemplate="local:vztmpl/test.tar.zst", hostname="web1",
                                      memory=256, net0="name=eth0,bridge=vmbr0,ip=dhcp", rootfs="local:0")
    assert upid.startswith("UPID:pve1:") and ":vzcreate:101:root@pam:" in upid
    assert wait(api, upid)["exitstatus"] == "OK"
    cfg = api.nodes("pve1").lxc(101).config.get()
    rootfs = double.backend.volume_path(cfg["rootfs"])
    assert os.path.isfile(os.path.join(rootfs, "bin", "hello"))
    assert os.path.isdir(os.path.join(rootfs, "dev")) and os.listdir(os.path.join(rootfs, "dev")) == []
    with pytest.raises(Exception) as err:
        api.cluster.nextid.get(vmid=101)
    assert "already exists" in str(err.value)
    api.nodes("pve1").lxc(101).config.put(memory=512, delete="net0", digest=cfg["digest"])
    after = api.nodes("pve1").lxc(101).config.get()
    assert after["memory"] == 512 and "net0" not in after  # typed, as PVE answers
    with pytest.raises(Exception) as err:
        api.nodes("pve1").lxc(101).config.put(memory=1024, digest=cfg["digest"])
    assert "detected modified configuration" in str(err.value)
    assert [e["vmid"] for e in api.cluster.resources.get(type="vm")] == [101]
    assert wait(api, api.nodes("pve1").lxc(101).delete())["exitstatus"] == "OK"
    assert api.nodes("pve1").lxc.get() == []
    assert os.listdir(os.path.join(double.backend.storages["local"]["path"], "images")) == []


def test_injected_task_failure_then_recovery_and_locks(api, double):
    double.backend.tasks.inject("vzcreate", "unable to create CT 120 - injected storage error")
    failed = wait(api, api.nodes("pve1").lxc.post(vmid=120, ostemplate="local:vztmpl/test.tar.zst"))
    assert failed["exitstatus"] == "unable to create CT 120 - injected storage error"
    assert api.nodes("pve1").lxc.get() == []
    double.backend.tasks.delay = 1.0
    upid = api.nodes("pve1").lxc.post(vmid=120, ostemplate="local:vztmpl/test.tar.zst")
    assert api.nodes("pve1").tasks(upid).status.get()["status"] == "running"
    with pytest.raises(Exception) as err:
        api.nodes("pve1").lxc(120).config.put(memory=256)
    assert "CT 120 is locked (create)" in str(err.value)
    with pytest.raises(Exception) as err:
        api.nodes("pve1").lxc.post(vmid=120, ostemplate="local:vztmpl/test.tar.zst")
    assert "CT 120 already exists" in str(err.value)
    double.backend.tasks.delay = 0
    assert wait(api, upid)["exitstatus"] == "OK"
    missing = wait(api, api.nodes("pve1").lxc.post(vmid=121, ostemplate="local:vztmpl/none.tar.zst"))
    assert "does not exist" in missing["exitstatus"]
    log = api.nodes("pve1").tasks(missing["upid"]).log.get()
    assert log[-1]["t"].startswith("TASK ERROR:")


def test_transport_faults(api, double):
    double.fail_next(500, "injected")
    with pytest.raises(Exception) as err:
        api.version.get()
    assert "500" in str(err.value)
    assert api.version.get()["release"] in ("9.1", "8.1")
    double.drop_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        api.version.get()
    assert api.nodes.get()[0]["node"] == "pve1"


def test_start_shutdown_delete_with_real_lxc(api, double, bed):
    """create -> start (the process really runs) -> shutdown -> delete leaves nothing behind."""
    params = {"vmid": 130, "ostemplate": "local:vztmpl/test.tar.zst", "hostname": "lxc1", "rootfs": "local:0"}
    if double.schema.mode != "8":
        params["entrypoint"] = "/bin/sleep 301"
        params["env"] = "GREETING=hello world\0MODE=test"
    assert wait(api, api.nodes("pve1").lxc.post(**params))["exitstatus"] == "OK"
    assert wait(api, api.nodes("pve1").lxc(130).status.start.post())["exitstatus"] == "OK"
    status = api.nodes("pve1").lxc(130).status.current.get()
    assert status["status"] == "running"
    state, pid = double.backend.lxc_state(double.backend.containers[130])
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = handle.read().split(b"\0")[:-1]
    if double.schema.mode == "8":
        assert argv == [b"/bin/sleep", b"300"]  # /sbin/init exec'd it
    else:
        assert argv == [b"/bin/sleep", b"301"]
        with open("/proc/%d/environ" % pid, "rb") as handle:
            environ = handle.read().split(b"\0")
        assert b"GREETING=hello world" in environ and b"TERM=linux" in environ  # PVE/LXC.pm update_lxc_config
    with pytest.raises(Exception) as err:
        api.nodes("pve1").lxc(130).delete()
    assert "unable to destroy CT 130 - container is running" in str(err.value)
    assert wait(api, api.nodes("pve1").lxc(130).status.reboot.post(timeout=1))["exitstatus"] == "OK"
    state, new_pid = double.backend.lxc_state(double.backend.containers[130])
    assert state == "running" and new_pid != pid
    # sleep as PID 1 has no handler for the halt signal: a shutdown times out...
    timed_out = wait(api, api.nodes("pve1").lxc(130).status.shutdown.post(timeout=1))
    assert timed_out["exitstatus"] == "container did not stop"  # PVE::LXC::vm_stop
    assert api.nodes("pve1").lxc(130).status.current.get()["status"] == "running"
    # ...and forceStop stops it
    assert wait(api, api.nodes("pve1").lxc(130).status.shutdown.post(timeout=1, forceStop=1))["exitstatus"] == "OK"
    assert api.nodes("pve1").lxc(130).status.current.get()["status"] == "stopped"
    assert wait(api, api.nodes("pve1").lxc(130).delete())["exitstatus"] == "OK"
    assert os.listdir(double.backend.lxc_path) == []
    assert os.listdir(os.path.join(double.backend.storages["local"]["path"], "images")) == []


def test_community_proxmox_module_drives_the_double(double, bed, tmp_path):
    """A peer's unmodified module (community.proxmox.proxmox, from the ansible wheel) works against the double.

    It reads ``name`` of /cluster/resources entries, which a real node (and the double) leaves out until
    pvestatd's next broadcast: right after its create it fails with "An error occurred: 'name'". So the
    play waits out the broadcast (made 0.5 s here) between the create and the next task, as it must on a
    real node (10 s).
    """
    from lxcri_testbed.bed import peer_collections
    collections = peer_collections()
    double.backend.stop_pvestatd()
    double.backend.resources_lag = 0.5
    double.backend.start_pvestatd()
    double.add_busybox_template("init.tar.zst", tmp_path)  # an init that honours the halt signal, as a real one does
    play = tmp_path / "peer.yml"
    play.write_text("""- hosts: localhost
  gather_facts: false
  module_defaults:
    community.proxmox.proxmox:
      api_host: 127.0.0.1
      api_port: %d
      api_user: root@pam
      api_password: %s
      validate_certs: false
      node: pve1
  tasks:
    - community.proxmox.proxmox: {vmid: 140, hostname: peer, ostemplate: "local:vztmpl/init.tar.zst", disk: "local:0"}
    - ansible.builtin.pause: {seconds: 1}
    - community.proxmox.proxmox: {vmid: 140, state: started}
    - community.proxmox.proxmox: {vmid: 140, state: stopped}
    - community.proxmox.proxmox: {vmid: 140, state: absent}
""" % (double.port, DEFAULT_PASSWORD))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(__import__("sys").executable), "ansible-playbook"),
                           str(play)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ok=5    changed=4" in proc.stdout
    started = [r for r in double.requests if r[1].endswith("/lxc/140/status/start")]
    assert started, "the peer never asked to start the container"
    assert double.backend.containers == {}
    assert os.listdir(double.backend.lxc_path) == []


@pytest.fixture
def zdouble(tmp_path, zfs_dataset):
    instance = Double(str(tmp_path / "pvez"), mode="9.1", zfs_root=zfs_dataset + "/pve").start()
    rootfs = tmp_path / "zrootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "marker").write_text("v1\n")
    template = os.path.join(instance.backend.storages["local"]["path"], "template", "cache", "z.tar.zst")
    subprocess.run(["tar", "--zstd", "-cf", template, "-C", str(rootfs), "."], check=True)
    yield instance
    instance.stop()


def zfs_names(root):
    out = subprocess.run(["zfs", "list", "-H", "-t", "all", "-o", "name", "-r", root], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.split()
    return [n[len(root) + 1:] for n in out if n != root]


def test_zfspool_template_clones_and_snapshots(zdouble, zfs_dataset):
    from proxmoxer import ProxmoxAPI
    api = ProxmoxAPI("127.0.0.1", port=zdouble.port, user="root@pam", password=DEFAULT_PASSWORD, verify_ssl=False)
    node = api.nodes("pve1")
    pool = zfs_dataset + "/pve"
    net0 = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
    assert wait(api, node.lxc.post(vmid=200, ostemplate="local:vztmpl/z.tar.zst", rootfs="local-zfs:1", net0=net0))[
        "exitstatus"] == "OK"
    assert node.lxc(200).config.get()["rootfs"] == "local-zfs:subvol-200-disk-0,size=1G"
    assert zfs_names(pool) == ["subvol-200-disk-0"]
    # snapshots are ZFS snapshots; rollback only to the newest
    assert wait(api, node.lxc(200).snapshot.post(snapname="s1"))["exitstatus"] == "OK"
    path = zdouble.backend.volume_path("local-zfs:subvol-200-disk-0")
    with open(os.path.join(path, "etc", "marker"), "w") as handle:
        handle.write("v2\n")
    assert wait(api, node.lxc(200).snapshot.post(snapname="s2"))["exitstatus"] == "OK"
    assert [s["name"] for s in node.lxc(200).snapshot.get()] == ["s1", "s2", "current"]
    assert wait(api, node.lxc(200).snapshot("s1").rollback.post())["exitstatus"] == \
        "can't rollback, 's1' is not most recent snapshot on 'subvol-200-disk-0'"
    with pytest.raises(Exception) as err:
        node.lxc(200).template.post()
    assert "because CT contains snapshots" in str(err.value)
    assert wait(api, node.lxc(200).snapshot("s2").delete())["exitstatus"] == "OK"
    assert wait(api, node.lxc(200).snapshot("s1").rollback.post())["exitstatus"] == "OK"
    with open(os.path.join(path, "etc", "marker")) as handle:
        assert handle.read() == "v1\n"
    assert wait(api, node.lxc(200).snapshot("s1").delete())["exitstatus"] == "OK"
    # template: basevol + @__base__; a linked clone is a zfs clone; a non-template cannot be linked
    assert node.lxc(200).template.post() is None  # null: its vztemplate worker runs on; the config tells the end
    for dummy in range(100):
        if node.lxc(200).config.get().get("template") == 1:
            break
        time.sleep(0.1)
    with pytest.raises(Exception) as err:
        node.lxc(200).template.post()
    assert "you can't convert a template to a template" in str(err.value)
    assert zfs_names(pool) == ["basevol-200-disk-0", "basevol-200-disk-0@__base__"]
    assert wait(api, node.lxc(200).clone.post(newid=201, hostname="linked"))["exitstatus"] == "OK"
    origin = subprocess.run(["zfs", "get", "-H", "-o", "value", "origin", pool + "/subvol-201-disk-0"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert origin == pool + "/basevol-200-disk-0@__base__"
    # ZFSPoolPlugin clone_image names it "<base>/<new>"; clone_vm keeps size= and gives every net a new MAC
    linked = node.lxc(201).config.get()
    assert linked["rootfs"] == "local-zfs:basevol-200-disk-0/subvol-201-disk-0,size=1G"
    assert linked["net0"].startswith("name=eth0,bridge=vmbr0,hwaddr=") and "BC:24:11:00:00:01" not in linked["net0"]
    with open(os.path.join(zdouble.backend.volume_path(linked["rootfs"]), "etc", "marker")) as handle:
        assert handle.read() == "v1\n"
    # clone_vm holds a 'disk' lock on the source for the whole clone: a second clone meanwhile is refused
    gate, real_zfs = threading.Event(), zdouble.backend._zfs  # pylint: disable=protected-access
    zdouble.backend._zfs = lambda *args: (gate.wait(20) if args[:1] == ("clone",) else None, real_zfs(*args))[1]
    try:
        upid = node.lxc(200).clone.post(newid=205, hostname="first")  # its worker waits at the zfs clone
        assert node.lxc(200).config.get()["lock"] == "disk"
        with pytest.raises(Exception) as err:
            node.lxc(200).clone.post(newid=206, hostname="second")
        assert "CT is locked (disk)" in str(err.value)
    finally:
        gate.set()
        zdouble.backend._zfs = real_zfs
    assert wait(api, upid)["exitstatus"] == "OK" and "lock" not in node.lxc(200).config.get()
    assert wait(api, node.lxc(205).delete())["exitstatus"] == "OK"
    assert wait(api, node.lxc(200).clone.post(newid=202, full=1, storage="local"))["exitstatus"] == "OK"
    full_root = zdouble.backend.volume_path(node.lxc(202).config.get()["rootfs"])
    with open(os.path.join(full_root, "etc", "marker")) as handle:
        assert handle.read() == "v1\n"
    with pytest.raises(Exception) as err:
        node.lxc(201).clone.post(newid=203, full=0)
    assert "must be set" in str(err.value)
    with pytest.raises(Exception) as err:
        node.lxc(200).clone.post(newid=204, full=0, storage="local")
    assert "only allowed for full clones" in str(err.value)
    for vmid in (202, 201, 200):
        assert wait(api, node.lxc(vmid).delete())["exitstatus"] == "OK"
    assert zfs_names(pool) == []
    assert node.lxc.get() == []


def test_upload_with_checksum(api, double, tmp_path):
    import hashlib
    data = os.urandom(4096)
    path = tmp_path / "upload.tar.zst"
    path.write_bytes(data)
    storage = api.nodes("pve1").storage("local")
    with open(str(path), "rb") as handle:
        upid = storage.upload.post(content="vztmpl", filename=handle, checksum=hashlib.sha256(data).hexdigest(),
                                   **{"checksum-algorithm": "sha256"})
    assert wait(api, upid)["exitstatus"] == "OK"
    volids = [c["volid"] for c in storage.content.get(content="vztmpl")]
    assert "local:vztmpl/upload.tar.zst" in volids
    with open(str(path), "rb") as handle:
        bad = storage.upload.post(content="vztmpl", filename=handle, checksum="0" * 64,
                                  **{"checksum-algorithm": "sha256"})
    assert wait(api, bad)["exitstatus"].startswith("checksum mismatch")
    with pytest.raises(Exception) as err:
        with open(str(path), "rb") as handle:
            storage.upload.post(content="vztmpl", filename=handle, checksum="0" * 64)
    assert "checksum-algorithm" in str(err.value)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(Exception) as err:
        with open(str(tmp_path / "notes.txt"), "rb") as handle:
            storage.upload.post(content="vztmpl", filename=handle)
    assert "wrong file extension" in str(err.value)
    from urllib.parse import quote
    assert wait(api, storage.content(quote("local:vztmpl/upload.tar.zst", safe="")).delete())["exitstatus"] == "OK"
    assert "local:vztmpl/upload.tar.zst" not in [c["volid"] for c in storage.content.get()]
    leftovers = [n for n in os.listdir(double.backend.root) if n.startswith("pveupload-")]
    assert leftovers == []


def test_nextid_race_is_reproducible(api, double):
    """Two creators asking nextid before either creates get the same id, as on PVE; the second loses."""
    first, second = api.cluster.nextid.get(), api.cluster.nextid.get()
    assert first == second
    assert wait(api, api.nodes("pve1").lxc.post(vmid=first, ostemplate="local:vztmpl/test.tar.zst"))[
        "exitstatus"] == "OK"
    with pytest.raises(Exception) as err:
        api.nodes("pve1").lxc.post(vmid=second, ostemplate="local:vztmpl/test.tar.zst")
    assert "CT %s already exists" % second in str(err.value)
    assert api.cluster.nextid.get() == first + 1
    assert {"key": "ostype", "value": "unmanaged"} in api.nodes("pve1").lxc(first).pending.get()


def test_cli_prints_url_node_and_storages(tmp_path, bed):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([__import__("sys").executable, "-m", "pve_double", "--port", str(port), "--dir",
                             str(tmp_path / "cli"), "--zfs-root", bed["zfs"]["pool"] + "/t-cli-" + str(port)],
                            cwd=tests_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.strip() == "PVE API test double (mode 9.1) at https://127.0.0.1:%d/api2/json" % port
        assert "node: pve1" in second and "storages: local (dir), local-zfs (zfspool)" in second
        resp = requests.get("https://127.0.0.1:%d/api2/json/version" % port, verify=False)
        assert resp.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        from lxcri_testbed.bed import destroy_tree
        destroy_tree(bed["zfs"]["pool"] + "/t-cli-" + str(port))


def test_9_1_imports_an_oci_archive_and_runs_its_entrypoint(tmp_path, registry_image, bed):
    from proxmoxer import ProxmoxAPI
    double = Double(str(tmp_path / "pveoci"), mode="9.1").start()
    try:
        api = ProxmoxAPI("127.0.0.1", port=double.port, user="root@pam", password=DEFAULT_PASSWORD,
                         verify_ssl=False)
        node = api.nodes("pve1")
        puller = node.storage("local")("oci-registry-pull")
        # pve-storage oci_registry_pull appends ".tar" to the (normalised) filename, always
        pulled = wait(api, puller.post(reference=registry_image.refs["open"], filename="pulled"))
        assert pulled["exitstatus"] == "OK"
        volids = [c["volid"] for c in node.storage("local").content.get(content="vztmpl")]
        assert "local:vztmpl/pulled.tar" in volids
        missing = wait(api, puller.post(reference=registry_image.refs["open"].rsplit(":", 1)[0] + ":nope"))
        assert missing["exitstatus"].startswith("failed to pull")
        assert wait(api, node.lxc.post(vmid=150, ostemplate="local:vztmpl/pulled.tar", env="IGNORED=1"))[
            "exitstatus"] == "OK"
        cfg = node.lxc(150).config.get()
        assert cfg["entrypoint"] == "/bin/sleep 3600"
        assert cfg["env"].split("\0") == registry_image.config["env"]  # the image's Env overwrites
        raw = dict(cfg["lxc"])  # raw lxc.* lines come as one list, as PVE answers
        assert raw["lxc.init.cwd"] == "/app" and raw["lxc.init.uid"] == "1000"
        rootfs = double.backend.volume_path(cfg["rootfs"])
        assert not os.path.exists(os.path.join(rootfs, "etc", "obsolete.conf"))  # the whiteout applied
        assert wait(api, node.lxc(150).status.start.post())["exitstatus"] == "OK"
        state, pid = double.backend.lxc_state(double.backend.containers[150])
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            assert handle.read().split(b"\0")[:-1] == [b"/bin/sleep", b"3600"]
        assert os.readlink("/proc/%d/cwd" % pid) == "/app"
        with open("/proc/%d/status" % pid) as handle:
            assert "Uid:\t1000" in handle.read()
        assert wait(api, node.lxc(150).status.stop.post())["exitstatus"] == "OK"
        assert wait(api, node.lxc(150).delete())["exitstatus"] == "OK"
    finally:
        double.stop()


def test_detached_double_stops_and_leaves_nothing(tmp_path, bed):
    """--detach for molecule and make demo: it answers once the command returns; --stop removes its
    containers, datasets and directory; --fresh clears a killed instance's leftovers."""
    import signal
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    directory, pidfile = str(tmp_path / "detached"), str(tmp_path / "double.pid")
    zfs_root = "%s/t-detached-%d" % (bed["zfs"]["pool"], port)
    argv = [__import__("sys").executable, "-m", "pve_double", "--port", str(port), "--dir", directory,
            "--zfs-root", zfs_root, "--pidfile", pidfile]

    def datasets():
        return subprocess.run(["zfs", "list", "-H", "-o", "name"], stdout=subprocess.PIPE, universal_newlines=True,
                              check=True).stdout.split()
    started = subprocess.run(argv + ["--detach", "--fresh"], cwd=tests_dir, stdout=subprocess.PIPE,
                             universal_newlines=True, check=True)
    assert "at https://127.0.0.1:%d/api2/json" % port in started.stdout
    assert requests.get("https://127.0.0.1:%d/api2/json/version" % port, verify=False).status_code == 401
    assert zfs_root in datasets()
    again = subprocess.run(argv + ["--detach"], cwd=tests_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, check=False)
    assert again.returncode != 0 and "already running" in again.stdout
    # a killed instance leaves its state behind; --fresh removes it before starting
    with open(pidfile) as handle:
        os.kill(int(handle.read()), signal.SIGKILL)
    subprocess.run(["zfs", "create", zfs_root + "/subvol-100-disk-0"], check=True)
    subprocess.run(argv + ["--detach", "--fresh"], cwd=tests_dir, stdout=subprocess.PIPE, check=True)
    assert zfs_root + "/subvol-100-disk-0" not in datasets()
    stopped = subprocess.run(argv + ["--stop"], cwd=tests_dir, stdout=subprocess.PIPE, universal_newlines=True,
                             check=True)
    assert "removed" in stopped.stdout
    assert not os.path.exists(directory) and not os.path.exists(pidfile) and zfs_root not in datasets()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("https://127.0.0.1:%d/api2/json/version" % port, verify=False, timeout=5)


def test_node_storages_and_id_range_are_configurable(tmp_path):
    from pve_double.server import Double as Configured
    extra = str(tmp_path / "fast")
    double = Configured(str(tmp_path / "cfg"), node="edge7", vmid_range=(5000, 5001),
                        dir_storages={"fast": extra}).start()
    try:
        backend = double.backend
        assert backend.nodes({})[0]["node"] == "edge7"
        assert [s["storage"] for s in backend.storage_list({"node": "edge7"})] == ["fast", "local"]
        assert os.path.isdir(os.path.join(extra, "template", "cache"))
        assert backend.nextid({}) == 5000
        backend.containers[5000] = backend.containers[5001] = object()
        with pytest.raises(Exception) as err:
            backend.nextid({})
        assert "unable to get any free VMID in range [5000, 5001]" in str(err.value)
    finally:
        double.stop()
