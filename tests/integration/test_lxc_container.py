"""lxcri.proxmox.lxc_container through real ansible-playbook runs against the Proxmox VE API double."""

import json
import os
import subprocess
import textwrap
import time

import pytest

from lxcri_testbed import TEST_REPO_NS
from lxcri_testbed.ansible import write_pve_play
from lxcri_testbed.oci_build import Layer, write_image
from pve_double.server import Double

pytestmark = pytest.mark.integration

NODE = "pve1"


@pytest.fixture(name="double")
def busybox(busybox_double):
    return busybox_double


def play(tmp_path, double, name, tasks):
    return write_pve_play(tmp_path, double, name, tasks)


def state_of(double):
    return double.state()


def running(double, vmid):
    return double.running(vmid)


@pytest.mark.slow(45)
def test_lifecycle_idempotence_check_mode_and_diff(installed_collection, double, tmp_path):
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 120
            hostname: web1
            ostemplate: local:vztmpl/base.tar.zst
            memory: 256
            cores: 1
            tags: [web, blue]
            net:
              0: {name: eth0, bridge: vmbr0, ip: dhcp}
            password: not-in-any-log-please
            state: started
          register: ct
        """)
    check = installed_collection.playbook(create, check=True, diff=True)
    assert check.rc == 0, check
    assert check.task_results()[0]["changed"] and double.backend.containers == {}

    first = installed_collection.playbook(create, diff=True, verbosity=3)
    assert first.rc == 0, first
    res = first.task_results()[0]
    assert res["changed"] and res["vmid"] == 120 and res["status"] == "running" and running(double, 120)
    assert res["actions"] == ["created", "started"]
    assert "not-in-any-log-please" not in first.stdout + first.stderr

    second = installed_collection.playbook(create, diff=True)
    assert second.rc == 0, second
    assert second.stats["localhost"]["changed"] == 0, second.task_results()

    change = play(tmp_path, double, "change.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: web1
            memory: 512
            tags: [blue, web]
            state: started
        """)
    before = state_of(double)
    checked = installed_collection.playbook(change, check=True, diff=True)
    assert checked.rc == 0 and checked.task_results()[0]["changed"], checked
    assert state_of(double) == before  # check mode left the double untouched
    diff = checked.task_results()[0]["diff"]
    assert diff["before"]["memory"] == 256 and diff["after"]["memory"] in ("512", 512)
    writes_before = len([r for r in double.requests if r[0] == "PUT"])
    applied = installed_collection.playbook(change)
    assert applied.rc == 0 and applied.task_results()[0]["changed"], applied
    assert double.backend.containers[120].config["memory"] == "512"
    assert len([r for r in double.requests if r[0] == "PUT"]) == writes_before + 1  # one PUT, only memory

    for state, check_state in (("stopped", False), ("restarted", True), ("stopped", False), ("template", False)):
        step = play(tmp_path, double, "s-%s.yml" % state, """\
            - lxcri.proxmox.lxc_container:
                vmid: 120
                state: %s
                # sleep as PID 1 ignores SIGPWR: the graceful shutdown times out, then the stop
                shutdown_timeout: 2
                force_stop: true
            """ % state)
        run = installed_collection.playbook(step)
        assert run.rc == 0 and run.task_results()[0]["changed"], run
        assert running(double, 120) is check_state, state
        again = installed_collection.playbook(step)
        assert again.rc == 0, again
        if state != "restarted":
            assert again.stats["localhost"]["changed"] == 0, (state, again.task_results())
    assert double.backend.containers[120].config.get("template") == "1"

    gone = play(tmp_path, double, "absent.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 120
            state: absent
        """)
    run = installed_collection.playbook(gone)
    assert run.rc == 0 and run.task_results()[0]["changed"], run
    assert 120 not in double.backend.containers
    assert installed_collection.playbook(gone).stats["localhost"]["changed"] == 0


def test_failed_create_fails_fast_with_the_log_tail(installed_collection, double, tmp_path):
    double.backend.tasks.inject("vzcreate", "unable to create CT 130 - injected disk failure")
    create = play(tmp_path, double, "fail.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 130
            hostname: broken
            ostemplate: local:vztmpl/base.tar.zst
        """)
    run = installed_collection.playbook(create)
    assert run.rc != 0
    assert "injected disk failure" in run.task_results()[0]["msg"]


