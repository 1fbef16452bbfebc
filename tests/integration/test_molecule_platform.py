"""The molecule platform (issue 22): `molecule test` of the sample role against the API double, with real LXC and ZFS.

tests/molecule_sample/hello_service is a role with its own scenario that uses lxcri.proxmox.molecule_create and
molecule_destroy.  Its instance comes from a Debian-like image built now (lxcri_testbed.molecule_images: BusyBox and
this machine's Python, no /sbin/init) and pushed to the test bed's registry; the connection is lxcri.proxmox.pct with
the double's pct.  The instances are privileged here: zfs-fuse refuses a chown made inside a user namespace (the
role chowns its directories), which real ZFS allows.
"""

import os
import shutil
import subprocess
import sys
import threading

import pytest

from lxcri_testbed.pct_shim import wrapper as pct_wrapper

pytestmark = pytest.mark.integration

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "molecule_sample", "hello_service")
STAGES = ("destroy", "syntax", "create", "converge", "idempotence", "verify")


@pytest.fixture(scope="session", name="molecule_image")
def fixture_molecule_image(bed):
    from lxcri_testbed.molecule_images import push  # pylint: disable=import-outside-toplevel
    return push(bed["registry"]["host"])


def project(tmp_path, name):
    """A copy of the sample role (its own molecule ephemeral directory: molecule keys it by the project's path)."""
    path = tmp_path / name / "hello_service"
    shutil.copytree(SAMPLE, str(path))
    return str(path)


def molecule_env(installed_collection, double, image, tmp_path, name, **extra):
    """The environment of a molecule run of project ``name``: the double, the image, the double's pct, and an
    ephemeral directory of its own (molecule keys it by the project directory's name alone, the same for every copy)."""
    env = installed_collection.env(
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / name / "ephemeral"),
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        PROXMOX_HOST=double.host, PROXMOX_PORT=str(double.port), PROXMOX_USER="root@pam",
        PROXMOX_PASSWORD=double.password, PROXMOX_VALIDATE_CERTS="false",
        LXCRI_COLLECTIONS_PATH=installed_collection.collections_path,
        LXCRI_MOLECULE_IMAGE=image, LXCRI_MOLECULE_TLS_VERIFY="false", LXCRI_MOLECULE_UNPRIVILEGED="false",
        LXCRI_MOLECULE_CACHE_DIR=str(tmp_path / "oci-cache"),
        LXCRI_PCT_COMMAND=pct_wrapper(tmp_path, [double.backend.root]), NO_COLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    env.update(extra)
    return env


def molecule(path, env, *args):
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "molecule")] + list(args), cwd=path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=900,
                          check=False)
    return proc.returncode, proc.stdout


def containers(double):
    """{hostname: config} of the double's containers (templates included), read from their config files."""
    found = {}
    directory = os.path.join(double.backend.root, "etc", "pve", "lxc")
    for name in os.listdir(directory):
        config = {"vmid": int(name.split(".")[0])}
        with open(os.path.join(directory, name)) as handle:
            for line in handle:
                if line.startswith("["):
                    break
                key, dummy, value = line.rstrip("\n").partition(": ")
                config[key] = value
        found[config.get("hostname")] = config
    return found


def status(env, vmid):
    return subprocess.run([env["LXCRI_PCT_COMMAND"], "status", str(vmid)], capture_output=True, text=True,
                          check=False).stdout.strip()


def test_molecule_test_runs_create_converge_idempotence_verify_destroy(zdouble91, installed_collection,
                                                                       molecule_image, tmp_path):
    double = zdouble91
    env = molecule_env(installed_collection, double, molecule_image, tmp_path, "one")
    path = project(tmp_path, "one")
    # a container that is not the scenario's, with the instance's short name: destroy must leave it alone
    from lxcri_testbed.api import Api  # pylint: disable=import-outside-toplevel
    api = Api(double)
    double.add_busybox_template("bystander.tar.zst", tmp_path)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=150, ostemplate="local:vztmpl/bystander.tar.zst",
                    hostname="hello-debian", tags="lxcri-molecule") == "OK"
    rc, out = molecule(path, env, "test")
    assert rc == 0, out[-6000:]
    for stage in STAGES:
        assert "%s: Executed: Successful" % stage in out, stage
    assert "All assertions passed" in out
    # the idempotence stage ran the role a second time with nothing changed; verify checked it through pct
    left = containers(double)
    assert "hello-debian" in left  # the bystander
    bases = [name for name, config in left.items() if config.get("template") == "1"]
    assert len(bases) == 1 and bases[0].startswith("base-") and bases[0].endswith(".pve1.lxcri-molecule")
    assert set(left) == {"hello-debian", bases[0]}  # the instance went, the base template stays for the next run
    assert "subvol-" not in left[bases[0]]["rootfs"] and "basevol-" in left[bases[0]]["rootfs"]


