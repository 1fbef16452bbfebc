"""The connection plugin lxcri.proxmox.pct through real ansible runs, into real LXC containers of the API double.

``pct`` is the test bed's shim (tests/lxcri_testbed/pct_shim.py: the real command line, exit codes and file
ownership of pve-container's pct exec/push/pull). The container is a Debian-like one made on the spot: a busybox
root file system with the host's /usr bind-mounted read-only (Python for the modules), unprivileged. Both ways
are shown: pct on this host, and pct on a "node" reached over SSH (the test sshd, with the shim on its PATH).
"""

import hashlib
import json
import os
import subprocess
import textwrap

import pytest

from lxcri_testbed.pct_shim import wrapper as pct_wrapper
from lxcri_testbed.sshd import Sshd
from pve_double.server import Double

pytestmark = pytest.mark.integration

APPLETS = ("sh", "cat", "id", "su", "ls", "rm", "mkdir", "chmod", "chown", "env", "echo", "printf", "head", "mv")
VMID = 170


@pytest.fixture(name="guest")
def fixture_guest(tmp_path, bed):
    """A running unprivileged container with the host's /usr (python3) read-only, and a pct for it."""
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    files = {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
             "etc/group": "root:x:0:\nnogroup:x:65534:\n"}
    template = double.add_busybox_template("debianlike.tar.zst", tmp_path, init=Double.HALTING_INIT, files=files,
                                           owners={"root": (0, 0, 0o700), "tmp": (0, 0, 0o1777), "var": (0, 0, 0o755),
                                                   "var/tmp": (0, 0, 0o1777)})
    rootfs = os.path.join(str(tmp_path), "rootfs-debianlike")
    for applet in APPLETS:
        if not os.path.lexists(os.path.join(rootfs, "bin", applet)):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    for link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        os.symlink(target, os.path.join(rootfs, link))
    subprocess.run(["tar", "--zstd", "-cf", double.backend.volume_path(template), "-C", rootfs, "."], check=True)
    from lxcri_testbed.api import Api  # pylint: disable=import-outside-toplevel
    api = Api(double)
    assert api.task("POST", "/nodes/pve1/lxc", vmid=VMID, ostemplate=template, unprivileged=1,
                    mp0="/usr,mp=/usr,ro=1", hostname="guest") == "OK"
    assert api.task("POST", "/nodes/pve1/lxc/%d/status/start" % VMID) == "OK"
    double.pct = pct_wrapper(tmp_path, [double.backend.root])
    yield double
    double.kill_containers()
    double.stop()


def inventory(tmp_path, double, extra=None):
    host = {"ansible_connection": "lxcri.proxmox.pct", "ansible_pct_command": double.pct,
            "ansible_python_interpreter": "/usr/bin/python3"}
    host.update(extra or {})
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": {str(VMID): host}}}))
    return str(path)


PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: A command's output and exit code
      ansible.builtin.command: /bin/sh -c 'echo out; echo err >&2; exit 3'
      register: three
      failed_when: three.rc != 3
    - name: Binary output (raw passes the bytes through the connection as they come)
      ansible.builtin.raw: printf '\\377\\001\\376end'
      register: binary
    - name: A directory with a space in its name
      ansible.builtin.file:
        path: /tmp/with space
        state: directory
        mode: "0755"
    - name: A file in
      ansible.builtin.copy:
        src: "{{ big }}"
        dest: "/tmp/with space/big file.bin"
    - name: Its checksum in the container
      ansible.builtin.stat:
        path: "/tmp/with space/big file.bin"
        checksum_algorithm: sha256
      register: inside
    - name: The file back out
      ansible.builtin.fetch:
        src: "/tmp/with space/big file.bin"
        dest: "{{ back }}"
        flat: true
    - name: As another user (become inside the container)
      ansible.builtin.command: id -u
      become: true
      become_user: nobody
      become_method: su
      register: other
    - name: Pipelined module
      ansible.builtin.command: id -u
      register: piped
      vars:
        ansible_pipelining: true
"""


def run_play(installed_collection, tmp_path, inv, big, back):
    path = tmp_path / "play.yml"
    path.write_text(PLAY)
    return installed_collection.playbook(str(path), inventory=inv, extra_vars={"big": big, "back": back})


def big_file(tmp_path):
    path = str(tmp_path / "big.bin")
    with open(path, "wb") as handle:
        for index in range(50):
            handle.write(hashlib.sha256(str(index).encode()).digest() * (1 << 15))  # 50 MiB, not compressible
    return path


def check(run, big, back):
    assert run.rc == 0, [(t["task"], t["result"]) for t in run.results["tasks"] if t["status"] != "ok"]
    three, binary, dummy_dir, dummy_copy, inside, dummy_fetch, other, piped = run.task_results()
    assert three["rc"] == 3 and three["stdout"] == "out" and three["stderr"] == "err"
    assert binary["stdout"].endswith("end") and binary["rc"] == 0 and len(binary["stdout"]) == 6, binary["stdout"]
    with open(big, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    assert inside["stat"]["checksum"] == digest and inside["stat"]["size"] == os.path.getsize(big)
    with open(back, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == digest
    assert other["stdout"] == "65534" and piped["stdout"] == "0"


@pytest.mark.slow(40)
def test_commands_files_become_and_pipelining_with_pct_on_this_host(installed_collection, guest, tmp_path):
    big = big_file(tmp_path)
    back = str(tmp_path / "back.bin")
    run = run_play(installed_collection, tmp_path, inventory(tmp_path, guest), big, back)
    check(run, big, back)
    # the pushed file is the container root's (uid 100000 on the host), mode 0644 before copy's own mode
    state, pid = guest.backend.lxc_state(guest.backend.containers[VMID])
    assert os.stat("/proc/%d/root/tmp/with space/big file.bin" % pid).st_uid == 100000


@pytest.mark.slow(40)
def test_the_same_over_ssh_to_the_node(installed_collection, guest, tmp_path):
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        # the node's own pct (the shim on the sshd sessions' PATH), told where the double is by SetEnv
        config = sshd.client_config(tmp_path / "ssh_config", {"LXCRI_PCT_ROOTS": guest.backend.root})
        inv = inventory(tmp_path, guest, {"ansible_pct_node_host": "127.0.0.1", "ansible_pct_node_port": sshd.port,
                                          "ansible_pct_node_private_key_file": sshd.client_key,
                                          "ansible_pct_node_ssh_args": "-F %s" % config,
                                          "ansible_pct_command": "pct"})
        big = big_file(tmp_path)
        back = str(tmp_path / "back.bin")
        check(run_play(installed_collection, tmp_path, inv, big, back), big, back)
    finally:
        sshd.stop()


def test_a_stopped_or_missing_container_is_unreachable_with_the_reason(installed_collection, guest, tmp_path):
    path = tmp_path / "ping.yml"
    path.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - ansible.builtin.raw: echo hello
        """))
    missing = inventory(tmp_path, guest, {"ansible_pct_vmid": 999})
    run = installed_collection.playbook(str(path), inventory=missing)
    assert run.rc != 0 and "CT 999 does not exist on this host" in run.stdout, run.stdout[-2000:]
    guest.kill_containers()
    run = installed_collection.playbook(str(path), inventory=inventory(tmp_path, guest))
    assert run.rc != 0 and "CT %d on this host is not running" % VMID in run.stdout, run.stdout[-2000:]