def test_hostname_must_be_unique_and_running_containers_need_force(installed_collection, double, tmp_path):
    for vmid in (140, 141):
        make = play(tmp_path, double, "m%d.yml" % vmid, """\
            - lxcri.proxmox.lxc_container:
                vmid: %d
                hostname: twin
                ostemplate: local:vztmpl/base.tar.zst
                state: started
            """ % vmid)
        assert installed_collection.playbook(make).rc == 0
    ambiguous = play(tmp_path, double, "amb.yml", """\
        - lxcri.proxmox.lxc_container:
            hostname: twin
            state: absent
        """)
    run = installed_collection.playbook(ambiguous)
    assert run.rc != 0 and "ambiguous" in run.task_results()[0]["msg"]
    refuse = play(tmp_path, double, "refuse.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 140
            state: absent
        """)
    run = installed_collection.playbook(refuse)
    assert run.rc != 0 and "force" in run.task_results()[0]["msg"] and 140 in double.backend.containers
    forced = play(tmp_path, double, "forced.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 140
            state: absent
            force: true
        """)
    run = installed_collection.playbook(forced)
    assert run.rc == 0 and 140 not in double.backend.containers, run


# ---------------------------------------------------------------------------
# end to end: image in the local registry -> oci_template -> lxc_container -> the real init

E2E_ARGV = ["/bin/sh", "-c", "sleep 3600; exit 0", "app", "two words", "it's", 'say "hi"']


@pytest.fixture(params=["9.1", "8"])
def zdouble(request, tmp_path, zfs_dataset, bed):
    instance = Double(str(tmp_path / "pvez"), mode=request.param, zfs_root=zfs_dataset + "/pve").start()
    yield instance
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
    instance.stop()


def push_e2e_image(tmp_path, bed):
    from lxcri_testbed.oci_build import with_setpriv
    layer = with_setpriv(Layer().dir("bin").dir("tmp", mode=0o1777).busybox(("sh", "sleep")).dir("etc")
                         .file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n")
                         .file("etc/group", "root:x:0:\napp:x:1000:\n").dir("sbin"))
    layout = str(tmp_path / "layout")
    write_image(layout, "1", [layer], {"Entrypoint": E2E_ARGV[:3], "Cmd": E2E_ARGV[3:],
                                       "Env": ["PATH=/bin", "GREETING=hello world"], "WorkingDir": "/srv/app",
                                       "User": "app"})
    ref = "%s/%s/e2e:1" % (bed["registry"]["host"], TEST_REPO_NS)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:1" % layout, "docker://" + ref],
                   check=True)
    return ref


@pytest.fixture(params=[("9.1", "oci-archive"), ("9.1", "vztmpl"), ("8", "vztmpl")], ids="-".join)
def e2e_double(request, tmp_path, zfs_dataset, bed):
    """(double, template format): every template path of lxc_container on the node's own LXC."""
    mode, template_format = request.param
    instance = Double(str(tmp_path / "pvez"), mode=mode, zfs_root=zfs_dataset + "/pve").start()
    yield instance, template_format
    for vmid in list(instance.backend.containers):
        instance.backend._lxc(instance.backend.containers[vmid], "lxc-stop", "-k")
    instance.stop()