def test_parallel_scenarios_share_the_base_and_destroy_takes_exactly_its_own(
        zdouble91, installed_collection, molecule_image, tmp_path):
    double = zdouble91
    paths = {name: project(tmp_path, name) for name in ("alpha", "beta")}
    envs = {name: molecule_env(installed_collection, double, molecule_image, tmp_path, name) for name in paths}
    results = {}

    def create(name):
        results[name] = molecule(paths[name], envs[name], "create")

    threads = [threading.Thread(target=create, args=(name,)) for name in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (rc, out) in results.items():
        assert rc == 0, (name, out[-6000:])
    made = containers(double)
    instances = dict((name, config) for name, config in made.items() if name.startswith("hello-debian."))
    assert len(instances) == 2, sorted(made)
    assert len(set(c["vmid"] for c in instances.values())) == 2
    bases = [config for config in made.values() if config.get("template") == "1"]
    assert bases, sorted(made)
    for config in instances.values():
        # a linked clone: its root disk is a ZFS clone of a base's basevol
        assert config["rootfs"].split(",")[0].split(":")[1].startswith("basevol-"), config["rootfs"]
        assert "/subvol-%d-disk-0" % config["vmid"] in config["rootfs"]
    # both instances answer through the connection, each in its own scenario
    for name, path in paths.items():
        rc, out = molecule(path, envs[name], "converge")
        assert rc == 0, (name, out[-6000:])

    # an aborted create: alpha's instance config is lost (molecule no longer knows its instance), destroy still finds
    # the instance by its hostname's domain, and only that one
    os.unlink(os.path.join(envs["alpha"]["MOLECULE_EPHEMERAL_DIRECTORY"], "instance_config.yml"))
    rc, out = molecule(paths["alpha"], envs["alpha"], "destroy")
    assert rc == 0, out[-6000:]
    left = containers(double)
    remaining = [name for name in left if name.startswith("hello-debian.")]
    assert len(remaining) == 1 and remaining[0] in instances
    assert "status: running" in status(envs["beta"], instances[remaining[0]]["vmid"])
    assert sorted(c["vmid"] for c in left.values() if c.get("template") == "1") == sorted(b["vmid"] for b in bases)
    rc, out = molecule(paths["beta"], envs["beta"], "destroy")
    assert rc == 0, out[-6000:]
    assert not [name for name in containers(double) if name.startswith("hello-debian.")]
    assert sorted(c["vmid"] for c in containers(double).values() if c.get("template") == "1") == \
        sorted(b["vmid"] for b in bases)


def busybox_init_image(registry, tmp_path):
    """BusyBox with /sbin/init -> /bin/busybox and an inittab that marks the boot and keeps a process: an image
    whose own init init: system keeps (as alpine's)."""
    from lxcri_testbed.oci_build import Layer, write_image  # pylint: disable=import-outside-toplevel
    layer = (Layer().dir("bin").dir("sbin").dir("etc").dir("run").dir("tmp", mode=0o1777)
             .busybox(("sh", "sleep", "cat", "touch", "init", "ls"))
             .symlink("sbin/init", "../bin/busybox")
             .file("etc/inittab", "::sysinit:/bin/touch /run/booted-by-busybox-init\n::respawn:/bin/sleep 100000\n")
             .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n").file("etc/group", "root:x:0:\n"))
    layout = str(tmp_path / "layout")
    write_image(layout, "1", [layer], {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin:/sbin"]})
    ref = "%s/lxcri-molecule/busybox-init:1" % registry
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:1" % layout, "docker://" + ref],
                   check=True)
    return ref


def test_init_system_keeps_an_images_own_init_and_gives_the_others_a_sleep(zdouble91, installed_collection, bed,
                                                                           molecule_image, tmp_path):
    from lxcri_testbed.ansible import write_pve_play  # pylint: disable=import-outside-toplevel
    double = zdouble91
    own_init = busybox_init_image(bed["registry"]["host"], tmp_path)
    play = write_pve_play(tmp_path, double, "play.yml", """\
        - name: System templates
          lxcri.proxmox.oci_template:
            image: "{{ item }}"
            init: system
            storage: local
            registry_tls_verify: false
            cache_dir: %s
          loop: ["%s", "%s"]
          register: templates
        - name: Containers of them, started
          lxcri.proxmox.lxc_container:
            vmid: "{{ 180 + index }}"
            hostname: "sys{{ index }}"
            ostemplate: "{{ item.volid }}"
            storage: local
            unprivileged: false
            state: started
          loop: "{{ templates.results }}"
          loop_control:
            index_var: index
        - name: Show the inits
          ansible.builtin.debug:
            msg: "{{ templates.results | map(attribute='runtime') | map(attribute='init') | list }}"
        """ % (tmp_path / "cache", own_init, molecule_image))
    run = installed_collection.playbook(play)
    assert run.rc == 0, run.stdout[-4000:]
    assert [r["runtime"]["init"] for r in run.task_results()[0]["results"]] == ["image", "sleep"]
    pct = pct_wrapper(tmp_path, [double.backend.root])

    def in_ct(vmid, command):
        return subprocess.run([pct, "exec", str(vmid), "--", "/bin/sh", "-c", command], capture_output=True,
                              text=True, check=False)

    # BusyBox's own init is PID 1 and ran its inittab; the Debian-like image's generated init runs the sleep loop
    assert in_ct(180, "cat /proc/1/cmdline | tr '\\0' ' '").stdout.strip() in ("init", "/sbin/init")
    assert in_ct(180, "ls /run/booted-by-busybox-init").returncode == 0
    assert in_ct(181, "cat /proc/1/cmdline | tr '\\0' ' '").stdout.split()[:2] == ["/bin/sh", "/sbin/init"]
    children = in_ct(181, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done").stdout
    assert "while :; do sleep 86400; done" in children, children


@pytest.mark.slow(60)
def test_on_a_cluster_the_instances_go_to_their_node_and_are_reached_over_ssh(
        zcluster, installed_collection, molecule_image, tmp_path):
    """A platform with node pve2 on the three-node double, molecule run from the controller: the template, the base
    and the instance are on pve2, the instance config's address is <vmid>@<pve2's SSH host>, and converge and verify
    reach the instance with pct over SSH to that host (the sshd's pct shim, told pve2's directory)."""
    import yaml  # pylint: disable=import-outside-toplevel
    from lxcri_testbed.sshd import Sshd  # pylint: disable=import-outside-toplevel
    double = zcluster
    path = project(tmp_path, "cluster")
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        config = sshd.client_config(tmp_path / "ssh_config", {"LXCRI_PCT_ROOTS": double.backends["pve2"].root})
        scenario = os.path.join(path, "molecule", "default", "molecule.yml")
        with open(scenario) as handle:
            text = handle.read()
        data = yaml.safe_load(text)  # molecule's ${VARIABLES} stay strings, which molecule replaces when it reads
        data["platforms"][0]["node"] = "pve2"
        data["provisioner"]["inventory"]["group_vars"]["all"].update({
            "lxcri_molecule_node_hosts": {"pve2": "127.0.0.1"}, "ansible_pct_command": "pct",
            "ansible_pct_node_port": sshd.port, "ansible_pct_node_private_key_file": sshd.client_key,
            "ansible_pct_node_ssh_args": "-F %s" % config})
        with open(scenario, "w") as handle:
            handle.write(yaml.safe_dump(data))
        env = molecule_env(installed_collection, double, molecule_image, tmp_path, "cluster")
        env["LXCRI_PCT_COMMAND"] = "pct"
        for command in ("create", "converge", "verify"):
            rc, out = molecule(path, env, command)
            assert rc == 0, (command, out[-6000:])
        with open(os.path.join(env["MOLECULE_EPHEMERAL_DIRECTORY"], "instance_config.yml")) as handle:
            instances = yaml.safe_load(handle)
        assert len(instances) == 1 and instances[0]["node"] == "pve2"
        assert instances[0]["address"] == "%d@127.0.0.1" % instances[0]["vmid"]
        assert double.cluster.owner(instances[0]["vmid"]) == "pve2"
        assert double.cluster.owner(instances[0]["base"]) == "pve2"
        rc, out = molecule(path, env, "destroy")
        assert rc == 0, out[-6000:]
        assert instances[0]["vmid"] not in double.backends["pve2"].containers
        assert instances[0]["base"] in double.backends["pve2"].containers
    finally:
        sshd.stop()