def test_end_to_end_registry_image_runs_its_exact_entrypoint(installed_collection, e2e_double, tmp_path, bed):
    zdouble, template_format = e2e_double
    ref = push_e2e_image(tmp_path, bed)
    nine = zdouble.backend.mode.startswith("9")
    # 9.1: an OCI archive (Proxmox's import sets cwd/uid/gid), or a vztmpl; entrypoint/env set by lxc_container.
    # 8: a vztmpl whose /sbin/init is the generated init. The double runs lxc-pve 6.0.5 (9.1) / LXC 5.0.2 (8).
    # (the image's USER and WORKDIR need the import or the generated init: a plain 9.1 template cannot carry them)
    template_args = "format: oci-archive" if template_format == "oci-archive" else \
        "format: vztmpl\n            init_wrapper: always"
    wrapped = template_format == "vztmpl"
    deploy = play(tmp_path, zdouble, "deploy.yml", """\
        - lxcri.proxmox.oci_template:
            image: %s
            registry_tls_verify: false
            storage: local
            cache_dir: %s
            %s
          register: tmpl
        - lxcri.proxmox.lxc_container:
            vmid: 200
            hostname: e2e
            oci: "{{ tmpl }}"
            storage: local-zfs
            disk_size: 1
            state: started
          register: ct
        """ % (ref, tmp_path / "cache", template_args))
    run = installed_collection.playbook(deploy)
    assert run.rc == 0, run
    tmpl, ct = run.task_results()
    # lxc_version auto: the node's LXC (the OCI import's 6.0 on 9.1), never the controller's 5.0.2; so on 9.1
    # the quoted words need no wrapper
    assert tmpl["lxc_version"] == ("6.0" if template_format == "oci-archive" else "6.0.5" if nine else "5.0.2")
    assert (tmpl["runtime"]["wrapper"] or {}).get("kind") == ("init" if wrapped else "exec")  # exec: "it's"
    assert ct["status"] == "running" and ct["actions"] == ["created", "started"]
    assert ct["config"].get("entrypoint") == (tmpl["runtime"]["pve_entrypoint"] if nine else None)
    check_app(zdouble, 200, not wrapped)
    assert installed_collection.playbook(deploy).stats["localhost"]["changed"] == 0  # idempotent
    check_app(zdouble, 200, not wrapped)

    # again through a linked clone of a template on ZFS
    clone = play(tmp_path, zdouble, "clone.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 200
            state: template
            force: true
        - lxcri.proxmox.lxc_container:
            vmid: 201
            hostname: e2e-clone
            clone: "200"
            state: started
          register: cloned
        """)
    run = installed_collection.playbook(clone)
    assert run.rc == 0, [r.get("msg") for r in run.task_results()]
    assert run.task_results()[1]["actions"][:1] == ["cloned"]
    pool = zdouble.backend.storages["local-zfs"]["pool"]
    origin = subprocess.run(["zfs", "get", "-H", "-o", "value", "origin", pool + "/subvol-201-disk-0"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert origin == pool + "/basevol-200-disk-0@__base__"  # a linked clone
    check_app(zdouble, 201, not wrapped)

    stop_and_delete = play(tmp_path, zdouble, "teardown.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 201
            state: stopped
            shutdown_timeout: 5
            force_stop: true
        - lxcri.proxmox.lxc_container:
            vmid: 201
            state: absent
        - lxcri.proxmox.lxc_container:
            vmid: 200
            state: absent
        """)
    run = installed_collection.playbook(stop_and_delete)
    assert run.rc == 0, run
    assert 200 not in zdouble.backend.containers and 201 not in zdouble.backend.containers
    pool = zdouble.backend.storages["local-zfs"]["pool"]
    leftovers = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], stdout=subprocess.PIPE,
                               universal_newlines=True, check=True).stdout.split()
    assert [n for n in leftovers if "-200-" in n or "-201-" in n] == []
    assert not os.path.exists(os.path.join(zdouble.backend.lxc_path, "200"))


def check_app(double, vmid, nine):
    """The container's application has exactly the image's argv, env, cwd and uid (as init with ``nine``, as
    init's child under the generated /sbin/init otherwise)."""
    import time
    from lxcri_testbed.lxc import read_init
    state, pid = double.backend.lxc_state(double.backend.containers[vmid])
    assert state == "running"
    found = None
    for dummy in range(100):
        if nine:
            candidates = [read_init(pid)]
        else:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
                candidates = [read_init(int(p)) for p in handle.read().split()]
        found = [c for c in candidates if c.argv == E2E_ARGV]
        if found:
            break
        time.sleep(0.1)  # the exec wrapper or the init's sh step, just before its exec
    assert found, candidates
    app = found[0]
    assert app.env["GREETING"] == "hello world" and app.env["PATH"] == "/bin"
    assert app.cwd == "/srv/app" and (app.uid, app.gid) == (1000, 1000)


def test_doc_renders(installed_collection):
    run = installed_collection.doc("lxcri.proxmox.lxc_container")
    assert run.rc == 0, run
    for word in ("purge_config", "restart", "destroy_unreferenced_disks", "vmid_range", "api_token_secret"):
        assert word in run.stdout


def test_info_filters_and_a_wrong_password(installed_collection, double, tmp_path):
    make = play(tmp_path, double, "make.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: "{{ item.vmid }}"
            hostname: "{{ item.name }}"
            tags: "{{ item.tags }}"
            ostemplate: local:vztmpl/base.tar.zst
          loop:
            - {vmid: 150, name: alpha, tags: [web, blue]}
            - {vmid: 151, name: beta, tags: [web]}
            - {vmid: 152, name: gamma, tags: [db]}
        """)
    assert installed_collection.playbook(make).rc == 0
    query = play(tmp_path, double, "info.yml", """\
        - lxcri.proxmox.lxc_container_info:
            tags: [web]
          register: web
        - lxcri.proxmox.lxc_container_info:
            hostname: gamma
            config: false
          register: gamma
        - lxcri.proxmox.lxc_container_info:
            vmid: 150
          register: one
        """)
    run = installed_collection.playbook(query, check=True)
    assert run.rc == 0, run
    web, gamma, one = run.task_results()
    assert [c["vmid"] for c in web["containers"]] == [150, 151] and not web["changed"]
    assert [c["hostname"] for c in gamma["containers"]] == ["gamma"] and "config" not in gamma["containers"][0]
    assert one["containers"][0]["config"]["hostname"] == "alpha" and one["containers"][0]["tags"] == ["blue", "web"]
    bad = tmp_path / "bad.yml"
    bad.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - lxcri.proxmox.lxc_container_info:
                api_host: 127.0.0.1
                api_port: %d
                api_password: wrong-password-here
                ca_path: %s
        """ % (double.port, double.cert)))
    run = installed_collection.playbook(str(bad), verbosity=3)
    assert run.rc != 0 and "401" in run.task_results()[0]["msg"]
    assert "wrong-password-here" not in run.stdout + run.stderr


def test_raw_lxc_writes_only_the_runtime_keys_into_the_conf(installed_collection, double, tmp_path):
    """Before 9.1, a template without the init wrapper runs its entrypoint through raw lxc.* lines on the node."""
    confdir = tmp_path / "pve-lxc"
    confdir.mkdir()
    make = play(tmp_path, double, "make.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 160
            hostname: raw
            ostemplate: local:vztmpl/base.tar.zst
        """)
    assert installed_collection.playbook(make).rc == 0
    (confdir / "160.conf").write_text("arch: amd64\nhostname: raw\nlxc.apparmor.profile: unconfined\n")
    lines = ["lxc.init.cwd = /tmp", "lxc.environment = A=b c", "lxc.signal.halt = SIGTERM"]
    runtime = {"argv": ["/bin/sleep", "3600"], "lxc_init_cmd": "/bin/sleep 3600", "uid": 0, "gid": 0,
               "groups": [], "cwd": "/tmp", "wrapper": None, "pve_entrypoint": "/bin/sleep 3600",
               "pve_env": "A=b c", "lxc_config": lines}
    raw = play(tmp_path, double, "raw.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 160
            oci: {volid: "local:vztmpl/base.tar.zst", runtime: %s}
            raw_lxc: true
            raw_lxc_dir: %s
        """ % (json.dumps(runtime), confdir))
    run = installed_collection.playbook(raw)
    assert run.rc == 0, [r.get("msg") for r in run.task_results()]
    assert run.task_results()[0]["changed"]
    text = (confdir / "160.conf").read_text()
    assert "lxc.apparmor.profile: unconfined" in text and "lxc.init.cmd: /bin/sleep 3600" in text
    assert "lxc.environment: A=b c" in text
    again = installed_collection.playbook(raw)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again.task_results()


def api_requests(double, since):
    """The API requests the double received after index ``since`` (method, path)."""
    return [(method, path) for method, path, dummy in double.requests[since:]]


def test_an_unchanged_running_container_costs_five_requests(installed_collection, double, tmp_path):
    ensure = play(tmp_path, double, "ensure.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 160
            hostname: cheap
            ostemplate: local:vztmpl/base.tar.zst
            memory: 256
            state: started
        """)
    assert installed_collection.playbook(ensure).rc == 0
    since = len(double.requests)
    again = installed_collection.playbook(ensure)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    made = api_requests(double, since)
    # the login, one cluster listing, the node's live list (the cluster list's status lags on a real node),
    # the container's config and, as it runs, its pending changes (the config shows them as applied): nothing else
    assert made == [("POST", "/api2/json/access/ticket"), ("GET", "/api2/json/cluster/resources"),
                    ("GET", "/api2/json/nodes/pve1/lxc"), ("GET", "/api2/json/nodes/pve1/lxc/160/config"),
                    ("GET", "/api2/json/nodes/pve1/lxc/160/pending")], made
    # with node given, the node's live list alone finds it: four
    pinned = play(tmp_path, double, "pinned.yml", """\
        - lxcri.proxmox.lxc_container:
            vmid: 160
            node: pve1
            hostname: cheap
            ostemplate: local:vztmpl/base.tar.zst
            memory: 256
            state: started
        """)
    since = len(double.requests)
    third = installed_collection.playbook(pinned)
    assert third.rc == 0 and third.stats["localhost"]["changed"] == 0, third
    assert api_requests(double, since) == [("POST", "/api2/json/access/ticket"), ("GET", "/api2/json/nodes/pve1/lxc"),
                                           ("GET", "/api2/json/nodes/pve1/lxc/160/config"),
                                           ("GET", "/api2/json/nodes/pve1/lxc/160/pending")]


def test_an_unchanged_oci_container_with_a_token_costs_at_most_five_requests(installed_collection, double, tmp_path):
    """With an API token there is no login; the version is asked only where the config cannot tell it.

    9.1: the config's ``entrypoint`` proves the node has the OCI keys (listing + config); 8: the node's version
    decides whether the template's init wrapper goes into ``entrypoint``, so ``GET /version`` comes in.  A running
    container's pending changes are read last.
    """
    secret = double.add_token("root@pam!ci")
    path = tmp_path / "oci.yml"
    path.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - lxcri.proxmox.lxc_container:
                api_host: 127.0.0.1
                api_port: %d
                api_token_id: root@pam!ci
                api_token_secret: %s
                ca_path: %s
                vmid: 162
                hostname: oci
                oci:
                  volid: local:vztmpl/base.tar.zst
                  runtime: {wrapper: {kind: init}, pve_entrypoint: /sbin/init, pve_env: ["PATH=/bin:/sbin"]}
                state: started
        """) % (double.port, secret, double.cert))
    first = installed_collection.playbook(str(path))
    assert first.rc == 0 and first.stats["localhost"]["changed"] == 1, first
    since = len(double.requests)
    again = installed_collection.playbook(str(path))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    made = api_requests(double, since)
    expected = [("GET", "/api2/json/cluster/resources"), ("GET", "/api2/json/nodes/pve1/lxc"),
                ("GET", "/api2/json/nodes/pve1/lxc/162/config")]
    if double.backend.mode == "8":
        expected.append(("GET", "/api2/json/nodes/pve1/version"))  # the node's own version, not the API host's
    else:
        assert double.backend.containers[162].config["entrypoint"] == "/sbin/init"
    expected.append(("GET", "/api2/json/nodes/pve1/lxc/162/pending"))
    assert made == expected, made


def test_a_locked_container_is_waited_for_then_reported(installed_collection, double, tmp_path):
    import threading
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container: {vmid: 161, hostname: busy, ostemplate: "local:vztmpl/base.tar.zst"}
        """)
    assert installed_collection.playbook(create).rc == 0
    ct = double.backend.containers[161]
    ct.lock = "backup"
    since = len(double.requests)

    def release():
        # 2 s after the module met the lock (its first config PUT), however long ansible-playbook took to start
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(method == "PUT" and path.endswith("/lxc/161/config")
                                                      for method, path, dummy in double.requests[since:]):
            time.sleep(0.05)
        time.sleep(2.0)
        ct.lock = None
    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    change = play(tmp_path, double, "change.yml", """\
        - lxcri.proxmox.lxc_container: {vmid: 161, memory: 384, state: started}
          register: ct
        """)
    run = installed_collection.playbook(change)
    releaser.join()
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["changed"] and result["actions"] == ["waited for lock backup", "configured", "started"], result
    assert result["timings"]["lock_wait"] >= 1.5, result["timings"]
    assert ct.config["memory"] == "384" and running(double, 161)
    # the lock is a line of the config: its release changed the digest, so the config was read again and the
    # PUT that succeeded carried the new digest (the old one would be refused as a concurrent modification)
    puts = [params for method, path, params in double.requests[since:]
            if method == "PUT" and path.endswith("/lxc/161/config")]
    assert len(puts) >= 2 and puts[0]["digest"] != puts[-1]["digest"], puts
    ct.lock = "snapshot"
    before = state_of(double)
    held = play(tmp_path, double, "held.yml", """\
        - lxcri.proxmox.lxc_container: {vmid: 161, memory: 512, wait_timeout: 3}
        """)
    run = installed_collection.playbook(held)
    assert run.rc != 0
    assert "configure: the container stayed locked (snapshot) for 3 s, longer than wait_timeout (3 s)" in run.stdout, \
        run.stdout[-2000:]
    assert state_of(double) == before
    ct.lock = None


def test_a_concurrent_edit_is_planned_again_and_keeps_the_other_clients_change(installed_collection, double,
                                                                               tmp_path):
    """Another client writes the config between the module's read and its write: PVE refuses the stale digest,
    the module reads again, plans per key, writes only its own keys and keeps the other client's."""
    create = play(tmp_path, double, "create.yml", """\
        - lxcri.proxmox.lxc_container: {vmid: 163, hostname: shared, ostemplate: "local:vztmpl/base.tar.zst"}
        """)
    assert installed_collection.playbook(create).rc == 0
    backend = double.backend

    def other_client():
        backend.config_put({"node": NODE, "vmid": 163, "description": "edited by someone else", "memory": 1024})
    double.before_next("PUT", "/nodes/{node}/lxc/{vmid}/config", other_client)
    since = len(double.requests)
    change = play(tmp_path, double, "change.yml", """\
        - lxcri.proxmox.lxc_container: {vmid: 163, memory: 384, cores: 2}
          register: ct
        """)
    run = installed_collection.playbook(change)
    assert run.rc == 0, run
    result = run.task_results()[0]
    assert result["changed"] and result["actions"] == ["re-planned after a concurrent edit", "configured"], result
    config = backend.containers[163].config
    assert (config["memory"], config["cores"], config["description"]) == ("384", "2", "edited by someone else")
    puts = [params for method, path, params in double.requests[since:]
            if method == "PUT" and path.endswith("/lxc/163/config")]
    assert len(puts) == 2 and puts[0]["digest"] != puts[1]["digest"], puts
    assert result["config"]["description"] == "edited by someone else"


def test_nextid_race_between_two_playbooks(installed_collection, double, tmp_path):
    """Both callers are told 100 (scripted); one create loses and the module takes the next id."""
    double.backend.nextid_answers = [100, 100]
    plays = [play(tmp_path, double, "race-%s.yml" % name, """\
        - lxcri.proxmox.lxc_container: {hostname: %s, ostemplate: "local:vztmpl/base.tar.zst"}
        """ % name) for name in ("left", "right")]
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(installed_collection.playbook, plays))
    assert all(run.rc == 0 for run in runs), runs
    vmids = sorted(run.task_results()[0]["vmid"] for run in runs)
    assert vmids == [100, 101], vmids
    names = dict((ct.config["hostname"], ct.vmid) for ct in double.backend.containers.values())
    assert sorted(names) == ["left", "right"] and sorted(names.values()) == [100, 101]
    creates = [params.get("vmid") for method, path, params in double.requests
               if method == "POST" and path == "/api2/json/nodes/pve1/lxc"]
    assert sorted(str(v) for v in creates) == ["100", "100", "101"], creates  # one collision, one retry


def test_rootfs_grows_through_resize_and_never_shrinks(installed_collection, zdouble, tmp_path):
    double = zdouble
    template = os.path.join(double.backend.storages["local"]["path"], "template", "cache", "tiny.tar")
    rootfs = tmp_path / "tiny"
    (rootfs / "sbin").mkdir(parents=True)
    subprocess.run(["tar", "-cf", template, "-C", str(rootfs), "."], check=True)

    def sized(size, **options):
        extra = "".join(", %s: %s" % item for item in options.items())
        return play(tmp_path, double, "size%s.yml" % size, """\
            - lxcri.proxmox.lxc_container: {vmid: 170, hostname: grow, ostemplate: "local:vztmpl/tiny.tar",
                                            storage: local-zfs, disk_size: %d%s}
              register: ct
            """ % (size, extra))
    assert installed_collection.playbook(sized(1)).rc == 0
    dataset = double.backend.dataset(double.backend.containers[170].config["rootfs"])

    def quota():
        return subprocess.run(["zfs", "get", "-Hpo", "value", "refquota", dataset], check=True,
                              stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    assert quota() == str(1024 ** 3)
    check = installed_collection.playbook(sized(2), check=True, diff=True)
    assert check.rc == 0, check
    result = check.task_results()[0]
    assert result["changed"] and result["actions"] == ["resized"]
    assert "size=2G" in result["diff"]["after"]["rootfs"] and "size=1G" in result["diff"]["before"]["rootfs"]
    assert quota() == str(1024 ** 3)
    run = installed_collection.playbook(sized(2))
    assert run.rc == 0, run
    assert run.task_results()[0]["actions"] == ["resized"] and quota() == str(2 * 1024 ** 3)
    assert double.backend.containers[170].config["rootfs"].endswith(",size=2G")
    assert installed_collection.playbook(sized(2)).stats["localhost"]["changed"] == 0
    # a key and the size in one run: the config PUT goes first (the resize changes the digest it carries)
    both = installed_collection.playbook(sized(3, memory=300))
    assert both.rc == 0, both
    assert both.task_results()[0]["actions"] == ["configured", "resized"] and quota() == str(3 * 1024 ** 3)
    assert double.backend.containers[170].config["memory"] == "300"
    assert installed_collection.playbook(sized(3, memory=300)).stats["localhost"]["changed"] == 0
    before = state_of(double)
    shrink = installed_collection.playbook(sized(1))
    assert shrink.rc != 0 and "rootfs is 3G and 1G was asked: Proxmox VE cannot shrink a volume" in shrink.stdout
    assert quota() == str(3 * 1024 ** 3) and state_of(double) == before


# ---------------------------------------------------------------------------
# defaults: images deploy with no knob turned (issue 15, secure and simple defaults)

@pytest.fixture(params=[("9.1", "6.1"), ("9.1", "6.0"), ("8", None)], ids=lambda p: "%s-import%s" % p)
def any_node(request, tmp_path, zfs_dataset, bed):
    mode, importer = request.param
    instance = Double(str(tmp_path / "pvez"), mode=mode, zfs_root=zfs_dataset + "/pve", importer=importer).start()
    yield instance
    instance.kill_containers()
    instance.stop()


def push_default_images(tmp_path, bed):
    """A FROM-scratch-like image without Env (root), one with USER by name, and one whose user is also in a
    supplementary group."""
    from lxcri_testbed.oci_build import with_setpriv
    layout = str(tmp_path / "defaults-layout")
    plain = Layer().dir("bin").busybox(("sh", "sleep"))
    write_image(layout, "noenv", [plain], {"Entrypoint": ["/bin/sleep", "3600"]})
    for tag, members in (("named", ""), ("grouped", "app")):
        layer = with_setpriv(Layer().dir("bin").dir("tmp", mode=0o1777).busybox(("sh", "sleep", "id")).dir("etc")
                             .file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n")
                             .file("etc/group", "root:x:0:\napp:x:1000:\nvideo:x:44:%s\n" % members).dir("srv"))
        write_image(layout, tag, [layer], {"Entrypoint": ["/bin/sh", "-c", "sleep 3600; exit 0"], "User": "app",
                                           "WorkingDir": "/srv", "Env": ["PATH=/bin"]})
    refs = {}
    for tag in ("noenv", "named", "grouped"):
        refs[tag] = "%s/%s/defaults:%s" % (bed["registry"]["host"], TEST_REPO_NS, tag)
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:%s" % (layout, tag),
                        "docker://" + refs[tag]], check=True)
    return refs


def test_images_without_env_and_with_a_named_user_deploy_with_the_defaults(installed_collection, any_node, tmp_path,
                                                                           bed):
    """oci_template and lxc_container with nothing but the image, the storage and the container's name, on 9.1
    with each import and on 8: format auto picks what the node runs, and the app runs with the image's ids."""
    double = any_node
    refs = push_default_images(tmp_path, bed)
    deploy = play(tmp_path, double, "defaults.yml", """\
        - lxcri.proxmox.oci_template:
            image: "{{ item.value }}"
            registry_tls_verify: false
            storage: local
            cache_dir: %s
          loop: "{{ images | dict2items }}"
          register: tmpl
        - lxcri.proxmox.lxc_container:
            hostname: "defaults-{{ item.item.key }}"
            oci: "{{ item }}"
            storage: local-zfs
            disk_size: 1
            state: started
          loop: "{{ tmpl.results }}"
          register: ct
        """ % (tmp_path / "cache"))
    grouped = refs.pop("grouped")
    run = installed_collection.playbook(deploy, extra_vars={"images": refs})
    assert run.rc == 0, [r.get("msg") for r in run.task_results() if isinstance(r, dict)]
    results = dict((r["item"]["key"], r) for r in run.results["tasks"][0]["result"]["results"])
    nine, importer = double.backend.mode.startswith("9"), double.backend.importer
    assert results["noenv"]["format"] == ("oci-archive" if nine else "vztmpl")
    assert results["named"]["format"] == ("oci-archive" if nine and importer == "6.1" else "vztmpl")
    assert results["named"]["format_choice"]
    from lxcri_testbed.lxc import container_ids, read_init
    found = dict((ct.config["hostname"], ct) for ct in double.backend.containers.values())
    for tag, (uid, gid, groups, cwd) in (("noenv", (0, 0, [], "/")), ("named", (1000, 1000, [], "/srv"))):
        state, pid = double.backend.lxc_state(found["defaults-" + tag])
        assert state == "running"
        pids = [pid] + [int(p) for p in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
        apps = [read_init(p) for p in pids]
        app = [a for a in apps if "sleep" in " ".join(a.argv)][-1]
        have = container_ids(app.pid)[2]
        assert (app.uid, app.gid, app.cwd) == (uid, gid, cwd), (tag, app)
        assert [g for g in have if g != gid] == groups, (tag, have)
        # unprivileged by default: the container's ids are 100000 higher on the node
        assert (app.host_uid, app.host_gid) == (100000 + uid, 100000 + gid), (tag, app)
    again = installed_collection.playbook(deploy, extra_vars={"images": refs})
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    # a supplementary group: LXC (src/lxc/start.c) applies lxc.init.groups only without a user namespace, so
    # where the OCI import would carry the ids (9.1 with pve-container 6.1) format auto reads the user's groups
    # from the layers and picks the generated init, which sets them in the unprivileged container too
    grouped_run = installed_collection.playbook(deploy, extra_vars={"images": {"grouped": grouped}})
    assert grouped_run.rc == 0, grouped_run
    built = grouped_run.results["tasks"][0]["result"]["results"][0]
    assert built["format"] == "vztmpl" and built["init_wrapper"] == "always", built["format_choice"]
    if nine and importer == "6.1":
        assert "supplementary groups 44" in built["format_choice"], built["format_choice"]
    ct = [ct for ct in double.backend.containers.values() if ct.config["hostname"] == "defaults-grouped"][0]
    state, pid = double.backend.lxc_state(ct)
    pids = [pid] + [int(p) for p in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    app = [read_init(p) for p in pids if "sleep" in " ".join(read_init(p).argv)][-1]
    assert (app.uid, [g for g in container_ids(app.pid)[2] if g != 1000]) == (1000, [44]), app
    if nine and importer == "6.1":
        # learnt once: the image cache's facts about the manifest hold the user's groups, so a later run reads
        # no layer to decide again
        facts = []
        for root, dummy, files in os.walk(str(tmp_path / "cache")):
            for name in files:
                if name.endswith(".json") and os.sep + "meta" + os.sep in os.path.join(root, name):
                    with open(os.path.join(root, name)) as handle:
                        facts.append(json.load(handle).get("user_groups"))
        assert {"app": [44]} in facts, facts
    assert installed_collection.playbook(deploy, extra_vars={"images": {"grouped": grouped}}).stats[
        "localhost"]["changed"] == 0


def test_a_change_left_pending_is_reported_again_and_applied_when_needed(installed_collection, double, tmp_path):
    """A nameserver change on a running CT waits for the next start.  The next run without restart must still
    say so (GET config shows the pending value as applied, so the plan alone sees nothing), and a run with
    restart: when_needed applies it with a reboot."""
    base = """\
        - lxcri.proxmox.lxc_container:
            vmid: 170
            hostname: pend
            ostemplate: local:vztmpl/base.tar.zst
            nameserver: %s
            shutdown_timeout: 5
            force_stop: true
            state: started
            restart: %s
        """
    assert installed_collection.playbook(play(tmp_path, double, "p0.yml", base % ("10.0.0.53", "never"))).rc == 0
    first = installed_collection.playbook(play(tmp_path, double, "p1.yml", base % ("10.0.0.54", "never")))
    assert first.rc == 0 and first.task_results()[0]["pending"] == ["nameserver"], first
    again = installed_collection.playbook(play(tmp_path, double, "p1.yml", base % ("10.0.0.54", "never")))
    result = again.task_results()[0]
    assert again.rc == 0 and not result["changed"] and result["pending"] == ["nameserver"], result
    apply = installed_collection.playbook(play(tmp_path, double, "p2.yml", base % ("10.0.0.54", "when_needed")))
    result = apply.task_results()[0]
    assert apply.rc == 0 and result["changed"] and "restarted" in result["actions"] and result["pending"] == []
    ct = double.backend.containers[170]
    assert ct.config["nameserver"] == "10.0.0.54" and not ct.pending
